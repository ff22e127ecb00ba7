package vip

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"hakeep/config"
)

func TestSpecFromConfig(t *testing.T) {
	const conf = `
global_defs {
    vrrp_garp_master_delay 2
    vrrp_garp_master_repeat 3
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    use_vmac
    virtual_ipaddress {
        10.99.0.100/24 brd + dev eth0 label eth0:vip scope global
        10.99.0.101
        fd00:99::100/64
    }
    virtual_ipaddress_excluded {
        10.98.0.1/32 scope link
    }
    virtual_routes {
        192.0.2.0/24 via 10.99.0.1 metric 7 table 100
        blackhole 198.51.100.0/24
    }
    virtual_rules {
        from 10.99.0.100/32 table 100 priority 1000
        to 203.0.113.0/24 table main fwmark 0x10/0xff
    }
}
`
	cfg, diags := config.Parse("test.conf", []byte(conf), config.Options{})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	s, err := SpecFromConfig(cfg.Instances[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.Interface != "vrrp.51" || s.Instance != "VI_1" {
		t.Errorf("interface %q instance %q", s.Interface, s.Instance)
	}
	if s.Timing.MasterDelay != 2*time.Second || s.Timing.MasterRepeat != 3 {
		t.Errorf("timing %+v", s.Timing)
	}
	if len(s.Addresses) != 2 {
		t.Fatalf("addresses %+v", s.Addresses)
	}
	a := s.Addresses[0]
	if a.Prefix != netip.MustParsePrefix("10.99.0.100/24") || a.Dev != "eth0" || a.Label != "eth0:vip" ||
		a.Broadcast != netip.MustParseAddr("10.99.0.255") || a.Scope != ScopeGlobal {
		t.Errorf("first VIP %+v", a)
	}
	if s.Addresses[1].Prefix != netip.MustParsePrefix("10.99.0.101/32") || s.Addresses[1].Dev != "" {
		t.Errorf("second VIP %+v", s.Addresses[1])
	}
	ex := map[netip.Prefix]Address{}
	for _, a := range s.Excluded {
		ex[a.Prefix] = a
	}
	if a, ok := ex[netip.MustParsePrefix("10.98.0.1/32")]; !ok || a.Scope != ScopeLink {
		t.Errorf("excluded %+v", s.Excluded)
	}
	// The IPv6 VIP differs in family from the instance: keepalived 2.2
	// ignores it (the config reader warns), so it is installed nowhere.
	for _, a := range append(append([]Address{}, s.Addresses...), s.Excluded...) {
		if a.Prefix.Addr().Is6() {
			t.Errorf("IPv6 VIP of an IPv4 instance installed: %+v", a)
		}
	}
	if len(s.Routes) != 2 || s.Routes[0].Table != 100 || s.Routes[0].Metric != 7 || s.Routes[0].Via != netip.MustParseAddr("10.99.0.1") || !s.Routes[1].Blackhole {
		t.Errorf("routes %+v", s.Routes)
	}
	if len(s.Rules) != 2 || s.Rules[0].Priority != 1000 || s.Rules[0].Table != 100 || s.Rules[1].Table != 254 || s.Rules[1].Fwmark != 0x10 {
		t.Errorf("rules %+v", s.Rules)
	}
}

func TestSpecFromConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, line, want string }{
		{"route type", "virtual_routes {\n unreachable 192.0.2.0/24\n}", "not supported"},
		{"table", "virtual_routes {\n 192.0.2.0/24 dev eth0 table nosuchtable\n}", "unknown routing table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress {\n 10.0.0.1\n }\n" + tc.line + "\n}\n"
			cfg, diags := config.Parse("t.conf", []byte(conf), config.Options{})
			if diags.HasErrors() || len(cfg.Instances) != 1 {
				t.Skipf("config rejects it itself: %v", diags)
			}
			_, err := SpecFromConfig(cfg.Instances[0])
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "t.conf:") {
				t.Fatalf("err = %v, want %q with file:line", err, tc.want)
			}
		})
	}
}

func TestParseScopeTable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Scope
		ok   bool
	}{{"", 0, true}, {"host", ScopeHost, true}, {"link", ScopeLink, true}, {"200", 200, true}, {"bogus", 0, false}} {
		got, err := parseScope(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseScope(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{{"", 0, true}, {"main", 254, true}, {"100", 100, true}, {"local", 255, true}, {"no such", 0, false}} {
		got, err := parseTable(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseTable(%q) = %v, %v", tc.in, got, err)
		}
	}
}
