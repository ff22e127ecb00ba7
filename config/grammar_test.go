package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const vsHead = " protocol TCP\n lb_algo rr\n lb_kind NAT\n "

const minimalInst = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n"

// diagStrings renders diagnostics as "severity file:line: msg".
func diagStrings(d Diagnostics) []string {
	var out []string
	for _, x := range d {
		out = append(out, x.Severity.String()+" "+x.String())
	}
	return out
}

// diagnosticCases: each grammar feature and validation rule, with the
// exact file:line and message it reports (also run through keepalived -t).
var diagnosticCases = []struct {
	name string
	text string
	want []string // every diagnostic, in order
}{
	{"clean", minimalInst, nil},
	{"lvs_flush_on_stop takes VS or nothing", "global_defs {\n lvs_flush_on_stop ALL\n}\n",
		[]string{"warning t.conf:2: lvs_flush_on_stop: unknown type 'ALL' (want nothing: flush everything, or VS: our virtual servers); ignored"}},
	{"misspelled keyword", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n priorty 100\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
		[]string{"warning t.conf:4: unknown keyword 'priorty' in vrrp_instance (did you mean 'priority'?)"}},
	{"misspelled top-level block is skipped", "vrrp_instanse V {\n priority 1\n}\n",
		[]string{"warning t.conf:1: unknown keyword 'vrrp_instanse' in the top level (did you mean 'vrrp_instance'?); its block is skipped"}},
	{"unknown without suggestion", "global_defs {\n frobnicate 1\n}\n",
		[]string{"warning t.conf:2: unknown keyword 'frobnicate' in global_defs"}},
	{"unbalanced close", minimalInst + "}\n", []string{"error t.conf:8: unbalanced '}': no block is open"}},
	{"unclosed block", "global_defs {\n router_id x\n",
		[]string{"error t.conf:1: global_defs: block opened here is not closed: missing '}' at end of configuration (is the file cut off?)"}},
	// A push cut off inside a nested block: each open block is named, innermost first.
	{"unclosed nested blocks", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n",
		[]string{"error t.conf:4: virtual_ipaddress: " + msgUnclosed, "error t.conf:1: vrrp_instance V: " + msgUnclosed}},
	{"unclosed dropped block is reported once", "{\n", []string{"error t.conf:1: '{' without a keyword before it"}},
	{"brace without keyword", "{\n}\n", []string{"error t.conf:1: '{' without a keyword before it"}},
	{"missing value", "global_defs {\n router_id\n}\n", []string{"error t.conf:2: 'router_id' is missing its value"}},
	{"bad number", strings.Replace(minimalInst, "virtual_router_id 1", "virtual_router_id 1x", 1),
		[]string{"error t.conf:3: virtual_router_id: bad number '1x'", "error t.conf:1: vrrp_instance V: virtual_router_id is missing"}},
	{"vrid range", strings.Replace(minimalInst, "virtual_router_id 1", "virtual_router_id 256", 1),
		[]string{"error t.conf:3: virtual_router_id: 256 is out of range [1, 255]", "error t.conf:1: vrrp_instance V: virtual_router_id is missing"}},
	{"priority 0", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n priority 0\n", 1),
		[]string{"error t.conf:3: priority: 0 is out of range [1, 255]"}},
	{"priority 255 ok", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n priority 255\n", 1), nil},
	{"advert_int v2 rounded", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n advert_int 1.5\n", 1),
		[]string{"warning t.conf:1: vrrp_instance V: VRRPv2 advert_int 1.5s must be whole seconds; rounded to 2s (as keepalived does)"}},
	{"advert_int v3 centiseconds", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n version 3\n advert_int 0.05\n", 1), nil},
	{"advert_int v3 too long", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n version 3\n advert_int 41\n", 1),
		[]string{"error t.conf:1: vrrp_instance V: VRRPv3 advert_int 41s is out of range [0.01, 40.95]"}},
	{"auth_pass truncated", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n authentication {\n  auth_type PASS\n  auth_pass 123456789\n }\n", 1),
		[]string{"warning t.conf:5: auth_pass is longer than 8 characters; truncated to '12345678' (as keepalived does)"}},
	{"auth_type bad", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n authentication {\n  auth_type MD5\n }\n", 1),
		[]string{"error t.conf:4: auth_type: want PASS or AH, got 'MD5'", "error t.conf:3: authentication: auth_type is missing"}},
	{"script weight range", "vrrp_script s {\n script /bin/true\n weight 254\n}\n",
		[]string{"error t.conf:3: weight: 254 is out of range [-253, 253]"}},
	{"track_script missing", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n track_script {\n  chk_ngnix\n }\n", 1) + "vrrp_script chk_nginx {\n script /bin/true\n}\n",
		[]string{"error t.conf:4: vrrp_instance V: track_script chk_ngnix: no vrrp_script of that name (did you mean 'chk_nginx'?)"}},
	{"sync group member missing", minimalInst + "vrrp_sync_group G {\n group {\n  V\n  W\n }\n}\n",
		[]string{"error t.conf:8: vrrp_sync_group G: member W: no vrrp_instance of that name"}},
	{"duplicate vrid", minimalInst + strings.Replace(minimalInst, "vrrp_instance V", "vrrp_instance W", 1),
		[]string{"error t.conf:8: vrrp_instance W: virtual_router_id 1 is already used on eth0 (IPv4) by vrrp_instance V at t.conf:1"}},
	{"same vrid other family is fine", minimalInst + strings.Replace(strings.Replace(minimalInst, "vrrp_instance V", "vrrp_instance W", 1), "10.0.0.1", "fd00::1", 1), nil},
	{"duplicate instance name", minimalInst + strings.Replace(minimalInst, "virtual_router_id 1", "virtual_router_id 2", 1),
		[]string{"error t.conf:8: vrrp_instance V is already defined at t.conf:1"}},
	{"bad VIP", strings.Replace(minimalInst, "10.0.0.1", "10.0.0.300", 1),
		[]string{"error t.conf:5: virtual_ipaddress: bad address '10.0.0.300'", "warning t.conf:1: vrrp_instance V has no virtual_ipaddress; at least one is sensible"}},
	{"bad VIP scope", strings.Replace(minimalInst, "10.0.0.1", "10.0.0.1/24 scope galaxy", 1),
		[]string{"error t.conf:5: virtual_ipaddress: unknown scope 'galaxy' (want global, site, link, host or nowhere)"}},
	{"VIP option typo", strings.Replace(minimalInst, "10.0.0.1", "10.0.0.1/24 lable eth0:1", 1),
		[]string{"warning t.conf:5: virtual_ipaddress: unknown option 'lable' after the address (did you mean 'label'?)",
			"warning t.conf:5: virtual_ipaddress: unknown option 'eth0:1' after the address"}},
	{"mixed families", strings.Replace(minimalInst, "  10.0.0.1\n", "  10.0.0.1\n  fd00::1\n", 1),
		[]string{"warning t.conf:6: vrrp_instance V: fd00::1/128 is not IPv4 like the instance's first address; ignored (as keepalived does; put it in virtual_ipaddress_excluded or its own instance)"}},
	{"vs group missing", "virtual_server group G {\n" + vsHead + "}\n", []string{"error t.conf:1: virtual_server group G: no virtual_server_group of that name"}},
	{"lb_algo typo", "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_kind DR\n lb_algo wrrr\n}\n", []string{"error t.conf:4: lb_algo: unknown scheduler 'wrrr' (did you mean 'wrr'?)"}},
	{"checker keyword in wrong checker", "virtual_server 10.0.0.1 80 {\n" + vsHead + "real_server 10.0.0.2 80 {\n  TCP_CHECK {\n   misc_path /bin/true\n  }\n }\n}\n",
		[]string{"warning t.conf:7: unknown keyword 'misc_path' in TCP_CHECK"}},
	{"status_code range", "virtual_server 10.0.0.1 80 {\n" + vsHead + "real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /\n    status_code 700\n   }\n  }\n }\n}\n",
		[]string{"error t.conf:9: status_code: 700 is out of range [100, 599]"}},
	{"unterminated quote", "vrrp_script s {\n script \"/bin/true\n}\n", []string{"error t.conf:2: unterminated quoted string"}},
	{"nopreempt with MASTER", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n state MASTER\n priority 100\n nopreempt\n", 1),
		[]string{"warning t.conf:1: vrrp_instance V: nopreempt does not work with state MASTER; ignored (as keepalived does): use state BACKUP on every node"}},
	{"cluster without bind_addr", "cluster {\n node_name d1\n insecure_open_cluster\n}\n", []string{"error t.conf:1: cluster: bind_addr is required"}},
	{"cluster bad key", "cluster {\n bind_addr 10.0.0.1\n gossip_key notbase64!\n insecure_open_cluster\n}\n",
		[]string{"error t.conf:3: gossip_key: want a file path or a base64 key of 16, 24 or 32 bytes"}},
	{"cluster typo", "cluster {\n bind_addr 10.0.0.1\n bootstrap_expec 3\n insecure_open_cluster\n}\n",
		[]string{"warning t.conf:3: unknown keyword 'bootstrap_expec' in cluster (did you mean 'bootstrap_expect'?)"}},
	{"include refused", "include other.conf\n", []string{"error t.conf:1: include other.conf: includes are not allowed here"}},
	{"preempt_delay with nopreempt", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n nopreempt\n preempt_delay 10\n", 1),
		[]string{"warning t.conf:1: vrrp_instance V: preempt_delay does nothing with nopreempt; ignored (as keepalived does)"}},
	{"tracking own interface", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n track_interface {\n  eth0\n }\n", 1),
		[]string{"warning t.conf:4: vrrp_instance V: track_interface eth0 is the instance's own interface, which is always tracked; ignored"}},
	{"weighted tracking in a sync group", "vrrp_script s {\n script /bin/true\n weight 5\n}\n" + strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n track_script {\n  s\n }\n", 1) +
		strings.Replace(strings.Replace(minimalInst, "vrrp_instance V", "vrrp_instance W", 1), "virtual_router_id 1", "virtual_router_id 2", 1) + "vrrp_sync_group G {\n group {\n  V\n  W\n }\n}\n",
		[]string{"warning t.conf:8: vrrp_instance V: track_script s with weight 5 ignored because the instance is in vrrp_sync_group G (as keepalived does; set sync_group_tracking_weight in the group to keep it)"}},
	{"rule without priority", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n virtual_rules {\n  from 10.0.0.1 table 5\n }\n", 1),
		[]string{"warning t.conf:4: rule: no priority (preference) given; using 16384, which is probably not what you want"}},
	{"lower-case lb_kind, upper-case lb_algo", "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo RR\n lb_kind dr\n}\n",
		[]string{"warning t.conf:3: lb_algo: 'RR' taken as rr; keepalived only knows lower case and would use wlc",
			"warning t.conf:4: lb_kind: 'dr' taken as DR; keepalived only knows upper case and would use NAT"}},
	{"real server port differs in DR", "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.2 8080 {\n }\n}\n",
		[]string{"warning t.conf:5: real_server 10.0.0.2:8080: port differs from the virtual server's port 80 with lb_kind DR; using 80 (as keepalived does)"}},
	{"duplicate real server", "virtual_server 10.0.0.1 80 {\n" + vsHead + "real_server 10.0.0.2 80 {\n }\n real_server 10.0.0.2 80 {\n }\n}\n",
		[]string{"warning t.conf:7: real_server 10.0.0.2:80 is already defined at t.conf:5 in this virtual_server; this one is ignored (as keepalived does)"}},
	{"HTTP_GET without url", "virtual_server 10.0.0.1 80 {\n" + vsHead + "real_server 10.0.0.2 80 {\n  HTTP_GET {\n   connect_timeout 3\n  }\n }\n}\n",
		[]string{"warning t.conf:6: HTTP_GET without a url block; the checker is ignored"}},
	{"misspelt checker", "virtual_server 10.0.0.1 80 {\n" + vsHead + "real_server 10.0.0.2 80 {\n  HTTP_GETT {\n   url {\n    path /\n   }\n  }\n }\n}\n",
		[]string{"warning t.conf:6: unknown keyword 'HTTP_GETT' in real_server (did you mean 'HTTP_GET'?); its block is skipped"}},
	{"state in lower case", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n state master\n", 1),
		[]string{"error t.conf:3: state: want MASTER or BACKUP, got 'master'"}},
	{"real server weight negative", "virtual_server 10.0.0.1 80 {\n" + vsHead + "real_server 10.0.0.2 80 {\n  weight -1\n }\n}\n",
		[]string{"error t.conf:6: weight: -1 is out of range [0, 65535]"}},
	{"script interval 0", "vrrp_script s {\n script /bin/true\n interval 0\n}\n",
		[]string{"error t.conf:3: interval: 0 is out of range [1, 4294]"}},
	{"script interval fraction", "vrrp_script s {\n script /bin/true\n interval 2.5\n}\n",
		[]string{"error t.conf:3: interval: bad number '2.5'"}},
	{"PASS without auth_pass", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n authentication {\n  auth_type PASS\n }\n", 1),
		[]string{"error t.conf:3: authentication: auth_type PASS needs an auth_pass"}},
	{"duplicate virtual server", "virtual_server 10.0.0.1 80 {\n" + vsHead + "}\nvirtual_server 10.0.0.1 80 {\n" + vsHead + "}\n",
		[]string{"error t.conf:6: virtual_server 10.0.0.1:80/TCP is already defined at t.conf:1"}},
	{"advert_int v2 below a second", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n advert_int 0.5\n", 1),
		[]string{"warning t.conf:1: vrrp_instance V: VRRPv2 advert_int 0.5s must be whole seconds; rounded to 1s (as keepalived does)"}},
	{"missing brace swallows the next block", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n}\n" + strings.Replace(minimalInst, "vrrp_instance V", "vrrp_instance W", 1),
		[]string{"error t.conf:1: vrrp_instance V: " + msgUnclosed,
			"error t.conf:7: 'vrrp_instance' can not be inside vrrp_instance: is a '}' missing before this line?"}},
	{"CentOS default global_defs", "global_defs {\n vrrp_skip_check_adv_addr\n vrrp_strict\n vrrp_garp_interval 0\n vrrp_gna_interval 0\n}\n" +
		strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n state MASTER\n priority 100\n authentication {\n  auth_type PASS\n  auth_pass 1111\n }\n", 1),
		[]string{"warning t.conf:4: vrrp_garp_interval 0: keepalived warns that 0 is out of range; it is the default anyway, so the line can go",
			"warning t.conf:5: vrrp_gna_interval 0: keepalived warns that 0 is out of range; it is the default anyway, so the line can go",
			"warning t.conf:7: vrrp_instance V: with vrrp_strict, state MASTER goes with priority 255 (address owner) and only with it; starting as BACKUP (as keepalived does)",
			"warning t.conf:11: vrrp_instance V: vrrp_strict does not allow authentication; ignored (as keepalived does)"}},
	{"nopreempt with priority 255", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n nopreempt\n priority 255\n", 1),
		[]string{"warning t.conf:1: vrrp_instance V: nopreempt does not work with priority 255 (the address owner always preempts); ignored (as keepalived does)"}},
	{"MASTER without priority is the address owner", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n state MASTER\n nopreempt\n", 1),
		[]string{"warning t.conf:1: vrrp_instance V: nopreempt does not work with priority 255 (the address owner always preempts); ignored (as keepalived does)"}},
	{"rule with pref", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n virtual_rules {\n  from 10.0.0.1 table 5 pref 202\n }\n", 1),
		[]string{"warning t.conf:4: rule: unknown option 'pref'; the rule is ignored (as keepalived does) (did you mean 'preference'?)"}},
	{"authentication with VRRPv3", strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n version 3\n authentication {\n  auth_type PASS\n  auth_pass abc\n }\n", 1),
		[]string{"warning t.conf:4: vrrp_instance V: authentication is not part of VRRPv3; ignored (as keepalived does)"}},
	{"bad SEQ", "~SEQ(i, 1, x) foo\n", []string{"error t.conf:1: ~SEQ: bad number 'x'"}},
}

func TestBlockName(t *testing.T) {
	long := strings.Repeat("x", 70)
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"global_defs"}, "global_defs"},
		{[]string{"vrrp_instance", "http"}, "vrrp_instance http"},
		{[]string{"virtual_server", "group", "G"}, "virtual_server group G"},
		{[]string{"a", "b", "c", "d"}, "a b c d"},
		{[]string{"a", "b", "c", "d", "e"}, "a b c d ..."},
		{[]string{"vrrp_instance", long}, "vrrp_instance " + long[:46] + " ..."},
		// 59 bytes then a 3-byte character: cut before it, not inside.
		{[]string{strings.Repeat("y", 59) + "世界"}, strings.Repeat("y", 59) + " ..."},
	}
	for _, tc := range tests {
		if got := blockName(&node{words: tc.words}); got != tc.want {
			t.Errorf("blockName(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestDiagnostics(t *testing.T) {
	for _, tc := range diagnosticCases {
		t.Run(tc.name, func(t *testing.T) {
			_, d := Parse("t.conf", []byte(tc.text), Options{NoInclude: true})
			got := diagStrings(d)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// grammarCases: each lexical feature yields the right model (also run
// through keepalived -t, which must find them clean too).
var grammarCases = []struct {
	name  string
	opts  Options
	text  string
	check func(t *testing.T, c *Config)
}{
	{"lvs_flush_on_stop bare flushes everything", Options{}, "global_defs {\n lvs_flush_on_stop\n}\n", func(t *testing.T, c *Config) {
		if !c.Global.LVSFlushOnStop || c.Global.LVSFlushOnStopMode != "ALL" {
			t.Errorf("lvs_flush_on_stop: %v %q", c.Global.LVSFlushOnStop, c.Global.LVSFlushOnStopMode)
		}
	}},
	{"lvs_flush_on_stop VS", Options{}, "global_defs {\n lvs_flush_on_stop VS\n}\n", func(t *testing.T, c *Config) {
		if !c.Global.LVSFlushOnStop || c.Global.LVSFlushOnStopMode != "VS" {
			t.Errorf("lvs_flush_on_stop VS: %v %q", c.Global.LVSFlushOnStop, c.Global.LVSFlushOnStopMode)
		}
	}},
	{"comments both kinds and trailing", Options{}, "! top\n# also\nglobal_defs { # c\n router_id a#b ! trailing\n}\n", func(t *testing.T, c *Config) {
		if c.Global.RouterID != "a#b" {
			t.Errorf("router_id %q", c.Global.RouterID)
		}
	}},
	{"quoted strings with escapes", Options{}, "vrrp_script s {\n script \"/bin/echo \\\"a b\\\" \\\\ # not a comment\"\n}\n", func(t *testing.T, c *Config) {
		if got := c.Script("s").Script; got != `/bin/echo "a b" \ # not a comment` {
			t.Errorf("script %q", got)
		}
	}},
	{"one-line blocks and brace glued to word", Options{}, "global_defs { notification_email { a@b c@d } router_id x }\nvirtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 10.0.0.2 80{\n  weight 3\n }\n}\n", func(t *testing.T, c *Config) {
		if strings.Join(c.Global.NotificationEmail, ",") != "a@b,c@d" || c.Global.RouterID != "x" {
			t.Errorf("global %+v", c.Global)
		}
		if c.VirtualServers[0].RealServers[0].Weight != 3 || c.VirtualServers[0].LBAlgo != "rr" {
			t.Errorf("weight %d", c.VirtualServers[0].RealServers[0].Weight)
		}
	}},
	{"brace on next line", Options{}, "vrrp_script s\n{\n script /bin/true\n}\n", func(t *testing.T, c *Config) {
		if c.Script("s") == nil {
			t.Error("script not read")
		}
	}},
	{"non-ASCII separates words like keepalived", Options{}, "global_defs {\n router_id node1 #单个id\n smtp_connect_timeout 20 超时\n}\n", func(t *testing.T, c *Config) {
		if c.Global.RouterID != "node1" || c.Global.SMTPConnectTimeout != 20*time.Second {
			t.Errorf("global %+v", c.Global)
		}
	}},
	{"@id lines", Options{ConfigID: "d2"}, "global_defs {\n @d1 router_id one\n @d2 router_id two\n @^d2 smtp_helo_name notd2\n @^d1 notification_email_from x@y\n}\n", func(t *testing.T, c *Config) {
		if c.Global.RouterID != "two" || c.Global.SMTPHeloName != "" || c.Global.NotificationEmailFrom != "x@y" {
			t.Errorf("global %+v", c.Global)
		}
	}},
	{"parameters", Options{}, "$IF=eth1\n$VIP=10.1.1.1/24\n$MULTI=10.1.1.2 \\\n 10.1.1.3\n" +
		"vrrp_instance V {\n interface $IF\n virtual_router_id 9\n virtual_ipaddress {\n  ${VIP} dev ${IF}\n  $MULTI\n }\n notify_master \"/x.sh $1\"\n}\n", func(t *testing.T, c *Config) {
		i := c.Instance("V")
		if i.Interface != "eth1" || len(i.VIPs) != 3 || i.VIPs[0].Prefix.String() != "10.1.1.1/24" || i.VIPs[0].Dev != "eth1" || i.VIPs[2].Prefix.String() != "10.1.1.3/32" {
			t.Errorf("instance %+v", i)
		}
		if i.Notify.Master != "/x.sh $1" {
			t.Errorf("unknown $1 must stay: %q", i.Notify.Master)
		}
		if i.VIPs[2].Pos.Line != 10 {
			t.Errorf("multi-line parameter position: %v", i.VIPs[2].Pos)
		}
	}},
	{"~SEQ", Options{}, "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  ~SEQ(i, 3, 2, 7) 10.0.0.$i\n }\n}\n", func(t *testing.T, c *Config) {
		var got []string
		for _, v := range c.Instance("V").VIPs {
			got = append(got, v.Prefix.Addr().String())
		}
		if strings.Join(got, ",") != "10.0.0.3,10.0.0.5,10.0.0.7" {
			t.Errorf("VIPs %v", got)
		}
	}},
	{"VIP options", Options{}, strings.Replace(minimalInst, "10.0.0.1", "10.0.0.1/24 brd 10.0.0.255 dev eth1 label eth1:0 scope link nodad noprefixroute", 1), func(t *testing.T, c *Config) {
		v := c.Instance("V").VIPs[0]
		if v.Brd.String() != "10.0.0.255" || v.Dev != "eth1" || v.Label != "eth1:0" || v.Scope != "link" || !v.NoDAD || !v.NoPrefixRoute {
			t.Errorf("VIP %+v", v)
		}
	}},
	{"track weights", Options{}, "vrrp_script s {\n script /bin/true\n}\nvrrp_script s2 {\n script /bin/true\n weight -4\n}\n" +
		strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n track_interface {\n  eth1 weight -10\n  eth2\n }\n track_script {\n  s weight 20 reverse\n  s2\n }\n", 1), func(t *testing.T, c *Config) {
		i := c.Instance("V")
		if i.TrackInterfaces[0].Weight != -10 || i.TrackInterfaces[1].Name != "eth2" {
			t.Errorf("track_interface %+v %+v", i.TrackInterfaces[0], i.TrackInterfaces[1])
		}
		if *i.TrackScripts[0].Weight != 20 || !i.TrackScripts[0].Reverse || i.TrackScripts[1].Weight != nil {
			t.Errorf("track_script %+v %+v", i.TrackScripts[0], i.TrackScripts[1])
		}
	}},
	{"global inheritance", Options{}, "global_defs {\n vrrp_version 3\n vrrp_strict\n vrrp_garp_master_delay 2\n}\n" +
		strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n garp_master_repeat 7\n", 1), func(t *testing.T, c *Config) {
		i := c.Instance("V")
		if i.Version != 3 || i.Accept || i.GARP.MasterDelay != 2*time.Second || i.GARP.MasterRepeat != 7 || i.GARP.LowerPrioDelay != 0 || i.GARP.LowerPrioRepeat != 0 || c.Global.GARP.LowerPrioDelay != 2*time.Second {
			t.Errorf("instance %+v", i)
		}
	}},
	{"checker inheritance and defaults", Options{}, "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n delay_loop 7\n connect_timeout 4\n real_server 10.0.0.2 8080 {\n  retry 2\n  TCP_CHECK {\n  }\n  MISC_CHECK {\n   misc_path \"/bin/check a\"\n   misc_dynamic\n   misc_timeout 9\n  }\n }\n}\n", func(t *testing.T, c *Config) {
		tc, mc := c.VirtualServers[0].RealServers[0].Checkers[0], c.VirtualServers[0].RealServers[0].Checkers[1]
		if tc.ConnectAddr(c.VirtualServers[0].RealServers[0]).String() != "10.0.0.2:8080" || tc.ConnectTimeout != 4*time.Second || tc.Retry != 2 || tc.DelayBeforeRetry != time.Second || tc.DelayLoop != 7*time.Second {
			t.Errorf("TCP_CHECK %+v", tc)
		}
		if mc.OtherFields().MiscPath != "/bin/check a" || !mc.OtherFields().MiscDynamic || mc.OtherFields().MiscTimeout != 9*time.Second {
			t.Errorf("MISC_CHECK %+v", mc)
		}
	}},
	{"virtualhost inheritance", Options{}, "virtual_server 10.0.0.1 80 {\n" + vsHead + "virtualhost vs.example\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /a\n   }\n   url {\n    path /b\n    virtualhost url.example\n   }\n  }\n }\n real_server 10.0.0.3 80 {\n  virtualhost rs.example\n  HTTP_GET {\n   url {\n    path /c\n   }\n  }\n }\n}\n", func(t *testing.T, c *Config) {
		r := c.VirtualServers[0].RealServers
		u0, u1, u2 := r[0].Checkers[0].HTTPFields().URLs[0], r[0].Checkers[0].HTTPFields().URLs[1], r[1].Checkers[0].HTTPFields().URLs[0]
		if u0.Virtualhost != "vs.example" || u1.Virtualhost != "url.example" || u2.Virtualhost != "rs.example" {
			t.Errorf("virtualhosts %q %q %q", u0.Virtualhost, u1.Virtualhost, u2.Virtualhost)
		}
	}},
	{"every checker kind", Options{}, "virtual_server fwmark 5 {\n lb_algo sh\n lb_kind TUN type gue port 6080\n real_server 10.0.0.2 {\n" +
		"  DNS_CHECK {\n   connect_port 53\n   type A\n   name example.org\n  }\n  UDP_CHECK {\n   payload 0a0b\n   require_reply 0c\n  }\n  PING_CHECK {\n  }\n" +
		"  SMTP_CHECK {\n   helo_name me\n   host {\n    connect_ip 10.0.0.9\n    connect_port 2525\n   }\n  }\n  SSL_GET {\n   url {\n    path /h\n    status_code 200-299 301\n   }\n   enable_sni\n  }\n }\n}\n", func(t *testing.T, c *Config) {
		v := c.VirtualServers[0]
		if v.FWMark != 5 || v.LBKind != "TUN" || v.TunType != "gue" || v.TunPort != 6080 {
			t.Errorf("vs %+v", v)
		}
		ch := v.RealServers[0].Checkers
		if len(ch) != 5 || ch[0].OtherFields().DNSType != "A" || ch[0].OtherFields().DNSName != "example.org" || string(ch[1].OtherFields().Payload) != "\x0a\x0b" || string(ch[1].OtherFields().ReplyData) != "\x0c" ||
			ch[2].Kind != CheckPing || ch[3].OtherFields().HeloName != "me" || len(ch[3].OtherFields().Hosts) != 1 || ch[3].OtherFields().Hosts[0].ConnectPort != 2525 ||
			ch[4].HTTPFields().URLs[0].StatusCodes[1] != (StatusRange{301, 301}) || !ch[4].HTTPFields().EnableSNI || !ch[4].HTTPFields().URLs[0].StatusCodes[0].Contains(204) {
			t.Errorf("checkers %+v", ch)
		}
	}},
	{"virtual_server_group", Options{}, "virtual_server_group G {\n 10.0.0.1-10 80\n}\nvirtual_server_group GF {\n fwmark 7\n}\nvirtual_server_group G6 {\n fd00::1-1f 443\n}\n" +
		"virtual_server group G {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.0.0.20 80 {\n }\n}\nvirtual_server group G6 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server fd00::20 443 {\n }\n}\n", func(t *testing.T, c *Config) {
		m := c.VSGroup("G").Members
		m6 := c.VSGroup("G6").Members
		if len(m) != 1 || m[0].LastAddr.String() != "10.0.0.10" || m6[0].LastAddr.String() != "fd00::1f" || c.VSGroup("GF").Members[0].FWMark != 7 {
			t.Errorf("members %+v %+v", m[0], m6[0])
		}
	}},
	{"static blocks", Options{}, "static_ipaddress {\n 192.168.1.1/24 dev eth0 scope global\n}\nstatic_routes {\n 10.0.0.0/8 via 192.168.1.254 dev eth0\n default via fd00::1 dev eth0\n}\nstatic_rules {\n from 10.0.0.0/8 table 100 priority 5\n}\n" + minimalInst, func(t *testing.T, c *Config) {
		if len(c.StaticAddresses) != 1 || c.StaticRoutes[0].Via.String() != "192.168.1.254" || c.StaticRoutes[1].Dst.String() != "::/0" ||
			c.StaticRules[0].Table != "100" || c.StaticRules[0].Priority != 5 {
			t.Errorf("static %+v %+v %+v", c.StaticAddresses, c.StaticRoutes, c.StaticRules)
		}
	}},
	{"cluster block", Options{}, "cluster {\n node_name d1\n bind_addr 10.0.0.11\n raft_port 7301\n gossip_port 7401\n join { 10.0.0.12:7401 10.0.0.13 }\n bootstrap_expect 3\n data_dir /var/lib/hakeep\n lease 0.8\n insecure_open_cluster\n}\n" + minimalInst, func(t *testing.T, c *Config) {
		cl := c.Cluster
		if cl.NodeName != "d1" || cl.BindAddr.String() != "10.0.0.11" || strings.Join(cl.Join, ",") != "10.0.0.12:7401,10.0.0.13:7401" ||
			cl.BootstrapExpect != 3 || cl.Lease != 800*time.Millisecond || cl.Renew != 200*time.Millisecond || !c.Instance("V").Fenced(c) {
			t.Errorf("cluster %+v", cl)
		}
	}},
	{"sync group, unicast, routes, rules, vmac, notify", Options{}, `global_defs {
  script_user root
  enable_script_security
}
vrrp_script chk {
  script "/bin/true"
  interval 2
  timeout 3
  weight 10
  rise 2
  fall 3
  user root
}
vrrp_track_file tf {
  file /run/hakeep.tf
  weight -5
}
vrrp_instance A {
  state BACKUP
  interface eth0
  virtual_router_id 10
  priority 120
  advert_int 2
  preempt_delay 30
  unicast_src_ip 10.0.0.11
  unicast_peer {
    10.0.0.12
    10.0.0.13
  }
  virtual_ipaddress {
    10.0.0.100/24 dev eth0
  }
  virtual_ipaddress_excluded {
    10.0.1.100/24 dev eth0
  }
  virtual_routes {
    10.9.0.0/16 via 10.0.0.1 dev eth0
    src 10.0.0.100 to 10.8.0.0/16 via 10.0.0.1 dev eth0
  }
  virtual_rules {
    from 10.0.0.100/32 table 100 priority 100
  }
  track_interface {
    eth1 weight 5
  }
  track_file {
    tf weight 2
  }
  use_vmac vrrp.10
  vmac_xmit_base
  garp_master_delay 1
  garp_master_refresh 60
  notify_master "/bin/echo master"
  notify_backup /bin/echo
  notify_fault "/bin/echo fault"
  notify_stop "/bin/echo stop"
  notify /bin/echo
  smtp_alert
}
vrrp_instance B {
  interface eth0
  virtual_router_id 11
  virtual_ipaddress {
    10.0.0.101/24 dev eth0
  }
}
vrrp_sync_group G {
  group {
    A
    B
  }
  notify_master "/bin/echo group"
  sync_group_tracking_weight
}
`, func(t *testing.T, c *Config) {
		a := c.Instance("A")
		if !a.Preempt || a.PreemptDelay != 30*time.Second || a.AdvertInt != 2*time.Second || a.UnicastSrcIP.String() != "10.0.0.11" || len(a.UnicastPeers) != 2 ||
			a.UnicastPeers[1].Addr.String() != "10.0.0.13" || len(a.ExcludedVIPs) != 1 || len(a.Routes) != 2 || a.Routes[1].Src.String() != "10.0.0.100" ||
			a.Routes[1].Dst.String() != "10.8.0.0/16" || a.Rules[0].Table != "100" || a.TrackInterfaces[0].Weight != 5 || *a.TrackFiles[0].Weight != 2 ||
			!a.UseVMAC || a.VMACName != "vrrp.10" || !a.VMACXmitBase || a.GARP.MasterDelay != time.Second || a.GARP.MasterRefresh != time.Minute ||
			a.Notify.Backup != "/bin/echo" || a.Notify.Any != "/bin/echo" || !a.SMTPAlert || a.SyncGroup != "G" {
			t.Errorf("A = %+v", a)
		}
		s := c.Script("chk")
		if s.Timeout != 3*time.Second || s.User != "root" || s.Rise != 2 || s.Fall != 3 || s.Weight != 10 {
			t.Errorf("chk = %+v", s)
		}
		if g := c.SyncGroups[0]; strings.Join(g.Group, ",") != "A,B" || g.Notify.Master != "/bin/echo group" || c.Instance("B").SyncGroup != "G" {
			t.Errorf("G = %+v", g)
		}
		if c.TrackFileDefs[0].File != "/run/hakeep.tf" || c.TrackFileDefs[0].Weight != -5 {
			t.Errorf("track file = %+v", c.TrackFileDefs[0])
		}
	}},
	{"virtual routes and rules", Options{}, strings.Replace(minimalInst, " interface eth0\n", ` interface eth0
 virtual_routes {
  10.9.0.0/16 via 10.0.0.1 dev eth0
  src 10.0.0.100 to 10.8.0.0/16 via 10.0.0.1 dev eth0
  blackhole 10.7.0.0/16
  10.6.0.0/16 dev eth1 table 100 metric 5 scope link
  default via 10.0.0.254 dev eth0 table 200
  10.5.0.0/16 dev eth1 no_track
 }
 virtual_rules {
  from 10.0.0.100/32 table 100 priority 100
  to 10.5.0.0/16 lookup 200 priority 200
  from all fwmark 0x10/0xff table 100 priority 300
  from 10.0.0.0/24 iif eth1 table 7 priority 400
 }
`, 1), func(t *testing.T, c *Config) {
		i := c.Instance("V")
		if len(i.Routes) != 6 || i.Routes[2].Type != "blackhole" || i.Routes[3].Scope != "link" || i.Routes[3].Metric != 5 || i.Routes[4].Dst.String() != "0.0.0.0/0" ||
			!i.Routes[5].NoTrack || len(i.Rules) != 4 || i.Rules[1].To.String() != "10.5.0.0/16" || i.Rules[2].FWMark != "0x10/0xff" || i.Rules[3].IIF != "eth1" {
			t.Errorf("routes %+v rules %+v", i.Routes, i.Rules)
		}
	}},
	{"IPv6 instance and virtual server, sorry server, quorum", Options{}, `vrrp_instance V6 {
  interface eth0
  virtual_router_id 60
  version 3
  advert_int 0.5
  virtual_ipaddress {
    fd00:1::100/64 dev eth0
  }
}
virtual_server fd00:1::100 443 {
  delay_loop 10
  lb_algo mh
  lb_kind NAT
  protocol TCP
  persistence_timeout 300
  quorum 2
  hysteresis 1
  quorum_up "/bin/echo up"
  quorum_down "/bin/echo down"
  alpha
  omega
  ha_suspend
  inhibit_on_failure
  sorry_server fd00:1::200 443
  mh-port
  real_server fd00:1::21 8443 {
    weight 3
    inhibit_on_failure
    SSL_GET {
      url {
        path /healthz
        digest 9b3a0c85a887a256d6939da88aabd8cd
      }
      connect_timeout 2
    }
  }
}
`, func(t *testing.T, c *Config) {
		i := c.Instance("V6")
		if i.Family != 6 || i.Version != 3 || i.AdvertInt != 500*time.Millisecond {
			t.Errorf("V6 = %+v", i)
		}
		v := c.VirtualServers[0]
		if v.Addr.String() != "[fd00:1::100]:443" || v.LBAlgo != "mh" || v.PersistenceTimeout != 5*time.Minute || v.Quorum != 2 || v.Hysteresis != 1 ||
			!v.Alpha || !v.Omega || !v.HASuspend || v.SorryServer.Addr.String() != "[fd00:1::200]:443" || strings.Join(v.SchedFlags, ",") != "mh-port" {
			t.Errorf("vs = %+v", v)
		}
		r := v.RealServers[0]
		if r.Addr.String() != "[fd00:1::21]:8443" || r.Weight != 3 || !r.InhibitOnFailure || r.Checkers[0].HTTPFields().URLs[0].Digest != "9b3a0c85a887a256d6939da88aabd8cd" ||
			r.Checkers[0].ConnectAddr(r).Port() != 8443 {
			t.Errorf("rs = %+v %+v", r, r.Checkers[0])
		}
	}},
	{"fence off", Options{}, "cluster {\n bind_addr 10.0.0.11\n insecure_open_cluster\n}\n" + strings.Replace(minimalInst, " interface eth0\n", " interface eth0\n fence off\n", 1), func(t *testing.T, c *Config) {
		if c.Instance("V").Fenced(c) {
			t.Error("fence off ignored")
		}
	}},
}

func TestGrammar(t *testing.T) {
	for _, tc := range grammarCases {
		t.Run(tc.name, func(t *testing.T) {
			c, d := Parse("t.conf", []byte(tc.text), tc.opts)
			if d.HasErrors() {
				t.Fatalf("errors:\n%s", d)
			}
			tc.check(t, c)
		})
	}
}

func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.conf", "global_defs {\n router_id r\n}\ninclude conf.d/*.conf\n")
	write("conf.d/b.conf", strings.Replace(minimalInst, "vrrp_instance V", "vrrp_instance B", 1))
	write("conf.d/a.conf", "include ../sub/x.inc\n"+strings.Replace(strings.Replace(minimalInst, "vrrp_instance V", "vrrp_instance A", 1), "router_id 1", "router_id 2", 1))
	write("sub/x.inc", "vrrp_script s {\n script /bin/true\n bogus 1\n}\n")
	c, d := Load(filepath.Join(dir, "main.conf"), Options{})
	if d.HasErrors() {
		t.Fatalf("errors: %s", d)
	}
	// Included files keep their own positions.
	if w := d.Warnings(); len(w) != 1 || w[0].Pos.File != filepath.Join(dir, "conf.d/../sub/x.inc") || w[0].Pos.Line != 3 {
		t.Errorf("warnings: %s", w)
	}
	if len(c.Instances) != 2 || c.Instances[0].Name != "A" || c.Instances[1].Name != "B" || c.Script("s") == nil {
		t.Errorf("instances %v, script %v", instanceNames(c), c.Script("s"))
	}
	if len(c.Files) != 4 {
		t.Errorf("files %v", c.Files)
	}

	// A cycle is an error at the include line, not a hang.
	write("cyc1.conf", "include cyc2.conf\n")
	write("cyc2.conf", "\ninclude cyc1.conf\n")
	_, d = Load(filepath.Join(dir, "cyc1.conf"), Options{})
	if got := diagStrings(d); len(got) != 1 || !strings.Contains(got[0], "cyc2.conf:2: include cycle") {
		t.Errorf("cycle: %q", got)
	}

	// Parse resolves includes against BaseDir.
	c, d = Parse("pushed.conf", []byte("include sub/x.inc\n"), Options{BaseDir: dir})
	if c.Script("s") == nil {
		t.Errorf("Parse with BaseDir: %s", d)
	}

	// A glob matching nothing is a warning (keepalived's behaviour).
	_, d = Parse("p.conf", []byte("include nothing/*.conf\n"), Options{BaseDir: dir})
	if got := diagStrings(d); len(got) != 1 || got[0] != "warning p.conf:1: include nothing/*.conf: no file matches" {
		t.Errorf("empty glob: %q", got)
	}

	// A glob that matches the including file skips it with a warning.
	write("globself/main.conf", "include *.conf\n")
	write("globself/other.conf", "global_defs {\n router_id o\n}\n")
	c, d = Load(filepath.Join(dir, "globself/main.conf"), Options{})
	if got := diagStrings(d); len(got) != 1 || !strings.Contains(got[0], "globself/main.conf:1: include *.conf: skipping") || c.Global.RouterID != "o" {
		t.Errorf("self glob: %q, router_id %q", got, c.Global.RouterID)
	}

	// An empty file is a clean, empty configuration.
	write("empty.conf", "")
	c, d = Load(filepath.Join(dir, "empty.conf"), Options{})
	if c == nil || len(d) != 0 || len(c.Instances) != 0 {
		t.Errorf("empty file: %v %s", c, d)
	}

	// A missing main file is an error and no config.
	c, d = Load(filepath.Join(dir, "missing.conf"), Options{})
	if c != nil || !d.HasErrors() || !strings.HasPrefix(d[0].String(), filepath.Join(dir, "missing.conf")+": read configuration: ") {
		t.Errorf("missing file: %v %s", c, d)
	}
}

// TestLimits: hostile inputs found by fuzzing end with an error instead of
// running for ever or exhausting memory.
func TestLimits(t *testing.T) {
	_, d := Parse("s.conf", []byte("$A=xx\n"+strings.Repeat("$A=$A$A\n", 40)+"$A\n"), Options{})
	if got := diagStrings(d); len(got) != 1 || !strings.HasPrefix(got[0], "error s.conf:21: $A is longer than") {
		t.Errorf("doubling parameter: %q", got)
	}
	_, d = Parse("s.conf", []byte(strings.Repeat("~SEQ(i,1,100000) x\n", 5)), Options{})
	if len(d) != maxDiags+1 || !d.HasErrors() {
		t.Errorf("diagnostics not capped: %d, last %v", len(d), d[len(d)-1])
	}
	_, d = Parse("s.conf", []byte("~SEQ(i,1,1000000) x\n"), Options{})
	if got := diagStrings(d); len(got) != 1 || got[0] != "error s.conf:1: ~SEQ: step 1 from 1 to 1000000 is not a bounded sequence" {
		t.Errorf("huge SEQ: %q", got)
	}
}
