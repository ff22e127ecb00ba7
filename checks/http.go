package checks

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// regexWindow is how much of a body the regex sees (keepalived also
// matches within its receive buffer, not an unbounded body).
const regexWindow = 1 << 20

// httpProber is HTTP_GET / SSL_GET: every url must answer with an
// accepted status, the expected digest and a matching regex. The compiled
// regexes and TLS config are its shape's, shared by every check of it.
type httpProber site

func (p *httpProber) dialPlan() (dialPlan, bool) { return (*site)(p).dialPlan() }

func newHTTPProber(c Checker) (*httpProber, error) {
	sc, ap := shapeOf(c)
	s, err := newShape(sc, "")
	if err != nil {
		return nil, fmt.Errorf("%s %w", c.Describe(), err)
	}
	return &httpProber{s: s, addr: ap}, nil
}

// clientTLS is keepalived's SSL context: the optional client certificate,
// no verification of the server (keepalived's default).
func clientTLS(certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // keepalived does not verify real servers
	if certFile != "" {
		if keyFile == "" {
			keyFile = certFile
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load SSL certificate %s: %w", certFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (p *httpProber) Probe(ctx context.Context) Result { return p.probe(ctx, nil) }

// probe checks every url, each on its own connection; conn, when given,
// is the first url's, already connected (by the connector).
func (p *httpProber) probe(ctx context.Context, conn net.Conn) Result {
	var oks []string
	for i, u := range p.s.c.HTTP.URLs {
		r := p.checkURL(ctx, u, p.s.regexes[i], conn)
		conn = nil
		if !r.OK {
			return r
		}
		oks = append(oks, r.Reason)
	}
	return okResult(strings.Join(oks, ", "))
}

func (p *httpProber) handshakeOnly() bool { return false }

// exchange is the check on the first url's connection, made by the
// connector before the deadline of ctx.
func (p *httpProber) exchange(ctx context.Context, conn net.Conn) Result { return p.probe(ctx, conn) }

// connectFailed words a failed handshake as checkURL does.
func (p *httpProber) connectFailed(err error) Result {
	where := "(" + FormatAddr(p.addr) + p.s.c.HTTP.URLs[0].Path + ")"
	if errors.Is(err, errConnectTimeout) {
		return Result{Weight: -1, Reason: "HTTP connection timed out " + where}
	}
	return failf("HTTP connection failed: %s %s", netReason(err), where)
}

func (p *httpProber) checkURL(ctx context.Context, u URL, re *regexp.Regexp, conn net.Conn) Result {
	c := &p.s.c
	where := "(" + FormatAddr(p.addr) + u.Path + ")"
	vhost := u.Virtualhost
	if vhost == "" {
		vhost = c.HTTP.Virtualhost
	}
	keep := 0
	if re != nil {
		keep = regexWindow
	}
	full := (*site)(p).checker()
	req := httpRequest{
		Addr: target(&full), TLS: p.s.tls,
		Path: u.Path, Virtualhost: vhost, Protocol: c.HTTP.Protocol, SNI: c.HTTP.SNI,
		KeepBody: keep,
	}
	var resp *httpResponse
	var err error
	if conn != nil {
		resp, err = req.exchange(ctx, conn) // ctx ends at the connector's deadline
	} else {
		req.Dialer = dialer(&full, false)
		ctx, cancel := context.WithTimeout(ctx, connectTimeout(c))
		defer cancel()
		resp, err = req.do(ctx)
	}
	if err != nil {
		return failf("%s %s", err, where)
	}
	if !statusOK(u.Status, resp.Status) {
		return failf("HTTP status %d not in %s %s", resp.Status, FormatStatus(u.Status), where)
	}
	if u.Digest != "" && !strings.EqualFold(u.Digest, resp.Digest) {
		return failf("MD5 digest mismatch: got %s, want %s %s", resp.Digest, u.Digest, where)
	}
	if re != nil {
		matched := re.Match(resp.Body)
		if matched == u.RegexNoMatch {
			if u.RegexNoMatch {
				return failf("body matches regex %q %s", u.Regex, where)
			}
			return failf("body does not match regex %q %s", u.Regex, where)
		}
	}
	return okResult("HTTP status " + strconv.Itoa(resp.Status) + " " + where)
}

// httpRequest is one keepalived-style GET.
type httpRequest struct {
	Addr        string // host:port to dial
	Dialer      *net.Dialer
	TLS         *tls.Config // nil: plain HTTP
	Path        string
	Virtualhost string
	Protocol    string // 1.0, 1.0C, 1.1
	SNI         bool
	KeepBody    int // bytes of body to keep
}

type httpResponse struct {
	Status int
	Header http.Header
	Digest string // MD5 of the whole body, lower-case hex
	Body   []byte // the first KeepBody bytes
	Proto  string
}

func (r *httpRequest) do(ctx context.Context) (*httpResponse, error) {
	conn, err := r.Dialer.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		if ctx.Err() != nil || netReason(err) == "timed out" {
			return nil, fmt.Errorf("HTTP connection timed out")
		}
		return nil, fmt.Errorf("HTTP connection failed: %s", netReason(err))
	}
	return r.exchange(ctx, conn)
}

// exchange sends the GET on conn (connected) and reads the answer; it
// closes conn.
func (r *httpRequest) exchange(ctx context.Context, conn net.Conn) (*httpResponse, error) {
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	host, port, _ := net.SplitHostPort(r.Addr)
	if r.TLS != nil {
		cfg := r.TLS.Clone()
		if r.SNI && r.Virtualhost != "" {
			cfg.ServerName = r.Virtualhost
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("SSL handshake failed: %s", netReason(err))
		}
		conn = tc
	}
	hostHdr := r.Virtualhost
	if hostHdr == "" {
		hostHdr = net.JoinHostPort(host, port)
		if i := strings.IndexByte(host, '%'); i >= 0 { // no zone in Host
			hostHdr = net.JoinHostPort(host[:i], port)
		}
		if (r.TLS == nil && port == "80") || (r.TLS != nil && port == "443") {
			hostHdr = strings.TrimSuffix(hostHdr, ":"+port)
		}
	}
	proto, extra := "HTTP/1.0", ""
	switch r.Protocol {
	case "1.1":
		proto, extra = "HTTP/1.1", "Connection: close\r\n"
	case "1.0C":
		extra = "Connection: close\r\n"
	}
	path := r.Path
	if path == "" {
		path = "/"
	}
	reqText := "GET " + path + " " + proto + "\r\nUser-Agent: KeepAliveClient\r\nHost: " + hostHdr + "\r\n" + extra + "\r\n"
	if _, err := io.WriteString(conn, reqText); err != nil {
		return nil, fmt.Errorf("HTTP request failed: %s", netReason(err))
	}
	resp, err := readHTTPResponse(bufio.NewReader(conn), r.KeepBody)
	if err != nil {
		// The deadline and ctx race: either way it is a timeout.
		if ctx.Err() != nil || strings.HasSuffix(err.Error(), "timed out") {
			return nil, fmt.Errorf("HTTP response timed out")
		}
		return nil, err
	}
	return resp, nil
}

// readHTTPResponse parses a response and hashes its body.
func readHTTPResponse(br *bufio.Reader, keep int) (*httpResponse, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("HTTP response unreadable: %s", netReason(err))
	}
	defer resp.Body.Close()
	h := md5.New()
	kb := &keepBuf{max: keep}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	if _, err := io.CopyBuffer(io.MultiWriter(h, kb), resp.Body, *bp); err != nil {
		return nil, fmt.Errorf("HTTP body unreadable: %s", netReason(err))
	}
	return &httpResponse{
		Status: resp.StatusCode, Header: resp.Header, Proto: resp.Proto,
		Digest: hex.EncodeToString(h.Sum(nil)), Body: kb.b,
	}, nil
}

// copyBufs saves io.Copy's 32 KiB buffer per check.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 8192); return &b }}

type keepBuf struct {
	b   []byte
	max int
}

func (k *keepBuf) Write(p []byte) (int, error) {
	if room := k.max - len(k.b); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		k.b = append(k.b, p[:room]...)
	}
	return len(p), nil
}
