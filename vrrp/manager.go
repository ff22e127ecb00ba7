package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hakeep/config"
)

// AddressSet installs and removes one instance's VIPs (and routes, rules,
// gratuitous ARP ...). *vip.Set implements it. Calls run off the timer path,
// one at a time per instance, in order.
type AddressSet interface {
	Add(ctx context.Context) error
	Remove(ctx context.Context) error
}

// Set is a whole VRRP configuration: instances and sync groups.
type Set struct {
	Instances []*InstanceSpec
	Groups    []*SyncGroupSpec
}

// Validate checks each instance, unique names, and group members.
func (s *Set) Validate() error {
	names := map[string]bool{}
	for _, in := range s.Instances {
		if err := in.Validate(); err != nil {
			return err
		}
		if names[in.Name] {
			return fmt.Errorf("vrrp_instance %s defined twice", in.Name)
		}
		names[in.Name] = true
	}
	inGroup := map[string]string{}
	for _, g := range s.Groups {
		for _, mname := range g.Members {
			if !names[mname] {
				return fmt.Errorf("vrrp_sync_group %s: no vrrp_instance %s", g.Name, mname)
			}
			if o, ok := inGroup[mname]; ok {
				return fmt.Errorf("vrrp_instance %s is in sync groups %s and %s", mname, o, g.Name)
			}
			inGroup[mname] = g.Name
		}
	}
	return nil
}

// Options are the manager's collaborators; only Addresses is required.
type Options struct {
	// Addresses builds the address set of an instance.
	Addresses func(InstanceSpec) (AddressSet, error)
	// Listen opens an instance's packet conn; default Listen (raw sockets
	// in the current network namespace).
	Listen   func(*InstanceSpec) (Conn, error)
	Gate     Gate     // default AlwaysAdmit
	Clock    Clock    // default RealClock
	Notifier Notifier // default none
	// Links reports interface state for track_interface; default watches
	// the kernel through netlink.
	Links LinkWatcher
	// Scripts runs one track script once; default runs it through
	// script.Runner with the script's user.
	Scripts ScriptExec
	// ScriptUser / ScriptGroup / ScriptSecurity are global_defs'
	// script_user and enable_script_security, used by the default Scripts.
	ScriptUser, ScriptGroup string
	ScriptSecurity          bool
	// FilePoll is how often track files are read; default 1 s.
	FilePoll time.Duration
	// AddrTimeout bounds one Add/Remove call; default 10 s.
	AddrTimeout time.Duration
	// StartupDelay is global_defs' vrrp_startup_delay: for this long after
	// Run starts, instances stay in INIT (no adverts, no MASTER), as
	// keepalived's do. Instances added by a reload during the delay wait
	// for its end too.
	StartupDelay time.Duration
	Logger       *slog.Logger
}

// Counters are one instance's packet counters.
type Counters struct {
	RxAdverts    uint64            `json:"rx_adverts"`
	TxAdverts    uint64            `json:"tx_adverts"`
	BecameMaster uint64            `json:"became_master"`
	Drops        map[string]uint64 `json:"drops,omitempty"`
}

// InstanceStatus is what Status reports per instance.
type InstanceStatus struct {
	Name         string       `json:"name"`
	VRID         uint8        `json:"vrid"`
	Interface    string       `json:"interface"`
	Version      int          `json:"version"`
	State        string       `json:"state"`
	Priority     uint8        `json:"priority"`
	BasePriority uint8        `json:"base_priority"`
	VIPs         []netip.Addr `json:"vips"`
	Master       netip.Addr   `json:"master,omitzero"`
	Source       netip.Addr   `json:"source,omitzero"`
	Fault        string       `json:"fault,omitempty"`
	Gate         string       `json:"gate,omitempty"`
	SyncGroup    string       `json:"sync_group,omitempty"`
	Counters     Counters     `json:"counters"`
}

