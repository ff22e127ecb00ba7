package lvs

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"hakeep/config"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func rs(addr string, w int, checked bool) *config.RealServer {
	r := &config.RealServer{Addr: ap(addr), Weight: w}
	if checked {
		r.Checkers = []*config.Checker{{}}
	}
	return r
}

func vsConf(addr string, rss ...*config.RealServer) *config.VirtualServer {
	return &config.VirtualServer{Addr: ap(addr), Protocol: "TCP", LBAlgo: "wrr", LBKind: "NAT", Quorum: 1, RealServers: rss}
}

// dests renders a service's destinations as "addr:port/weight/method".
func dests(s *Service) []string {
	var out []string
	for _, d := range s.SortedDests() {
		out = append(out, d.Key().String()+"/"+itoa(d.Weight)+"/"+d.Method.String())
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestFromConfigServices(t *testing.T) {
	persist := vsConf("10.0.0.1:443", rs("10.1.0.1:443", 1, false))
	persist.PersistenceTimeout = 300 * time.Second
	persist.PersistenceGranularity = netip.MustParseAddr("255.255.255.0")
	persist.LBAlgo = "sh"
	persist.SchedFlags = []string{"sh-port", "sh-fallback"}
	fwm := &config.VirtualServer{FWMark: 7, Protocol: "TCP", LBAlgo: "rr", LBKind: "DR", Quorum: 1,
		RealServers: []*config.RealServer{rs("10.1.0.1:0", 1, false)}}
	grp := &config.VirtualServer{Group: "web", Protocol: "UDP", LBAlgo: "rr", LBKind: "DR", Quorum: 1,
		RealServers: []*config.RealServer{rs("10.1.0.1:53", 2, false)}}
	v6 := vsConf("[fd00::1]:80", rs("[fd00::10]:8080", 3, false))
	tun := vsConf("10.0.0.2:80", rs("10.1.0.2:80", 1, false))
	tun.RealServers[0].RealServerOptions = &config.RealServerOptions{LVSMethod: "TUN"}
	cfg := &config.Config{
		VirtualServers: []*config.VirtualServer{persist, fwm, grp, v6, tun},
		VSGroups: []*config.VirtualServerGroup{{Name: "web", Members: []*config.VSGMember{
			{Addr: netip.MustParseAddr("10.0.1.1"), LastAddr: netip.MustParseAddr("10.0.1.3"), Port: 53},
			{FWMark: 9},
		}}},
	}
	d, err := FromConfig(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range d.Table.Keys() {
		keys = append(keys, k.String())
	}
	want := []string{"TCP 10.0.0.1:443", "TCP 10.0.0.2:80", "UDP 10.0.1.1:53", "UDP 10.0.1.2:53", "UDP 10.0.1.3:53", "TCP [fd00::1]:80", "FWM 7", "FWM 9"}
	if !slices.Equal(keys, want) {
		t.Fatalf("services:\n got  %q\n want %q", keys, want)
	}
	p := d.Table[ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 443}]
	if p.Scheduler != "sh" || p.Flags != FlagPersistent|FlagSched1|FlagSched2 || p.Timeout != 300 || FormatNetmask(AFInet, p.Netmask) != "255.255.255.0" {
		t.Errorf("persistent service: %+v", p)
	}
	if got := dests(d.Table[ServiceKey{Family: AFInet, FWMark: 7}]); !slices.Equal(got, []string{"10.1.0.1:0/1/Route"}) {
		t.Errorf("fwmark dests %q", got)
	}
	if got := dests(d.Table[ServiceKey{Family: AFInet6, Proto: ProtoTCP, Addr: netip.MustParseAddr("fd00::1"), Port: 80}]); !slices.Equal(got, []string{"[fd00::10]:8080/3/Masq"}) {
		t.Errorf("v6 dests %q", got)
	}
	if got := dests(d.Table[ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.2"), Port: 80}]); !slices.Equal(got, []string{"10.1.0.2:80/1/Tunnel"}) {
		t.Errorf("per real server method: %q", got)
	}
}

func TestFromConfigHealth(t *testing.T) {
	down := map[string]RSHealth{}
	tests := []struct {
		name   string
		mod    func(v *config.VirtualServer)
		health map[string]RSHealth // by real server address
		prevQ  *bool
		want   []string
		quorum bool
		events []string
	}{
		{name: "all up", health: down, want: []string{"10.1.0.1:80/1/Masq", "10.1.0.2:80/2/Masq"}, quorum: true},
		{name: "one down is removed", health: map[string]RSHealth{"10.1.0.1:80": {Up: false, Weight: -1}},
			want: []string{"10.1.0.2:80/2/Masq"}, quorum: true},
		{name: "inhibit_on_failure keeps it at weight 0", mod: func(v *config.VirtualServer) { v.InhibitOnFailure = true },
			health: map[string]RSHealth{"10.1.0.1:80": {Up: false, Weight: -1}},
			want:   []string{"10.1.0.1:80/0/Masq", "10.1.0.2:80/2/Masq"}, quorum: true},
		{name: "dynamic weight", health: map[string]RSHealth{"10.1.0.2:80": {Up: true, Weight: 9}},
			want: []string{"10.1.0.1:80/1/Masq", "10.1.0.2:80/9/Masq"}, quorum: true},
		{name: "alpha: unknown health is down", mod: func(v *config.VirtualServer) { v.Alpha = true },
			health: map[string]RSHealth{"10.1.0.2:80": {Up: true, Weight: -1}},
			want:   []string{"10.1.0.2:80/2/Masq"}, quorum: true},
		{name: "all down: sorry server", mod: func(v *config.VirtualServer) {
			v.SorryServer = &config.SorryServer{Addr: ap("10.9.0.1:80")}
			v.QuorumDown = "/bin/down"
		},
			health: map[string]RSHealth{"10.1.0.1:80": {Weight: -1}, "10.1.0.2:80": {Weight: -1}},
			want:   []string{"10.9.0.1:80/1/Masq"}, quorum: false, events: []string{"down initial /bin/down"}},
		{name: "sorry_server_inhibit standby at weight 0", mod: func(v *config.VirtualServer) {
			v.SorryServer = &config.SorryServer{Addr: ap("10.9.0.1:80"), LVSMethod: "DR"}
			v.SorryServerInhibit = true
		}, health: down, want: []string{"10.1.0.1:80/1/Masq", "10.1.0.2:80/2/Masq", "10.9.0.1:80/0/Route"}, quorum: true},
		// quorum 3, hysteresis 1: up needs >= 4, down needs < 2.
		{name: "hysteresis keeps quorum up at weight 2", mod: quorum31, prevQ: ptr(true),
			health: map[string]RSHealth{"10.1.0.1:80": {Weight: -1}}, want: []string{"10.1.0.2:80/2/Masq"}, quorum: true},
		{name: "hysteresis: lost below 2", mod: quorum31, prevQ: ptr(true),
			health: map[string]RSHealth{"10.1.0.2:80": {Weight: -1}}, quorum: false, events: []string{"down /bin/down"},
			want: []string{"10.9.0.1:80/1/Masq"}},
		{name: "hysteresis: not regained at 3", mod: quorum31, prevQ: ptr(false),
			health: map[string]RSHealth{"10.1.0.2:80": {Up: true, Weight: 3}, "10.1.0.1:80": {Weight: -1}}, quorum: false,
			want: []string{"10.9.0.1:80/1/Masq"}},
		{name: "hysteresis: regained at 4", mod: quorum31, prevQ: ptr(false),
			health: map[string]RSHealth{"10.1.0.2:80": {Up: true, Weight: 4}, "10.1.0.1:80": {Weight: -1}}, quorum: true,
			want: []string{"10.1.0.2:80/4/Masq"}, events: []string{"up /bin/up"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 1, true), rs("10.1.0.2:80", 2, true))
			if tc.mod != nil {
				tc.mod(v)
			}
			in := Inputs{Health: map[HealthKey]RSHealth{}}
			for a, h := range tc.health {
				in.Health[HealthKey{v.Key(), ap(a)}] = h
			}
			if tc.prevQ != nil {
				in.Quorum = map[string]bool{v.Key(): *tc.prevQ}
			}
			d, err := FromConfig(&config.Config{VirtualServers: []*config.VirtualServer{v}}, in)
			if err != nil {
				t.Fatal(err)
			}
			s := d.Table[ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}]
			if got := dests(s); !slices.Equal(got, tc.want) {
				t.Errorf("dests %q, want %q", got, tc.want)
			}
			if d.Quorum[v.Key()] != tc.quorum {
				t.Errorf("quorum %v, want %v", d.Quorum[v.Key()], tc.quorum)
			}
			var ev []string
			for _, e := range d.Events {
				s := "down"
				if e.Up {
					s = "up"
				}
				if e.Initial {
					s += " initial"
				}
				ev = append(ev, s+" "+e.Script)
			}
			if !slices.Equal(ev, tc.events) {
				t.Errorf("events %q, want %q", ev, tc.events)
			}
		})
	}
}

