package checks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProbe is a scripted prober: it returns whatever set() last stored
// and can hang until released.
type fakeProbe struct {
	mu    sync.Mutex
	res   Result
	calls int
	hang  chan struct{} // non-nil: block until closed or ctx done
}

func (f *fakeProbe) set(ok bool, weight int, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.res = Result{OK: ok, Weight: weight, Reason: reason}
}

func (f *fakeProbe) Probe(ctx context.Context) Result {
	f.mu.Lock()
	f.calls++
	h, r := f.hang, f.res
	f.mu.Unlock()
	if h != nil {
		select {
		case <-h:
		case <-ctx.Done():
		}
	}
	return r
}

type fakeWorld struct {
	t      *testing.T
	clock  *FakeClock
	mu     sync.Mutex
	probes map[netip.AddrPort]*fakeProbe
	built  int
	m      *Manager
}

func newFakeWorld(t *testing.T, max int) *fakeWorld {
	t.Helper()
	w := &fakeWorld{t: t, clock: NewFakeClock(time.Unix(1_700_000_000, 0)), probes: map[netip.AddrPort]*fakeProbe{}}
	w.m = New(Options{
		Clock:         w.clock,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxConcurrent: max,
		NewProber: func(c Checker) (Prober, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.built++
			return w.probe(c.Connect), nil
		},
	})
	t.Cleanup(w.m.Stop)
	return w
}

// probe returns the fake prober for a target (created OK on first use).
func (w *fakeWorld) probe(ap netip.AddrPort) *fakeProbe {
	p := w.probes[ap]
	if p == nil {
		p = &fakeProbe{res: Result{OK: true, Weight: -1, Reason: "ok"}}
		w.probes[ap] = p
	}
	return p
}

func (w *fakeWorld) get(ap string) *fakeProbe {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.probe(netip.MustParseAddrPort(ap))
}

