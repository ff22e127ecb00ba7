package consensus

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Credentials are a director's cluster identity: its certificate and key,
// and the CA that signs every director's certificate. A director's
// identity is the DNS names of a certificate that may serve (server
// authentication): its node_name, as `hactl tls cert create NAME` writes
// it. An operator's client certificate (client authentication only) names
// no director, so it can reach the TCP API but never act as a director on
// the Raft port.
//
// Reload swaps the files for new connections while open ones keep theirs,
// so a certificate (or a CA bundle) is rotated by SIGHUP without downtime.
type Credentials struct {
	mu     sync.Mutex // serialises Reload
	cur    atomic.Pointer[credSet]
	expect string // the node name the certificate must carry ("" before bind)
}

type credSet struct {
	certFile, keyFile, caFile string
	cert                      tls.Certificate
	leaf                      *x509.Certificate
	pool                      *x509.CertPool
	server                    *tls.Config // the Raft port's side of mutual TLS
	caSHA                     []string    // sha256 of each CA certificate, for status and logs
}

// LoadCredentials reads a director's certificate, key and the cluster CA
// (PEM; the CA file may hold several certificates, to rotate the CA).
func LoadCredentials(certFile, keyFile, caFile string) (*Credentials, error) {
	s, err := loadCredSet(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	c := &Credentials{}
	c.cur.Store(s)
	return c, nil
}

func loadCredSet(certFile, keyFile, caFile string) (*credSet, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load cluster TLS key pair %s, %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse cluster certificate %s: %w", certFile, err)
	}
	cert.Leaf = leaf
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read cluster TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	var sums []string
	for rest := caPEM; ; {
		var der []byte
		der, rest = nextPEMCert(rest)
		if der == nil {
			break
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse cluster TLS CA %s: %w", caFile, err)
		}
		pool.AddCert(c)
		sum := sha256.Sum256(der)
		sums = append(sums, hex.EncodeToString(sum[:]))
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("read cluster TLS CA %s: no PEM certificate found", caFile)
	}
	s := &credSet{certFile: certFile, keyFile: keyFile, caFile: caFile, cert: cert, leaf: leaf, pool: pool, caSHA: sums}
	// Our own certificate must pass the check our peers make, else every
	// peer would refuse us with nothing in our own log to say why.
	if err := s.verify([]*x509.Certificate{leaf}, x509.ExtKeyUsageServerAuth); err != nil {
		return nil, fmt.Errorf("cluster certificate %s does not verify against tls_ca %s: %w", certFile, caFile, err)
	}
	if err := s.verify([]*x509.Certificate{leaf}, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, fmt.Errorf("cluster certificate %s cannot be used to dial peers: %w", certFile, err)
	}
	s.server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	return s, nil
}

// verify checks a peer's chain against the CA for usage.
func (s *credSet) verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errors.New("no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: s.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: time.Now()})
	return err
}

// directorNames are the director names a verified certificate proves: its
// DNS names, when it may serve (a director's certificate does; an
// operator's client certificate does not).
func directorNames(c *x509.Certificate) []string {
	if c == nil {
		return nil
	}
	serves := len(c.ExtKeyUsage) == 0
	for _, u := range c.ExtKeyUsage {
		serves = serves || u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny
	}
	if !serves {
		return nil
	}
	return slices.Clone(c.DNSNames)
}

// bind fixes the node name this director's certificate must carry, now and
// after every reload.
func (c *Credentials) bind(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.cur.Load().names(name); err != nil {
		return err
	}
	c.expect = name
	return nil
}

func (s *credSet) names(name string) error {
	if !slices.Contains(directorNames(s.leaf), name) {
		return fmt.Errorf("cluster certificate %s names %s, not this director's node_name %q: its peers would refuse it (make one with `hactl tls cert create %s`)",
			s.certFile, describeNames(s.leaf), name, name)
	}
	return nil
}

func describeNames(c *x509.Certificate) string {
	n := directorNames(c)
	if len(n) == 0 {
		return "no director (it is not a server certificate with DNS names)"
	}
	return "[" + strings.Join(n, " ") + "]"
}

// Reload re-reads the files (possibly new paths). The new set is checked
// completely, including the node name, before it replaces the old one; on
// error nothing changes.
func (c *Credentials) Reload(certFile, keyFile, caFile string) error {
	s, err := loadCredSet(certFile, keyFile, caFile)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expect != "" {
		if err := s.names(c.expect); err != nil {
			return err
		}
	}
	c.cur.Store(s)
	return nil
}

// serverConfig is the Raft port's TLS: the current certificate, and peers
// must present one from the current CA.
func (c *Credentials) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.cur.Load().server, nil
		},
	}
}

// clientConfig dials a peer's Raft port. Peers are dialled by address, so
// the usual host name check is replaced by the one that matters here: the
// server's certificate is from the cluster CA and names a director.
func (c *Credentials) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified in VerifyConnection, which runs regardless.
		InsecureSkipVerify: true, //nolint:gosec // chain and name are checked below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			s := c.cur.Load()
			return &s.cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			s := c.cur.Load()
			if err := s.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth); err != nil {
				return fmt.Errorf("peer certificate: %w", err)
			}
			if len(directorNames(cs.PeerCertificates[0])) == 0 {
				return fmt.Errorf("peer certificate %q names no director", cs.PeerCertificates[0].Subject.CommonName)
			}
			return nil
		},
	}
}

// APIServerTLS is the TCP API's (api_listen) TLS: this director's current
// certificate, and clients must present one from the cluster CA (an
// operator's `hactl tls cert create --client NAME`, or a director's). It
// follows Reload like the Raft port.
func (c *Credentials) APIServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// api.Server.ServeTLS insists on these two; the per-connection
		// config below is what is used.
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  c.cur.Load().pool,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.cur.Load().server, nil
		},
	}
}

// CredentialInfo describes the current credentials.
type CredentialInfo struct {
	Names      []string  `json:"names"`
	Subject    string    `json:"subject"`
	NotAfter   time.Time `json:"not_after"`
	CertFile   string    `json:"cert_file"`
	CASHA256   []string  `json:"ca_sha256"`
	CertSHA256 string    `json:"cert_sha256"`
}

// Info returns what the current certificate says.
func (c *Credentials) Info() CredentialInfo {
	s := c.cur.Load()
	sum := sha256.Sum256(s.leaf.Raw)
	return CredentialInfo{Names: directorNames(s.leaf), Subject: s.leaf.Subject.CommonName, NotAfter: s.leaf.NotAfter,
		CertFile: s.certFile, CASHA256: slices.Clone(s.caSHA), CertSHA256: hex.EncodeToString(sum[:])}
}

// LoadTLS builds a mutual-TLS configuration from PEM files (kept for the
// TCP API; the cluster itself uses Credentials, which can be reloaded).
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	s, err := loadCredSet(certFile, keyFile, caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		RootCAs:      s.pool,
		ClientCAs:    s.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// nextPEMCert returns the next CERTIFICATE block's bytes (nil at the end)
// and what follows it; other blocks are skipped.
func nextPEMCert(data []byte) ([]byte, []byte) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, nil
		}
		if b.Type == "CERTIFICATE" {
			return b.Bytes, data
		}
	}
}
