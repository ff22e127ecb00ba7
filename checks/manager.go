package checks

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Alerter sends an e-mail alert (mail.Client implements it) without
// blocking; the subject is complete ("[router_id] Realserver ...").
type Alerter interface {
	Alert(subject, body string)
}

// Options configure a Manager. Zero values are keepalived-like defaults.
type Options struct {
	Clock  Clock
	Logger *slog.Logger
	// Runner runs MISC_CHECK and notify scripts (default Scripts{}).
	Runner ScriptRunner
	// Alerter receives smtp_alert mails; nil sends none.
	Alerter Alerter
	// RouterID prefixes alert subjects (global_defs router_id).
	RouterID string
	// MaxConcurrent bounds probes in flight; beyond it due checks wait in
	// FIFO order. Default: what the file-descriptor limit allows
	// (defaultMaxConcurrent). A check is never queued twice, so the wait
	// queue holds at most one entry per distinct check.
	MaxConcurrent int
	// NewProber builds a checker's prober (default: the real ones, which
	// share what checks of the same shape have in common).
	NewProber func(Checker) (Prober, error)
	// NotifyTimeout bounds notify_up/notify_down scripts (default 60 s).
	NotifyTimeout time.Duration
}

// Manager schedules every check, keeps keepalived's per-checker retry state
// and each real server's health, and publishes transitions.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu sync.Mutex
	// jobs and servers are slices, not maps by key: the maps cost ~300
	// bytes a check for lookups only Reload makes (it builds them then).
	jobs     []*job
	shapes   map[string]*shape // by key, of the jobs
	servers  []*rsState
	byVS     map[string][]*rsState // runs of servers, for ReloadKeeping
	epoch    uint64                // of the current Reload
	t0       time.Time
	queue    jobHeap
	inflight int
	pending  []*job
	tq       []Transition // transitions not yet delivered
	tqCond   *sync.Cond
	stats    statsRec
	// autoMax: MaxConcurrent follows the file-descriptor limit, which
	// Reload raises to fit the checks (it was not set in Options).
	autoMax bool
	started bool
	stopped bool

	wake chan struct{}
	work chan task // idle workers wait here
	// conn makes the handshakes of TCP-based checks (nil: every probe
	// dials on its worker, as before Start or if it could not start).
	conn   *connector
	out    chan Transition
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // loop, deliverer
	probes sync.WaitGroup
	rnd    *rand.Rand
}

// job is one distinct check (deduplicated across virtual servers) with
// keepalived's checker state. Only the goroutine running its probe and
// holders of Manager.mu touch it; a job is never probed twice at once.
// It is kept small (160 bytes): 40,000 of them live for the daemon's
// life.
type job struct {
	site   // shape and address: the checker
	prober Prober
	subs   []*rsState // the real-server entries using it, by key

	up, hasRun bool
	running    bool
	removed    bool
	dirty      bool // during a reload: its subscribers are rebuilt
	retryIt    int32
	weight     int32  // misc_dynamic weight, -1 none
	index      int32  // in Manager.queue, -1 when not queued
	lastReason string // the last result's (the API shows it)
	runs       uint64
	failures   uint64
	// Times as Manager.at offsets (8 bytes, not a time.Time's 24).
	lastAt, due int64
	epoch       uint64 // the last Reload that kept it
}

// jobKey identifies a check: equal keys are the same Checker (Key).
type jobKey struct {
	s    *shape
	addr netip.AddrPort
}

// describe is the checker's short name (Checker.Describe).
func (t site) describe() string {
	if t.s.c.Kind == KindMisc {
		return t.checker().Describe()
	}
	return string(t.s.c.Kind) + " " + FormatAddr(t.addr)
}

// rsState is one real server of one virtual server: its Spec without the
// checkers (those are its jobs) and its health.
type rsState struct {
	addr netip.AddrPort // the real server; its virtual server is info's
	info *rsInfo
	jobs []*job

	up     bool
	kept   bool // during a reload: kept as it is (ReloadKeeping)
	weight int32
	reason string
	since  int64 // as Manager.at; 96 bytes in all, 40,000 of them at scale
}

// key is the real server's RSKey.
func (rs *rsState) key() RSKey { return RSKey{VirtualServer: rs.info.vs, RealServer: rs.addr} }

// rsInfo is the rest of a real server's Spec. Real servers of a virtual
// server usually have the same, so Reload shares one between them.
type rsInfo struct {
	vs, name, proto      string
	notifyUp, notifyDown string
	smtpAlert, omega     bool
}

func infoOf(s *Spec) rsInfo {
	return rsInfo{vs: s.VirtualServer, name: s.VirtualServerName, proto: s.Protocol, notifyUp: s.NotifyUp, notifyDown: s.NotifyDown,
		smtpAlert: s.SMTPAlert, omega: s.Omega}
}

