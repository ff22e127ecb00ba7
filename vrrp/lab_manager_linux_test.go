package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"hakeep/script"
)

// nsAddrs is a minimal AddressSet for these tests: /32 VIPs on eth0 of one
// namespace through netlink (the vip package does the real job).
type nsAddrs struct {
	h    *netlink.Handle
	vips []netip.Addr
}

func (a *nsAddrs) link() (netlink.Link, error) { return a.h.LinkByName("eth0") }

func (a *nsAddrs) Add(context.Context) error {
	l, err := a.link()
	if err != nil {
		return err
	}
	for _, v := range a.vips {
		err := a.h.AddrAdd(l, netipNet(v))
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("add %s: %w", v, err)
		}
	}
	return nil
}

func (a *nsAddrs) Remove(context.Context) error {
	l, err := a.link()
	if err != nil {
		return err
	}
	for _, v := range a.vips {
		err := a.h.AddrDel(l, netipNet(v))
		if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("remove %s: %w", v, err)
		}
	}
	return nil
}

func (a *nsAddrs) has(v netip.Addr) bool {
	l, err := a.link()
	if err != nil {
		return false
	}
	addrs, _ := a.h.AddrList(l, netlink.FAMILY_ALL)
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == v {
			return true
		}
	}
	return false
}

func netipNet(v netip.Addr) *netlink.Addr {
	p := netip.PrefixFrom(v, v.BitLen())
	a, _ := netlink.ParseAddr(p.String())
	return a
}

// daemon is one in-process Manager living in a lab namespace.
type daemon struct {
	mgr    *Manager
	addrs  *nsAddrs
	cancel context.CancelFunc
	done   chan error
}

func (l *lab) handle(i int) (*netlink.Handle, netns.NsHandle) {
	l.t.Helper()
	ns, err := netns.GetFromName(l.hosts[i-1])
	if err != nil {
		l.t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { h.Close(); ns.Close() })
	return h, ns
}

func (l *lab) daemon(i int, set *Set, notifier Notifier) *daemon {
	l.t.Helper()
	h, ns := l.handle(i)
	d := &daemon{addrs: &nsAddrs{h: h, vips: set.Instances[0].VIPs}, done: make(chan error, 1)}
	m, err := New(set, Options{
		Listen: func(s *InstanceSpec) (c Conn, err error) {
			err = inNS(l.t, l.hosts[i-1], func() error {
				c, err = Listen(s)
				return err
			})
			return c, err
		},
		Addresses: func(InstanceSpec) (AddressSet, error) { return d.addrs, nil },
		Links:     NetlinkLinks{NS: &ns},
		Notifier:  notifier,
		Logger:    testLogger(l.t),
	})
	if err != nil {
		l.t.Fatal(err)
	}
	d.mgr = m
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- m.Run(ctx) }()
	l.t.Cleanup(d.stop)
	return d
}

func (d *daemon) stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	<-d.done
}

func labSpec(prio uint8, intv time.Duration, mod func(*InstanceSpec)) *Set {
	s := &InstanceSpec{Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, Priority: prio, Interval: intv,
		Preempt: true, VIPs: []netip.Addr{netip.MustParseAddr("10.77.0.100")}}
	if mod != nil {
		mod(s)
	}
	return &Set{Instances: []*InstanceSpec{s}}
}

// owners lists which daemons hold the VIP.
func owners(ds []*daemon) string {
	var o []string
	vip := netip.MustParseAddr("10.77.0.100")
	for i, d := range ds {
		if d != nil && d.addrs.has(vip) {
			o = append(o, fmt.Sprint(i+1))
		}
	}
	return strings.Join(o, ",")
}

