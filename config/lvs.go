package config

import (
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Schedulers IPVS knows (keepalived passes lb_algo through to the kernel).
var schedulers = map[string]bool{"rr": true, "wrr": true, "lc": true, "wlc": true, "lblc": true, "lblcr": true,
	"dh": true, "sh": true, "sed": true, "nq": true, "mh": true, "fo": true, "ovf": true, "twos": true}

var lbKinds = map[string]bool{"NAT": true, "DR": true, "TUN": true}

// --- virtual_server ------------------------------------------------------------

var vsTable table[*VirtualServer]

func lbKindHandler(set func(*VirtualServer, string)) handler[*VirtualServer] {
	return func(p *parser, n *node, v *VirtualServer) {
		s, ok := p.arg(n, 1)
		if !ok {
			return
		}
		k := strings.ToUpper(s)
		if !lbKinds[k] {
			p.errorf(n.pos(), "%s: want NAT, DR or TUN, got '%s'", n.kw(), s)
			return
		}
		if k != s {
			p.warnf(n.pos(), "%s: '%s' taken as %s; keepalived only knows upper case and would use NAT", n.kw(), s, k)
		}
		set(v, k)
		if k == "TUN" {
			p.tunOptions(n, v)
		}
	}
}

func (p *parser) tunOptions(n *node, v *VirtualServer) {
	w := n.args()[1:]
	for k := 0; k < len(w); k++ {
		switch w[k] {
		case "type":
			if k+1 < len(w) {
				v.TunType = w[k+1]
				k++
			}
		case "port":
			if k+1 < len(w) {
				if port, ok := p.portArg(n.pos(), "TUN port", w[k+1]); ok {
					v.TunPort = port
				}
				k++
			}
		case "nocsum", "csum", "remcsum":
			v.TunCsum = w[k]
		default:
			p.warnf(n.pos(), "%s TUN: unknown option '%s'", n.kw(), w[k])
		}
	}
}

func init() {
	t := table[*VirtualServer]{
		"delay_loop": func(p *parser, n *node, v *VirtualServer) {
			if d, ok := p.secondsArg(n, 0.000001, 86400); ok {
				v.DelayLoop = d
			}
		},
		"lb_algo": func(p *parser, n *node, v *VirtualServer) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			if l := strings.ToLower(s); l != s && schedulers[l] {
				p.warnf(n.pos(), "%s: '%s' taken as %s; keepalived only knows lower case and would use wlc", n.kw(), s, l)
				s = l
			}
			if !schedulers[s] {
				msg := "%s: unknown scheduler '%s'"
				if near := nearest(s, keysOfBool(schedulers)); near != "" {
					msg += " (did you mean '" + near + "'?)"
				}
				p.errorf(n.pos(), msg, n.kw(), s)
				return
			}
			v.LBAlgo = s
		},
		"lb_kind": lbKindHandler(func(v *VirtualServer, s string) { v.LBKind = s }),
		"persistence_timeout": func(p *parser, n *node, v *VirtualServer) {
			if len(n.words) < 2 {
				// keepalived: without a value, 360 s.
				v.PersistenceTimeout = 360 * time.Second
				return
			}
			// 0 means no persistence (keepalived warns and ignores it, with
			// the same effect).
			if d, ok := p.secondsArg(n, 0, 2678400); ok {
				v.PersistenceTimeout = d
			}
		},
		"persistence_granularity": func(p *parser, n *node, v *VirtualServer) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			if bits, err := strconv.Atoi(s); err == nil && bits >= 1 && bits <= 128 {
				// prefix length form (IPv6)
				v.PersistenceGranularity = prefixMask(bits)
				return
			}
			if a, ok := p.parseAddr(n.pos(), n.kw(), s); ok {
				v.PersistenceGranularity = a
			}
		},
		"persistence_engine": func(p *parser, n *node, v *VirtualServer) {
			if s, ok := p.arg(n, 1); ok {
				v.PersistenceEngine = s
			}
		},
		"nat_mask": func(p *parser, n *node, v *VirtualServer) {
			// keepalived 2.x no longer knows nat_mask; the warning is
			// notImplemented's. The value is kept for -d.
			if s, ok := p.arg(n, 1); ok {
				if a, err := netip.ParseAddr(s); err == nil {
					v.NatMask = a
				}
			}
		},
		"protocol": func(p *parser, n *node, v *VirtualServer) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			switch u := strings.ToUpper(s); u {
			case ProtoTCP, ProtoUDP, ProtoSCTP:
				v.Protocol = u
			default:
				p.errorf(n.pos(), "protocol: want TCP, UDP or SCTP, got '%s'", s)
			}
		},
		"sorry_server": func(p *parser, n *node, v *VirtualServer) {
			p.noBlock(n)
			if len(n.words) < 2 {
				p.errorf(n.pos(), "sorry_server: want IP [PORT]")
				return
			}
			a, ok := p.parseAddr(n.pos(), "sorry_server", n.words[1])
			if !ok {
				return
			}
			port := uint16(0)
			if len(n.words) > 2 {
				if port, ok = p.portArg(n.pos(), "sorry_server port", n.words[2]); !ok {
					return
				}
			}
			ss := &SorryServer{Pos: n.pos(), Addr: netip.AddrPortFrom(a, port)}
			if v.SorryServer != nil {
				ss.LVSMethod = v.SorryServer.LVSMethod
			}
			v.SorryServer = ss
		},
		"sorry_server_inhibit": func(p *parser, n *node, v *VirtualServer) { v.SorryServerInhibit = p.flag(n) },
		"sorry_server_lvs_method": func(p *parser, n *node, v *VirtualServer) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			if !lbKinds[strings.ToUpper(s)] {
				p.errorf(n.pos(), "sorry_server_lvs_method: want NAT, DR or TUN, got '%s'", s)
				return
			}
			if v.SorryServer == nil {
				v.SorryServer = &SorryServer{Pos: n.pos()}
			}
			v.SorryServer.LVSMethod = strings.ToUpper(s)
		},
		"inhibit_on_failure": func(p *parser, n *node, v *VirtualServer) { v.InhibitOnFailure = p.flag(n) },
		"quorum": func(p *parser, n *node, v *VirtualServer) {
			if x, ok := p.intArg(n, 1, 1<<31-1); ok {
				v.Quorum = x
			}
		},
		"hysteresis": func(p *parser, n *node, v *VirtualServer) {
			if x, ok := p.intArg(n, 0, 1<<31-1); ok {
				v.Hysteresis = x
			}
		},
		"quorum_up": func(p *parser, n *node, v *VirtualServer) {
			if s, ok := p.rest(n); ok {
				v.QuorumUp = s
			}
		},
		"quorum_down": func(p *parser, n *node, v *VirtualServer) {
			if s, ok := p.rest(n); ok {
				v.QuorumDown = s
			}
		},
		"alpha":      func(p *parser, n *node, v *VirtualServer) { v.Alpha = p.flag(n) },
		"omega":      func(p *parser, n *node, v *VirtualServer) { v.Omega = p.flag(n) },
		"ha_suspend": func(p *parser, n *node, v *VirtualServer) { v.HASuspend = p.flag(n) },
		"virtualhost": func(p *parser, n *node, v *VirtualServer) {
			if s, ok := p.arg(n, 1); ok {
				v.Virtualhost = s
			}
		},
		"ops": func(p *parser, n *node, v *VirtualServer) { v.OnePacket = p.flag(n) },
		"retry": func(p *parser, n *node, v *VirtualServer) {
			if x, ok := p.intArg(n, 0, 1<<31-1); ok {
				v.Retry, v.RetrySet = x, true
			}
		},
		"delay_before_retry": func(p *parser, n *node, v *VirtualServer) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				v.DelayBeforeRetry, v.DelayBeforeRetrySet = d, true
			}
		},
		"connect_timeout": func(p *parser, n *node, v *VirtualServer) {
			if d, ok := p.secondsArg(n, 0.000001, 86400); ok {
				v.ConnectTimeout = d
			}
		},
		"warmup": func(p *parser, n *node, v *VirtualServer) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				v.Warmup, v.WarmupSet = d, true
			}
		},
		"smtp_alert":  func(p *parser, n *node, v *VirtualServer) { v.SMTPAlert = p.flag(n) },
		"real_server": func(p *parser, n *node, v *VirtualServer) { p.realServer(n, v) },
	}
	t["lvs_sched"] = t["lb_algo"]
	t["lvs_method"] = lbKindHandler(func(v *VirtualServer, s string) { v.LBKind = s })
	for _, f := range []string{"sh-port", "sh-fallback", "mh-port", "mh-fallback", "flag-1", "flag-2", "flag-3"} {
		t[f] = func(p *parser, n *node, v *VirtualServer) { p.noBlock(n); v.SchedFlags = append(v.SchedFlags, n.kw()) }
	}
	for _, k := range []string{"ip_family", "lb_kind_mh_port", "lvs_timeouts", "quorum_max", "hashed", "snmp_name", "weight"} {
		t[k] = func(p *parser, n *node, v *VirtualServer) { other(&v.Other, n) }
	}
	vsTable = t
}

