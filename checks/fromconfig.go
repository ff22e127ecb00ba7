package checks

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"hakeep/config"
)

// FromConfig maps every real server of every virtual_server to a Spec. The
// config parser has already resolved each checker's timings as keepalived
// 2.2.7 does (see config/checkdefaults.go): the Spec takes connect_timeout,
// retry, delay_before_retry, warmup, delay_loop and misc_timeout from the
// config.Checker as they are, so an explicit "warmup 0" or "retry 0" stays
// 0. A checker built by hand, without the parser, gets the same defaults
// for what it leaves zero and not marked as set (RetrySet, WarmupSet, ...).
// Also: connect_ip/connect_port from the real server, SMTP helo_name from
// smtp_helo_name, SSL_GET's TLS files from the global SSL settings,
// virtualhost from the url, checker or virtual server. Checkers hakeep
// does not run (BFD_CHECK, FILE_CHECK) are skipped with a warning.
func FromConfig(cfg *config.Config) (specs []Spec, warnings []string) {
	b := Build(cfg, nil)
	return b.Specs, b.Warnings
}

func alertDefault(g *config.GlobalDefs) bool {
	alert := len(g.NotificationEmail) > 0 && g.SMTPServer != nil
	if v, ok := otherBool(g.Other, "smtp_alert_checker"); ok {
		alert = v
	} else if v, ok := otherBool(g.Other, "smtp_alert"); ok {
		alert = v
	}
	return alert
}

// buildScratch is what one Build shares between its specs, which are
// read-only once built: the checkers' url lists (a large file's are
// usually all alike: one list for 40,000 HTTP_GETs instead of 40,000),
// and one backing array for the usual single checker of a real server.
// A load of 2,000 x 20 HTTP_GETs allocated ~47 MB of specs before.
type buildScratch struct {
	urls     []URL
	checkers []Checker
}

// urlsOf is mapChecker's url list for in: the last one when alike.
func (b *buildScratch) urlsOf(in []*config.URL) []URL {
	if b != nil && b.urls != nil && len(in) == len(b.urls) {
		same := true
		for i, u := range in {
			if !sameURL(&b.urls[i], u) {
				same = false
				break
			}
		}
		if same {
			return b.urls
		}
	}
	out := make([]URL, 0, len(in))
	for _, u := range in {
		mu := URL{Path: u.Path, Digest: strings.ToLower(u.Digest), Virtualhost: u.Virtualhost,
			Regex: u.Regex, RegexNoMatch: u.RegexNoMatch}
		if len(u.StatusCodes) > 0 {
			mu.Status = make([]StatusRange, 0, len(u.StatusCodes))
			for _, r := range u.StatusCodes {
				mu.Status = append(mu.Status, StatusRange{Lo: r.Lo, Hi: r.Hi})
			}
		}
		out = append(out, mu)
	}
	if b != nil {
		b.urls = out
	}
	return out
}

// sameURL reports whether u maps to m.
func sameURL(m *URL, u *config.URL) bool {
	if m.Path != u.Path || m.Digest != strings.ToLower(u.Digest) || m.Virtualhost != u.Virtualhost ||
		m.Regex != u.Regex || m.RegexNoMatch != u.RegexNoMatch || len(m.Status) != len(u.StatusCodes) {
		return false
	}
	for i, r := range u.StatusCodes {
		if m.Status[i] != (StatusRange{Lo: r.Lo, Hi: r.Hi}) {
			return false
		}
	}
	return true
}

// oneChecker is []Checker{c} carved from the shared backing array (of
// capacity 1: appending another checker copies it, as append would), the
// last one carved when it is the same (the real servers of a virtual
// server usually have one checker, alike but for the address, which
// their specs leave zero).
func (b *buildScratch) oneChecker(c Checker) []Checker {
	if n := len(b.checkers); n > 0 && sameChecker(&b.checkers[n-1], &c) {
		return b.checkers[n-1 : n : n]
	}
	if len(b.checkers) == cap(b.checkers) {
		b.checkers = make([]Checker, 0, 64)
	}
	b.checkers = append(b.checkers, c)
	n := len(b.checkers)
	return b.checkers[n-1 : n : n]
}