// runs waits until the checker of rs in vs has completed n probes.
func (w *fakeWorld) runs(vs, rs string, n uint64) {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range w.m.State() {
			if s.VirtualServer == vs && s.RealServer == rs && len(s.Checkers) > 0 && s.Checkers[0].Runs >= n {
				if s.Checkers[0].Runs > n {
					w.t.Fatalf("%s %s: %d runs, want %d", vs, rs, s.Checkers[0].Runs, n)
				}
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	w.t.Fatalf("%s %s: never reached %d runs; state %+v", vs, rs, n, w.m.State())
}

func (w *fakeWorld) state(vs, rs string) RealServerState {
	w.t.Helper()
	for _, s := range w.m.State() {
		if s.VirtualServer == vs && s.RealServer == rs {
			return s
		}
	}
	w.t.Fatalf("no state for %s %s", vs, rs)
	return RealServerState{}
}

// next receives one transition or fails.
func (w *fakeWorld) next() Transition {
	w.t.Helper()
	select {
	case t := <-w.m.Transitions():
		return t
	case <-time.After(5 * time.Second):
		w.t.Fatal("no transition")
	}
	return Transition{}
}

// none asserts that no transition has been produced beyond those received.
func (w *fakeWorld) none() {
	w.t.Helper()
	w.m.mu.Lock()
	n := len(w.m.tq)
	w.m.mu.Unlock()
	select {
	case t := <-w.m.Transitions():
		w.t.Fatalf("unexpected transition %+v", t)
	default:
	}
	if n != 0 {
		w.t.Fatalf("%d unexpected transitions queued", n)
	}
}

func tcpSpec(vs, rs string, retry int, mods ...func(*Checker)) Spec {
	ap := netip.MustParseAddrPort(rs)
	c := Checker{Kind: KindTCP, Connect: ap, ConnectTimeout: time.Second, Retry: retry,
		DelayBeforeRetry: time.Second, DelayLoop: 10 * time.Second}
	for _, f := range mods {
		f(&c)
	}
	return Spec{VirtualServer: vs, RealServer: ap, Weight: 1, Checkers: []Checker{c}}
}

func TestRetrySemantics(t *testing.T) {
	tests := []struct {
		kind  Kind
		retry int
		// downRetries: a failure while down is retried (keepalived's
		// TCP_CHECK); else the next attempt is delay_loop later (HTTP_GET).
		downRetries bool
	}{
		{KindTCP, 0, true}, {KindTCP, 1, true}, {KindTCP, 3, true},
		{KindHTTP, 0, false}, {KindHTTP, 1, false}, {KindHTTP, 3, false},
	}
	for _, tt := range tests {
		retry := tt.retry
		t.Run(fmt.Sprintf("%s/retry%d", tt.kind, retry), func(t *testing.T) {
			w := newFakeWorld(t, 0)
			const vs, rs = "10.0.0.1:80/TCP", "10.0.0.7:80"
			spec := tcpSpec(vs, rs, retry, func(c *Checker) {
				c.Kind = tt.kind
				if c.Kind == KindHTTP {
					c.HTTP.URLs = []URL{{Path: "/"}}
				}
			})
			if err := w.m.Start([]Spec{spec}); err != nil {
				t.Fatal(err)
			}
			w.runs(vs, rs, 1) // warmup 0: runs at once
			if s := w.state(vs, rs); !s.Up {
				t.Fatalf("starts down without alpha: %+v", s)
			}
			p := w.get(rs)
			p.set(false, -1, "TCP connection to [10.0.0.7]:80 failed")
			w.clock.Advance(10 * time.Second)
			n := uint64(2)
			w.runs(vs, rs, n)
			// retry more failures, delay_before_retry apart, stay up.
			for i := 0; i < retry; i++ {
				if s := w.state(vs, rs); !s.Up {
					t.Fatalf("down after %d failures with retry %d", i+1, retry)
				}
				w.none()
				w.clock.Advance(time.Second)
				n++
				w.runs(vs, rs, n)
			}
			tr := w.next()
			if tr.Up || tr.Reason != "TCP connection to [10.0.0.7]:80 failed" || tr.VirtualServer != vs {
				t.Fatalf("transition %+v", tr)
			}
			w.none()
			// Still failing: no new transition.
			w.clock.Advance(10 * time.Second)
			n++
			w.runs(vs, rs, n)
			w.none()
			// One success brings it back.
			p.set(true, -1, "ok again")
			d := 10 * time.Second
			if retry > 0 && tt.downRetries {
				d = time.Second // retrying while down, as keepalived's TCP_CHECK does
			}
			if c := w.state(vs, rs).Checkers[0]; !c.Next.Equal(c.LastCheck.Add(d)) {
				t.Fatalf("failed while down at %s: next check at %s, want %s later", c.LastCheck, c.Next, d)
			}
			w.clock.Advance(d)
			n++
			w.runs(vs, rs, n)
			if tr := w.next(); !tr.Up || tr.Reason != "ok again" {
				t.Fatalf("recovery %+v", tr)
			}
			w.none()
		})
	}
}

func TestAlphaStartsDown(t *testing.T) {
	w := newFakeWorld(t, 0)
	const vs, rs = "vs", "10.0.0.8:80"
	if err := w.m.Start([]Spec{tcpSpec(vs, rs, 1, func(c *Checker) { c.Alpha = true })}); err != nil {
		t.Fatal(err)
	}
	if s := w.state(vs, rs); s.Up {
		t.Fatalf("alpha starts up: %+v", s)
	}
	w.runs(vs, rs, 1)
	if tr := w.next(); !tr.Up {
		t.Fatalf("%+v", tr)
	}
	w.none()
}

func TestDuplicateChecksRunOnce(t *testing.T) {
	w := newFakeWorld(t, 0)
	const rs = "10.0.0.9:80"
	specs := []Spec{tcpSpec("vsA", rs, 0), tcpSpec("vsB", rs, 0)}
	if err := w.m.Start(specs); err != nil {
		t.Fatal(err)
	}
	w.runs("vsA", rs, 1)
	w.runs("vsB", rs, 1) // same job: the same single run
	if w.built != 1 {
		t.Fatalf("built %d probers, want 1", w.built)
	}
	if s := w.state("vsA", rs); s.Checkers[0].SharedBy != 2 {
		t.Fatalf("shared by %d", s.Checkers[0].SharedBy)
	}
	w.get(rs).set(false, -1, "down")
	w.clock.Advance(10 * time.Second)
	w.runs("vsA", rs, 2)
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		tr := w.next()
		if tr.Up {
			t.Fatalf("%+v", tr)
		}
		got[tr.VirtualServer] = true
	}
	if !got["vsA"] || !got["vsB"] {
		t.Fatalf("fan-out %v", got)
	}
	w.none()
	if p := w.get(rs); p.calls != 2 {
		t.Fatalf("%d probes, want 2", p.calls)
	}
}

func TestMiscDynamicWeight(t *testing.T) {
	w := newFakeWorld(t, 0)
	const vs, rs = "vs", "10.0.0.10:80"
	if err := w.m.Start([]Spec{tcpSpec(vs, rs, 0)}); err != nil {
		t.Fatal(err)
	}
	w.runs(vs, rs, 1)
	p := w.get(rs)
	p.set(true, 8, "exit 10")
	w.clock.Advance(10 * time.Second)
	w.runs(vs, rs, 2)
	if tr := w.next(); !tr.Up || tr.Weight != 8 {
		t.Fatalf("%+v", tr)
	}
	p.set(true, 8, "exit 10 again")
	w.clock.Advance(10 * time.Second)
	w.runs(vs, rs, 3)
	w.none() // same weight: nothing
	p.set(true, -1, "exit 0")
	w.clock.Advance(10 * time.Second)
	w.runs(vs, rs, 4)
	w.none() // exit 0 keeps the weight
	if s := w.state(vs, rs); s.Weight != 8 {
		t.Fatalf("weight %d", s.Weight)
	}
}

func TestHungProbeDoesNotStallOthers(t *testing.T) {
	w := newFakeWorld(t, 0)
	hung := w.get("10.0.0.11:80")
	hung.hang = make(chan struct{})
	defer close(hung.hang)
	specs := []Spec{tcpSpec("vs", "10.0.0.11:80", 0), tcpSpec("vs", "10.0.0.12:80", 0)}
	if err := w.m.Start(specs); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		w.runs("vs", "10.0.0.12:80", i)
		w.clock.Advance(10 * time.Second)
	}
	if s := w.state("vs", "10.0.0.11:80"); s.Checkers[0].Runs != 0 {
		t.Fatalf("hung probe completed? %+v", s)
	}
}

