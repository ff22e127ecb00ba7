// Package dataplane is the health-check and IPVS half of hakeepd: checker
// transitions (and, in a cluster, the replicated health verdicts) plus the
// MASTER instances (for ha_suspend) become a desired IPVS table, which a
// reconciler keeps in the kernel.
//
// One goroutine (Run) owns the plane's state. Everything else talks to it
// with events (Reload, SetMasters) and reads what it publishes (Snapshot);
// it holds no pointer to its owner and takes no lock of anyone else's.
// Planning and programming the kernel run on a second goroutine fed the
// latest inputs only, so a slow kernel never delays a reload or a health
// transition, and a storm of changes is planned once.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"hakeep/checks"
	"hakeep/config"
	"hakeep/consensus"
	"hakeep/internal/owner"
	"hakeep/lvs"
)

// Cluster is what the plane needs of the Raft cluster: share this
// director's checker results, read the replicated verdicts, and hear when
// they change. *consensus.Node implements it.
type Cluster interface {
	ReportHealth(entries []consensus.HealthEntry)
	ForgetHealth(vs, rs string)
	Healthy(vs, rs string) consensus.Effective
	HealthState() consensus.HealthStatus
	Watch() (<-chan consensus.Change, func())
}

// Options are the plane's collaborators; all are optional.
type Options struct {
	Log *slog.Logger
	// Cluster is nil for a standalone director.
	Cluster Cluster
	// Alerter sends the checkers' smtp_alert e-mails.
	Alerter checks.Alerter
	// Scripts runs quorum_up / quorum_down.
	Scripts lvs.ScriptRunner
	// StateFile records the IPVS services this director programmed, so a
	// restart removes the ones no longer configured (lvs.Options.StateFile).
	StateFile string
	// OpenIPVS connects to the kernel's IPVS; default the real kernel
	// (nil means: check that IPVS exists, then lvs.NewKernel).
	OpenIPVS func() (lvs.Client, error)
	// CheckOptions, when set, adjusts the checks manager's options (tests).
	CheckOptions func(*checks.Options)
	// Fifos get keepalived's lvs notify_fifo lines (notify_fifo and
	// lvs_notify_fifo): "RS ..." on each checker transition, "VS ..." on
	// each quorum change. WriteLine must not block.
	Fifos []LineWriter
}

// Snapshot is what the plane publishes for the API and metrics. The
// pointers are to objects safe for concurrent use; none calls back here.
type Snapshot struct {
	// Config is the configuration the plane runs (nil before Run).
	Config *config.Config
	// Health is the effective health of every checked real server, as the
	// last plan used it (immutable; nil before the first plan).
	Health *lvs.HealthTable
	// Checks is the running checks manager; nil before Run.
	Checks *checks.Manager
	// IPVS is the reconciler; nil without virtual servers or without IPVS.
	IPVS *lvs.Reconciler
	// NoIPVS says why virtual servers are not programmed.
	NoIPVS error
}

// Plane runs the checks and the IPVS table of one director.
type Plane struct {
	opts Options
	log  *slog.Logger

	loop *owner.Loop[*state] // runs events on the owner goroutine
	ran  atomic.Bool
	snap atomic.Pointer[Snapshot]
	// masters is the latest MASTER set (latest wins; SetMasters never
	// blocks its caller, the VRRP side).
	masters     atomic.Pointer[map[string]bool]
	mastersKick chan struct{}
	// loaded is the basis of the checkers' specs loaded (set by Run's
	// goroutine; a reload builds against it).
	loaded atomic.Pointer[checks.Basis]
}

// New prepares a plane for cfg; Run starts it.
func New(cfg *config.Config, opts Options) *Plane {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	p := &Plane{
		opts: opts, log: opts.Log,
		loop:        owner.New[*state](ErrNotRunning),
		mastersKick: make(chan struct{}, 1),
	}
	p.snap.Store(&Snapshot{Config: cfg})
	return p
}

