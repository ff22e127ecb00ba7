package fence

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hakeep/vrrp"
)

// Addresses is the part of a vip.Set the fence drives: the VIPs' kernel
// lifetime and their removal.
type Addresses interface {
	Add(ctx context.Context) error
	Remove(ctx context.Context) error
	Refresh(ctx context.Context, lifetime time.Duration) error
}

// Clock is the fence's time source; tests drive a fake.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Fence.
type Options struct {
	Node    string // this director's name in the cluster
	Params  Params
	Cluster Cluster
	Clock   Clock // default: the system clock
	Logger  *slog.Logger
}

// Fence is the quorum gate for every fenced instance of one director. Its
// loop (Run) owns the lease state; Admit, Release and the guarded address
// sets hand it events and never wait for it.
type Fence struct {
	opt Options
	log *slog.Logger

	mu       sync.Mutex
	inbox    []func(now time.Time)
	answers  map[Key]chan error
	guards   map[Key]*guard
	status   map[Key]Status
	renewals uint64
	kick     chan struct{}
	// releases counts release proposals in flight: Run waits for them on
	// its way out, so a graceful stop's release commits before the node
	// closes (the next owner then takes over at once, not after the wait).
	releases sync.WaitGroup

	core *core // loop only
}

// guard serialises the kernel writes of one key: the fence's removal and
// refreshes and VRRP's Add run under its lock, so an Add that checked the
// bound cannot land after the fence removed the VIPs.
type guard struct {
	mu    sync.Mutex
	set   Addresses
	bound time.Time // writes must end by it; zero forbids them
	prio  int       // the instance's configured priority (under Fence.mu)
	// wantUp: VRRP asked for the VIPs (Add) and has not removed them; an
	// Add refused for want of lease time is then made by the next
	// committed renewal. up: they are installed.
	wantUp, up bool
	// assertUntil (Unix ns, 0: never) is until when VRRP may advertise as
	// MASTER: the write bound, or the end of a lapse's grace. Holds reads
	// it without g.mu, which kernel writes hold.
	assertUntil atomic.Int64
}

// setAssert sets until when VRRP may advertise as MASTER (zero: not now).
func (g *guard) setAssert(until time.Time) {
	var ns int64
	if !until.IsZero() {
		ns = until.UnixNano()
	}
	g.assertUntil.Store(ns)
}

// New returns a fence; call Run.
func New(opt Options) (*Fence, error) {
	if opt.Node == "" {
		return nil, errors.New("fence: no node name")
	}
	if opt.Cluster == nil {
		return nil, errors.New("fence: no cluster")
	}
	if err := opt.Params.Validate(); err != nil {
		return nil, err
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fence{opt: opt, log: opt.Logger, answers: map[Key]chan error{}, guards: map[Key]*guard{},
		status: map[Key]Status{}, kick: make(chan struct{}, 1)}
	f.core = newCore(opt.Params, opt.Node, fenceFx{f})
	return f, nil
}

// Params are the fence's settings.
func (f *Fence) Params() Params { return f.opt.Params }

func (f *Fence) post(ev func(now time.Time)) {
	f.mu.Lock()
	f.inbox = append(f.inbox, ev)
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Admit implements vrrp.Gate: it never blocks.
func (f *Fence) Admit(ctx context.Context, c vrrp.Claim) <-chan error {
	k := KeyOf(c)
	ch := make(chan error, 2)
	prio := 0
	f.mu.Lock()
	f.answers[k] = ch
	if g := f.guards[k]; g != nil {
		prio = g.prio
	}
	f.mu.Unlock()
	f.post(func(now time.Time) { f.core.admit(now, k, prio) })
	context.AfterFunc(ctx, func() {
		f.post(func(now time.Time) {
			f.mu.Lock()
			cur := f.answers[k] == ch
			if cur {
				delete(f.answers, k)
			}
			f.mu.Unlock()
			if cur {
				f.core.withdraw(now, k)
			}
		})
	})
	return ch
}

// Release implements vrrp.Gate: an admitted claim withdrawn.
func (f *Fence) Release(c vrrp.Claim) {
	k := KeyOf(c)
	f.post(func(now time.Time) { f.core.withdraw(now, k) })
}

// Guard wraps the address set of a fenced instance: Add installs only
// while this director holds the key's lease, with a kernel lifetime that
// ends with it; the fence refreshes and removes through it. priority is
// the instance's configured priority (claims carry it).
func (f *Fence) Guard(k Key, priority int, set Addresses) vrrp.AddressSet {
	f.mu.Lock()
	g := f.guards[k]
	if g == nil {
		g = &guard{}
		f.guards[k] = g
	}
	g.prio = priority
	f.mu.Unlock()
	// Not under f.mu: g.mu waits for kernel writes, and Holds takes f.mu
	// on VRRP's event loop.
	g.mu.Lock()
	g.set = set
	g.mu.Unlock()
	return guarded{f: f, g: g}
}

// Holds implements vrrp.Holder: without waiting for the fence's loop or a
// kernel write, whether VRRP may still advertise c as MASTER: the lease's
// write bound is ahead on the clock, or a lapse's grace is (the VIPs are
// gone then, and the adverts keep the backups from a pointless takeover).
// A MASTER that was paused (SIGSTOP) past its lease wakes up with every
// timer due at once; VRRP asks this before each advert, so its first
// advert does not push the new owner back to BACKUP before the loop has
// revoked the claim. No other director can be admitted while it is true:
// they wait for the write bound (and the lapse ends before it).
func (f *Fence) Holds(c vrrp.Claim) bool {
	f.mu.Lock()
	g := f.guards[KeyOf(c)]
	f.mu.Unlock()
	if g == nil {
		return false
	}
	return f.opt.Clock.Now().UnixNano() < g.assertUntil.Load()
}

// guarded is the address set VRRP sees for a fenced instance.
type guarded struct {
	f *Fence
	g *guard
}

// ErrNoLease is returned by a guarded Add outside the lease.
var ErrNoLease = errors.New("fenced: this director holds no lease for the instance")

func (a guarded) Add(ctx context.Context) error {
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	a.g.wantUp = true
	lt := lifetimeAt(a.g.bound, a.f.opt.Clock.Now())
	if lt == 0 {
		// A claim that took long to commit (an election under way) can
		// leave less than a second of lease: the next committed renewal
		// installs the VIPs (fenceFx.hold).
		return ErrNoLease
	}
	return a.g.install(ctx, lt)
}

// install writes the VIPs with lifetime lt; g.mu is held.
func (g *guard) install(ctx context.Context, lt time.Duration) error {
	if err := g.set.Refresh(ctx, lt); err != nil {
		return err
	}
	if err := g.set.Add(ctx); err != nil {
		return err
	}
	g.up = true
	return nil
}

func (a guarded) Remove(ctx context.Context) error {
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	a.g.wantUp, a.g.up = false, false
	return a.g.set.Remove(ctx)
}

// fenceFx is the core's effects in the running fence.
type fenceFx struct{ f *Fence }

func (x fenceFx) claim(k Key, prev uint64, prio int, hold time.Duration, seq uint64, sent time.Time) {
	f := x.f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), f.opt.Params.claimTimeout())
		defer cancel()
		epoch, err := f.opt.Cluster.Claim(ctx, k.String(), prev, prio, hold, time.Now().UTC())
		f.post(func(now time.Time) { f.core.claimDone(now, k, seq, epoch, err) })
	}()
}

