package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/api/apitest"
	"hakeep/config"
	"hakeep/consensus"
	"hakeep/internal/pki"
	"hakeep/internal/testpki"
)

// TestTCPAPIWithMutualTLS: hactl --api HOST:PORT with an operator's client
// certificate against the daemon's TCP API.
func TestTCPAPIWithMutualTLS(t *testing.T) {
	ca := testpki.New(t)
	srv := ca.Issue(t, "d7") // a director's certificate serves the API (IP SAN 127.0.0.1)
	op := ca.IssueReq(t, pki.CertRequest{Name: "operator", Client: true})
	pair, err := tls.LoadX509KeyPair(srv.Cert, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	s := api.NewServer(&apitest.Fake{Node: "d7", Raft: api.RaftStatus{State: "Follower", Leader: "d1"}}, nil)
	defer s.Close()
	addr, err := s.ServeTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := hactl("--api", addr.String(), "--tls-cert", op.Cert, "--tls-key", op.Key, "--tls-ca", op.CA, "status")
	if code != 0 || !strings.Contains(out, "node:    d7") {
		t.Fatalf("status over mTLS = %d %q %q", code, out, errOut)
	}
	// A CA file without a certificate: refused, exit 1.
	otherCA := filepath.Join(t.TempDir(), "other.crt")
	if err := os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE"}), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := hactl("--api", addr.String(), "--tls-cert", op.Cert, "--tls-key", op.Key, "--tls-ca", otherCA, "status"); code != 1 {
		t.Fatalf("bad CA file: exit %d, want 1", code)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSInit: one command makes what a closed cluster needs, with the
// right permissions, and the lines it prints make a cluster block that
// hakeepd -t accepts and that starts.
func TestTLSInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	code, out, errOut := hactl("tls", "init", "--dir", dir, "d1", "d2", "d3")
	if code != 0 {
		t.Fatalf("tls init = %d %s %s", code, out, errOut)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"ca.pem", 0o644}, {"ca-key.pem", 0o600}, {"d1.pem", 0o644}, {"d1-key.pem", 0o600}, {"d3-key.pem", 0o600}, {"gossip.key", 0o600}} {
		if m := mode(t, filepath.Join(dir, f.name)); m != f.mode {
			t.Errorf("%s mode %v, want %v", f.name, m, f.mode)
		}
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("directory mode %v, want 0700", m)
	}
	d2 := readCert(t, filepath.Join(dir, "d2.pem"))
	if !slices.Equal(d2.DNSNames, []string{"d2"}) || d2.Subject.CommonName != "d2" || !slices.Contains(d2.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("d2's certificate: names %v, CN %q, usage %v", d2.DNSNames, d2.Subject.CommonName, d2.ExtKeyUsage)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "gossip.key"))
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key))); err != nil || len(k) != 32 {
		t.Errorf("gossip.key = %q", key)
	}
	// The printed lines, pasted into a block, make a valid, closed director.
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "    ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 8 {
		t.Fatalf("printed lines:\n%s", out)
	}
	text := "cluster {\n node_name d2\n bind_addr 127.0.0.1\n data_dir " + t.TempDir() + "\n" + strings.Join(lines, "\n") + "\n}\n"
	cfg, diags := config.Parse("d2.conf", []byte(text), config.Options{ConfigID: "d2", NoInclude: true})
	if len(diags) != 0 {
		t.Fatalf("block with the printed lines:\n%s\n%s", text, diags)
	}
	cc, err := consensus.ConfigFromCluster(cfg.Cluster, "d2", nil)
	if err != nil {
		t.Fatal(err)
	}
	cc.RaftPort, cc.GossipPort = 0, 0
	n, err := consensus.New(cc)
	if err != nil {
		t.Fatalf("start with the files of tls init: %v", err)
	}
	defer n.Close()
	if s := n.Security(); s.Insecure || !slices.Equal(s.Identity.Names, []string{"d2"}) || s.GossipKeys != 1 {
		t.Fatalf("security = %+v", s)
	}
	// Nothing is overwritten: a second init would orphan every certificate.
	if code, _, errOut := hactl("tls", "init", "--dir", dir, "d1"); code != 1 || !strings.Contains(errOut, "never overwrites") {
		t.Fatalf("second init = %d %q", code, errOut)
	}
}