// Snapshot returns the last published state; it never blocks.
func (p *Plane) Snapshot() Snapshot { return *p.snap.Load() }

// SetMasters tells the plane which VRRP instances are MASTER (ha_suspend
// services are programmed only there). It never blocks: only the latest
// set counts.
func (p *Plane) SetMasters(masters map[string]bool) {
	m := make(map[string]bool, len(masters))
	for k, v := range masters {
		if v {
			m[k] = true
		}
	}
	p.masters.Store(&m)
	select {
	case p.mastersKick <- struct{}{}:
	default:
	}
}

// ErrNotRunning is returned by calls that need the plane's goroutine when
// it is not running (not started yet, or stopped).
var ErrNotRunning = errors.New("checks+ipvs: not running")

// do runs f on the owner goroutine and waits for it, or for ctx.
func (p *Plane) do(ctx context.Context, f func(*state)) error { return p.loop.Do(ctx, f) }

// Ping answers when the owner goroutine is free (the watchdog's test).
func (p *Plane) Ping(ctx context.Context) error {
	return p.do(ctx, func(*state) {})
}

// Reload switches to cfg: unchanged checks keep their state, new virtual
// servers are planned and programmed (IPVS is opened on the first one), and
// the table is re-planned as a diff. It returns once the checks run the new
// specs; programming the kernel follows on the planner.
//
// The table is planned first, and the checker specs built and loaded while
// the planner programs it: a real server new to the checkers starts up
// unless alpha (checks.Manager), which is what the plan assumes for one
// without a result, and a kept one keeps its result; so the checkers'
// reload is off the path to the programmed table. If the checkers refuse
// the new specs, the previous configuration is planned again.
func (p *Plane) Reload(ctx context.Context, cfg *config.Config) error {
	var old *config.Config
	tableIn := make(chan struct{})
	if derr := p.do(ctx, func(s *state) {
		s.tableWait = append(s.tableWait, tableIn) // handed over with the plan's input
		old = s.switchTable(cfg)
	}); derr != nil {
		return derr
	}
	// The checkers' specs are built once the table is programmed, or
	// tableFirstWait later: building and loading 40,000 specs competes
	// with the plan and the pass for the CPU and makes the collector run
	// (on a small machine the reload's table came 0.5 s later).
	wait := time.NewTimer(tableFirstWait)
	select {
	case <-tableIn:
	case <-wait.C:
	case <-ctx.Done():
	}
	wait.Stop()
	// Only the specs of virtual servers that changed are built; the
	// others' checks stay as loaded (checks.Build, issue 13).
	built := checks.Build(cfg, p.loaded.Load())
	for _, w := range built.Warnings {
		p.log.Warn("checks", "msg", w)
	}
	var err error
	if derr := p.do(ctx, func(s *state) { err = s.reload(old, cfg, built) }); derr != nil {
		return derr
	}
	return err
}

// state is owned by Run's goroutine.
type state struct {
	p      *Plane
	ctx    context.Context
	cfg    *config.Config
	checks *checks.Manager
	health localHealth // this director's own results
	// eff is the effective health the last plan was handed (and the
	// snapshot shows); effStale: health changed since other than by
	// transitions, so the next plan rebuilds it whole.
	eff      *lvs.HealthTable
	effStale bool
	rec      *lvs.Reconciler
	recDone  chan struct{}
	noIPVS   error
	// ipvs is the reconciler's client, kept for lvs_timeouts (timeouts.go).
	ipvs    lvs.Client
	planner *planner
	// planning: the planner has an input it has not finished; dirty: the
	// inputs changed since the last one handed over.
	planning, dirty bool
	// changed: the virtual servers whose health changed since the last
	// input handed over, when nothing else did (partial); otherwise the
	// next plan covers every virtual server.
	changed map[string]bool
	partial bool
	// tableWait: reloads waiting for the next input's table (Reload).
	tableWait []chan struct{}
	// loading: a start or reload whose garbage (the parsed text, the
	// previous table and specs, netlink buffers) goes back to the system
	// once both its checkers and its table are loaded (release).
	loading, checksLoaded bool
}