func keysOfBool(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// prefixMask returns the address whose first bits are set: a /bits mask
// (IPv4 when bits <= 32).
func prefixMask(bits int) netip.Addr {
	if bits <= 32 {
		var b [4]byte
		for i := 0; i < bits; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := 0; i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

func (p *parser) virtualServer(n *node) {
	if !p.needBlock(n) {
		return
	}
	v := &VirtualServer{Pos: n.pos(), Protocol: ProtoTCP, DelayLoop: 60 * time.Second, LBAlgo: "wlc", LBKind: "NAT", Quorum: 1}
	w := n.args()
	switch {
	case len(w) >= 2 && w[0] == "fwmark":
		x, ok := p.parseInt(n.pos(), "virtual_server fwmark", w[1], 1, 1<<32-1)
		if !ok {
			return
		}
		v.FWMark = uint32(x)
		if len(w) > 2 {
			if w[2] != "inet" && w[2] != "inet6" {
				p.errorf(n.pos(), "virtual_server fwmark: want inet or inet6 after the mark, got '%s'", w[2])
				return
			}
			v.FWMarkFamily = w[2]
		}
	case len(w) >= 2 && w[0] == "group":
		v.Group = w[1]
	case len(w) >= 2:
		a, ok := p.parseAddr(n.pos(), "virtual_server", w[0])
		if !ok {
			return
		}
		port, ok := p.portArg(n.pos(), "virtual_server port", w[1])
		if !ok {
			return
		}
		v.Addr = netip.AddrPortFrom(a, port)
		if len(w) > 2 {
			p.warnf(n.pos(), "virtual_server: unexpected '%s' after the port", w[2])
		}
	case len(w) == 1:
		if ap, err := netip.ParseAddrPort(w[0]); err == nil {
			v.Addr = ap
			break
		}
		p.errorf(n.pos(), "virtual_server: want IP PORT, fwmark N or group NAME")
		return
	default:
		p.errorf(n.pos(), "virtual_server: want IP PORT, fwmark N or group NAME")
		return
	}
	dispatch(p, n.block, vsTable, v, "virtual_server")
	// The whole block is read: checkers can inherit from it now.
	for _, r := range v.RealServers {
		for _, c := range r.Checkers {
			inheritChecker(c, r, v)
		}
	}
	p.keepHTTP(v)
	p.keepCheckers(v)
	// keepalived 2.2 warns about each of these left to its default.
	set := map[string]bool{}
	for _, m := range n.block {
		if len(m.words) > 0 {
			set[m.kw()] = true
		}
	}
	if v.FWMark != 0 && set["protocol"] {
		p.warnf(n.pos(), "virtual_server fwmark %d: protocol is ignored for a fwmark service (as keepalived does)", v.FWMark)
	}
	if v.FWMark == 0 && !set["protocol"] {
		p.warnf(n.pos(), "virtual_server %s: no protocol set; using TCP (keepalived 2.2 would use UDP: set it explicitly)", v.Key())
	}
	if !set["lb_algo"] && !set["lvs_sched"] {
		p.warnf(n.pos(), "virtual_server %s: no lb_algo set; using wlc", v.Key())
	}
	if !set["lb_kind"] && !set["lvs_method"] {
		p.warnf(n.pos(), "virtual_server %s: no lb_kind set; using NAT", v.Key())
	}
	// keepalived: IPVS can not change ports in DR/TUN, so it resets a
	// sorry server's port to the virtual server's.
	if ss := v.SorryServer; ss != nil && v.Addr.IsValid() && v.LBKind != "NAT" && ss.Addr.Port() != v.Addr.Port() && ss.Addr.Addr().IsValid() {
		p.warnf(ss.Pos, "sorry_server port %d differs from the virtual server's port %d with lb_kind %s; using %d (as keepalived does)",
			ss.Addr.Port(), v.Addr.Port(), v.LBKind, v.Addr.Port())
		ss.Addr = netip.AddrPortFrom(ss.Addr.Addr(), v.Addr.Port())
	}
	if ss := v.SorryServer; ss != nil && !ss.Addr.Addr().IsValid() {
		p.errorf(ss.Pos, "sorry_server_lvs_method without a sorry_server")
		v.SorryServer = nil
	}
	p.cfg.VirtualServers = append(p.cfg.VirtualServers, v)
}

// --- real_server -----------------------------------------------------------------

var rsTable table[*RealServer]

func init() {
	t := table[*RealServer]{
		"weight": func(p *parser, n *node, r *RealServer) {
			if x, ok := p.intArg(n, 0, 65535); ok {
				r.Weight = x
			}
		},
		"inhibit_on_failure": func(p *parser, n *node, r *RealServer) { r.InhibitOnFailure = p.flag(n) },
		"notify_up": func(p *parser, n *node, r *RealServer) {
			if s, ok := p.rest(n); ok {
				r.options().NotifyUp = s
			}
		},
		"notify_down": func(p *parser, n *node, r *RealServer) {
			if s, ok := p.rest(n); ok {
				r.options().NotifyDown = s
			}
		},
		"lvs_method": func(p *parser, n *node, r *RealServer) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			if !lbKinds[strings.ToUpper(s)] {
				p.errorf(n.pos(), "lvs_method: want NAT, DR or TUN, got '%s'", s)
				return
			}
			r.options().LVSMethod = strings.ToUpper(s)
		},
		"retry": func(p *parser, n *node, r *RealServer) {
			if x, ok := p.intArg(n, 0, 1<<31-1); ok {
				r.options().Retry, r.options().RetrySet = x, true
			}
		},
		"delay_before_retry": func(p *parser, n *node, r *RealServer) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				r.options().DelayBeforeRetry, r.options().DelayBeforeRetrySet = d, true
			}
		},
		"connect_timeout": func(p *parser, n *node, r *RealServer) {
			if d, ok := p.secondsArg(n, 0.000001, 86400); ok {
				r.options().ConnectTimeout = d
			}
		},
		"warmup": func(p *parser, n *node, r *RealServer) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				r.options().Warmup, r.options().WarmupSet = d, true
			}
		},
		"delay_loop": func(p *parser, n *node, r *RealServer) {
			if d, ok := p.secondsArg(n, 0.000001, 86400); ok {
				r.options().DelayLoop = d
			}
		},
		"smtp_alert": func(p *parser, n *node, r *RealServer) { r.options().SMTPAlert = p.flag(n) },
	}
	t["virtualhost"] = func(p *parser, n *node, r *RealServer) {
		if s, ok := p.arg(n, 1); ok {
			r.options().Virtualhost = s
		}
	}
	for _, k := range []string{"alpha", "omega", "bfd_weight", "rs_mh_port", "uthreshold", "lthreshold", "snmp_name"} {
		t[k] = func(p *parser, n *node, r *RealServer) { other(&r.Other, n) }
	}
	for _, kind := range []string{CheckTCP, CheckHTTP, CheckSSL, CheckMisc, CheckSMTP, CheckDNS, CheckUDP, CheckPing, CheckBFD, CheckFile} {
		t[kind] = func(p *parser, n *node, r *RealServer) { p.checker(n, r) }
	}
	rsTable = t
}

