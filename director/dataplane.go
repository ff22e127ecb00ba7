package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"hakeep/checks"
	"hakeep/config"
	"hakeep/consensus"
	"hakeep/lvs"
)

// replanEvery is how often the data plane looks for changes it is not
// told about (a VRRP state change for ha_suspend, a fall back to local
// health); it plans again only when one happened.
const replanEvery = 250 * time.Millisecond

// dataPlane is the health-check and IPVS half of the daemon: checker
// transitions -> health table (replicated in cluster mode) -> desired IPVS
// table -> reconciler.
type dataPlane struct {
	d    *Director
	log  *slog.Logger
	node *consensus.Node // nil without a cluster block; fixed for the daemon's life

	checks  *checks.Manager
	planner *lvs.Planner
	rec     *lvs.Reconciler // nil: no virtual servers, or no IPVS in this kernel
	noIPVS  error

	mu      sync.Mutex
	cfg     *config.Config
	health  map[lvs.HealthKey]lvs.RSHealth // this director's own results
	desired lvs.Table
	kick    chan struct{}
}

func newDataPlane(d *Director) *dataPlane {
	return &dataPlane{d: d, node: d.clusterNode(), log: d.log.With("subsystem", "checks+ipvs"), kick: make(chan struct{}, 1)}
}

// quorumScripts runs quorum_up / quorum_down through the script package.
type quorumScripts struct {
	d   *Director
	log *slog.Logger
}

func (q quorumScripts) RunScript(ctx context.Context, cmdline, reason string) {
	q.d.mu.Lock()
	r := scriptRunner(&q.d.cfg.Global)
	q.d.mu.Unlock()
	go func() {
		res := r.Run(context.Background(), cmdline, nil, time.Minute)
		if !res.OK() {
			q.log.Warn("quorum script failed", "script", cmdline, "reason", reason, "exit", res.ExitCode, "timed_out", res.TimedOut, "err", res.Err)
		}
	}()
}

func (p *dataPlane) run(ctx context.Context) error {
	p.d.mu.Lock()
	cfg := p.d.cfg
	p.d.mu.Unlock()
	g := &cfg.Global
	opts := checks.Options{
		Logger:   p.log,
		Runner:   checks.Scripts{User: g.ScriptUser, Group: g.ScriptGroup, Secure: g.EnableScriptSecurity},
		RouterID: routerID(g),
	}
	if p.d.mail != nil {
		opts.Alerter = p.d.mail
	}
	mgr := checks.New(opts)
	p.mu.Lock()
	p.checks = mgr
	p.mu.Unlock()
	specs, warnings := checks.FromConfig(cfg)
	for _, w := range warnings {
		p.log.Warn("checks", "msg", w)
	}
	p.mu.Lock()
	p.cfg = cfg
	p.health = map[lvs.HealthKey]lvs.RSHealth{}
	p.mu.Unlock()
	if err := p.checks.Start(specs); err != nil {
		return fmt.Errorf("start checks: %w", err)
	}
	defer p.checks.Stop()
	// Transitions carry changes only: start from each real server's
	// initial state (down for a checker with alpha).
	p.seedHealth()
	p.planner = lvs.NewPlanner(quorumScripts{p.d, p.log}, p.log)

	if len(cfg.VirtualServers) > 0 {
		if err := p.startIPVS(ctx, cfg); err != nil {
			// Checks still run (their results are useful in the API and
			// to peers); the table is programmed once IPVS is there.
			p.mu.Lock()
			p.noIPVS = err
			p.mu.Unlock()
			p.log.Error("virtual servers will not be programmed", "err", err)
		}
	}
	defer func() {
		p.mu.Lock()
		cfg := p.cfg
		p.mu.Unlock()
		p.planner.Shutdown(context.Background(), cfg) // omega: quorum_down at stop
	}()
	if rec := p.reconciler(); rec != nil {
		go rec.Run(ctx)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := p.reconciler().Stop(sctx); err != nil {
				p.log.Error("stopping IPVS", "err", err)
			}
		}()
	}
	p.replan(ctx)
	tick := time.NewTicker(replanEvery)
	defer tick.Stop()
	var changes <-chan consensus.Change
	if node := p.node; node != nil {
		ch, stop := node.Watch()
		defer stop()
		changes = ch
	}
	last := p.inputsNow()
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-p.checks.Transitions():
			p.record(t)
			// Take what else is queued now, so a burst is planned once.
			for more := true; more; {
				select {
				case t := <-p.checks.Transitions():
					p.record(t)
				default:
					more = false
				}
			}
			p.replan(ctx)
		case <-p.kick:
			p.replan(ctx)
		case c := <-changes:
			if c&consensus.ChangeHealth != 0 {
				p.replan(ctx)
			}
		case <-tick.C:
			// Plan again only when something the table depends on changed
			// without a transition: a VRRP state (ha_suspend) or this
			// director falling back to its own checks. A plan of 2,000
			// services costs ~30 ms; doing it idly costs a core.
			if now := p.inputsNow(); now != last {
				last = now
				p.replan(ctx)
			}
		}
	}
}