func quorum31(v *config.VirtualServer) {
	v.Quorum, v.Hysteresis = 3, 1
	v.QuorumUp, v.QuorumDown = "/bin/up", "/bin/down"
	v.SorryServer = &config.SorryServer{Addr: ap("10.9.0.1:80")}
}

func ptr[T any](v T) *T { return &v }

func TestFromConfigHASuspend(t *testing.T) {
	v := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 1, false))
	v.HASuspend = true
	w := vsConf("10.0.0.2:80", rs("10.1.0.1:80", 1, false))
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{v, w}}
	master := map[netip.Addr]bool{}
	in := Inputs{Master: func(a netip.Addr) bool { return master[a] }}
	d, err := FromConfig(cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Table) != 1 {
		t.Fatalf("BACKUP: %v, want only the service without ha_suspend", d.Table.Keys())
	}
	master[netip.MustParseAddr("10.0.0.1")] = true
	if d, _ = FromConfig(cfg, in); len(d.Table) != 2 {
		t.Fatalf("MASTER: %v", d.Table.Keys())
	}
}

func TestFromConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(v *config.VirtualServer, c *config.Config)
	}{
		{"unknown scheduler", func(v *config.VirtualServer, _ *config.Config) { v.LBAlgo = "fastest" }},
		{"unknown lb_kind", func(v *config.VirtualServer, _ *config.Config) { v.LBKind = "MAGIC" }},
		{"unknown protocol", func(v *config.VirtualServer, _ *config.Config) { v.Protocol = "ICMP" }},
		{"missing group", func(v *config.VirtualServer, _ *config.Config) { v.Group = "nope" }},
		{"duplicate service", func(v *config.VirtualServer, c *config.Config) {
			c.VirtualServers = append(c.VirtualServers, vsConf("10.0.0.1:80"))
		}},
		{"mixed families without TUN", func(v *config.VirtualServer, _ *config.Config) {
			v.RealServers = append(v.RealServers, rs("[fd00::1]:80", 1, false))
		}},
		{"bad sched flag", func(v *config.VirtualServer, _ *config.Config) { v.SchedFlags = []string{"turbo"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 1, false))
			c := &config.Config{VirtualServers: []*config.VirtualServer{v}}
			tc.mod(v, c)
			if _, err := FromConfig(c, Inputs{}); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

type calls struct{ got []string }

func (c *calls) RunScript(_ context.Context, script, _ string) { c.got = append(c.got, script) }

func TestPlannerOmegaAndMasterOf(t *testing.T) {
	v := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 1, false))
	v.Omega, v.QuorumDown = true, "/bin/down"
	w := vsConf("10.0.0.2:80", rs("10.1.0.1:80", 1, false))
	w.QuorumDown = "/bin/other"
	w.HASuspend = true
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{v, w},
		Instances: []*config.VRRPInstance{{Name: "VI_1", VIPs: []*config.VIP{{Prefix: netip.MustParsePrefix("10.0.0.2/32")}}}}}
	c := &calls{}
	p := NewPlanner(c, nil)
	master := false
	tab, err := p.Plan(context.Background(), cfg, Inputs{Master: MasterOf(cfg, func(n string) bool { return n == "VI_1" && master })})
	if err != nil {
		t.Fatal(err)
	}
	if len(tab) != 1 {
		t.Fatalf("BACKUP of VI_1: %v", tab.Keys())
	}
	master = true
	if tab, _ = p.Plan(context.Background(), cfg, Inputs{Master: MasterOf(cfg, func(n string) bool { return n == "VI_1" && master })}); len(tab) != 2 {
		t.Fatalf("MASTER of VI_1: %v", tab.Keys())
	}
	p.Shutdown(context.Background(), cfg)
	if !slices.Equal(c.got, []string{"/bin/down"}) {
		t.Fatalf("omega scripts at shutdown: %q", c.got)
	}
}
