package lvs

import (
	"context"
	"fmt"
	"testing"

	"hakeep/config"
)

// BenchmarkPlanBurst: one plan after a burst of checker transitions that
// touch 20 of 2,000 virtual servers (x 20 checked real servers), planned
// whole (Plan) and incrementally (PlanChanged): the planner's share of a
// mass outage, where every burst used to re-plan 40,000 real servers.
func BenchmarkPlanBurst(b *testing.B) {
	cfg := &config.Config{}
	for i := range 2000 {
		vs := vsConf(fmt.Sprintf("10.100.%d.%d:80", i>>8, i&255))
		for j := range 20 {
			vs.RealServers = append(vs.RealServers, rs(fmt.Sprintf("10.200.%d.%d:80", j, i%250), 1, true))
		}
		cfg.VirtualServers = append(cfg.VirtualServers, vs)
	}
	health := map[HealthKey]RSHealth{}
	for _, vs := range cfg.VirtualServers {
		for _, r := range vs.RealServers {
			health[HealthKey{VS: vs.Key(), RS: r.Addr}] = RSHealth{Up: true, Weight: -1}
		}
	}
	table := HealthTableOf(health)
	for _, tc := range []struct {
		name string
		inc  bool
	}{{"whole", false}, {"incremental", true}} {
		b.Run(tc.name, func(b *testing.B) {
			p := NewPlanner(nil, quietLog())
			ctx := context.Background()
			if _, err := p.Plan(ctx, cfg, Inputs{HealthTable: table}); err != nil {
				b.Fatal(err)
			}
			up := false
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				changed := map[string]*VSHealth{}
				keys := map[string]bool{}
				for k := range 20 {
					vs := cfg.VirtualServers[(n*20+k)%2000]
					var rs []RSResult
					for _, r := range vs.RealServers {
						rs = append(rs, RSResult{Addr: r.Addr, RSHealth: RSHealth{Up: up, Weight: -1}})
					}
					changed[vs.Key()], keys[vs.Key()] = table.VS(vs.Key()).With(rs), true
				}
				n++
				up = !up
				table = table.WithVS(changed)
				if !tc.inc {
					keys = nil
				}
				if _, err := p.PlanChanged(ctx, cfg, Inputs{HealthTable: table}, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
