package consensus

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
	"testing"
	"time"
)

// testCA is a throwaway certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hakeep test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes cert, key and CA PEM files for name (IP SAN 127.0.0.1) and
// returns their paths.
func (ca *testCA) issue(t *testing.T, name string) (certFile, keyFile, caFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{name, "localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile, caFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, "ca.crt")
	for f, b := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		caFile:   ca.pem,
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return
}

func (ca *testCA) tlsConfig(t *testing.T, name string) *tls.Config {
	t.Helper()
	c, k, a := ca.issue(t, name)
	conf, err := LoadTLS(c, k, a)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

func TestTLSTransport(t *testing.T) {
	ca := newTestCA(t)
	confs := []*tls.Config{ca.tlsConfig(t, "d1"), ca.tlsConfig(t, "d2"), ca.tlsConfig(t, "d3")}
	c := newCluster(t, clusterOpts{n: 3, expect: 3, tls: confs})
	l := c.leader()
	f := followers(c, l)[0]
	mustPush(t, f.node, "over tls") // forwarded over the TLS RPC too
	c.waitVersion(1)

	// A plain-TCP or wrong-CA peer cannot talk to the Raft port.
	other := newTestCA(t).tlsConfig(t, "intruder")
	for name, conf := range map[string]*tls.Config{"plain": nil, "other CA": other} {
		m, err := newMuxListener("127.0.0.1:0", conf, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := m.dial(l.node.RaftAddr(), connRPC, time.Second)
		if err == nil {
			// The server drops it during or right after the handshake.
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = conn.Write([]byte(`{"op":"apply"}` + "\n"))
			var b [1]byte
			if n, rerr := conn.Read(b[:]); rerr == nil && n > 0 {
				t.Fatalf("%s peer got a reply from a TLS raft port", name)
			}
			conn.Close()
		}
		m.close()
	}
	if _, err := LoadTLS("/nonexistent.crt", "/nonexistent.key", "/nonexistent.ca"); err == nil {
		t.Fatal("LoadTLS with missing files succeeded")
	}
}

func TestGossipKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	c := newCluster(t, clusterOpts{n: 3, expect: 3, key: key})
	c.leader()
	waitFor(t, "all alive in gossip", 10*time.Second, func() bool {
		alive := 0
		for _, m := range c.nodes[0].node.Members() {
			if m.Status == MemberAlive && m.Voter {
				alive++
			}
		}
		return alive == 3
	})
	// A director with another key (or none) cannot join the pool.
	for name, k := range map[string][]byte{"wrong key": []byte("fedcba9876543210"), "no key": nil} {
		cfg := c.nodes[0].cfg
		cfg.NodeName, cfg.DataDir, cfg.RaftPort, cfg.GossipPort, cfg.GossipKey, cfg.BootstrapExpect, cfg.Join = "x", t.TempDir(), 0, 0, k, 0, nil
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.gossip.join([]string{c.nodes[0].node.GossipAddr()}); err == nil {
			t.Errorf("%s: gossip join succeeded", name)
		}
		n.Close()
		for _, m := range c.nodes[0].node.Members() {
			if m.Name == "x" && m.Status == MemberAlive {
				t.Errorf("%s: intruder is alive in the pool", name)
			}
		}
	}
	// Suspect/dead detection: stop d3 and watch its state change.
	c.nodes[2].node.gossip.crash() // no graceful leave: looks like a crash
	sawSuspect := false
	waitFor(t, "d3 seen dead", 15*time.Second, func() bool {
		for _, m := range c.nodes[1].node.Members() {
			sawSuspect = sawSuspect || (m.Name == "d3" && m.Status == MemberSuspect)
		}
		for _, m := range c.nodes[0].node.Members() {
			if m.Name == "d3" {
				return m.Status == MemberDead
			}
		}
		return false
	})
	t.Logf("d3 shown suspect before dead: %v", sawSuspect)
}