// spec is the Spec as AlertText needs it (no checkers).
func (rs *rsState) spec() Spec {
	i := rs.info
	return Spec{
		VirtualServer: i.vs, VirtualServerName: i.name, Protocol: i.proto,
		RealServer: rs.addr, NotifyUp: i.notifyUp, NotifyDown: i.notifyDown,
		SMTPAlert: i.smtpAlert, Omega: i.omega,
	}
}

// New returns a Manager; Start begins checking.
func New(opts Options) *Manager {
	if opts.Clock == nil {
		opts.Clock = RealClock
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Runner == nil {
		opts.Runner = Scripts{}
	}
	autoMax := opts.MaxConcurrent <= 0
	if autoMax {
		opts.MaxConcurrent = defaultMaxConcurrent()
	}
	if opts.NotifyTimeout <= 0 {
		opts.NotifyTimeout = 60 * time.Second
	}
	m := &Manager{
		opts:    opts,
		log:     opts.Logger.With("component", "checks"),
		shapes:  map[string]*shape{},
		wake:    make(chan struct{}, 1),
		work:    make(chan task),
		out:     make(chan Transition, 256),
		rnd:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		autoMax: autoMax,
	}
	m.t0 = opts.Clock.Now()
	m.tqCond = sync.NewCond(&m.mu)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Transitions is the stream of real-server transitions. It is closed by
// Stop. Undelivered transitions queue without bound (they are rare) so no
// check ever waits for the consumer.
func (m *Manager) Transitions() <-chan Transition { return m.out }

// Start loads specs and starts the scheduler. Real servers start up unless
// a checker has alpha set; Transitions carries only changes.
func (m *Manager) Start(specs []Spec) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("checks: already started")
	}
	m.started = true
	if c, err := newConnector(); err != nil {
		m.log.Warn("TCP checks dial one goroutine each", "err", err)
	} else {
		m.conn = c
	}
	m.mu.Unlock()
	if err := m.Reload(specs); err != nil {
		return err
	}
	m.wg.Add(2)
	go m.loop()
	go m.deliver()
	return nil
}

// Stop cancels probes in flight, waits for them and closes Transitions.
// Real servers with omega that are up get their notify_down first.
func (m *Manager) Stop() {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.stopped = true
	var omega []string
	for _, rs := range m.servers {
		if rs.info.omega && rs.up && rs.info.notifyDown != "" {
			omega = append(omega, rs.info.notifyDown)
		}
	}
	m.mu.Unlock()
	m.cancel()
	var wg sync.WaitGroup
	for _, cmd := range omega {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := m.opts.Runner.RunScript(context.Background(), cmd, "", "", m.opts.NotifyTimeout); r.Err != nil {
				m.log.Warn("omega notify_down failed", "script", cmd, "exit", r.ExitCode, "err", r.Err)
			}
		}()
	}
	wg.Wait()
	if m.conn != nil {
		m.conn.close() // handshakes still waiting end now
	}
	m.probes.Wait()
	m.mu.Lock()
	m.tqCond.Broadcast()
	m.mu.Unlock()
	m.wg.Wait()
	close(m.out)
}

// Reload replaces the specs. Checks whose Key is unchanged keep their state
// and schedule; new ones start after a random warmup; removed ones stop. A
// real server whose health changes because its checker set changed gets a
// transition.
func (m *Manager) Reload(specs []Spec) error { return m.reload(specs, nil) }

// ReloadKeeping is Reload of the specs of the virtual servers in kept as
// loaded and of specs (those of the other virtual servers): the real
// servers of a kept virtual server keep their checks and state without
// their checkers being looked at again, so a reload costs what changed
// plus a walk of the rest (issue 13; Build's Kept and Specs). The result
// is Reload's with the full specs (TestBuildEqualsFromConfig). A kept
// virtual server must have been loaded as one run of specs and not be in
// specs; otherwise nothing changes and it returns an error.
func (m *Manager) ReloadKeeping(specs []Spec, kept []string) error {
	return m.reload(specs, kept)
}

