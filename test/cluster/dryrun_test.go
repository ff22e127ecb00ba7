package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
	"hakeep/internal/vmtest"
)

// dryRunVS is the virtual server of the dry-run test; weight2 is the
// second real server's weight. Without checkers the desired table follows
// the file (the host may have no IPVS: the plan is computed from the
// configuration either way).
func dryRunVS(weight2 int) string {
	return fmt.Sprintf(`virtual_server 10.99.0.100 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.99.0.201 80 {
        weight 1
    }
    real_server 10.99.0.202 80 {
        weight %d
    }
}
`, weight2)
}

// TestDryRunInLab: `hactl config push --dry-run` on one director shows
// each director's own changes (h2's @h2 priority line is h2's alone),
// and nothing changes anywhere: the committed version, every director's
// running version, the VIPs and the planned IPVS table stay as they were.
func TestDryRunInLab(t *testing.T) {
	if vmtest.InVM() {
		t.Skip("VRRP + cluster only: runs on the host (see TestPushInLab)")
	}
	hakeepd, hactlBin := build(t)
	l := labtest.New(t, 3, lab.Options{})
	initial := instances([3]int{150, 100, 50}, "") + dryRunVS(2)
	startCluster(t, l, hakeepd, hactlBin, initial)
	// Commit the file itself first, so there is a version to keep.
	file := filepath.Join(t.TempDir(), "lb.conf")
	os.WriteFile(file, []byte(initial), 0o644)
	if out, err := hactl(t, hactlBin, l, "h1", "config", "push", file, "--wait", "--timeout", "20s"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if _, err := l.WaitOwner(vip1, "h1", 10*time.Second, hosts...); err != nil {
		t.Fatal(err)
	}
	before := map[string]api.Status{}
	for _, h := range hosts {
		st, err := status(t, hactlBin, l, h)
		if err != nil {
			t.Fatal(err)
		}
		before[h] = st
	}
	version := before["h1"].Config.Version

	// The change: h2 would take VI_1 (priority 200), VI_2's VIP moves to
	// VI_1, a VIP is added, the second real server is re-weighted.
	next := instances([3]int{150, 200, 50}, "        10.99.0.102/32\n        10.99.0.101/32\n")
	next = strings.Replace(next, "    virtual_ipaddress {\n        10.99.0.101/32\n    }\n", "", 1) + dryRunVS(5)
	modified := filepath.Join(t.TempDir(), "next.conf")
	os.WriteFile(modified, []byte(next), 0o644)

	start := time.Now()
	out, err := hactl(t, hactlBin, l, "h3", "--json", "config", "push", "--dry-run", modified)
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	t.Logf("dry run of three directors answered in %v", time.Since(start))
	// hactl's output here is stdout and stderr together: the file's
	// warnings (VI_2 is left without a VIP) come before the JSON.
	var res api.PlanResult
	i := strings.Index(out, "{\n")
	if i < 0 {
		t.Fatalf("dry run --json printed no JSON:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out[i:]), &res); err != nil {
		t.Fatalf("dry run --json: %v\n%s", err, out)
	}
	const restart = "VIPs changed; restarts (VRRP state reset)"
	common := []api.PlanChange{
		{Kind: api.PlanInstance, Object: "VI_2", Change: api.PlanChanged, Detail: restart},
		{Kind: api.PlanVIP, Object: "10.99.0.101/32", Change: api.PlanMoved, Detail: "VI_2 -> VI_1"},
		{Kind: api.PlanVIP, Object: "10.99.0.102/32", Change: api.PlanAdded, Detail: "VI_1"},
		{Kind: api.PlanRealServer, Object: "TCP 10.99.0.100:80 -> 10.99.0.202:80", Change: api.PlanReweighted, Detail: "weight 2 -> 5"},
	}
	vi1 := func(detail string) []api.PlanChange {
		return append([]api.PlanChange{{Kind: api.PlanInstance, Object: "VI_1", Change: api.PlanChanged, Detail: detail}}, common...)
	}
	want := []api.DirectorPlan{
		{Director: "h1", RunningVersion: version, Changes: vi1(restart)},
		{Director: "h2", RunningVersion: version, Changes: vi1("priority 100 -> 200; restarts (VRRP state reset)")},
		{Director: "h3", RunningVersion: version, Changes: vi1(restart)},
	}
	if !reflect.DeepEqual(res.Directors, want) {
		t.Errorf("dry run:\n%s\nwant:\n%s", planRows(res.Directors), planRows(want))
	}

	// The table says the same, per director, and that nothing was
	// committed.
	out, err = hactl(t, hactlBin, l, "h1", "config", "push", "--dry-run", modified)
	if err != nil {
		t.Fatalf("dry run (table): %v\n%s", err, out)
	}
	t.Logf("hactl config push --dry-run:\n%s", out)
	for _, row := range [][]string{
		{"h2 ", "vrrp_instance", "VI_1", "changed", "priority 100 -> 200"},
		{"h3 ", "vip", "10.99.0.101/32", "moved", "VI_2 -> VI_1"},
		{"h1 ", "real_server", "TCP 10.99.0.100:80 -> 10.99.0.202:80", "reweighted", "weight 2 -> 5"},
		{fmt.Sprintf("h1: 5 changes against version %d", version)},
		{"dry run: nothing was committed"},
	} {
		if !hasRow(out, row...) {
			t.Errorf("table lacks a row with %q:\n%s", row, out)
		}
	}

	// Nothing changed anywhere.
	if err := l.StableOwner(vip1, "h1", 300*time.Millisecond, hosts...); err != nil {
		t.Error(err)
	}
	if who := l.WhoHas(vip1b, hosts...); len(who) != 0 {
		t.Errorf("the dry run's new VIP is on %v", who)
	}
	for _, h := range hosts {
		st, err := status(t, hactlBin, l, h)
		if err != nil {
			t.Fatal(err)
		}
		b := before[h]
		if st.Config.Version != version || st.Config.Running != version || st.Config.SHA256 != b.Config.SHA256 {
			t.Errorf("%s: config %+v after the dry run, want version %d running", h, st.Config, version)
		}
		if !reflect.DeepEqual(instanceShape(st), instanceShape(b)) || !reflect.DeepEqual(vsShape(st), vsShape(b)) {
			t.Errorf("%s changed: instances %v -> %v, virtual servers %v -> %v", h, instanceShape(b), instanceShape(st), vsShape(b), vsShape(st))
		}
	}
	if out, err := hactl(t, hactlBin, l, "h2", "config", "show"); err != nil || !strings.Contains(out, initial) {
		t.Errorf("config show after the dry run: %v\n%s", err, out)
	}
}

// hasRow reports whether a line of out holds every part, in order.
func hasRow(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

func planRows(ps []api.DirectorPlan) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s (running %d) %s\n", p.Director, p.RunningVersion, p.Error)
		for _, c := range p.Changes {
			fmt.Fprintf(&b, "  %s | %s | %s | %s\n", c.Kind, c.Object, c.Change, c.Detail)
		}
	}
	return b.String()
}

// instanceShape is what the dry run must not touch: each instance's
// priority and VIPs.
func instanceShape(st api.Status) []string {
	var out []string
	for _, i := range st.Instances {
		out = append(out, fmt.Sprintf("%s prio %d vips %v", i.Name, i.Priority, i.VIPs))
	}
	return out
}

func vsShape(st api.Status) []string {
	var out []string
	for _, vs := range st.VirtualServers {
		for _, rs := range vs.RealServers {
			out = append(out, fmt.Sprintf("%s %s:%d w%d", vs.Key, rs.Address, rs.Port, rs.Weight))
		}
	}
	return out
}