// appendVS appends the specs of vs's real servers and their warnings.
func appendVS(specs []Spec, warnings []string, cfg *config.Config, vs *config.VirtualServer, alertDefault bool, scratch *buildScratch) ([]Spec, []string) {
	// Once per virtual server: its real servers' specs share the
	// strings (the manager keeps them for the daemon's life).
	name, key, proto := vsName(vs), vs.Key(), strings.ToLower(vs.Protocol)
	for _, rs := range vs.RealServers {
		s := Spec{
			VirtualServer: key, VirtualServerName: name, Protocol: proto,
			RealServer: rs.Addr, Weight: rs.Weight, NotifyUp: rs.Options().NotifyUp, NotifyDown: rs.Options().NotifyDown,
			SMTPAlert: rs.Options().SMTPAlert || vs.SMTPAlert || alertDefault,
			Omega:     vs.Omega,
		}
		for _, c := range rs.Checkers {
			switch c.Kind {
			case config.CheckBFD, config.CheckFile:
				warnings = append(warnings, fmt.Sprintf("%s: %s is not supported by hakeep's checker; ignored", c.Pos, c.Kind))
				continue
			}
			if c.Kind == config.CheckSMTP && len(c.OtherFields().Hosts) > 0 {
				// Legacy host { } blocks: each is checked; all must answer.
				for _, h := range c.OtherFields().Hosts {
					hc := *h
					hc.Kind = config.CheckSMTP
					if hc.OtherFields().HeloName == "" {
						// A copy: h's fields are the configuration's.
						o := *hc.OtherFields()
						o.HeloName = c.OtherFields().HeloName
						hc.CheckerOther = &o
					}
					s.Checkers = append(s.Checkers, mapChecker(cfg, vs, rs, &hc, scratch))
				}
				continue
			}
			mc := mapChecker(cfg, vs, rs, c, scratch)
			if mc.Connect == rs.Addr {
				mc.Connect = netip.AddrPort{} // the real server's (CheckerAt)
			}
			if s.Checkers == nil {
				s.Checkers = scratch.oneChecker(mc)
			} else {
				s.Checkers = append(s.Checkers, mc)
			}
			s.Omega = s.Omega || c.Omega
		}
		for i := range s.Checkers {
			c := s.CheckerAt(i)
			if err := c.Validate(); err != nil {
				warnings = append(warnings, fmt.Sprintf("%s: real server %s: %v; checker ignored", rs.Pos, rs.Addr, err))
				s.Checkers = append(s.Checkers[:i], s.Checkers[i+1:]...)
				break
			}
		}
		specs = append(specs, s)
	}
	return specs, warnings
}

