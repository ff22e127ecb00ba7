package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkerBody is a minimal valid block for each kind (MISC_CHECK needs a
// path, HTTP_GET/SSL_GET a url).
var checkerBody = map[string]string{
	CheckTCP:  "",
	CheckHTTP: "url {\n path /\n}\n",
	CheckSSL:  "url {\n path /\n}\n",
	CheckMisc: "misc_path /bin/true\n",
	CheckSMTP: "",
	CheckDNS:  "",
	CheckUDP:  "",
	CheckPing: "",
}

// timings is what a resolved checker holds, with the *Set markers.
type timings struct {
	retry                                 int
	dbr, warmup, loop, timeout, miscTO    time.Duration
	retrySet, dbrSet, warmupSet, miscTSet bool
}

func timingsOf(c *Checker) timings {
	return timings{c.Retry, c.DelayBeforeRetry, c.Warmup, c.DelayLoop, c.ConnectTimeout, c.OtherFields().MiscTimeout,
		c.RetrySet, c.DelayBeforeRetrySet, c.WarmupSet, c.OtherFields().MiscTimeoutSet}
}

// parseChecker parses one checker of kind with vsExtra in the
// virtual_server, rsExtra in the real_server and ckExtra in the checker.
func parseChecker(t *testing.T, kind, vsExtra, rsExtra, ckExtra string) *Checker {
	t.Helper()
	text := fmt.Sprintf("virtual_server 10.0.0.1 80 {\n protocol TCP\n%s real_server 10.0.0.2 80 {\n%s  %s {\n%s%s  }\n }\n}\n",
		vsExtra, rsExtra, kind, checkerBody[kind], ckExtra)
	c, d := Parse("t.conf", []byte(text), Options{NoInclude: true})
	if d.HasErrors() {
		t.Fatalf("parse: %v\n%s", d, text)
	}
	rs := c.VirtualServers[0].RealServers[0]
	if len(rs.Checkers) != 1 {
		t.Fatalf("%d checkers", len(rs.Checkers))
	}
	return rs.Checkers[0]
}

// TestCheckerDefaultsPerKind: with nothing set, each kind gets keepalived
// 2.2.7's defaults (see checkdefaults.go for the source lines).
func TestCheckerDefaultsPerKind(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		kind string
		want timings
	}{
		{CheckTCP, timings{retry: 1, dbr: s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s}},
		{CheckHTTP, timings{retry: 1, dbr: 3 * s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s}},
		{CheckSSL, timings{retry: 1, dbr: 3 * s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s}},
		{CheckMisc, timings{retry: 0, dbr: s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s, miscTO: 60 * s}},
		{CheckSMTP, timings{retry: 1, dbr: s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s}},
		{CheckDNS, timings{retry: 3, dbr: 60 * s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s}},
		{CheckUDP, timings{retry: 1, dbr: s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s}},
		{CheckPing, timings{retry: 1, dbr: s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			if got := timingsOf(parseChecker(t, tc.kind, "", "", "")); got != tc.want {
				t.Errorf("defaults\n got %+v\nwant %+v", got, tc.want)
			}
			if DefaultRetry(tc.kind) != tc.want.retry || DefaultDelayBeforeRetry(tc.kind, 60*s) != tc.want.dbr {
				t.Errorf("DefaultRetry/DefaultDelayBeforeRetry disagree with the parser")
			}
		})
	}
}

