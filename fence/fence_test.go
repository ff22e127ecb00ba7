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
		{"gossip sees no quorum and commits stop: revoked before the lease ends", func(m *memCluster) {
			m.mu.Lock()
			m.alive, m.down = 1, true
			m.mu.Unlock()
		}, ReasonNoQuorum},
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
			if !f.Holds(claim) {
				t.Error("Holds false while admitted")
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
			if f.Holds(claim) {
				t.Error("Holds true after revocation")
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

// recFx records the core's effects.
type recFx struct {
	answers   []error
	installed bool
	bound     time.Time
	renewals  int
	releases  int
	claims    int
	lapseEnd  time.Time
}

func (x *recFx) claim(Key, uint64, int, time.Duration, uint64, time.Time) { x.claims++ }
func (x *recFx) renew(map[Key]uint64, time.Time)                          { x.renewals++ }
func (x *recFx) release(Key, uint64)                                      { x.releases++ }
func (x *recFx) hold(_ Key, b time.Time) {
	x.bound = b
	if b.IsZero() {
		x.installed = false
	}
}
func (x *recFx) reinstall(_ Key, b time.Time) { x.bound, x.installed = b, true }
func (x *recFx) lapse(k Key, until time.Time) { x.hold(k, time.Time{}); x.lapseEnd = until }
func (x *recFx) answer(_ Key, err error)      { x.answers = append(x.answers, err) }
func (x *recFx) logf(Key, string, ...any)     {}

// TestLapse: an owner whose lease runs out while gossip shows a quorum
// (a Raft leader change) removes its VIPs at once but stays admitted for
// Grace, and gets them back if a renewal at its epoch commits meanwhile.
func TestLapse(t *testing.T) {
	k := Key{VRID: 51, Interface: "eth0"}
	base := time.Unix(1000, 0)
	p := DefaultParams()
	tests := []struct {
		name  string
		grace time.Duration
		// during runs at lease end + 100 ms (inside the grace).
		during     func(c *core, now time.Time)
		wantPhase  phase
		wantRevoke bool
		wantReason string
		wantVIPs   bool
	}{
		{"renewal commits within the grace: VIPs back, no revoke", p.Grace, func(c *core, now time.Time) {
			c.renewDone(now, now.Add(-10*time.Millisecond), map[Key]uint64{k: 1}, nil, nil)
		}, phOwned, false, "", true},
		{"nothing commits: revoked when the grace ends", p.Grace, func(*core, time.Time) {}, phIdle, true, ReasonExpired, false},
		{"gossip loses the quorum meanwhile: revoked", p.Grace, func(c *core, now time.Time) { c.members(now, 1, 3) }, phIdle, true, ReasonNoQuorum, false},
		{"a foreign claim is applied meanwhile: revoked", p.Grace, func(c *core, now time.Time) {
			c.owners(now, map[Key]Record{k: {Node: "B", Epoch: 2, Prev: "A", Applied: now}})
		}, phIdle, true, ReasonTaken, false},
		{"renewal refused (stale epoch): revoked", p.Grace, func(c *core, now time.Time) {
			c.renewDone(now, now, map[Key]uint64{k: 1}, []Key{k}, nil)
		}, phIdle, true, ReasonRenewalRef, false},
		{"a renewal sent before the lapse commits late: still lapsed", p.Grace, func(c *core, now time.Time) {
			c.renewDone(now, now.Add(-p.Lease-time.Millisecond), map[Key]uint64{k: 1}, nil, nil)
		}, phIdle, true, ReasonExpired, false},
		{"no grace: revoked at the lease end", 0, func(*core, time.Time) {}, phIdle, true, ReasonExpired, false},
		{"expiry found late (paused process): revoked at once", -p.Grace, func(*core, time.Time) {}, phIdle, true, ReasonExpired, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pp := p
			// A negative grace here: the default one, and the loop runs
			// again only a second after the lease end.
			pp.Grace = max(tc.grace, -tc.grace)
			late := tc.grace < 0
			fx := &recFx{}
			c := newCore(pp, "A", fx)
			c.members(base, 3, 3)
			c.admit(base, k, 150)
			c.claimDone(base, k, 1, 1, nil)
			c.owners(base, map[Key]Record{k: {Node: "A", Epoch: 1, Applied: base}})
			fx.installed = true // VRRP's Add after the admission
			if len(fx.answers) != 1 || fx.answers[0] != nil {
				t.Fatalf("answers %v, want one admission", fx.answers)
			}
			end := base.Add(p.Lease)
			if late {
				end = end.Add(time.Second)
			}
			c.tick(end)
			if tc.grace > 0 && !late {
				if e := c.ents[k]; e.phase != phLapsed || fx.installed || len(fx.answers) != 1 {
					t.Fatalf("at lease end: phase %s, VIPs %v, answers %v; want lapsed, removed, no revoke", e.phase, fx.installed, fx.answers)
				}
			}
			tc.during(c, end.Add(100*time.Millisecond))
			if !late {
				c.tick(end.Add(tc.grace + time.Millisecond))
			}
			e := c.ents[k]
			if e.phase != tc.wantPhase {
				t.Errorf("phase %s, want %s", e.phase, tc.wantPhase)
			}
			if revoked := len(fx.answers) > 1 && fx.answers[1] != nil; revoked != tc.wantRevoke {
				t.Errorf("revoked %v (answers %v), want %v", revoked, fx.answers, tc.wantRevoke)
			}
			if e.reason != tc.wantReason {
				t.Errorf("reason %q, want %q", e.reason, tc.wantReason)
			}
			if fx.installed != tc.wantVIPs {
				t.Errorf("VIPs installed %v, want %v", fx.installed, tc.wantVIPs)
			}
		})
	}
}

// TestDeferredAsk: VRRP asks while another director of higher priority
// owns the key and renews it (adverts lost, or the owner is stopping: its
// priority-0 advert comes before its release commits). The answer waits
// for the owner's next record: a renewal refuses, a release or the lease
// running out lets the claim go on, and the ask ends with VRRP's
// withdrawal or the quorum.
func TestDeferredAsk(t *testing.T) {
	k := Key{VRID: 51, Interface: "eth0"}
	base := time.Unix(1000, 0)
	p := DefaultParams()
	owner := Record{Node: "A", Epoch: 3, Priority: 150, Applied: base}
	tests := []struct {
		name string
		// then runs 60 ms after the ask (at base+100ms).
		then       func(c *core, now time.Time)
		wantClaims int
		wantRefuse bool // one answer, a refusal
		wantPhase  phase
	}{
		{"the owner renews: refused", func(c *core, now time.Time) {
			r := owner
			r.Applied = now
			c.owners(now, map[Key]Record{k: r})
		}, 0, true, phIdle},
		{"the owner releases: claimed at once", func(c *core, now time.Time) {
			c.owners(now, map[Key]Record{k: {Epoch: 3, Prev: "A", PrevReleased: true}})
		}, 1, false, phClaiming},
		{"nothing more from the owner: claimed when its lease ran out", func(c *core, now time.Time) {
			c.tick(now)
			if len(c.ents) == 1 && c.next() != base.Add(p.Lease) {
				t.Errorf("next tick %v, want the owner's lease end", c.next().Sub(base))
			}
			c.tick(base.Add(p.Lease))
		}, 1, false, phClaiming},
		{"VRRP withdraws: nothing", func(c *core, now time.Time) { c.withdraw(now, k) }, 0, false, phIdle},
		{"gossip loses the quorum: refused", func(c *core, now time.Time) { c.members(now, 1, 3) }, 0, true, phIdle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := &recFx{}
			c := newCore(p, "B", fx)
			c.members(base, 3, 3)
			c.owners(base, map[Key]Record{k: owner})
			ask := base.Add(100 * time.Millisecond)
			c.admit(ask, k, 100)
			if e := c.ents[k]; e.phase != phDeferred || len(fx.answers) != 0 || fx.claims != 0 {
				t.Fatalf("at the ask: phase %s, answers %v, claims %d; want deferred, no answer, no claim", e.phase, fx.answers, fx.claims)
			}
			tc.then(c, ask.Add(60*time.Millisecond))
			if fx.claims != tc.wantClaims {
				t.Errorf("claims %d, want %d", fx.claims, tc.wantClaims)
			}
			if refused := len(fx.answers) == 1 && fx.answers[0] != nil; refused != tc.wantRefuse || len(fx.answers) > 1 {
				t.Errorf("answers %v, want a refusal: %v", fx.answers, tc.wantRefuse)
			}
			if e := c.ents[k]; e.phase != tc.wantPhase {
				t.Errorf("phase %s, want %s", e.phase, tc.wantPhase)
			}
		})
	}
}