func (m *Manager) reload(specs []Spec, kept []string) error {
	if err := checkSpecs(specs); err != nil {
		return err
	}
	checkers := 0
	for i := range specs {
		checkers += len(specs[i].Checkers)
	}
	m.mu.Lock()
	keep, err := m.keptServers(specs, kept)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	for _, rs := range keep {
		checkers += len(rs.jobs)
	}
	unlockErr := func(err error) error {
		for _, rs := range keep {
			rs.kept = false
		}
		for _, j := range m.jobs {
			j.dirty = false
		}
		m.mu.Unlock()
		return err
	}
	if m.autoMax {
		if limit := concurrentFor(raiseFileLimit(checkers)); limit > m.opts.MaxConcurrent {
			m.opts.MaxConcurrent = limit
		}
	}
	// Resolve every checker of specs to its shape and job, building
	// probers for new checks first so a bad spec changes nothing. Kept
	// real servers' shapes stay known.
	ss := shapes{byKey: map[string]*shape{}}
	var last *shape
	for _, rs := range keep {
		for _, j := range rs.jobs {
			if j.s != last {
				ss.byKey[j.s.key], last = j.s, j.s
			}
		}
	}
	keys := make([]jobKey, 0, len(specs)) // every spec's checkers in order
	for i := range specs {
		for n := range specs[i].Checkers {
			c := specs[i].CheckerAt(n)
			s, ap, err := ss.get(c, m.shapes)
			if err != nil {
				return unlockErr(fmt.Errorf("checks: real server %s: %s %w", specs[i].Key(), c.Describe(), err))
			}
			keys = append(keys, jobKey{s, ap})
		}
	}
	// The running jobs those checkers may be: all of them, or with kept
	// real servers, those at the addresses the specs check.
	byKey := make(map[jobKey]*job, len(keys))
	if len(keep) == 0 {
		for _, j := range m.jobs {
			byKey[jobKey{j.s, j.addr}] = j
		}
	} else {
		addrs := make(map[netip.AddrPort]bool, len(keys))
		for _, k := range keys {
			addrs[k.addr] = true
		}
		for _, j := range m.jobs {
			if addrs[j.addr] {
				byKey[jobKey{j.s, j.addr}] = j
			}
		}
	}
	var fresh []*job
	next := 0
	for i := range specs {
		for n := range specs[i].Checkers {
			c := specs[i].CheckerAt(n)
			key := keys[next]
			next++
			if j := byKey[key]; j != nil {
				j.dirty = true
				continue
			}
			j := &job{site: site{key.s, key.addr}, up: !c.Alpha, weight: -1, index: -1, dirty: true}
			var err error
			if m.opts.NewProber != nil {
				j.prober, err = m.opts.NewProber(c)
			} else {
				j.prober, err = proberFor(&j.site, m.opts.Runner)
			}
			if err != nil {
				return unlockErr(fmt.Errorf("checks: real server %s: %w", specs[i].Key(), err))
			}
			byKey[key] = j
			fresh = append(fresh, j)
		}
	}
	// A job keeps its subscribers as they are when every one of them,
	// before and after, is a kept real server; the others' are rebuilt.
	rebuild := func(j *job) bool { return len(keep) == 0 || j.dirty }
	oldServers := make(map[RSKey]*rsState, len(m.servers)-len(keep))
	for _, rs := range m.servers {
		if rs.kept {
			continue
		}
		oldServers[rs.key()] = rs
		for _, j := range rs.jobs {
			j.dirty = true
		}
	}
	infos := map[rsInfo]*rsInfo{}
	var lastInfo *rsInfo
	m.epoch++
	now := m.opts.Clock.Now()
	newJobs := make([]*job, 0, len(m.jobs)+len(fresh))
	newServers := make([]*rsState, 0, len(keep)+len(specs))
	var emits []emit
	// subscribe adds rs (loaded) to its jobs and its health changes.
	subscribe := func(rs *rsState, known bool) {
		for _, j := range rs.jobs {
			if j.epoch != m.epoch {
				j.epoch = m.epoch
				if rebuild(j) {
					j.subs = j.subs[:0]
				}
				newJobs = append(newJobs, j)
			}
			if !rebuild(j) {
				continue
			}
			if n := len(j.subs); n == 0 || j.subs[n-1] != rs {
				j.subs = append(j.subs, rs)
			}
		}
		up, weight := rs.health()
		if !known {
			rs.up, rs.weight = up, int32(weight)
			if !up {
				rs.reason = "alpha: starts down"
			}
		} else if up != rs.up {
			emits = append(emits, m.changeLocked(rs, up, weight, "configuration reload", "", "", now))
		}
		newServers = append(newServers, rs)
	}
	for _, rs := range keep {
		subscribe(rs, true)
	}
	next = 0
	for i := range specs {
		s := &specs[i]
		k := s.Key()
		rs := oldServers[k]
		known := rs != nil
		if !known {
			rs = &rsState{up: true, weight: -1, since: m.at(now), reason: "initial state"}
		}
		rs.addr = k.RealServer
		info := infoOf(s)
		if lastInfo != nil && *lastInfo == info {
			rs.info = lastInfo // the usual run of alike real servers
		} else if rs.info = infos[info]; rs.info == nil {
			shared := info // on the heap only here, not for every spec
			rs.info = &shared
			infos[info] = rs.info
		}
		lastInfo = rs.info
		rs.jobs = make([]*job, 0, len(s.Checkers))
		for range s.Checkers {
			rs.jobs = append(rs.jobs, byKey[keys[next]])
			next++
		}
		subscribe(rs, known)
	}
	for _, j := range newJobs {
		if len(j.subs) > 1 && rebuild(j) {
			// Transitions of a shared checker come in this order.
			sort.Slice(j.subs, func(a, b int) bool { return j.subs[a].key().String() < j.subs[b].key().String() })
		}
		j.dirty = false
	}
	for _, j := range m.jobs {
		if j.epoch != m.epoch {
			j.removed = true
			j.dirty = false
			if j.index >= 0 {
				heap.Remove(&m.queue, int(j.index))
			}
		}
	}
	for _, j := range fresh {
		j.due = m.at(now)
		if w := j.s.c.Warmup; w > 0 {
			j.due += m.rnd.Int64N(int64(w))
		}
		heap.Push(&m.queue, j)
	}
	for _, rs := range keep {
		rs.kept = false
	}
	m.jobs, m.servers, m.shapes = newJobs, newServers, ss.byKey
	m.byVS = runsByVS(newServers)
	m.mu.Unlock()
	m.poke()
	m.publish(emits)
	return nil
}

