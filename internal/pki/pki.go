// Package pki makes the cluster's certificates and gossip keys: a CA, a
// certificate per director (its node name in the DNS SAN: that name is the
// director's identity on the Raft port), operator client certificates for
// the TCP API, and memberlist keys. `hactl tls` and `hactl keygen` are
// thin wrappers; the tests use it through internal/testpki.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Default lifetimes (Consul's: a CA for 5 years, a certificate for 1).
const (
	DefaultCADays   = 5 * 365
	DefaultCertDays = 365
)

// File names inside a TLS directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	GossipKeyFile = "gossip.key"
)

// CertFile and KeyFile name a director's (or client's) files.
func CertFile(name string) string { return name + ".pem" }

// KeyFile is the private key file of name's certificate.
func KeyFile(name string) string { return name + "-key.pem" }

// CA is a certificate authority able to sign.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte // the certificate
}

// nameRE is what a node name may be to go into a DNS SAN: the config's
// node names are free text, a certificate's are not.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

// ValidName reports whether name can be a director's certificate name.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q cannot be a certificate name: use letters, digits, '.', '-' and '_' (at most 63, starting and ending with a letter or digit)", name)
	}
	return nil
}

func serial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("draw a serial number: %w", err)
	}
	return s, nil
}

// NewCA makes a self-signed CA valid for days days (from an hour ago, so a
// director whose clock is a little behind accepts it).
func NewCA(commonName string, days int) (*CA, error) {
	if days <= 0 {
		return nil, fmt.Errorf("CA validity must be at least a day, got %d", days)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	ski := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: commonName, Organization: []string{"hakeep"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 0, days),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage:     x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId: ski[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// CertRequest says what to put in a certificate.
type CertRequest struct {
	// Name is the director's node name (DNS SAN and CN), or the operator's
	// name for a client certificate (CN only).
	Name string
	// Client makes an operator certificate for the TCP API: client
	// authentication only and no DNS name, so it can never pass for a
	// director on the Raft port.
	Client bool
	// DNS and IPs are extra SANs, for hactl reaching api_listen by address.
	DNS  []string
	IPs  []net.IP
	Days int
	// NotAfter, when set, overrides Days (tests make expired certificates).
	NotAfter time.Time
}

// Issue signs a certificate for req and returns it and its key as PEM.
func (ca *CA) Issue(req CertRequest) (certPEM, keyPEM []byte, err error) {
	if err := ValidName(req.Name); err != nil {
		return nil, nil, err
	}
	if req.Days <= 0 && req.NotAfter.IsZero() {
		req.Days = DefaultCertDays
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", req.Name, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notAfter := now.AddDate(0, 0, req.Days)
	if !req.NotAfter.IsZero() {
		notAfter = req.NotAfter
	}
	if notAfter.After(ca.Cert.NotAfter) {
		// A certificate cannot outlive its CA's validity usefully.
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: req.Name, Organization: []string{"hakeep"}},
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		AuthorityKeyId: ca.Cert.SubjectKeyId,
		IPAddresses:    req.IPs,
	}
	if req.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = req.DNS
	} else {
		// A director both serves and dials the Raft port.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = append([]string{req.Name}, req.DNS...)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", req.Name, err)
	}
	keyPEM, err = MarshalKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", req.Name, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// MarshalKey encodes a private key as PEM.
func MarshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// LoadCA reads a CA certificate and key (as `hactl tls ca create` writes
// them).
func LoadCA(certFile, keyFile string) (*CA, error) {
	cpem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	kpem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	cb, _ := pem.Decode(cpem)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read CA certificate %s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate %s: %w", certFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certFile)
	}
	kb, _ := pem.Decode(kpem)
	if kb == nil {
		return nil, fmt.Errorf("read CA key %s: no PEM key", keyFile)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA key %s (want an EC key as hactl tls ca create writes): %w", keyFile, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA key %s does not belong to certificate %s", keyFile, certFile)
	}
	return &CA{Cert: cert, Key: key, PEM: cpem}, nil
}

// NewGossipKey returns a random 32-byte memberlist key, base64 encoded
// (what gossip_key and `hactl keygen` use).
func NewGossipKey() (string, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", fmt.Errorf("generate gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k[:]), nil
}

// ErrExists is returned instead of overwriting a key or certificate.
var ErrExists = errors.New("file exists (remove it first: hakeep never overwrites keys)")

// WriteFile creates path with mode, refusing to replace an existing file,
// so a second `hactl tls ca create` cannot silently orphan every
// certificate of the first.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write %s: %w", path, ErrExists)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The umask may have taken bits away; set exactly what was asked.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