// Run runs the checks and the IPVS table until ctx is done. At stop the
// IPVS table stays unless lvs_flush_on_stop says otherwise.
func (p *Plane) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("checks+ipvs: Run called twice")
	}
	defer p.loop.Stop()
	cfg := p.snap.Load().Config
	s := &state{p: p, ctx: ctx, cfg: cfg, health: localHealth{}}
	copts := checks.Options{
		Logger:   p.log,
		Runner:   checks.Scripts{User: cfg.Global.ScriptUser, Group: cfg.Global.ScriptGroup, Secure: cfg.Global.EnableScriptSecurity},
		RouterID: RouterID(&cfg.Global),
		Alerter:  p.opts.Alerter,
	}
	if p.opts.CheckOptions != nil {
		p.opts.CheckOptions(&copts)
	}
	// The table first: with no checker result yet, a real server is up
	// unless alpha, exactly the state the checkers start it in, so the
	// kernel is programmed while the checkers' specs are built.
	s.planner = newPlanner(p.opts.Scripts, p.log)
	if len(p.opts.Fifos) > 0 {
		s.planner.lvs.OnQuorum = func(e lvs.QuorumEvent) { writeLine(p.opts.Fifos, vsFifoLine(e)) }
	}
	go s.planner.run()
	defer func() {
		// The planner finishes its current plan, then runs omega
		// (quorum_down at stop); only then is the reconciler stopped,
		// and then the checkers.
		s.planner.stop(s.cfg)
		s.stopIPVS()
		if s.checks != nil {
			s.checks.Stop()
		}
	}()
	s.maybeStartIPVS()
	s.startLoad()
	s.replan()

	checker := checks.New(copts)
	built := checks.Build(cfg, nil)
	for _, w := range built.Warnings {
		p.log.Warn("checks", "msg", w)
	}
	specs := built.Specs
	if err := checker.Start(specs); err != nil {
		return fmt.Errorf("start checks: %w", err)
	}
	s.checks = checker
	p.loaded.Store(built.Basis)
	// Transitions carry changes only: start from each real server's
	// initial state (down for a checker with alpha).
	// A plan follows when real servers were seeded, or forgotten (the
	// published health, which follows the plans, would otherwise keep
	// the removed ones until the next transition).
	if seeded := s.seedHealth(specs); seeded || s.effStale {
		s.replan()
	}
	s.checksLoaded = true
	s.release()
	s.publish()
	p.loop.Start()

	var changes <-chan consensus.Change
	var fallback *time.Ticker
	lastMode := ""
	if c := p.opts.Cluster; c != nil {
		ch, stop := c.Watch()
		defer stop()
		changes = ch
		// Losing the quorum changes no replicated state: poll it.
		fallback = time.NewTicker(fallbackPoll)
		defer fallback.Stop()
		lastMode = healthMode(c)
	}
	var fallbackC <-chan time.Time
	if fallback != nil {
		fallbackC = fallback.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-p.loop.Events():
			f(s)
		case t, ok := <-s.checks.Transitions():
			if !ok {
				return errors.New("checks manager stopped")
			}
			batch := []checks.Transition{t}
			// Take what else is queued now, so a burst is planned once.
			for more := true; more; {
				select {
				case t, ok := <-s.checks.Transitions():
					if !ok {
						more = false
						break
					}
					batch = append(batch, t)
				default:
					more = false
				}
			}
			s.replanVS(s.record(batch))
		case <-s.planner.ready:
			s.planned()
		case <-p.mastersKick:
			if hasHASuspend(s.cfg) {
				s.replan()
			}
		case c, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if c&consensus.ChangeHealth != 0 {
				s.replan()
			}
		case <-fallbackC:
			if m := healthMode(p.opts.Cluster); m != lastMode {
				lastMode = m
				s.replan()
			}
		}
	}
}