// TestCheckerDefaultsFollowDelayLoop: the defaults that follow delay_loop
// follow the checker's own (warmup, DNS_CHECK's delay_before_retry), except
// misc_timeout, which follows the virtual server's (misc_check_thread uses
// checker->vs->delay_loop).
func TestCheckerDefaultsFollowDelayLoop(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		name, kind, vs, rs, ck string
		want                   timings
	}{
		{"DNS checker delay_loop", CheckDNS, " delay_loop 20\n", "", "delay_loop 7\n",
			timings{retry: 3, dbr: 7 * s, warmup: 7 * s, loop: 7 * s, timeout: 5 * s}},
		{"DNS real_server delay_loop", CheckDNS, " delay_loop 20\n", "  delay_loop 9\n", "",
			timings{retry: 3, dbr: 9 * s, warmup: 9 * s, loop: 9 * s, timeout: 5 * s}},
		{"DNS virtual_server delay_loop", CheckDNS, " delay_loop 20\n", "", "",
			timings{retry: 3, dbr: 20 * s, warmup: 20 * s, loop: 20 * s, timeout: 5 * s}},
		{"MISC timeout follows the virtual server", CheckMisc, " delay_loop 20\n", "  delay_loop 9\n", "delay_loop 7\n",
			timings{retry: 0, dbr: s, warmup: 7 * s, loop: 7 * s, timeout: 5 * s, miscTO: 20 * s}},
		{"MISC misc_timeout 0 is the default", CheckMisc, " delay_loop 20\n", "", "misc_timeout 0\n",
			timings{retry: 0, dbr: s, warmup: 20 * s, loop: 20 * s, timeout: 5 * s, miscTO: 20 * s}},
		{"MISC explicit misc_timeout", CheckMisc, "", "", "misc_timeout 4\n",
			timings{retry: 0, dbr: s, warmup: 60 * s, loop: 60 * s, timeout: 5 * s, miscTO: 4 * s, miscTSet: true}},
		{"HTTP warmup follows the checker's delay_loop", CheckHTTP, " delay_loop 20\n", "", "delay_loop 2\n",
			timings{retry: 1, dbr: 3 * s, warmup: 2 * s, loop: 2 * s, timeout: 5 * s}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := timingsOf(parseChecker(t, tc.kind, tc.vs, tc.rs, tc.ck)); got != tc.want {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestCheckerExplicitAndInherited: values set on the checker win, then the
// real_server's, then the virtual_server's, for every kind; explicit zeros
// (retry 0, delay_before_retry 0, warmup 0) are kept and marked as set.
func TestCheckerExplicitAndInherited(t *testing.T) {
	const s = time.Second
	vsAll := " delay_loop 30\n connect_timeout 8\n retry 5\n delay_before_retry 6\n warmup 11\n"
	rsAll := "  delay_loop 12\n connect_timeout 2\n retry 4\n delay_before_retry 2\n warmup 13\n"
	ckAll := "delay_loop 3\nretry 2\ndelay_before_retry 4\nwarmup 1\n"
	set := func(tm timings) timings { tm.retrySet, tm.dbrSet, tm.warmupSet = true, true, true; return tm }
	for kind := range checkerBody {
		timeoutKw := "connect_timeout 9\n"
		ckTimeout := 9 * s
		if kind == CheckMisc {
			// MISC_CHECK has no connection options (keepalived installs
			// its common keywords without them).
			timeoutKw, ckTimeout = "", 2*s
		}
		miscTO := func(d time.Duration) time.Duration {
			if kind == CheckMisc {
				return d
			}
			return 0
		}
		for _, tc := range []struct {
			name, vs, rs, ck string
			want             timings
		}{
			{"checker", vsAll, rsAll, ckAll + timeoutKw,
				set(timings{retry: 2, dbr: 4 * s, warmup: s, loop: 3 * s, timeout: ckTimeout, miscTO: miscTO(30 * s)})},
			{"real_server", vsAll, rsAll, "",
				set(timings{retry: 4, dbr: 2 * s, warmup: 13 * s, loop: 12 * s, timeout: 2 * s, miscTO: miscTO(30 * s)})},
			{"virtual_server", vsAll, "", "",
				set(timings{retry: 5, dbr: 6 * s, warmup: 11 * s, loop: 30 * s, timeout: 8 * s, miscTO: miscTO(30 * s)})},
			{"explicit zeros on the checker", vsAll, rsAll, "retry 0\ndelay_before_retry 0\nwarmup 0\n",
				set(timings{retry: 0, dbr: 0, warmup: 0, loop: 12 * s, timeout: 2 * s, miscTO: miscTO(30 * s)})},
			{"explicit zeros on the real_server", vsAll, "  retry 0\n  delay_before_retry 0\n  warmup 0\n", "",
				set(timings{retry: 0, dbr: 0, warmup: 0, loop: 30 * s, timeout: 8 * s, miscTO: miscTO(30 * s)})},
			{"explicit zeros on the virtual_server", " retry 0\n delay_before_retry 0\n warmup 0\n", "", "",
				set(timings{retry: 0, dbr: 0, warmup: 0, loop: 60 * s, timeout: 5 * s, miscTO: miscTO(60 * s)})},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				if got := timingsOf(parseChecker(t, kind, tc.vs, tc.rs, tc.ck)); got != tc.want {
					t.Errorf("\n got %+v\nwant %+v", got, tc.want)
				}
			})
		}
	}
}

// TestSMTPHostInheritsChecker: a legacy host { } block is a copy of its
// SMTP_CHECK (smtp_check_end_handler), so it takes the checker's retry,
// delays and connect_timeout unless it sets its own connect_timeout.
func TestSMTPHostInheritsChecker(t *testing.T) {
	c := parseChecker(t, CheckSMTP, " delay_loop 20\n", "", "retry 4\ndelay_before_retry 2\nwarmup 0\nconnect_timeout 3\n"+
		"host {\n connect_ip 10.0.0.3\n}\nhost {\n connect_ip 10.0.0.4\n connect_timeout 7\n}\n")
	if len(c.OtherFields().Hosts) != 2 {
		t.Fatalf("%d hosts", len(c.OtherFields().Hosts))
	}
	for i, wantTO := range []time.Duration{3 * time.Second, 7 * time.Second} {
		h := c.OtherFields().Hosts[i]
		if h.Retry != 4 || h.DelayBeforeRetry != 2*time.Second || h.Warmup != 0 || !h.WarmupSet || h.DelayLoop != 20*time.Second || h.ConnectTimeout != wantTO {
			t.Errorf("host %d: %+v", i, timingsOf(h))
		}
	}
	// Without checker settings the hosts get SMTP_CHECK's defaults.
	c = parseChecker(t, CheckSMTP, "", "", "host {\n connect_ip 10.0.0.3\n}\n")
	if h := c.OtherFields().Hosts[0]; h.Retry != 1 || h.RetrySet || h.DelayBeforeRetry != time.Second || h.Warmup != time.Minute || h.WarmupSet || h.ConnectTimeout != 5*time.Second {
		t.Errorf("default host %+v", timingsOf(h))
	}
}

// TestCheckerJSONStable: the model's existing JSON keys are unchanged; the
// markers are added, and omitted when false.
func TestCheckerJSONStable(t *testing.T) {
	b, err := json.Marshal(parseChecker(t, CheckTCP, "", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, k := range []string{`"retry":1`, `"delay_before_retry":1000000000`, `"warmup":60000000000`, `"delay_loop":60000000000`, `"connect_timeout":5000000000`} {
		if !strings.Contains(js, k) {
			t.Errorf("missing %s in %s", k, js)
		}
	}
	if strings.Contains(js, "_set") {
		t.Errorf("unset markers in %s", js)
	}
	b, _ = json.Marshal(parseChecker(t, CheckTCP, "", "", "warmup 0\n"))
	if js := string(b); !strings.Contains(js, `"warmup_set":true`) || strings.Contains(js, `"warmup":`) {
		t.Errorf("explicit warmup 0: %s", js)
	}
}

// Alike url blocks of a virtual server's checkers are kept once and
// shared; urls that differ, or resolve to another virtualhost, are not.
func TestAlikeURLsShared(t *testing.T) {
	text := `virtual_server 10.0.0.1 80 {
    lb_kind NAT
    protocol TCP
    lb_algo rr
    virtualhost vs.example
    real_server 10.0.1.1 80 {
        HTTP_GET {
            url {
                path /health
                status_code 200-204
            }
        }
    }
    real_server 10.0.1.2 80 {
        HTTP_GET {
            url {
                path /health
                status_code 200-204
            }
        }
    }
    real_server 10.0.1.3 80 {
        HTTP_GET {
            virtualhost other.example
            url {
                path /health
                status_code 200-204
            }
        }
    }
    real_server 10.0.1.4 80 {
        HTTP_GET {
            url {
                path /health
                status_code 200-205
            }
        }
    }
}
virtual_server 10.0.0.2 80 {
    lb_kind NAT
    protocol TCP
    lb_algo rr
    real_server 10.0.1.1 80 {
        HTTP_GET {
            url {
                path /health
                status_code 200-204
            }
        }
    }
}
`
	cfg, diags := Parse("t.conf", []byte(text), Options{NoInclude: true})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	url := func(v, r int) *URL { return cfg.VirtualServers[v].RealServers[r].Checkers[0].URLs[0] }
	if url(0, 0) != url(0, 1) {
		t.Error("alike urls of one virtual server are two objects")
	}
	fields := func(v, r int) *CheckerHTTP { return cfg.VirtualServers[v].RealServers[r].Checkers[0].CheckerHTTP }
	if fields(0, 0) != fields(0, 1) {
		t.Error("alike HTTP fields of one virtual server are two objects")
	}
	if fields(0, 0) == fields(0, 2) || fields(0, 0) == fields(0, 3) || fields(0, 0) == fields(1, 0) {
		t.Error("HTTP fields that differ (virtualhost, urls) or of another virtual server are shared")
	}
	if n := reflect.TypeFor[CheckerHTTP]().NumField(); n != 6 {
		t.Errorf("CheckerHTTP has %d fields: sameHTTP compares 6, update it", n)
	}
	if n := reflect.TypeFor[URL]().NumField(); n != 8 {
		t.Errorf("URL has %d fields: sameURL compares all but Pos, 7, update it", n)
	}
	if url(0, 0).Pos.Line != 8 {
		t.Errorf("the shared url's position is line %d, want the first url block's, 8", url(0, 0).Pos.Line)
	}
	for _, c := range []struct {
		v, r        int
		vhost       string
		status      []StatusRange
		sharedWith0 bool
	}{
		{0, 0, "vs.example", []StatusRange{{200, 204}}, true},
		{0, 1, "vs.example", []StatusRange{{200, 204}}, true},
		{0, 2, "other.example", []StatusRange{{200, 204}}, false},
		{0, 3, "vs.example", []StatusRange{{200, 205}}, false},
		{1, 0, "", []StatusRange{{200, 204}}, false},
	} {
		u := url(c.v, c.r)
		if u.Virtualhost != c.vhost || fmt.Sprint(u.StatusCodes) != fmt.Sprint(c.status) || u.Path != "/health" {
			t.Errorf("virtual server %d real server %d: %+v, want virtualhost %q status %v", c.v, c.r, *u, c.vhost, c.status)
		}
		if (u == url(0, 0)) != c.sharedWith0 {
			t.Errorf("virtual server %d real server %d: shared with the first: %v, want %v", c.v, c.r, u == url(0, 0), c.sharedWith0)
		}
	}
}

// Alike checkers of a virtual server's real servers are one Checker that
// connects to each real server's address; a connect_ip or connect_port
// written, or another virtual server, makes another.
func TestAlikeCheckersShared(t *testing.T) {
	text := `virtual_server 10.0.0.1 80 {
    lb_kind NAT
    protocol TCP
    lb_algo rr
    real_server 10.0.1.1 80 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 10.0.1.2 8080 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 10.0.1.3 80 {
        TCP_CHECK {
            connect_timeout 2
            connect_port 81
        }
    }
    real_server 10.0.1.4 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
virtual_server fwmark 7 {
    lb_kind DR
    lb_algo rr
    real_server 10.0.1.1 80 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
`
	cfg, diags := Parse("t.conf", []byte(text), Options{NoInclude: true})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs := func(v, r int) *RealServer { return cfg.VirtualServers[v].RealServers[r] }
	ck := func(v, r int) *Checker { return rs(v, r).Checkers[0] }
	if ck(0, 0) != ck(0, 1) {
		t.Error("alike checkers of real servers 1 and 2 are two objects")
	}
	if ck(0, 0).Pos.Line != 6 {
		t.Errorf("the shared checker's position is line %d, want the first block's, 6", ck(0, 0).Pos.Line)
	}
	if ck(0, 0) == ck(0, 2) || ck(0, 0) == ck(0, 3) || ck(0, 0) == ck(1, 0) {
		t.Error("checkers that differ (connect_port, connect_timeout) or of another virtual server are shared")
	}
	for _, c := range []struct {
		v, r int
		want string
	}{{0, 0, "10.0.1.1:80"}, {0, 1, "10.0.1.2:8080"}, {0, 2, "10.0.1.3:81"}, {0, 3, "10.0.1.4:80"}, {1, 0, "10.0.1.1:80"}} {
		if got := ck(c.v, c.r).ConnectAddr(rs(c.v, c.r)).String(); got != c.want {
			t.Errorf("virtual server %d real server %d connects to %s, want %s", c.v, c.r, got, c.want)
		}
	}
	if n := reflect.TypeFor[Checker]().NumField(); n != 19 {
		t.Errorf("Checker has %d fields: sameChecker compares all but Pos and the maps, update it", n)
	}
}
