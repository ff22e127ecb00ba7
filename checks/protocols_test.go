package checks

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var lo = netip.MustParseAddr("127.0.0.1")

func probeOnce(t *testing.T, c Checker) Result {
	t.Helper()
	p, err := NewProber(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.Probe(context.Background())
}

func wantResult(t *testing.T, r Result, ok bool, reason string) {
	t.Helper()
	if r.OK != ok || !strings.Contains(r.Reason, reason) {
		t.Fatalf("got %+v, want ok=%v reason~%q", r, ok, reason)
	}
}

// startSMTPServer runs aiosmtpd (python3-aiosmtpd) on port.
func startSMTPServer(t *testing.T, port uint16) *proc {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import aiosmtpd").Run(); err != nil {
		t.Skip("python3-aiosmtpd not installed (see deploy/test-deps.txt)")
	}
	dir := t.TempDir()
	p := startProc(t, filepath.Join(dir, "smtpd.log"), py, "-m", "aiosmtpd", "-n", "-l",
		fmt.Sprintf("127.0.0.1:%d", port), "-c", "aiosmtpd.handlers.Sink")
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	return p
}

func TestSMTPCheck(t *testing.T) {
	port := freePort(t, "tcp")
	ap := netip.AddrPortFrom(lo, port)
	srv := startSMTPServer(t, port)
	c := fastChecker(KindSMTP, ap)
	c.SMTP.HeloName = "director.example.test"
	wantResult(t, probeOnce(t, c), true, "answered HELO")

	w := newRealWorld(t, []Spec{specFor("vs", c)}, Options{})
	w.quiet("vs", ap.String(), 2)
	srv.stop()
	w.expect("vs", ap.String(), false, "SMTP connection to "+FormatAddr(ap)+" failed")
	w.quiet("vs", ap.String(), 2)
	startSMTPServer(t, port)
	w.expect("vs", ap.String(), true, "answered HELO")

	// A server that refuses service in its greeting.
	bad := freePort(t, "tcp")
	greet := filepath.Join(t.TempDir(), "greet.sh")
	writeScript(t, greet, "printf '554 no service\\r\\n'\nsleep 2\n")
	startProc(t, t.TempDir()+"/socat.log", needBinary(t, "socat"),
		fmt.Sprintf("TCP4-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", bad), "EXEC:"+greet)
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", bad))
	wantResult(t, probeOnce(t, fastChecker(KindSMTP, netip.AddrPortFrom(lo, bad))), false, "unexpected reply 554")

	// Silent server: timeout.
	silent := freePort(t, "tcp")
	startProc(t, t.TempDir()+"/socat2.log", needBinary(t, "socat"),
		fmt.Sprintf("TCP4-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", silent), "SYSTEM:sleep 5")
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", silent))
	sc := fastChecker(KindSMTP, netip.AddrPortFrom(lo, silent))
	sc.ConnectTimeout = 200 * time.Millisecond
	wantResult(t, probeOnce(t, sc), false, "timed out")
}