// fallbackPoll is how often a clustered director looks whether it fell
// back to its own checks (or came back to the quorum's verdicts).
const fallbackPoll = 250 * time.Millisecond

func healthMode(c Cluster) string {
	hs := c.HealthState()
	return fmt.Sprintf("%s %v", hs.Mode, hs.Fallback)
}

func hasHASuspend(cfg *config.Config) bool {
	for _, vs := range cfg.VirtualServers {
		if vs.HASuspend {
			return true
		}
	}
	return false
}

// RouterID is global_defs' router_id, or the host name as keepalived does.
func RouterID(g *config.GlobalDefs) string {
	if g.RouterID != "" {
		return g.RouterID
	}
	return hostname()
}

// switchTable plans cfg's table (Reload's first step) and returns the
// configuration it replaces.
func (s *state) switchTable(cfg *config.Config) *config.Config {
	old := s.cfg
	s.cfg = cfg
	s.setTimeouts(old)
	s.maybeStartIPVS()
	s.startLoad()
	s.replan()
	s.planner.hurryUp()
	return old
}

// reload loads the checker specs of cfg, whose table switchTable planned;
// refused, the table goes back to old.
func (s *state) reload(old, cfg *config.Config, built *checks.Built) error {
	specs := built.Specs
	var kept map[string]bool
	var err error
	if built.From != nil && built.From == s.p.loaded.Load() {
		if err = s.checks.ReloadKeeping(specs, built.Kept); err == nil {
			kept = make(map[string]bool, len(built.Kept))
			for _, vs := range built.Kept {
				kept[vs] = true
			}
		}
	}
	if kept == nil {
		if built.From != nil {
			// Built against other specs than those loaded (or refused):
			// all of them.
			if err != nil {
				s.p.log.Warn("checks: reloading every virtual server's", "err", err)
			}
			built = checks.Build(cfg, nil)
			specs = built.Specs
		}
		err = s.checks.Reload(specs)
	}
	if err != nil {
		if s.cfg == cfg {
			s.cfg = old
			s.setTimeouts(cfg)
			s.replan()
		}
		return err
	}
	// Forget results of real servers that are gone, here and in the
	// cluster's table.
	if len(s.health) > 0 {
		keep := make(map[lvs.HealthKey]bool, len(specs))
		for _, sp := range specs {
			keep[lvs.HealthKey{VS: sp.VirtualServer, RS: sp.RealServer}] = true
		}
		for vs, rss := range s.health {
			if kept[vs] {
				continue // its real servers are as loaded
			}
			for rs := range rss.All {
				if !keep[lvs.HealthKey{VS: vs, RS: rs}] {
					s.health.delete(vs, rs)
					s.effStale = true
					if c := s.p.opts.Cluster; c != nil {
						c.ForgetHealth(vs, rs.String())
					}
				}
			}
		}
	}
	s.p.loaded.Store(built.Basis)
	// A plan follows when real servers were seeded, or forgotten (the
	// published health, which follows the plans, would otherwise keep
	// the removed ones until the next transition).
	if seeded := s.seedHealth(specs); seeded || s.effStale {
		s.replan()
	}
	s.checksLoaded = true
	s.release()
	s.publish()
	return nil
}

// release returns the memory a load freed to the system, once its
// checkers are loaded and its table planned and programmed: a full
// collection (tens of ms at 2,000 x 20 on a server) on a goroutine of its
// own, so the plane's loop does not wait for it. Without it the heap keeps
// the load's high-water mark (twice the live heap and more) resident.
func (s *state) release() {
	if !s.loading || !s.checksLoaded || s.planning || s.dirty {
		return
	}
	s.loading = false
	s.p.log.Debug("configuration loaded: returning freed memory to the system")
	// A moment later: the reload's callers (the director's loop, the
	// SIGHUP handler) still hold the previous configuration until they
	// return, and a collection now would keep it resident.
	time.AfterFunc(releaseDelay, debug.FreeOSMemory)
}