func TestBoundedConcurrencyQueues(t *testing.T) {
	w := newFakeWorld(t, 1)
	hung := w.get("10.0.0.13:80")
	hung.hang = make(chan struct{})
	first := tcpSpec("vs", "10.0.0.13:80", 0)
	if err := w.m.Start([]Spec{first}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.m.Stats().InFlight != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", w.m.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if err := w.m.Reload([]Spec{first, tcpSpec("vs", "10.0.0.14:80", 0)}); err != nil {
		t.Fatal(err)
	}
	for w.m.Stats().Pending != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", w.m.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if s := w.state("vs", "10.0.0.14:80"); s.Checkers[0].Runs != 0 {
		t.Fatalf("ran beyond the bound: %+v", s)
	}
	close(hung.hang)
	w.runs("vs", "10.0.0.14:80", 1)
	w.runs("vs", "10.0.0.13:80", 1)
}

func TestReloadKeepsState(t *testing.T) {
	w := newFakeWorld(t, 0)
	const vs, rs = "vs", "10.0.0.15:80"
	a := tcpSpec(vs, rs, 0)
	if err := w.m.Start([]Spec{a}); err != nil {
		t.Fatal(err)
	}
	w.runs(vs, rs, 1)
	w.get(rs).set(false, -1, "down")
	w.clock.Advance(10 * time.Second)
	w.runs(vs, rs, 2)
	if tr := w.next(); tr.Up {
		t.Fatal(tr)
	}
	b := tcpSpec(vs, "10.0.0.16:80", 0)
	if err := w.m.Reload([]Spec{a, b}); err != nil {
		t.Fatal(err)
	}
	w.runs(vs, "10.0.0.16:80", 1)
	s := w.state(vs, rs)
	if s.Up || s.Checkers[0].Runs != 2 {
		t.Fatalf("state lost on reload: %+v", s)
	}
	w.none()
	if w.built != 2 {
		t.Fatalf("built %d probers, want 2", w.built)
	}
	// A changed checker is a new check: its state starts fresh (up).
	c := tcpSpec(vs, rs, 0, func(c *Checker) { c.DelayLoop = 5 * time.Second })
	if err := w.m.Reload([]Spec{c}); err != nil {
		t.Fatal(err)
	}
	if tr := w.next(); !tr.Up || tr.Reason != "configuration reload" {
		t.Fatalf("%+v", tr)
	}
	// Invalid specs change nothing.
	bad := tcpSpec(vs, rs, 0, func(c *Checker) { c.DelayLoop = 0 })
	if err := w.m.Reload([]Spec{bad}); err == nil {
		t.Fatal("invalid spec accepted")
	}
	if len(w.m.State()) != 1 {
		t.Fatal("state changed by a rejected reload")
	}
}