func (p *dataPlane) startIPVS(ctx context.Context, cfg *config.Config) error {
	if err := lvs.CheckIPVS(); err != nil {
		return err
	}
	k, err := lvs.NewKernel("", 4)
	if err != nil {
		return err
	}
	rec, err := lvs.NewReconciler(k, lvs.Options{
		Flush:          cfg.Global.LVSFlush,
		FlushOnStop:    cfg.Global.LVSFlushOnStop,
		FlushAllOnStop: cfg.Global.LVSFlushOnStopMode == "ALL",
		Log:            p.log,
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.rec = rec
	p.mu.Unlock()
	return nil
}

// inputsNow summarises what the table depends on besides the checkers'
// transitions and the configuration: the MASTER instances (for
// ha_suspend services) and whether cluster health fell back to local.
func (p *dataPlane) inputsNow() string {
	var b strings.Builder
	p.mu.Lock()
	cfg := p.cfg
	p.mu.Unlock()
	if hasHASuspend(cfg) {
		for _, in := range p.d.instances() {
			if in.State == "MASTER" {
				b.WriteString(in.Name)
				b.WriteByte(' ')
			}
		}
	}
	if node := p.node; node != nil {
		hs := node.HealthState()
		fmt.Fprintf(&b, "|%s %v", hs.Mode, hs.Fallback)
	}
	return b.String()
}

func hasHASuspend(cfg *config.Config) bool {
	for _, vs := range cfg.VirtualServers {
		if vs.HASuspend {
			return true
		}
	}
	return false
}

// checksMgr and reconciler are set by the data plane's goroutine and read
// by the API, the metrics and reloads.
func (p *dataPlane) checksMgr() *checks.Manager {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checks
}

func (p *dataPlane) reconciler() *lvs.Reconciler {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec
}

// seedHealth records the checkers' current view of every real server.
func (p *dataPlane) seedHealth() {
	var seeded []consensus.HealthEntry
	defer func() {
		// Share the starting views too, so a real server that never
		// changes state still has every director's view in the cluster.
		if node := p.node; node != nil && len(seeded) > 0 {
			node.ReportHealth(seeded)
		}
	}()
	states := p.checksMgr().State()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rs := range states {
		ap, err := netip.ParseAddrPort(rs.RealServer)
		if err != nil {
			p.log.Error("checker state with a bad real server address", "rs", rs.RealServer, "err", err)
			continue
		}
		key := lvs.HealthKey{VS: rs.VirtualServer, RS: ap}
		if _, ok := p.health[key]; !ok {
			p.health[key] = lvs.RSHealth{Up: rs.Up, Weight: rs.Weight}
			seeded = append(seeded, consensus.HealthEntry{VS: rs.VirtualServer, RS: ap.String(), Up: rs.Up})
		}
	}
}

// record keeps a transition in this director's health table and, in
// cluster mode, reports it to the replicated one.
func (p *dataPlane) record(t checks.Transition) {
	key := lvs.HealthKey{VS: t.VirtualServer, RS: t.RealServer}
	p.mu.Lock()
	p.health[key] = lvs.RSHealth{Up: t.Up, Weight: t.Weight}
	p.mu.Unlock()
	if node := p.node; node != nil {
		node.ReportHealth([]consensus.HealthEntry{{VS: t.VirtualServer, RS: t.RealServer.String(), Up: t.Up}})
	}
}

// effectiveHealth is what the table is built from: the local results, or
// in cluster mode the replicated verdict (quorum of directors' views, or
// as the health mode says) where one is known.
func (p *dataPlane) effectiveHealth() map[lvs.HealthKey]lvs.RSHealth {
	p.mu.Lock()
	out := make(map[lvs.HealthKey]lvs.RSHealth, len(p.health))
	for k, v := range p.health {
		out[k] = v
	}
	p.mu.Unlock()
	node := p.node
	if node == nil {
		return out
	}
	for k, v := range out {
		if e := node.Healthy(k.VS, k.RS.String()); e.Known {
			v.Up = e.Up
			out[k] = v
		}
	}
	return out
}

func (p *dataPlane) replan(ctx context.Context) {
	p.mu.Lock()
	cfg := p.cfg
	p.mu.Unlock()
	t, err := p.planner.Plan(ctx, cfg, lvs.Inputs{Health: p.effectiveHealth(), Master: lvs.MasterOf(cfg, p.d.isMaster)})
	if err != nil {
		p.log.Error("cannot compute the IPVS table", "err", err)
		return
	}
	p.mu.Lock()
	p.desired = t
	p.mu.Unlock()
	rec := p.reconciler()
	if rec == nil {
		return
	}
	if _, err := rec.SetDesired(ctx, t); err != nil && !errors.Is(err, context.Canceled) {
		p.log.Error("IPVS update failed (retried by the reconciler)", "err", err)
	}
}

// reload switches to a new configuration: unchanged checks keep their
// state, and the table is re-planned as a diff.
func (p *dataPlane) reload(cfg *config.Config, specs []checks.Spec) error {
	mgr := p.checksMgr()
	if mgr == nil {
		return nil // not started yet: run() reads the new configuration
	}
	if err := mgr.Reload(specs); err != nil {
		return err
	}
	p.mu.Lock()
	p.cfg = cfg
	// Forget results of real servers that are gone.
	keep := map[lvs.HealthKey]bool{}
	for _, s := range specs {
		keep[lvs.HealthKey{VS: s.VirtualServer, RS: s.RealServer}] = true
	}
	for k := range p.health {
		if !keep[k] {
			delete(p.health, k)
		}
	}
	p.mu.Unlock()
	p.seedHealth()
	p.mu.Lock()
	startNow := p.rec == nil && len(cfg.VirtualServers) > 0 && p.noIPVS == nil
	p.mu.Unlock()
	if startNow {
		ctx := context.Background()
		if err := p.startIPVS(ctx, cfg); err != nil {
			p.mu.Lock()
			p.noIPVS = err
			p.mu.Unlock()
			p.log.Error("virtual servers will not be programmed", "err", err)
		} else {
			go p.reconciler().Run(p.d.runContext())
		}
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// isMaster reports whether this director's VRRP instance name is MASTER
// (ha_suspend). Without VRRP (-C) every service is active.
func (d *Director) isMaster(name string) bool {
	d.mu.Lock()
	m := d.vrrp
	d.mu.Unlock()
	if m == nil {
		return true
	}
	for _, st := range m.Status() {
		if st.Name == name {
			return st.State == "MASTER"
		}
	}
	return false
}

func (d *Director) clusterNode() *consensus.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.node
}

func (d *Director) runContext() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runCtx == nil {
		return context.Background()
	}
	return d.runCtx
}
