package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock fires timers only when the test advances it. Advance delivers
// each due timer synchronously (the loop has taken the tick when it
// returns).
type fakeClock struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	when   time.Time
	active bool
	// fired until the loop re-arms (Reset or Stop): Advance waits for
	// that so it sees the next deadline.
	fired bool
}

func newFakeClock() *fakeClock {
	c := &fakeClock{now: t0}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time), when: c.now.Add(d), active: true}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }
func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	t.when, t.active, t.fired = t.c.now.Add(d), true, false
	t.c.cond.Broadcast()
	t.c.mu.Unlock()
}
func (t *fakeTimer) Close() { t.Stop() }
func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	t.active, t.fired = false, false
	t.c.cond.Broadcast()
	t.c.mu.Unlock()
}

// Advance moves time forward by d, firing due timers in order, each at its
// own deadline.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due *fakeTimer
		for _, t := range c.timers {
			if t.active && !t.when.After(end) && (due == nil || t.when.Before(due.when)) {
				due = t
			}
		}
		if due == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		if due.when.After(c.now) {
			c.now = due.when
		}
		due.active, due.fired = false, true
		now := c.now
		c.mu.Unlock()
		due.ch <- now
		c.mu.Lock()
		for due.fired {
			c.cond.Wait()
		}
		c.mu.Unlock()
	}
}

// fakeConn is an instance's conn driven by the test: it injects packets and
// reads what was sent.
type fakeConn struct {
	src    netip.Addr
	in     chan rxItem
	mu     sync.Mutex
	sent   []Advert
	closed chan struct{}
	once   sync.Once
}

type rxItem struct {
	p   *Packet
	err error
}

func newFakeConn(src netip.Addr) *fakeConn {
	return &fakeConn{src: src, in: make(chan rxItem, 64), closed: make(chan struct{})}
}

func (f *fakeConn) Recv() (*Packet, error) {
	select {
	case it := <-f.in:
		return it.p, it.err
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *fakeConn) Send(a *Advert) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, *a)
	return nil
}

func (f *fakeConn) Source() netip.Addr { return f.src }
func (f *fakeConn) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeConn) sentPrios() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var p []int
	for _, a := range f.sent {
		p = append(p, int(a.Priority))
	}
	return p
}

// fakeAddrs records Add/Remove calls.
type fakeAddrs struct {
	mu  sync.Mutex
	ops []string
	up  bool
}

func (a *fakeAddrs) Add(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ops, a.up = append(a.ops, "add"), true
	return nil
}

func (a *fakeAddrs) Remove(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ops, a.up = append(a.ops, "remove"), false
	return nil
}

func (a *fakeAddrs) isUp() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.up
}

// fakeLinks lets the test set link state.
type fakeLinks struct {
	mu      sync.Mutex
	reports []func(string, bool)
	state   map[string]bool
}

func (l *fakeLinks) Watch(ctx context.Context, names []string, report func(string, bool)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, report)
	for _, n := range names {
		up, ok := l.state[n]
		report(n, up || !ok)
	}
	return nil
}

func (l *fakeLinks) set(name string, up bool) {
	l.mu.Lock()
	if l.state == nil {
		l.state = map[string]bool{}
	}
	l.state[name] = up
	rs := append([]func(string, bool){}, l.reports...)
	l.mu.Unlock()
	for _, r := range rs {
		r(name, up)
	}
}

// recNotifier records events.
type recNotifier struct {
	mu sync.Mutex
	ev []string
}

func (n *recNotifier) Notify(e Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ev = append(n.ev, fmt.Sprint(e.Args()))
}

func (n *recNotifier) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.ev...)
}

// harness runs one Manager with fakes.
type harness struct {
	t      *testing.T
	clock  *fakeClock
	mgr    *Manager
	conns  map[string]*fakeConn
	addrs  map[string]*fakeAddrs
	links  *fakeLinks
	notes  *recNotifier
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
}

func newHarness(t *testing.T, set *Set, mod func(*Options)) *harness {
	t.Helper()
	return newHarnessN(t, set, len(set.Instances), mod)
}

// newHarnessN starts a manager and waits until n instances run.
func newHarnessN(t *testing.T, set *Set, n int, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), conns: map[string]*fakeConn{}, addrs: map[string]*fakeAddrs{},
		links: &fakeLinks{}, notes: &recNotifier{}, done: make(chan error, 1)}
	opt := Options{
		Clock: h.clock, Links: h.links, Notifier: h.notes, Logger: testLogger(t),
		Listen: func(s *InstanceSpec) (Conn, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			c := newFakeConn(src11)
			h.conns[s.Name] = c
			return c, nil
		},
		Addresses: func(s InstanceSpec) (AddressSet, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			a := &fakeAddrs{}
			h.addrs[s.Name] = a
			return a, nil
		},
		Scripts: func(context.Context, TrackScript) bool { return true },
	}
	if mod != nil {
		mod(&opt)
	}
	m, err := New(set, opt)
	if err != nil {
		t.Fatal(err)
	}
	h.mgr = m
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- m.Run(ctx) }()
	t.Cleanup(h.stop)
	h.waitFor("instances started", func() bool { return len(m.Status()) == n })
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("manager did not stop")
	}
}

func (h *harness) conn(name string) *fakeConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[name]
}

func (h *harness) addr(name string) *fakeAddrs {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addrs[name]
}

func (h *harness) waitFor(what string, f func() bool) {
	h.t.Helper()
	end := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(end) {
			h.t.Fatalf("timed out waiting for %s; status %+v", what, h.mgr.Status())
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) status(name string) InstanceStatus {
	for _, s := range h.mgr.Status() {
		if s.Name == name {
			return s
		}
	}
	return InstanceStatus{}
}

func (h *harness) waitState(name, state string) {
	h.t.Helper()
	h.waitFor(name+" in "+state, func() bool { return h.status(name).State == state })
}

// inject delivers an advert to an instance and waits until it was handled
// (counted as received or dropped).
func (h *harness) inject(name string, a *Advert, from netip.Addr) {
	h.t.Helper()
	before := h.handled(name)
	h.conn(name).in <- rxItem{p: &Packet{Advert: a, Src: from, Dst: DefaultGroup4, TTL: 255}}
	h.waitFor("advert handled", func() bool { return h.handled(name) > before })
}

func (h *harness) handled(name string) uint64 {
	s := h.status(name)
	n := s.Counters.RxAdverts
	for _, v := range s.Counters.Drops {
		n += v
	}
	return n
}

// sync makes sure every event before it was processed (a VRID-mismatch
// drop is counted and otherwise ignored).
func (h *harness) sync(name string) {
	h.t.Helper()
	before := h.handled(name)
	h.conn(name).in <- rxItem{err: &DropError{Reason: DropVRID}}
	h.waitFor("sync", func() bool { return h.handled(name) > before })
}

// testLogger logs through t.Log, so output shows only for failing tests.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelDebug
	if _, ok := t.(*testing.B); ok {
		level = slog.LevelWarn // keep benchmark output to the results
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
