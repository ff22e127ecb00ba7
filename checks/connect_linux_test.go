package checks

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fullListener listens on 127.0.0.1 with an accept queue of one, and fills
// it: every later SYN is dropped, so a handshake to it hangs until its
// deadline (a real server whose network is down, on loopback).
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	// The one connection the queue holds, never accepted.
	c, err := net.Dial("tcp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ap
}

type connResult struct {
	fd  int
	err error
}

func TestConnector(t *testing.T) {
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	peers := make(chan string, 16)
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	openAP := open.Addr().(*net.TCPAddr).AddrPort()
	closedAP := netip.AddrPortFrom(openAP.Addr(), freePort(t, "tcp"))
	full := fullListener(t)
	bindPort := freePort(t, "tcp")
	var v6 netip.AddrPort
	if l6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		defer l6.Close()
		go func() {
			for {
				c, err := l6.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		v6 = l6.Addr().(*net.TCPAddr).AddrPort()
	}

	tests := []struct {
		name    string
		remote  netip.AddrPort
		local   netip.AddrPort // zero: none
		wantErr error          // nil: connected
		peer    string         // the listener sees this source
	}{
		{"connected", openAP, netip.AddrPort{}, nil, ""},
		{"refused", closedAP, netip.AddrPort{}, syscall.ECONNREFUSED, ""},
		{"timed out", full, netip.AddrPort{}, errConnectTimeout, ""},
		{"bound source", openAP, netip.MustParseAddrPort(fmt.Sprintf("127.0.0.5:%d", bindPort)), nil,
			fmt.Sprintf("127.0.0.5:%d", bindPort)},
		{"IPv6", v6, netip.AddrPort{}, nil, ""},
	}
	c, err := newConnector()
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.remote.IsValid() {
				t.Skip("no IPv6 loopback")
			}
			remote := rawSockaddr(tt.remote, 0)
			r := &connReq{remote: remote, timeout: 300 * time.Millisecond, index: -1}
			if tt.local.IsValid() {
				r.local = rawSockaddr(tt.local, 0)
			}
			res := make(chan connResult, 1)
			r.done = func(fd int, err error) { res <- connResult{fd, err} }
			if !c.start(r) {
				t.Fatal("connector closed")
			}
			var got connResult
			select {
			case got = <-res:
			case <-time.After(10 * time.Second):
				t.Fatal("handshake never ended")
			}
			if got.fd >= 0 {
				defer unix.Close(got.fd)
			}
			switch {
			case tt.wantErr == nil && (got.err != nil || got.fd < 0):
				t.Fatalf("got fd %d err %v, want a connection", got.fd, got.err)
			case tt.wantErr != nil && !errors.Is(got.err, tt.wantErr):
				t.Fatalf("got fd %d err %v, want %v", got.fd, got.err, tt.wantErr)
			}
			if tt.remote == openAP {
				if p := <-peers; tt.peer != "" && p != tt.peer {
					t.Fatalf("listener saw %s, want %s", p, tt.peer)
				}
			}
		})
	}
}

// TestConnectorClose: handshakes still waiting end with net.ErrClosed when
// the connector closes; later ones are refused.
func TestConnectorClose(t *testing.T) {
	full := fullListener(t)
	c, err := newConnector()
	if err != nil {
		t.Fatal(err)
	}
	remote := rawSockaddr(full, 0)
	res := make(chan error, 1)
	c.start(&connReq{remote: remote, timeout: time.Hour, index: -1,
		done: func(fd int, err error) { res <- err }})
	c.close()
	if err := <-res; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("waiting handshake ended with %v, want net.ErrClosed", err)
	}
	if c.start(&connReq{remote: remote, done: func(int, error) { t.Error("done called after close") }}) {
		t.Fatal("start accepted after close")
	}
}

// TestManagerHandshakesWithoutGoroutines: TCP checks waiting for their
// connect_timeout cost no goroutine each (the issue 10 overload: 20,000
// probes in flight against a dead network).
func TestManagerHandshakesWithoutGoroutines(t *testing.T) {
	full := fullListener(t)
	const n = 400
	var specs []Spec
	for i := 0; i < n; i++ {
		c := fastChecker(KindTCP, full)
		// Distinct checks (one job each) against the same dead address.
		c.ConnectTimeout = 30*time.Second + time.Duration(i)*time.Millisecond
		specs = append(specs, Spec{VirtualServer: fmt.Sprintf("vs%d", i), RealServer: full, Checkers: []Checker{c}})
	}
	before := runtime.NumGoroutine()
	w := newRealWorld(t, specs, Options{})
	deadline := time.Now().Add(20 * time.Second)
	for w.m.Stats().InFlight < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d probes in flight", w.m.Stats().InFlight, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if g := runtime.NumGoroutine() - before; g > 20 {
		t.Fatalf("%d probes waiting for a handshake hold %d goroutines", n, g)
	}
}