// Manager runs a set of instances and sync groups on one event loop: every
// state machine, timer and sync-group move happens on that goroutine, and
// everything slow (address changes, scripts, notifications, socket reads)
// happens elsewhere and reports back through channels.
type Manager struct {
	opt Options
	log *slog.Logger

	set     *Set
	insts   map[string]*inst
	order   []*inst
	groups  map[string]*group
	track   *tracker
	runCtx  context.Context
	rxCh    chan rxEvent
	gateCh  chan gateEvent
	trackCh chan trackEvent
	reqCh   chan func()
	// status is the last published view; Status reads it (and each
	// instance's published counters) without asking the loop.
	status  atomic.Pointer[snapshot]
	running atomic.Bool
	// watchers get a coalesced signal after each publish (Watch).
	watchMu  sync.Mutex
	watchers atomic.Pointer[[]chan struct{}]
	notes    *notifyQueue // nil without a Notifier
	wg       sync.WaitGroup
	started  bool
	// pending transitions for sync groups; allWorkers for the final wait.
	pending    []transition
	allWorkers []*addrWorker
	dirty      bool // the status snapshot is stale
	// checkScript vets track scripts before they run (default runner only).
	checkScript func(TrackScript) error
	// scriptPub is the track scripts' results for Scripts (metrics).
	scriptPub atomic.Pointer[[]ScriptStatus]
	// holdUntil is the end of vrrp_startup_delay; zero once passed.
	holdUntil time.Time
}

// New checks the set and prepares a manager; Run starts it.
func New(set *Set, opt Options) (*Manager, error) {
	if err := set.Validate(); err != nil {
		return nil, err
	}
	if opt.Addresses == nil {
		return nil, errors.New("vrrp manager: no address factory")
	}
	if opt.Listen == nil {
		opt.Listen = Listen
	}
	if opt.Gate == nil {
		opt.Gate = AlwaysAdmit{}
	}
	if opt.Clock == nil {
		opt.Clock = RealClock{}
	}
	if opt.FilePoll == 0 {
		opt.FilePoll = time.Second
	}
	if opt.AddrTimeout == 0 {
		opt.AddrTimeout = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	var check func(TrackScript) error
	if opt.Scripts == nil {
		opt.Scripts = defaultScriptExec(opt.ScriptUser, opt.ScriptGroup, opt.ScriptSecurity)
		check = func(ts TrackScript) error {
			return scriptRunner(opt.ScriptUser, opt.ScriptGroup, opt.ScriptSecurity, ts).Check(ts.Script)
		}
	}
	m := &Manager{
		opt: opt, log: opt.Logger, set: set,
		insts: map[string]*inst{}, groups: map[string]*group{},
		rxCh: make(chan rxEvent, 256), gateCh: make(chan gateEvent, 16),
		trackCh: make(chan trackEvent, 64), reqCh: make(chan func()),
		checkScript: check,
	}
	if opt.Notifier != nil {
		m.notes = newNotifyQueue(opt.Notifier)
	}
	m.status.Store(&snapshot{})
	return m, nil
}

// snapshot is what the loop publishes: every instance's view (counters
// left out) and, index for index, the instance whose published counters
// complete it.
type snapshot struct {
	view  []InstanceStatus
	insts []*inst
}

// Status returns the state of every instance as of the event loop's last
// change. It never waits for the loop (the loop publishes after every
// change, and the counters after every event), so a busy or stalled loop
// cannot stall its callers, and callers cannot stall the loop. Safe from
// any goroutine, the loop's own callbacks included.
func (m *Manager) Status() []InstanceStatus {
	s := m.status.Load()
	out := make([]InstanceStatus, len(s.view))
	copy(out, s.view)
	for i, in := range s.insts {
		out[i].Counters = in.pub.counters()
	}
	return out
}

// Watch returns a channel that receives a value after the loop published a
// change Status shows (counters aside): a state, priority, master, fault or
// gate change, or a reload. Signals are coalesced (capacity one, never
// blocking the loop), so a reader that calls Status after each one never
// misses the latest state. stop ends the subscription.
func (m *Manager) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.watchMu.Lock()
	var cur []chan struct{}
	if p := m.watchers.Load(); p != nil {
		cur = *p
	}
	next := append(slices.Clone(cur), ch)
	m.watchers.Store(&next)
	m.watchMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.watchMu.Lock()
			defer m.watchMu.Unlock()
			cur := *m.watchers.Load()
			next := slices.DeleteFunc(slices.Clone(cur), func(c chan struct{}) bool { return c == ch })
			m.watchers.Store(&next)
		})
	}
}