// TestLateClaim: a claim that commits after its own lease ran out (a Raft
// election after a heal) keeps its epoch and renews for the grace instead
// of releasing at once (a lower-priority backup would take the VRID in
// between); a renewal committed in time admits it, else it is given up.
func TestLateClaim(t *testing.T) {
	k := Key{VRID: 51, Interface: "eth0"}
	base := time.Unix(1000, 0)
	p := DefaultParams()
	late := base.Add(p.Lease + 200*time.Millisecond) // the claim's commit
	tests := []struct {
		name string
		// then runs after the late commit; it returns when to tick last.
		then        func(c *core) time.Time
		wantAdmit   bool
		wantRelease bool
	}{
		{"a renewal commits within the grace: admitted", func(c *core) time.Time {
			at := late.Add(100 * time.Millisecond)
			c.renewDone(at, late, map[Key]uint64{k: 2}, nil, nil)
			return at
		}, true, false},
		{"nothing commits: given up at lease + grace", func(c *core) time.Time {
			// The loop's ticks: renewals go out (none commits), and no
			// tick is due in the past (the loop would spin).
			now := late
			for {
				n := c.next()
				if !n.After(now) {
					t.Fatalf("next tick at %v, not after now %v", n.Sub(base), now.Sub(base))
				}
				if !n.Before(base.Add(p.Lease + p.Grace)) {
					return n
				}
				now = n
				c.tick(now)
				if c.ents[k].phase != phWaiting {
					t.Fatalf("phase %s at %v, want waiting", c.ents[k].phase, now.Sub(base))
				}
			}
		}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := &recFx{}
			c := newCore(p, "A", fx)
			c.members(base, 3, 3)
			c.owners(base, map[Key]Record{k: {Node: "B", Epoch: 1, Priority: 100, Applied: base.Add(-5 * time.Second)}})
			c.admit(base, k, 150)
			if fx.claims != 1 {
				t.Fatalf("claims %d, want 1", fx.claims)
			}
			// B released on applying our claim: nothing to wait for.
			c.owners(late, map[Key]Record{k: {Node: "A", Epoch: 2, Priority: 150, Prev: "B", PrevReleased: true, Applied: late}})
			c.claimDone(late, k, 1, 2, nil)
			c.tick(late) // as the loop does: a renewal goes out
			if e := c.ents[k]; e.phase != phWaiting || len(fx.answers) != 0 || fx.releases != 0 {
				t.Fatalf("after the late commit: phase %s, answers %v, releases %d; want waiting, no answer, no release", e.phase, fx.answers, fx.releases)
			}
			c.tick(tc.then(c))
			admitted := len(fx.answers) == 1 && fx.answers[0] == nil
			if admitted != tc.wantAdmit {
				t.Errorf("admitted %v (answers %v), want %v", admitted, fx.answers, tc.wantAdmit)
			}
			if released := fx.releases > 0; released != tc.wantRelease {
				t.Errorf("released %v, want %v", released, tc.wantRelease)
			}
		})
	}
}

