package checks

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// pingProber is PING_CHECK: one ICMP echo, answered within connect_timeout.
// It uses an unprivileged ICMP socket when ping_group_range allows, else a
// raw socket (root).
type pingProber struct{ c Checker }

func (p *pingProber) listen() (*icmp.PacketConn, bool, error) {
	dst := p.c.Connect.Addr()
	src := "0.0.0.0"
	dgram, raw := "udp4", "ip4:icmp"
	if dst.Is6() && !dst.Is4In6() {
		src, dgram, raw = "::", "udp6", "ip6:ipv6-icmp"
	}
	if p.c.BindTo.IsValid() {
		src = p.c.BindTo.String()
	}
	if c, err := icmp.ListenPacket(dgram, src); err == nil {
		return c, true, nil
	}
	c, err := icmp.ListenPacket(raw, src)
	return c, false, err
}

func (p *pingProber) Probe(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout(&p.c))
	defer cancel()
	dst := p.c.Connect.Addr().Unmap()
	conn, isDgram, err := p.listen()
	if err != nil {
		return failf("PING_CHECK %s: open ICMP socket: %v", dst, err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	v6 := dst.Is6()
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if v6 {
		typ, reply, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	id, seq := int(rand.Uint32()&0xffff), int(rand.Uint32()&0xffff)
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("hakeep PING_CHECK")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return failf("PING_CHECK %s: %v", dst, err)
	}
	var to net.Addr = &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	if isDgram {
		to = &net.UDPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	}
	if _, err := conn.WriteTo(b, to); err != nil {
		return failf("PING_CHECK %s: send: %s", dst, netReason(err))
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return failf("PING_CHECK %s: no echo reply (%s)", dst, netReason(err))
		}
		if !sameAddr(from, dst) {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		// A datagram ICMP socket has its ID rewritten by the kernel.
		if !ok || e.Seq != seq || (!isDgram && e.ID != id) {
			continue
		}
		return okResult("PING_CHECK " + dst.String() + ": echo reply")
	}
}

func sameAddr(a net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch v := a.(type) {
	case *net.IPAddr:
		ip = v.IP
	case *net.UDPAddr:
		ip = v.IP
	default:
		return false
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == want.WithZone("")
}
