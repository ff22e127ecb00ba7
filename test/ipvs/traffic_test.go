package ipvs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hakeep/config"
	netlab "hakeep/internal/lab"
	"hakeep/internal/vmtest"
	"hakeep/lvs"
)

// lab is client -> director (VIP, kernel IPVS NAT) -> two real servers,
// each in its own network namespace.
type lab struct {
	prefix string
	c, d   string // namespace names
	rs     []string
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T) *lab {
	t.Helper()
	vmtest.RequireIPVS(t)
	l := &lab{prefix: fmt.Sprintf("e2e%d", os.Getpid())}
	l.c, l.d = l.prefix+"c", l.prefix+"d"
	l.rs = []string{l.prefix + "r1", l.prefix + "r2"}
	for _, ns := range append([]string{l.c, l.d}, l.rs...) {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// client <-> director; the VIP is on the director's side.
	sh(t, "ip", "link", "add", "c0", "netns", l.c, "type", "veth", "peer", "name", "d0", "netns", l.d)
	sh(t, "ip", "-n", l.c, "addr", "add", "10.10.0.2/24", "dev", "c0")
	sh(t, "ip", "-n", l.d, "addr", "add", "10.10.0.1/24", "dev", "d0")
	sh(t, "ip", "-n", l.d, "addr", "add", "10.10.0.100/32", "dev", "d0")
	sh(t, "ip", "-n", l.c, "link", "set", "c0", "up")
	sh(t, "ip", "-n", l.d, "link", "set", "d0", "up")
	sh(t, "ip", "netns", "exec", l.d, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for i, r := range l.rs {
		dn, rn := fmt.Sprintf("d%d", i+1), "e0"
		sh(t, "ip", "link", "add", dn, "netns", l.d, "type", "veth", "peer", "name", rn, "netns", r)
		sh(t, "ip", "-n", l.d, "addr", "add", fmt.Sprintf("10.20.%d.1/24", i+1), "dev", dn)
		sh(t, "ip", "-n", r, "addr", "add", fmt.Sprintf("10.20.%d.2/24", i+1), "dev", rn)
		sh(t, "ip", "-n", l.d, "link", "set", dn, "up")
		sh(t, "ip", "-n", r, "link", "set", rn, "up")
		sh(t, "ip", "-n", r, "route", "add", "default", "via", fmt.Sprintf("10.20.%d.1", i+1))
	}
	return l
}

// server is an HTTP server in a real-server namespace that answers with
// its name and counts requests.
type server struct {
	name, ns, addr string
	hits           atomic.Int64
	mu             sync.Mutex
	srv            *http.Server
}

func (s *server) start(t *testing.T) {
	t.Helper()
	var l net.Listener
	if err := netlab.InNamedNS(s.ns, func() (err error) { l, err = net.Listen("tcp", s.addr); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", s.addr, s.ns, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		io.WriteString(w, s.name)
	})}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(l)
}

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// dialer makes TCP connections from a namespace.
func dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = netlab.InNamedNS(ns, func() error {
			d := net.Dialer{Timeout: 2 * time.Second}
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// get does n requests to the VIP, each on a new connection, and counts the
// answers by server name.
func get(t *testing.T, ns string, n int) map[string]int {
	t.Helper()
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialer(ns), DisableKeepAlives: true}}
	got := map[string]int{}
	for range n {
		resp, err := cl.Get("http://10.10.0.100/")
		if err != nil {
			t.Fatalf("GET via VIP: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[string(b)]++
	}
	return got
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tcpUp is the test's own TCP_CHECK (the checks package is wired in
// by hakeepd): it connects from the director's namespace.
func tcpUp(ns string, addr netip.AddrPort) bool {
	c, err := dialer(ns)(context.Background(), "tcp", addr.String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestTrafficThroughIPVS(t *testing.T) {
	for _, inhibit := range []bool{false, true} {
		t.Run(fmt.Sprintf("inhibit_on_failure=%v", inhibit), func(t *testing.T) { trafficCase(t, inhibit) })
	}
}

func trafficCase(t *testing.T, inhibit bool) {
	l := newLab(t)
	srvs := []*server{
		{name: "rs1", ns: l.rs[0], addr: "10.20.1.2:80"},
		{name: "rs2", ns: l.rs[1], addr: "10.20.2.2:80"},
	}
	for _, s := range srvs {
		s.start(t)
		defer s.stop()
	}
	vs := &config.VirtualServer{Addr: netip.MustParseAddrPort("10.10.0.100:80"), Protocol: "TCP", LBAlgo: "wrr", LBKind: "NAT",
		Quorum: 1, InhibitOnFailure: inhibit}
	for _, s := range srvs {
		vs.RealServers = append(vs.RealServers, &config.RealServer{Addr: netip.MustParseAddrPort(s.addr), Weight: 1,
			Checkers: []*config.Checker{{}}})
	}
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs}}

	k, err := lvs.NewKernel("/run/netns/"+l.d, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec, err := lvs.NewReconciler(k, lvs.Options{Period: 500 * time.Millisecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	planner := lvs.NewPlanner(nil, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cfgMu sync.Mutex
	// Health loop: check every 100 ms, recompute and apply.
	var loopDone sync.WaitGroup
	loopDone.Go(func() {
		for ctx.Err() == nil {
			h := map[lvs.HealthKey]lvs.RSHealth{}
			for _, rs := range vs.RealServers {
				h[lvs.HealthKey{VS: vs.Key(), RS: rs.Addr}] = lvs.RSHealth{Up: tcpUp(l.d, rs.Addr), Weight: -1}
			}
			cfgMu.Lock()
			tab, err := planner.Plan(ctx, cfg, lvs.Inputs{Health: h})
			cfgMu.Unlock()
			if err == nil {
				_, err = rec.SetDesired(ctx, tab)
			}
			if err != nil && ctx.Err() == nil {
				t.Errorf("apply: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	defer loopDone.Wait()
	defer cancel()

	ipvsadm := func() string { return sh(t, "ip", "netns", "exec", l.d, "ipvsadm", "-Ln") }
	waitFor(t, "both real servers in IPVS", func() bool {
		out := ipvsadm()
		return strings.Contains(out, "10.20.1.2:80") && strings.Contains(out, "10.20.2.2:80")
	})
	if got := get(t, l.c, 10); got["rs1"] != 5 || got["rs2"] != 5 {
		t.Fatalf("wrr 1:1 over two servers: %v, want 5 each", got)
	}

	// A connection held open across a weight change keeps working: the
	// change is an update of the destination, not a delete and add.
	conn, err := dialer(l.c)(ctx, "tcp", "10.10.0.100:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	activeConns := func(st lvs.Status) int {
		n := 0
		for _, s := range st.Services {
			for _, d := range s.Dests {
				n += d.ActiveConn
			}
		}
		return n
	}
	waitFor(t, "the held connection in IPVS", func() bool { return activeConns(rec.Status()) == 1 })
	before := rec.Status()
	cfgMu.Lock()
	vs.RealServers[0].Weight, vs.RealServers[1].Weight = 2, 6
	cfgMu.Unlock()
	waitFor(t, "weights 2 and 6", func() bool {
		out := ipvsadm()
		return strings.Contains(out, "Masq    2") && strings.Contains(out, "Masq    6")
	})
	after := rec.Status()
	if d := after.Changes - before.Changes; d != 2 {
		t.Errorf("weight change took %d IPVS changes, want 2 updates", d)
	}
	if activeConns(after) != 1 {
		t.Errorf("held connection lost from IPVS after the weight change:\n%s", ipvsadm())
	}
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if b, err := io.ReadAll(conn); err != nil || !strings.Contains(string(b), "rs") {
		t.Errorf("held connection after the weight change: %q %v", b, err)
	}
	// wrr 2:6 — any 40 consecutive picks hold exactly 10 whole cycles.
	if got := get(t, l.c, 40); got["rs1"] != 10 || got["rs2"] != 30 {
		t.Fatalf("wrr 2:6: %v, want 10 and 30", got)
	}

	// rs1 stops: its check fails, IPVS drops it (or weight 0), no request reaches it.
	srvs[0].stop()
	if inhibit {
		waitFor(t, "rs1 at weight 0", func() bool { return strings.Contains(ipvsadm(), "10.20.1.2:80                 Masq    0") })
	} else {
		waitFor(t, "rs1 out of IPVS", func() bool { return !strings.Contains(ipvsadm(), "10.20.1.2:80") })
	}
	hits1 := srvs[0].hits.Load()
	if got := get(t, l.c, 10); got["rs2"] != 10 {
		t.Fatalf("with rs1 down: %v, want all 10 on rs2", got)
	}
	if srvs[0].hits.Load() != hits1 {
		t.Fatal("a request reached the stopped server")
	}

	// rs1 back: checked up, back in IPVS, traffic spreads again.
	srvs[0].start(t)
	waitFor(t, "rs1 back at weight 2", func() bool { return strings.Contains(ipvsadm(), "10.20.1.2:80                 Masq    2") })
	if got := get(t, l.c, 40); got["rs1"] != 10 || got["rs2"] != 30 {
		t.Fatalf("after rs1 returned: %v, want 10 and 30", got)
	}
}
