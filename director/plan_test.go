package director

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/lvs"
)

// planConf is a director's file: two instances, one virtual server with
// two real servers. Each field is one piece the table tests vary.
type planConf struct {
	prio1       int
	vips1       []string
	vips2       []string
	vrid2       int
	weight2     int
	kind2       string // lb_kind of 10.0.1.2 ("" for the service's)
	extraRS     bool   // a third real server
	secondVS    bool   // a second virtual server (on VI_2's VIP)
	suspend     bool   // ... with ha_suspend
	noVS        bool
	thirdInst   bool
	blankLines  int // shifts every source position
	lbAlgo      string
	persistence int
}

func basePlanConf() planConf {
	return planConf{prio1: 100, vips1: []string{"10.0.0.100/32"}, vips2: []string{"10.0.0.101/32"}, vrid2: 52, weight2: 1, lbAlgo: "rr"}
}

func (c planConf) text() string {
	var b strings.Builder
	b.WriteString(strings.Repeat("\n", c.blankLines))
	inst := func(name string, vrid, prio int, vips []string) {
		fmt.Fprintf(&b, "vrrp_instance %s {\n interface lo\n virtual_router_id %d\n priority %d\n virtual_ipaddress {\n", name, vrid, prio)
		for _, v := range vips {
			fmt.Fprintf(&b, "  %s\n", v)
		}
		b.WriteString(" }\n}\n")
	}
	inst("VI_1", 51, c.prio1, c.vips1)
	inst("VI_2", c.vrid2, 100, c.vips2)
	if c.thirdInst {
		inst("VI_3", 53, 100, []string{"10.0.0.103/32"})
	}
	if !c.noVS {
		fmt.Fprintf(&b, "virtual_server 10.0.0.100 80 {\n lb_algo %s\n lb_kind NAT\n protocol TCP\n", c.lbAlgo)
		if c.persistence > 0 {
			fmt.Fprintf(&b, " persistence_timeout %d\n", c.persistence)
		}
		b.WriteString(" real_server 10.0.1.1 80 {\n  weight 1\n }\n")
		fmt.Fprintf(&b, " real_server 10.0.1.2 80 {\n  weight %d\n", c.weight2)
		if c.kind2 != "" {
			fmt.Fprintf(&b, "  lvs_method %s\n", c.kind2)
		}
		// Checked, so its health counts (without a result it is up).
		b.WriteString("  TCP_CHECK {\n   connect_timeout 3\n  }\n")
		b.WriteString(" }\n")
		if c.extraRS {
			b.WriteString(" real_server 10.0.1.3 80 {\n  weight 5\n }\n")
		}
		b.WriteString("}\n")
	}
	if c.secondVS {
		b.WriteString("virtual_server 10.0.0.101 443 {\n lb_algo wrr\n protocol TCP\n")
		if c.suspend {
			b.WriteString(" ha_suspend\n")
		}
		b.WriteString(" real_server 10.0.1.9 443 {\n  weight 2\n }\n}\n")
	}
	return b.String()
}

