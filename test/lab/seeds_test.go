package lab_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hakeep/config"
)

// TestSeedPairs runs master/backup pairs from the users' own blog posts
// (config/testdata/seeds), changed only where the lab differs from their
// machines (interface names, the heartbeat source addresses): the higher
// node owns the VIP, and after kill -9 the other takes it.
func TestSeedPairs(t *testing.T) {
	pairs := []struct {
		name   string
		files  [2]string
		rename map[string][2]string // word -> replacement on h1, h2
	}{
		{"000 label and brd on ens33", [2]string{"000_2.conf", "000_3.conf"},
			map[string][2]string{"ens33": {"eth0", "eth0"}}},
		{"001 custom multicast group, notify scripts", [2]string{"001_1.conf", "001_2.conf"},
			map[string][2]string{"ens34": {"eth0", "eth0"}}},
		{"003 mcast_src_ip", [2]string{"003_1.conf", "003_2.conf"},
			map[string][2]string{"ens192": {"eth0", "eth0"}, "10.0.6.183": {"10.99.0.11", "10.99.0.11"}, "10.0.6.187": {"10.99.0.12", "10.99.0.12"}}},
	}
	for _, im := range []impl{keepalived, hakeepd} {
		t.Run(string(im), func(t *testing.T) {
			for _, p := range pairs {
				t.Run(p.name, func(t *testing.T) {
					e := newEnv(t, im, im)
					var vip string
					for i, f := range p.files {
						b, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "seeds", f))
						if err != nil {
							t.Fatal(err)
						}
						text := string(b)
						for from, to := range p.rename {
							text = strings.ReplaceAll(text, from, to[i])
						}
						cfg, diags := config.Parse(f, []byte(text), config.Options{})
						if diags.HasErrors() || len(cfg.Instances) == 0 || len(cfg.Instances[0].VIPs) == 0 {
							t.Fatalf("%s: %v", f, diags)
						}
						vip = cfg.Instances[0].VIPs[0].Prefix.Addr().String()
						host := []string{"h1", "h2"}[i]
						var err2 error
						if im == keepalived {
							e.d[host], err2 = e.l.StartKeepalived(host, text)
						} else {
							e.d[host], err2 = e.l.StartHakeepd(e.hkBin, host, text)
						}
						if err2 != nil {
							t.Fatal(err2)
						}
						e.alive[host] = true
					}
					addr := mustAddr(t, vip)
					took, err := e.l.WaitOwner(addr, "h1", 10*time.Second, e.live()...)
					if err != nil {
						t.Fatal(err)
					}
					e.kill("h1")
					took2, err := e.l.WaitOwner(addr, "h2", 10*time.Second, e.live()...)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("h1 owned %s %s after both started; h2 %s after kill -9", addr, took.Round(time.Millisecond), took2.Round(time.Millisecond))
				})
			}
		})
	}
}
