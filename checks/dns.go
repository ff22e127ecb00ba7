package checks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "NS": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME,
	"SOA": dnsmessage.TypeSOA, "MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT,
	"AAAA": dnsmessage.TypeAAAA, "RRSIG": dnsmessage.Type(46), "DNSKEY": dnsmessage.Type(48),
}

func dnsType(s string) (dnsmessage.Type, error) {
	if s == "" {
		return dnsmessage.TypeSOA, nil
	}
	t, ok := dnsTypes[strings.ToUpper(s)]
	if !ok {
		return 0, fmt.Errorf("unknown DNS check type %q", s)
	}
	return t, nil
}

// dnsProber is DNS_CHECK: one query over UDP; success is a response with
// our ID, the QR bit and RCODE NOERROR (keepalived's rule: no answer
// records are required).
type dnsProber struct {
	c    Checker
	typ  dnsmessage.Type
	name dnsmessage.Name
}

func newDNSProber(c Checker) (*dnsProber, error) {
	t, err := dnsType(c.DNS.Type)
	if err != nil {
		return nil, err
	}
	n := c.DNS.Name
	if n == "" {
		n = "."
	}
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	name, err := dnsmessage.NewName(n)
	if err != nil {
		return nil, fmt.Errorf("DNS_CHECK name %q: %w", c.DNS.Name, err)
	}
	return &dnsProber{c: c, typ: t, name: name}, nil
}

func (p *dnsProber) query(id uint16) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: p.name, Type: p.typ, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

// errNotOurs marks a datagram to skip (wrong ID, not a response).
var errNotOurs = errors.New("not a response to our query")

// checkDNSReply applies keepalived's rule to one datagram.
func checkDNSReply(id uint16, buf []byte) error {
	var p dnsmessage.Parser
	h, err := p.Start(buf)
	if err != nil {
		return errNotOurs
	}
	if h.ID != id || !h.Response {
		return errNotOurs
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return fmt.Errorf("rcode %s", strings.TrimPrefix(h.RCode.String(), "RCode"))
	}
	return nil
}

func (p *dnsProber) Probe(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout(&p.c))
	defer cancel()
	addr := FormatAddr(p.c.Connect)
	conn, err := dialer(&p.c, true).DialContext(ctx, "udp", target(&p.c))
	if err != nil {
		return failf("DNS_CHECK %s: connect: %s", addr, netReason(err))
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	id := uint16(rand.Uint32())
	q, err := p.query(id)
	if err != nil {
		return failf("DNS_CHECK %s: build query: %v", addr, err)
	}
	if _, err := conn.Write(q); err != nil {
		return failf("DNS_CHECK %s: send: %s", addr, netReason(err))
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if time.Now().After(dl) || ctx.Err() != nil {
				return failf("DNS_CHECK %s: no answer (timed out)", addr)
			}
			return failf("DNS_CHECK %s: read: %s", addr, netReason(err))
		}
		switch err := checkDNSReply(id, buf[:n]); {
		case errors.Is(err, errNotOurs):
			continue
		case err != nil:
			return failf("DNS_CHECK %s: %s %s: %v", addr, strings.TrimPrefix(p.typ.String(), "Type"), p.name.String(), err)
		default:
			return okResult("DNS_CHECK " + addr + " answered NOERROR")
		}
	}
}