// TestWaitingClaimRelease: a claim still waiting out the previous owner's
// lease (a crashed owner's kernel may hold the VIPs) that loses to a newer
// claim releases only when that wait is over: released at once, the newer
// claimant, seeing its predecessor released, would add the VIPs while the
// crashed owner's kernel may still hold them.
func TestWaitingClaimRelease(t *testing.T) {
	k := Key{VRID: 51, Interface: "eth0"}
	base := time.Unix(1000, 0)
	p := DefaultParams()
	claimAt := base.Add(p.Lease + 100*time.Millisecond) // A's lease is over: no deferral
	applied := claimAt.Add(100 * time.Millisecond)
	taken := applied.Add(200 * time.Millisecond)
	tests := []struct {
		name string
		// ours is our claim's record as applied here (nil: never applied
		// before the newer claim).
		ours        *Record
		wantAt      time.Time // when the release goes out (zero: never)
		wantAtTaken bool      // at once
	}{
		{"waiting for a crashed owner: released when the wait ends",
			&Record{Node: "C", Epoch: 2, Priority: 50, Prev: "A", PrevSeen: base, Applied: applied},
			base.Add(p.Wait()), false},
		{"previous owner released: released at once",
			&Record{Node: "C", Epoch: 2, Priority: 50, Prev: "A", PrevReleased: true, Applied: applied},
			time.Time{}, true},
		{"our claim never applied here: never released", nil, time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := &recFx{}
			c := newCore(p, "C", fx)
			c.members(base, 3, 3)
			c.owners(base, map[Key]Record{k: {Node: "A", Epoch: 1, Priority: 150, Applied: base}})
			c.admit(claimAt, k, 50)
			c.claimDone(applied, k, 1, 2, nil)
			if tc.ours != nil {
				c.owners(applied, map[Key]Record{k: *tc.ours})
			}
			c.owners(taken, map[Key]Record{k: {Node: "B", Epoch: 3, Priority: 100, Prev: "C", PrevSeen: applied, Applied: taken}})
			if got := fx.releases == 1; got != tc.wantAtTaken {
				t.Fatalf("released at the newer claim: %v, want %v", got, tc.wantAtTaken)
			}
			if tc.wantAtTaken {
				return
			}
			// The loop's ticks until well past every wait.
			for now := taken; now.Before(base.Add(3 * p.Wait())); {
				n := c.next()
				if n.IsZero() || n.After(base.Add(3*p.Wait())) {
					break
				}
				if !n.After(now) && fx.releases == 0 {
					t.Fatalf("next tick at %v, not after %v", n.Sub(base), now.Sub(base))
				}
				now = n
				before := fx.releases
				c.tick(now)
				if fx.releases > before && !now.Equal(tc.wantAt) {
					t.Errorf("released at %v, want %v", now.Sub(base), tc.wantAt.Sub(base))
				}
			}
			if got := fx.releases == 1; got != !tc.wantAt.IsZero() {
				t.Errorf("released %d times, want it at %v", fx.releases, tc.wantAt.Sub(base))
			}
		})
	}
}