func (p *parser) realServer(n *node, v *VirtualServer) {
	if !p.needBlock(n) {
		return
	}
	w := n.args()
	if len(w) < 1 {
		p.errorf(n.pos(), "real_server: want IP PORT")
		return
	}
	a, ok := p.parseAddr(n.pos(), "real_server", w[0])
	if !ok {
		return
	}
	port := uint16(0)
	if len(w) > 1 {
		if port, ok = p.portArg(n.pos(), "real_server port", w[1]); !ok {
			return
		}
	} else if v.Addr.IsValid() {
		// keepalived: without a port, the virtual server's.
		port = v.Addr.Port()
	}
	if v.FWMark != 0 && port != 0 {
		// keepalived clears it too: a fwmark service has no port.
		p.warnf(n.pos(), "real_server %s: a fwmark virtual_server's real servers take no port; port %d is used only for checkers", w[0], port)
	}
	r := p.slabs.realServers.new()
	*r = RealServer{Pos: n.pos(), Addr: netip.AddrPortFrom(a, port), Weight: 1, InhibitOnFailure: v.InhibitOnFailure}
	dispatch(p, n.block, rsTable, r, "real_server")
	if v.FWMark != 0 {
		// The port written is the checkers' (ConnectAddr would not find
		// it in the address any more).
		for _, c := range r.Checkers {
			if c.ConnectPort == 0 {
				c.ConnectPort = port
			}
		}
		r.Addr = netip.AddrPortFrom(r.Addr.Addr(), 0)
	}
	kind := v.LBKind
	if r.Options().LVSMethod != "" {
		kind = r.Options().LVSMethod
	}
	if v.Addr.IsValid() && kind != "NAT" && r.Addr.Port() != v.Addr.Port() {
		p.warnf(n.pos(), "real_server %s: port differs from the virtual server's port %d with lb_kind %s; using %d (as keepalived does)",
			r.Addr, v.Addr.Port(), kind, v.Addr.Port())
		r.Addr = netip.AddrPortFrom(r.Addr.Addr(), v.Addr.Port())
	}
	for _, o := range v.RealServers {
		if o.Addr == r.Addr {
			p.warnf(n.pos(), "real_server %s is already defined at %s in this virtual_server; this one is ignored (as keepalived does)", r.Addr, o.Pos)
			return
		}
	}
	v.RealServers = append(v.RealServers, r)
}

