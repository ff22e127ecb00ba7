package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// sendTimeout bounds one advert write.
const sendTimeout = 20 * time.Millisecond

// Packet is one received advert that passed the socket's checks.
type Packet struct {
	Advert *Advert
	Src    netip.Addr
	Dst    netip.Addr
	TTL    int
}

// Conn carries one instance's adverts. Recv blocks; it returns a *DropError
// for a packet that failed the socket's checks (the caller counts it and
// reads on), net.ErrClosed once closed. Send must not block for long: it runs
// on the timer path.
type Conn interface {
	Recv() (*Packet, error)
	Send(a *Advert) error
	// Source is the address adverts are sent from (the instance's primary
	// address, used for the equal-priority tie-break).
	Source() netip.Addr
	Close() error
}

// rawConn is the Linux Conn: a raw IP socket for protocol 112 bound to the
// instance's interface, joined to its multicast group (or talking to its
// unicast peers), sending with TTL / hop limit 255 and TOS 0xc0.
type rawConn struct {
	spec  *InstanceSpec
	ifi   *net.Interface
	src   netip.Addr
	dsts  []netip.Addr
	group netip.Addr
	c4    *ipv4.RawConn
	c6    *ipv6.PacketConn
	// sc is c4's or c6's socket, written directly by sendIP (sendFirst).
	sc    syscall.RawConn
	setWD func(time.Time) error
	buf   []byte
	// link sends multicast adverts below IP (nil: unicast, or a link
	// without Ethernet addresses, or no AF_PACKET socket).
	link *linkSender

	mu sync.Mutex // guards id
	id uint16
}

// Listen opens the raw VRRP socket for an instance in the calling thread's
// network namespace.
func Listen(spec *InstanceSpec) (Conn, error) {
	ifi, err := net.InterfaceByName(spec.Interface)
	if err != nil {
		return nil, fmt.Errorf("open VRRP socket for %s: %w", spec.Name, err)
	}
	src := spec.SrcIP
	if !src.IsValid() {
		if src, err = primaryAddr(ifi, spec.IPv6); err != nil {
			// A VMAC (macvlan) has no address of its own: keepalived sends
			// from its base interface's.
			if base := parentInterface(ifi); base != nil {
				src, err = primaryAddr(base, spec.IPv6)
			}
			if err != nil {
				return nil, fmt.Errorf("open VRRP socket for %s: %w", spec.Name, err)
			}
		}
	}
	group := spec.Group
	if !group.IsValid() {
		group = DefaultGroup4
		if spec.IPv6 {
			group = DefaultGroup6
		}
	}
	dsts := spec.Peers
	if len(dsts) == 0 {
		dsts = []netip.Addr{group}
	}
	rc := &rawConn{spec: spec, ifi: ifi, src: src, dsts: dsts, group: group, buf: make([]byte, 1500)}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to device %s: %w", ifi.Name, serr)
		}
		return nil
	}}
	if spec.IPv6 {
		err = rc.open6(lc)
	} else {
		err = rc.open4(lc)
	}
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("open VRRP socket for %s on %s: %w", spec.Name, ifi.Name, err)
	}
	if len(spec.Peers) == 0 && len(ifi.HardwareAddr) == 6 {
		// Without it adverts still go out through the raw IP socket.
		rc.link, _ = newLinkSender(ifi, group)
	}
	return rc, nil
}

func (rc *rawConn) open4(lc net.ListenConfig) error {
	pc, err := lc.ListenPacket(context.Background(), "ip4:112", "0.0.0.0")
	if err != nil {
		return err
	}
	c, err := ipv4.NewRawConn(pc)
	if err != nil {
		pc.Close()
		return err
	}
	rc.c4 = c
	if rc.sc, err = pc.(*net.IPConn).SyscallConn(); err != nil {
		return err
	}
	rc.setWD = c.SetWriteDeadline
	if err := c.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("set control messages: %w", err)
	}
	if err := c.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("multicast loopback off: %w", err)
	}
	if err := c.SetMulticastInterface(rc.ifi); err != nil {
		return fmt.Errorf("multicast interface: %w", err)
	}
	if len(rc.spec.Peers) == 0 {
		if err := c.JoinGroup(rc.ifi, &net.IPAddr{IP: rc.group.AsSlice()}); err != nil {
			return fmt.Errorf("join %s: %w", rc.group, err)
		}
	}
	return nil
}

