package vrrp

import (
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// TestSocketMulticastSkipsNeighbourTable: a multicast advert must reach
// the wire whatever the kernel's neighbour table says about the group. The
// sender's table is poisoned with a permanent entry mapping the group to a
// MAC nobody has, the stand-in for the issue 10 failure (a table full of
// health checks' unresolved entries, where the group's entry cannot be
// created and the IP path drops the advert silently). Through the IP
// socket the frames would go to that MAC and the receiver would never see
// them; sent as link-layer frames they reach it.
func TestSocketMulticastSkipsNeighbourTable(t *testing.T) {
	l := newLab(t, 2)
	tests := []struct {
		name  string
		group string
		spec  *InstanceSpec
	}{
		{"IPv4 224.0.0.18", "224.0.0.18", &InstanceSpec{Name: "VI", Interface: "eth0", VRID: 11, Version: 3, Priority: 100,
			Interval: time.Second, VIPs: []netip.Addr{vip4}}},
		{"IPv6 ff02::12", "ff02::12", &InstanceSpec{Name: "VI", Interface: "eth0", VRID: 12, Version: 3, Priority: 100,
			Interval: time.Second, VIPs: []netip.Addr{netip.MustParseAddr("fd00:77::100")}, IPv6: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command("ip", "-n", l.hosts[0], "neigh", "replace", tt.group,
				"lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "permanent").CombinedOutput()
			if err != nil {
				t.Fatalf("poison the neighbour table: %v: %s", err, out)
			}
			a, b := l.listen(1, tt.spec), l.listen(2, tt.spec)
			s := tt.spec
			adv := &Advert{Version: s.Version, VRID: s.VRID, Priority: 150, Interval: s.Interval, Addrs: s.VIPs}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					if err := a.Send(adv); err != nil {
						t.Errorf("Send: %v", err)
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}()
			p, drops := recvOne(t, b, 5*time.Second)
			if p == nil {
				t.Fatalf("no advert received past the poisoned neighbour entry; drops: %v", drops)
			}
			if p.Src != a.Source() || p.Advert.VRID != s.VRID || p.Advert.Priority != 150 {
				t.Fatalf("got %+v advert %+v", p, p.Advert)
			}
		})
	}
}

func TestMulticastMAC(t *testing.T) {
	tests := []struct {
		group string
		mac   string
		proto uint16
	}{
		{"224.0.0.18", "01:00:5e:00:00:12", 0x0800},
		{"239.129.2.3", "01:00:5e:01:02:03", 0x0800}, // the 24th bit is not mapped
		{"ff02::12", "33:33:00:00:00:12", 0x86dd},
		{"ff05::1:3", "33:33:00:01:00:03", 0x86dd},
		{"10.0.0.1", "", 0},
		{"fe80::1", "", 0},
	}
	for _, tt := range tests {
		mac, proto := multicastMAC(netip.MustParseAddr(tt.group))
		if mac.String() != tt.mac || proto != tt.proto {
			t.Errorf("%s: got %s %#x, want %s %#x", tt.group, mac, proto, tt.mac, tt.proto)
		}
	}
}
