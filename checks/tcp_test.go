package checks

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestTCPCheckAgainstNginx(t *testing.T) {
	n := startNginx(t)
	c := fastChecker(KindTCP, n.http)
	c.Retry = 2
	w := newRealWorld(t, []Spec{specFor("vs", c)}, Options{})
	rs := n.http.String()
	w.quiet("vs", rs, 3)
	n.stop()
	w.expect("vs", rs, false, "TCP connection to "+FormatAddr(n.http)+" failed: connect: connection refused")
	if s := w.checker("vs", rs); s.Failures < 3 {
		t.Fatalf("down after %d failures, want retry+1 = 3", s.Failures)
	}
	w.quiet("vs", rs, 3)
	n.start()
	w.expect("vs", rs, true, "succeeded")
	w.quiet("vs", rs, 2)
}

// TestTCPCheckTimeout drops SYNs with iptables inside a private network
// namespace: the check costs one connect_timeout and goes down.
func TestTCPCheckTimeout(t *testing.T) {
	needRoot(t, "network namespace and iptables")
	socat := needBinary(t, "socat")
	needBinary(t, "iptables")
	name := nsName(t, "tcp")
	ns := newNS(t, name)
	startProc(t, t.TempDir()+"/socat.log", "ip", "netns", "exec", name, socat,
		"TCP4-LISTEN:8080,bind=127.0.0.1,reuseaddr,fork", "SYSTEM:true")
	ap := netip.MustParseAddrPort("127.0.0.1:8080")
	c := fastChecker(KindTCP, ap)
	c.ConnectTimeout = 300 * time.Millisecond
	w := newRealWorld(t, []Spec{specFor("vs", c)}, Options{NewProber: func(c Checker) (Prober, error) {
		p, err := NewProber(c, nil)
		if err != nil {
			return nil, err
		}
		return netnsProber(ns, p), nil
	}})
	// socat may need a moment: wait for a success first.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := w.checker("vs", ap.String())
		if s.Runs > 0 && s.Up && s.Retries == 0 && s.Last != "" && s.Failures < s.Runs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never up: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Drain a possible early down/up pair while socat was starting.
	w.drain()
	nsRun(t, name, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
	w.expect("vs", ap.String(), false, "TCP connection to [127.0.0.1]:8080 timed out")
	w.quiet("vs", ap.String(), 2)
	nsRun(t, name, "iptables", "-D", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
	w.expect("vs", ap.String(), true, "succeeded")
}

// TestTCPProbeBindAndIPv6: bindto/bind_port choose the source, and IPv6
// targets work; the kernel's view of the peer proves it.
func TestTCPProbeBindAndIPv6(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		bind         netip.Addr
		bindPort     bool
	}{
		{"v4 bindto", "127.0.0.1:0", netip.MustParseAddr("127.0.0.5"), true},
		{"v6", "[::1]:0", netip.Addr{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Skipf("listen %s: %v", tc.listen, err)
			}
			defer l.Close()
			peers := make(chan netip.AddrPort, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
				c.Close()
			}()
			ap := l.Addr().(*net.TCPAddr).AddrPort()
			c := fastChecker(KindTCP, ap)
			c.BindTo = tc.bind
			if tc.bindPort {
				c.BindPort = freePort(t, "tcp")
			}
			r := probeOnce(t, c)
			if !r.OK || !strings.Contains(r.Reason, FormatAddr(ap)) {
				t.Fatalf("%+v", r)
			}
			peer := <-peers
			if tc.bind.IsValid() && (peer.Addr() != tc.bind || peer.Port() != c.BindPort) {
				t.Fatalf("peer %s, want %s:%d", peer, tc.bind, c.BindPort)
			}
		})
	}
}
