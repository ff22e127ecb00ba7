package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/api/apitest"
)

// TestTCPAPIWithMutualTLS: hactl --api HOST:PORT with client certificates
// against the daemon's TCP API.
func TestTCPAPIWithMutualTLS(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name string, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.crt", "CERTIFICATE", caDER)
	issue := func(name string) (string, string, tls.Certificate) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		kder, _ := x509.MarshalECPrivateKey(k)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	_, _, srvCert := issue("server")
	opCert, opKey, _ := issue("operator")
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	s := api.NewServer(&apitest.Fake{Node: "d7", Raft: api.RaftStatus{State: "Follower", Leader: "d1"}}, nil)
	defer s.Close()
	addr, err := s.ServeTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := hactl("--api", addr.String(), "--tls-cert", opCert, "--tls-key", opKey, "--tls-ca", caFile, "status")
	if code != 0 || !strings.Contains(out, "node:    d7") {
		t.Fatalf("status over mTLS = %d %q %q", code, out, errOut)
	}
	// A wrong CA for the server: refused, exit 1.
	otherCA := filepath.Join(dir, "other.crt")
	os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER[:0]}), 0o600)
	if code, _, _ := hactl("--api", addr.String(), "--tls-cert", opCert, "--tls-key", opKey, "--tls-ca", otherCA, "status"); code != 1 {
		t.Fatalf("bad CA file: exit %d, want 1", code)
	}
}