func mapChecker(cfg *config.Config, vs *config.VirtualServer, rs *config.RealServer, c *config.Checker, scratch *buildScratch) Checker {
	g := &cfg.Global
	ip, port := c.ConnectIP, c.ConnectPort
	if !ip.IsValid() {
		ip = rs.Addr.Addr()
	}
	if port == 0 {
		port = rs.Addr.Port()
	}
	out := Checker{
		Kind: Kind(c.Kind), Connect: netip.AddrPortFrom(ip, port),
		BindTo: c.BindFields().BindTo, BindPort: c.BindFields().BindPort, BindIf: c.BindFields().BindIf,
		// connect_timeout and delay_loop are never 0 in keepalived.
		ConnectTimeout: first(c.ConnectTimeout, rs.Options().ConnectTimeout, vs.ConnectTimeout, DefaultConnectTimeout),
		DelayLoop:      first(c.DelayLoop, rs.Options().DelayLoop, vs.DelayLoop, DefaultDelayLoop),
		Alpha:          c.Alpha || vs.Alpha,
	}
	// retry, delay_before_retry and warmup may be 0 on purpose: a value
	// the parser resolved (or one set by hand) is kept; only a zero not
	// marked as set is filled in, as keepalived would.
	out.Retry = c.Retry
	if c.Retry == 0 && !c.RetrySet {
		switch {
		case rs.Options().RetrySet:
			out.Retry = rs.Options().Retry
		case vs.RetrySet:
			out.Retry = vs.Retry
		default:
			out.Retry = config.DefaultRetry(c.Kind)
		}
	}
	out.DelayBeforeRetry = c.DelayBeforeRetry
	if c.DelayBeforeRetry == 0 && !c.DelayBeforeRetrySet {
		switch {
		case rs.Options().DelayBeforeRetrySet:
			out.DelayBeforeRetry = rs.Options().DelayBeforeRetry
		case vs.DelayBeforeRetrySet:
			out.DelayBeforeRetry = vs.DelayBeforeRetry
		default:
			out.DelayBeforeRetry = config.DefaultDelayBeforeRetry(c.Kind, out.DelayLoop)
		}
	}
	out.Warmup = c.Warmup
	if c.Warmup == 0 && !c.WarmupSet {
		switch {
		case rs.Options().WarmupSet:
			out.Warmup = rs.Options().Warmup
		case vs.WarmupSet:
			out.Warmup = vs.Warmup
		default:
			out.Warmup = out.DelayLoop
		}
	}
	switch out.Kind {
	case KindHTTP, KindSSL:
		vhost := c.HTTPFields().Virtualhost
		if vhost == "" {
			vhost = rs.Other["virtualhost"]
		}
		if vhost == "" {
			vhost = vs.Virtualhost
		}
		out.HTTP = HTTPOptions{Protocol: c.HTTPFields().HTTPProtocol, Virtualhost: vhost, SNI: c.HTTPFields().EnableSNI}
		if out.Kind == KindSSL {
			out.HTTP.CAFile, out.HTTP.CertFile, out.HTTP.KeyFile = g.SSLCA, g.SSLCertificate, g.SSLKey
		}
		if urls := c.HTTPFields().URLs; len(urls) > 0 {
			out.HTTP.URLs = scratch.urlsOf(urls)
		}
	case KindMisc:
		user, group := c.OtherFields().User, c.OtherFields().Group
		if user == "" {
			user, group = g.ScriptUser, g.ScriptGroup
		}
		out.Misc = MiscOptions{Path: c.OtherFields().MiscPath, Timeout: first(c.OtherFields().MiscTimeout, vs.DelayLoop, DefaultDelayLoop),
			Dynamic: c.OtherFields().MiscDynamic, User: user, Group: group}
	case KindSMTP:
		out.SMTP.HeloName = c.OtherFields().HeloName
		if out.SMTP.HeloName == "" {
			out.SMTP.HeloName = g.SMTPHeloName
		}
	case KindDNS:
		out.DNS = DNSOptions{Type: c.OtherFields().DNSType, Name: c.OtherFields().DNSName}
	case KindUDP:
		out.UDP = UDPOptions{Payload: c.OtherFields().Payload, RequireReply: c.OtherFields().RequireReply, ReplyData: c.OtherFields().ReplyData,
			MinReplyLen: c.OtherFields().MinReplyLength, MaxReplyLen: c.OtherFields().MaxReplyLength}
	}
	return out
}

// vsName is keepalived's display form of a virtual server.
func vsName(vs *config.VirtualServer) string {
	switch {
	case vs.Group != "":
		return "[" + vs.Group + "]:" + strings.ToLower(vs.Protocol)
	case vs.FWMark != 0:
		return fmt.Sprintf("FWM %d", vs.FWMark)
	default:
		return FormatService(vs.Addr, vs.Protocol)
	}
}

func first(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}

func otherBool(m map[string]string, key string) (bool, bool) {
	v, ok := m[key]
	if !ok {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "on", "true", "yes", "1":
		return true, true
	}
	return false, true
}
