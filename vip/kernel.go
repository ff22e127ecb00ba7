package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Link is a network device as the address manager needs it.
type Link struct {
	Index int
	Name  string
	MAC   net.HardwareAddr
}

// Kernel is every kernel operation the address manager performs. The real
// one is netlink plus raw sockets in one namespace (NewKernel); unit tests
// drive a fake.
type Kernel interface {
	LinkByName(name string) (Link, error)
	// AddrReplace adds a, or updates it (lifetime, label) when present.
	// lifetime 0 is permanent.
	AddrReplace(l Link, a Address, lifetime time.Duration) error
	// AddrDel returns an error wrapping unix.EADDRNOTAVAIL when a is absent.
	AddrDel(l Link, a Address) error
	// AddrList returns the addresses on l with their remaining valid lifetime (0: permanent).
	AddrList(l Link) ([]InstalledAddr, error)
	RouteReplace(r Route, dev Link) error
	// RouteDel returns an error wrapping unix.ESRCH when r is absent.
	RouteDel(r Route, dev Link) error
	// RuleAdd returns an error wrapping unix.EEXIST when r is present.
	RuleAdd(r Rule) error
	// RuleDel returns an error wrapping unix.ENOENT when r is absent.
	RuleDel(r Rule) error
	// SendGARP sends one gratuitous ARP for addr from l (keepalived's form).
	SendGARP(l Link, addr netip.Addr) error
	// SendNA sends one unsolicited neighbour advertisement for addr from l.
	SendNA(l Link, addr netip.Addr) error
}

// InstalledAddr is an address read back from the kernel.
type InstalledAddr struct {
	Prefix   netip.Prefix
	Label    string
	ValidLft time.Duration // 0: permanent
}

// netlinkKernel is the real Kernel: netlink requests through a handle bound
// to one namespace, raw sockets opened inside that namespace.
type netlinkKernel struct {
	h  *netlink.Handle
	ns netns.NsHandle // -1: the caller's namespace
}

// NewKernel returns the real Kernel working in namespace ns (netns.None()
// or 0 for the caller's). Close it when done.
func NewKernel(ns netns.NsHandle) (Kernel, func() error, error) {
	if ns == 0 {
		ns = netns.None()
	}
	var h *netlink.Handle
	var err error
	if ns > 0 {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open netlink handle: %w", err)
	}
	k := &netlinkKernel{h: h, ns: ns}
	return k, func() error { h.Close(); return nil }, nil
}

func (k *netlinkKernel) LinkByName(name string) (Link, error) {
	l, err := k.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			// Callers test for a missing device with errors.Is(err, unix.ENODEV).
			return Link{}, fmt.Errorf("find interface %s: %w (%w)", name, err, unix.ENODEV)
		}
		return Link{}, fmt.Errorf("find interface %s: %w", name, err)
	}
	a := l.Attrs()
	return Link{Index: a.Index, Name: a.Name, MAC: a.HardwareAddr}, nil
}

func nlLink(l Link) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: l.Name}}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func lifetimeSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

func (k *netlinkKernel) nlAddr(a Address, lifetime time.Duration) *netlink.Addr {
	na := &netlink.Addr{IPNet: ipNet(a.Prefix), Label: a.Label, Scope: int(a.Scope)}
	if a.Broadcast.IsValid() {
		na.Broadcast = a.Broadcast.AsSlice()
	} else if a.Prefix.Addr().Is4() {
		na.Broadcast = net.IPv4zero // netlink then sends none (as `ip addr add` without brd)
	}
	if a.Prefix.Addr().Is6() {
		na.Flags = unix.IFA_F_NODAD // usable at once, as keepalived adds them
	}
	if s := lifetimeSeconds(lifetime); s > 0 {
		na.ValidLft, na.PreferedLft = s, s
	}
	return na
}

func (k *netlinkKernel) AddrReplace(l Link, a Address, lifetime time.Duration) error {
	return k.h.AddrReplace(nlLink(l), k.nlAddr(a, lifetime))
}

func (k *netlinkKernel) AddrDel(l Link, a Address) error {
	return k.h.AddrDel(nlLink(l), &netlink.Addr{IPNet: ipNet(a.Prefix)})
}

func (k *netlinkKernel) AddrList(l Link) ([]InstalledAddr, error) {
	as, err := k.h.AddrList(nlLink(l), netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	out := make([]InstalledAddr, 0, len(as))
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		ia := InstalledAddr{Prefix: netip.PrefixFrom(ip.Unmap(), bits), Label: a.Label}
		// 0xFFFFFFFF is "forever".
		if a.ValidLft > 0 && uint32(a.ValidLft) != ^uint32(0) {
			ia.ValidLft = time.Duration(a.ValidLft) * time.Second
		}
		out = append(out, ia)
	}
	return out, nil
}