// keptServers returns the loaded real servers of the kept virtual
// servers, marked kept.
func (m *Manager) keptServers(specs []Spec, kept []string) ([]*rsState, error) {
	if len(kept) == 0 {
		return nil, nil
	}
	listed := make(map[string]bool, len(kept))
	n := 0
	for _, vs := range kept {
		old := m.byVS[vs]
		if old == nil || listed[vs] {
			return nil, fmt.Errorf("checks: virtual server %s is not loaded as one run of real servers, or kept twice", vs)
		}
		listed[vs] = true
		n += len(old)
	}
	var err error
	forRuns(specs, func(vs string, lo, hi int) {
		if listed[vs] {
			err = fmt.Errorf("checks: virtual server %s both kept and given", vs)
		}
	})
	if err != nil {
		return nil, err
	}
	keep := make([]*rsState, 0, n)
	for _, vs := range kept {
		for _, rs := range m.byVS[vs] {
			rs.kept = true
			keep = append(keep, rs)
		}
	}
	return keep, nil
}

// forRuns calls f for each run of specs of one virtual server.
func forRuns(specs []Spec, f func(vs string, lo, hi int)) {
	for lo := 0; lo < len(specs); {
		vs, hi := specs[lo].VirtualServer, lo+1
		for hi < len(specs) && specs[hi].VirtualServer == vs {
			hi++
		}
		f(vs, lo, hi)
		lo = hi
	}
}

// runsByVS indexes loaded real servers by virtual server, for the next
// ReloadKeeping; a virtual server in more than one run is not kept.
func runsByVS(servers []*rsState) map[string][]*rsState {
	by := map[string][]*rsState{}
	for lo := 0; lo < len(servers); {
		vs, hi := servers[lo].info.vs, lo+1
		for hi < len(servers) && servers[hi].info.vs == vs {
			hi++
		}
		if _, twice := by[vs]; twice {
			by[vs] = nil
		} else {
			by[vs] = servers[lo:hi:hi]
		}
		lo = hi
	}
	return by
}

