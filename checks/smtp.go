package checks

import (
	"context"
	"net/textproto"
	"os"
)

// smtpProber is SMTP_CHECK: read the 220 greeting, HELO, expect 250, QUIT.
type smtpProber struct{ c Checker }

func (p *smtpProber) Probe(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout(&p.c))
	defer cancel()
	addr := FormatAddr(p.c.Connect)
	conn, err := dialer(&p.c, false).DialContext(ctx, "tcp", target(&p.c))
	if err != nil {
		if ctx.Err() != nil {
			return failf("SMTP connection to %s timed out", addr)
		}
		return failf("SMTP connection to %s failed: %s", addr, netReason(err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	tp := textproto.NewConn(conn)
	if code, msg, err := tp.ReadResponse(220); err != nil {
		return failf("SMTP server %s greeting: %s", addr, smtpErr(code, msg, err))
	}
	helo := p.c.SMTP.HeloName
	if helo == "" {
		helo, _ = os.Hostname()
	}
	if err := tp.PrintfLine("HELO %s", helo); err != nil {
		return failf("SMTP server %s: HELO: %s", addr, netReason(err))
	}
	if code, msg, err := tp.ReadResponse(250); err != nil {
		return failf("SMTP server %s: HELO: %s", addr, smtpErr(code, msg, err))
	}
	// QUIT is good manners; its answer does not change the verdict.
	if tp.PrintfLine("QUIT") == nil {
		tp.ReadResponse(221)
	}
	return okResult("SMTP server " + addr + " answered HELO")
}

func smtpErr(code int, msg string, err error) string {
	if _, ok := err.(*textproto.Error); ok {
		return "unexpected reply " + err.Error()
	}
	_ = code
	_ = msg
	return netReason(err)
}
