package config

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// acceptedKeywords returns, per docs/keywords.md section, every keyword
// the parser accepts there.
func acceptedKeywords() map[string][]string {
	out := map[string][]string{
		"the top level":   keysOf(topTable),
		"global_defs":     keysOf(globalTable),
		"vrrp_script":     keysOf(scriptTable),
		"vrrp_instance":   keysOf(instanceTable),
		"vrrp_sync_group": syncGroupKeywords(),
		"vrrp_track_file": {"file", "weight", "init_file"},
		"virtual_server":  keysOf(vsTable),
		"real_server":     keysOf(rsTable),
		"url":             urlKeywords,
		"SSL":             {"ca", "certificate", "key", "password"},
	}
	seen := map[string]bool{}
	for _, kws := range checkerAllowedByKind {
		for _, k := range kws {
			if !seen[k] {
				seen[k] = true
				out["checker"] = append(out["checker"], k)
			}
		}
	}
	for k, v := range out {
		v = append([]string(nil), v...)
		sort.Strings(v)
		out[k] = v
	}
	return out
}

// docStatus reads docs/keywords.md: section -> keyword -> status.
func docStatus(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile("../docs/keywords.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([^`]+)` \\| ([a-z ]+) \\|")
	out := map[string]map[string]string{}
	sec := ""
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(l, "## "); ok {
			sec = s
			out[sec] = map[string]string{}
			continue
		}
		if m := row.FindStringSubmatch(l); m != nil && sec != "" {
			out[sec][m[1]] = strings.TrimSpace(m[2])
		}
	}
	return out
}

var docStatuses = map[string]bool{"implemented": true, "differently": true, "ignored": true, "hakeep": true, "not accepted": true}

// TestKeywordsDocComplete: every keyword the parser accepts is in
// docs/keywords.md with a status, "ignored" exactly when notImplemented
// says so, and "not accepted" only for keywords the parser refuses.
func TestKeywordsDocComplete(t *testing.T) {
	doc := docStatus(t)
	for sec, kws := range acceptedKeywords() {
		d, ok := doc[sec]
		if !ok {
			t.Errorf("docs/keywords.md has no section '## %s'", sec)
			continue
		}
		accepted := map[string]bool{}
		for _, k := range kws {
			accepted[k] = true
			st, ok := d[k]
			switch {
			case !ok:
				t.Errorf("%s: %s is accepted by the parser but not in docs/keywords.md", sec, k)
			case st == "not accepted":
				t.Errorf("%s: %s is accepted by the parser but documented as not accepted", sec, k)
			case (st == "ignored") != notImplemented[sec][k]:
				t.Errorf("%s: %s is documented %q but notImplemented says %v", sec, k, st, notImplemented[sec][k])
			}
		}
		for k, st := range d {
			if !docStatuses[st] {
				t.Errorf("%s: %s: unknown status %q", sec, k, st)
			}
			if st != "not accepted" && !accepted[k] {
				t.Errorf("%s: %s is documented %q but the parser does not accept it", sec, k, st)
			}
		}
	}
	for sec, kws := range notImplemented {
		for k := range kws {
			if doc[sec][k] != "ignored" {
				t.Errorf("%s: %s is in notImplemented but documented %q", sec, k, doc[sec][k])
			}
		}
	}
}

// snippet places keyword line kw in a minimal configuration for block and
// returns it with the line number of kw.
func snippet(block, kw string) (string, int) {
	line := kw + " 1"
	switch block {
	case "the top level":
		return line + "\n", 1
	case "global_defs":
		return "global_defs {\n" + line + "\n}\n", 2
	case "SSL":
		return "global_defs {\nSSL {\n" + line + "\n}\n}\n", 3
	case "vrrp_instance":
		return "vrrp_instance VI_1 {\n" + line + "\ninterface eth0\nvirtual_router_id 1\n}\n", 2
	case "vrrp_sync_group":
		return "vrrp_sync_group G {\n" + line + "\ngroup {\nVI_1\n}\n}\n", 2
	case "vrrp_track_file":
		return "vrrp_track_file F {\n" + line + "\nfile /tmp/f\n}\n", 2
	case "virtual_server":
		return "virtual_server 10.0.0.1 80 {\n" + line + "\n}\n", 2
	case "real_server":
		return "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\n" + line + "\n}\n}\n", 3
	case "checker":
		for _, kind := range []string{CheckTCP, CheckHTTP, CheckMisc, CheckFile} {
			for _, k := range checkerAllowed(kind) {
				if k == kw {
					return "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\n" + kind + " {\n" + line + "\n}\n}\n}\n", 4
				}
			}
		}
	case "url":
		return "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\nHTTP_GET {\nurl {\npath /\n" + line + "\n}\n}\n}\n}\n", 6
	}
	panic("no snippet for " + block + " " + kw)
}

// TestNotImplementedWarns: each keyword hakeepd accepts and ignores is a
// warning at its file:line, so -t exits 5 (warnings) instead of 0.
func TestNotImplementedWarns(t *testing.T) {
	for block, kws := range notImplemented {
		for kw := range kws {
			t.Run(block+"/"+kw, func(t *testing.T) {
				text, line := snippet(block, kw)
				_, diags := Parse("k.conf", []byte(text), Options{})
				want := fmt.Sprintf("k.conf:%d: %s: accepted, not implemented in hakeepd", line, kw)
				for _, d := range diags {
					if d.Severity == Warning && strings.Contains(d.String(), want) {
						return
					}
				}
				t.Errorf("no warning %q for\n%s\ngot %v", want, text, diags)
			})
		}
	}
}