// checkSpecs refuses a real server listed twice and invalid checkers.
// Specs come in runs of one virtual server: one set, reused from run to
// run, holds the run's real servers (a set of all 40,000 real servers of
// a large file was 6 MB of a load's garbage); a virtual server in more
// than one run (rare) is checked against its earlier runs too.
func checkSpecs(specs []Spec) error {
	inVS := map[netip.AddrPort]bool{}
	runsOf := map[string][][2]int{}
	var err error
	forRuns(specs, func(vs string, lo, hi int) {
		if err != nil {
			return
		}
		clear(inVS)
		for _, r := range runsOf[vs] {
			for i := r[0]; i < r[1]; i++ {
				inVS[specs[i].RealServer] = true
			}
		}
		for i := lo; i < hi; i++ {
			k := specs[i].Key()
			if inVS[k.RealServer] {
				err = fmt.Errorf("checks: real server %s listed twice", k)
				return
			}
			inVS[k.RealServer] = true
			for j := range specs[i].Checkers {
				c := specs[i].CheckerAt(j)
				if verr := c.Validate(); verr != nil {
					err = fmt.Errorf("checks: real server %s: %w", k, verr)
					return
				}
			}
		}
		runsOf[vs] = append(runsOf[vs], [2]int{lo, hi})
	})
	return err
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// The scheduler wakes on a grid: the checks due within one tick start
// together, so a thousand checks a second cost tens of wakeups of the
// scheduler and the connector, not one each (each wakeup is a timer, a
// goroutine switch and a system call or two: ~1 CPU-ms a check in the
// emulated VM at one wakeup per check, BENCHMARKS.md). The tick is a
// fiftieth of the next check's delay_loop (a check starts at most 2% of
// its interval late), between minWakeTick and maxWakeTick.
const (
	minWakeTick = 2 * time.Millisecond
	maxWakeTick = 20 * time.Millisecond
)

// wakeTick is the grid for a check every delayLoop.
func wakeTick(delayLoop time.Duration) time.Duration {
	return min(max(delayLoop/50, minWakeTick), maxWakeTick)
}

// workerIdle is how long an idle probe goroutine waits for more work; it
// keeps its grown stack, so a busy scheduler does not re-grow stacks for
// every probe.
const workerIdle = 5 * time.Second

// loop is the one scheduler: it dispatches due jobs and sleeps until the
// next one.
func (m *Manager) loop() {
	defer m.wg.Done()
	var stop func() bool
	var armed time.Time
	for {
		m.mu.Lock()
		now := m.opts.Clock.Now()
		if !armed.IsZero() && !now.Before(armed) {
			armed = time.Time{} // fired (or due): re-arm
		}
		for m.queue.Len() > 0 && m.queue[0].due <= m.at(now) {
			m.dispatchLocked(heap.Pop(&m.queue).(*job), now)
		}
		var next time.Time
		var tick time.Duration
		if m.queue.Len() > 0 {
			next, tick = m.time(m.queue[0].due), wakeTick(m.queue[0].s.c.DelayLoop)
		}
		m.mu.Unlock()
		if !next.IsZero() {
			// Wake on the tick grid (a check's lag <= tick).
			if d := next.Sub(now); d > 0 {
				next = now.Add((d + tick - 1) / tick * tick)
			}
			if armed.IsZero() || next.Before(armed) {
				if stop != nil {
					stop()
				}
				armed = next
				stop = m.opts.Clock.AfterFunc(next.Sub(now), m.poke)
				// The clock may have passed next while we armed (a
				// FakeClock advanced meanwhile): the timer, relative to
				// the new time, would then fire a whole interval late.
				if !m.opts.Clock.Now().Before(next) {
					m.poke()
				}
			}
		}
		select {
		case <-m.wake:
		case <-m.ctx.Done():
			if stop != nil {
				stop()
			}
			return
		}
	}
}

// dispatchLocked starts j; now is the clock's time (read by the caller:
// under an emulated CPU reading the clock can be a system call).
func (m *Manager) dispatchLocked(j *job, now time.Time) {
	if m.stopped || j.removed {
		return
	}
	if m.inflight >= m.opts.MaxConcurrent {
		m.pending = append(m.pending, j)
		return
	}
	m.inflight++
	j.running = true
	if cp, ok := j.prober.(connProber); ok && m.conn != nil {
		if plan, ok := cp.dialPlan(); ok {
			m.handshake(j, cp, &plan, now)
			return
		}
	}
	m.handOff(task{j: j})
}

// task is a worker's unit: a whole probe, or the rest of one whose
// handshake the connector made (conn set).
type task struct {
	j        *job
	cp       connProber
	conn     net.Conn
	lag      time.Duration
	deadline time.Time
}

// handOff gives t to an idle worker, or a new one.
func (m *Manager) handOff(t task) {
	select {
	case m.work <- t: // an idle worker took it
	default:
		m.probes.Add(1)
		go m.worker(t)
	}
}

// handshake starts j's TCP handshake on the connector; called with m.mu
// held (start only queues).
func (m *Manager) handshake(j *job, cp connProber, plan *dialPlan, now time.Time) {
	lag := now.Sub(m.time(j.due))
	remote, local := plan.sockaddrs()
	r := &connReq{remote: remote, local: local, timeout: plan.timeout, index: -1, closes: cp.handshakeOnly()}
	r.done = func(fd int, err error) { m.handshakeDone(j, cp, fd, err, lag, r.deadline) }
	m.probes.Add(1)
	if !m.conn.start(r) {
		// The connector closed: the manager is stopping.
		m.probes.Done()
		m.inflight--
		j.running = false
	}
}

// handshakeDone runs on the connector's goroutine, so it never blocks: a
// failed handshake completes the probe here; a connection goes to a worker
// for the rest of the check.
func (m *Manager) handshakeDone(j *job, cp connProber, fd int, err error, lag time.Duration, deadline time.Time) {
	defer m.probes.Done()
	if m.ctx.Err() != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		m.mu.Lock()
		m.inflight--
		m.mu.Unlock()
		return
	}
	if err != nil {
		m.complete(j, cp.connectFailed(err), lag, m.connectorNow())
		return
	}
	if cp.handshakeOnly() {
		// Reset rather than FIN (as the dialing TCP_CHECK does): no
		// TIME_WAIT pile-up at thousands of checks a second.
		rawResetClose(fd)
		m.complete(j, cp.exchange(m.ctx, nil), lag, m.connectorNow())
		return
	}
	f := os.NewFile(uintptr(fd), "check")
	conn, cerr := net.FileConn(f) // a dup in the netpoller
	f.Close()
	if cerr != nil {
		m.complete(j, cp.connectFailed(cerr), lag, m.connectorNow())
		return
	}
	m.handOff(task{j: j, cp: cp, conn: conn, lag: lag, deadline: deadline})
}

