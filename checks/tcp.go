package checks

import (
	"context"
	"errors"
	"net"
)

// tcpProber is TCP_CHECK: success is a completed TCP handshake. It holds
// only its shape and address: what it needs is built when it is used.
type tcpProber site

func (p *tcpProber) dialPlan() (dialPlan, bool) { return (*site)(p).dialPlan() }

func newTCPProber(c Checker) *tcpProber {
	sc, ap := shapeOf(c)
	s, _ := newShape(sc, "") // a TCP_CHECK compiles nothing that can fail
	return &tcpProber{s: s, addr: ap}
}

// handshakeOnly: the completed handshake is the whole check.
func (p *tcpProber) handshakeOnly() bool { return true }

func (p *tcpProber) exchange(context.Context, net.Conn) Result {
	return okResult("TCP connection to " + FormatAddr(p.addr) + " succeeded")
}

func (p *tcpProber) connectFailed(err error) Result {
	if errors.Is(err, errConnectTimeout) {
		return Result{Weight: -1, Reason: "TCP connection to " + FormatAddr(p.addr) + " timed out"}
	}
	return failf("TCP connection to %s failed: %s", FormatAddr(p.addr), netReason(err))
}

func (p *tcpProber) Probe(ctx context.Context) Result {
	c := (*site)(p).checker()
	conn, err := dialer(&c, false).DialContext(ctx, "tcp", target(&c))
	if err != nil {
		if ctx.Err() != nil || netReason(err) == "timed out" {
			return p.connectFailed(errConnectTimeout)
		}
		return p.connectFailed(err)
	}
	// Reset rather than FIN: like HAProxy's checks, no TIME_WAIT pile-up
	// on the director at thousands of checks a second.
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
	return p.exchange(ctx, nil)
}
