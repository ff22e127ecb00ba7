package checks

import (
	"net/netip"
	"path/filepath"
	"strings"
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
	hc := h.Checkers[0]
	want := Checker{Kind: KindHTTP, Connect: netip.MustParseAddrPort("192.168.1.202:80"), ConnectTimeout: 3 * time.Second,
		Retry: 3, DelayBeforeRetry: 2 * time.Second, DelayLoop: time.Second, Warmup: time.Second,
		HTTP: HTTPOptions{Protocol: "1.0", Virtualhost: "www.example.com",
			URLs: []URL{{Path: "/index.html", Digest: "640205b7b0fc66c1ea91c463fac6334d", Status: []StatusRange{{200, 200}, {301, 302}}}}}}
	if hc.Key() != want.Key() {
		t.Fatalf("HTTP checker\n got %s\nwant %s", hc.Key(), want.Key())
	}
	// The same check of the same real server in another virtual server is
	// one job.
	if specs[2].Checkers[0].Key() != hc.Key() {
		t.Fatalf("duplicate check differs:\n%s\n%s", specs[2].Checkers[0].Key(), hc.Key())
	}
	kinds := []string{}
	for _, c := range specs[1].Checkers {
		kinds = append(kinds, string(c.Kind))
	}
	if strings.Join(kinds, ",") != "TCP_CHECK,MISC_CHECK,SMTP_CHECK,DNS_CHECK" {
		t.Fatal(kinds)
	}
	tcp, misc, smtp, dns := specs[1].Checkers[0], specs[1].Checkers[1], specs[1].Checkers[2], specs[1].Checkers[3]
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