// worker runs tasks: its first, then whatever dispatch hands it while it
// waits idle.
func (m *Manager) worker(t task) {
	defer m.probes.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		m.run(t)
		idle.Reset(workerIdle)
		select {
		case t = <-m.work:
		case <-idle.C:
			return
		case <-m.ctx.Done():
			return
		}
	}
}

func (m *Manager) run(t task) {
	if t.conn != nil {
		ctx, cancel := context.WithDeadline(m.ctx, t.deadline)
		res := t.cp.exchange(ctx, t.conn)
		cancel()
		if m.ctx.Err() != nil {
			m.mu.Lock()
			m.inflight--
			m.mu.Unlock()
			return
		}
		m.complete(t.j, res, t.lag, m.opts.Clock.Now())
		return
	}
	m.probe(t.j)
}

func (m *Manager) probe(j *job) {
	start := m.opts.Clock.Now()
	lag := start.Sub(m.time(j.due))
	res := j.prober.Probe(m.ctx)
	if m.ctx.Err() != nil {
		m.mu.Lock()
		m.inflight--
		m.mu.Unlock()
		return
	}
	m.complete(j, res, lag, m.opts.Clock.Now())
}

// connectorNow is the time on the connector's goroutine: the connector's
// last clock read (no read of its own for each check it ends), unless a
// test drives the clock.
func (m *Manager) connectorNow() time.Time {
	if m.opts.Clock == RealClock {
		return m.conn.now
	}
	return m.opts.Clock.Now()
}

// emit is a transition with its side effects, run outside the lock.
type emit struct {
	t      Transition
	notify string
	kind   Kind
	// changed: up/down changed (not only the weight).
	changed bool
	// alert: send an smtp_alert for spec.
	alert bool
	spec  Spec
}

// complete applies keepalived's retry rule (check_tcp.c tcp_epilog and
// friends): a failure while up is retried `retry` times delay_before_retry
// apart before the checker goes down; one success brings it up. now is
// when the probe ended.
func (m *Manager) complete(j *job, res Result, lag time.Duration, now time.Time) {
	m.mu.Lock()
	m.inflight--
	for len(m.pending) > 0 && m.inflight < m.opts.MaxConcurrent {
		n := m.pending[0]
		m.pending = m.pending[1:]
		m.dispatchLocked(n, now)
	}
	m.stats.add(lag)
	j.running = false
	if j.removed || m.stopped {
		m.mu.Unlock()
		return
	}
	j.runs++
	if !res.OK {
		j.failures++
	}
	if res.Reason == j.lastReason {
		// The same words as last time (a real server that stays down):
		// keep the string already held, which the real server's entry
		// shares since the transition, rather than a second copy of it
		// per check.
		res.Reason = j.lastReason
	}
	j.lastReason, j.lastAt = res.Reason, m.at(now)
	c := &j.s.c
	delay := c.DelayLoop
	changed := false
	// TCP_CHECK and SMTP_CHECK retry whatever the checker's state;
	// HTTP_GET, SSL_GET, DNS_CHECK and MISC_CHECK only while it is up
	// (or before its first result): "do not retry if server is already
	// known as dead" (check_http.c timeout_epilog), so a dead real server
	// costs one attempt per delay_loop, not 1 + retry.
	retries := j.up || !j.hasRun || retriesWhileDown(c.Kind)
	if !res.OK && !retries {
		if c.Kind == KindHTTP || c.Kind == KindSSL {
			delay = max(c.DelayLoop, c.DelayBeforeRetry) // check_http.c epilog
		}
	} else if res.OK || int(j.retryIt) >= c.Retry {
		j.retryIt = 0
		if res.OK && (!j.up || !j.hasRun) {
			changed = !j.up
			j.up = true
		} else if !res.OK && (j.up || !j.hasRun) {
			changed = j.up
			j.up = false
		}
	} else {
		delay = c.DelayBeforeRetry
		j.retryIt++
	}
	j.hasRun = true
	weightChanged := false
	if res.OK && res.Weight >= 0 && int32(res.Weight) != j.weight {
		j.weight = int32(res.Weight)
		weightChanged = true
	}
	j.due = m.at(now.Add(delay))
	heap.Push(&m.queue, j)
	head := m.queue[0] == j
	var emits []emit
	if changed || weightChanged {
		name := j.describe()
		for _, rs := range j.subs {
			up, weight := rs.health()
			if up != rs.up || (up && weight != int(rs.weight)) {
				emits = append(emits, m.changeLocked(rs, up, weight, res.Reason, name, c.Kind, now))
			}
		}
	}
	m.mu.Unlock()
	if head {
		m.poke()
	}
	m.publish(emits)
}

