package config

import (
	"strings"
	"testing"
)

// TestClusterSecurity: a cluster block that strangers could command is an
// error naming the block's file:line and the command that fixes it;
// insecure_open_cluster, written by name, is the only way to run open.
func TestClusterSecurity(t *testing.T) {
	const head = "cluster {\n node_name d1\n bind_addr 10.0.0.11\n"
	const tlsLines = " tls_cert /etc/hakeep/tls/d1.pem\n tls_key /etc/hakeep/tls/d1-key.pem\n tls_ca /etc/hakeep/tls/ca.pem\n"
	const keyLine = " gossip_key /etc/hakeep/tls/gossip.key\n"
	tests := []struct {
		name string
		body string
		// want is every diagnostic ("error t.conf:N: ..." prefixes and a
		// fragment of the message); none means clean.
		want []string
		open bool
	}{
		{"README block, nothing set", head + " join { 10.0.0.12 10.0.0.13 }\n bootstrap_expect 3\n}\n",
			[]string{"error t.conf:1: cluster: no tls_cert/tls_key/tls_ca and no gossip_key", "ports 7301 and 7401", "`hactl tls init d1 OTHER-DIRECTORS...`", "insecure_open_cluster"}, false},
		{"ports named as configured", head + " raft_port 8301\n gossip_port 8401\n}\n",
			[]string{"error t.conf:1:", "ports 8301 and 8401"}, false},
		{"no TLS", head + keyLine + "}\n",
			[]string{"error t.conf:1: cluster: no tls_cert/tls_key/tls_ca: anyone who reaches the Raft port 7301", "`hactl tls cert create d1`"}, false},
		{"no gossip key", head + tlsLines + "}\n",
			[]string{"error t.conf:1: cluster: no gossip_key", "`hactl keygen -o /etc/hakeep/gossip.key`"}, false},
		{"half TLS", head + " tls_cert /x.pem\n tls_key /x-key.pem\n" + keyLine + "}\n",
			[]string{"error t.conf:1: cluster: tls_cert, tls_key and tls_ca go together"}, false},
		{"secure", head + tlsLines + keyLine + "}\n", nil, false},
		{"secure, inline key", head + tlsLines + " gossip_key MDEyMzQ1Njc4OWFiY2RlZg==\n}\n", nil, false},
		{"lab opt-out", head + " insecure_open_cluster\n}\n", nil, true},
		{"opt-out with TLS only", head + tlsLines + " insecure_open_cluster\n}\n", nil, true},
		{"opt-out that does nothing", head + tlsLines + keyLine + " insecure_open_cluster\n}\n",
			[]string{"warning t.conf:1: cluster: insecure_open_cluster does nothing here"}, true},
		{"opt-out with a value", head + " insecure_open_cluster off\n}\n",
			[]string{"error t.conf:4: insecure_open_cluster takes no value", "error t.conf:1: cluster: no tls_cert"}, false},
		{"opt-out misspelt", head + " insecure_open_clustr\n}\n",
			[]string{"warning t.conf:4: unknown keyword 'insecure_open_clustr' in cluster (did you mean 'insecure_open_cluster'?)", "error t.conf:1: cluster: no tls_cert"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tc.body), Options{NoInclude: true})
			var got []string
			for _, d := range diags {
				got = append(got, d.Severity.String()+" "+d.String())
			}
			all := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("diagnostics lack %q:\n%s", w, all)
				}
			}
			if len(tc.want) == 0 && len(diags) != 0 {
				t.Errorf("want no diagnostics, got:\n%s", all)
			}
			if cfg.Cluster == nil || cfg.Cluster.InsecureOpen != tc.open {
				t.Errorf("cluster = %+v, want InsecureOpen %v", cfg.Cluster, tc.open)
			}
		})
	}
}