// TestLabFailover: three hakeep managers in namespaces exchanging real
// adverts (v3, 0.1 s): election by priority, graceful stop (priority 0),
// preemption on restart, crash (adverts stop, VIPs left like kill -9),
// notify scripts with keepalived's arguments in order.
func TestLabFailover(t *testing.T) {
	l := newLab(t, 3)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	logf := filepath.Join(dir, "notify.log")
	notify := writeTestScript(t, dir, "notify.sh", `echo "$@" >> `+logf)
	master := writeTestScript(t, dir, "master.sh", `echo "master-script $1" >> `+logf)
	withNotify := func(s *InstanceSpec) { s.Notify = NotifySpec{Any: notify, Master: master + " h2"} }
	n2 := &ScriptNotifier{Runner: &script.Runner{Secure: true}}
	ds := make([]*daemon, 3)
	// h1 first: started together, the Master_Down timers differ by only
	// 19 ms, too little on a loaded machine for an exact notify log.
	ds[0] = l.daemon(1, labSpec(150, 100*time.Millisecond, nil), nil)
	l.poll(5*time.Second, "h1 master", func() bool { return owners(ds) == "1" })
	ds[1] = l.daemon(2, labSpec(100, 100*time.Millisecond, withNotify), n2)
	ds[2] = l.daemon(3, labSpec(50, 100*time.Millisecond, nil), nil)
	l.poll(5*time.Second, "h1 owns the VIP alone", func() bool { return owners(ds) == "1" })

	// Graceful stop: h2 takes over after its skew time (60 ms), not 3 intervals.
	start := time.Now()
	ds[0].stop()
	l.poll(3*time.Second, "h2 owns the VIP", func() bool { return owners(ds) == "2" })
	took := time.Since(start)
	// Timing is measured by BenchmarkLabTakeover, not asserted here (the
	// machine tables prove priority 0 -> skew time).
	t.Logf("graceful takeover (stop returned -> VIP on h2): %v", took)

	// Restart h1: it preempts back.
	ds[0] = l.daemon(1, labSpec(150, 100*time.Millisecond, nil), nil)
	l.poll(5*time.Second, "h1 preempts", func() bool { return owners(ds) == "1" })
	if st := ds[1].mgr.Status()[0]; st.State != "BACKUP" || st.Master != l.addr(1) {
		t.Fatalf("h2 status %+v", st)
	}

	// Crash h1: close its socket without priority 0 (as kill -9: VIPs stay).
	// h2 takes over after Master_Down (0.36 s).
	crashed := ds[0]
	crashed.mgr.do(context.Background(), func() {
		for _, in := range crashed.mgr.order {
			in.conn.Close()
		}
	})
	start = time.Now()
	l.poll(5*time.Second, "h2 owns the VIP after crash", func() bool { return ds[1].addrs.has(netip.MustParseAddr("10.77.0.100")) })
	t.Logf("crash takeover: %v (Master_Down 360 ms)", time.Since(start))
	crashed.stop()
	ds[0] = nil

	ds[1].stop()
	n2.Close(context.Background())
	b, _ := os.ReadFile(logf)
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"INSTANCE VI_1 BACKUP 100", "master-script h2", "INSTANCE VI_1 MASTER 100",
		"INSTANCE VI_1 BACKUP 100", "master-script h2", "INSTANCE VI_1 MASTER 100", "INSTANCE VI_1 STOP 100"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("notify log\n got %q\nwant %q", got, want)
	}
}

func writeTestScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLabMixedKeepalived: hakeep and keepalived in one virtual router, v2
// PASS at advert_int 1 and v3 at 0.1: each side takes over from the other
// on a graceful stop and the higher priority preempts.
func TestLabMixedKeepalived(t *testing.T) {
	tests := []struct {
		name    string
		version int
		intv    time.Duration
		kaIntv  string
		extra   string
	}{
		{"v3 0.1s", 3, 100 * time.Millisecond, "0.1", "version 3"},
		{"v2 PASS 1s", 2, time.Second, "1", "authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }"},
	}
	vip := netip.MustParseAddr("10.77.0.100")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, 2)
			h1, _ := l.handle(1)
			kaHas := func() bool { return (&nsAddrs{h: h1}).has(vip) }
			mod := func(s *InstanceSpec) {
				s.Version = tt.version
				if tt.version == 2 {
					s.AuthType, s.AuthPass = AuthPass, "s3cret"
				}
			}
			conf := strings.Replace(fmt.Sprintf(kaConf, "BACKUP", 150, tt.kaIntv, tt.extra), "10.99.0.100/32", "10.77.0.100/32", 1)
			ka := l.keepalived(1, conf)
			l.waitLog(ka, 10*time.Second, "Entering MASTER STATE")
			d := l.daemon(2, labSpec(100, tt.intv, mod), nil)
			// keepalived master, hakeep backup.
			l.poll(5*tt.intv+time.Second, "hakeep BACKUP", func() bool {
				st := d.mgr.Status()
				return len(st) == 1 && st[0].State == "BACKUP" && st[0].Master == l.addr(1)
			})
			if !kaHas() || d.addrs.has(vip) {
				t.Fatalf("VIP owners wrong: keepalived %v hakeep %v", kaHas(), d.addrs.has(vip))
			}
			// keepalived stops gracefully: hakeep takes over within skew + margin.
			ka.cmd.Process.Signal(syscall.SIGTERM)
			l.poll(3*tt.intv+2*time.Second, "hakeep owns the VIP", func() bool { return d.addrs.has(vip) })
			// keepalived restarts with the higher priority and preempts hakeep.
			ka2 := l.keepalived(1, conf)
			l.poll(5*tt.intv+5*time.Second, "keepalived preempts", func() bool { return kaHas() && !d.addrs.has(vip) })
			// And the reverse: hakeep at 200 preempts keepalived.
			d.stop()
			d2 := l.daemon(2, labSpec(200, tt.intv, mod), nil)
			l.poll(5*tt.intv+5*time.Second, "hakeep 200 preempts keepalived", func() bool { return d2.addrs.has(vip) && !kaHas() })
			l.waitLog(ka2, 5*time.Second, "Entering BACKUP STATE")
		})
	}
}

