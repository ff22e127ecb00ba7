package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
)

// recvOne reads until a packet (not a drop) arrives, or fails after d.
func recvOne(t *testing.T, c Conn, d time.Duration) (*Packet, []error) {
	t.Helper()
	type res struct {
		p   *Packet
		err error
	}
	ch := make(chan res, 64)
	go func() {
		for {
			p, err := c.Recv()
			ch <- res{p, err}
			if err == nil || errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()
	var drops []error
	deadline := time.After(d)
	for {
		select {
		case r := <-ch:
			if r.err == nil {
				return r.p, drops
			}
			if errors.Is(r.err, net.ErrClosed) {
				t.Fatalf("conn closed; drops %v", drops)
			}
			drops = append(drops, r.err)
		case <-deadline:
			c.Close()
			return nil, drops
		}
	}
}

func TestSocketExchange(t *testing.T) {
	l := newLab(t, 2)
	vip6 := netip.MustParseAddr("fd00:77::100")
	tests := []struct {
		name string
		spec func(i int) *InstanceSpec
	}{
		{"v3 multicast", func(i int) *InstanceSpec {
			return &InstanceSpec{Name: "VI", Interface: "eth0", VRID: 7, Version: 3, Priority: 100, Interval: time.Second, VIPs: []netip.Addr{vip4}}
		}},
		{"v2 PASS multicast, other group", func(i int) *InstanceSpec {
			return &InstanceSpec{Name: "VI", Interface: "eth0", VRID: 8, Version: 2, Priority: 100, Interval: time.Second, VIPs: []netip.Addr{vip4},
				AuthType: AuthPass, AuthPass: "s3cret", Group: netip.MustParseAddr("224.0.0.19")}
		}},
		{"v3 unicast", func(i int) *InstanceSpec {
			return &InstanceSpec{Name: "VI", Interface: "eth0", VRID: 9, Version: 3, Priority: 100, Interval: time.Second, VIPs: []netip.Addr{vip4},
				SrcIP: l.addr(i), Peers: []netip.Addr{l.addr(3 - i)}, CheckUnicastSrc: true}
		}},
		{"v3 IPv6 multicast", func(i int) *InstanceSpec {
			return &InstanceSpec{Name: "VI", Interface: "eth0", VRID: 10, Version: 3, Priority: 100, Interval: time.Second, VIPs: []netip.Addr{vip6}, IPv6: true}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := l.listen(1, tt.spec(1)), l.listen(2, tt.spec(2))
			s := tt.spec(1)
			adv := &Advert{Version: s.Version, VRID: s.VRID, Priority: 150, Interval: s.Interval, Addrs: s.VIPs,
				AuthType: s.AuthType, AuthData: PassAuth(s.AuthPass)}
			// Send a few: the receiver may start reading after the first.
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
				t.Fatalf("no advert received; drops: %v", drops)
			}
			if p.TTL != TTL || p.Src != a.Source() || p.Advert.VRID != s.VRID || p.Advert.Priority != 150 || p.Advert.Addrs[0] != s.VIPs[0] {
				t.Fatalf("got %+v advert %+v", p, p.Advert)
			}
			if len(s.Peers) > 0 && p.Dst != l.addr(2) {
				t.Fatalf("unicast advert to %s", p.Dst)
			}
			m := newMachine(tt.spec(2), &recFx{})
			if r, d := m.check(p.Advert); r != 0 {
				t.Fatalf("receiver's instance check: %v %s", r, d)
			}
		})
	}
}

// TestSocketDropsBadTTL sends a valid advert with TTL 64 from a plain raw
// socket: it must be dropped as bad TTL.
func TestSocketDropsBadTTL(t *testing.T) {
	l := newLab(t, 2)
	spec := &InstanceSpec{Name: "VI", Interface: "eth0", VRID: 7, Version: 3, Priority: 100, Interval: time.Second, VIPs: []netip.Addr{vip4}}
	b := l.listen(2, spec)
	body, err := Encode(&Advert{Version: 3, VRID: 7, Priority: 150, Interval: time.Second, Addrs: spec.VIPs}, l.addr(1), DefaultGroup4, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	err = inNS(t, l.hosts[0], func() error {
		pc, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		p := ipv4.NewPacketConn(pc)
		ifi, _ := net.InterfaceByName("eth0")
		p.SetMulticastInterface(ifi)
		p.SetMulticastTTL(64)
		go func() {
			defer pc.Close()
			for {
				p.WriteTo(body, nil, &net.IPAddr{IP: DefaultGroup4.AsSlice()})
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p, drops := recvOne(t, b, time.Second)
	if p != nil {
		t.Fatalf("TTL 64 advert accepted: %+v", p)
	}
	if len(drops) == 0 || !errors.Is(drops[0], ErrTTL) {
		t.Fatalf("drops %v, want TTL", drops)
	}
}

const kaConf = `global_defs {
  router_id ka1
}
vrrp_instance VI_1 {
  state %s
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %s
  %s
  virtual_ipaddress {
    10.99.0.100/32
  }
}
`

// TestKeepalivedInterop: keepalived's adverts decode and pass our checks,
// and our higher-priority adverts make a keepalived master go BACKUP.
func TestKeepalivedInterop(t *testing.T) {
	tests := []struct {
		name    string
		version int
		extra   string
		intv    string
		spec    func(*InstanceSpec)
	}{
		{"v2 PASS", 2, "authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }", "1", func(s *InstanceSpec) {
			s.AuthType, s.AuthPass = AuthPass, "s3cret"
		}},
		{"v3 100ms", 3, "version 3", "0.1", func(s *InstanceSpec) { s.Interval = 100 * time.Millisecond }},
		{"v3 unicast", 3, "version 3\n  unicast_src_ip 10.77.0.11\n  unicast_peer {\n    10.77.0.12\n  }", "0.1", func(s *InstanceSpec) {
			s.Interval = 100 * time.Millisecond
			s.SrcIP = netip.MustParseAddr("10.77.0.12")
			s.Peers = []netip.Addr{netip.MustParseAddr("10.77.0.11")}
		}},
		{"v3 IPv6", 3, "version 3", "0.1", func(s *InstanceSpec) {
			s.Interval = 100 * time.Millisecond
			s.IPv6, s.VIPs = true, []netip.Addr{netip.MustParseAddr("fd00:77::100")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, 2)
			spec := &InstanceSpec{Name: "VI_1", Interface: "eth0", VRID: 51, Version: tt.version, Priority: 150, Interval: time.Second,
				VIPs: []netip.Addr{vip4}, Preempt: true}
			tt.spec(spec)
			c := l.listen(2, spec)
			conf := fmt.Sprintf(kaConf, "BACKUP", 100, tt.intv, tt.extra)
			if spec.IPv6 {
				conf = strings.Replace(conf, "10.99.0.100/32", "fd00:77::100/128", 1)
			}
			ka := l.keepalived(1, conf)
			l.waitLog(ka, 10*time.Second, "Entering MASTER STATE")
			p, drops := recvOne(t, c, 5*time.Second)
			if p == nil {
				t.Fatalf("no keepalived advert; drops %v", drops)
			}
			want := l.addr(1)
			if spec.IPv6 {
				want = netip.MustParseAddr("fe80::ff:fe00:b") // EUI-64 of 02:00:00:00:00:0b
			}
			if p.Src != want || p.Advert.Priority != 100 || p.Advert.Interval != spec.Interval {
				t.Fatalf("keepalived advert %+v from %s", p.Advert, p.Src)
			}
			m := newMachine(spec, &recFx{})
			if r, d := m.check(p.Advert); r != 0 {
				t.Fatalf("keepalived's advert fails our checks: %v %s", r, d)
			}
			// Now speak as a priority-150 master.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				adv := &Advert{Version: spec.Version, VRID: 51, Priority: 150, Interval: spec.Interval, Addrs: spec.VIPs,
					AuthType: spec.AuthType, AuthData: PassAuth(spec.AuthPass)}
				for {
					if err := c.Send(adv); err != nil {
						t.Errorf("send: %v", err)
					}
					select {
					case <-stop:
						return
					case <-time.After(spec.Interval):
					}
				}
			}()
			l.waitLog(ka, 5*time.Second, "Entering BACKUP STATE")
		})
	}
}

// TestSocketVMAC: an instance on a VMAC (macvlan 00:00:5e:00:01:VRID, no
// address of its own) sends from its base interface's address and hears
// its peers.
func TestSocketVMAC(t *testing.T) {
	l := newLab(t, 2)
	err := inNS(t, l.hosts[0], func() error {
		parent, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		mac, _ := net.ParseMAC("00:00:5e:00:01:33")
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "vrrp.51", ParentIndex: parent.Attrs().Index, HardwareAddr: mac},
			Mode: netlink.MACVLAN_MODE_PRIVATE}
		if err := netlink.LinkAdd(mv); err != nil {
			return fmt.Errorf("add macvlan: %w", err)
		}
		return netlink.LinkSetUp(mv)
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := func(ifname string) *InstanceSpec {
		return &InstanceSpec{Name: "VI", Interface: ifname, VRID: 51, Version: 3, Priority: 100, Interval: time.Second, VIPs: []netip.Addr{vip4}}
	}
	a, b := l.listen(1, spec("vrrp.51")), l.listen(2, spec("eth0"))
	if a.Source() != l.addr(1) {
		t.Fatalf("VMAC source %s, want the base interface's %s", a.Source(), l.addr(1))
	}
	for _, dir := range []struct{ from, to Conn }{{a, b}, {b, a}} {
		stop := make(chan struct{})
		go func(c Conn) {
			for {
				c.Send(&Advert{Version: 3, VRID: 51, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip4}})
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}(dir.from)
		p, drops := recvOne(t, dir.to, 5*time.Second)
		close(stop)
		if p == nil || p.Src != dir.from.Source() {
			t.Fatalf("no advert from %s; got %+v drops %v", dir.from.Source(), p, drops)
		}
	}
}
