package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/api/apitest"
)

func fake() *apitest.Fake {
	return &apitest.Fake{
		Node:    "d1",
		Raft:    api.RaftStatus{State: "Leader", Leader: "d1", Term: 3},
		Members: []api.Member{{Name: "d1", Status: "alive", Voter: true, Leader: true}, {Name: "d2", Status: "suspect", Voter: true}},
		Health:  api.HealthStatus{Mode: "quorum"},
		Inst:    []api.Instance{{Name: "VI_1", VRID: 51, State: "MASTER", Priority: 150, VIPs: []string{"10.0.0.100/24"}}},
		VS: []api.VirtualServer{{Key: "10.0.0.100:80/TCP", Address: "10.0.0.100", Port: 80, Protocol: "TCP", Scheduler: "wrr",
			RealServers: []api.RealServer{{Address: "192.168.0.10", Port: 80, Weight: 3, Healthy: true}}}},
		Voters:      []string{"d1", "d2"},
		ApplyOnPush: []string{"d1"},
		Validate: func(name, text string) []string {
			if strings.Contains(text, "bad") {
				return []string{name + ":1: bad keyword"}
			}
			return nil
		},
	}
}

func serveUnix(t *testing.T, b api.Backend) (string, *api.Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "hakeepd.sock")
	s := api.NewServer(b, nil)
	if err := s.ServeUnix(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path, s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestUnixSocketPermissions(t *testing.T) {
	path, _ := serveUnix(t, fake())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode = %v, want 0600 socket", fi.Mode())
	}
	if os.Geteuid() == 0 {
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Fatalf("socket owned by %d:%d, want root", st.Uid, st.Gid)
		}
	}
	// A second daemon on the same live socket is refused.
	if err := api.NewServer(fake(), nil).ServeUnix(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second ServeUnix = %v, want in-use error", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves the file behind, like a crashed daemon
	s := api.NewServer(fake(), nil)
	if err := s.ServeUnix(path); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer s.Close()
	if _, err := api.NewClient(path).Status(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestClientRoundTrip(t *testing.T) {
	f := fake()
	f.RunningV = 1
	path, _ := serveUnix(t, f)
	c := api.NewClient(path)
	cx := ctx(t)

	if _, err := c.ConfigShow(cx); !isCode(err, api.CodeNotFound) {
		t.Fatalf("show before push: %v", err)
	}
	res, err := c.ConfigPush(cx, api.PushRequest{Name: "k.conf", Text: "good", PushID: "p1"})
	if err != nil || res.Version != 1 || len(res.Applied) != 1 || len(res.Pending) != 1 || res.Pending[0] != "d2" {
		t.Fatalf("push = %+v, %v", res, err)
	}
	if res, _ := c.ConfigPush(cx, api.PushRequest{Name: "k.conf", Text: "good", PushID: "p1"}); !res.Duplicate {
		t.Fatalf("retried push not a duplicate: %+v", res)
	}
	_, err = c.ConfigPush(cx, api.PushRequest{Name: "k.conf", Text: "bad"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalid || len(ae.Diagnostics) != 1 || ae.Diagnostics[0] != "k.conf:1: bad keyword" {
		t.Fatalf("bad push error = %#v", err)
	}
	st, err := c.Status(cx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "d1" || st.Raft.State != "Leader" || st.Config.Version != 1 || st.Config.Running != 1 || len(st.Instances) != 1 || st.VirtualServers[0].RealServers[0].Weight != 3 {
		t.Fatalf("status = %+v", st)
	}
	if _, err := c.ConfigRollback(cx, api.RollbackRequest{Version: 7}); !isCode(err, api.CodeNotFound) {
		t.Fatalf("rollback unknown: %v", err)
	}
	if r, err := c.ConfigRollback(cx, api.RollbackRequest{Version: 1}); err != nil || r.Version != 2 {
		t.Fatalf("rollback: %+v %v", r, err)
	}
	h, err := c.ConfigHistory(cx)
	if err != nil || len(h) != 2 || h[1].RollbackOf != 1 || h[0].Text != "" {
		t.Fatalf("history = %+v, %v", h, err)
	}
	// WaitApplied returns once d2 reports.
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.SetApplied("d2", 2, "")
	}()
	if r, err := c.WaitApplied(cx, 2); err != nil || len(r.Pending) != 0 {
		t.Fatalf("wait applied: %+v %v", r, err)
	}
	short, cancel := context.WithTimeout(cx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.WaitApplied(short, 99); err == nil {
		t.Fatal("WaitApplied for a version nobody applies returned nil")
	}
	if err := c.ClusterRemove(cx, "nope"); !isCode(err, api.CodeNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
	if err := c.ClusterJoin(cx, "10.0.0.2:7401"); err != nil {
		t.Fatal(err)
	}
	if calls := strings.Join(f.CallsCopy(), ","); !strings.Contains(calls, "join 10.0.0.2:7401") {
		t.Fatalf("calls = %s", calls)
	}
	f.Unavailable = true
	if _, err := c.ConfigPush(cx, api.PushRequest{Text: "x"}); !isCode(err, api.CodeUnavailable) {
		t.Fatalf("push without leader: %v", err)
	}
}

func isCode(err error, code string) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}

func TestStatusJSONShape(t *testing.T) {
	path, _ := serveUnix(t, fake())
	raw, err := api.NewClient(path).Raw(ctx(t), "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	get := func(path string) any {
		var cur any = m
		for _, k := range strings.Split(path, ".") {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[k]
			case []any:
				if len(c) == 0 {
					return nil
				}
				cur = c[0].(map[string]any)[k]
			default:
				return nil
			}
		}
		return cur
	}
	for _, p := range []string{"node", "raft.state", "raft.leader", "raft.term", "config.version", "config.sha256", "members.name", "members.status",
		"instances.name", "instances.vrid", "instances.state", "instances.priority", "instances.vips",
		"virtual_servers.real_servers"} {
		if get(p) == nil {
			t.Errorf("status JSON lacks %s: %s", p, raw)
		}
	}
	rs := m["virtual_servers"].([]any)[0].(map[string]any)["real_servers"].([]any)[0].(map[string]any)
	for _, k := range []string{"address", "port", "weight", "healthy"} {
		if _, ok := rs[k]; !ok {
			t.Errorf("real server JSON lacks %s", k)
		}
	}
}

func TestBadRequests(t *testing.T) {
	path, _ := serveUnix(t, fake())
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	tests := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/config/push", "{", http.StatusBadRequest},
		{"POST", "/v1/config/push", `{"unknown":1}`, http.StatusBadRequest},
		{"POST", "/v1/cluster/join", `{}`, http.StatusBadRequest},
		{"GET", "/v1/config/applied?version=x", "", http.StatusBadRequest},
		{"GET", "/v1/nope", "", http.StatusNotFound},
		{"GET", "/v1/config/push", "", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, "http://x"+tc.path, strings.NewReader(tc.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s %q: HTTP %d, want %d", tc.method, tc.path, tc.body, resp.StatusCode, tc.want)
		}
	}
}

// mTLS on TCP.
func TestServeTLSMutual(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	leaf := func(name string) tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	s := api.NewServer(fake(), nil)
	defer s.Close()
	if _, err := s.ServeTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf("srv")}}); err == nil {
		t.Fatal("TCP API without client certificates was served")
	}
	addr, err := s.ServeTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf("srv")}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	good := api.NewTLSClient(addr.String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{leaf("op")}})
	if st, err := good.Status(ctx(t)); err != nil || st.Node != "d1" {
		t.Fatalf("mTLS status: %+v %v", st, err)
	}
	anon := api.NewTLSClient(addr.String(), &tls.Config{RootCAs: pool})
	if _, err := anon.Status(ctx(t)); !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("client without certificate: %v", err)
	}
}

func TestStandalone(t *testing.T) {
	f := fake()
	path, _ := serveUnix(t, api.Compose(f, api.Standalone("lb1")))
	c := api.NewClient(path)
	st, err := c.Status(ctx(t))
	if err != nil || st.Node != "lb1" || st.Raft.State != "" || len(st.Instances) != 1 {
		t.Fatalf("standalone status = %+v, %v", st, err)
	}
	if _, err := c.ConfigPush(ctx(t), api.PushRequest{Text: "x"}); !isCode(err, api.CodeUnavailable) || !strings.Contains(err.Error(), "without a cluster") {
		t.Fatalf("standalone push: %v", err)
	}
}