func TestPlanDiff(t *testing.T) {
	const restart = "VIPs changed; restarts (VRRP state reset)"
	both := planInputs{vrrp: true, ipvs: true}
	tests := []struct {
		name   string
		change func(*planConf)
		in     planInputs
		want   []api.PlanChange
	}{
		{name: "same file", change: func(*planConf) {}, in: both, want: []api.PlanChange{}},
		{name: "only source positions move", change: func(c *planConf) { c.blankLines = 7 }, in: both, want: []api.PlanChange{}},
		{name: "instance priority", change: func(c *planConf) { c.prio1 = 150 }, in: both, want: []api.PlanChange{
			{Kind: api.PlanInstance, Object: "VI_1", Change: api.PlanChanged, Detail: "priority 100 -> 150 (in place)"},
		}},
		{name: "instance vrid restarts it", change: func(c *planConf) { c.vrid2 = 62 }, in: both, want: []api.PlanChange{
			{Kind: api.PlanInstance, Object: "VI_2", Change: api.PlanChanged, Detail: "virtual_router_id 52 -> 62; restarts (VRRP state reset)"},
		}},
		{name: "add VIP", change: func(c *planConf) { c.vips1 = append(c.vips1, "10.0.0.102/32") }, in: both, want: []api.PlanChange{
			{Kind: api.PlanInstance, Object: "VI_1", Change: api.PlanChanged, Detail: restart},
			{Kind: api.PlanVIP, Object: "10.0.0.102/32", Change: api.PlanAdded, Detail: "VI_1"},
		}},
		{name: "remove VIP", change: func(c *planConf) { c.vips2 = nil }, in: both, want: []api.PlanChange{
			{Kind: api.PlanInstance, Object: "VI_2", Change: api.PlanChanged, Detail: restart},
			{Kind: api.PlanVIP, Object: "10.0.0.101/32", Change: api.PlanRemoved, Detail: "VI_2"},
		}},
		{name: "move VIP between instances", change: func(c *planConf) { c.vips1, c.vips2 = nil, []string{"10.0.0.101/32", "10.0.0.100/32"} }, in: both, want: []api.PlanChange{
			{Kind: api.PlanInstance, Object: "VI_1", Change: api.PlanChanged, Detail: restart},
			{Kind: api.PlanInstance, Object: "VI_2", Change: api.PlanChanged, Detail: restart},
			{Kind: api.PlanVIP, Object: "10.0.0.100/32", Change: api.PlanMoved, Detail: "VI_1 -> VI_2"},
		}},
		// The address set is swapped in place: VRRP keeps running.
		{name: "VIP prefix", change: func(c *planConf) { c.vips1 = []string{"10.0.0.100/24"} }, in: both, want: []api.PlanChange{
			{Kind: api.PlanVIP, Object: "10.0.0.100/24", Change: api.PlanChanged, Detail: "VI_1: 10.0.0.100/32 -> 10.0.0.100/24"},
		}},
		{name: "add and remove instance", change: func(c *planConf) { c.thirdInst = true }, in: both, want: []api.PlanChange{
			{Kind: api.PlanInstance, Object: "VI_3", Change: api.PlanAdded, Detail: "vrid 53 on lo, priority 100"},
			{Kind: api.PlanVIP, Object: "10.0.0.103/32", Change: api.PlanAdded, Detail: "VI_3"},
		}},
		{name: "reweight real server", change: func(c *planConf) { c.weight2 = 3 }, in: both, want: []api.PlanChange{
			{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.2:80", Change: api.PlanReweighted, Detail: "weight 1 -> 3"},
		}},
		{name: "forwarding method and weight", change: func(c *planConf) { c.weight2, c.kind2 = 2, "DR" }, in: both, want: []api.PlanChange{
			{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.2:80", Change: api.PlanChanged, Detail: "weight 1 -> 2; forward Masq -> Route"},
		}},
		{name: "add real server", change: func(c *planConf) { c.extraRS = true }, in: both, want: []api.PlanChange{
			{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.3:80", Change: api.PlanAdded, Detail: "weight 5, Masq"},
		}},
		{name: "add virtual server", change: func(c *planConf) { c.secondVS = true }, in: both, want: []api.PlanChange{
			{Kind: api.PlanService, Object: "TCP 10.0.0.101:443", Change: api.PlanAdded, Detail: "scheduler wrr, 1 real server(s)"},
			{Kind: api.PlanRealServer, Object: "TCP 10.0.0.101:443 -> 10.0.1.9:443", Change: api.PlanAdded, Detail: "weight 2, Masq"},
		}},
		{name: "ha_suspend service where its VIP's instance is BACKUP", change: func(c *planConf) { c.secondVS, c.suspend = true, true },
			in: planInputs{vrrp: true, ipvs: true, masters: map[string]bool{"VI_1": true}}, want: []api.PlanChange{}},
		{name: "ha_suspend service where its VIP's instance is MASTER", change: func(c *planConf) { c.secondVS, c.suspend = true, true },
			in: planInputs{vrrp: true, ipvs: true, masters: map[string]bool{"VI_2": true}}, want: []api.PlanChange{
				{Kind: api.PlanService, Object: "TCP 10.0.0.101:443", Change: api.PlanAdded, Detail: "scheduler wrr, 1 real server(s)"},
				{Kind: api.PlanRealServer, Object: "TCP 10.0.0.101:443 -> 10.0.1.9:443", Change: api.PlanAdded, Detail: "weight 2, Masq"},
			}},
		{name: "remove virtual server", change: func(c *planConf) { c.noVS = true }, in: both, want: []api.PlanChange{
			{Kind: api.PlanService, Object: "TCP 10.0.0.100:80", Change: api.PlanRemoved, Detail: "2 real server(s)"},
		}},
		{name: "scheduler", change: func(c *planConf) { c.lbAlgo = "wlc" }, in: both, want: []api.PlanChange{
			{Kind: api.PlanService, Object: "TCP 10.0.0.100:80", Change: api.PlanChanged, Detail: "scheduler rr -> wlc"},
		}},
		{name: "down real server stays out", change: func(c *planConf) { c.weight2 = 3 },
			in: planInputs{vrrp: true, ipvs: true, health: lvs.HealthTableOf(map[lvs.HealthKey]lvs.RSHealth{
				{VS: "10.0.0.100:80/TCP", RS: netip.MustParseAddrPort("10.0.1.2:80")}: {Up: false, Weight: -1},
			})}, want: []api.PlanChange{}},
		{name: "VRRP only director (-P) lists no IPVS", change: func(c *planConf) { c.prio1, c.weight2 = 150, 3 }, in: planInputs{vrrp: true}, want: []api.PlanChange{
			{Kind: api.PlanInstance, Object: "VI_1", Change: api.PlanChanged, Detail: "priority 100 -> 150 (in place)"},
		}},
		{name: "IPVS only director (-C) lists no VRRP", change: func(c *planConf) { c.prio1, c.weight2 = 150, 3 }, in: planInputs{ipvs: true}, want: []api.PlanChange{
			{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.2:80", Change: api.PlanReweighted, Detail: "weight 1 -> 3"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := basePlanConf()
			next := base
			tt.change(&next)
			cur, nxt := parseConf(t, base.text()), parseConf(t, next.text())
			got, err := planDiff(cur, nxt, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n%s\nwant:\n%s", rows(got), rows(tt.want))
			}
		})
	}
}

func rows(cs []api.PlanChange) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s | %s | %s | %s\n", c.Kind, c.Object, c.Change, c.Detail)
	}
	if len(cs) == 0 {
		b.WriteString("  (none)\n")
	}
	return b.String()
}

// TestPlanPerDirector: each director reads its own @id lines, and a text
// that does not parse for it is an error with file:line, never a plan.
func TestPlanPerDirector(t *testing.T) {
	base := basePlanConf().text()
	perNode := strings.Replace(base, " priority 100\n", "@d1 priority 100\n@d2 priority 200\n", 1)
	tests := []struct {
		id, text   string
		want       []api.PlanChange
		wantErrSub string
	}{
		{id: "d1", text: perNode, want: []api.PlanChange{}},
		{id: "d2", text: perNode, want: []api.PlanChange{{Kind: api.PlanInstance, Object: "VI_1", Change: api.PlanChanged, Detail: "priority 100 -> 200 (in place)"}}},
		{id: "d1", text: strings.Replace(base, "virtual_router_id 51", "virtual_router_id 351", 1), wantErrSub: "new.conf:3:"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			d, err := New(Options{ConfigID: tt.id, VRRP: true, Checks: true, Log: quietLog()}, parseConf(t, base))
			if err != nil {
				t.Fatal(err)
			}
			p := d.plan("new.conf", []byte(tt.text))
			if p.Director != tt.id {
				t.Errorf("director %q, want %q", p.Director, tt.id)
			}
			if tt.wantErrSub != "" {
				if p.Error == "" || !strings.Contains(strings.Join(p.Diagnostics, "\n"), tt.wantErrSub) || len(p.Changes) != 0 {
					t.Errorf("plan %+v: want an error with %q and no changes", p, tt.wantErrSub)
				}
				_, err := localView{d}.PlanLocal(context.Background(), api.PlanRequest{Name: "new.conf", Text: tt.text})
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != api.CodeInvalid || len(ae.Diagnostics) == 0 {
					t.Errorf("PlanLocal: %v, want CodeInvalid with diagnostics", err)
				}
				return
			}
			if p.Error != "" || !reflect.DeepEqual(p.Changes, tt.want) {
				t.Errorf("plan error %q:\n%s\nwant:\n%s", p.Error, rows(p.Changes), rows(tt.want))
			}
		})
	}
}

// TestPlanOverAPI runs the dry run the way hactl does on a director
// without a cluster: through the API's unix socket, against a running
// checks + IPVS side. The plan lists the change; the table and the
// running configuration stay as they were.
func TestPlanOverAPI(t *testing.T) {
	mem := lvs.NewMemory()
	cfg := parseConf(t, withServer)
	d := runStandalone(t, cfg, mem)
	waitService(t, mem, "10.0.0.100", true)
	sock := filepath.Join(t.TempDir(), "api.sock")
	srv := api.NewServer(api.Compose(localView{d}, api.Standalone("t")), quietLog())
	if err := srv.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := api.NewClient(sock)

	next := strings.Replace(withServer, "weight 1", "weight 4", 1)
	res, err := c.ConfigPlan(ctx, api.PlanRequest{Name: "next.conf", Text: next})
	if err != nil {
		t.Fatal(err)
	}
	want := []api.DirectorPlan{{Director: "t", Changes: []api.PlanChange{
		{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.1:80", Change: api.PlanReweighted, Detail: "weight 1 -> 4"},
	}}}
	if !reflect.DeepEqual(res.Directors, want) {
		t.Errorf("plan %+v, want %+v", res.Directors, want)
	}
	_, err = c.ConfigPlan(ctx, api.PlanRequest{Name: "next.conf", Text: "virtual_server 10.0.0.100 80 {\n lb_algo nope\n"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalid || !strings.Contains(strings.Join(ae.Diagnostics, "\n"), "next.conf:") {
		t.Errorf("broken text: %v, want CodeInvalid with next.conf:LINE diagnostics", err)
	}
	// Nothing changed: same configuration, same table.
	if d.current().cfg != cfg {
		t.Error("the dry run replaced the running configuration")
	}
	vss, _ := localView{d}.VirtualServers(ctx)
	if len(vss) != 1 || len(vss[0].RealServers) != 1 || vss[0].RealServers[0].Weight != 1 {
		t.Errorf("virtual servers after the dry run: %+v", vss)
	}
	waitService(t, mem, "10.0.0.100", true)
}