// TestTLSCommands: the single commands and their refusals.
func TestTLSCommands(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		{"cert before CA", []string{"tls", "cert", "create", "--dir", dir, "d1"}, 1, "hactl tls ca create --dir " + dir},
		{"ca create", []string{"tls", "ca", "create", "--dir", dir}, 0, "keep it off the directors"},
		{"ca again", []string{"tls", "ca", "create", "--dir", dir}, 1, "never overwrites"},
		{"director cert", []string{"tls", "cert", "create", "--dir", dir, "--ip", "10.0.0.11", "--dns", "d1.example.org", "d1"}, 0, "tls_cert " + filepath.Join(dir, "d1.pem")},
		{"operator cert", []string{"tls", "cert", "create", "--dir", dir, "--client", "alice"}, 0, "alice's client certificate"},
		{"bad name", []string{"tls", "cert", "create", "--dir", dir, "d 1"}, 1, "cannot be a certificate name"},
		{"bad ip", []string{"tls", "cert", "create", "--dir", dir, "--ip", "x", "d2"}, 2, `--ip "x" is not an IP address`},
		{"no name", []string{"tls", "cert", "create", "--dir", dir}, 2, "usage: hactl tls cert create"},
		{"keygen", []string{"keygen"}, 0, "="},
		{"keygen to file", []string{"keygen", "-o", filepath.Join(dir, "g.key")}, 0, "mode 0600"},
		{"init twice the same", []string{"tls", "init", "--dir", t.TempDir(), "d1", "d1"}, 2, "named twice"},
		{"unknown", []string{"tls", "frob"}, 2, `unknown command "tls frob"`},
		{"help", []string{"tls", "help"}, 0, "hactl keygen [-o FILE]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := hactl(tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("hactl %v = %d\nstdout: %s\nstderr: %s\nwant %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
			}
		})
	}
	d1 := readCert(t, filepath.Join(dir, "d1.pem"))
	if !slices.Equal(d1.DNSNames, []string{"d1", "d1.example.org"}) || len(d1.IPAddresses) != 1 || d1.NotAfter.Before(time.Now().AddDate(0, 11, 0)) {
		t.Errorf("d1: %v %v until %v", d1.DNSNames, d1.IPAddresses, d1.NotAfter)
	}
	alice := readCert(t, filepath.Join(dir, "alice.pem"))
	if len(alice.DNSNames) != 0 || !slices.Equal(alice.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("an operator's certificate must name no director: %v %v", alice.DNSNames, alice.ExtKeyUsage)
	}
	if m := mode(t, filepath.Join(dir, "g.key")); m != 0o600 {
		t.Errorf("keygen -o mode %v", m)
	}
	// Two keygen runs differ.
	_, a, _ := hactl("keygen")
	_, b, _ := hactl("keygen")
	if a == b || len(strings.TrimSpace(a)) != 44 {
		t.Errorf("keygen printed %q then %q", a, b)
	}
}

// TestStatusSecurity: hactl status says how the cluster is protected, and
// says an open one in capitals.
func TestStatusSecurity(t *testing.T) {
	tests := []struct {
		name string
		sec  *api.SecurityStatus
		want string
	}{
		{"closed", &api.SecurityStatus{TLS: true, Names: []string{"d1"}, CertNotAfter: time.Now().AddDate(1, 0, 0), CAs: 1, GossipKeys: 1},
			"security: mutual TLS as d1 (certificate valid until"},
		{"rotating", &api.SecurityStatus{TLS: true, Names: []string{"d1"}, CAs: 2, GossipKeys: 2}, "2 CAs trusted (rotation), gossip encrypted (2 keys: rotation)"},
		{"expiring", &api.SecurityStatus{TLS: true, Names: []string{"d1"}, CertNotAfter: time.Now().Add(48 * time.Hour), GossipKeys: 1}, "EXPIRES IN"},
		{"open", &api.SecurityStatus{Insecure: true}, "security: INSECURE (insecure_open_cluster): anyone who reaches this cluster's ports can command it; NO TLS on the Raft port, gossip NOT encrypted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "api.sock")
			s := api.NewServer(&apitest.Fake{Node: "d1", Security: tc.sec}, nil)
			if err := s.ServeUnix(sock); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			code, out, _ := hactl("--api", sock, "status")
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("status:\n%s\nwant %q", out, tc.want)
			}
		})
	}
}