// --- checkers ---------------------------------------------------------------------

// unset marks a checker field not written (replaced in finalize).
const unsetInt = -1

var checkerTable table[*Checker]

// checkerKeywords lists which keywords each kind accepts beyond the
// common ones (so "misc_path" in a TCP_CHECK is reported).
var checkerKeywords = map[string][]string{
	CheckHTTP: {"url", "http_protocol", "virtualhost", "enable_sni", "tls_compliant", "fast_recovery"},
	CheckSSL:  {"url", "http_protocol", "virtualhost", "enable_sni", "tls_compliant", "fast_recovery"},
	CheckMisc: {"misc_path", "misc_timeout", "misc_dynamic", "user"},
	CheckSMTP: {"helo_name", "host"},
	CheckDNS:  {"type", "name"},
	CheckUDP:  {"payload", "require_reply", "min_reply_length", "max_reply_length"},
	CheckBFD:  {"name", "weight"},
	CheckFile: {"track_file", "weight"},
}

var commonCheckerKeywords = []string{"retry", "nb_get_retry", "delay_before_retry", "warmup", "delay_loop", "alpha", "omega",
	"nb_sock_retry", "log_all_failures"}

// connKeywords are for checkers that connect somewhere (not MISC_CHECK,
// FILE_CHECK, BFD_CHECK, as in keepalived).
var connKeywords = []string{"connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "connect_timeout", "fwmark", "ip_family"}

// checkerAllowedByKind caches checkerAllowed (one lookup per checker in
// configurations with tens of thousands of them).
var checkerAllowedByKind = map[string][]string{}

func init() {
	for _, k := range []string{CheckTCP, CheckHTTP, CheckSSL, CheckMisc, CheckSMTP, CheckDNS, CheckUDP, CheckPing, CheckBFD, CheckFile} {
		checkerAllowedByKind[k] = buildCheckerAllowed(k)
	}
}

func checkerAllowed(kind string) []string { return checkerAllowedByKind[kind] }

func buildCheckerAllowed(kind string) []string {
	out := append([]string{}, commonCheckerKeywords...)
	switch kind {
	case CheckMisc, CheckFile, CheckBFD:
	default:
		out = append(out, connKeywords...)
	}
	return append(out, checkerKeywords[kind]...)
}

func init() {
	t := table[*Checker]{
		"connect_ip": func(p *parser, n *node, c *Checker) {
			if a, ok := p.addrArg(n, 1); ok {
				c.ConnectIP = a
			}
		},
		"connect_port": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				if port, ok := p.portArg(n.pos(), n.kw(), s); ok {
					c.ConnectPort = port
				}
			}
		},
		"bindto": func(p *parser, n *node, c *Checker) {
			if a, ok := p.addrArg(n, 1); ok {
				c.bindFields().BindTo = a
			}
		},
		"bind_port": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				if port, ok := p.portArg(n.pos(), n.kw(), s); ok {
					c.bindFields().BindPort = port
				}
			}
		},
		"bind_if": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				c.bindFields().BindIf = s
			}
		},
		"connect_timeout": func(p *parser, n *node, c *Checker) {
			if d, ok := p.secondsArg(n, 0.000001, 86400); ok {
				c.ConnectTimeout = d
			}
		},
		"retry": func(p *parser, n *node, c *Checker) {
			if x, ok := p.intArg(n, 0, 1<<31-1); ok {
				c.Retry = x
			}
		},
		"delay_before_retry": func(p *parser, n *node, c *Checker) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				c.DelayBeforeRetry = d
			}
		},
		"warmup": func(p *parser, n *node, c *Checker) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				c.Warmup = d
			}
		},
		"delay_loop": func(p *parser, n *node, c *Checker) {
			if d, ok := p.secondsArg(n, 0.000001, 86400); ok {
				c.DelayLoop = d
			}
		},
		"alpha": func(p *parser, n *node, c *Checker) { c.Alpha = p.flag(n) },
		"omega": func(p *parser, n *node, c *Checker) { c.Omega = p.flag(n) },
		"fwmark": func(p *parser, n *node, c *Checker) {
			if x, ok := p.intArg(n, 0, 1<<32-1); ok {
				c.FWMark = uint32(x)
			}
		},
		// HTTP_GET / SSL_GET
		"url": func(p *parser, n *node, c *Checker) { p.url(n, c) },
		"http_protocol": func(p *parser, n *node, c *Checker) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			switch s {
			case "1.0", "1.1", "1.0C", "1.0K":
				p.httpFields(c).HTTPProtocol = s
			default:
				p.errorf(n.pos(), "http_protocol: want 1.0, 1.0C, 1.0K or 1.1, got '%s'", s)
			}
		},
		"virtualhost": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				p.httpFields(c).Virtualhost = s
			}
		},
		"enable_sni":    func(p *parser, n *node, c *Checker) { p.httpFields(c).EnableSNI = p.flag(n) },
		"tls_compliant": func(p *parser, n *node, c *Checker) { p.httpFields(c).TLSCompliant = p.flag(n) },
		"fast_recovery": func(p *parser, n *node, c *Checker) { p.httpFields(c).FastRecovery = p.flag(n) },
		// MISC_CHECK
		"misc_path": func(p *parser, n *node, c *Checker) {
			if s, ok := p.rest(n); ok {
				c.otherFields().MiscPath = s
			}
		},
		"misc_timeout": func(p *parser, n *node, c *Checker) {
			// 0 is accepted and means the default, as in keepalived.
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				c.otherFields().MiscTimeout = d
			}
		},
		"misc_dynamic": func(p *parser, n *node, c *Checker) { c.otherFields().MiscDynamic = p.flag(n) },
		"user": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				c.otherFields().User = s
				if len(n.words) > 2 {
					c.otherFields().Group = n.words[2]
				}
			}
		},
		// SMTP_CHECK
		"helo_name": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				c.otherFields().HeloName = s
			}
		},
		"host": func(p *parser, n *node, c *Checker) {
			if !p.needBlock(n) {
				return
			}
			h := &Checker{Pos: n.pos(), Kind: c.Kind, Retry: unsetInt, ConnectTimeout: -1, DelayBeforeRetry: -1}
			hostKw := []string{"connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "connect_timeout", "fwmark"}
			for _, m := range n.block {
				ok := false
				for _, k := range hostKw {
					if k == m.kw() {
						ok = true
					}
				}
				if !ok {
					p.unknown(m, hostKw, "SMTP_CHECK host")
					continue
				}
				checkerTable[m.kw()](p, m, h)
			}
			c.otherFields().Hosts = append(c.OtherFields().Hosts, h)
		},
		// DNS_CHECK
		"type": func(p *parser, n *node, c *Checker) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			switch u := strings.ToUpper(s); u {
			case "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA":
				c.otherFields().DNSType = u
			default:
				p.errorf(n.pos(), "type: unknown DNS type '%s' (want A, NS, CNAME, SOA, MX, TXT or AAAA)", s)
			}
		},
		"name": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				if c.Kind == CheckDNS {
					c.otherFields().DNSName = s
				} else {
					c.otherFields().Name = s
				}
			}
		},
		// UDP_CHECK
		"payload": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				if b, ok := p.hexBytes(n.pos(), "payload", s); ok {
					c.otherFields().Payload = b
				}
			}
		},
		"require_reply": func(p *parser, n *node, c *Checker) {
			p.noBlock(n)
			c.otherFields().RequireReply = true
			if len(n.words) > 1 {
				if b, ok := p.hexBytes(n.pos(), "require_reply", n.words[1]); ok {
					c.otherFields().ReplyData = b
				}
			}
		},
		"min_reply_length": func(p *parser, n *node, c *Checker) {
			if x, ok := p.intArg(n, 0, 65535); ok {
				c.otherFields().MinReplyLength = x
			}
		},
		"max_reply_length": func(p *parser, n *node, c *Checker) {
			if x, ok := p.intArg(n, 0, 65535); ok {
				c.otherFields().MaxReplyLength = x
			}
		},
		"track_file": func(p *parser, n *node, c *Checker) {
			if s, ok := p.arg(n, 1); ok {
				c.otherFields().Name = s
			}
		},
		"weight": func(p *parser, n *node, c *Checker) { other(&c.Other, n) },
	}
	t["nb_get_retry"] = t["retry"]
	for _, k := range []string{"nb_sock_retry", "ip_family", "log_all_failures", "dynamic"} {
		t[k] = func(p *parser, n *node, c *Checker) { other(&c.Other, n) }
	}
	checkerTable = t
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) hexBytes(pos Pos, kw, s string) ([]byte, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil {
		p.errorf(pos, "%s: want hex bytes, got '%s'", kw, s)
		return nil, false
	}
	return b, true
}