// TestHoldsOnOwnClock: Holds reads the write bound against the clock, so a
// director paused past its lease says no before its loop has run.
func TestHoldsOnOwnClock(t *testing.T) {
	claim := vrrp.Claim{Instance: "VI_1", VRID: 51, Interface: "eth0"}
	k := KeyOf(claim)
	for _, tc := range []struct {
		name    string
		guarded bool
		grace   time.Duration // >0: the lease lapsed (VIPs gone) with this grace
		after   time.Duration // clock advance after the bound was set
		want    bool
	}{
		{"just renewed", true, 0, 0, true},
		{"within the bound", true, 0, 1200 * time.Millisecond, true},
		{"paused past the bound", true, 0, 1300 * time.Millisecond, false},
		{"not a guarded instance", false, 0, 0, false},
		// A lapse keeps the backups down with adverts while renewing.
		{"lapsed, within the grace", true, 750 * time.Millisecond, 700 * time.Millisecond, true},
		{"lapsed, paused past the grace", true, 750 * time.Millisecond, 800 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			f, err := New(Options{Node: "self", Params: DefaultParams(), Cluster: newMemCluster(clock), Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			if tc.guarded {
				f.Guard(k, 100, &memAddrs{})
				fenceFx{f}.hold(k, clock.Now().Add(DefaultParams().hold()))
				if tc.grace > 0 {
					fenceFx{f}.lapse(k, clock.Now().Add(tc.grace))
				}
			}
			clock.Advance(tc.after)
			if got := f.Holds(claim); got != tc.want {
				t.Errorf("Holds = %v, want %v", got, tc.want)
			}
		})
	}
}

// blockingAddrs is memAddrs whose Remove waits for the test: the kernel
// write in flight.
type blockingAddrs struct {
	memAddrs
	removing, release chan struct{}
}

func (a *blockingAddrs) Remove(ctx context.Context) error {
	a.removing <- struct{}{}
	<-a.release
	return a.memAddrs.Remove(ctx)
}

// TestHoldsDuringRemoval: what Holds answers while the VIPs are being
// removed (a netlink write under the guard's lock) is already the new
// state: still yes for a lapse (VRRP keeps advertising through the
// grace), no for a lost lease. It never blocks on that write.
func TestHoldsDuringRemoval(t *testing.T) {
	claim := vrrp.Claim{Instance: "VI_1", VRID: 51, Interface: "eth0"}
	k := KeyOf(claim)
	for _, tc := range []struct {
		name  string
		lapse bool
		want  bool
	}{
		{"lease lapsed: adverts go on", true, true},
		{"lease lost", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			f, err := New(Options{Node: "self", Params: DefaultParams(), Cluster: newMemCluster(clock), Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			addrs := &blockingAddrs{removing: make(chan struct{}), release: make(chan struct{})}
			f.Guard(k, 100, addrs)
			fenceFx{f}.hold(k, clock.Now().Add(DefaultParams().hold()))
			done := make(chan struct{})
			go func() {
				defer close(done)
				if tc.lapse {
					fenceFx{f}.lapse(k, clock.Now().Add(DefaultParams().Grace))
				} else {
					fenceFx{f}.hold(k, time.Time{})
				}
			}()
			<-addrs.removing
			if got := f.Holds(claim); got != tc.want {
				t.Errorf("Holds during the removal = %v, want %v", got, tc.want)
			}
			close(addrs.release)
			<-done
			if got := f.Holds(claim); got != tc.want {
				t.Errorf("Holds after the removal = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGossipHint: gossip showing fewer than a quorum ends an ownership at
// once, unless a proposal of ours committed within two renewal periods
// (after a heal gossip lags behind Raft by seconds).
func TestGossipHint(t *testing.T) {
	k := Key{VRID: 51, Interface: "eth0"}
	base := time.Unix(1000, 0)
	p := DefaultParams()
	tests := []struct {
		name string
		// hintAt is when gossip turns to 1 of 3 alive, after the admission
		// (claim committed at base) and a renewal sent at base+Renew that
		// committed at once.
		hintAt     time.Duration
		wantRevoke bool
	}{
		{"fresh commit: kept", p.Renew + p.Renew/2, false},
		{"no commit for two periods: revoked", p.Renew + 2*p.Renew, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := &recFx{}
			c := newCore(p, "A", fx)
			c.members(base, 3, 3)
			c.admit(base, k, 150)
			c.claimDone(base, k, 1, 1, nil)
			c.owners(base, map[Key]Record{k: {Node: "A", Epoch: 1, Applied: base}})
			r := base.Add(p.Renew)
			c.renewDone(r, r, map[Key]uint64{k: 1}, nil, nil)
			c.members(base.Add(tc.hintAt), 1, 3)
			revoked := len(fx.answers) > 1 && fx.answers[1] != nil
			if revoked != tc.wantRevoke {
				t.Errorf("revoked %v (answers %v), want %v", revoked, fx.answers, tc.wantRevoke)
			}
			// Gossip's verdict counts again once commits stop.
			c.members(base.Add(tc.hintAt+2*p.Renew), 1, 3)
			if len(fx.answers) < 2 || fx.answers[1] == nil || c.ents[k].reason != ReasonNoQuorum {
				t.Errorf("still owned with gossip showing no quorum and no commit: answers %v, reason %q", fx.answers, c.ents[k].reason)
			}
		})
	}
}

// TestRenewalsOverlap: a renewal stuck on a dead Raft leader does not hold
// back the next one (up to maxInflight), and whichever commits extends the
// lease from its own send time.
func TestRenewalsOverlap(t *testing.T) {
	k := Key{VRID: 51, Interface: "eth0"}
	base := time.Unix(1000, 0)
	p := DefaultParams()
	for _, tc := range []struct {
		name         string
		periods      int // renewal periods passed with no answer
		wantRenewals int
	}{
		{"one unanswered: the next goes out", 2, 2},
		{"three unanswered: capped", 5, maxInflight},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := &recFx{}
			c := newCore(p, "A", fx)
			c.members(base, 3, 3)
			c.admit(base, k, 150)
			c.claimDone(base, k, 1, 1, nil)
			c.owners(base, map[Key]Record{k: {Node: "A", Epoch: 1, Applied: base}})
			for i := 1; i <= tc.periods; i++ {
				c.tick(base.Add(time.Duration(i) * p.Renew))
			}
			if fx.renewals != tc.wantRenewals {
				t.Fatalf("renewals proposed %d, want %d", fx.renewals, tc.wantRenewals)
			}
			// The last one commits; the earlier stay stuck.
			sent := base.Add(time.Duration(tc.wantRenewals) * p.Renew)
			c.renewDone(sent.Add(time.Millisecond), sent, map[Key]uint64{k: 1}, nil, nil)
			if got := c.ents[k].leaseSent; !got.Equal(sent) {
				t.Errorf("lease from %s, want from the committed renewal's send %s", got.Sub(base), sent.Sub(base))
			}
		})
	}
}

// A claim that commits with less than a second of lease left (an election
// was under way) makes VRRP's Add fail; the next committed renewal must
// install the VIPs, or the MASTER would hold none for good.
func TestRefusedAddInstalledByRenewal(t *testing.T) {
	k := KeyOf(vrrp.Claim{Instance: "VI_1", VRID: 51, Interface: "eth0"})
	clock := newFakeClock()
	f, err := New(Options{Node: "self", Params: DefaultParams(), Cluster: newMemCluster(clock), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	addrs := &memAddrs{}
	set := f.Guard(k, 100, addrs)
	fx := fenceFx{f}
	fx.hold(k, clock.Now().Add(500*time.Millisecond)) // admitted late
	if err := set.Add(context.Background()); !errors.Is(err, ErrNoLease) {
		t.Fatalf("Add with 0.5 s of lease = %v, want ErrNoLease", err)
	}
	if present, _, _ := addrs.state(); present {
		t.Fatal("VIPs installed without a whole second of lease")
	}
	fx.hold(k, clock.Now().Add(DefaultParams().hold())) // a renewal commits
	if present, lt, _ := addrs.state(); !present || lt != time.Second {
		t.Fatalf("after the renewal: present=%v lifetime=%s, want installed with 1s", present, lt)
	}
	// Removed by VRRP: a later renewal must not bring them back.
	if err := set.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	fx.hold(k, clock.Now().Add(DefaultParams().hold()))
	if present, _, _ := addrs.state(); present {
		t.Error("a renewal installed VIPs that VRRP had removed")
	}
}
