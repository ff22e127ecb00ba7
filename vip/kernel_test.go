package vip

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS is a fresh anonymous namespace with a veth pair eth0 <-> peer0,
// eth0 carrying MAC 02:00:00:00:00:0b and 10.99.0.11/24. It is deleted
// (closed) at cleanup.
type testNS struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.New()
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("restore netns: %v", serr) // thread stays locked and dies with the test goroutine
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	tn := &testNS{ns: ns, h: h}
	t.Cleanup(func() { h.Close(); ns.Close() }) // the last reference: the kernel frees it
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	must(t, h.LinkSetUp(lo))
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}},
		PeerName: "peer0", PeerHardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}}
	must(t, h.LinkAdd(veth))
	must(t, InNetns(ns, func() error {
		return sysctl("net/ipv6/conf/all/accept_dad", "0")
	}))
	for _, n := range []string{"eth0", "peer0"} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		must(t, h.LinkSetUp(l))
	}
	eth0, _ := h.LinkByName("eth0")
	must(t, h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("10.99.0.11/24"))}))
	return tn
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (tn *testNS) addrs(t *testing.T, dev string) map[netip.Prefix]netlink.Addr {
	t.Helper()
	l, err := tn.h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	as, err := tn.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Prefix]netlink.Addr{}
	for _, a := range as {
		ip, _ := netip.AddrFromSlice(a.IP)
		bits, _ := a.Mask.Size()
		m[netip.PrefixFrom(ip.Unmap(), bits)] = a
	}
	return m
}