func nlRoute(r Route, dev Link) *netlink.Route {
	nr := &netlink.Route{
		Dst:      ipNet(r.Dst),
		Priority: r.Metric,
		Table:    r.Table,
		Scope:    r.Scope,
	}
	if r.Dst.Addr().Is4() {
		nr.Family = netlink.FAMILY_V4
	} else {
		nr.Family = netlink.FAMILY_V6
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Blackhole {
		nr.Type = unix.RTN_BLACKHOLE
	} else if dev.Index != 0 {
		nr.LinkIndex = dev.Index
		if !r.Via.IsValid() && r.Scope == ScopeGlobal {
			nr.Scope = netlink.SCOPE_LINK // as ip(8) does for a direct route
		}
	}
	return nr
}

func (k *netlinkKernel) RouteReplace(r Route, dev Link) error {
	return k.h.RouteReplace(nlRoute(r, dev))
}
func (k *netlinkKernel) RouteDel(r Route, dev Link) error { return k.h.RouteDel(nlRoute(r, dev)) }

func nlRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Table = r.Table
	if r.Priority != 0 {
		nr.Priority = r.Priority
	}
	fam := r.Family
	if r.From.IsValid() {
		nr.Src = ipNet(r.From)
		fam = map[bool]int{true: 4, false: 6}[r.From.Addr().Is4()]
	}
	if r.To.IsValid() {
		nr.Dst = ipNet(r.To)
		fam = map[bool]int{true: 4, false: 6}[r.To.Addr().Is4()]
	}
	if fam == 6 {
		nr.Family = netlink.FAMILY_V6
	} else {
		nr.Family = netlink.FAMILY_V4
	}
	if r.Fwmark != 0 {
		nr.Mark = r.Fwmark
	}
	nr.IifName, nr.OifName, nr.Invert = r.IifName, r.OifName, r.Invert
	return nr
}

func (k *netlinkKernel) RuleAdd(r Rule) error { return k.h.RuleAdd(nlRule(r)) }
func (k *netlinkKernel) RuleDel(r Rule) error { return k.h.RuleDel(nlRule(r)) }

// InNetns runs fn on a locked OS thread switched into ns (a no-op switch for
// netns.None()), so sockets fn opens belong to ns. Sockets keep their
// namespace after the thread switches back.
func InNetns(ns netns.NsHandle, fn func() error) error {
	if ns <= 0 { // 0 and -1: the caller's namespace
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with the goroutine instead of
		// running other goroutines in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("return to original netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// GARPFrame returns keepalived's gratuitous ARP for addr from mac: an
// Ethernet broadcast ARP request with sender IP = target IP = addr and
// target MAC ff:ff:ff:ff:ff:ff, 42 bytes (no padding).
func GARPFrame(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, addr, ethernet.Broadcast, addr)
	if err != nil {
		return nil, fmt.Errorf("build ARP for %s: %w", addr, err)
	}
	body, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal ARP for %s: %w", addr, err)
	}
	// The Ethernet header by hand: ethernet.Frame pads to 60 bytes and
	// keepalived's frame is 42.
	f := make([]byte, 0, 14+len(body))
	f = append(f, ethernet.Broadcast...)
	f = append(f, mac...)
	f = append(f, 0x08, 0x06)
	return append(f, body...), nil
}

func (k *netlinkKernel) SendGARP(l Link, addr netip.Addr) error {
	if len(l.MAC) != 6 {
		return fmt.Errorf("gratuitous ARP on %s: no Ethernet address", l.Name)
	}
	frame, err := GARPFrame(l.MAC, addr)
	if err != nil {
		return err
	}
	var c *packet.Conn
	err = InNetns(k.ns, func() error {
		var err error
		c, err = packet.Listen(&net.Interface{Index: l.Index, Name: l.Name, HardwareAddr: l.MAC}, packet.Raw, unix.ETH_P_ARP, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("open ARP socket on %s: %w", l.Name, err)
	}
	defer c.Close()
	if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
		return fmt.Errorf("send gratuitous ARP for %s on %s: %w", addr, l.Name, err)
	}
	return nil
}

func (k *netlinkKernel) SendNA(l Link, addr netip.Addr) error {
	ifi := &net.Interface{Index: l.Index, Name: l.Name, HardwareAddr: l.MAC}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      l.MAC,
		}},
	}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: addr.AsSlice(), IfIndex: l.Index}
	// Open and write inside the namespace: the destination's zone (the
	// interface name) is resolved to an index in the calling thread's one.
	return InNetns(k.ns, func() error {
		// Bound to the VIP itself: keepalived sends the NA from the VIP.
		c, _, err := listenNDP(ifi, addr)
		if err != nil {
			return fmt.Errorf("open NDP socket for %s on %s: %w", addr, l.Name, err)
		}
		defer c.Close()
		if err := c.WriteTo(na, cm, netip.IPv6LinkLocalAllNodes()); err != nil {
			return fmt.Errorf("send unsolicited NA for %s on %s: %w", addr, l.Name, err)
		}
		return nil
	})
}

// listenNDP opens an NDP socket on ifi bound to src (which must be on ifi).
func listenNDP(ifi *net.Interface, src netip.Addr) (*ndp.Conn, netip.Addr, error) {
	return ndp.Listen(ifi, ndp.Addr(src.WithZone("").String()))
}
