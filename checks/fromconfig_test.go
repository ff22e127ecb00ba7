package checks

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/config"
)

// The shape of the seed configurations (shared/seeds 000 and 001): HTTP_GET
// with url blocks, TCP_CHECK, nb_get_retry, notify_up/down.
const seedLike = `
global_defs {
   notification_email {
     admin@example.com
   }
   notification_email_from lvs@example.com
   smtp_server 127.0.0.1
   smtp_connect_timeout 30
   router_id LVS_DEVEL
   smtp_helo_name director.example.com
}
virtual_server 192.168.1.198 80 {
  delay_loop 1
  lb_algo wrr
  lb_kind DR
  protocol TCP
  virtualhost www.example.com
  sorry_server 192.168.1.200 80
  real_server 192.168.1.202 80 {
    weight 1
    notify_up "/usr/local/notify.sh up"
    notify_down "/usr/local/notify.sh down"
    HTTP_GET {
      url {
        path /index.html
        digest 640205B7B0FC66C1EA91C463FAC6334D
        status_code 200 301-302
      }
      nb_get_retry 3
      delay_before_retry 2
      connect_timeout 3
    }
  }
  real_server 192.168.1.203 80 {
    weight 1
    TCP_CHECK {
      connect_port 8080
      connect_timeout 3
    }
    MISC_CHECK {
      misc_path "/usr/local/bin/check.sh 192.168.1.203"
      misc_dynamic
    }
    SMTP_CHECK {
      connect_port 25
    }
    DNS_CHECK {
      connect_port 53
      type A
      name www.example.com
    }
  }
}
virtual_server 192.168.1.197 80 {
  delay_loop 1
  protocol TCP
  real_server 192.168.1.202 80 {
    HTTP_GET {
      url {
        path /index.html
        digest 640205B7B0FC66C1EA91C463FAC6334D
        status_code 200 301-302
      }
      nb_get_retry 3
      delay_before_retry 2
      connect_timeout 3
      virtualhost www.example.com
    }
  }
}
`

func TestFromConfig(t *testing.T) {
	cfg, diags := config.Parse("keepalived.conf", []byte(seedLike), config.Options{NoInclude: true})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	specs, warns := FromConfig(cfg)
	if len(warns) != 0 {
		t.Fatalf("warnings %q", warns)
	}
	if len(specs) != 3 {
		t.Fatalf("%d specs", len(specs))
	}
	h := specs[0]
	if h.VirtualServerName != "[192.168.1.198]:tcp:80" || h.RealServer != netip.MustParseAddrPort("192.168.1.202:80") ||
		h.NotifyUp != "/usr/local/notify.sh up" || h.NotifyDown != "/usr/local/notify.sh down" || !h.SMTPAlert {
		t.Fatalf("%+v", h)
	}
	hc := h.CheckerAt(0)
	want := Checker{Kind: KindHTTP, Connect: netip.MustParseAddrPort("192.168.1.202:80"), ConnectTimeout: 3 * time.Second,
		Retry: 3, DelayBeforeRetry: 2 * time.Second, DelayLoop: time.Second, Warmup: time.Second,
		HTTP: HTTPOptions{Protocol: "1.0", Virtualhost: "www.example.com",
			URLs: []URL{{Path: "/index.html", Digest: "640205b7b0fc66c1ea91c463fac6334d", Status: []StatusRange{{200, 200}, {301, 302}},
				Virtualhost: "www.example.com"}}}} // the url takes the virtual server's virtualhost (config resolves it)
	if hc.Key() != want.Key() {
		t.Fatalf("HTTP checker\n got %s\nwant %s", hc.Key(), want.Key())
	}
	// The same check of the same real server in another virtual server is
	// one job.
	if specs[2].CheckerAt(0).Key() != hc.Key() {
		t.Fatalf("duplicate check differs:\n%s\n%s", specs[2].CheckerAt(0).Key(), hc.Key())
	}
	kinds := []string{}
	for _, c := range specs[1].Checkers {
		kinds = append(kinds, string(c.Kind))
	}
	if strings.Join(kinds, ",") != "TCP_CHECK,MISC_CHECK,SMTP_CHECK,DNS_CHECK" {
		t.Fatal(kinds)
	}
	tcp, misc, smtp, dns := specs[1].CheckerAt(0), specs[1].CheckerAt(1), specs[1].CheckerAt(2), specs[1].CheckerAt(3)
	if tcp.Connect.Port() != 8080 || tcp.ConnectTimeout != 3*time.Second || tcp.DelayLoop != time.Second {
		t.Fatalf("%+v", tcp)
	}
	if misc.Misc.Path != "/usr/local/bin/check.sh 192.168.1.203" || !misc.Misc.Dynamic || misc.Misc.Timeout != time.Second {
		t.Fatalf("%+v", misc)
	}
	if smtp.SMTP.HeloName != "director.example.com" || smtp.Connect.Port() != 25 {
		t.Fatalf("%+v", smtp)
	}
	if dns.DNS.Type != "A" || dns.DNS.Name != "www.example.com" || dns.Connect.Port() != 53 {
		t.Fatalf("%+v", dns)
	}
	// The result is accepted by a Manager.
	m := New(Options{NewProber: func(c Checker) (Prober, error) { return ProberFunc(nil), nil }})
	if err := m.Reload(specs); err != nil {
		t.Fatal(err)
	}
	if st := m.State(); len(st) != 3 || st[0].Checkers[0].SharedBy != 2 {
		t.Fatalf("%+v", st)
	}
}