func startDnsmasq(t *testing.T, port uint16) *proc {
	t.Helper()
	bin := needBinary(t, "dnsmasq")
	dir := t.TempDir()
	p := startProc(t, filepath.Join(dir, "dnsmasq.log"), bin, "-k", "--conf-file=/dev/null",
		fmt.Sprintf("--port=%d", port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--pid-file=", "--user=root", "--log-facility=-",
		"--local=/example.test/", "--host-record=www.example.test,10.1.2.3", "--host-record=v6.example.test,fd00::3")
	// Poll with real queries until it answers.
	c := fastChecker(KindDNS, netip.AddrPortFrom(lo, port))
	c.DNS = DNSOptions{Type: "A", Name: "www.example.test"}
	deadline := time.Now().Add(10 * time.Second)
	for !probeOnce(t, c).OK {
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq never answered: %s", p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func TestDNSCheck(t *testing.T) {
	port := freePort(t, "udp")
	ap := netip.AddrPortFrom(lo, port)
	srv := startDnsmasq(t, port)
	for _, tc := range []struct {
		typ, name string
		ok        bool
		reason    string
	}{
		{"A", "www.example.test", true, "NOERROR"},
		{"aaaa", "v6.example.test.", true, "NOERROR"},
		// keepalived's rule: NOERROR suffices, no answer needed.
		{"MX", "www.example.test", true, "NOERROR"},
		{"A", "missing.example.test", false, "rcode NameError"},
		{"A", "elsewhere.invalid", false, "rcode Refused"},
	} {
		c := fastChecker(KindDNS, ap)
		c.DNS = DNSOptions{Type: tc.typ, Name: tc.name}
		wantResult(t, probeOnce(t, c), tc.ok, tc.reason)
	}
	// A server that never answers: one connect_timeout.
	silent := freePort(t, "udp")
	startProc(t, t.TempDir()+"/silent.log", needBinary(t, "socat"), "-u", fmt.Sprintf("UDP4-RECV:%d,bind=127.0.0.1", silent), "OPEN:/dev/null,wronly")
	sc := fastChecker(KindDNS, netip.AddrPortFrom(lo, silent))
	sc.ConnectTimeout = 300 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := probeOnce(t, sc)
		if strings.Contains(r.Reason, "no answer (timed out)") {
			break
		}
		if time.Now().After(deadline) { // socat not bound yet: refused
			t.Fatalf("silent DNS server: %+v", r)
		}
	}
	if _, err := NewProber(Checker{Kind: KindDNS, Connect: ap, DelayLoop: time.Second, DNS: DNSOptions{Type: "BOGUS"}}, nil); err == nil {
		t.Fatal("bad type accepted")
	}

	c := fastChecker(KindDNS, ap)
	c.DNS = DNSOptions{Type: "A", Name: "www.example.test"}
	c.Retry = 3 // keepalived's DNS_CHECK default
	w := newRealWorld(t, []Spec{specFor("vs", c)}, Options{})
	w.quiet("vs", ap.String(), 2)
	srv.stop()
	w.expect("vs", ap.String(), false, "connection refused")
	if s := w.checker("vs", ap.String()); s.Failures < 4 {
		t.Fatalf("down after %d failures, want retry+1 = 4", s.Failures)
	}
	w.quiet("vs", ap.String(), 2)
	startDnsmasq(t, port)
	w.expect("vs", ap.String(), true, "NOERROR")
}

func TestUDPCheck(t *testing.T) {
	socat := needBinary(t, "socat")
	echo, silent, closed := freePort(t, "udp"), freePort(t, "udp"), freePort(t, "udp")
	startProc(t, t.TempDir()+"/echo.log", socat, fmt.Sprintf("UDP4-RECVFROM:%d,bind=127.0.0.1,fork", echo), "PIPE")
	startProc(t, t.TempDir()+"/silent.log", socat, "-u", fmt.Sprintf("UDP4-RECV:%d,bind=127.0.0.1", silent), "OPEN:/dev/null,wronly")
	udp := func(port uint16, o UDPOptions) Checker {
		c := fastChecker(KindUDP, netip.AddrPortFrom(lo, port))
		c.ConnectTimeout = 300 * time.Millisecond
		c.UDP = o
		return c
	}
	// Wait for both servers to be bound.
	deadline := time.Now().Add(10 * time.Second)
	for !probeOnce(t, udp(echo, UDPOptions{RequireReply: true})).OK || !probeOnce(t, udp(silent, UDPOptions{})).OK {
		if time.Now().After(deadline) {
			t.Fatal("socat servers never ready")
		}
	}
	for _, tc := range []struct {
		name   string
		c      Checker
		ok     bool
		reason string
	}{
		{"echo require_reply", udp(echo, UDPOptions{Payload: []byte("ping"), RequireReply: true, ReplyData: []byte("pi")}), true, "expected reply"},
		{"echo wrong reply", udp(echo, UDPOptions{Payload: []byte("ping"), RequireReply: true, ReplyData: []byte("po")}), false, "reply differs at byte 1"},
		{"echo too short", udp(echo, UDPOptions{Payload: []byte("ping"), RequireReply: true, MinReplyLen: 10}), false, "reply length 4 not in 10-255"},
		{"silent no reply needed", udp(silent, UDPOptions{}), true, "no ICMP error"},
		{"silent require_reply", udp(silent, UDPOptions{RequireReply: true}), false, "no reply (timed out)"},
		{"closed port", udp(closed, UDPOptions{}), false, "port unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantResult(t, probeOnce(t, tc.c), tc.ok, tc.reason) })
	}
}

// TestPingCheck pings across a veth pair between two namespaces: up while
// the address answers, down when ICMP is dropped or the address removed.
func TestPingCheck(t *testing.T) {
	needRoot(t, "network namespaces for PING_CHECK")
	for _, v6 := range []bool{false, true} {
		for _, dgram := range []bool{false, true} {
			name := fmt.Sprintf("v6=%v/dgram=%v", v6, dgram)
			t.Run(name, func(t *testing.T) { pingCase(t, v6, dgram) })
		}
	}
}

func pingCase(t *testing.T, v6, dgram bool) {
	tag := "p4"
	if v6 {
		tag = "p6"
	}
	if dgram {
		tag += "d"
	}
	a, b := nsName(t, tag+"a"), nsName(t, tag+"b")
	nsA := newNS(t, a)
	newNS(t, b)
	if out, err := exec.Command("ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v %s", err, out)
	}
	addrA, addrB, plen, fam := "10.201.0.1", "10.201.0.2", "24", "-4"
	if v6 {
		addrA, addrB, plen, fam = "fd00:201::1", "fd00:201::2", "64", "-6"
		for _, ns := range []string{a, b} {
			nsRun(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		}
	}
	nsRun(t, a, "ip", fam, "addr", "add", addrA+"/"+plen, "dev", "va", "nodad")
	nsRun(t, b, "ip", fam, "addr", "add", addrB+"/"+plen, "dev", "vb", "nodad")
	nsRun(t, a, "ip", "link", "set", "va", "up")
	nsRun(t, b, "ip", "link", "set", "vb", "up")
	if dgram {
		nsRun(t, a, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
	}
	target := netip.MustParseAddr(addrB)
	c := Checker{Kind: KindPing, Connect: netip.AddrPortFrom(target, 0), ConnectTimeout: 500 * time.Millisecond,
		Retry: 1, DelayBeforeRetry: 50 * time.Millisecond, DelayLoop: 150 * time.Millisecond}
	w := newRealWorld(t, []Spec{specFor("vs", c)}, Options{NewProber: func(c Checker) (Prober, error) {
		p, err := NewProber(c, nil)
		if err != nil {
			return nil, err
		}
		return netnsProber(nsA, p), nil
	}})
	rs := c.Connect.String()
	// The link may need a moment (carrier, neighbour discovery).
	deadline := time.Now().Add(10 * time.Second)
	for {
		// "no echo reply" contains "echo reply": match the success text whole.
		if s := w.checker("vs", rs); s.Up && s.Retries == 0 && strings.HasSuffix(s.Last, ": echo reply") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never answered: %+v", w.checker("vs", rs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.drain()
	w.quiet("vs", rs, 2)
	ipt := "iptables"
	if v6 {
		ipt = "ip6tables"
	}
	proto := "icmp"
	if v6 {
		proto = "ipv6-icmp"
	}
	drop := []string{ipt, "-A", "INPUT", "-p", proto, "-j", "DROP"}
	nsRun(t, b, drop...)
	w.expect("vs", rs, false, "no echo reply")
	w.quiet("vs", rs, 2)
	drop[1] = "-D"
	nsRun(t, b, drop...)
	w.expect("vs", rs, true, "echo reply")
	nsRun(t, b, "ip", fam, "addr", "del", addrB+"/"+plen, "dev", "vb")
	w.expect("vs", rs, false, "PING_CHECK "+addrB)
}

func TestUDPCheckRecovery(t *testing.T) {
	socat := needBinary(t, "socat")
	port := freePort(t, "udp")
	ap := netip.AddrPortFrom(lo, port)
	c := fastChecker(KindUDP, ap)
	c.ConnectTimeout = 300 * time.Millisecond
	c.UDP = UDPOptions{Payload: []byte("hello"), RequireReply: true, ReplyData: []byte("hello")}
	w := newRealWorld(t, []Spec{specFor("vs", c)}, Options{})
	w.expect("vs", ap.String(), false, "port unreachable")
	w.quiet("vs", ap.String(), 2)
	startProc(t, t.TempDir()+"/echo.log", socat, fmt.Sprintf("UDP4-RECVFROM:%d,bind=127.0.0.1,fork", port), "PIPE")
	w.expect("vs", ap.String(), true, "expected reply")
	w.quiet("vs", ap.String(), 2)
}
