// Package checks runs keepalived's real-server health checkers (TCP_CHECK,
// HTTP_GET, SSL_GET, MISC_CHECK, SMTP_CHECK, DNS_CHECK, UDP_CHECK,
// PING_CHECK) off one jittered scheduler and turns their results into
// real-server transitions (up/down, misc_dynamic weight) with keepalived's
// retry rules, notify_up/notify_down scripts and e-mail alerts. It does not
// touch IPVS: the lvs package consumes the transitions.
package checks

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Kind is a checker block name as written in keepalived.conf.
type Kind string

// Checker kinds.
const (
	KindTCP  Kind = "TCP_CHECK"
	KindHTTP Kind = "HTTP_GET"
	KindSSL  Kind = "SSL_GET"
	KindMisc Kind = "MISC_CHECK"
	KindSMTP Kind = "SMTP_CHECK"
	KindDNS  Kind = "DNS_CHECK"
	KindUDP  Kind = "UDP_CHECK"
	KindPing Kind = "PING_CHECK"
)

// keepalived's defaults.
const (
	DefaultDelayLoop      = 60 * time.Second
	DefaultConnectTimeout = 5 * time.Second
)

// Checker is one checker block with every default resolved. Two Checkers
// that are equal (same Key) probe the same thing and run once.
type Checker struct {
	Kind Kind `json:"kind"`
	// Connect is connect_ip:connect_port (default: the real server's).
	Connect  netip.AddrPort `json:"connect"`
	BindTo   netip.Addr     `json:"bindto,omitzero"`
	BindPort uint16         `json:"bind_port,omitempty"`
	BindIf   string         `json:"bind_if,omitempty"`
	// ConnectTimeout bounds one probe (default 5 s).
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// Retry: extra attempts before an up checker goes down (keepalived:
	// 1, DNS_CHECK 3, MISC_CHECK 0).
	Retry            int           `json:"retry"`
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	DelayLoop        time.Duration `json:"delay_loop"`
	// Warmup is the maximum random delay before the first probe.
	Warmup time.Duration `json:"warmup"`
	// Alpha: the checker starts down.
	Alpha bool `json:"alpha,omitempty"`

	HTTP HTTPOptions `json:"http,omitzero"`
	Misc MiscOptions `json:"misc,omitzero"`
	SMTP SMTPOptions `json:"smtp,omitzero"`
	DNS  DNSOptions  `json:"dns,omitzero"`
	UDP  UDPOptions  `json:"udp,omitzero"`
}

// HTTPOptions are HTTP_GET / SSL_GET's.
type HTTPOptions struct {
	URLs []URL `json:"urls,omitempty"`
	// Protocol: "1.0" (default), "1.0C" (1.0 with Connection: close), "1.1".
	Protocol    string `json:"protocol,omitempty"`
	Virtualhost string `json:"virtualhost,omitempty"`
	// SNI sends the virtual host as server name (SSL_GET enable_sni).
	SNI bool `json:"sni,omitempty"`
	// TLS files from the global SSL block; keepalived verifies nothing by
	// default and neither do we.
	CAFile   string `json:"ca,omitempty"`
	CertFile string `json:"cert,omitempty"`
	KeyFile  string `json:"key,omitempty"`
}

