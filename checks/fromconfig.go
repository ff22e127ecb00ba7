package checks

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"hakeep/config"
)

// FromConfig maps every real server of every virtual_server to a Spec with
// keepalived's defaults: connect_ip/connect_port from the real server,
// delay_loop from the real or virtual server (60 s), warmup = delay_loop,
// delay_before_retry 3 s for HTTP_GET/SSL_GET, delay_loop for DNS_CHECK,
// 1 s otherwise, misc_timeout = delay_loop, SMTP helo_name from
// smtp_helo_name, SSL_GET's TLS files from the global SSL settings,
// virtualhost from the url, checker or virtual server. Checkers hakeep
// does not run (BFD_CHECK, FILE_CHECK) are skipped with a warning.
func FromConfig(cfg *config.Config) (specs []Spec, warnings []string) {
	g := &cfg.Global
	alertDefault := len(g.NotificationEmail) > 0 && g.SMTPServer != nil
	if v, ok := otherBool(g.Other, "smtp_alert_checker"); ok {
		alertDefault = v
	} else if v, ok := otherBool(g.Other, "smtp_alert"); ok {
		alertDefault = v
	}
	for _, vs := range cfg.VirtualServers {
		name := vsName(vs)
		for _, rs := range vs.RealServers {
			s := Spec{
				VirtualServer: vs.Key(), VirtualServerName: name, Protocol: strings.ToLower(vs.Protocol),
				RealServer: rs.Addr, Weight: rs.Weight, NotifyUp: rs.NotifyUp, NotifyDown: rs.NotifyDown,
				SMTPAlert: rs.SMTPAlert || vs.SMTPAlert || alertDefault,
				Omega:     vs.Omega,
			}
			for _, c := range rs.Checkers {
				switch c.Kind {
				case config.CheckBFD, config.CheckFile:
					warnings = append(warnings, fmt.Sprintf("%s: %s is not supported by hakeep's checker; ignored", c.Pos, c.Kind))
					continue
				}
				if c.Kind == config.CheckSMTP && len(c.Hosts) > 0 {
					// Legacy host { } blocks: each is checked; all must answer.
					for _, h := range c.Hosts {
						hc := *h
						hc.Kind = config.CheckSMTP
						if hc.HeloName == "" {
							hc.HeloName = c.HeloName
						}
						s.Checkers = append(s.Checkers, mapChecker(cfg, vs, rs, &hc))
					}
					continue
				}
				s.Checkers = append(s.Checkers, mapChecker(cfg, vs, rs, c))
				s.Omega = s.Omega || c.Omega
			}
			for i := range s.Checkers {
				if err := s.Checkers[i].Validate(); err != nil {
					warnings = append(warnings, fmt.Sprintf("%s: real server %s: %v; checker ignored", rs.Pos, rs.Addr, err))
					s.Checkers = append(s.Checkers[:i], s.Checkers[i+1:]...)
					break
				}
			}
			specs = append(specs, s)
		}
	}
	return specs, warnings
}

func mapChecker(cfg *config.Config, vs *config.VirtualServer, rs *config.RealServer, c *config.Checker) Checker {
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
		BindTo: c.BindTo, BindPort: c.BindPort, BindIf: c.BindIf,
		ConnectTimeout: first(c.ConnectTimeout, rs.ConnectTimeout, vs.ConnectTimeout, DefaultConnectTimeout),
		Retry:          c.Retry,
		DelayLoop:      first(c.DelayLoop, rs.DelayLoop, vs.DelayLoop, DefaultDelayLoop),
		Alpha:          c.Alpha || vs.Alpha,
	}
	out.Warmup = first(c.Warmup, rs.Warmup, vs.Warmup, out.DelayLoop)
	defRetryDelay := time.Second
	switch out.Kind {
	case KindHTTP, KindSSL:
		defRetryDelay = 3 * time.Second
	case KindDNS:
		defRetryDelay = out.DelayLoop
	}
	out.DelayBeforeRetry = first(c.DelayBeforeRetry, rs.DelayBeforeRetry, vs.DelayBeforeRetry, defRetryDelay)
	switch out.Kind {
	case KindHTTP, KindSSL:
		vhost := c.Virtualhost
		if vhost == "" {
			vhost = rs.Other["virtualhost"]
		}
		if vhost == "" {
			vhost = vs.Virtualhost
		}
		out.HTTP = HTTPOptions{Protocol: c.HTTPProtocol, Virtualhost: vhost, SNI: c.EnableSNI}
		if out.Kind == KindSSL {
			out.HTTP.CAFile, out.HTTP.CertFile, out.HTTP.KeyFile = g.SSLCA, g.SSLCertificate, g.SSLKey
		}
		for _, u := range c.URLs {
			mu := URL{Path: u.Path, Digest: strings.ToLower(u.Digest), Virtualhost: u.Virtualhost,
				Regex: u.Regex, RegexNoMatch: u.RegexNoMatch}
			for _, r := range u.StatusCodes {
				mu.Status = append(mu.Status, StatusRange{Lo: r.Lo, Hi: r.Hi})
			}
			out.HTTP.URLs = append(out.HTTP.URLs, mu)
		}
	case KindMisc:
		user, group := c.User, c.Group
		if user == "" {
			user, group = g.ScriptUser, g.ScriptGroup
		}
		out.Misc = MiscOptions{Path: c.MiscPath, Timeout: first(c.MiscTimeout, out.DelayLoop),
			Dynamic: c.MiscDynamic, User: user, Group: group}
	case KindSMTP:
		out.SMTP.HeloName = c.HeloName
		if out.SMTP.HeloName == "" {
			out.SMTP.HeloName = g.SMTPHeloName
		}
	case KindDNS:
		out.DNS = DNSOptions{Type: c.DNSType, Name: c.DNSName}
	case KindUDP:
		out.UDP = UDPOptions{Payload: c.Payload, RequireReply: c.RequireReply, ReplyData: c.ReplyData,
			MinReplyLen: c.MinReplyLength, MaxReplyLen: c.MaxReplyLength}
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
