package config

import "time"

// keepalived 2.2.7's checker defaults. Sources (acassen/keepalived,
// keepalived/check/, 2.2 series) and keepalived.conf(5) of Debian's
// keepalived 2.2.7 (/usr/share/man/man5/keepalived.conf.5.gz, section
// "Virtual server(s)"):
//
//   - check_api.c queue_checker(): every checker starts with retry,
//     delay_before_retry, warmup, delay_loop and co->connection_to unset
//     (UINT_MAX/ULONG_MAX), default_retry = 1,
//     default_delay_before_retry = 1 * TIMER_HZ.
//   - check_http.c http_get_handler() (HTTP_GET and SSL_GET):
//     default_delay_before_retry = 3 * TIMER_HZ.
//   - check_dns.c dns_check_handler(): default_retry = DNS_DEFAULT_RETRY
//     (3; man: "The retry default is 3"), default_delay_before_retry = 0
//     ("This will default to delay_loop").
//   - check_misc.c misc_check_handler(): default_retry = 0 (man: "The retry
//     default is 0"); misc_check_thread(): script timeout = misc_timeout,
//     or checker->vs->delay_loop when 0.
//   - check_tcp.c, check_smtp.c, check_udp.c, check_ping.c: queue_checker()
//     without overrides (retry 1, delay_before_retry 1 s).
//   - check_data.c alloc_vs(): connection_to = 5 * TIMER_HZ, delay_loop =
//     KEEPALIVED_DEFAULT_DELAY (60 s), retry/delay_before_retry/warmup
//     unset; alloc_rs(): all unset.
//   - check_data.c validate_check_config(): a real server takes each unset
//     value from its virtual server (rs->retry = vs->retry, ... which may
//     still be unset); then a checker takes each unset value from its real
//     server, else retry = default_retry, delay_before_retry =
//     default_delay_before_retry or, when that is 0, the checker's
//     delay_loop, warmup = the checker's delay_loop.
const (
	// DefaultCheckConnectTimeout: alloc_vs() connection_to = 5 * TIMER_HZ.
	DefaultCheckConnectTimeout = 5 * time.Second
	// DefaultCheckDelayLoop: KEEPALIVED_DEFAULT_DELAY (60 * TIMER_HZ).
	DefaultCheckDelayLoop = 60 * time.Second
)

// DefaultRetry is keepalived's retry for a checker kind when neither the
// checker, its real_server nor its virtual_server sets one.
func DefaultRetry(kind string) int {
	switch kind {
	case CheckMisc:
		return 0 // check_misc.c misc_check_handler(): default_retry = 0
	case CheckDNS:
		return 3 // check_dns.c dns_check_handler(): DNS_DEFAULT_RETRY
	}
	return 1 // check_api.c queue_checker(): default_retry = 1
}

// DefaultDelayBeforeRetry is keepalived's delay_before_retry for a checker
// kind when none is set, given the checker's delay_loop in effect.
func DefaultDelayBeforeRetry(kind string, delayLoop time.Duration) time.Duration {
	switch kind {
	case CheckHTTP, CheckSSL:
		return 3 * time.Second // check_http.c http_get_handler(): 3 * TIMER_HZ
	case CheckDNS:
		// check_dns.c: default_delay_before_retry = 0, which
		// validate_check_config() turns into the checker's delay_loop.
		return delayLoop
	}
	return time.Second // check_api.c queue_checker(): 1 * TIMER_HZ
}

