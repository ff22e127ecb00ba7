package fence

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"hakeep/vrrp"
)

// fakeClock is driven by Advance; After channels fire when it passes them.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
	ws  []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.ws = append(c.ws, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.ws[:0]
	for _, w := range c.ws {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.ws = keep
}

// memCluster is a one-director cluster in memory: proposals commit and
// apply at once on the fake clock.
type memCluster struct {
	mu     sync.Mutex
	clock  *fakeClock
	recs   map[string]Record
	alive  int
	w      chan struct{}
	renews int
	down   bool // proposals fail (no quorum)
	// relStarted, when set, is signalled as a Release starts, which then
	// waits for relGate to close.
	relStarted, relGate chan struct{}
}

func newMemCluster(c *fakeClock) *memCluster {
	return &memCluster{clock: c, recs: map[string]Record{}, alive: 3, w: make(chan struct{}, 1)}
}

func (m *memCluster) changed() {
	select {
	case m.w <- struct{}{}:
	default:
	}
}

func (m *memCluster) Claim(ctx context.Context, key string, prev uint64, prio int, hold time.Duration, at time.Time) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return 0, errors.New("no leader")
	}
	cur := m.recs[key]
	if cur.Epoch != prev {
		return 0, ErrRefused
	}
	now := m.clock.Now()
	m.recs[key] = Record{Node: "self", Epoch: prev + 1, Priority: prio, Prev: cur.Node, PrevReleased: cur.Node == "", Applied: now, PrevSeen: cur.Applied, Hold: hold, PrevHold: cur.Hold}
	m.changed()
	return prev + 1, nil
}

func (m *memCluster) Renew(ctx context.Context, epochs map[string]uint64, at time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("no leader")
	}
	m.renews++
	var refused []string
	for k, e := range epochs {
		r := m.recs[k]
		if r.Node != "self" || r.Epoch != e {
			refused = append(refused, k)
			continue
		}
		r.Applied = m.clock.Now()
		m.recs[k] = r
	}
	m.changed()
	return refused, nil
}

func (m *memCluster) Release(ctx context.Context, key string, epoch uint64) error {
	m.mu.Lock()
	started, gate := m.relStarted, m.relGate
	m.mu.Unlock()
	if started != nil {
		started <- struct{}{}
		<-gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recs[key]
	if r.Node != "self" || r.Epoch != epoch {
		return ErrRefused
	}
	r.Node = ""
	m.recs[key] = r
	m.changed()
	return nil
}

func (m *memCluster) Owners() map[string]Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.recs)
}

func (m *memCluster) Watch() (<-chan struct{}, func()) { return m.w, func() {} }

func (m *memCluster) Quorum() (int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alive, 3
}

// memAddrs records what the fence does to an address set.
type memAddrs struct {
	mu       sync.Mutex
	present  bool
	lifetime time.Duration
	refresh  int
}

func (a *memAddrs) Add(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.present = true
	return nil
}

func (a *memAddrs) Remove(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.present = false
	return nil
}

func (a *memAddrs) Refresh(_ context.Context, lt time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lifetime = lt
	a.refresh++
	return nil
}

func (a *memAddrs) state() (bool, time.Duration, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.present, a.lifetime, a.refresh
}

// waitFor polls cond, advancing the fake clock by step each round, until
// it holds or the (wall-clock) deadline passes.
func waitFor(t *testing.T, c *fakeClock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		c.Advance(step)
		time.Sleep(time.Millisecond) // let the loop run; state is polled, not assumed
	}
}

func answered(ch <-chan error) (error, bool) {
	select {
	case err := <-ch:
		return err, true
	default:
		return nil, false
	}
}