// retriesWhileDown: keepalived's checkers of this kind retry a failure
// even when the checker is already down (tcp_epilog, smtp_final).
func retriesWhileDown(k Kind) bool {
	switch k {
	case KindHTTP, KindSSL, KindDNS, KindMisc:
		return false
	}
	return true
}

// at is t as an offset from the Manager's creation, as jobs keep times.
func (m *Manager) at(t time.Time) int64 { return int64(t.Sub(m.t0)) }

// time is the time of offset x.
func (m *Manager) time(x int64) time.Time { return m.t0.Add(time.Duration(x)) }

// health: a real server is up when every checker is up; its weight is the
// misc_dynamic weight of its (last) dynamic checker, or -1.
func (rs *rsState) health() (bool, int) {
	up, weight := true, -1
	for _, j := range rs.jobs {
		if !j.up {
			up = false
		}
		if j.weight >= 0 {
			weight = int(j.weight)
		}
	}
	return up, weight
}

func (m *Manager) changeLocked(rs *rsState, up bool, weight int, reason, checker string, kind Kind, now time.Time) emit {
	e := emit{kind: kind, t: Transition{
		VirtualServer: rs.info.vs, RealServer: rs.addr,
		Up: up, Weight: weight, Reason: reason, Checker: checker, Time: now,
	}}
	if up != rs.up {
		e.changed = true
		if up {
			e.notify = rs.info.notifyUp
		} else {
			e.notify = rs.info.notifyDown
		}
		rs.since = m.at(now)
		if rs.info.smtpAlert && m.opts.Alerter != nil {
			e.alert, e.spec = true, rs.spec()
		}
	}
	rs.up, rs.weight, rs.reason = up, int32(weight), reason
	m.tq = append(m.tq, e.t)
	m.tqCond.Signal()
	return e
}

// publish logs, runs notify scripts and sends alerts; never blocks checks.
func (m *Manager) publish(emits []emit) {
	for _, e := range emits {
		t := e.t
		state := "down"
		if t.Up {
			state = "up"
		}
		m.log.Info("real server "+state, "vs", t.VirtualServer, "rs", t.RealServer.String(),
			"checker", t.Checker, "weight", t.Weight, "reason", t.Reason)
		if e.notify != "" {
			cmd := e.notify
			go func() {
				r := m.opts.Runner.RunScript(context.Background(), cmd, "", "", m.opts.NotifyTimeout)
				if r.Err != nil {
					m.log.Warn("notify script failed", "vs", t.VirtualServer, "rs", t.RealServer.String(),
						"script", cmd, "exit", r.ExitCode, "err", r.Err)
				}
			}()
		}
		if e.alert {
			subject, body := AlertText(m.opts.RouterID, e.spec, t, e.kind)
			m.opts.Alerter.Alert(subject, body)
		}
	}
}

// AlertText is keepalived's real-server alert: "[router_id] Realserver
// [10.0.0.7]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN" and
// "=> TCP CHECK failed on service <=" (plus the reason on a second line).
func AlertText(routerID string, s Spec, t Transition, kind Kind) (subject, body string) {
	vs := s.VirtualServerName
	if vs == "" {
		vs = s.VirtualServer
	}
	state, verb := "DOWN", "failed"
	if t.Up {
		state, verb = "UP", "succeed"
	}
	subject = fmt.Sprintf("Realserver %s of virtual server %s - %s", FormatService(s.RealServer, s.Protocol), vs, state)
	if routerID != "" {
		subject = "[" + routerID + "] " + subject
	}
	name := strings.ReplaceAll(strings.TrimSuffix(strings.TrimSuffix(string(kind), "_CHECK"), "_GET"), "_", " ") + " CHECK"
	if kind == "" {
		name = "CHECK"
	}
	body = fmt.Sprintf("=> %s %s on service <=\r\n%s", name, verb, t.Reason)
	return subject, body
}

// deliver moves queued transitions to the channel in order.
func (m *Manager) deliver() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		for len(m.tq) == 0 && !m.stopped {
			m.tqCond.Wait()
		}
		if m.stopped {
			// Flush what fits; the consumer is going away.
			for _, t := range m.tq {
				select {
				case m.out <- t:
				default:
				}
			}
			m.tq = nil
			m.mu.Unlock()
			return
		}
		t := m.tq[0]
		m.tq = m.tq[1:]
		m.mu.Unlock()
		select {
		case m.out <- t:
		case <-m.ctx.Done():
			return
		}
	}
}

