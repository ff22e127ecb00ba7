package checks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Weight is a misc_dynamic weight (exit code - 2), or -1: unchanged.
	Weight int
	// Reason describes a failure ("TCP connection to [10.0.0.7]:80
	// failed: connection refused") or the success.
	Reason string
}

func okResult(reason string) Result { return Result{OK: true, Weight: -1, Reason: reason} }
func failf(format string, args ...any) Result {
	return Result{Weight: -1, Reason: fmt.Sprintf(format, args...)}
}

// Prober performs one check attempt. Probe must return by ctx's deadline.
type Prober interface {
	Probe(ctx context.Context) Result
}

// ProberFunc adapts a function to Prober.
type ProberFunc func(ctx context.Context) Result

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context) Result { return f(ctx) }

// NewProber builds the real prober for c. runner runs MISC_CHECK scripts.
func NewProber(c Checker, runner ScriptRunner) (Prober, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch c.Kind {
	case KindTCP:
		return newTCPProber(c), nil
	case KindHTTP, KindSSL:
		return newHTTPProber(c)
	case KindMisc:
		if runner == nil {
			runner = Scripts{}
		}
		return newMiscProber(c, runner)
	case KindSMTP:
		return &smtpProber{c: c}, nil
	case KindDNS:
		return newDNSProber(c)
	case KindUDP:
		return &udpProber{c: c}, nil
	case KindPing:
		return &pingProber{c: c}, nil
	}
	return nil, fmt.Errorf("unsupported checker %q", c.Kind)
}

// proberFor is the real prober of the check at st (a job's). TCP_CHECK and
// HTTP_GET / SSL_GET probers are the job's site itself, shape and address
// (no allocation); the others hold their own Checker.
func proberFor(st *site, runner ScriptRunner) (Prober, error) {
	switch st.s.c.Kind {
	case KindTCP:
		return (*tcpProber)(st), nil
	case KindHTTP, KindSSL:
		return (*httpProber)(st), nil
	}
	return NewProber(st.checker(), runner)
}

// connProber is a Prober whose check opens with a TCP handshake. The
// manager makes that handshake on its connector (no goroutine while it
// waits) and calls exchange with the connection, or connectFailed.
type connProber interface {
	Prober
	// dialPlan is the handshake to make; false: use Probe.
	dialPlan() (dialPlan, bool)
	// handshakeOnly: a completed handshake passes the check (exchange is
	// then called with a nil conn and must not use it).
	handshakeOnly() bool
	// exchange runs the rest of the check on conn (connected; exchange
	// closes it); ctx ends at the check's deadline.
	exchange(ctx context.Context, conn net.Conn) Result
	// connectFailed is the result of a handshake that failed or ran out
	// of connect_timeout (errConnectTimeout).
	connectFailed(err error) Result
}

// dialer returns a net.Dialer honouring bindto / bind_port / bind_if.
func dialer(c *Checker, udp bool) *net.Dialer {
	// No TCP keepalive: a check connection lives for one exchange, and
	// Go's default would cost four setsockopt calls per check.
	d := &net.Dialer{Timeout: c.ConnectTimeout, KeepAlive: -1}
	if c.BindTo.IsValid() || c.BindPort != 0 {
		ip := c.BindTo
		if !ip.IsValid() {
			if c.Connect.Addr().Is4() {
				ip = netip.IPv4Unspecified()
			} else {
				ip = netip.IPv6Unspecified()
			}
		}
		ap := netip.AddrPortFrom(ip.WithZone(c.BindIf), c.BindPort)
		if udp {
			d.LocalAddr = net.UDPAddrFromAddrPort(ap)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(ap)
		}
	}
	return d
}

func connectTimeout(c *Checker) time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

// target is the address to dial, with bind_if as zone for link-local.
func target(c *Checker) string {
	a := c.Connect.Addr()
	if c.BindIf != "" && a.Is6() && a.IsLinkLocalUnicast() {
		a = a.WithZone(c.BindIf)
	}
	return netip.AddrPortFrom(a, c.Connect.Port()).String()
}

// netReason shortens a dial/read error for a reason string.
func netReason(err error) string {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return "timed out"
	}
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}