func TestAlertText(t *testing.T) {
	s := Spec{VirtualServerName: "[10.0.0.1]:tcp:80", Protocol: "TCP", RealServer: netip.MustParseAddrPort("10.0.0.7:80")}
	subj, body := AlertText("LVS_1", s, Transition{Up: false, Reason: "x"}, KindTCP)
	if subj != "[LVS_1] Realserver [10.0.0.7]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN" {
		t.Fatal(subj)
	}
	if body != "=> TCP CHECK failed on service <=\r\nx" {
		t.Fatalf("%q", body)
	}
	_, body = AlertText("", s, Transition{Up: true}, KindHTTP)
	if !strings.HasPrefix(body, "=> HTTP CHECK succeed on service <=") {
		t.Fatalf("%q", body)
	}
}

// logRec captures log records.
type logRec struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRec) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRec) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.Key + "=" + a.Value.String(); return true })
	l.recs = append(l.recs, s)
	return nil
}
func (l *logRec) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRec) WithGroup(string) slog.Handler      { return l }

func TestTransitionLogLine(t *testing.T) {
	w := newFakeWorld(t, 0)
	rec := &logRec{}
	w.m.log = slog.New(rec)
	const vs, rs = "10.0.0.1:80/TCP", "10.0.0.7:80"
	if err := w.m.Start([]Spec{tcpSpec(vs, rs, 0)}); err != nil {
		t.Fatal(err)
	}
	w.runs(vs, rs, 1)
	w.get(rs).set(false, -1, "TCP connection to [10.0.0.7]:80 failed: connect: connection refused")
	w.clock.Advance(10 * time.Second)
	w.next()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.recs)
		rec.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := "real server down vs=10.0.0.1:80/TCP rs=10.0.0.7:80 checker=TCP_CHECK [10.0.0.7]:80 weight=-1 reason=TCP connection to [10.0.0.7]:80 failed: connect: connection refused"
	if len(rec.recs) != 1 || rec.recs[0] != want {
		t.Fatalf("log %q", rec.recs)
	}
}