func (p *parser) checker(n *node, r *RealServer) {
	kind := n.kw()
	c := p.slabs.checkerScratch.new() // keepCheckers keeps it, or an alike one
	*c = Checker{Pos: n.pos(), Kind: kind, Retry: unsetInt, ConnectTimeout: -1, DelayBeforeRetry: -1, Warmup: -1, DelayLoop: -1}
	if n.hasBlock {
		known := checkerAllowed(kind)
		for _, m := range n.block {
			if !contains(known, m.kw()) {
				p.unknown(m, known, kind)
				continue
			}
			if notImplChecker[m.kw()] {
				p.warnNotImpl(kind, m)
			}
			checkerTable[m.kw()](p, m, c)
		}
	}
	switch kind {
	case CheckMisc:
		if c.OtherFields().MiscPath == "" {
			// keepalived: "No script path has been specified for
			// MISC_CHECKER - skipping".
			p.warnf(n.pos(), "MISC_CHECK without misc_path; the checker is ignored")
			return
		}
	case CheckHTTP, CheckSSL:
		if len(c.HTTPFields().URLs) == 0 {
			// keepalived: "HTTP/SSL_GET checker has no urls specified -
			// ignoring".
			p.warnf(n.pos(), "%s without a url block; the checker is ignored", kind)
			return
		}
	case CheckBFD, CheckFile:
		if c.OtherFields().Name == "" {
			p.warnf(n.pos(), "%s without a name; the checker is ignored", kind)
			return
		}
	}
	r.Checkers = appendSlab(&p.slabs.checkerPtrs, r.Checkers, c)
}