func (rc *rawConn) open6(lc net.ListenConfig) error {
	pc, err := lc.ListenPacket(context.Background(), "ip6:112", "::")
	if err != nil {
		return err
	}
	c := ipv6.NewPacketConn(pc)
	rc.c6 = c
	if rc.sc, err = pc.(*net.IPConn).SyscallConn(); err != nil {
		return err
	}
	rc.setWD = c.SetWriteDeadline
	if err := c.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return fmt.Errorf("set control messages: %w", err)
	}
	if err := c.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("multicast loopback off: %w", err)
	}
	if err := c.SetMulticastInterface(rc.ifi); err != nil {
		return fmt.Errorf("multicast interface: %w", err)
	}
	if err := c.SetMulticastHopLimit(TTL); err != nil {
		return fmt.Errorf("multicast hop limit: %w", err)
	}
	if err := c.SetHopLimit(TTL); err != nil {
		return fmt.Errorf("hop limit: %w", err)
	}
	if err := c.SetTrafficClass(TOS); err != nil {
		return fmt.Errorf("traffic class: %w", err)
	}
	if len(rc.spec.Peers) == 0 {
		if err := c.JoinGroup(rc.ifi, &net.IPAddr{IP: rc.group.AsSlice()}); err != nil {
			return fmt.Errorf("join %s: %w", rc.group, err)
		}
	}
	return nil
}

func (rc *rawConn) Source() netip.Addr { return rc.src }

func (rc *rawConn) Close() error {
	var err error
	if rc.link != nil {
		rc.link.close()
	}
	if rc.c4 != nil {
		err = rc.c4.Close()
	}
	if rc.c6 != nil {
		err = rc.c6.Close()
	}
	return err
}

// Send writes one advert to the group, or one per unicast peer (each with
// its own v3 checksum). Multicast adverts on Ethernet go out as link-layer
// frames (linkSender), the IP socket being the fallback.
func (rc *rawConn) Send(a *Advert) error {
	// Never block the event loop on a full socket buffer.
	dl := time.Now().Add(sendTimeout)
	var errs []error
	for _, dst := range rc.dsts {
		b, err := Encode(a, rc.src, dst, EncodeOptions{ChecksumAsV2: rc.spec.ChecksumAsV2})
		if err != nil {
			return err
		}
		var id uint16
		if rc.c4 != nil {
			rc.mu.Lock()
			rc.id++
			id = rc.id
			rc.mu.Unlock()
		}
		var lerr error
		if rc.link != nil {
			var pkt []byte
			if rc.c4 != nil {
				pkt = append(IPv4Header(rc.src, dst, id, len(b)), b...)
			} else {
				pkt = append(IPv6Header(rc.src, dst, len(b)), b...)
			}
			if lerr = rc.link.send(pkt, dl); lerr == nil {
				continue
			}
			lerr = fmt.Errorf("on the link: %w", lerr)
		}
		if err := rc.sendIP(b, dst, id, dl); err != nil {
			errs = append(errs, errors.Join(err, lerr))
		}
	}
	return errors.Join(errs...)
}

