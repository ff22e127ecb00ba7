package config

import (
	"strings"
	"testing"
)

// metrics_listen: a valid HOST:PORT is kept as written; anything else is
// an error at its file:line and leaves the listener off.
func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		configID   string
		want       string // MetricsListen
		err        string // substring of the diagnostic, "" for none
	}{
		{"absent: off", "", "", "", ""},
		{"all IPv4", "metrics_listen 0.0.0.0:9650", "", "0.0.0.0:9650", ""},
		{"loopback IPv6", "metrics_listen [::1]:9650", "", "[::1]:9650", ""},
		{"empty host", "metrics_listen :9650", "", ":9650", ""},
		{"this director's line", "@lb1 metrics_listen 10.0.0.1:9650", "lb1", "10.0.0.1:9650", ""},
		{"another director's line", "@lb2 metrics_listen 10.0.0.2:9650", "lb1", "", ""},
		{"no port", "metrics_listen 0.0.0.0", "", "", "cfg:3: metrics_listen: want HOST:PORT"},
		{"port 0", "metrics_listen 127.0.0.1:0", "", "", "cfg:3: metrics_listen: port '0' is not 1-65535"},
		{"port too big", "metrics_listen 127.0.0.1:70000", "", "", "port '70000' is not 1-65535"},
		{"named port", "metrics_listen 127.0.0.1:http", "", "", "port 'http' is not 1-65535"},
		{"host name", "metrics_listen localhost:9650", "", "", "cfg:3: metrics_listen: host 'localhost' is not an IP address"},
		{"extra word", "metrics_listen 127.0.0.1:9650 tls", "", "", "got also 'tls'"},
		{"no value", "metrics_listen", "", "", "cfg:3: 'metrics_listen' is missing its value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "global_defs {\n router_id lb\n " + tc.line + "\n}\n"
			cfg, diags := Parse("cfg", []byte(text), Options{ConfigID: tc.configID})
			var msgs []string
			for _, d := range diags {
				msgs = append(msgs, d.String())
			}
			all := strings.Join(msgs, "\n")
			if tc.err == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected errors:\n%s", all)
				}
			} else if !diags.HasErrors() || !strings.Contains(all, tc.err) {
				t.Fatalf("diagnostics %q, want an error containing %q", all, tc.err)
			}
			if cfg.Global.MetricsListen != tc.want {
				t.Fatalf("MetricsListen = %q, want %q", cfg.Global.MetricsListen, tc.want)
			}
			// -t shows the listener, so an operator sees the port opened.
			if got := strings.Contains(cfg.Summary(), "metrics_listen "+tc.want+": plain HTTP"); got != (tc.want != "") {
				t.Fatalf("summary mentions metrics_listen: %v, want %v:\n%s", got, tc.want != "", cfg.Summary())
			}
		})
	}
}
