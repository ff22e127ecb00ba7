package checks

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func fastChecker(kind Kind, ap netip.AddrPort) Checker {
	return Checker{Kind: kind, Connect: ap, ConnectTimeout: time.Second, Retry: 1,
		DelayBeforeRetry: 50 * time.Millisecond, DelayLoop: 150 * time.Millisecond}
}

func specFor(vs string, c Checker) Spec {
	return Spec{VirtualServer: vs, RealServer: c.Connect, Weight: 1, Checkers: []Checker{c}}
}

func TestHTTPGetAgainstNginx(t *testing.T) {
	n := startNginx(t)
	n.write("index.html", "hello v1\n")
	const vs = "10.9.9.9:80/TCP"
	rs := n.http.String()

	c := fastChecker(KindHTTP, n.http)
	c.HTTP.URLs = []URL{{Path: "/index.html", Digest: md5hex("hello v1\n")}}
	down := fastChecker(KindHTTP, n.http)
	down.HTTP.URLs = []URL{{Path: "/down"}}
	w := newRealWorld(t, []Spec{specFor(vs, c), specFor("vs503", down)}, Options{})

	// 503 with the default 200-299: down, once.
	w.expect("vs503", rs, false, "HTTP status 503 not in 200-299")
	w.quiet("vs503", rs, 3)

	// Digest matches: stays up without transitions.
	w.quiet(vs, rs, 3)

	// A changed body: digest mismatch after retry+1 failures, once.
	n.write("index.html", "hello v2\n")
	w.expect(vs, rs, false, "MD5 digest mismatch: got "+md5hex("hello v2\n"))
	w.quiet(vs, rs, 3)

	// Restored: up again after one success.
	n.write("index.html", "hello v1\n")
	w.expect(vs, rs, true, "HTTP status 200")
	w.quiet(vs, rs, 2)

	// nginx stopped: connection refused.
	n.stop()
	w.expect(vs, rs, false, "HTTP connection failed")
	w.quiet(vs, rs, 2)
	n.start()
	w.expect(vs, rs, true, "HTTP status 200")
}

func TestHTTPProbeOptions(t *testing.T) {
	n := startNginx(t)
	n.write("page.html", "status: all good\n")
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		kind   Kind
		mod    func(*Checker)
		ok     bool
		reason string
	}{
		{"status list accepts 503", KindHTTP, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/down", Status: []StatusRange{{200, 200}, {500, 503}}}}
		}, true, "HTTP status 503"},
		{"status single rejects 200", KindHTTP, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/page.html", Status: []StatusRange{{301, 302}}}}
		}, false, "HTTP status 200 not in 301-302"},
		{"regex matches", KindHTTP, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/page.html", Regex: "all (good|fine)"}}
		}, true, ""},
		{"regex does not match", KindHTTP, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/page.html", Regex: "broken"}}
		}, false, "does not match regex"},
		{"regex_no_match", KindHTTP, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/page.html", Regex: "good", RegexNoMatch: true}}
		}, false, "body matches regex"},
		{"404", KindHTTP, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/missing"}}
		}, false, "HTTP status 404"},
		{"all urls must pass", KindHTTP, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/page.html"}, {Path: "/down"}}
		}, false, "503"},
		{"virtualhost header", KindHTTP, func(c *Checker) {
			c.HTTP.Virtualhost = "www.example.test"
			c.HTTP.URLs = []URL{{Path: "/vhost", Digest: md5hex("host=www.example.test sni=\n")}}
		}, true, ""},
		{"http 1.1", KindHTTP, func(c *Checker) {
			c.HTTP.Protocol = "1.1"
			c.HTTP.URLs = []URL{{Path: "/page.html", Digest: md5hex("status: all good\n")}}
		}, true, ""},
		{"ssl", KindSSL, func(c *Checker) {
			c.Connect = n.tls
			c.HTTP.URLs = []URL{{Path: "/page.html", Digest: md5hex("status: all good\n")}}
		}, true, ""},
		{"ssl with sni", KindSSL, func(c *Checker) {
			c.Connect = n.tls
			c.HTTP.SNI = true
			c.HTTP.Virtualhost = "www.example.test"
			c.HTTP.URLs = []URL{{Path: "/vhost", Digest: md5hex("host=www.example.test sni=www.example.test\n")}}
		}, true, ""},
		{"ssl client certificate", KindSSL, func(c *Checker) {
			c.Connect = n.tls
			c.HTTP.CertFile, c.HTTP.KeyFile = selfSigned(t, t.TempDir(), "client.test")
			c.HTTP.URLs = []URL{{Path: "/clientcert", Digest: md5hex("dn=CN=client.test\n")}}
		}, true, ""},
		{"ssl without client certificate", KindSSL, func(c *Checker) {
			c.Connect = n.tls
			c.HTTP.URLs = []URL{{Path: "/clientcert", Digest: md5hex("dn=\n")}}
		}, true, ""},
		{"ssl to plain port", KindSSL, func(c *Checker) {
			c.HTTP.URLs = []URL{{Path: "/page.html"}}
		}, false, "SSL handshake failed"},
		{"plain to ssl port", KindHTTP, func(c *Checker) {
			c.Connect = n.tls
			c.HTTP.URLs = []URL{{Path: "/page.html"}}
		}, false, "HTTP status 400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fastChecker(tc.kind, n.http)
			tc.mod(&c)
			p, err := NewProber(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := p.Probe(ctx)
			if r.OK != tc.ok || !strings.Contains(r.Reason, tc.reason) {
				t.Fatalf("got %+v, want ok=%v reason~%q", r, tc.ok, tc.reason)
			}
		})
	}
}

func TestHTTPTimeoutOnSilentServer(t *testing.T) {
	needBinary(t, "socat")
	port := freePort(t, "tcp")
	// Accepts and reads, never answers.
	startProc(t, t.TempDir()+"/socat.log", needBinary(t, "socat"),
		"TCP4-LISTEN:"+itoa(int(port))+",bind=127.0.0.1,reuseaddr,fork", "SYSTEM:sleep 30")
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	waitTCP(t, ap.String())
	c := fastChecker(KindHTTP, ap)
	c.ConnectTimeout = 300 * time.Millisecond
	c.HTTP.URLs = []URL{{Path: "/"}}
	w := newRealWorld(t, []Spec{specFor("vs", c)}, Options{})
	w.expect("vs", ap.String(), false, "HTTP response timed out")
	w.quiet("vs", ap.String(), 2)
}

func TestReadHTTPResponse(t *testing.T) {
	for _, tc := range []struct {
		in     string
		status int
		body   string
		bad    bool
	}{
		{in: "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: "hello"},
		{in: "HTTP/1.0 503 Busy\r\n\r\nclosed-delimited", status: 503, body: "closed-delimited"},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: 200, body: "abc"},
		{in: "garbage\r\n\r\n", bad: true},
		{in: "", bad: true},
	} {
		r, err := readHTTPResponse(bufio.NewReader(strings.NewReader(tc.in)), 100)
		if (err != nil) != tc.bad {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if tc.bad {
			continue
		}
		if r.Status != tc.status || string(r.Body) != tc.body || r.Digest != md5hex(tc.body) {
			t.Fatalf("%q: %+v", tc.in, r)
		}
	}
}

func FuzzReadHTTPResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 99999 X\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := readHTTPResponse(bufio.NewReader(strings.NewReader(string(b))), 64)
		if err == nil && len(r.Body) > 64 {
			t.Fatalf("kept %d bytes", len(r.Body))
		}
	})
}