// TestLabWrongPassword: with a wrong password both sides go MASTER (as
// keepalived does) and hakeep counts and logs the auth drops.
func TestLabWrongPassword(t *testing.T) {
	l := newLab(t, 2)
	conf := strings.Replace(fmt.Sprintf(kaConf, "BACKUP", 150, "1", "authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }"), "10.99.0.100/32", "10.77.0.100/32", 1)
	ka := l.keepalived(1, conf)
	d := l.daemon(2, labSpec(100, time.Second, func(s *InstanceSpec) { s.Version, s.AuthType, s.AuthPass = 2, AuthPass, "wrong" }), nil)
	l.poll(8*time.Second, "auth drops counted and hakeep MASTER", func() bool {
		st := d.mgr.Status()
		return len(st) == 1 && st[0].Counters.Drops["auth"] > 0 && st[0].State == "MASTER"
	})
	l.waitLog(ka, 8*time.Second, "Entering MASTER STATE")
}

// TestLabIPv6AndUnicast: v3 over IPv6 multicast at advert_int 0.05, and
// IPv4 unicast peers: election and graceful failover between managers.
func TestLabIPv6AndUnicast(t *testing.T) {
	vip6 := netip.MustParseAddr("fd00:77::100")
	tests := []struct {
		name string
		vip  netip.Addr
		mod  func(i int) func(*InstanceSpec)
	}{
		{"IPv6 0.05s", vip6, func(int) func(*InstanceSpec) {
			return func(s *InstanceSpec) { s.IPv6, s.VIPs = true, []netip.Addr{vip6} }
		}},
		{"unicast", netip.MustParseAddr("10.77.0.100"), func(i int) func(*InstanceSpec) {
			return func(s *InstanceSpec) {
				s.SrcIP = netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i)})
				s.Peers = []netip.Addr{netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + 3 - i)})}
				s.CheckUnicastSrc = true
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t, 2)
			d1 := l.daemon(1, labSpec(150, 50*time.Millisecond, tt.mod(1)), nil)
			l.poll(5*time.Second, "h1 master", func() bool { return d1.addrs.has(tt.vip) })
			d2 := l.daemon(2, labSpec(100, 50*time.Millisecond, tt.mod(2)), nil)
			l.poll(5*time.Second, "h2 backup hearing h1", func() bool {
				st := d2.mgr.Status()
				return len(st) == 1 && st[0].State == "BACKUP" && st[0].Counters.RxAdverts > 0
			})
			if !d1.addrs.has(tt.vip) || d2.addrs.has(tt.vip) {
				t.Fatal("h1 must own the VIP alone")
			}
			d1.stop()
			l.poll(3*time.Second, "h2 owns the VIP", func() bool { return d2.addrs.has(tt.vip) && !d1.addrs.has(tt.vip) })
		})
	}
}

// TestLabInterfaceDown: the instance's interface going down (real netlink
// events) puts a master in FAULT and removes its VIPs; back up, it becomes
// master again.
func TestLabInterfaceDown(t *testing.T) {
	l := newLab(t, 1)
	d := l.daemon(1, labSpec(150, 50*time.Millisecond, nil), nil)
	vip := netip.MustParseAddr("10.77.0.100")
	l.poll(5*time.Second, "master with VIP", func() bool { return d.addrs.has(vip) })
	h, _ := l.handle(1)
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	l.poll(5*time.Second, "FAULT without VIP", func() bool { return d.mgr.Status()[0].State == "FAULT" && !d.addrs.has(vip) })
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	l.poll(5*time.Second, "master again with VIP", func() bool { return d.mgr.Status()[0].State == "MASTER" && d.addrs.has(vip) })
}