// TestSeedConfigsMap: every seed configuration (the users' keepalived.conf
// files, copied from the blog posts) maps to specs a Manager accepts.
func TestSeedConfigsMap(t *testing.T) {
	files, _ := filepath.Glob("testdata/seeds/*.conf")
	if len(files) == 0 {
		t.Fatal("no seed configurations in testdata/seeds")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, diags := config.Load(f, config.Options{NoInclude: true})
			if cfg == nil || diags.HasErrors() {
				t.Fatalf("parse: %v", diags)
			}
			specs, warns := FromConfig(cfg)
			for _, w := range warns {
				t.Log("warning:", w)
			}
			if len(specs) == 0 {
				t.Fatal("no real servers")
			}
			m := New(Options{NewProber: func(c Checker) (Prober, error) {
				if _, err := NewProber(c, nil); err != nil {
					return nil, err
				}
				return ProberFunc(nil), nil
			}})
			if err := m.Reload(specs); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d real servers, %d distinct checks", len(specs), m.Stats().Jobs)
		})
	}
}

// TestFromConfigTimings: the Spec's retry, delays and warmup are exactly
// what the parser resolved (keepalived 2.2.7's defaults per kind; explicit
// zeros kept), for each kind and for values inherited from the
// real_server and virtual_server.
func TestFromConfigTimings(t *testing.T) {
	const s = time.Second
	body := map[Kind]string{
		KindTCP: "", KindSMTP: "", KindDNS: "", KindUDP: "", KindPing: "",
		KindHTTP: "url {\n path /\n}\n", KindSSL: "url {\n path /\n}\n",
		KindMisc: "misc_path /bin/true\n",
	}
	type got struct {
		retry                   int
		dbr, warmup, loop, ctmo time.Duration
		miscTO                  time.Duration
	}
	for _, tc := range []struct {
		name       string
		kind       Kind
		vs, rs, ck string
		want       got
	}{
		{"TCP defaults", KindTCP, "", "", "", got{1, s, 60 * s, 60 * s, 5 * s, 0}},
		{"HTTP defaults", KindHTTP, "", "", "", got{1, 3 * s, 60 * s, 60 * s, 5 * s, 0}},
		{"SSL defaults", KindSSL, "", "", "", got{1, 3 * s, 60 * s, 60 * s, 5 * s, 0}},
		{"MISC defaults", KindMisc, "delay_loop 20\n", "", "delay_loop 4\n", got{0, s, 4 * s, 4 * s, 5 * s, 20 * s}},
		{"SMTP defaults", KindSMTP, "", "", "", got{1, s, 60 * s, 60 * s, 5 * s, 0}},
		{"DNS defaults", KindDNS, "delay_loop 20\n", "", "delay_loop 6\n", got{3, 6 * s, 6 * s, 6 * s, 5 * s, 0}},
		{"UDP defaults", KindUDP, "", "", "", got{1, s, 60 * s, 60 * s, 5 * s, 0}},
		{"PING defaults", KindPing, "", "", "", got{1, s, 60 * s, 60 * s, 5 * s, 0}},
		{"explicit warmup 0", KindTCP, "delay_loop 10\n", "", "warmup 0\n", got{1, s, 0, 10 * s, 5 * s, 0}},
		{"virtual_server retry 0 and warmup 0", KindDNS, "retry 0\nwarmup 0\n", "", "", got{0, 60 * s, 0, 60 * s, 5 * s, 0}},
		{"real_server delay_before_retry 0", KindHTTP, "delay_before_retry 5\n", "delay_before_retry 0\n", "", got{1, 0, 60 * s, 60 * s, 5 * s, 0}},
		{"real_server over virtual_server", KindTCP, "retry 7\nwarmup 9\nconnect_timeout 8\ndelay_loop 30\n", "retry 2\nconnect_timeout 3\n", "",
			got{2, s, 9 * s, 30 * s, 3 * s, 0}},
		{"checker over both", KindSSL, "retry 7\nwarmup 9\n", "retry 2\nwarmup 4\ndelay_loop 12\n", "nb_get_retry 5\nwarmup 1\ndelay_before_retry 2\n",
			got{5, 2 * s, s, 12 * s, 5 * s, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "virtual_server 10.0.0.1 80 {\nprotocol TCP\n" + tc.vs + "real_server 10.0.0.2 80 {\n" + tc.rs +
				string(tc.kind) + " {\n" + body[tc.kind] + tc.ck + "}\n}\n}\n"
			cfg, diags := config.Parse("t.conf", []byte(text), config.Options{NoInclude: true})
			if diags.HasErrors() {
				t.Fatalf("%v\n%s", diags, text)
			}
			specs, warns := FromConfig(cfg)
			if len(warns) != 0 || len(specs) != 1 || len(specs[0].Checkers) != 1 {
				t.Fatalf("specs %+v warnings %q", specs, warns)
			}
			c := specs[0].Checkers[0]
			if g := (got{c.Retry, c.DelayBeforeRetry, c.Warmup, c.DelayLoop, c.ConnectTimeout, c.Misc.Timeout}); g != tc.want {
				t.Errorf("\n got %+v\nwant %+v", g, tc.want)
			}
		})
	}
}