func TestFenceLoop(t *testing.T) {
	claim := vrrp.Claim{Instance: "VI_1", VRID: 51, Interface: "eth0"}
	k := KeyOf(claim)
	tests := []struct {
		name  string
		fault func(m *memCluster)
		// wantReason after the fault
		wantReason string
	}{
		{"gossip sees no quorum: revoked at once", func(m *memCluster) { m.mu.Lock(); m.alive = 1; m.mu.Unlock() }, ReasonNoQuorum},
		{"renewals stop committing: the lease runs out", func(m *memCluster) { m.mu.Lock(); m.down = true; m.mu.Unlock() }, ReasonExpired},
		{"a foreign claim is applied", func(m *memCluster) {
			m.mu.Lock()
			r := m.recs[k.String()]
			m.recs[k.String()] = Record{Node: "other", Epoch: r.Epoch + 1, Priority: 200, Prev: "self", Applied: m.clock.Now()}
			m.changed()
			m.mu.Unlock()
		}, ReasonTaken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newMemCluster(clock)
			f, err := New(Options{Node: "self", Params: DefaultParams(), Cluster: m, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			addrs := &memAddrs{}
			set := f.Guard(k, 100, addrs)
			if err := set.Add(context.Background()); !errors.Is(err, ErrNoLease) {
				t.Fatalf("Add before any claim = %v, want ErrNoLease", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- f.Run(ctx) }()
			defer func() { cancel(); <-done }()

			ch := f.Admit(context.Background(), claim)
			var ans error
			waitFor(t, clock, 10*time.Millisecond, "admission", func() bool {
				var ok bool
				ans, ok = answered(ch)
				return ok
			})
			if ans != nil {
				t.Fatalf("claim refused: %v", ans)
			}
			if err := set.Add(context.Background()); err != nil {
				t.Fatalf("Add after admission: %v", err)
			}
			if present, lt, _ := addrs.state(); !present || lt != time.Second {
				t.Fatalf("VIPs present=%v lifetime=%s, want installed with 1s", present, lt)
			}
			// Renewals refresh the kernel lifetime.
			_, _, before := addrs.state()
			waitFor(t, clock, 50*time.Millisecond, "a refresh", func() bool { _, _, n := addrs.state(); return n > before+1 })

			tc.fault(m)
			waitFor(t, clock, 50*time.Millisecond, "the revocation", func() bool {
				var ok bool
				ans, ok = answered(ch)
				return ok
			})
			if ans == nil {
				t.Fatal("revocation carried no error")
			}
			if present, _, _ := addrs.state(); present {
				t.Error("VIPs still installed after revocation")
			}
			if err := set.Add(context.Background()); !errors.Is(err, ErrNoLease) {
				t.Errorf("Add after revocation = %v, want ErrNoLease", err)
			}
			waitFor(t, clock, 0, "status", func() bool { s, _ := f.Status(k); return s.Fenced })
			if s, _ := f.Status(k); s.Reason != tc.wantReason {
				t.Errorf("status reason %q (%s), want %q", s.Reason, s.Detail, tc.wantReason)
			}
		})
	}
}

func TestParamsAndKeys(t *testing.T) {
	tests := []struct {
		p              Params
		lifetime, wait time.Duration
		valid          bool
	}{
		{DefaultParams(), time.Second, 2295454546 * time.Nanosecond, true},
		{Params{Lease: 800 * time.Millisecond, Renew: 200 * time.Millisecond}, time.Second, 2200 * time.Millisecond, true},
		{Params{Lease: time.Second, Renew: time.Second}, 0, 0, false},
		{Params{Lease: 2 * time.Second, Renew: 500 * time.Millisecond, Drift: 0.6}, 0, 0, false},
	}
	for _, tc := range tests {
		err := tc.p.Validate()
		if (err == nil) != tc.valid {
			t.Errorf("%+v: Validate = %v", tc.p, err)
			continue
		}
		if !tc.valid {
			continue
		}
		if got := tc.p.KernelLifetime(); got != tc.lifetime {
			t.Errorf("%+v: KernelLifetime %s, want %s", tc.p, got, tc.lifetime)
		}
		if got := tc.p.Wait(); got != tc.wait {
			t.Errorf("%+v: Wait %s, want %s", tc.p, got, tc.wait)
		}
	}
	for _, s := range []string{"51/eth0/ipv4", "255/br-lan.10/ipv6"} {
		k, err := ParseKey(s)
		if err != nil || k.String() != s {
			t.Errorf("ParseKey(%q) = %v, %v", s, k, err)
		}
	}
	for _, s := range []string{"0/eth0/ipv4", "51//ipv4", "51/eth0/v4", "x/eth0/ipv4", "51/eth0"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
	base := time.Unix(0, 0)
	for _, tc := range []struct {
		left time.Duration
		want time.Duration
	}{{1250 * time.Millisecond, time.Second}, {999 * time.Millisecond, 0}, {2 * time.Second, 2 * time.Second}, {-time.Second, 0}} {
		if got := lifetimeAt(base.Add(tc.left), base); got != tc.want {
			t.Errorf("lifetimeAt(%s left) = %s, want %s", tc.left, got, tc.want)
		}
	}
}

// TestStopWaitsForRelease: at a graceful stop the fence's loop returns only
// after its release committed, so the node is not closed under it and the
// next owner takes over at once instead of waiting out the lease.
func TestStopWaitsForRelease(t *testing.T) {
	claim := vrrp.Claim{Instance: "VI_1", VRID: 51, Interface: "eth0"}
	k := KeyOf(claim)
	for _, tc := range []struct {
		name     string
		withdraw bool // VRRP released the claim just before the stop
	}{
		{"stop while owning", false},
		{"VRRP withdrew just before the stop", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newMemCluster(clock)
			f, err := New(Options{Node: "self", Params: DefaultParams(), Cluster: m, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			f.Guard(k, 100, &memAddrs{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- f.Run(ctx) }()
			ch := f.Admit(context.Background(), claim)
			waitFor(t, clock, 10*time.Millisecond, "admission", func() bool { err, ok := answered(ch); return ok && err == nil })

			m.mu.Lock()
			m.relStarted, m.relGate = make(chan struct{}, 1), make(chan struct{})
			m.mu.Unlock()
			if tc.withdraw {
				f.Release(claim)
			}
			cancel()
			<-m.relStarted
			select {
			case <-done:
				t.Fatal("Run returned while its release was still being proposed")
			default:
			}
			close(m.relGate)
			<-done
			if r := m.Owners()[k.String()]; r.Node != "" {
				t.Errorf("record after stop: owner %q, want released", r.Node)
			}
		})
	}
}