// tableFirstWait bounds how long a reload waits for its table to be
// programmed before it builds the checkers' specs: a large reload's
// programming (seconds under an emulated CPU) does not hold the checkers
// back longer.
const tableFirstWait = time.Second

// releaseDelay is how long after a load its memory is returned.
const releaseDelay = time.Second

// startLoad marks a start or reload under way (see release). The
// collector's target is left as it is: at 400% during the load the start
// was slower in the VM (13-14 s instead of 7-11 s), the larger heap's
// fresh pages costing more to fault in under an emulated CPU than the
// collections they saved.
func (s *state) startLoad() {
	s.loading, s.checksLoaded = true, false
}

// maybeStartIPVS opens the kernel's IPVS and starts the reconciler when the
// configuration has virtual servers (or a previous run left services that
// this director owned) and none runs yet. A kernel without IPVS is
// reported once and not retried.
func (s *state) maybeStartIPVS() {
	if s.rec != nil || s.noIPVS != nil {
		return
	}
	if len(s.cfg.VirtualServers) == 0 && s.cfg.Global.LVSTimeouts == nil && !s.ownedBefore() {
		return
	}
	rec, err := s.openIPVS()
	if err != nil {
		// Checks still run (their results are useful in the API and to
		// peers); the table is not programmed.
		s.noIPVS = err
		s.p.log.Error("virtual servers will not be programmed", "err", err)
		return
	}
	s.rec = rec
	s.recDone = make(chan struct{})
	go func() {
		defer close(s.recDone)
		rec.Run(s.ctx)
	}()
}

// ownedBefore reports whether a previous run left services this director
// programmed: a reconciler must then run, even with no virtual server
// configured, to remove them. An unreadable record counts as yes: the
// reconciler reports it and rewrites it (and never deletes on a guess).
func (s *state) ownedBefore() bool {
	if s.p.opts.StateFile == "" {
		return false
	}
	owned, err := lvs.OwnedInStateFile(s.p.opts.StateFile)
	return owned || err != nil
}

// ipvsSockets is how many IPVS requests (changes, dumps) run at once:
// up to 4, and always one CPU fewer than the machine has.
//
// Why (issue 10): an IPVS request is kernel work the scheduler cannot
// take back from, and the reconciler rereads the whole table after each
// pass. With 4 in parallel on 2 CPUs (the vmtest VM, 2,000 services, 200
// real servers flapping) both CPUs were in IPVS dumps at once and the
// VRRP loop's thread did not run for 331 ms (runtime trace): gaps up to
// 1.62 s at advert_int 1 and 957 ms at 0.1, the backup took over. With
// one: 1.02-1.15 s and 173-318 ms, no takeover (test/overload). The cost
// is slower IPVS programming on machines with fewer than 5 CPUs.
func ipvsSockets() int { return min(4, max(1, runtime.NumCPU()-1)) }

func (s *state) openIPVS() (*lvs.Reconciler, error) {
	open := s.p.opts.OpenIPVS
	if open == nil {
		open = func() (lvs.Client, error) {
			if err := lvs.CheckIPVS(); err != nil {
				return nil, err
			}
			return lvs.NewKernel("", ipvsSockets())
		}
	}
	k, err := open()
	if err != nil {
		return nil, err
	}
	s.ipvs = k
	s.setTimeouts(nil)
	g := &s.cfg.Global
	return lvs.NewReconciler(k, lvs.Options{
		Flush:          g.LVSFlush,
		FlushOnStop:    g.LVSFlushOnStop,
		FlushAllOnStop: g.LVSFlushOnStopMode == "ALL",
		StateFile:      s.p.opts.StateFile,
		Log:            s.p.log,
		// A resync's read of a large table is garbage once compared:
		// returned to the system as a load's is (release).
		AfterLargeRead: func() { time.AfterFunc(releaseDelay, debug.FreeOSMemory) },
	})
}

func (s *state) stopIPVS() {
	if s.rec == nil {
		return
	}
	<-s.recDone // Run ends with ctx
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.rec.Stop(sctx); err != nil {
		s.p.log.Error("stopping IPVS", "err", err)
	}
}