// CheckerState is one checker's view for the API.
type CheckerState struct {
	Checker   string    `json:"checker"`
	Kind      Kind      `json:"kind"`
	Up        bool      `json:"up"`
	Retries   int       `json:"retries"` // failed attempts in the current retry cycle
	Runs      uint64    `json:"runs"`
	Failures  uint64    `json:"failures"`
	Last      string    `json:"last,omitempty"`
	LastCheck time.Time `json:"last_check,omitzero"`
	Next      time.Time `json:"next,omitzero"`
	// SharedBy counts the real-server entries (virtual servers) using it.
	SharedBy int `json:"shared_by"`
}

// RealServerState is one real server's health for the API (hactl checks).
type RealServerState struct {
	VirtualServer string         `json:"virtual_server"`
	RealServer    string         `json:"real_server"`
	Up            bool           `json:"up"`
	Weight        int            `json:"weight"` // misc_dynamic weight or -1
	Reason        string         `json:"reason"`
	Since         time.Time      `json:"since"`
	Checkers      []CheckerState `json:"checkers,omitempty"`
}

// State is a snapshot of every real server, sorted by virtual server and
// real server.
func (m *Manager) State() []RealServerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]RealServerState, 0, len(m.servers))
	for _, rs := range m.servers {
		s := RealServerState{
			VirtualServer: rs.info.vs, RealServer: rs.addr.String(),
			Up: rs.up, Weight: int(rs.weight), Reason: rs.reason, Since: m.time(rs.since),
		}
		for _, j := range rs.jobs {
			cs := CheckerState{
				Checker: j.describe(), Kind: j.s.c.Kind, Up: j.up, Retries: int(j.retryIt),
				Runs: j.runs, Failures: j.failures, Last: j.lastReason, SharedBy: len(j.subs),
			}
			if j.hasRun {
				cs.LastCheck = m.time(j.lastAt)
			}
			if j.index >= 0 {
				cs.Next = m.time(j.due)
			}
			s.Checkers = append(s.Checkers, cs)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].VirtualServer != out[b].VirtualServer {
			return out[a].VirtualServer < out[b].VirtualServer
		}
		return out[a].RealServer < out[b].RealServer
	})
	return out
}

// RealServerHealth is one real server's health as the data plane needs it.
type RealServerHealth struct {
	VirtualServer string
	RealServer    netip.AddrPort
	Up            bool
	Weight        int // misc_dynamic weight or -1
	Checkers      int // how many checkers it has
}

// Health is every real server's health, unsorted: State without what
// only the API shows (a load of 40,000 real servers seeds its health
// from this, 2.8 MB, where State's descriptions took ~17 MB).
func (m *Manager) Health() []RealServerHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]RealServerHealth, 0, len(m.servers))
	for _, rs := range m.servers {
		out = append(out, RealServerHealth{VirtualServer: rs.info.vs, RealServer: rs.addr, Up: rs.up,
			Weight: int(rs.weight), Checkers: len(rs.jobs)})
	}
	return out
}

// Stats are scheduler numbers for benchmarks and metrics.
type Stats struct {
	Probes   uint64        `json:"probes"`
	Jobs     int           `json:"jobs"`
	InFlight int           `json:"in_flight"`
	Pending  int           `json:"pending"`
	LagP50   time.Duration `json:"lag_p50"`
	LagP99   time.Duration `json:"lag_p99"`
	LagMax   time.Duration `json:"lag_max"`
}

// Stats returns probe counts and the lag of probes behind their schedule
// (over the most recent samples).
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Stats{Probes: m.stats.n, Jobs: len(m.jobs), InFlight: m.inflight, Pending: len(m.pending)}
	s.LagP50, s.LagP99, s.LagMax = m.stats.percentiles()
	return s
}

// ResetStats clears the lag samples.
func (m *Manager) ResetStats() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats = statsRec{}
}

const lagSamples = 1 << 16

type statsRec struct {
	n    uint64
	ring []time.Duration
}

func (s *statsRec) add(d time.Duration) {
	if s.ring == nil {
		s.ring = make([]time.Duration, 0, lagSamples)
	}
	if len(s.ring) < lagSamples {
		s.ring = append(s.ring, d)
	} else {
		s.ring[s.n%lagSamples] = d
	}
	s.n++
}

func (s *statsRec) percentiles() (p50, p99, max time.Duration) {
	if len(s.ring) == 0 {
		return 0, 0, 0
	}
	c := append([]time.Duration(nil), s.ring...)
	sort.Slice(c, func(a, b int) bool { return c[a] < c[b] })
	return c[len(c)/2], c[len(c)*99/100], c[len(c)-1]
}

// jobHeap orders jobs by due time.
type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(a, b int) bool { return h[a].due < h[b].due }
func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index, h[b].index = int32(a), int32(b)
}
func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.index = int32(len(*h))
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	n := len(old)
	j := old[n-1]
	old[n-1] = nil
	j.index = -1
	*h = old[:n-1]
	return j
}
