package config

import (
	"fmt"
	"strings"
	"testing"
)

// fmtVirtualServers is the virtual-server part of Summary written with fmt,
// as it was before appendVirtualServer: the reference the fast path must
// reproduce byte for byte.
func fmtVirtualServers(c *Config) string {
	var b strings.Builder
	for _, v := range c.VirtualServers {
		fmt.Fprintf(&b, "virtual_server %s: %s %s, delay_loop %s", v.Key(), v.LBAlgo, v.LBKind, v.DelayLoop)
		if v.PersistenceTimeout > 0 {
			fmt.Fprintf(&b, ", persistence %s", v.PersistenceTimeout)
		}
		if v.SorryServer != nil {
			fmt.Fprintf(&b, ", sorry_server %s", v.SorryServer.Addr)
		}
		fmt.Fprintf(&b, ", %d real servers\n", len(v.RealServers))
		for _, r := range v.RealServers {
			fmt.Fprintf(&b, "  real_server %s weight %d", r.Addr, r.Weight)
			for _, ch := range r.Checkers {
				to := ch.ConnectAddr(r)
				addr := fmt.Sprintf(":%d", to.Port())
				if to.Addr().Is6() {
					addr = fmt.Sprintf("[%s]:%d", to.Addr(), to.Port())
				} else if to.Addr().IsValid() {
					addr = fmt.Sprintf("%s:%d", to.Addr(), to.Port())
				}
				s := fmt.Sprintf("%s %s timeout %s retry %d", ch.Kind, addr, ch.ConnectTimeout, ch.Retry)
				for _, u := range ch.HTTPFields().URLs {
					s += " url " + u.Path
					for _, r := range u.StatusCodes {
						if r.Lo == r.Hi {
							s += fmt.Sprintf(" =%d", r.Lo)
						} else {
							s += fmt.Sprintf(" =%d-%d", r.Lo, r.Hi)
						}
					}
					if u.Digest != "" {
						s += " md5 " + u.Digest
					}
				}
				if ch.OtherFields().MiscPath != "" {
					s += fmt.Sprintf(" %q", ch.OtherFields().MiscPath)
				}
				fmt.Fprintf(&b, "; %s", s)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestSummaryVirtualServers(t *testing.T) {
	for _, tc := range []struct{ name, conf string }{
		{"http", `virtual_server 10.0.0.1 80 {
  delay_loop 6.5
  persistence_timeout 300
  sorry_server 10.0.0.9 8080
  real_server 10.0.0.2 80 {
    weight 3
    HTTP_GET {
      url {
        path /a
        status_code 200-299 404
        digest 9b3a0c85a887a256d6939da88aabd8cd
      }
      url {
        path "/b c"
      }
      connect_timeout 2.5
      retry 1
    }
    TCP_CHECK {
      connect_ip 10.0.0.7
      connect_port 81
    }
  }
  real_server 10.0.0.3 80 {
  }
}`},
		{"ipv6 and misc", `virtual_server fd00::1 443 {
  protocol TCP
  real_server fd00::2 443 {
    SSL_GET {
      url {
        path /
      }
    }
    MISC_CHECK {
      misc_path "/bin/check \"x\" 1"
    }
  }
}`},
		{"fwmark and group", `virtual_server_group g {
  10.0.0.1 80
}
virtual_server fwmark 7 {
  lb_algo rr
  lb_kind DR
  real_server 10.0.0.2 80 {
    TCP_CHECK {
      connect_ip fd00::5
      connect_timeout 1
    }
  }
}
virtual_server group g {
  real_server 10.0.0.3 80 {
  }
}`},
		{"large", string(largeConfig(3, 4))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, d := Parse("t.conf", []byte(tc.conf), Options{})
			if d.HasErrors() {
				t.Fatalf("diagnostics:\n%s", d)
			}
			want := fmtVirtualServers(c)
			if !strings.Contains(c.Summary(), want) || want == "" {
				t.Errorf("summary:\n%s\nwant it to contain:\n%s", c.Summary(), want)
			}
		})
	}
}
