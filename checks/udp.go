package checks

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// udpProber is UDP_CHECK: send the payload (random if none); without
// require_reply the check fails only on an ICMP error (seen as a refused
// read), with it a reply of the right length and prefix is needed.
type udpProber struct{ c Checker }

func (p *udpProber) Probe(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout(&p.c))
	defer cancel()
	addr := FormatAddr(p.c.Connect)
	conn, err := dialer(&p.c, true).DialContext(ctx, "udp", target(&p.c))
	if err != nil {
		return failf("UDP_CHECK %s: connect: %s", addr, netReason(err))
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	payload := p.c.UDP.Payload
	if len(payload) == 0 {
		payload = make([]byte, 16)
		rand.Read(payload)
	}
	if _, err := conn.Write(payload); err != nil {
		return failf("UDP_CHECK %s: send: %s", addr, netReason(err))
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if p.c.UDP.RequireReply {
				return failf("UDP_CHECK %s: no reply (timed out)", addr)
			}
			return okResult("UDP_CHECK " + addr + ": no ICMP error")
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return failf("UDP_CHECK %s: port unreachable", addr)
		}
		return failf("UDP_CHECK %s: %s", addr, netReason(err))
	}
	if !p.c.UDP.RequireReply {
		return okResult("UDP_CHECK " + addr + ": reply")
	}
	if msg := checkUDPReply(&p.c.UDP, buf[:n]); msg != "" {
		return failf("UDP_CHECK %s: %s", addr, msg)
	}
	return okResult("UDP_CHECK " + addr + ": expected reply")
}

// checkUDPReply returns "" when the reply satisfies the options.
func checkUDPReply(o *UDPOptions, reply []byte) string {
	max := o.MaxReplyLen
	if max <= 0 {
		max = 255
	}
	if len(reply) < o.MinReplyLen || len(reply) > max {
		return fmt.Sprintf("reply length %d not in %d-%d", len(reply), o.MinReplyLen, max)
	}
	n := min(len(reply), len(o.ReplyData))
	for i := 0; i < n; i++ {
		if reply[i] != o.ReplyData[i] {
			return fmt.Sprintf("reply differs at byte %d", i)
		}
	}
	return ""
}