// TestFromConfigUnresolved: a config built by hand (no parser) gets the
// same defaults for what it leaves zero and unmarked, while zeros marked
// as set stay zero.
func TestFromConfigUnresolved(t *testing.T) {
	const s = time.Second
	rsAddr := netip.MustParseAddrPort("10.0.0.2:53")
	for _, tc := range []struct {
		name                   string
		vs                     config.VirtualServer
		rs                     config.RealServer
		ck                     config.Checker
		retry                  int
		dbr, warmup, loop, mto time.Duration
	}{
		{"DNS all zero", config.VirtualServer{DelayLoop: 20 * s}, config.RealServer{}, config.Checker{Kind: config.CheckDNS},
			3, 20 * s, 20 * s, 20 * s, 0},
		{"MISC all zero", config.VirtualServer{DelayLoop: 20 * s}, config.RealServer{RealServerOptions: &config.RealServerOptions{DelayLoop: 5 * s}},
			config.Checker{Kind: config.CheckMisc, CheckerOther: &config.CheckerOther{MiscPath: "/bin/true"}}, 0, s, 5 * s, 5 * s, 20 * s},
		{"marked zeros", config.VirtualServer{DelayLoop: 20 * s}, config.RealServer{},
			config.Checker{Kind: config.CheckHTTP, CheckerHTTP: &config.CheckerHTTP{URLs: []*config.URL{{Path: "/"}}}, RetrySet: true, DelayBeforeRetrySet: true, WarmupSet: true}, 0, 0, 0, 20 * s, 0},
		{"from the real_server", config.VirtualServer{DelayLoop: 20 * s, Retry: 9, RetrySet: true},
			config.RealServer{RealServerOptions: &config.RealServerOptions{Retry: 0, RetrySet: true, Warmup: 0, WarmupSet: true, DelayBeforeRetry: 4 * s, DelayBeforeRetrySet: true}},
			config.Checker{Kind: config.CheckTCP}, 0, 4 * s, 0, 20 * s, 0},
		{"from the virtual_server", config.VirtualServer{DelayLoop: 20 * s, Retry: 9, RetrySet: true, Warmup: 2 * s, WarmupSet: true},
			config.RealServer{}, config.Checker{Kind: config.CheckHTTP, CheckerHTTP: &config.CheckerHTTP{URLs: []*config.URL{{Path: "/"}}}}, 9, 3 * s, 2 * s, 20 * s, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, rs, ck := tc.vs, tc.rs, tc.ck
			vs.Addr, vs.Protocol = netip.MustParseAddrPort("10.0.0.1:53"), "UDP"
			rs.Addr, rs.Weight = rsAddr, 1
			rs.Checkers = []*config.Checker{&ck}
			vs.RealServers = []*config.RealServer{&rs}
			specs, warns := FromConfig(&config.Config{VirtualServers: []*config.VirtualServer{&vs}})
			if len(warns) != 0 || len(specs) != 1 || len(specs[0].Checkers) != 1 {
				t.Fatalf("specs %+v warnings %q", specs, warns)
			}
			c := specs[0].CheckerAt(0)
			if c.Retry != tc.retry || c.DelayBeforeRetry != tc.dbr || c.Warmup != tc.warmup || c.DelayLoop != tc.loop ||
				c.Misc.Timeout != tc.mto || c.ConnectTimeout != DefaultConnectTimeout || c.Connect != rsAddr {
				t.Errorf("got retry %d dbr %v warmup %v loop %v misc %v timeout %v connect %v", c.Retry, c.DelayBeforeRetry,
					c.Warmup, c.DelayLoop, c.Misc.Timeout, c.ConnectTimeout, c.Connect)
			}
		})
	}
}

