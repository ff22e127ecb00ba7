package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestConfigTestWarnsNotImplemented: a keyword hakeepd accepts but does
// not act on makes -t exit 5 with its file:line, never 0 (issue 14).
func TestConfigTestWarnsNotImplemented(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"global_defs", "global_defs {\n vrrp_iptables\n}\n" + testInst, "FILE:2: vrrp_iptables: accepted, not implemented in hakeepd"},
		{"vrrp_instance", strings.Replace(testInst, " interface eth0\n", " interface eth0\n strict_mode\n", 1),
			"FILE:3: strict_mode: accepted, not implemented in hakeepd"},
		{"top level", "net_namespace blue\n" + testInst, "FILE:1: net_namespace: accepted, not implemented in hakeepd"},
		{"virtual_server", testInst + "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n persistence_engine sip\n}\n",
			"FILE:12: persistence_engine: accepted, not implemented in hakeepd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeConf(t, tc.text)
			var out, errOut bytes.Buffer
			code := run([]string{"-i", "d1", "-f", f, "-t"}, &out, &errOut)
			want := strings.ReplaceAll(tc.want, "FILE", f) + "\n"
			if code != exitWarnings || errOut.String() != want {
				t.Errorf("exit %d, stderr:\n%swant exit %d, stderr:\n%s", code, errOut.String(), exitWarnings, want)
			}
		})
	}
}

// TestConfigTestCleanOperatorKeywords: what hakeepd now does (issue 14)
// no longer warns: -t exits 0.
func TestConfigTestCleanOperatorKeywords(t *testing.T) {
	text := `global_defs {
 notify_fifo /run/hakeep.fifo
 notify_fifo_script /bin/cat
 vrrp_notify_fifo /run/hakeep-vrrp.fifo root
 lvs_notify_fifo /run/hakeep-lvs.fifo
 startup_script /bin/true
 startup_script_timeout 5
 shutdown_script /bin/true
 shutdown_script_timeout 5
 vrrp_startup_delay 1.5
 lvs_timeouts tcp 900 tcpfin 120 udp 300
 lvs_sync_daemon eth0 V id 1 port 8848 ttl 1 group 224.0.0.81
}
` + testInst
	f := writeConf(t, text)
	var out, errOut bytes.Buffer
	if code := run([]string{"-i", "d1", "-f", f, "-t"}, &out, &errOut); code != exitOK || errOut.Len() != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
}