// inheritChecker resolves what a checker did not set, as keepalived's
// validate_check_config() does: timings from the real server, else the
// virtual server, else the kind's default (see above). Unset values
// arrive as -1 (unsetInt for Retry).
// SMTP_CHECK host { } blocks are copies of their checker
// (smtp_check_end_handler() copies the checker for each host), with their
// own connection options.
func inheritChecker(c *Checker, rs *RealServer, vs *VirtualServer) {
	if vs == nil {
		vs = &VirtualServer{DelayLoop: DefaultCheckDelayLoop}
	}
	for _, h := range c.OtherFields().Hosts {
		h.Retry, h.DelayBeforeRetry, h.Warmup, h.DelayLoop = c.Retry, c.DelayBeforeRetry, c.Warmup, c.DelayLoop
		if h.ConnectTimeout < 0 {
			// smtp_host_handler() starts the host from the checker's co.
			h.ConnectTimeout = c.ConnectTimeout
		}
		inheritChecker(h, rs, vs)
	}
	// The connect address stays unset for the real server's (ConnectAddr):
	// the alike checkers of a virtual server's real servers are then one.
	// delay_loop: checker, else real server, else virtual server (60 s).
	if c.DelayLoop < 0 {
		c.DelayLoop = vs.DelayLoop
		if rs.Options().DelayLoop > 0 {
			c.DelayLoop = rs.Options().DelayLoop
		}
		if c.DelayLoop <= 0 {
			c.DelayLoop = DefaultCheckDelayLoop
		}
	}
	// connect_timeout: checker, else real server, else virtual server
	// (5 s). 0 is not a value keepalived keeps (co_timeout_handler).
	if c.ConnectTimeout < 0 {
		c.ConnectTimeout = DefaultCheckConnectTimeout
		if vs.ConnectTimeout > 0 {
			c.ConnectTimeout = vs.ConnectTimeout
		}
		if rs.Options().ConnectTimeout > 0 {
			c.ConnectTimeout = rs.Options().ConnectTimeout
		}
	}
	// retry: checker, else real server, else virtual server, else kind.
	c.RetrySet = true
	switch {
	case c.Retry != unsetInt:
	case rs.Options().RetrySet:
		c.Retry = rs.Options().Retry
	case vs.RetrySet:
		c.Retry = vs.Retry
	default:
		c.Retry, c.RetrySet = DefaultRetry(c.Kind), false
	}
	// delay_before_retry: likewise, the kind's default last (DNS_CHECK's
	// follows the checker's delay_loop).
	c.DelayBeforeRetrySet = true
	switch {
	case c.DelayBeforeRetry >= 0:
	case rs.Options().DelayBeforeRetrySet:
		c.DelayBeforeRetry = rs.Options().DelayBeforeRetry
	case vs.DelayBeforeRetrySet:
		c.DelayBeforeRetry = vs.DelayBeforeRetry
	default:
		c.DelayBeforeRetry, c.DelayBeforeRetrySet = DefaultDelayBeforeRetry(c.Kind, c.DelayLoop), false
	}
	// warmup: likewise, else the checker's delay_loop; "warmup 0" stays 0.
	c.WarmupSet = true
	switch {
	case c.Warmup >= 0:
	case rs.Options().WarmupSet:
		c.Warmup = rs.Options().Warmup
	case vs.WarmupSet:
		c.Warmup = vs.Warmup
	default:
		c.Warmup, c.WarmupSet = c.DelayLoop, false
	}
	if c.Kind == CheckMisc {
		// misc_check_thread(): misc_timeout, else (0) vs->delay_loop,
		// the virtual server's, not the checker's.
		c.otherFields().MiscTimeoutSet = c.OtherFields().MiscTimeout > 0
		if !c.OtherFields().MiscTimeoutSet {
			c.otherFields().MiscTimeout = vs.DelayLoop
		}
	}
	if c.Kind == CheckDNS {
		if c.OtherFields().DNSType == "" {
			c.otherFields().DNSType = "SOA"
		}
		if c.OtherFields().DNSName == "" {
			c.otherFields().DNSName = "."
		}
	}
	if (c.Kind == CheckHTTP || c.Kind == CheckSSL) && c.HTTPFields().HTTPProtocol == "" {
		c.httpFields().HTTPProtocol = "1.0"
	}
	if c.Kind == CheckHTTP || c.Kind == CheckSSL {
		// The Host header: url's, else the checker's, else the real
		// server's, else the virtual server's (keepalived's order).
		if c.HTTPFields().Virtualhost == "" {
			c.httpFields().Virtualhost = rs.Options().Virtualhost
		}
		if c.HTTPFields().Virtualhost == "" {
			c.httpFields().Virtualhost = vs.Virtualhost
		}
		for _, u := range c.HTTPFields().URLs {
			if u.Virtualhost == "" {
				u.Virtualhost = c.HTTPFields().Virtualhost
			}
		}
	}
}
