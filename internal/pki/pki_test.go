package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIssue: a director's certificate names it and may serve; an
// operator's names no director and may only be a client; both verify
// against the CA and not beyond it.
func TestIssue(t *testing.T) {
	ca, err := NewCA("test CA", 10)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tests := []struct {
		name   string
		req    CertRequest
		dns    []string
		usages []x509.ExtKeyUsage
	}{
		{"director", CertRequest{Name: "d1"}, []string{"d1"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{"director with extra names", CertRequest{Name: "d2", DNS: []string{"d2.example.org"}}, []string{"d2", "d2.example.org"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{"operator", CertRequest{Name: "alice", Client: true}, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp, kp, err := ca.Issue(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			c := parse(t, cp)
			if !slices.Equal(c.DNSNames, tc.dns) || !slices.Equal(c.ExtKeyUsage, tc.usages) || c.Subject.CommonName != tc.req.Name {
				t.Fatalf("names %v usages %v CN %q", c.DNSNames, c.ExtKeyUsage, c.Subject.CommonName)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: tc.usages}); err != nil {
				t.Fatalf("does not verify against its CA: %v", err)
			}
			if c.NotAfter.After(ca.Cert.NotAfter) {
				t.Fatalf("outlives its CA: %v > %v", c.NotAfter, ca.Cert.NotAfter)
			}
			if b, _ := pem.Decode(kp); b == nil || b.Type != "EC PRIVATE KEY" {
				t.Fatalf("key PEM %q", kp)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{"d1": true, "lb-1.dc2": true, "a": true, "": false, "d 1": false, "-d1": false, "d1.": false,
		"../etc": false, string(make([]byte, 64)): false} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

// TestWriteAndLoad: keys are written with their mode and never over an
// existing file; a CA loads back only with its own key.
func TestWriteAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca, err := NewCA("test CA", 1)
	if err != nil {
		t.Fatal(err)
	}
	key, err := MarshalKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kf, cf := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CAFile)
	if err := WriteFile(kf, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(cf, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(kf); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode().Perm())
	}
	if err := WriteFile(kf, []byte("x"), 0o600); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite = %v, want ErrExists", err)
	}
	got, err := LoadCA(cf, kf)
	if err != nil || !got.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA = %v", err)
	}
	other, _ := NewCA("other", 1)
	okey, _ := MarshalKey(other.Key)
	of := filepath.Join(dir, "other-key.pem")
	if err := WriteFile(of, okey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(cf, of); err == nil {
		t.Fatal("a CA loaded with another CA's key")
	}
	if _, err := NewCA("x", 0); err == nil {
		t.Fatal("a CA valid for no day")
	}
	expired, _, err := ca.Issue(CertRequest{Name: "old", NotAfter: time.Now().Add(-time.Minute)})
	if err != nil || !parse(t, expired).NotAfter.Before(time.Now()) {
		t.Fatalf("expired certificate: %v", err)
	}
}