// Specs are read-only once built, so a build shares one url list between
// checkers whose urls are alike, and only between those.
func TestBuildSharesAlikeURLLists(t *testing.T) {
	text := `virtual_server 10.0.0.1 80 {
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.1 80 {
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
        }
    }
    real_server 10.0.1.2 80 {
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
        }
    }
    real_server 10.0.1.3 80 {
        HTTP_GET {
            url {
                path /health
                status_code 200-204
            }
        }
    }
    real_server 10.0.1.4 80 {
        TCP_CHECK {
        }
        HTTP_GET {
            url {
                path /health
                status_code 200-204
            }
        }
    }
}
`
	specs := buildSpecs(t, text, 4)
	urls := func(i, c int) []URL { return specs[i].Checkers[c].HTTP.URLs }
	if &urls(0, 0)[0] != &urls(1, 0)[0] {
		t.Error("alike url lists of real servers 1 and 2 are not shared")
	}
	if &urls(1, 0)[0] == &urls(2, 0)[0] {
		t.Error("different url lists share one")
	}
	if &urls(2, 0)[0] != &urls(3, 1)[0] {
		t.Error("alike url lists of real servers 3 and 4 are not shared")
	}
	want := []StatusRange{{200, 204}}
	if got := urls(2, 0)[0].Status; !slices.Equal(got, want) {
		t.Errorf("real server 3's status codes %v, want %v", got, want)
	}
	if got := urls(0, 0)[0].Status; !slices.Equal(got, []StatusRange{{200, 200}}) {
		t.Errorf("real server 1's status codes %v, want [{200 200}]", got)
	}
	if len(specs[3].Checkers) != 2 || specs[3].Checkers[0].Kind != KindTCP {
		t.Errorf("real server 4's checkers: %+v", specs[3].Checkers)
	}
	// A real server's checkers are its own slice: appending to one does
	// not write into another's.
	before := specs[1].Checkers[0]
	_ = append(specs[0].Checkers, Checker{Kind: KindTCP})
	if specs[1].Checkers[0].Kind != before.Kind {
		t.Error("appending to real server 1's checkers changed real server 2's")
	}
}

// The alike checkers of a virtual server's real servers are one Checker,
// its Connect left zero; CheckerAt gives each real server's own address,
// and a connect_ip or connect_port written stays.
func TestBuildSharesAlikeCheckers(t *testing.T) {
	text := `virtual_server 10.0.0.1 80 {
    lb_kind NAT
    protocol TCP
    real_server 10.0.1.1 80 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 10.0.1.2 80 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 10.0.1.3 80 {
        TCP_CHECK {
            connect_timeout 2
            connect_port 8080
        }
    }
    real_server 10.0.1.4 80 {
        TCP_CHECK {
            connect_timeout 2
            connect_ip 10.0.9.9
        }
    }
}
`
	specs := buildSpecs(t, text, 4)
	if &specs[0].Checkers[0] != &specs[1].Checkers[0] {
		t.Error("the alike checkers of real servers 1 and 2 are two")
	}
	if &specs[1].Checkers[0] == &specs[2].Checkers[0] || &specs[2].Checkers[0] == &specs[3].Checkers[0] {
		t.Error("checkers that connect elsewhere are shared")
	}
	for i, want := range []string{"10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:8080", "10.0.9.9:80"} {
		if got := specs[i].CheckerAt(0); got.Connect.String() != want || got.ConnectTimeout != 2*time.Second {
			t.Errorf("real server %d connects to %s (timeout %v), want %s", i+1, got.Connect, got.ConnectTimeout, want)
		}
	}
	// The manager checks each real server at its own address.
	var mu sync.Mutex
	var probed []string
	m := New(Options{NewProber: func(c Checker) (Prober, error) {
		mu.Lock()
		probed = append(probed, c.Connect.String())
		mu.Unlock()
		return ProberFunc(func(context.Context) Result { return Result{OK: true, Weight: -1} }), nil
	}})
	if err := m.Start(specs); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	slices.Sort(probed)
	if want := []string{"10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:8080", "10.0.9.9:80"}; !slices.Equal(probed, want) {
		t.Errorf("probers for %v, want %v", probed, want)
	}
}

// buildSpecs is Build's specs of text, which must parse and give n.
func buildSpecs(t *testing.T, text string, n int) []Spec {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(text), config.Options{NoInclude: true})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	specs := Build(cfg, nil).Specs
	if len(specs) != n {
		t.Fatalf("%d specs, want %d", len(specs), n)
	}
	return specs
}
