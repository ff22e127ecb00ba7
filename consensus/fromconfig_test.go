package consensus

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hakeep/config"
	"hakeep/internal/testpki"
)

func TestConfigFromCluster(t *testing.T) {
	ca := testpki.New(t)
	fs := ca.Issue(t, "d1")
	cert, key, caf := fs.Cert, fs.Key, fs.CA
	keyFile := filepath.Join(t.TempDir(), "gossip.key")
	k32 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if err := os.WriteFile(keyFile, []byte(k32+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := `cluster {
    node_name d1
    bind_addr 127.0.0.1
    join { 10.0.0.12:7401 10.0.0.13 }
    bootstrap_expect 3
    data_dir /tmp/x
    tls_cert ` + cert + `
    tls_key ` + key + `
    tls_ca ` + caf + `
    gossip_key ` + keyFile + `
    health_mode quorum
}
`
	cfgFile, diags := config.Parse("c.conf", []byte(text), config.Options{NoInclude: true})
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	got, err := ConfigFromCluster(cfgFile.Cluster, "host", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeName != "d1" || got.RaftPort != 7301 || got.GossipPort != 7401 || got.TLS == nil || len(got.GossipKeys) != 1 || len(got.GossipKeys[0]) != 32 ||
		got.HealthMode != HealthQuorum || got.BootstrapExpect != 3 || !slices.Equal(got.Join, []string{"10.0.0.12:7401", "10.0.0.13:7401"}) {
		t.Fatalf("config = %+v", got)
	}
	tests := []struct {
		name string
		c    config.Cluster
		want string
	}{
		{"half tls", config.Cluster{NodeName: "a", TLSCert: cert}, "go together"},
		{"bad key", config.Cluster{NodeName: "a", GossipKey: "bm90IDE2"}, "want 16, 24 or 32"},
		{"no name", config.Cluster{}, "no node_name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := ""
			if _, err := ConfigFromCluster(&tc.c, name, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
