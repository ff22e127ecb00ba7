package metrics_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/api/apitest"
	"hakeep/checks"
	"hakeep/metrics"
)

// A series that cannot be collected is left out and logged; the rest of
// the scrape is still served.
func TestBadSeriesDoesNotBlankScrape(t *testing.T) {
	fs := full()
	fs.rs = append(fs.rs, checks.RealServerState{VirtualServer: "10.0.0.100:80/TCP", RealServer: "192.168.0.10:80", Up: false, Weight: -1})
	var logs bytes.Buffer
	h := metrics.Handler(metrics.NewRegistry(fs.sources()), slog.New(slog.NewTextHandler(&logs, nil)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	fams := parse(t, rec.Body)
	if v, ok := value(fams, "hakeep_vrrp_instance_state", l("vrrp_instance", "VI_1", "state", "MASTER")); !ok || v != 1 {
		t.Fatalf("scrape lost other series: %v %v", v, ok)
	}
	if !strings.Contains(logs.String(), "metrics scrape") || !strings.Contains(logs.String(), "192.168.0.10:80") {
		t.Fatalf("duplicate series not logged: %q", logs.String())
	}
}

// Over TCP the metrics are served only with mutual TLS, like the rest of
// the API: a client without a certificate gets nothing.
func TestMetricsOverMutualTLS(t *testing.T) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	leaf := func(name string, serial int64) tls.Certificate {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	srv := api.NewServer(&apitest.Fake{Node: "d1"}, nil)
	if err := srv.Handle("GET /metrics", metrics.Handler(metrics.NewRegistry(full().sources()), nil)); err != nil {
		t.Fatal(err)
	}
	addr, err := srv.ServeTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf("srv", 2)}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client := func(conf *tls.Config) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
	}
	url := "https://" + addr.String() + "/metrics"

	resp, err := client(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{leaf("prometheus", 3)}}).Get(url)
	if err != nil {
		t.Fatalf("scrape with a client certificate: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	if v, ok := value(parse(t, resp.Body), "hakeep_cluster_raft_term", nil); !ok || v != 3 {
		t.Fatalf("hakeep_cluster_raft_term = %v %v", v, ok)
	}

	if resp, err := client(&tls.Config{RootCAs: pool}).Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("scrape without a client certificate answered HTTP %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + addr.String() + "/metrics"); err == nil && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		t.Fatal("plain HTTP scrape of the TLS port answered 200")
	}
}
