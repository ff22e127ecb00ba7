package dataplane

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"hakeep/checks"
	"hakeep/config"
	"hakeep/lvs"
)

// fakeProbes answers every checker by its connect address: down when
// listed.
type fakeProbes struct {
	mu   sync.Mutex
	down map[netip.AddrPort]bool
}

func (f *fakeProbes) set(addr string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[netip.MustParseAddrPort(addr)] = down
}

func (f *fakeProbes) prober(c checks.Checker) (checks.Prober, error) {
	return checks.ProberFunc(func(context.Context) checks.Result {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.down[c.Connect] {
			return checks.Result{OK: false, Weight: -1, Reason: "down (test)"}
		}
		return checks.Result{OK: true, Weight: -1, Reason: "up (test)"}
	}), nil
}

// checkedText: three virtual servers of two checked real servers each.
func checkedText() string {
	var b strings.Builder
	b.WriteString("global_defs {\n router_id t\n}\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "virtual_server 10.0.0.%d 80 {\n delay_loop 1\n lb_algo rr\n lb_kind NAT\n protocol TCP\n", i)
		for j := 1; j <= 2; j++ {
			fmt.Fprintf(&b, " real_server 10.0.%d.%d 80 {\n  weight 1\n  TCP_CHECK {\n   connect_timeout 1\n   retry 0\n  }\n }\n", i, j)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// checkedPlane runs a plane on cfg whose checkers are answered by a
// fakeProbes, against an in-memory kernel.
func checkedPlane(t *testing.T, cfg *config.Config) (*Plane, *fakeProbes, *lvs.Memory, func()) {
	t.Helper()
	probes := &fakeProbes{down: map[netip.AddrPort]bool{}}
	mem := lvs.NewMemory()
	p := New(cfg, Options{Log: quiet(), OpenIPVS: func() (lvs.Client, error) { return mem, nil },
		CheckOptions: func(o *checks.Options) { o.NewProber = probes.prober }})
	_, stop := runPlane(t, p)
	return p, probes, mem, stop
}

// tableShape renders a table: "10.0.0.1:80=10.0.1.1:80,10.0.1.2:80 ...",
// with each destination's "/weight" when weights is set.
func tableShape(tab lvs.Table, weights bool) string {
	var out []string
	for _, k := range tab.Keys() {
		var ds []string
		for _, d := range tab[k].SortedDests() {
			if weights {
				ds = append(ds, fmt.Sprintf("%s/%d", d.Key(), d.Weight))
			} else {
				ds = append(ds, d.Key().String())
			}
		}
		out = append(out, netip.AddrPortFrom(k.Addr, k.Port).String()+"="+strings.Join(ds, ","))
	}
	return strings.Join(out, " ")
}

// Checker transitions re-plan only the virtual servers they touch (the
// incremental path: partial plans and the effective health rebuilt per
// virtual server); the table and the published health follow them.
func TestTransitionsFollowIncrementally(t *testing.T) {
	p, probes, mem, stop := checkedPlane(t, parse(t, checkedText()))
	defer stop()
	shape := func(tab lvs.Table) string { return tableShape(tab, false) }
	steps := []struct {
		name string
		down map[string]bool
		want string
	}{
		{"all up", nil, "10.0.0.1:80=10.0.1.1:80,10.0.1.2:80 10.0.0.2:80=10.0.2.1:80,10.0.2.2:80 10.0.0.3:80=10.0.3.1:80,10.0.3.2:80"},
		{"one down", map[string]bool{"10.0.2.1:80": true}, "10.0.0.1:80=10.0.1.1:80,10.0.1.2:80 10.0.0.2:80=10.0.2.2:80 10.0.0.3:80=10.0.3.1:80,10.0.3.2:80"},
		{"two more down in two virtual servers", map[string]bool{"10.0.1.2:80": true, "10.0.3.1:80": true}, "10.0.0.1:80=10.0.1.1:80 10.0.0.2:80=10.0.2.2:80 10.0.0.3:80=10.0.3.2:80"},
		{"first back", map[string]bool{"10.0.2.1:80": false}, "10.0.0.1:80=10.0.1.1:80 10.0.0.2:80=10.0.2.1:80,10.0.2.2:80 10.0.0.3:80=10.0.3.2:80"},
		{"all back", map[string]bool{"10.0.1.2:80": false, "10.0.3.1:80": false}, "10.0.0.1:80=10.0.1.1:80,10.0.1.2:80 10.0.0.2:80=10.0.2.1:80,10.0.2.2:80 10.0.0.3:80=10.0.3.1:80,10.0.3.2:80"},
	}
	for _, st := range steps {
		for a, d := range st.down {
			probes.set(a, d)
		}
		waitTable(t, mem, st.name+": "+st.want, func(tab lvs.Table) bool { return shape(tab) == st.want })
		h := p.Snapshot().Health
		for a, d := range st.down {
			rs := netip.MustParseAddrPort(a)
			vs := fmt.Sprintf("10.0.0.%d:80/TCP", rs.Addr().As4()[2])
			if got, ok := h.Get(lvs.HealthKey{VS: vs, RS: rs}); !ok || got.Up == d {
				// The snapshot follows the plan that programmed the table.
				t.Errorf("%s: published health of %s in %s: %+v (known %v), want up=%v", st.name, rs, vs, got, ok, !d)
			}
		}
	}
}

// Reloads that keep unchanged virtual servers' checks (checks.Build,
// Manager.ReloadKeeping): a kept real server keeps its result and its
// checker keeps running; changed and removed virtual servers follow the
// file.
func TestReloadKeepsCheckers(t *testing.T) {
	running := parse(t, checkedText())
	p, probes, mem, stop := checkedPlane(t, running)
	defer stop()
	shape := func(tab lvs.Table) string { return tableShape(tab, true) }
	probes.set("10.0.2.1:80", true)
	want := "10.0.0.1:80=10.0.1.1:80/1,10.0.1.2:80/1 10.0.0.2:80=10.0.2.2:80/1 10.0.0.3:80=10.0.3.1:80/1,10.0.3.2:80/1"
	waitTable(t, mem, "one down: "+want, func(tab lvs.Table) bool { return shape(tab) == want })
	steps := []struct {
		name, text string
		up         string // a real server to bring up after the reload
		want       string
	}{
		{"third changed", strings.Replace(checkedText(), "real_server 10.0.3.2 80 {\n  weight 1", "real_server 10.0.3.2 80 {\n  weight 2", 1), "",
			"10.0.0.1:80=10.0.1.1:80/1,10.0.1.2:80/1 10.0.0.2:80=10.0.2.2:80/1 10.0.0.3:80=10.0.3.1:80/1,10.0.3.2:80/2"},
		{"kept checker still runs", "", "10.0.2.1:80",
			"10.0.0.1:80=10.0.1.1:80/1,10.0.1.2:80/1 10.0.0.2:80=10.0.2.1:80/1,10.0.2.2:80/1 10.0.0.3:80=10.0.3.1:80/1,10.0.3.2:80/2"},
		{"first removed, lines moved", "\n\n" + strings.Replace(strings.Replace(checkedText(), "real_server 10.0.3.2 80 {\n  weight 1", "real_server 10.0.3.2 80 {\n  weight 2", 1),
			"virtual_server 10.0.0.1 80 {", "virtual_server 10.0.0.9 80 {", 1), "",
			"10.0.0.2:80=10.0.2.1:80/1,10.0.2.2:80/1 10.0.0.3:80=10.0.3.1:80/1,10.0.3.2:80/2 10.0.0.9:80=10.0.1.1:80/1,10.0.1.2:80/1"},
	}
	for _, st := range steps {
		if st.text != "" {
			cfg := parseReusing(t, st.text, running)
			if err := p.Reload(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			running = cfg
		}
		if st.up != "" {
			probes.set(st.up, false)
		}
		waitTable(t, mem, st.name+": "+st.want, func(tab lvs.Table) bool { return shape(tab) == st.want })
	}
	// The checks hold the file's real servers, no more.
	var got []string
	for _, rs := range p.Snapshot().Checks.State() {
		got = append(got, fmt.Sprintf("%s %s %v %d", rs.VirtualServer, rs.RealServer, rs.Up, len(rs.Checkers)))
	}
	wantChecks := "10.0.0.2:80/TCP 10.0.2.1:80 true 1,10.0.0.2:80/TCP 10.0.2.2:80 true 1,10.0.0.3:80/TCP 10.0.3.1:80 true 1," +
		"10.0.0.3:80/TCP 10.0.3.2:80 true 1,10.0.0.9:80/TCP 10.0.1.1:80 true 1,10.0.0.9:80/TCP 10.0.1.2:80 true 1"
	if strings.Join(got, ",") != wantChecks {
		t.Errorf("checks after the reloads:\n%s\nwant\n%s", strings.Join(got, ","), wantChecks)
	}
}

// A reload that removes a virtual server (and adds no checked real
// server) drops its real servers from the published health too, not
// only from the table.
func TestReloadForgetsRemovedHealth(t *testing.T) {
	running := parse(t, checkedText())
	p, probes, mem, stop := checkedPlane(t, running)
	defer stop()
	third := lvs.HealthKey{VS: "10.0.0.3:80/TCP", RS: netip.MustParseAddrPort("10.0.3.1:80")}
	probes.set(third.RS.String(), true)
	waitTable(t, mem, "three services, one of the third's real servers known down", func(tab lvs.Table) bool {
		h, known := p.Snapshot().Health.Get(third)
		return len(tab) == 3 && known && !h.Up
	})
	text := checkedText()
	text = text[:strings.Index(text, "virtual_server 10.0.0.3 80 {")]
	if err := p.Reload(context.Background(), parseReusing(t, text, running)); err != nil {
		t.Fatal(err)
	}
	waitTable(t, mem, "two services, the removed virtual server's health forgotten", func(tab lvs.Table) bool {
		_, known := p.Snapshot().Health.Get(third)
		return len(tab) == 2 && !known
	})
}

// A single director's health table shares the plane's per-virtual-server
// versions; a later result must not change a version already handed out
// (the planner reuses a virtual server's services when its version is
// the same).
func TestLocalHealthCopyOnWrite(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:80")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	s := &state{p: &Plane{}, health: localHealth{}}
	set := func(vs string, rs netip.AddrPort, up bool) {
		s.health.setAll(vs, []lvs.RSResult{{Addr: rs, RSHealth: lvs.RSHealth{Up: up, Weight: -1}}})
	}
	set("vs1", a, true)
	set("vs1", b, true)
	set("vs2", a, true)

	first := s.effectiveVS("vs1")
	if again := s.effectiveVS("vs1"); again != first {
		t.Fatal("an unchanged virtual server got a new version")
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"set", func() { set("vs1", a, false) }},
		{"delete", func() { s.health.delete("vs1", b) }},
	}
	for _, st := range steps {
		before := s.effectiveVS("vs1")
		snapshot := before.Map()
		st.do()
		if !maps.Equal(before.Map(), snapshot) {
			t.Fatalf("%s changed a version already handed out: %v, was %v", st.name, before.Map(), snapshot)
		}
		if after := s.effectiveVS("vs1"); after == before {
			t.Fatalf("%s: the changed virtual server kept its old version", st.name)
		}
	}
	if got := s.effectiveVS("vs1").Map(); len(got) != 1 || got[a].Up {
		t.Fatalf("vs1 = %v, want only %s, down", got, a)
	}
	s.health.delete("vs1", a)
	if got := s.effectiveVS("vs1"); got != nil {
		t.Fatalf("vs1 after its last real server went = %v, want nil", got)
	}
	if got := s.effectiveVS("vs2").Map(); len(got) != 1 || !got[a].Up {
		t.Fatalf("vs2 = %v", got)
	}
}