// seedHealth records the checkers' current view of every real server of
// specs not known yet, and shares it with the cluster (a real server that
// never changes state still has every director's view there). It reports
// whether a seeded result differs from what the plan assumes without one.
//
// A standalone director records only real servers with checkers: one
// without is always up at its configured weight, for the plan and the API
// alike, and 40,000 such entries cost megabytes and a pass over the
// checkers' state at every reload. In a cluster every view is shared, as
// the other directors expect.
func (s *state) seedHealth(specs []checks.Spec) bool {
	cluster := s.p.opts.Cluster
	fresh := 0
	for i := range specs {
		sp := &specs[i]
		if cluster == nil && len(sp.Checkers) == 0 {
			continue
		}
		if _, ok := s.health.get(sp.VirtualServer, sp.RealServer); !ok {
			fresh++
		}
	}
	if fresh == 0 {
		return false
	}
	alpha := map[string]bool{}
	if s.cfg != nil {
		for _, vs := range s.cfg.VirtualServers {
			alpha[vs.Key()] = vs.Alpha
		}
	}
	changed := false
	var seeded []consensus.HealthEntry
	// The checkers list real servers in runs of one virtual server: one
	// new version of each per run, from a scratch list reused run to run.
	var run []lvs.RSResult
	runVS := ""
	flush := func() {
		if len(run) > 0 {
			s.health.setAll(runVS, run)
			s.effStale = true
		}
		run = run[:0]
	}
	for _, rs := range s.checks.Health() {
		if cluster == nil && rs.Checkers == 0 {
			continue
		}
		if rs.VirtualServer != runVS {
			flush()
			runVS = rs.VirtualServer
		}
		ap := rs.RealServer
		if _, ok := s.health.get(rs.VirtualServer, ap); !ok {
			h := lvs.RSHealth{Up: rs.Up, Weight: rs.Weight}
			run = append(run, lvs.RSResult{Addr: ap, RSHealth: h})
			if cluster != nil {
				seeded = append(seeded, consensus.HealthEntry{VS: rs.VirtualServer, RS: ap.String(), Up: rs.Up})
			}
			changed = changed || rs.Checkers > 0 && (h.Up == alpha[rs.VirtualServer] || h.Weight >= 0)
		}
	}
	flush()
	if cluster != nil && len(seeded) > 0 {
		cluster.ReportHealth(seeded)
		changed = true // the replicated verdicts may differ
	}
	return changed
}

// record keeps transitions in this director's health table and, in
// cluster mode, reports them to the replicated one. It returns the
// virtual servers they touch.
func (s *state) record(ts []checks.Transition) map[string]bool {
	vs := map[string]bool{}
	c := s.p.opts.Cluster
	var entries []consensus.HealthEntry
	byVS := map[string][]lvs.RSResult{} // one new version per virtual server
	for _, t := range ts {
		vs[t.VirtualServer] = true
		byVS[t.VirtualServer] = append(byVS[t.VirtualServer], lvs.RSResult{Addr: t.RealServer, RSHealth: lvs.RSHealth{Up: t.Up, Weight: t.Weight}})
		if len(s.p.opts.Fifos) > 0 {
			writeLine(s.p.opts.Fifos, rsFifoLine(t))
		}
		if c != nil {
			entries = append(entries, consensus.HealthEntry{VS: t.VirtualServer, RS: t.RealServer.String(), Up: t.Up})
		}
	}
	for k, rs := range byVS {
		s.health.setAll(k, rs)
	}
	if c != nil {
		c.ReportHealth(entries)
	}
	return vs
}

// localHealth is this director's checker results by virtual server
// (owned by the plane's goroutine). Each virtual server's is an immutable
// lvs.VSHealth, shared by the tables handed to the planner: a new result
// makes a new version of the virtual server it touches (its results
// copied, its addresses shared), so a single director holds its results
// once, plus the few versions plans still hold.
type localHealth map[string]*lvs.VSHealth