// urlKeywords lists what a url { } block accepts.
var urlKeywords = []string{"path", "digest", "status_code", "virtualhost", "regex", "regex_no_match", "regex_options",
	"regex_stop", "regex_min_offset", "regex_max_offset", "regex_stack"}

func (p *parser) url(n *node, c *Checker) {
	if !p.needBlock(n) {
		return
	}
	u := p.slabs.urlScratch.new() // keepHTTP keeps it, or an alike one
	*u = URL{Pos: n.pos()}
	for _, m := range n.block {
		if notImplURL[m.kw()] {
			p.warnNotImpl("url", m)
		}
		switch m.kw() {
		case "path":
			if s, ok := p.arg(m, 1); ok {
				u.Path = s
			}
		case "digest":
			s, ok := p.arg(m, 1)
			if !ok {
				continue
			}
			if _, err := hex.DecodeString(s); err != nil || len(s) != 32 {
				p.errorf(m.pos(), "digest: want 32 hex digits (an MD5 sum), got '%s'", s)
				continue
			}
			u.Digest = strings.ToLower(s)
		case "status_code":
			p.noBlock(m)
			if len(m.words) < 2 {
				p.errorf(m.pos(), "status_code is missing its value")
				continue
			}
			for _, w := range m.args() {
				for rest := w; rest != ""; {
					var part string
					part, rest, _ = strings.Cut(rest, ",")
					if part == "" {
						continue
					}
					if r, ok := p.statusRange(m.pos(), part); ok {
						u.StatusCodes = appendSlab(&p.slabs.statusScratch, u.StatusCodes, r)
					}
				}
			}
		case "virtualhost":
			if s, ok := p.arg(m, 1); ok {
				u.Virtualhost = s
			}
		case "regex":
			if s, ok := p.rest(m); ok {
				u.Regex = s
			}
		case "regex_no_match":
			u.RegexNoMatch = p.flag(m)
		case "regex_options":
			u.RegexOptions = strings.Join(m.args(), " ")
		case "regex_stop", "regex_min_offset", "regex_max_offset", "regex_stack":
			// accepted; offsets of keepalived's PCRE matcher.
		default:
			p.unknown(m, urlKeywords, "url")
		}
	}
	if u.Path == "" {
		p.errorf(n.pos(), "url without a path")
		return
	}
	p.httpFields(c).URLs = appendSlab(&p.slabs.urlPtrScratch, c.HTTPFields().URLs, u)
}

