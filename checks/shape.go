package checks

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// shape is what checks that differ only in their address share: the
// checker with Connect zeroed and what probing it needs that does not
// depend on the address (compiled url regexes, the TLS config, the bind
// address). The 40,000 HTTP_GETs of a 2,000 x 20 file usually have one
// shape, so a check is its address, a pointer and its retry state. A full
// Checker and prober per check (two Checker copies, a dialer, a dial plan,
// a JSON key, a map of subscribers) cost ~2.8 KB a check: 113 MB for
// 40,000, before the garbage collector's headroom doubled it (issue 13).
type shape struct {
	key string  // the checker's Key with Connect zeroed
	c   Checker // Connect is zero

	// HTTP_GET / SSL_GET.
	regexes []*regexp.Regexp
	tls     *tls.Config

	// Bind address per family (invalid: any) and bind_if's interface
	// index, resolved once; zoneMissing: bind_if named no interface then,
	// so a handshake that needs it is dialed by Probe instead.
	local4, local6 netip.AddrPort
	zone           uint32
	zoneMissing    bool
}

// shapeOf splits c into its shape's checker and its address.
func shapeOf(c Checker) (Checker, netip.AddrPort) {
	ap := c.Connect
	c.Connect = netip.AddrPort{}
	return c, ap
}

// newShape compiles what a shape's probes share.
func newShape(c Checker, key string) (*shape, error) {
	s := &shape{key: key, c: c}
	if c.Kind == KindHTTP || c.Kind == KindSSL {
		s.regexes = make([]*regexp.Regexp, len(c.HTTP.URLs))
		for i, u := range c.HTTP.URLs {
			if u.Regex == "" {
				continue
			}
			re, err := regexp.Compile(u.Regex)
			if err != nil {
				return nil, fmt.Errorf("url %s: regex %q: %w", u.Path, u.Regex, err)
			}
			s.regexes[i] = re
		}
		if c.Kind == KindSSL {
			cfg, err := clientTLS(c.HTTP.CertFile, c.HTTP.KeyFile)
			if err != nil {
				return nil, err
			}
			s.tls = cfg
		}
	}
	s.plan()
	return s, nil
}

// plan resolves the handshake's bind address and interface once.
func (s *shape) plan() {
	c := &s.c
	if c.BindIf != "" {
		if ifi, err := net.InterfaceByName(c.BindIf); err == nil {
			s.zone = uint32(ifi.Index)
		} else {
			s.zoneMissing = true
		}
	}
	switch {
	case c.BindTo.IsValid():
		s.local4 = netip.AddrPortFrom(c.BindTo, c.BindPort)
		s.local6 = s.local4
	case c.BindPort != 0:
		s.local4 = netip.AddrPortFrom(netip.IPv4Unspecified(), c.BindPort)
		s.local6 = netip.AddrPortFrom(netip.IPv6Unspecified(), c.BindPort)
	}
}

// site is one check of a shape: what the TCP-based probers hold.
type site struct {
	s    *shape
	addr netip.AddrPort
}

// checker is the full checker.
func (t site) checker() Checker {
	c := t.s.c
	c.Connect = t.addr
	return c
}

// dialPlan is the handshake for the connector, or false when Probe must
// dial (bind_if named no interface at load and this address needs it).
func (t site) dialPlan() (dialPlan, bool) {
	s := t.s
	p := dialPlan{remote: t.addr, timeout: connectTimeout(&s.c)}
	a := t.addr.Addr()
	if a.Is4() || a.Is4In6() {
		p.local = s.local4
		return p, true
	}
	p.local = s.local6
	needZone := s.c.BindIf != "" && (a.IsLinkLocalUnicast() || p.local.IsValid())
	if (needZone && s.zoneMissing) || a.Zone() != "" {
		// A zone to resolve now, by name: net.Dialer does it in Probe.
		return dialPlan{}, false
	}
	if s.c.BindIf != "" && a.IsLinkLocalUnicast() {
		p.remoteZone = s.zone
	}
	if s.c.BindIf != "" && p.local.IsValid() {
		p.localZone = s.zone
	}
	return p, true
}

// dialPlan is a TCP check's handshake for the connector: what Probe's
// dialer would do (bindto, bind_port, bind_if).
type dialPlan struct {
	remote, local         netip.AddrPort // local invalid: any
	remoteZone, localZone uint32         // interface indexes (IPv6)
	timeout               time.Duration
}

// sockaddrs are the plan's socket addresses (local nil: any).
func (p *dialPlan) sockaddrs() (remote, local unix.Sockaddr) {
	remote = rawSockaddr(p.remote, p.remoteZone)
	if p.local.IsValid() {
		local = rawSockaddr(p.local, p.localZone)
	}
	return remote, local
}

func rawSockaddr(ap netip.AddrPort, zone uint32) unix.Sockaddr {
	a := ap.Addr()
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16(), ZoneId: zone}
}

// sameChecker reports whether a and b are the same checker (equal Keys):
// the fast path of shapes.get, without encoding either. Every field counts
// (TestSameCheckerSeesEveryField).
func sameChecker(a, b *Checker) bool {
	return a.Kind == b.Kind && a.Connect == b.Connect && a.BindTo == b.BindTo && a.BindPort == b.BindPort &&
		a.BindIf == b.BindIf && a.ConnectTimeout == b.ConnectTimeout && a.Retry == b.Retry &&
		a.DelayBeforeRetry == b.DelayBeforeRetry && a.DelayLoop == b.DelayLoop && a.Warmup == b.Warmup &&
		a.Alpha == b.Alpha && a.Misc == b.Misc && a.SMTP == b.SMTP && a.DNS == b.DNS &&
		a.HTTP.Protocol == b.HTTP.Protocol && a.HTTP.Virtualhost == b.HTTP.Virtualhost && a.HTTP.SNI == b.HTTP.SNI &&
		a.HTTP.CAFile == b.HTTP.CAFile && a.HTTP.CertFile == b.HTTP.CertFile && a.HTTP.KeyFile == b.HTTP.KeyFile &&
		slices.EqualFunc(a.HTTP.URLs, b.HTTP.URLs, func(x, y URL) bool {
			return x.Path == y.Path && x.Digest == y.Digest && slices.Equal(x.Status, y.Status) &&
				x.Virtualhost == y.Virtualhost && x.Regex == y.Regex && x.RegexNoMatch == y.RegexNoMatch
		}) &&
		bytes.Equal(a.UDP.Payload, b.UDP.Payload) && a.UDP.RequireReply == b.UDP.RequireReply &&
		bytes.Equal(a.UDP.ReplyData, b.UDP.ReplyData) && a.UDP.MinReplyLen == b.UDP.MinReplyLen &&
		a.UDP.MaxReplyLen == b.UDP.MaxReplyLen
}

// shapes interns shapes by key during a reload; last is a fast path for
// the usual run of identical checkers (no JSON encoding for them).
type shapes struct {
	byKey map[string]*shape
	last  *shape
}

// get is c's shape (new or existing) and address.
func (ss *shapes) get(c Checker, old map[string]*shape) (*shape, netip.AddrPort, error) {
	sc, ap := shapeOf(c)
	if ss.last != nil && sameChecker(&ss.last.c, &sc) {
		return ss.last, ap, nil
	}
	key := sc.Key()
	s := ss.byKey[key]
	if s == nil {
		s = old[key]
	}
	if s == nil {
		var err error
		if s, err = newShape(sc, key); err != nil {
			return nil, ap, err
		}
	}
	ss.byKey[key] = s
	ss.last = s
	return s, ap, nil
}