// URL is one url { } block.
type URL struct {
	Path   string `json:"path"`
	Digest string `json:"digest,omitempty"` // lower-case MD5 hex of the body
	// Status: accepted codes; empty means 200-299.
	Status       []StatusRange `json:"status,omitempty"`
	Virtualhost  string        `json:"virtualhost,omitempty"`
	Regex        string        `json:"regex,omitempty"`
	RegexNoMatch bool          `json:"regex_no_match,omitempty"`
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// MiscOptions are MISC_CHECK's.
type MiscOptions struct {
	Path    string        `json:"path,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"` // default: delay_loop
	Dynamic bool          `json:"dynamic,omitempty"`
	User    string        `json:"user,omitempty"`
	Group   string        `json:"group,omitempty"`
}

// SMTPOptions are SMTP_CHECK's.
type SMTPOptions struct {
	HeloName string `json:"helo_name,omitempty"`
}

// DNSOptions are DNS_CHECK's.
type DNSOptions struct {
	Type string `json:"type,omitempty"` // default SOA
	Name string `json:"name,omitempty"` // default "."
}

// UDPOptions are UDP_CHECK's.
type UDPOptions struct {
	Payload      []byte `json:"payload,omitempty"`
	RequireReply bool   `json:"require_reply,omitempty"`
	ReplyData    []byte `json:"reply_data,omitempty"`
	MinReplyLen  int    `json:"min_reply_length,omitempty"`
	MaxReplyLen  int    `json:"max_reply_length,omitempty"` // 0: 255
}

// Key identifies what the checker probes and how often: equal keys run
// once, whichever virtual servers share the real server.
func (c Checker) Key() string {
	b, err := json.Marshal(c)
	if err != nil { // cannot happen for these plain types
		return fmt.Sprintf("%#v", c)
	}
	return string(b)
}

// Describe is a short human name: "HTTP_GET [10.0.0.7]:80".
func (c Checker) Describe() string {
	if c.Kind == KindMisc {
		return fmt.Sprintf("%s %q", c.Kind, c.Misc.Path)
	}
	return string(c.Kind) + " " + FormatAddr(c.Connect)
}

// Spec is one real server of one virtual server with its checkers.
type Spec struct {
	// VirtualServer is the virtual server's stable key (config's Key()).
	VirtualServer string `json:"virtual_server"`
	// VirtualServerName is keepalived's display form, "[10.0.0.1]:tcp:80";
	// used in alerts (defaults to VirtualServer).
	VirtualServerName string         `json:"virtual_server_name,omitempty"`
	Protocol          string         `json:"protocol,omitempty"` // tcp, udp, sctp (for display)
	RealServer        netip.AddrPort `json:"real_server"`
	Weight            int            `json:"weight"`
	NotifyUp          string         `json:"notify_up,omitempty"`
	NotifyDown        string         `json:"notify_down,omitempty"`
	SMTPAlert         bool           `json:"smtp_alert,omitempty"`
	// Omega: on shutdown, run notify_down for a real server that is up.
	Omega bool `json:"omega,omitempty"`
	// Checkers: a zero Connect is the real server's address. Build leaves
	// it so, which lets the real servers of a virtual server share one
	// Checker (40,000 HTTP_GETs of 440 bytes each were 18 MB of a load);
	// CheckerAt resolves it.
	Checkers []Checker `json:"checkers,omitempty"`
}

// CheckerAt is Checkers[i] with its Connect resolved.
func (s *Spec) CheckerAt(i int) Checker {
	c := s.Checkers[i]
	if !c.Connect.IsValid() {
		c.Connect = s.RealServer
	}
	return c
}

// RSKey identifies a real server within a virtual server.
type RSKey struct {
	VirtualServer string
	RealServer    netip.AddrPort
}

// String returns "VS -> RS".
func (k RSKey) String() string { return k.VirtualServer + " -> " + k.RealServer.String() }

// Key returns the spec's identity.
func (s *Spec) Key() RSKey { return RSKey{s.VirtualServer, s.RealServer} }

// Transition is a real server's change of health (or of its misc_dynamic
// weight) within one virtual server.
type Transition struct {
	VirtualServer string         `json:"virtual_server"`
	RealServer    netip.AddrPort `json:"real_server"`
	Up            bool           `json:"up"`
	// Weight is the weight set by misc_dynamic, or -1: unchanged.
	Weight int `json:"weight"`
	// Reason says why, e.g. "TCP connection to [10.0.0.7]:80 failed".
	Reason string `json:"reason"`
	// Checker is the checker whose result caused the transition.
	Checker string    `json:"checker"`
	Time    time.Time `json:"time"`
}

// FormatAddr formats like keepalived: "[10.0.0.7]:80".
func FormatAddr(ap netip.AddrPort) string {
	return "[" + ap.Addr().String() + "]:" + strconv.Itoa(int(ap.Port()))
}

// FormatService formats like keepalived's alerts: "[10.0.0.7]:tcp:80".
func FormatService(ap netip.AddrPort, proto string) string {
	if proto == "" {
		proto = "tcp"
	}
	return "[" + ap.Addr().String() + "]:" + strings.ToLower(proto) + ":" + strconv.Itoa(int(ap.Port()))
}

// FormatStatus formats accepted status ranges: "200-299", "200 301-302".
func FormatStatus(rs []StatusRange) string {
	if len(rs) == 0 {
		return "200-299"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.Lo == r.Hi {
			parts[i] = strconv.Itoa(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(parts, " ")
}

func statusOK(rs []StatusRange, code int) bool {
	if len(rs) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range rs {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

// Validate reports a checker that cannot run.
func (c *Checker) Validate() error {
	switch c.Kind {
	case KindTCP, KindHTTP, KindSSL, KindSMTP, KindDNS, KindUDP, KindPing:
		if !c.Connect.Addr().IsValid() {
			return fmt.Errorf("%s: no address to connect to", c.Kind)
		}
		if c.Kind != KindPing && c.Connect.Port() == 0 {
			return fmt.Errorf("%s %s: no port to connect to", c.Kind, c.Connect.Addr())
		}
	case KindMisc:
		if strings.TrimSpace(c.Misc.Path) == "" {
			return fmt.Errorf("MISC_CHECK: misc_path is missing")
		}
	default:
		return fmt.Errorf("unsupported checker %q", c.Kind)
	}
	if c.DelayLoop <= 0 {
		return fmt.Errorf("%s: delay_loop must be positive", c.Describe())
	}
	if (c.Kind == KindHTTP || c.Kind == KindSSL) && len(c.HTTP.URLs) == 0 {
		return fmt.Errorf("%s: no url block", c.Describe())
	}
	if c.Kind == KindDNS {
		if _, err := dnsType(c.DNS.Type); err != nil {
			return fmt.Errorf("%s: %w", c.Describe(), err)
		}
	}
	return nil
}