// keepHTTP moves the HTTP fields of v's checkers and their urls,
// resolved, out of the scratch httpFields() and url() carve them from:
// one copy of each distinct url and of each distinct set of HTTP fields,
// shared by the checkers that are alike (usually all of a virtual
// server's: a file of 40,000 HTTP_GETs kept 40,000 alike urls, 6 MB, and
// 40,000 alike HTTP fields with their url lists, 3 MB). A shared url's Pos
// is the first alike url block's. Nothing else changes these after this
// (the model is read-only once loaded).
func (p *parser) keepHTTP(v *VirtualServer) {
	var urls []*URL
	var fields []*CheckerHTTP
	for _, r := range v.RealServers {
		for _, c := range r.Checkers {
			if c.CheckerHTTP == nil {
				continue
			}
			for i, u := range c.URLs {
				c.URLs[i] = keepAlike(&urls, u, sameURL, p.copyURL)
			}
			c.CheckerHTTP = keepAlike(&fields, c.CheckerHTTP, sameHTTP, p.copyHTTP)
		}
	}
	// Nothing points into the scratch now: the next virtual server
	// carves from it again.
	p.slabs.httpScratch.reset()
	p.slabs.urlPtrScratch.reset()
	p.slabs.urlScratch.reset()
	p.slabs.statusScratch.reset()
}

// keepAlike returns the kept object alike v (same), or keeps and returns
// a copy of v out of the scratch (keep).
func keepAlike[T any](kept *[]*T, v *T, same func(a, b *T) bool, keep func(*T) *T) *T {
	for _, k := range *kept {
		if k == v || same(k, v) {
			return k
		}
	}
	k := keep(v)
	*kept = append(*kept, k)
	return k
}

// copyHTTP copies h (its urls already kept) into the model's slabs.
func (p *parser) copyHTTP(h *CheckerHTTP) *CheckerHTTP {
	k := p.slabs.checkerHTTP.new()
	*k = *h
	k.URLs = slabList(&p.slabs.urlPtrs, h.URLs)
	return k
}

// sameHTTP reports whether a and b hold the same fields and the same
// (kept) urls.
func sameHTTP(a, b *CheckerHTTP) bool {
	return slices.Equal(a.URLs, b.URLs) && a.HTTPProtocol == b.HTTPProtocol && a.Virtualhost == b.Virtualhost &&
		a.EnableSNI == b.EnableSNI && a.TLSCompliant == b.TLSCompliant && a.FastRecovery == b.FastRecovery
}

// keepCheckers moves v's checkers out of the scratch checker() carves
// them from (after keepHTTP): one copy of each distinct checker, shared by
// the real servers whose checkers are alike (a file of 40,000 HTTP_GETs
// kept 40,000 checkers of 160 bytes that differed only in their position
// and the address they connect to, which is now the real server's). A
// shared checker's Pos is the first alike checker block's.
func (p *parser) keepCheckers(v *VirtualServer) {
	var kept []*Checker
	for _, r := range v.RealServers {
		for i, c := range r.Checkers {
			r.Checkers[i] = keepAlike(&kept, c, sameChecker, p.copyChecker)
		}
	}
	p.slabs.checkerScratch.reset()
}

// copyChecker copies c (its HTTP fields already kept) into the model's
// slab.
func (p *parser) copyChecker(c *Checker) *Checker {
	k := p.slabs.checkers.new()
	*k = *c
	return k
}

// sameChecker reports whether a and b check the same thing (all but Pos):
// their HTTP fields already kept (the same object when alike), checkers
// with other fields or unknown keywords never alike.
func sameChecker(a, b *Checker) bool {
	if a.CheckerOther != nil || b.CheckerOther != nil || len(a.Other) > 0 || len(b.Other) > 0 {
		return false
	}
	return a.Kind == b.Kind && a.ConnectIP == b.ConnectIP && a.ConnectPort == b.ConnectPort &&
		*a.BindFields() == *b.BindFields() && a.ConnectTimeout == b.ConnectTimeout && a.Retry == b.Retry &&
		a.DelayBeforeRetry == b.DelayBeforeRetry && a.Warmup == b.Warmup && a.DelayLoop == b.DelayLoop &&
		a.RetrySet == b.RetrySet && a.DelayBeforeRetrySet == b.DelayBeforeRetrySet && a.WarmupSet == b.WarmupSet &&
		a.Alpha == b.Alpha && a.Omega == b.Omega && a.FWMark == b.FWMark && a.CheckerHTTP == b.CheckerHTTP
}