func (m *Manager) signalWatchers() {
	p := m.watchers.Load()
	if p == nil {
		return
	}
	for _, ch := range *p {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending: the reader sees this too
		}
	}
}

// Stats returns each instance's counters by name (SIGUSR2, metrics).
func (m *Manager) Stats() map[string]Counters {
	out := map[string]Counters{}
	for _, s := range m.Status() {
		out[s.Name] = s.Counters
	}
	return out
}

// Reload replaces the set: unchanged instances keep their state and VIPs,
// changed ones restart, removed ones stop (priority 0, VIPs removed).
func (m *Manager) Reload(ctx context.Context, set *Set) error {
	if err := set.Validate(); err != nil {
		return err
	}
	var err error
	if derr := m.do(ctx, func() { err = m.apply(set) }); derr != nil {
		return derr
	}
	return err
}

// Ping round-trips through the event loop: a liveness probe for a
// watchdog (a wedged loop does not answer before ctx ends). Status does
// not prove the loop alive any more, since it never asks the loop. Not for
// any path an advert waits on.
func (m *Manager) Ping(ctx context.Context) error { return m.do(ctx, func() {}) }

// do runs f on the event loop and waits for it.
func (m *Manager) do(ctx context.Context, f func()) error {
	if !m.running.Load() {
		return errors.New("vrrp manager is not running")
	}
	done := make(chan struct{})
	select {
	case m.reqCh <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the instances until ctx ends, then stops them as keepalived
// does on SIGTERM: masters send priority 0 and remove their VIPs,
// notify_stop runs. It returns when all that is done.
func (m *Manager) Run(ctx context.Context) error {
	if m.started {
		return errors.New("vrrp manager: Run called twice")
	}
	m.started = true
	ensureHeadroom()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.runCtx = runCtx
	if m.notes != nil {
		m.notes.start()
	}
	m.track = newTracker(runCtx, m)
	m.running.Store(true)
	defer m.running.Store(false)
	if d := m.opt.StartupDelay; d > 0 {
		m.holdUntil = m.opt.Clock.Now().Add(d)
		m.log.Info("VRRP instances wait for vrrp_startup_delay", "delay", d)
	}

	if err := m.apply(m.set); err != nil && len(m.order) == 0 && len(m.set.Instances) > 0 {
		m.shutdown()
		return err
	}
	timer := m.opt.Clock.NewTimer(time.Hour)
	defer timer.Close()
	for {
		next := m.nextDeadline()
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(max(next.Sub(m.opt.Clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			m.shutdown()
			return nil
		case <-timer.C():
			now := m.opt.Clock.Now()
			m.endStartupDelay(now)
			for _, in := range m.order {
				if d := in.m.deadline(); !d.IsZero() && !now.Before(d) {
					in.m.tick(now)
				}
			}
		case ev := <-m.rxCh:
			m.onRx(ev)
		case ev := <-m.gateCh:
			m.onGate(ev)
			m.dirty = true
		case ev := <-m.trackCh:
			m.track.apply(ev)
			m.retrack()
			m.dirty = true
		case f := <-m.reqCh:
			f()
		}
		m.settle()
		// Adverts alone only move counters, which are published on their
		// own; the view is rebuilt only when something it shows changed.
		if m.dirty || m.viewChanged() {
			m.dirty = false
			m.publish()
		}
		m.publishCounters()
	}
}

func (m *Manager) nextDeadline() time.Time {
	next := m.holdUntil
	for _, in := range m.order {
		if d := in.m.deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// apply makes the running instances match set.
func (m *Manager) apply(set *Set) error {
	now := m.opt.Clock.Now()
	want := map[string]*InstanceSpec{}
	for _, s := range set.Instances {
		want[s.Name] = s
	}
	// Stop removed and changed instances first (their VRID may be reused).
	for _, in := range slices.Clone(m.order) {
		s, ok := want[in.spec.Name]
		if ok && sameRun(s, in.given) {
			m.update(in, s)
			continue
		}
		why := "removed"
		if ok {
			why = "changed"
		}
		m.log.Info("stopping VRRP instance", "instance", in.spec.Name, "reason", why)
		m.stopInst(in, now)
	}
	m.settle()
	m.allWorkers = slices.DeleteFunc(m.allWorkers, func(w *addrWorker) bool {
		select {
		case <-w.done:
			return true
		default:
			return false
		}
	})
	m.set = set
	m.groups = map[string]*group{}
	for _, g := range set.Groups {
		m.groups[g.Name] = &group{spec: g, state: StateInit}
	}
	var errs []error
	for _, s := range set.Instances {
		if _, ok := m.insts[s.Name]; ok {
			continue
		}
		if err := m.startInst(s, now); err != nil {
			errs = append(errs, err)
		}
	}
	// Keep configuration order.
	m.order = m.order[:0]
	for _, s := range set.Instances {
		if in, ok := m.insts[s.Name]; ok {
			m.order = append(m.order, in)
		}
	}
	for _, in := range m.order {
		in.group = nil
	}
	for _, g := range m.groups {
		for _, name := range g.spec.Members {
			if in, ok := m.insts[name]; ok {
				g.members = append(g.members, in)
				in.group = g
			}
		}
	}
	m.track.configure(m.order)
	m.retrack()
	if m.holdUntil.IsZero() {
		m.startWaiting(now)
	}
	m.settle()
	m.publish()
	return errors.Join(errs...)
}

// startWaiting starts the instances still in INIT.
func (m *Manager) startWaiting(now time.Time) {
	for _, in := range m.order {
		if in.m.state == StateInit {
			in.m.start(now)
		}
	}
}

// endStartupDelay starts the instances once vrrp_startup_delay has
// passed.
func (m *Manager) endStartupDelay(now time.Time) {
	if m.holdUntil.IsZero() || now.Before(m.holdUntil) {
		return
	}
	m.holdUntil = time.Time{}
	m.log.Info("vrrp_startup_delay over: VRRP instances start")
	m.startWaiting(now)
	m.dirty = true
}

func (m *Manager) startInst(s *InstanceSpec, now time.Time) error {
	conn, err := m.opt.Listen(s)
	if err != nil {
		m.log.Error("VRRP instance not started", "instance", s.Name, "err", err)
		return err
	}
	addrs, err := m.opt.Addresses(*s)
	if err != nil {
		conn.Close()
		m.log.Error("VRRP instance not started", "instance", s.Name, "err", err)
		return fmt.Errorf("addresses of %s: %w", s.Name, err)
	}
	spec := *s
	if !spec.SrcIP.IsValid() {
		spec.SrcIP = conn.Source()
	}
	in := &inst{mgr: m, name: s.Name, given: s, spec: &spec, conn: conn, done: make(chan struct{})}
	in.m = newMachine(&spec, in)
	in.m.primary = conn.Source()
	in.aw = newAddrWorker(m, in, addrs)
	m.insts[s.Name] = in
	m.order = append(m.order, in)
	m.wg.Add(1)
	go in.readLoop()
	m.log.Info("VRRP instance started", "instance", s.Name, "vrid", s.VRID, "interface", s.Interface,
		"version", s.Version, "priority", s.Priority, "source", conn.Source())
	return nil
}

// update applies a reload's soft changes to a running instance in place;
// a changed address configuration swaps its AddressSet (VIPs moved from the
// old to the new one if held).
func (m *Manager) update(in *inst, s *InstanceSpec) {
	old := in.given
	in.given = s
	spec := *s
	if !spec.SrcIP.IsValid() {
		spec.SrcIP = in.conn.Source()
	}
	*in.spec = spec // shared with the machine
	if config.SameIgnoringPos(old.Source, s.Source) {
		return
	}
	addrs, err := m.opt.Addresses(*s)
	if err != nil {
		m.log.Error("VRRP instance keeps its old addresses", "instance", s.Name, "err", err)
		return
	}
	m.log.Info("VRRP instance address configuration changed", "instance", s.Name)
	in.aw.swap(addrs)
}

// stopInst stops one instance: priority 0 if master, VIPs removed,
// notify_stop, socket closed.
func (m *Manager) stopInst(in *inst, now time.Time) {
	in.m.stop(now)
	in.dropClaim()
	close(in.done)
	in.conn.Close()
	in.aw.close()
	delete(m.insts, in.spec.Name)
	m.order = slices.DeleteFunc(m.order, func(x *inst) bool { return x == in })
}

func (m *Manager) shutdown() {
	now := m.opt.Clock.Now()
	for _, in := range slices.Clone(m.order) {
		m.stopInst(in, now)
	}
	m.settle()
	m.publish()
	for _, w := range m.allWorkers {
		w.wait(m.opt.AddrTimeout)
	}
	m.allWorkers = nil
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m.notes != nil {
		// The stop events reach the notifier before it is closed.
		if err := m.notes.close(ctx); err != nil {
			m.log.Warn("notifier still busy at exit", "err", err)
		}
	}
	if c, ok := m.opt.Notifier.(interface{ Close(context.Context) error }); ok {
		if err := c.Close(ctx); err != nil {
			m.log.Warn("notify scripts still running at exit", "err", err)
		}
	}
	m.wg.Wait()
}

// settle finishes what the state machines asked for: gate requests and
// sync-group moves, until nothing changes.
func (m *Manager) settle() {
	for round := 0; round < 16; round++ {
		changed := false
		for _, in := range m.order {
			if in.wantGate {
				in.wantGate = false
				m.askGate(in)
				changed = true
			}
		}
		trans := m.pending
		m.pending = nil
		for _, t := range trans {
			m.syncGroup(t)
			changed = true
		}
		if !changed {
			return
		}
	}
	m.log.Warn("VRRP sync-group moves did not settle")
}

type transition struct {
	in       *inst
	from, to State
}

// syncGroup moves the other members of a group with one member.
func (m *Manager) syncGroup(t transition) {
	g := t.in.group
	if g == nil {
		return
	}
	now := m.opt.Clock.Now()
	for _, o := range g.members {
		if o == t.in {
			continue
		}
		switch {
		case t.to == StateMaster:
			o.m.forceMaster(now)
		case t.from == StateMaster && (t.to == StateBackup || t.to == StateFenced):
			o.m.forceBackup(now, "sync group "+g.spec.Name)
		}
	}
	// The group's own state: all members agree, or any is in FAULT.
	st := g.members[0].m.state
	fault := false
	for _, o := range g.members {
		if o.m.state == StateFault {
			fault = true
		}
		if o.m.state != st {
			st = StateInit
		}
	}
	if fault {
		st = StateFault
	}
	if st != StateInit && st != g.state {
		g.state = st
		m.log.Info("VRRP sync group "+g.spec.Name+" entering "+st.String()+" state", "group", g.spec.Name, "state", st.String())
		m.notify(Event{Group: true, Name: g.spec.Name, State: st, Scripts: g.spec.Notify, SMTPAlert: g.spec.SMTPAlert})
	}
}

// retrack recomputes every instance's priority and fault from the tracked
// objects; a FAULT in one member puts its whole sync group in FAULT.
func (m *Manager) retrack() {
	m.publishScripts()
	now := m.opt.Clock.Now()
	for _, in := range m.order {
		in.prio, in.fault = m.track.effective(in.spec)
	}
	for _, in := range m.order {
		fault := in.fault
		if fault == "" && in.group != nil {
			for _, o := range in.group.members {
				if o.fault != "" {
					fault = "sync group " + in.group.spec.Name + ": " + o.spec.Name + " " + o.fault
				}
			}
		}
		in.m.setPriority(now, in.prio)
		in.m.setFault(now, fault != "", faultWhy(fault))
		in.faultWhy = fault
	}
}

func faultWhy(f string) string {
	if f != "" {
		return f
	}
	return "tracked objects up"
}

func (m *Manager) askGate(in *inst) {
	in.claimID++
	id := in.claimID
	ctx, cancel := context.WithCancel(m.runCtx)
	in.claimCancel = cancel
	in.claimAnswered = false
	c := Claim{Instance: in.spec.Name, VRID: in.spec.VRID, Interface: in.spec.Interface, IPv6: in.spec.IPv6}
	ch := m.opt.Gate.Admit(ctx, c)
	now := m.opt.Clock.Now()
	// The fast path: an answer already there is taken at once.
	select {
	case err, ok := <-ch:
		in.claimAnswered = true
		if !ok {
			err = errors.New("gate closed the claim")
		}
		if err == nil {
			in.claimAdmitted = true
			in.m.admitted(now)
		} else {
			in.m.refused(now, err)
			cancel()
			return
		}
		if !ok {
			return
		}
	default:
	}
	go func() {
		for {
			select {
			case err, ok := <-ch:
				if !ok && err == nil {
					err = errors.New("gate closed the claim")
				}
				select {
				case m.gateCh <- gateEvent{in: in, id: id, err: err}:
				case <-ctx.Done():
					return
				}
				if !ok {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (m *Manager) onGate(ev gateEvent) {
	in := ev.in
	if in.claimID != ev.id || m.insts[in.spec.Name] != in {
		return // a withdrawn claim
	}
	now := m.opt.Clock.Now()
	if !in.claimAnswered {
		in.claimAnswered = true
		if ev.err == nil {
			in.claimAdmitted = true
			in.m.admitted(now)
		} else {
			in.m.refused(now, ev.err)
			in.dropClaim()
		}
		return
	}
	if in.claimAdmitted {
		if ev.err == nil {
			ev.err = errors.New("revoked")
		}
		in.m.revoked(now, ev.err)
		in.dropClaim()
	}
}

func (m *Manager) onRx(ev rxEvent) {
	in := ev.in
	if m.insts[in.spec.Name] != in {
		return
	}
	now := m.opt.Clock.Now()
	if ev.err != nil {
		var de *DropError
		if errors.As(ev.err, &de) {
			in.m.stats[de.Reason]++
			if de.Reason != DropVRID {
				in.logDrop(de.Reason, netip.Addr{}, de.Detail)
			}
		}
		return
	}
	in.m.receive(now, ev.p.Advert, ev.p.Src)
}

// publish rebuilds the view Status shows and signals the watchers.
func (m *Manager) publish() {
	snap := &snapshot{view: make([]InstanceStatus, 0, len(m.order)), insts: slices.Clone(m.order)}
	for _, in := range m.order {
		v := in.viewKey()
		in.shown = v
		st := InstanceStatus{
			Name: in.spec.Name, VRID: in.spec.VRID, Interface: in.spec.Interface, Version: in.spec.Version,
			State: v.state.String(), Priority: v.prio, BasePriority: in.spec.Priority,
			VIPs: in.spec.VIPs, Source: in.conn.Source(), Fault: v.fault, Master: v.master, SyncGroup: v.group,
		}
		if v.pending {
			st.Gate = "pending"
		} else if in.m.gateErr != nil {
			st.Gate = "refused: " + v.gateErr
		}
		snap.view = append(snap.view, st)
	}
	m.publishCounters()
	m.status.Store(snap)
	m.signalWatchers()
}

// viewKey is what the published view shows of an instance, in a form that
// compares cheaply (no allocation) after every event.
type viewKey struct {
	state   State
	prio    uint8
	master  netip.Addr
	pending bool
	gateErr string
	fault   string
	group   string
}

func (in *inst) viewKey() viewKey {
	mm := in.m
	v := viewKey{state: mm.state, prio: mm.prio, pending: mm.pending, fault: in.faultWhy}
	if mm.gateErr != nil {
		v.gateErr = mm.gateErr.Error()
	}
	if in.group != nil {
		v.group = in.group.spec.Name
	}
	switch mm.state {
	case StateMaster:
		v.master = in.conn.Source()
	case StateBackup, StateFenced:
		v.master = mm.masterIP
	}
	return v
}

// viewChanged reports whether an instance changed since the last publish
// in a way Status shows (a new master heard, say, moves no other field).
func (m *Manager) viewChanged() bool {
	for _, in := range m.order {
		if in.viewKey() != in.shown {
			return true
		}
	}
	return false
}

// publishCounters copies every instance's counters where Status reads
// them; done after each event, so a counter that moved means the event's
// state changes are published too.
func (m *Manager) publishCounters() {
	for _, in := range m.order {
		in.pub.store(in.m)
	}
}

// pubCounters are an instance's counters as last published.
type pubCounters struct {
	rx, tx, becameMaster atomic.Uint64
	drops                [numDropReasons]atomic.Uint64
}

func (p *pubCounters) store(mm *machine) {
	p.rx.Store(mm.rx)
	p.tx.Store(mm.tx)
	p.becameMaster.Store(mm.becameMaster)
	for r := DropReason(1); r < numDropReasons; r++ {
		if n := mm.stats[r]; n != p.drops[r].Load() {
			p.drops[r].Store(n)
		}
	}
}

func (p *pubCounters) counters() Counters {
	c := Counters{RxAdverts: p.rx.Load(), TxAdverts: p.tx.Load(), BecameMaster: p.becameMaster.Load()}
	for r := DropReason(1); r < numDropReasons; r++ {
		if n := p.drops[r].Load(); n > 0 {
			if c.Drops == nil {
				c.Drops = map[string]uint64{}
			}
			c.Drops[r.String()] = n
		}
	}
	return c
}

type group struct {
	spec    *SyncGroupSpec
	members []*inst
	state   State
}

type rxEvent struct {
	in  *inst
	p   *Packet
	err error
}

type gateEvent struct {
	in  *inst
	id  int
	err error
}

// inst is one running instance; all fields belong to the event loop except
// those of the read loop and address worker.
type inst struct {
	mgr   *Manager
	name  string        // immutable: other goroutines log with it
	given *InstanceSpec // as configured (spec has SrcIP filled in)
	spec  *InstanceSpec
	m     *machine
	conn  Conn
	aw    *addrWorker
	group *group
	done  chan struct{}

	prio     uint8
	fault    string // own tracked fault
	faultWhy string // including the sync group's

	wantGate      bool
	claimID       int
	claimCancel   context.CancelFunc
	claimAnswered bool
	claimAdmitted bool

	sendErr string

	shown viewKey     // as last published
	pub   pubCounters // counters as last published (read by Status)
}

func (in *inst) readLoop() {
	defer in.mgr.wg.Done()
	var lastErr string
	for {
		p, err := in.conn.Recv()
		if err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
		var de *DropError
		if err != nil && !errors.As(err, &de) {
			// A failing socket: say so once, and do not spin.
			if err.Error() != lastErr {
				in.mgr.log.Warn("VRRP socket read failed", "instance", in.name, "err", err)
				lastErr = err.Error()
			}
			select {
			case <-in.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		lastErr = ""
		select {
		case in.mgr.rxCh <- rxEvent{in: in, p: p, err: err}:
		case <-in.done:
			return
		}
	}
}

func (in *inst) dropClaim() {
	if in.claimCancel != nil {
		in.claimCancel()
		in.claimCancel = nil
	}
	in.claimID++
	in.claimAnswered, in.claimAdmitted = false, false
}

// effects of the machine.

func (in *inst) send(prio uint8) {
	s := in.spec
	a := &Advert{Version: s.Version, VRID: s.VRID, Priority: prio, Interval: s.Interval, Addrs: s.VIPs,
		AuthType: s.AuthType, AuthData: PassAuth(s.AuthPass)}
	if err := in.conn.Send(a); err != nil {
		if err.Error() != in.sendErr {
			in.mgr.log.Warn("send VRRP advert", "instance", s.Name, "vrid", s.VRID, "err", err)
		}
		in.sendErr = err.Error()
		return
	}
	in.sendErr = ""
}

func (in *inst) setAddrs(up bool) { in.aw.set(up) }

func (in *inst) transition(from, to State, why string) {
	m := in.mgr
	m.log.Info("("+in.spec.Name+") Entering "+to.String()+" STATE", "instance", in.spec.Name, "vrid", in.spec.VRID,
		"from", from.String(), "state", to.String(), "priority", in.m.prio, "reason", why)
	m.pending = append(m.pending, transition{in: in, from: from, to: to})
	m.dirty = true
	if to != StateInit {
		m.notify(Event{Name: in.spec.Name, State: to, Priority: in.m.prio, Scripts: in.spec.Notify, SMTPAlert: in.spec.SMTPAlert})
	}
}

func (in *inst) askGate() { in.wantGate = true }

func (in *inst) cancelGate() {
	in.wantGate = false
	in.dropClaim()
}

func (in *inst) releaseGate() {
	admitted := in.claimAdmitted
	in.dropClaim()
	if admitted {
		in.mgr.opt.Gate.Release(Claim{Instance: in.spec.Name, VRID: in.spec.VRID, Interface: in.spec.Interface, IPv6: in.spec.IPv6})
	}
}

func (in *inst) holds() bool {
	h, ok := in.mgr.opt.Gate.(Holder)
	return !ok || h.Holds(Claim{Instance: in.spec.Name, VRID: in.spec.VRID, Interface: in.spec.Interface, IPv6: in.spec.IPv6})
}

func (in *inst) logDrop(r DropReason, src netip.Addr, detail string) {
	level := slog.LevelDebug
	if r == DropAuth {
		// keepalived logs a wrong password loudly: both sides go MASTER.
		level = slog.LevelWarn
	}
	in.mgr.log.Log(context.Background(), level, "VRRP packet dropped", "instance", in.spec.Name, "vrid", in.spec.VRID,
		"reason", r.String(), "src", src, "detail", detail)
}

// addrWorker applies the wanted VIP state off the event loop. Wants are
// coalesced: only the last one matters, and it never blocks the loop.
type addrWorker struct {
	mgr  *Manager
	in   *inst
	as   AddressSet
	mu   sync.Mutex
	next AddressSet // set by swap
	want int8       // 1 up, 0 down
	have int8       // -1 unknown
	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

func newAddrWorker(m *Manager, in *inst, set AddressSet) *addrWorker {
	w := &addrWorker{mgr: m, in: in, as: set, want: 0, have: -1, kick: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	m.allWorkers = append(m.allWorkers, w)
	go w.run()
	return w
}

func (w *addrWorker) set(up bool) {
	w.mu.Lock()
	w.want = 0
	if up {
		w.want = 1
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *addrWorker) run() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
		case <-w.quit:
			w.apply() // the final want (VIPs removed on stop)
			closeSet(w.as)
			return
		}
		w.apply()
	}
}

// swap replaces the address set: the old one's VIPs are removed if held,
// then the want is applied to the new one.
func (w *addrWorker) swap(set AddressSet) {
	w.mu.Lock()
	w.next = set
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func closeSet(s AddressSet) {
	if c, ok := s.(interface{ Close() error }); ok {
		c.Close()
	}
}

func (w *addrWorker) apply() {
	for {
		w.mu.Lock()
		want, have, next := w.want, w.have, w.next
		w.next = nil
		w.mu.Unlock()
		if next != nil {
			if have == 1 {
				ctx, cancel := context.WithTimeout(context.Background(), w.mgr.opt.AddrTimeout)
				if err := w.as.Remove(ctx); err != nil {
					w.mgr.log.Error("VIPs not removed from the old address set", "instance", w.in.name, "err", err)
				}
				cancel()
				have = 0
			}
			closeSet(w.as)
			w.mu.Lock()
			w.as, w.have = next, have
			w.mu.Unlock()
			continue
		}
		if want == have {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.mgr.opt.AddrTimeout)
		start := time.Now()
		var err error
		op := "remove"
		if want == 1 {
			op = "add"
			err = w.as.Add(ctx)
		} else {
			err = w.as.Remove(ctx)
		}
		cancel()
		name := w.in.name
		if err != nil {
			w.mgr.log.Error("VIPs not changed", "instance", name, "op", op, "err", err)
		} else {
			w.mgr.log.Debug("VIPs changed", "instance", name, "op", op, "took", time.Since(start))
		}
		w.mu.Lock()
		w.have = want // on error too: retrying in a loop would spin
		w.mu.Unlock()
	}
}

func (w *addrWorker) close() { close(w.quit) }

func (w *addrWorker) wait(d time.Duration) {
	select {
	case <-w.done:
	case <-time.After(d):
		w.mgr.log.Warn("VIP removal still running at exit", "instance", w.in.name)
	}
}
