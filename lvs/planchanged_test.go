package lvs

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"hakeep/config"
)

// tableText renders a table for comparisons: every service with its
// attributes, quorum state and destinations (weight, method, health).
func tableText(t Table) []string {
	var out []string
	for _, k := range t.Keys() {
		s := t[k]
		out = append(out, fmt.Sprintf("%s %s flags %#x timeout %d mask %#x origin %s quorum %v", k, s.Scheduler, s.Flags, s.Timeout, s.Netmask, s.Origin, s.QuorumUp))
		for _, d := range s.SortedDests() {
			out = append(out, fmt.Sprintf("  %s w%d %s %s", d.Key(), d.Weight, d.Method, d.Health))
		}
	}
	return out
}

// PlanChanged recomputes only the changed virtual servers and gives the
// table a full Plan gives, with the same quorum events; services of the
// others are kept as they are (same pointer).
func TestPlanChangedEqualsFullPlan(t *testing.T) {
	quorum := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 2, true), rs("10.1.0.2:80", 2, true), rs("10.1.0.3:80", 1, true))
	quorum.Quorum, quorum.Hysteresis = 3, 1
	quorum.SorryServer = &config.SorryServer{Addr: ap("10.9.0.1:80")}
	inhibit := vsConf("10.0.0.2:80", rs("10.1.0.1:80", 1, true), rs("10.1.0.2:80", 1, false))
	inhibit.InhibitOnFailure = true
	alpha := vsConf("10.0.0.3:80", rs("10.1.0.4:80", 1, true), rs("10.1.0.5:80", 1, true))
	alpha.Alpha = true
	grp := &config.VirtualServer{Group: "web", Protocol: "TCP", LBAlgo: "rr", LBKind: "NAT", Quorum: 1,
		RealServers: []*config.RealServer{rs("10.1.0.6:80", 1, true), rs("10.1.0.7:80", 1, true)}}
	plain := vsConf("10.0.0.4:80", rs("10.1.0.8:80", 1, false))
	cfg := &config.Config{
		VirtualServers: []*config.VirtualServer{quorum, inhibit, alpha, grp, plain},
		VSGroups: []*config.VirtualServerGroup{{Name: "web", Members: []*config.VSGMember{
			{Addr: netip.MustParseAddr("10.0.1.1"), LastAddr: netip.MustParseAddr("10.0.1.2"), Port: 80},
		}}},
	}
	var checked []HealthKey
	for _, vs := range cfg.VirtualServers {
		for _, r := range vs.RealServers {
			if len(r.Checkers) > 0 {
				checked = append(checked, HealthKey{VS: vs.Key(), RS: r.Addr})
			}
		}
	}
	tests := []struct {
		name  string
		seed  uint64
		steps int
		burst int // health changes per step
	}{
		{"one change at a time", 1, 60, 1},
		{"bursts", 2, 40, 4},
		{"storms", 3, 20, 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(tc.seed, 0))
			var incEvents, fullEvents []string
			inc, full := NewPlanner(nil, quietLog()), NewPlanner(nil, quietLog())
			inc.OnQuorum = func(e QuorumEvent) { incEvents = append(incEvents, fmt.Sprint(e)) }
			full.OnQuorum = func(e QuorumEvent) { fullEvents = append(fullEvents, fmt.Sprint(e)) }
			health := map[HealthKey]RSHealth{}
			ctx := context.Background()
			prev, err := inc.PlanChanged(ctx, cfg, Inputs{Health: health}, map[string]bool{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := full.Plan(ctx, cfg, Inputs{Health: health}); err != nil {
				t.Fatal(err)
			}
			for step := range tc.steps {
				changed := map[string]bool{}
				for range tc.burst {
					k := checked[rnd.IntN(len(checked))]
					w := -1
					if rnd.IntN(4) == 0 {
						w = rnd.IntN(5)
					}
					health[k] = RSHealth{Up: rnd.IntN(2) == 0, Weight: w}
					changed[k.VS] = true
				}
				got, err := inc.PlanChanged(ctx, cfg, Inputs{Health: health}, changed)
				if err != nil {
					t.Fatal(err)
				}
				want, err := full.Plan(ctx, cfg, Inputs{Health: health})
				if err != nil {
					t.Fatal(err)
				}
				if g, w := tableText(got), tableText(want); !slices.Equal(g, w) {
					t.Fatalf("step %d (changed %v): incremental plan\n%v\nfull plan\n%v", step, changed, g, w)
				}
				if !maps.Equal(inc.quorum, full.quorum) {
					t.Fatalf("step %d: quorum states %v, full plan's %v", step, inc.quorum, full.quorum)
				}
				for k, s := range got {
					if !changed[s.Origin] && prev[k] != s {
						t.Fatalf("step %d: service %s of unchanged %s was rebuilt", step, k, s.Origin)
					}
				}
				prev = got
			}
			if !slices.Equal(incEvents, fullEvents) {
				t.Errorf("quorum events differ:\nincremental %v\nfull %v", incEvents, fullEvents)
			}
		})
	}
}

// A re-plan that changes no quorum state keeps the planner's quorum map
// (no copy per re-plan); one that changes a state copies it first, so a
// map an earlier re-plan left is never written.
func TestPlanChangedQuorumCopiedOnChange(t *testing.T) {
	vs := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 1, true), rs("10.1.0.2:80", 1, true))
	vs.Quorum = 2
	other := vsConf("10.0.0.2:80", rs("10.1.0.3:80", 1, true))
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs, other}}
	p := NewPlanner(nil, quietLog())
	ctx := context.Background()
	health := map[HealthKey]RSHealth{}
	if _, err := p.PlanChanged(ctx, cfg, Inputs{Health: health}, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		rs       string
		up       bool
		vs       *config.VirtualServer
		copied   bool
		quorumUp bool
	}{
		{"other's real server down: its quorum, not vs's", "10.1.0.3:80", false, other, true, true},
		{"other's real server back", "10.1.0.3:80", true, other, true, true},
		{"a real server of vs up again: no change", "10.1.0.2:80", true, vs, false, true},
		{"quorum lost", "10.1.0.1:80", false, vs, true, false},
		{"still lost", "10.1.0.2:80", false, vs, false, false},
		{"regained", "10.1.0.1:80", true, vs, false, false}, // 1 of 2: still below quorum
		{"quorum back", "10.1.0.2:80", true, vs, true, true},
	}
	for _, st := range steps {
		before := p.quorum
		snapshot := maps.Clone(before)
		health[HealthKey{VS: st.vs.Key(), RS: ap(st.rs)}] = RSHealth{Up: st.up, Weight: -1}
		if _, err := p.PlanChanged(ctx, cfg, Inputs{Health: health}, map[string]bool{st.vs.Key(): true}); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(before, snapshot) {
			t.Fatalf("%s: the previous quorum map was written: %v, was %v", st.name, before, snapshot)
		}
		if copied := reflect.ValueOf(p.quorum).UnsafePointer() != reflect.ValueOf(before).UnsafePointer(); copied != st.copied {
			t.Errorf("%s: quorum map copied = %v, want %v", st.name, copied, st.copied)
		}
		if got := p.quorum[vs.Key()]; got != st.quorumUp {
			t.Errorf("%s: quorum of %s = %v, want %v", st.name, vs.Key(), got, st.quorumUp)
		}
	}
}