// TestImplementedDoNotWarnNotImpl: the issue 14 keywords that are now
// implemented must not carry the "not implemented" warning.
func TestImplementedDoNotWarnNotImpl(t *testing.T) {
	text := `global_defs {
  notify_fifo /run/k.fifo
  notify_fifo_script /bin/true
  vrrp_notify_fifo /run/v.fifo root root
  lvs_notify_fifo /run/l.fifo
  startup_script /bin/true
  startup_script_timeout 5
  shutdown_script /bin/true
  vrrp_startup_delay 2.5
  lvs_timeouts tcp 900 tcpfin 120 udp 300
  lvs_sync_daemon eth0 VI_1 id 7 maxlen 1400 port 8848 ttl 2 group 224.0.0.81
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
}
`
	c, diags := Parse("k.conf", []byte(text), Options{})
	for _, d := range diags {
		if strings.Contains(d.Msg, "not implemented") || d.Severity == Error {
			t.Errorf("unexpected: %s", d)
		}
	}
	g := c.Global
	if g.NotifyFifo.Path != "/run/k.fifo" || g.NotifyFifo.Script != "/bin/true" {
		t.Errorf("notify_fifo = %+v", g.NotifyFifo)
	}
	if g.VRRPNotifyFifo.User != "root" || g.VRRPNotifyFifo.Group != "root" {
		t.Errorf("vrrp_notify_fifo = %+v", g.VRRPNotifyFifo)
	}
	if g.StartupScriptTimeout.Seconds() != 5 || g.ShutdownScriptTimeout.Seconds() != 10 {
		t.Errorf("script timeouts %v %v", g.StartupScriptTimeout, g.ShutdownScriptTimeout)
	}
	if g.VRRPStartupDelay.Seconds() != 2.5 {
		t.Errorf("vrrp_startup_delay %v", g.VRRPStartupDelay)
	}
	if lt := g.LVSTimeouts; lt.TCP.Seconds() != 900 || lt.TCPFin.Seconds() != 120 || lt.UDP.Seconds() != 300 {
		t.Errorf("lvs_timeouts %+v", lt)
	}
	s := g.LVSSyncDaemon
	if s.Interface != "eth0" || s.Instance != "VI_1" || s.SyncID != 7 || s.MaxLen != 1400 || s.Port != 8848 || s.TTL != 2 || s.Group.String() != "224.0.0.81" {
		t.Errorf("lvs_sync_daemon %+v", s)
	}
}

// TestOperatorKeywordErrors: strict where keepalived is lax.
func TestOperatorKeywordErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"lvs_timeouts tcp", "lvs_timeouts needs at least one"},
		{"lvs_timeouts tcp 1 bogus 2", "unknown option 'bogus'"},
		{"lvs_timeouts udp 99999999", "out of range"},
		{"lvs_sync_daemon eth0", "no vrrp_instance named"},
		{"lvs_sync_daemon eth0 VI_9", "no vrrp_instance named VI_9"},
		{"lvs_sync_daemon eth0 VI_1 group 10.0.0.1", "not a multicast address"},
		{"lvs_sync_daemon eth0 VI_1 ttl 0", "out of range"},
		{"notify_fifo_script /bin/true", "without its notify_fifo path"},
		{"vrrp_startup_delay x", "bad number"},
		{"startup_script_timeout 0", "out of range"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			text := "global_defs {\n" + tc.line + "\n}\nvrrp_instance VI_1 {\ninterface eth0\nvirtual_router_id 51\n}\n"
			_, diags := Parse("k.conf", []byte(text), Options{})
			if !diags.HasErrors() || !strings.Contains(fmt.Sprint(diags), tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, diags)
			}
		})
	}
}

// TestLVSSyncDaemonInterface: keepalived's deprecated per-instance form
// becomes lvs_sync_daemon IF INSTANCE; the global one wins over it.
func TestLVSSyncDaemonInterface(t *testing.T) {
	inst := "vrrp_instance VI_1 {\ninterface eth0\nvirtual_router_id 51\nlvs_sync_daemon_interface eth1\n}\n"
	for _, tc := range []struct {
		name, global, iface, warn string
		id                        int
	}{
		{"alone", "", "eth1", "deprecated", 51},
		{"global wins", "global_defs {\nlvs_sync_daemon eth2 VI_1 id 3\n}\n", "eth2", "lvs_sync_daemon_interface ignored", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, diags := Parse("k.conf", []byte(tc.global+inst), Options{})
			if diags.HasErrors() || !strings.Contains(fmt.Sprint(diags), tc.warn) {
				t.Fatalf("diags %v, want a warning %q", diags, tc.warn)
			}
			s := c.Global.LVSSyncDaemon
			if s == nil || s.Interface != tc.iface || s.Instance != "VI_1" || s.SyncID != tc.id {
				t.Fatalf("lvs_sync_daemon %+v", s)
			}
		})
	}
}

// TestVIPOptionsIgnoredWarn: the options of an address line that are not
// applied warn too (nodad is what hakeepd always does).
func TestVIPOptionsIgnoredWarn(t *testing.T) {
	for opt := range vipOptionsIgnored {
		t.Run(opt, func(t *testing.T) {
			line := "10.0.0.1/24 " + opt
			switch opt {
			case "peer":
				line = "10.0.0.1 peer 10.0.0.2/32"
			case "track_group", "preferred_lft":
				line += " 0"
			}
			text := "vrrp_instance VI_1 {\ninterface eth0\nvirtual_router_id 1\nvirtual_ipaddress {\n" + line + "\n}\n}\n"
			_, diags := Parse("k.conf", []byte(text), Options{})
			want := "k.conf:5: " + opt + ": accepted, not implemented in hakeepd"
			if !strings.Contains(fmt.Sprint(diags), want) {
				t.Fatalf("no %q in %v", want, diags)
			}
		})
	}
}
