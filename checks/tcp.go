package checks

import (
	"context"
	"errors"
	"net"
)

// tcpProber is TCP_CHECK: success is a completed TCP handshake.
type tcpProber struct {
	c      Checker
	dialer *net.Dialer
	addr   string    // to dial
	ok     string    // the success reason, built once
	plan   *dialPlan // nil: dial in Probe
}

func newTCPProber(c Checker) *tcpProber {
	return &tcpProber{c: c, dialer: dialer(&c, false), addr: target(&c),
		ok: "TCP connection to " + FormatAddr(c.Connect) + " succeeded", plan: newDialPlan(&c)}
}

func (p *tcpProber) dialPlan() *dialPlan { return p.plan }

// handshakeOnly: the completed handshake is the whole check.
func (p *tcpProber) handshakeOnly() bool { return true }

func (p *tcpProber) exchange(context.Context, net.Conn) Result { return okResult(p.ok) }

func (p *tcpProber) connectFailed(err error) Result {
	if errors.Is(err, errConnectTimeout) {
		return failf("TCP connection to %s timed out", FormatAddr(p.c.Connect))
	}
	return failf("TCP connection to %s failed: %s", FormatAddr(p.c.Connect), netReason(err))
}

func (p *tcpProber) Probe(ctx context.Context) Result {
	conn, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		if ctx.Err() != nil || netReason(err) == "timed out" {
			return failf("TCP connection to %s timed out", FormatAddr(p.c.Connect))
		}
		return failf("TCP connection to %s failed: %s", FormatAddr(p.c.Connect), netReason(err))
	}
	// Reset rather than FIN: like HAProxy's checks, no TIME_WAIT pile-up
	// on the director at thousands of checks a second.
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
	return okResult(p.ok)
}