// sendIP writes one advert through the raw IP socket, which asks the
// kernel's neighbour table for the destination's link address. It
// sends what ipv4.RawConn.WriteTo and ipv6.PacketConn.WriteTo would,
// through sendFirst.
func (rc *rawConn) sendIP(b []byte, dst netip.Addr, id uint16, dl time.Time) error {
	var (
		pkt, oob []byte
		sa       unix.Sockaddr
	)
	if rc.c4 != nil {
		pkt = append(IPv4Header(rc.src, dst, id, len(b)), b...)
		oob = (&ipv4.ControlMessage{IfIndex: rc.ifi.Index}).Marshal()
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	} else {
		// No zone: naming it would resolve the interface in the caller's
		// namespace; PKTINFO's ifindex and SO_BINDTODEVICE scope it.
		pkt = b
		oob = (&ipv6.ControlMessage{HopLimit: TTL, TrafficClass: TOS, Src: rc.src.AsSlice(), IfIndex: rc.ifi.Index}).Marshal()
		sa = &unix.SockaddrInet6{Addr: dst.As16()}
	}
	err := sendFirst(rc.sc, rc.setWD, dl, func(fd int) error {
		_, err := unix.SendmsgN(fd, pkt, oob, sa, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("send advert to %s: %w", dst, err)
	}
	return nil
}

// Recv reads the next packet: TTL / hop limit must be 255, the message must
// decode, and it must carry the instance's VRID (others are dropped with
// DropVRID, which callers do not log). A failed read returns a plain error.
func (rc *rawConn) Recv() (*Packet, error) {
	var (
		payload  []byte
		src, dst netip.Addr
		ttl      int
	)
	if rc.c4 != nil {
		h, p, cm, err := rc.c4.ReadFrom(rc.buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			return nil, fmt.Errorf("read VRRP socket: %w", err)
		}
		if cm != nil && cm.IfIndex != 0 && cm.IfIndex != rc.ifi.Index {
			return nil, dropf(DropFamily, "wrong interface %d", cm.IfIndex)
		}
		src, _ = netip.AddrFromSlice(h.Src.To4())
		dst, _ = netip.AddrFromSlice(h.Dst.To4())
		ttl = h.TTL
		payload = p
		if h.TotalLen > 0 && h.TotalLen-h.Len < len(p) && h.TotalLen >= h.Len {
			payload = p[:h.TotalLen-h.Len]
		}
	} else {
		n, cm, from, err := rc.c6.ReadFrom(rc.buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			return nil, fmt.Errorf("read VRRP socket: %w", err)
		}
		if cm == nil {
			return nil, dropf(DropTTL, "no hop limit control message")
		}
		if cm.IfIndex != 0 && cm.IfIndex != rc.ifi.Index {
			return nil, dropf(DropFamily, "wrong interface %d", cm.IfIndex)
		}
		if ia, ok := from.(*net.IPAddr); ok {
			src, _ = netip.AddrFromSlice(ia.IP)
		}
		dst, _ = netip.AddrFromSlice(cm.Dst)
		ttl = cm.HopLimit
		payload = rc.buf[:n]
	}
	src, dst = src.Unmap(), dst.Unmap()
	if src == rc.src {
		return nil, dropf(DropVRID, "own packet")
	}
	if ttl != TTL {
		return nil, dropf(DropTTL, "TTL %d from %s", ttl, src)
	}
	if len(payload) >= 2 && payload[1] != rc.spec.VRID {
		return nil, &DropError{Reason: DropVRID}
	}
	if len(rc.spec.Peers) > 0 && rc.spec.CheckUnicastSrc && !slices.Contains(rc.spec.Peers, src) {
		return nil, dropf(DropAddrList, "unicast source %s is no peer", src)
	}
	a, err := Decode(payload, src, dst)
	if err != nil {
		return nil, err
	}
	return &Packet{Advert: a, Src: src, Dst: dst, TTL: ttl}, nil
}

// primaryAddr is the interface's first IPv4 address, or its link-local
// IPv6 address.
func primaryAddr(ifi *net.Interface, v6 bool) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !v6 && ip.Is4() {
			return ip, nil
		}
		if v6 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	fam := "IPv4"
	if v6 {
		fam = "IPv6 link-local"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s address", ifi.Name, fam)
}

// parentInterface is the lower device of a macvlan (or other stacked link),
// nil if none.
func parentInterface(ifi *net.Interface) *net.Interface {
	l, err := netlink.LinkByIndex(ifi.Index)
	if err != nil || l.Attrs().ParentIndex == 0 {
		return nil
	}
	p, err := net.InterfaceByIndex(l.Attrs().ParentIndex)
	if err != nil {
		return nil
	}
	return p
}