// TestConnectFailedReasons: a handshake that failed on the connector is
// worded as the dialing probers word it.
func TestConnectFailedReasons(t *testing.T) {
	ap := netip.MustParseAddrPort("10.60.0.7:80")
	hc := fastChecker(KindHTTP, ap)
	hc.HTTP.URLs = []URL{{Path: "/health"}}
	hp, err := newHTTPProber(hc)
	if err != nil {
		t.Fatal(err)
	}
	refused := os.NewSyscallError("connect", syscall.ECONNREFUSED)
	tests := []struct {
		name string
		p    connProber
		err  error
		want string
	}{
		{"TCP timeout", newTCPProber(fastChecker(KindTCP, ap)), errConnectTimeout, "TCP connection to [10.60.0.7]:80 timed out"},
		{"TCP refused", newTCPProber(fastChecker(KindTCP, ap)), refused, "TCP connection to [10.60.0.7]:80 failed: connect: connection refused"},
		{"HTTP timeout", hp, errConnectTimeout, "HTTP connection timed out ([10.60.0.7]:80/health)"},
		{"HTTP refused", hp, refused, "HTTP connection failed: connect: connection refused ([10.60.0.7]:80/health)"},
	}
	for _, tt := range tests {
		if r := tt.p.connectFailed(tt.err); r.OK || r.Reason != tt.want {
			t.Errorf("%s: got %+v, want %q", tt.name, r, tt.want)
		}
	}
}

// TestConnectTimeoutCountsFromConnect: a handshake that waited behind a
// busy connector still gets its whole connect_timeout from its connect,
// as keepalived's does (it used to count from when the check was due, so
// a late connector failed handshakes it had not waited for).
func TestConnectTimeoutCountsFromConnect(t *testing.T) {
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	openAP := open.Addr().(*net.TCPAddr).AddrPort()
	closedAP := netip.AddrPortFrom(openAP.Addr(), freePort(t, "tcp"))
	full := fullListener(t)
	c, err := newConnector()
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	// The second handshake is started while the first one's done holds
	// the connector's goroutine: it is made only after that returns,
	// busy after it was started.
	const busy, timeout = 400 * time.Millisecond, 200 * time.Millisecond
	ended := make(chan error, 1)
	var endedAt time.Time
	second := &connReq{remote: rawSockaddr(full, 0), timeout: timeout, index: -1}
	second.done = func(fd int, err error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		endedAt = time.Now()
		ended <- err
	}
	var freed time.Time
	first := &connReq{remote: rawSockaddr(closedAP, 0), timeout: time.Second, index: -1}
	first.done = func(fd int, err error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		if !c.start(second) {
			t.Error("connector closed")
		}
		time.Sleep(busy)
		freed = time.Now()
	}
	if !c.start(first) {
		t.Fatal("connector closed")
	}
	select {
	case err := <-ended:
		if !errors.Is(err, errConnectTimeout) {
			t.Fatalf("got %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handshake never ended")
	}
	// Both callbacks ran on the connector's goroutine, in this order.
	if waited := endedAt.Sub(freed); waited < timeout {
		t.Errorf("the handshake made after the connector was free timed out %v later, want its whole connect_timeout %v", waited, timeout)
	}
}

// TestConnectorReadsEventsBeforeTimeouts: handshakes that completed while
// the connector was busy past their deadline, more of them than one wait
// returns, succeed: the connector reads every waiting event before it
// judges a deadline (it used to read 256 and time out the rest, a third
// of the healthy checks in the VM at 2,000 checks a second).
func TestConnectorReadsEventsBeforeTimeouts(t *testing.T) {
	ap := loopbackListener(t, nil)
	c, err := newConnector()
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	// The first handshake to end holds the connector for twice the
	// others' connect_timeout; meanwhile they all complete in the kernel.
	const n, timeout = 1000, 300 * time.Millisecond
	results := make(chan error, n)
	first := true
	for range n {
		r := &connReq{remote: rawSockaddr(ap, 0), timeout: timeout, index: -1, closes: true}
		r.done = func(fd int, err error) { // on the connector's goroutine
			if fd >= 0 {
				unix.Close(fd)
			}
			if first {
				first = false
				time.Sleep(2 * timeout)
			}
			results <- err
		}
		if !c.start(r) {
			t.Fatal("connector closed")
		}
	}
	timedOut := 0
	for range n {
		select {
		case err := <-results:
			if errors.Is(err, errConnectTimeout) {
				timedOut++
			} else if err != nil {
				t.Errorf("handshake: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("handshakes never ended")
		}
	}
	if timedOut > 0 {
		t.Errorf("%d of %d handshakes that had completed timed out", timedOut, n)
	}
}

// TestReloadStartsAddedCheckAtOnce: with the real clock, a check added by
// Reload while the scheduler waits for a check due in an hour starts at
// once (the Reload wakes it), and then runs every delay_loop.
func TestReloadStartsAddedCheckAtOnce(t *testing.T) {
	listen := func() (netip.AddrPort, chan struct{}) {
		seen := make(chan struct{}, 100)
		return loopbackListener(t, seen), seen
	}
	waitFor := func(what string, seen chan struct{}) {
		t.Helper()
		select {
		case <-seen:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no check", what)
		}
	}
	slow, slowSeen := listen()
	fast, fastSeen := listen()
	m := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hourly := tcpSpec("vs1", slow.String(), 0, func(c *Checker) { c.DelayLoop = time.Hour })
	if err := m.Start([]Spec{hourly}); err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	waitFor("the first check", slowSeen)
	often := tcpSpec("vs2", fast.String(), 0, func(c *Checker) { c.DelayLoop = 100 * time.Millisecond })
	if err := m.Reload([]Spec{hourly, often}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		waitFor(fmt.Sprintf("the added check's run %d", i+1), fastSeen)
	}
	if n := len(slowSeen); n != 0 {
		t.Errorf("the hourly check ran %d more times", n)
	}
}
