package lvs

import (
	"context"
	"fmt"
	"hakeep/internal/scaleconf"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"hakeep/config"
)

// reuseText is a configuration of n virtual servers of various kinds:
// plain, checked (TCP_CHECK), with quorum and a sorry server, alpha, a
// group, ha_suspend. edit changes it as a reload would.
func reuseText(n int, edit func(i int) (skip bool, weight int, addr string)) string {
	var b strings.Builder
	b.WriteString("virtual_server_group web {\n  10.3.0.1-2 80\n}\nvirtual_server group web {\n  protocol TCP\n  real_server 10.4.0.1 80 {\n    weight 1\n  }\n}\n")
	for i := range n {
		skip, w, addr := false, 1, fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		if edit != nil {
			skip, w, addr = edit(i)
		}
		if skip {
			continue
		}
		fmt.Fprintf(&b, "virtual_server %s 80 {\n  lb_algo wrr\n  protocol TCP\n", addr)
		switch i % 5 {
		case 1:
			b.WriteString("  quorum 3\n  hysteresis 1\n  sorry_server 10.9.0.1 80\n")
		case 2:
			b.WriteString("  alpha\n")
		case 3:
			b.WriteString("  ha_suspend\n")
		}
		for j := range 3 {
			fmt.Fprintf(&b, "  real_server 10.1.%d.%d 80 {\n    weight %d\n", i%250, j+1, w)
			if i%5 == 1 || i%5 == 2 {
				b.WriteString("    TCP_CHECK {\n      connect_timeout 2\n    }\n")
			}
			b.WriteString("  }\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func mustParse(t *testing.T, text string, reuse *config.Config) *config.Config {
	t.Helper()
	c, d := config.Parse("k.conf", []byte(text), config.Options{Reuse: reuse, NoInclude: true})
	if d.HasErrors() {
		t.Fatal(d)
	}
	return c
}

// healthOf gives every checked real server of cfg a health: down for the
// real servers of the virtual servers in down.
func healthOf(cfg *config.Config, down map[string]bool) map[string]*VSHealth {
	out := map[string]*VSHealth{}
	for _, vs := range cfg.VirtualServers {
		var rs []RSResult
		for _, r := range vs.RealServers {
			if len(r.Checkers) > 0 {
				rs = append(rs, RSResult{Addr: r.Addr, RSHealth: RSHealth{Up: !down[vs.Key()], Weight: -1}})
			}
		}
		if len(rs) > 0 {
			out[vs.Key()] = (*VSHealth)(nil).With(rs)
		}
	}
	return out
}

// TestPlanReuseEqualsFullPlan: planning a reload's configuration that
// reuses the running one's unchanged virtual servers gives the table and
// quorum events that planning a fully parsed one gives, and keeps the
// unchanged services as the same objects.
func TestPlanReuseEqualsFullPlan(t *testing.T) {
	const n = 40
	steps := []struct {
		name string
		edit func(i int) (bool, int, string)
		down map[string]bool // virtual servers whose checked real servers are down
	}{
		{"same file", nil, nil},
		{"weights changed", func(i int) (bool, int, string) {
			w := 1
			if i%7 == 0 {
				w = 2
			}
			return false, w, fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		}, nil},
		{"services out and in", func(i int) (bool, int, string) {
			a := fmt.Sprintf("10.0.%d.%d", i/250, i%250)
			if i < 4 {
				a = fmt.Sprintf("10.5.0.%d", i+1)
			}
			return false, 1, a
		}, nil},
		{"one removed (lines move)", func(i int) (bool, int, string) {
			return i == 2, 1, fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		}, nil},
		{"health changed", func(i int) (bool, int, string) {
			return i == 2, 1, fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		}, map[string]bool{"10.0.0.6:80/TCP": true, "10.0.0.7:80/TCP": true}},
		{"back to the start", nil, nil},
	}
	ctx := context.Background()
	var incEvents, fullEvents []string
	inc, full := NewPlanner(nil, quietLog()), NewPlanner(nil, quietLog())
	inc.OnQuorum = func(e QuorumEvent) { incEvents = append(incEvents, fmt.Sprint(e)) }
	full.OnQuorum = func(e QuorumEvent) { fullEvents = append(fullEvents, fmt.Sprint(e)) }
	master := func(a netip.Addr) bool { return a.As4()[3]%2 == 0 }
	var running *config.Config
	var prevTable Table
	var health *HealthTable
	var prevDown map[string]bool
	for _, st := range steps {
		text := reuseText(n, st.edit)
		cfgInc := mustParse(t, text, running)
		cfgFull := mustParse(t, text, nil)
		// The health table shares the maps of the virtual servers whose
		// health did not change, as the data plane's does.
		h := healthOf(cfgFull, st.down)
		if health == nil {
			health = NewHealthTable(h)
		} else {
			changes := map[string]*VSHealth{}
			for k := range health.vs() {
				if h[k] == nil {
					changes[k] = nil // gone
				}
			}
			for k, rs := range h {
				if _, had := health.vs()[k]; !had || st.down[k] != prevDown[k] {
					changes[k] = rs
				}
			}
			health = health.WithVS(changes)
		}
		prevDown = st.down
		incEvents, fullEvents = nil, nil
		got, err := inc.Plan(ctx, cfgInc, Inputs{HealthTable: health, Master: master})
		if err != nil {
			t.Fatal(err)
		}
		want, err := full.Plan(ctx, cfgFull, Inputs{HealthTable: NewHealthTable(h), Master: master})
		if err != nil {
			t.Fatal(err)
		}
		if g, w := tableText(got), tableText(want); !slices.Equal(g, w) {
			t.Fatalf("%s: table differs from a full plan's:\n%s\nvs\n%s", st.name, strings.Join(g, "\n"), strings.Join(w, "\n"))
		}
		if !slices.Equal(incEvents, fullEvents) {
			t.Fatalf("%s: quorum events %q, want %q", st.name, incEvents, fullEvents)
		}
		if prevTable != nil {
			same := 0
			for k, s := range got {
				if prevTable[k] == s {
					same++
				}
			}
			if same < n/2 {
				t.Errorf("%s: only %d of %d services kept as they were", st.name, same, len(got))
			}
		}
		running, prevTable = cfgInc, got
	}
}

// TestPlanReuseNotWithoutSameObjects: a configuration parsed in full
// (other objects, same text) is planned in full.
func TestPlanReuseNotWithoutSameObjects(t *testing.T) {
	text := reuseText(10, nil)
	p := NewPlanner(nil, quietLog())
	ctx := context.Background()
	a, err := p.Plan(ctx, mustParse(t, text, nil), Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Plan(ctx, mustParse(t, text, nil), Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	for k, s := range b {
		if a[k] == s {
			t.Errorf("%s kept although its configuration is another object", k)
		}
	}
}

// BenchmarkPlanReload1Percent: the plan of a 2,000 x 20 reload with 1%
// changed, after the plan of the running configuration: with the
// configuration parsed reusing the running one (unchanged virtual servers
// keep their services) and parsed in full.
func BenchmarkPlanReload1Percent(b *testing.B) {
	texts := []string{scaleconf.Text(2000, 20, false), scaleconf.Text(2000, 20, true)}
	for _, reuse := range []bool{true, false} {
		name := "full"
		if reuse {
			name = "reusing"
		}
		b.Run(name, func(b *testing.B) {
			var cfgs [2]*config.Config
			for i, text := range texts {
				var prev *config.Config
				if reuse && i == 1 {
					prev = cfgs[0]
				}
				c, d := config.Parse("k.conf", []byte(text), config.Options{Reuse: prev})
				if d.HasErrors() {
					b.Fatal(d)
				}
				cfgs[i] = c
			}
			// Reusing: the second is planned after the first, as a reload;
			// the first again after the second (its blocks are the same
			// objects too).
			p := NewPlanner(nil, quietLog())
			ctx := context.Background()
			i := 0
			for b.Loop() {
				if _, err := p.Plan(ctx, cfgs[i%2], Inputs{}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