func (x fenceFx) renew(epochs map[Key]uint64, sent time.Time) {
	f := x.f
	byName := make(map[string]uint64, len(epochs))
	for k, e := range epochs {
		byName[k.String()] = e
	}
	go func() {
		// A renewal later than the lease is worth nothing (the next ones
		// go out meanwhile: the core lets a few overlap).
		ctx, cancel := context.WithTimeout(context.Background(), f.opt.Params.Lease)
		defer cancel()
		refusedNames, err := f.opt.Cluster.Renew(ctx, byName, time.Now().UTC())
		var refused []Key
		for _, s := range refusedNames {
			if k, perr := ParseKey(s); perr == nil {
				refused = append(refused, k)
			}
		}
		f.post(func(now time.Time) { f.core.renewDone(now, sent, epochs, refused, err) })
	}()
}

func (x fenceFx) release(k Key, epoch uint64) {
	f := x.f
	f.releases.Add(1)
	go func() {
		defer f.releases.Done()
		ctx, cancel := context.WithTimeout(context.Background(), f.opt.Params.claimTimeout())
		defer cancel()
		if err := f.opt.Cluster.Release(ctx, k.String(), epoch); err != nil && !errors.Is(err, ErrRefused) {
			f.log.Debug("fence release not committed (the lease runs out instead)", "key", k.String(), "epoch", epoch, "err", err)
		}
	}()
}

func (x fenceFx) hold(k Key, bound time.Time) { x.write(k, bound, bound, false) }

// lapse removes the VIPs like a zero hold, but lets VRRP go on advertising
// until the grace ends.
func (x fenceFx) lapse(k Key, until time.Time) { x.write(k, time.Time{}, until, false) }

func (x fenceFx) reinstall(k Key, bound time.Time) { x.write(k, bound, bound, true) }

// write sets k's bound, and until when VRRP may advertise (one store,
// before the kernel call: Holds never sees a state in between), and
// brings the kernel in line under the guard's lock: a zero bound removes
// the VIPs; otherwise their lifetime is refreshed, and they are added
// when add says so (a lapsed lease renewed) or when VRRP's Add was
// refused for want of lease time.
func (x fenceFx) write(k Key, bound, assert time.Time, add bool) {
	f := x.f
	f.mu.Lock()
	g := f.guards[k]
	f.mu.Unlock()
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bound = bound
	g.setAssert(assert)
	if g.set == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if bound.IsZero() {
		g.up = false
		if err := g.set.Remove(ctx); err != nil {
			f.log.Error("fence: remove VIPs", "key", k.String(), "err", err)
		}
		return
	}
	lt := lifetimeAt(bound, f.opt.Clock.Now())
	if lt == 0 {
		return
	}
	if add || (g.wantUp && !g.up) {
		if err := g.install(ctx, lt); err != nil {
			f.log.Error("fence: add VIPs", "key", k.String(), "err", err)
		} else if !add {
			f.log.Info("fence: VIPs installed on a committed renewal", "key", k.String(), "lifetime", lt)
		}
		return
	}
	// Refresh only rewrites installed addresses; inactive sets remember it.
	if err := g.set.Refresh(ctx, lt); err != nil {
		f.log.Warn("fence: refresh VIP lifetimes", "key", k.String(), "err", err)
	}
}

