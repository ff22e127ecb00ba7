package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"hakeep/config"
	"hakeep/lvs"
	"hakeep/script"
)

// planInput is everything one plan depends on.
type planInput struct {
	ctx    context.Context
	cfg    *config.Config
	health *lvs.HealthTable
	// masters is the MASTER instances; nil means no VRRP runs here (-C),
	// so every ha_suspend service is active.
	masters map[string]bool
	rec     *lvs.Reconciler
	// changed: only these virtual servers' inputs (health) changed since
	// the last input handed over; nil: any may have.
	changed map[string]bool
	// done are closed once this input's table is handed to the
	// reconciler (programmed, or failed and left to its retries).
	done []chan struct{}
}

// maxRest bounds the pause after a plan, so a slow plan (a large table
// under an emulated CPU) delays the next change by at most this.
const maxRest = 500 * time.Millisecond

// minRest is the least pause after a plan. A plan of a few changed
// virtual servers is quick (~0.3 ms at 2,000 x 20 on the host), but it
// and its reconcile pass copy and walk the whole table (the previous
// plan's services, the applied picture, the health by virtual server):
// when 40,000 real servers went down within a minute, plans ran ~400
// times a second and that copying was 5 GB of garbage in 2 minutes, the
// daemon's largest CPU cost after the checks' system calls (GC
// included). At most 20 plans a second, each taking every change since
// the last: a change waits at most this long behind the previous plan,
// and not at all after a quiet spell.
const minRest = 50 * time.Millisecond

// planner computes the desired IPVS table and hands it to the reconciler
// on its own goroutine. It keeps only the latest input: while one plan
// runs, any number of changes become one more plan.
type planner struct {
	lvs     *lvs.Planner
	lastCfg *config.Config // of the last plan (logged when it changes)
	scripts *quorumScripts // nil when Options.Scripts is set
	log     *slog.Logger
	in      chan planInput // capacity 1: the pending input
	ready   chan struct{}  // capacity 1: a plan finished, send the next
	hurry   chan struct{}  // capacity 1: end the rest now (a reload waits)
	quit    chan struct{}
	done    chan struct{}
}

func newPlanner(scripts lvs.ScriptRunner, log *slog.Logger) *planner {
	p := &planner{log: log, in: make(chan planInput, 1), ready: make(chan struct{}, 1), hurry: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if scripts == nil {
		p.scripts = &quorumScripts{log: log}
		scripts = p.scripts
	}
	p.lvs = lvs.NewPlanner(scripts, log)
	return p
}

// submit replaces the pending input, if any, with in. It never blocks: it
// is only called from the plane's owner goroutine, the only sender.
func (p *planner) submit(in planInput) {
	select {
	case old := <-p.in: // drop the stale pending input (its waiters wait for this one)
		in.done = append(old.done, in.done...)
	default:
	}
	p.in <- in
}

// hurryUp ends the planner's rest after its current plan: a reload's
// table is not held back to spare the CPU as a storm of health changes is.
// It never blocks.
func (p *planner) hurryUp() {
	select {
	case p.hurry <- struct{}{}:
	default:
	}
}

func (p *planner) run() {
	defer close(p.done)
	for {
		select {
		case <-p.quit:
			return
		case in := <-p.in:
			start := time.Now()
			p.plan(in)
			for _, c := range in.done {
				close(c)
			}
			// Leave the CPU to the rest of the daemon between plans: a
			// storm of changes gets a plan at most every 4x the time one
			// takes (2,000 services plan in ~30 ms on the host), and at
			// most every minRest, so the planner uses at most a quarter
			// of a core.
			rest := time.NewTimer(min(max(3*time.Since(start), minRest), maxRest))
			select {
			case <-p.quit:
				rest.Stop()
				return
			case <-rest.C:
			case <-p.hurry:
				rest.Stop()
			}
			select {
			case p.ready <- struct{}{}:
			default:
			}
		}
	}
}

func (p *planner) plan(in planInput) {
	if p.scripts != nil {
		p.scripts.global.Store(&in.cfg.Global)
	}
	isMaster := func(name string) bool { return in.masters == nil || in.masters[name] }
	t0 := time.Now()
	t, err := p.lvs.PlanChanged(in.ctx, in.cfg, lvs.Inputs{HealthTable: in.health, Master: lvs.MasterOf(in.cfg, isMaster)}, in.changed)
	if err != nil {
		p.log.Error("cannot compute the IPVS table", "err", err)
		return
	}
	if in.cfg != p.lastCfg {
		// A start or reload: when its table was ready (its programming
		// follows; "ipvs reconciled").
		p.lastCfg = in.cfg
		p.log.Info("ipvs table planned", "services", len(t), "took", time.Since(t0).Round(time.Millisecond))
	}
	if in.rec == nil {
		return
	}
	if _, err := in.rec.SetDesired(in.ctx, t); err != nil && !errors.Is(err, context.Canceled) {
		p.log.Error("IPVS update failed (retried by the reconciler)", "err", err)
	}
}

// stop waits for the plan in progress, then runs omega (quorum_down of
// every virtual server that had quorum, as keepalived does at stop).
func (p *planner) stop(cfg *config.Config) {
	close(p.quit)
	<-p.done
	if p.scripts != nil && cfg != nil {
		p.scripts.global.Store(&cfg.Global)
	}
	p.lvs.Shutdown(context.Background(), cfg)
}

// quorumScripts runs quorum_up / quorum_down as the configuration's
// script_user, in the background: the planner never waits for a script.
type quorumScripts struct {
	log    *slog.Logger
	global atomic.Pointer[config.GlobalDefs] // of the configuration being planned
}

func (q *quorumScripts) RunScript(ctx context.Context, cmdline, reason string) {
	g := q.global.Load()
	if g == nil {
		g = &config.GlobalDefs{}
	}
	r := &script.Runner{User: g.ScriptUser, Group: g.ScriptGroup, Secure: g.EnableScriptSecurity}
	go func() {
		res := r.Run(context.Background(), cmdline, nil, time.Minute)
		if !res.OK() {
			q.log.Warn("quorum script failed", "script", cmdline, "reason", reason, "exit", res.ExitCode, "timed_out", res.TimedOut, "err", res.Err)
		}
	}()
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