// TestAllCheckersMustBeUp: a real server with two checkers is up only when
// both are; each change of the aggregate is one transition.
func TestAllCheckersMustBeUp(t *testing.T) {
	w := newFakeWorld(t, 0)
	rs := netip.MustParseAddrPort("10.0.0.30:80")
	c1 := Checker{Kind: KindTCP, Connect: rs, ConnectTimeout: time.Second, DelayBeforeRetry: time.Second, DelayLoop: 10 * time.Second}
	c2 := c1
	c2.Connect = netip.MustParseAddrPort("10.0.0.30:8080") // e.g. connect_port 8080
	spec := Spec{VirtualServer: "vs", RealServer: rs, Weight: 1, Checkers: []Checker{c1, c2}}
	if err := w.m.Start([]Spec{spec}); err != nil {
		t.Fatal(err)
	}
	runs := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			s := w.state("vs", rs.String())
			if s.Checkers[0].Runs == n && s.Checkers[1].Runs == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("runs %+v", s.Checkers)
			}
			time.Sleep(time.Millisecond)
		}
	}
	runs(1)
	p1, p2 := w.get("10.0.0.30:80"), w.get("10.0.0.30:8080")
	step := func(n uint64, ok1, ok2 bool) {
		p1.set(ok1, -1, fmt.Sprint("c1 ok=", ok1))
		p2.set(ok2, -1, fmt.Sprint("c2 ok=", ok2))
		w.clock.Advance(10 * time.Second)
		runs(n)
	}
	step(2, false, true)
	if tr := w.next(); tr.Up || tr.Reason != "c1 ok=false" {
		t.Fatalf("%+v", tr)
	}
	step(3, false, false)
	w.none()
	step(4, true, false)
	w.none()
	if s := w.state("vs", rs.String()); s.Up {
		t.Fatal("up with a failing checker")
	}
	step(5, true, true)
	if tr := w.next(); !tr.Up || tr.Reason != "c2 ok=true" {
		t.Fatalf("%+v", tr)
	}
	w.none()
}

// The scheduler's grid: a fiftieth of delay_loop, within its bounds.
func TestWakeTick(t *testing.T) {
	for _, tc := range []struct{ delayLoop, want time.Duration }{
		{0, minWakeTick},
		{50 * time.Millisecond, minWakeTick},
		{500 * time.Millisecond, 10 * time.Millisecond},
		{time.Second, maxWakeTick},
		{time.Minute, maxWakeTick},
	} {
		if got := wakeTick(tc.delayLoop); got != tc.want {
			t.Errorf("wakeTick(%s) = %s, want %s", tc.delayLoop, got, tc.want)
		}
	}
}

// checkSpecs refuses a real server twice in a virtual server, in one run
// of specs or in two runs of the same virtual server, and an invalid
// checker, naming the first in spec order.
func TestCheckSpecs(t *testing.T) {
	bad := func(c *Checker) { c.Connect = netip.AddrPortFrom(c.Connect.Addr(), 0) }
	tests := []struct {
		name  string
		specs []Spec
		want  string // "" for no error
	}{
		{"fine", []Spec{tcpSpec("a", "10.0.0.1:80", 1), tcpSpec("a", "10.0.0.2:80", 1), tcpSpec("b", "10.0.0.1:80", 1)}, ""},
		{"twice in a run", []Spec{tcpSpec("a", "10.0.0.1:80", 1), tcpSpec("a", "10.0.0.2:80", 1), tcpSpec("a", "10.0.0.1:80", 1)},
			"real server a -> 10.0.0.1:80 listed twice"},
		{"twice in two runs", []Spec{tcpSpec("a", "10.0.0.1:80", 1), tcpSpec("b", "10.0.0.1:80", 1), tcpSpec("a", "10.0.0.2:80", 1), tcpSpec("a", "10.0.0.1:80", 1)},
			"real server a -> 10.0.0.1:80 listed twice"},
		{"the same real server in two runs of two virtual servers", []Spec{tcpSpec("a", "10.0.0.1:80", 1), tcpSpec("b", "10.0.0.1:80", 1), tcpSpec("a", "10.0.0.2:80", 1), tcpSpec("b", "10.0.0.2:80", 1)}, ""},
		{"invalid checker first", []Spec{tcpSpec("a", "10.0.0.3:80", 1, bad), tcpSpec("a", "10.0.0.1:80", 1), tcpSpec("a", "10.0.0.1:80", 1)},
			"real server a -> 10.0.0.3:80: TCP_CHECK 10.0.0.3: no port to connect to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSpecs(tc.specs)
			got := ""
			if err != nil {
				got = strings.TrimPrefix(err.Error(), "checks: ")
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