func (x fenceFx) answer(k Key, err error) {
	f := x.f
	f.mu.Lock()
	ch := f.answers[k]
	if err != nil {
		delete(f.answers, k) // refused or revoked: this claim is over
	}
	f.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- err:
	default:
	}
}

func (x fenceFx) logf(k Key, msg string, args ...any) {
	if k != (Key{}) {
		args = append([]any{"key", k.String(), "vrid", k.VRID, "interface", k.Interface}, args...)
	}
	x.f.log.Info("fence: "+msg, args...)
}

// Run is the fence's loop: it follows the applied ownership records and
// the gossip hint, and keeps the leases until ctx ends. On return nothing
// is installed under a lease any more.
func (f *Fence) Run(ctx context.Context) error {
	watch, stop := f.opt.Cluster.Watch()
	defer stop()
	clock := f.opt.Clock
	// The gossip hint changes no replicated state: it is polled.
	hintEvery := f.opt.Params.Renew
	alive, voters := f.opt.Cluster.Quorum()
	f.core.members(clock.Now(), alive, voters)
	hint := clock.After(hintEvery)
	f.refreshOwners(clock.Now())
	for {
		var timer <-chan time.Time
		if at := f.core.next(); !at.IsZero() {
			timer = clock.After(max(at.Sub(clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			// VRRP's last withdrawals (it stopped first) are still in the
			// inbox: taken as withdrawals, they release at once.
			f.drain()
			f.stop(clock.Now())
			// Each release gives up after claimTimeout.
			f.releases.Wait()
			return nil
		case <-f.kick:
		case _, ok := <-watch:
			if !ok {
				watch = nil
			}
			f.refreshOwners(clock.Now())
		case <-hint:
			alive, voters := f.opt.Cluster.Quorum()
			f.core.members(clock.Now(), alive, voters)
			hint = clock.After(hintEvery)
		case <-timer:
		}
		f.drain()
		f.core.tick(clock.Now())
		f.publish(clock.Now())
	}
}

// drain runs the events posted so far.
func (f *Fence) drain() {
	f.mu.Lock()
	evs := f.inbox
	f.inbox = nil
	f.mu.Unlock()
	for _, ev := range evs {
		ev(f.opt.Clock.Now())
	}
}

func (f *Fence) refreshOwners(now time.Time) {
	t := map[Key]Record{}
	for s, r := range f.opt.Cluster.Owners() {
		if k, err := ParseKey(s); err == nil {
			t[k] = r
		}
	}
	f.core.owners(now, t)
}

// stop removes every VIP held under a lease: the fence is going away.
func (f *Fence) stop(now time.Time) {
	for _, k := range slices.SortedFunc(maps.Keys(f.core.ents), keyCmp) {
		e := f.core.ents[k]
		if e.phase.holds() {
			f.core.lose(e, "stopping", "hakeepd is stopping")
		}
	}
	f.publish(now)
}

// Status is what status and metrics show of one fenced instance.
type Status struct {
	Key                       Key
	Fenced                    bool   // VRRP asked and was refused, or was revoked
	Reason                    string // ReasonNoQuorum, ReasonExpired, ...
	Detail                    string
	Owner                     string
	Epoch                     uint64
	Held                      bool          // this director holds the lease
	LeaseLeft                 time.Duration // of this director's lease
	Claims, Refusals, Revokes uint64
}

// Status returns the status of key (ok false: never seen).
func (f *Fence) Status(k Key) (Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.status[k]
	return s, ok
}

// Renewals is the number of renewal batches committed.
func (f *Fence) Renewals() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewals
}

func (f *Fence) publish(now time.Time) {
	st := make(map[Key]Status, len(f.core.ents))
	for k, e := range f.core.ents {
		rec := f.core.table[k]
		s := Status{Key: k, Fenced: e.reason != "", Reason: e.reason, Detail: e.detail, Owner: rec.Node, Epoch: rec.Epoch,
			Claims: e.claims, Refusals: e.refusals, Revokes: e.revokes}
		if e.phase == phWaiting || e.phase == phOwned {
			s.Held = true
			s.LeaseLeft = max(e.leaseSent.Add(f.opt.Params.Lease).Sub(now), 0)
		}
		st[k] = s
	}
	f.mu.Lock()
	f.status = st
	f.renewals = f.core.renewals
	f.mu.Unlock()
}

var _ vrrp.Holder = (*Fence)(nil)