func (tn *testNS) newSet(t *testing.T, spec Spec) *Set {
	t.Helper()
	spec.Netns = tn.ns
	s, err := NewSet(spec, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestKernelAddRemove(t *testing.T) {
	tn := newTestNS(t)
	spec := Spec{
		Instance:  "VI_1",
		Interface: "eth0",
		Timing:    Timing{MasterRepeat: 1},
		Addresses: []Address{
			{Prefix: mustPrefix(t, "10.99.0.100/32"), Label: "eth0:vip"},
			{Prefix: mustPrefix(t, "10.98.0.5/24"), Broadcast: netip.MustParseAddr("10.98.0.255")},
			{Prefix: mustPrefix(t, "10.97.0.1/32"), Scope: ScopeHost},
			{Prefix: mustPrefix(t, "fd00:99::100/128")},
		},
		Excluded: []Address{{Prefix: mustPrefix(t, "10.96.0.1/32"), Scope: ScopeLink}},
		Routes: []Route{
			{Dst: mustPrefix(t, "192.0.2.0/24"), Via: netip.MustParseAddr("10.98.0.1"), Metric: 7},
			{Dst: mustPrefix(t, "198.51.100.0/24"), Blackhole: true},
			{Dst: mustPrefix(t, "203.0.113.0/24"), Dev: "eth0", Table: 100, Src: netip.MustParseAddr("10.99.0.100")},
		},
		Rules: []Rule{{From: mustPrefix(t, "10.99.0.100/32"), Table: 100, Priority: 1000}},
	}
	s := tn.newSet(t, spec)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := s.Add(ctx); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	got := tn.addrs(t, "eth0")
	checks := []struct {
		prefix string
		check  func(a netlink.Addr) bool
		what   string
	}{
		{"10.99.0.100/32", func(a netlink.Addr) bool { return a.Label == "eth0:vip" }, "label eth0:vip"},
		{"10.98.0.5/24", func(a netlink.Addr) bool { return a.Broadcast.String() == "10.98.0.255" }, "brd 10.98.0.255"},
		{"10.97.0.1/32", func(a netlink.Addr) bool { return a.Scope == int(ScopeHost) }, "scope host"},
		{"10.96.0.1/32", func(a netlink.Addr) bool { return a.Scope == int(ScopeLink) }, "scope link (excluded)"},
		{"fd00:99::100/128", func(a netlink.Addr) bool { return a.Flags&unix.IFA_F_NODAD != 0 }, "nodad"},
	}
	for _, c := range checks {
		a, ok := got[mustPrefix(t, c.prefix)]
		if !ok {
			t.Errorf("%s not installed (have %v)", c.prefix, got)
			continue
		}
		if !c.check(a) {
			t.Errorf("%s: want %s, got %+v", c.prefix, c.what, a)
		}
	}
	if ok, err := s.Present(); !ok || err != nil {
		t.Errorf("Present = %v, %v", ok, err)
	}
	routes := func(table int) []netlink.Route {
		rs, err := tn.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	findRoute := func(table int, dst string) *netlink.Route {
		for _, r := range routes(table) {
			if r.Dst != nil && r.Dst.String() == dst {
				return &r
			}
		}
		return nil
	}
	if r := findRoute(unix.RT_TABLE_MAIN, "192.0.2.0/24"); r == nil || r.Gw.String() != "10.98.0.1" || r.Priority != 7 {
		t.Errorf("route via: %+v", r)
	}
	if r := findRoute(unix.RT_TABLE_MAIN, "198.51.100.0/24"); r == nil || r.Type != unix.RTN_BLACKHOLE {
		t.Errorf("blackhole route: %+v", r)
	}
	if r := findRoute(100, "203.0.113.0/24"); r == nil || r.Src.String() != "10.99.0.100" || r.Scope != netlink.SCOPE_LINK {
		t.Errorf("table 100 route: %+v", r)
	}
	hasRule := func() bool {
		rs, err := tn.h.RuleList(netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Priority == 1000 && r.Table == 100 && r.Src != nil && r.Src.String() == "10.99.0.100/32" {
				return true
			}
		}
		return false
	}
	if !hasRule() {
		t.Error("rule from 10.99.0.100 table 100 priority 1000 not installed")
	}

	for i := 0; i < 2; i++ {
		if err := s.Remove(ctx); err != nil {
			t.Fatalf("Remove #%d: %v", i, err)
		}
	}
	got = tn.addrs(t, "eth0")
	for _, a := range append(spec.Addresses, spec.Excluded...) {
		if _, ok := got[a.Prefix]; ok {
			t.Errorf("%s still installed after Remove", a.Prefix)
		}
	}
	if _, ok := got[mustPrefix(t, "10.99.0.11/24")]; !ok {
		t.Error("Remove took the primary address too")
	}
	for _, dst := range []string{"192.0.2.0/24", "198.51.100.0/24"} {
		if r := findRoute(unix.RT_TABLE_MAIN, dst); r != nil {
			t.Errorf("route %s left: %+v", dst, r)
		}
	}
	if r := findRoute(100, "203.0.113.0/24"); r != nil {
		t.Errorf("table 100 route left: %+v", r)
	}
	if hasRule() {
		t.Error("rule left after Remove")
	}
}

func TestKernelLifetimeExpiresAndIsRefreshed(t *testing.T) {
	tn := newTestNS(t)
	vip := mustPrefix(t, "10.99.0.100/32")
	s := tn.newSet(t, Spec{Interface: "eth0", Addresses: []Address{{Prefix: vip}}, Lifetime: 2 * time.Second})
	ctx := context.Background()
	if err := s.Add(ctx); err != nil {
		t.Fatal(err)
	}
	if a, ok := tn.addrs(t, "eth0")[vip]; !ok || a.ValidLft <= 0 || a.ValidLft > 2 || a.PreferedLft > 2 {
		t.Fatalf("VIP installed as %+v, want valid_lft 2", a)
	}
	// Renew every 500 ms for 4 s (twice the lifetime): it must never go away.
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		if _, ok := tn.addrs(t, "eth0")[vip]; !ok {
			t.Fatal("VIP expired although refreshed")
		}
		if err := s.Refresh(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Stop renewing: the kernel removes it within lifetime + 1 s (coarse timer), plus slack.
	start := time.Now()
	deadline := start.Add(2*time.Second + time.Second + 500*time.Millisecond)
	for {
		if _, ok := tn.addrs(t, "eth0")[vip]; !ok {
			t.Logf("VIP expired %s after the last refresh", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIP still present %s after the last refresh with lifetime 2s", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Refresh to 0 on an active set makes a re-added address permanent.
	if err := s.Refresh(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if a, ok := tn.addrs(t, "eth0")[vip]; !ok || (a.ValidLft != 0 && uint32(a.ValidLft) != ^uint32(0)) {
		t.Fatalf("after Refresh(0): %+v, want permanent", a)
	}
	must(t, s.Remove(ctx))
}

// capturer holds every frame that arrived on a device since capture().
type capturer struct {
	mu     sync.Mutex
	frames [][]byte
	stop   func() [][]byte
}

// waitMatching polls until n captured frames satisfy match or 3 s pass.
func (c *capturer) waitMatching(t *testing.T, n int, match func([]byte) bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c.mu.Lock()
		got := 0
		for _, f := range c.frames {
			if match(f) {
				got++
			}
		}
		c.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isARP(f []byte) bool { return len(f) >= 14 && f[12] == 0x08 && f[13] == 0x06 }

func isNA(f []byte) bool {
	return len(f) >= 14+40+24 && binary.BigEndian.Uint16(f[12:]) == 0x86dd && f[14+6] == 58 && f[14+40] == 136
}

// capture reads every frame arriving on dev in tn until stop is called.
func capture(t *testing.T, tn *testNS, dev string) *capturer {
	t.Helper()
	l, err := tn.h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	var c *packet.Conn
	must(t, InNetns(tn.ns, func() error {
		var err error
		c, err = packet.Listen(&net.Interface{Index: l.Attrs().Index, Name: dev}, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	}))
	cp := &capturer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			cp.mu.Lock()
			cp.frames = append(cp.frames, append([]byte(nil), buf[:n]...))
			cp.mu.Unlock()
		}
	}()
	cp.stop = func() [][]byte {
		c.Close()
		<-done
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return cp.frames
	}
	return cp
}

func TestKernelGARPBytesOnTheWire(t *testing.T) {
	tn := newTestNS(t)
	cp := capture(t, tn, "peer0")
	s := tn.newSet(t, Spec{Interface: "eth0", Addresses: []Address{{Prefix: mustPrefix(t, "10.99.0.100/32")}},
		Timing: Timing{MasterRepeat: 5}})
	must(t, s.Add(context.Background()))
	want := mustHex(t, "ffff ffff ffff 0200 0000 000b 0806 0001 0800 0604 0001 0200 0000 000b 0a63 0064 ffff ffff ffff 0a63 0064")
	cp.waitMatching(t, 5, isARP)
	var garps [][]byte
	for _, f := range cp.stop() {
		if isARP(f) {
			garps = append(garps, f)
		}
	}
	must(t, s.Remove(context.Background()))
	if len(garps) != 5 {
		t.Fatalf("saw %d ARP frames on the peer, want 5", len(garps))
	}
	for i, f := range garps {
		if !bytes.Equal(f, want) {
			t.Errorf("GARP %d\n got %x\nwant %x", i, f, want)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKernelUnsolicitedNA(t *testing.T) {
	tn := newTestNS(t)
	cp := capture(t, tn, "peer0")
	vip := netip.MustParseAddr("fd00:99::100")
	s := tn.newSet(t, Spec{Interface: "eth0", Addresses: []Address{{Prefix: netip.PrefixFrom(vip, 128)}},
		Timing: Timing{MasterRepeat: 2}})
	must(t, s.Add(context.Background()))
	cp.waitMatching(t, 2, isNA)
	var nas [][]byte
	for _, f := range cp.stop() {
		if isNA(f) {
			nas = append(nas, f)
		}
	}
	must(t, s.Remove(context.Background()))
	if len(nas) != 2 {
		t.Fatalf("saw %d neighbour advertisements, want 2", len(nas))
	}
	f := nas[0]
	ip6, icmp := f[14:54], f[54:]
	src, _ := netip.AddrFromSlice(ip6[8:24])
	dst, _ := netip.AddrFromSlice(ip6[24:40])
	target, _ := netip.AddrFromSlice(icmp[8:24])
	if got := net.HardwareAddr(f[0:6]).String(); got != "33:33:00:00:00:01" {
		t.Errorf("destination MAC %s, want 33:33:00:00:00:01", got)
	}
	if got := net.HardwareAddr(f[6:12]).String(); got != "02:00:00:00:00:0b" {
		t.Errorf("source MAC %s", got)
	}
	if src != vip || dst != netip.MustParseAddr("ff02::1") || ip6[7] != 255 {
		t.Errorf("IPv6 header src %s dst %s hop limit %d; want %s -> ff02::1, 255", src, dst, ip6[7], vip)
	}
	if flags := icmp[4]; flags&0x20 == 0 || flags&0x40 != 0 {
		t.Errorf("NA flags %#x: want override set, solicited clear", flags)
	}
	if target != vip {
		t.Errorf("target %s, want %s", target, vip)
	}
	// Option: type 2 (target link-layer address), length 1, the MAC.
	if opt := icmp[24:]; len(opt) < 8 || opt[0] != 2 || opt[1] != 1 || net.HardwareAddr(opt[2:8]).String() != "02:00:00:00:00:0b" {
		t.Errorf("target link-layer option %x", opt)
	}
}

func TestKernelVMAC(t *testing.T) {
	tn := newTestNS(t)
	for i := 0; i < 2; i++ { // idempotent
		name, err := EnsureVMAC(tn.ns, "eth0", "vrrp.51", 51, false)
		if err != nil || name != "vrrp.51" {
			t.Fatalf("EnsureVMAC #%d = %q, %v", i, name, err)
		}
	}
	l, err := tn.h.LinkByName("vrrp.51")
	if err != nil {
		t.Fatal(err)
	}
	mv, ok := l.(*netlink.Macvlan)
	if !ok {
		t.Fatalf("vrrp.51 is a %T", l)
	}
	if mv.HardwareAddr.String() != "00:00:5e:00:01:33" || mv.Mode != netlink.MACVLAN_MODE_PRIVATE || mv.Flags&net.FlagUp == 0 {
		t.Errorf("VMAC %s mode %d flags %v; want 00:00:5e:00:01:33, private, up", mv.HardwareAddr, mv.Mode, mv.Flags)
	}
	must(t, InNetns(tn.ns, func() error {
		for key, want := range map[string]string{
			"net/ipv4/conf/eth0/arp_ignore": "1", "net/ipv4/conf/eth0/arp_filter": "1",
			"net/ipv4/conf/vrrp.51/accept_local": "1", "net/ipv4/conf/vrrp.51/rp_filter": "0",
		} {
			b, err := os.ReadFile("/proc/sys/" + key)
			if err != nil {
				return err
			}
			if got := strings.TrimSpace(string(b)); got != want {
				t.Errorf("%s = %s, want %s", key, got, want)
			}
		}
		return nil
	}))
	// A VIP on the VMAC is announced from the virtual MAC.
	cp := capture(t, tn, "peer0")
	s := tn.newSet(t, Spec{Interface: "vrrp.51", Addresses: []Address{{Prefix: mustPrefix(t, "10.99.0.100/32")}}, Timing: Timing{MasterRepeat: 1}})
	must(t, s.Add(context.Background()))
	fromVMAC := func(f []byte) bool {
		return len(f) == 42 && isARP(f) && net.HardwareAddr(f[6:12]).String() == "00:00:5e:00:01:33"
	}
	cp.waitMatching(t, 1, fromVMAC)
	var sawVMAC bool
	for _, f := range cp.stop() {
		sawVMAC = sawVMAC || fromVMAC(f)
	}
	must(t, s.Remove(context.Background()))
	if !sawVMAC {
		t.Error("no gratuitous ARP from 00:00:5e:00:01:33")
	}
	v6, err := EnsureVMAC(tn.ns, "eth0", "vrrp6.51", 51, true)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := tn.h.LinkByName(v6); l == nil || l.Attrs().HardwareAddr.String() != "00:00:5e:00:02:33" {
		t.Errorf("IPv6 VMAC: %+v", l)
	}
	for i := 0; i < 2; i++ {
		must(t, DeleteVMAC(tn.ns, "vrrp.51"))
	}
	if _, err := tn.h.LinkByName("vrrp.51"); err == nil {
		t.Error("vrrp.51 still exists")
	}
	if err := DeleteVMAC(tn.ns, "eth0"); err == nil {
		t.Error("DeleteVMAC deleted a veth")
	}
}

func TestKernelRemoveStale(t *testing.T) {
	tn := newTestNS(t)
	eth0, _ := tn.h.LinkByName("eth0")
	must(t, tn.h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(mustPrefix(t, "10.99.0.100/32"))}))
	s := tn.newSet(t, Spec{Interface: "eth0", Addresses: []Address{{Prefix: mustPrefix(t, "10.99.0.100/32")}}})
	removed, err := s.RemoveStale(context.Background())
	if err != nil || len(removed) != 1 {
		t.Fatalf("RemoveStale = %v, %v", removed, err)
	}
	if _, ok := tn.addrs(t, "eth0")[mustPrefix(t, "10.99.0.100/32")]; ok {
		t.Fatal("stale VIP still there")
	}
}

// Remove after the device vanished (a VMAC deleted first, a NIC unplugged)
// is not an error: the addresses and routes went with it.
func TestKernelRemoveAfterDeviceGone(t *testing.T) {
	tn := newTestNS(t)
	if _, err := EnsureVMAC(tn.ns, "eth0", "vrrp.7", 7, false); err != nil {
		t.Fatal(err)
	}
	s := tn.newSet(t, Spec{Interface: "vrrp.7", Addresses: []Address{{Prefix: mustPrefix(t, "10.99.0.100/32")}},
		Routes: []Route{{Dst: mustPrefix(t, "192.0.2.0/24"), Dev: "vrrp.7"}}})
	must(t, s.Add(context.Background()))
	must(t, DeleteVMAC(tn.ns, "vrrp.7"))
	if err := s.Remove(context.Background()); err != nil {
		t.Fatalf("Remove after the device went: %v", err)
	}
	if _, err := s.Present(); err == nil || !errors.Is(err, unix.ENODEV) {
		t.Fatalf("Present on a missing device = %v, want ENODEV", err)
	}
}
