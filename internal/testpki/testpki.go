// Package testpki gives tests a throwaway cluster PKI in t.TempDir(): a
// CA, a director certificate per node and a gossip key, written as the
// files a cluster { } block names (through internal/pki, the code hactl
// uses), and the block lines that name them.
package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hakeep/internal/pki"
)

// CA is a test certificate authority; its files live in Dir.
type CA struct {
	*pki.CA
	Dir    string
	CAFile string

	mu  sync.Mutex
	key string // the gossip key file, made on first use
}

// New makes a CA in a new temporary directory.
func New(t testing.TB) *CA {
	t.Helper()
	ca, err := pki.NewCA("hakeep test CA", 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &CA{CA: ca, Dir: dir, CAFile: filepath.Join(dir, pki.CAFile)}
	if err := os.WriteFile(c.CAFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// Files are one certificate's paths.
type Files struct {
	Cert, Key, CA string
}

// Issue writes a director certificate for name (DNS SANs name and
// localhost, IP SAN 127.0.0.1) and returns its files.
func (c *CA) Issue(t testing.TB, name string) Files {
	t.Helper()
	return c.IssueReq(t, pki.CertRequest{Name: name, DNS: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
}

// IssueReq writes the certificate req asks for, under a fresh file name
// (issuing twice for one name, as a rotation does, keeps both).
func (c *CA) IssueReq(t testing.TB, req pki.CertRequest) Files {
	t.Helper()
	cert, key, err := c.CA.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(c.Dir, req.Name+"-")
	if err != nil {
		t.Fatal(err)
	}
	f := Files{Cert: filepath.Join(dir, pki.CertFile(req.Name)), Key: filepath.Join(dir, pki.KeyFile(req.Name)), CA: c.CAFile}
	if err := os.WriteFile(f.Cert, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Pool is a pool holding the CA.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// ClientTLS is a client configuration presenting files' certificate and
// trusting the CA (hostname checks as the standard library does them).
func (c *CA) ClientTLS(t testing.TB, f Files) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: c.Pool(), MinVersion: tls.VersionTLS12}
}

// GossipKeyFile returns the path of a gossip key file shared by every
// node of this CA's cluster (made on first use).
func (c *CA) GossipKeyFile(t testing.TB) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == "" {
		k, err := pki.NewGossipKey()
		if err != nil {
			t.Fatal(err)
		}
		c.key = filepath.Join(c.Dir, pki.GossipKeyFile)
		if err := os.WriteFile(c.key, []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c.key
}

// ClusterLines returns the lines of a cluster { } block that make node a
// secure member of this CA's cluster: tls_cert, tls_key, tls_ca and
// gossip_key (each indented, ending in a newline).
func (c *CA) ClusterLines(t testing.TB, node string) string {
	t.Helper()
	f := c.Issue(t, node)
	return fmt.Sprintf("    tls_cert %s\n    tls_key %s\n    tls_ca %s\n    gossip_key %s\n", f.Cert, f.Key, f.CA, c.GossipKeyFile(t))
}

// Expired writes a certificate for name that expired a minute ago.
func (c *CA) Expired(t testing.TB, name string) Files {
	t.Helper()
	return c.IssueReq(t, pki.CertRequest{Name: name, NotAfter: time.Now().Add(-time.Minute)})
}