func (h localHealth) get(vs string, rs netip.AddrPort) (lvs.RSHealth, bool) {
	return h[vs].Get(rs)
}

// setAll records results of one virtual server's real servers.
func (h localHealth) setAll(vs string, rs []lvs.RSResult) {
	h[vs] = h[vs].With(rs)
}

func (h localHealth) delete(vs string, rs netip.AddrPort) {
	if v := h[vs].Without(rs); v != nil {
		h[vs] = v
	} else {
		delete(h, vs)
	}
}

// effectiveVS is what one virtual server's table is built from: the local
// results, or in cluster mode the replicated verdict (quorum of
// directors' views, or as the health mode says) where one is known. nil:
// no result. Without a cluster (or a verdict that differs) it is the local
// version itself, shared.
func (s *state) effectiveVS(vs string) *lvs.VSHealth {
	local := s.health[vs]
	c := s.p.opts.Cluster
	if c == nil || local == nil {
		return local
	}
	var differ []lvs.RSResult
	for rs, v := range local.All {
		if e := c.Healthy(vs, rs.String()); e.Known && e.Up != v.Up {
			v.Up = e.Up
			differ = append(differ, lvs.RSResult{Addr: rs, RSHealth: v})
		}
	}
	if len(differ) == 0 {
		return local
	}
	return local.With(differ)
}

// effectiveHealth is the health the next plan is handed: after checker
// transitions only (partial), the last table with the virtual servers
// they touch rebuilt; otherwise rebuilt whole.
func (s *state) effectiveHealth() *lvs.HealthTable {
	if s.partial && !s.effStale && s.eff != nil {
		changes := make(map[string]*lvs.VSHealth, len(s.changed))
		for vs := range s.changed {
			changes[vs] = s.effectiveVS(vs)
		}
		s.eff = s.eff.WithVS(changes)
		return s.eff
	}
	all := make(map[string]*lvs.VSHealth, len(s.health))
	for vs := range s.health {
		if m := s.effectiveVS(vs); m != nil {
			all[vs] = m
		}
	}
	s.eff, s.effStale = lvs.NewHealthTable(all), false
	return s.eff
}

// replan marks the table for planning and hands the planner the latest
// inputs as soon as it is free: while it plans, any number of changes cost
// one flag, and then one plan.
func (s *state) replan() {
	s.dirty, s.partial, s.changed = true, false, nil
	if !s.planning {
		s.submit()
	}
}

// replanVS is replan when only the health of the virtual servers vs
// changed: unless something else changed too, the planner recomputes just
// those (a burst of checker transitions does not re-plan 40,000 real
// servers).
func (s *state) replanVS(vs map[string]bool) {
	if !s.dirty {
		s.dirty, s.partial, s.changed = true, true, vs
	} else if s.partial {
		for k := range vs {
			s.changed[k] = true
		}
	}
	if !s.planning {
		s.submit()
	}
}

func (s *state) submit() {
	health := s.effectiveHealth()
	var masters map[string]bool
	if m := s.p.masters.Load(); m != nil {
		masters = *m
	}
	in := planInput{ctx: s.ctx, cfg: s.cfg, health: health, masters: masters, rec: s.rec, done: s.tableWait}
	s.tableWait = nil
	if s.partial {
		in.changed = s.changed
	}
	s.planner.submit(in)
	s.dirty, s.planning, s.partial, s.changed = false, true, false, nil
	snap := *s.p.snap.Load()
	snap.Health = health
	s.p.snap.Store(&snap)
}

// planned: the planner is free again.
func (s *state) planned() {
	s.planning = false
	if s.dirty {
		s.submit()
	}
	s.release()
}

func (s *state) publish() {
	old := s.p.snap.Load()
	s.p.snap.Store(&Snapshot{Config: s.cfg, Health: old.Health, Checks: s.checks, IPVS: s.rec, NoIPVS: s.noIPVS})
}