// copyURL copies u into the model's slabs.
func (p *parser) copyURL(u *URL) *URL {
	k := p.slabs.urls.new()
	*k = *u
	k.StatusCodes = slabList(&p.slabs.statusRanges, u.StatusCodes)
	return k
}

// sameURL reports whether a and b check the same thing (all but Pos).
func sameURL(a, b *URL) bool {
	return a.Path == b.Path && a.Digest == b.Digest && slices.Equal(a.StatusCodes, b.StatusCodes) &&
		a.Virtualhost == b.Virtualhost && a.Regex == b.Regex && a.RegexNoMatch == b.RegexNoMatch &&
		a.RegexOptions == b.RegexOptions
}

func (p *parser) statusRange(pos Pos, s string) (StatusRange, bool) {
	lo, hi := s, s
	if i := strings.IndexByte(s, '-'); i > 0 {
		lo, hi = s[:i], s[i+1:]
	}
	l, ok1 := p.parseInt(pos, "status_code", lo, 100, 599)
	h, ok2 := l, ok1
	if hi != lo {
		h, ok2 = p.parseInt(pos, "status_code", hi, 100, 599)
	}
	if !ok1 || !ok2 {
		return StatusRange{}, false
	}
	if h < l {
		p.errorf(pos, "status_code: range %s is backwards", s)
		return StatusRange{}, false
	}
	return StatusRange{Lo: l, Hi: h}, true
}

// --- virtual_server_group ----------------------------------------------------------

func (p *parser) vsGroup(n *node) {
	name := p.name(n)
	if !p.needBlock(n) || name == "" {
		return
	}
	if old := p.cfg.VSGroup(name); old != nil {
		p.errorf(n.pos(), "virtual_server_group %s is already defined at %s", name, old.Pos)
		return
	}
	g := &VirtualServerGroup{Pos: n.pos(), Name: name}
	for _, m := range n.block {
		w := m.args0()
		if w[0] == "fwmark" {
			if len(w) < 2 {
				p.errorf(m.pos(), "virtual_server_group: fwmark is missing its value")
				continue
			}
			if x, ok := p.parseInt(m.pos(), "fwmark", w[1], 1, 1<<32-1); ok {
				g.Members = append(g.Members, &VSGMember{Pos: m.pos(), FWMark: uint32(x)})
			}
			continue
		}
		first, last, ok := p.addrRange(m.pos(), w[0])
		if !ok {
			continue
		}
		mem := &VSGMember{Pos: m.pos(), Addr: first, LastAddr: last}
		if len(w) > 1 {
			if mem.Port, ok = p.portArg(m.pos(), "virtual_server_group port", w[1]); !ok {
				continue
			}
		}
		g.Members = append(g.Members, mem)
	}
	var has4, has6 bool
	for _, m := range g.Members {
		if m.Addr.IsValid() {
			has4, has6 = has4 || m.Addr.Is4(), has6 || m.Addr.Is6()
		}
	}
	if has4 && has6 {
		// keepalived removes such a group ("cannot have IPv4, IPv6 and
		// fwmark without family").
		p.errorf(n.pos(), "virtual_server_group %s mixes IPv4 and IPv6 addresses; use one group per family", name)
	}
	p.cfg.VSGroups = append(p.cfg.VSGroups, g)
}

// addrRange reads "A" or "A-N" (N replaces the last byte of an IPv4
// address, or the last hextet of an IPv6 one, in hex).
func (p *parser) addrRange(pos Pos, s string) (netip.Addr, netip.Addr, bool) {
	base, end, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(base)
	if err != nil || a.Zone() != "" {
		p.errorf(pos, "virtual_server_group: bad address '%s'", s)
		return netip.Addr{}, netip.Addr{}, false
	}
	if !isRange {
		return a, a, true
	}
	if a.Is4() {
		v, ok := p.parseInt(pos, "virtual_server_group range", end, 0, 255)
		b := a.As4()
		if !ok || v < int(b[3]) {
			if ok {
				p.errorf(pos, "virtual_server_group: range '%s' ends before it starts", s)
			}
			return netip.Addr{}, netip.Addr{}, false
		}
		b[3] = byte(v)
		return a, netip.AddrFrom4(b), true
	}
	v, err := strconv.ParseUint(end, 16, 16)
	b := a.As16()
	cur := uint64(b[14])<<8 | uint64(b[15])
	if err != nil || v < cur {
		p.errorf(pos, "virtual_server_group: bad range '%s'", s)
		return netip.Addr{}, netip.Addr{}, false
	}
	b[14], b[15] = byte(v>>8), byte(v)
	return a, netip.AddrFrom16(b), true
}
