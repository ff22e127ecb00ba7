package checks

import (
	"context"
	"net"
)

// tcpProber is TCP_CHECK: success is a completed TCP handshake.
type tcpProber struct{ c Checker }

func (p *tcpProber) Probe(ctx context.Context) Result {
	conn, err := dialer(&p.c, false).DialContext(ctx, "tcp", target(&p.c))
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
	return okResult("TCP connection to " + FormatAddr(p.c.Connect) + " succeeded")
}
