package checks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// GenHashOptions are keepalived genhash's: -s SERVER -p PORT -u PATH [-S]
// [-I] [-V VIRTUALHOST] [-P PROTOCOL] [-t TIMEOUT].
type GenHashOptions struct {
	Server      string // IP address or host name
	Port        uint16 // default 80, 443 with SSL
	Path        string // default "/"
	SSL         bool
	SNI         bool
	Virtualhost string
	Protocol    string        // 1.0 (default), 1.0C, 1.1
	Timeout     time.Duration // default 5 s
}

// GenHashResult is what was fetched.
type GenHashResult struct {
	Digest string // MD5 of the body, lower-case hex: the value for digest
	Status int
	Proto  string
	Header http.Header
}

// ParseGenHashURL turns "http[s]://host[:port]/path" into options.
func ParseGenHashURL(raw string) (GenHashOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return GenHashOptions{}, fmt.Errorf("genhash: bad URL %q: %w", raw, err)
	}
	var o GenHashOptions
	switch u.Scheme {
	case "http":
	case "https":
		o.SSL = true
	default:
		return o, fmt.Errorf("genhash: URL %q: scheme must be http or https", raw)
	}
	o.Server = u.Hostname()
	if o.Server == "" {
		return o, fmt.Errorf("genhash: URL %q has no host", raw)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return o, fmt.Errorf("genhash: URL %q: bad port %q", raw, p)
		}
		o.Port = uint16(n)
	}
	o.Path = u.RequestURI()
	return o, nil
}

// GenHash fetches a page the way HTTP_GET / SSL_GET do and returns the
// MD5 digest of its body (keepalived's genhash).
func GenHash(ctx context.Context, o GenHashOptions) (GenHashResult, error) {
	if o.Server == "" {
		return GenHashResult{}, fmt.Errorf("genhash: no server")
	}
	if o.Port == 0 {
		o.Port = 80
		if o.SSL {
			o.Port = 443
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultConnectTimeout
	}
	req := httpRequest{
		Addr: net.JoinHostPort(o.Server, strconv.Itoa(int(o.Port))), Dialer: &net.Dialer{Timeout: o.Timeout},
		Path: o.Path, Virtualhost: o.Virtualhost, Protocol: o.Protocol, SNI: o.SNI,
	}
	if o.SSL {
		cfg, err := clientTLS("", "")
		if err != nil {
			return GenHashResult{}, err
		}
		req.TLS = cfg
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	resp, err := req.do(ctx)
	if err != nil {
		return GenHashResult{}, fmt.Errorf("genhash %s: %v", req.Addr, err)
	}
	return GenHashResult{Digest: resp.Digest, Status: resp.Status, Proto: resp.Proto, Header: resp.Header}, nil
}
