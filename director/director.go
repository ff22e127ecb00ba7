// Package director wires hakeepd together: it turns the configuration model
// into running subsystems (VRRP, checks + IPVS, cluster, API), applies a new
// configuration (SIGHUP or a pushed version) as a diff, and supervises the
// subsystems. It holds no protocol logic of its own.
//
// One goroutine, the director's loop, owns the running configuration and
// the reload bookkeeping: reloads, committed versions and the VRRP
// manager's (re)starts arrive there as events, and what it knows is
// published as an immutable view that readers (API, metrics, watchdog) load
// without waiting. The loop calls into subsystems (vrrp.Manager.Reload,
// dataplane.Plane.Reload); no subsystem calls back into the director, so
// there is no lock or wait cycle to deadlock on.
package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"hakeep/config"
	"hakeep/consensus"
	"hakeep/dataplane"
	"hakeep/fence"
	"hakeep/internal/owner"
	"hakeep/lvs"
	"hakeep/mail"
	"hakeep/script"
	"hakeep/vrrp"
)

// Options are the daemon-level settings that do not come from the file.
type Options struct {
	ConfigFile string
	ConfigID   string
	// VRRP and Checks select the subsystems (-P runs VRRP only, -C checks
	// and IPVS only).
	VRRP, Checks bool
	// APISocket is the unix socket of the API ("" serves none).
	APISocket string
	// StateDir holds what must survive a restart of the daemon but not a
	// reboot (the IPVS services this director programmed); "" keeps none.
	StateDir string
	// OnReload, when set, hears the outcome of every reload (SIGHUP or
	// committed version) from the director's loop: it must not block.
	OnReload func(ReloadOutcome)
	// OpenIPVS connects to IPVS; nil means the kernel's (tests give an
	// lvs.Memory table).
	OpenIPVS func() (lvs.Client, error)
	Log      *slog.Logger
}

// ReloadOutcome is what the last reload did.
type ReloadOutcome struct {
	// Source is "SIGHUP" or "version N" (a committed cluster version).
	Source string
	At     time.Time
	// Err is why it was refused (the running configuration stayed).
	Err error
	// LastSuccess is when a configuration was last applied (the start
	// counts as one).
	LastSuccess time.Time
}

// applyTimeout bounds one reload: a subsystem that does not take it in
// this time fails it (and the watchdog notices a loop that stays stuck).
const applyTimeout = 30 * time.Second

// Director owns the running configuration and the subsystems built from it.
type Director struct {
	opts Options
	log  *slog.Logger

	loop *owner.Loop[*loop] // runs events on the director's loop
	ran  atomic.Bool
	view atomic.Pointer[view]
	// cfgChanged fires when a published view has another configuration.
	cfgChanged configSignal

	// Set in Run before any subsystem starts, then only read.
	mail     *mail.Client
	notifier *vrrp.ScriptNotifier
	fifos    *notifyFifos // notify_fifo and its kin; nil before Run
	// startedAt is when Run began (vrrp_startup_delay counts from it).
	startedAt time.Time
	masters   *masterWatch
	fence     *fence.Fence // nil without a cluster block
}

// view is what the loop publishes: an immutable snapshot.
type view struct {
	cfg      *config.Config // running configuration (cluster block included)
	version  uint64         // committed cluster version running (0: the file)
	applyErr error          // why the last committed version was not applied
	reload   ReloadOutcome
	vrrp     *vrrp.Manager    // nil with -C, before VRRP runs, or between restarts
	plane    *dataplane.Plane // nil with -P
	node     *consensus.Node  // nil without a cluster block
}

// New checks that cfg can be run; nothing touches the kernel before Run.
func New(opts Options, cfg *config.Config) (*Director, error) {
	if cfg == nil {
		return nil, errors.New("no configuration")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if _, err := vrrp.FromConfig(cfg); err != nil {
		return nil, err
	}
	d := &Director{opts: opts, log: opts.Log, loop: owner.New[*loop](ErrStopped)}
	d.view.Store(&view{cfg: cfg, reload: ReloadOutcome{Source: "start", At: time.Now(), LastSuccess: time.Now()}})
	return d, nil
}

// current is the latest published view; it never blocks.
func (d *Director) current() *view { return d.view.Load() }

// Run starts the subsystems and supervises them until ctx is done; then it
// stops them in order (VRRP last-gasp adverts first, then the rest).
func (d *Director) Run(ctx context.Context) error {
	if !d.ran.CompareAndSwap(false, true) {
		return errors.New("director: Run called twice")
	}
	noHugePages()
	v := *d.current()
	cfg := v.cfg

	if mc, ok := mail.FromConfig(&cfg.Global); ok {
		mc.Logger = d.log.With("subsystem", "mail")
		m, err := mail.New(mc)
		if err != nil {
			return fmt.Errorf("mail alerts: %w", err)
		}
		d.mail = m
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m.Close(cctx)
		}()
	}

	// keepalived runs startup_script before anything else starts, then
	// opens the notify fifos.
	g := &cfg.Global
	runStartStopScript(g, "startup_script", g.StartupScript, g.StartupScriptTimeout, d.log)
	d.startedAt = time.Now()
	d.fifos = openFifos(g, d.log.With("subsystem", "notify_fifo"))
	defer d.fifos.close()

	var subs []Subsystem
	if cfg.Cluster != nil {
		node, err := startCluster(d.opts.ConfigID, cfg, d.log, d.plan)
		if err != nil {
			return err
		}
		defer node.Close()
		v.node = node
		subs = append(subs, Subsystem{Name: "cluster", Run: d.followCluster})
		f, err := newFence(cfg, node, d.log)
		if err != nil {
			return fmt.Errorf("%s: cluster: %w", cfg.Cluster.Pos, err)
		}
		d.fence = f
		// The fence outlives VRRP: the last-gasp releases at shutdown
		// still go through it. It stops after the subsystems.
		fctx, stopFence := context.WithCancel(context.Background())
		fenceDone := make(chan struct{})
		go func() {
			defer close(fenceDone)
			f.Run(fctx)
		}()
		defer func() {
			stopFence()
			<-fenceDone
		}()
	}
	if d.opts.Checks {
		v.plane = d.newPlane(cfg, v.node)
		subs = append(subs, Subsystem{Name: "checks+ipvs", Run: v.plane.Run})
	}
	if d.opts.VRRP {
		d.masters = newMasterWatch(v.plane)
		// Follows reloads that add or remove lvs_sync_daemon; idle
		// without it.
		sd := newSyncDaemon(d.log.With("subsystem", "lvs_sync_daemon"),
			func() *config.LVSSyncDaemon { return d.current().cfg.Global.LVSSyncDaemon }, d.cfgChanged.wait, d.openSyncClient)
		d.masters.onStatus = sd.set
		subs = append(subs, Subsystem{Name: "lvs_sync_daemon", Run: sd.run})
		d.masters.hand(nil) // nothing is MASTER before VRRP says so
		subs = append(subs, Subsystem{Name: "vrrp", Run: d.runVRRP})
	} else if s := cfg.Global.LVSSyncDaemon; s != nil {
		// keepalived's checker-only process runs both daemons then;
		// hakeepd's follows a VRRP instance, so it says it does nothing.
		d.log.Warn("lvs_sync_daemon: not started without VRRP (-C); it follows a vrrp_instance", "pos", s.Pos.String())
	}
	if d.opts.APISocket != "" {
		subs = append(subs, Subsystem{Name: "api", Run: d.serveAPI})
	}
	// Always run: binds only while global_defs has metrics_listen, and
	// follows reloads that add or remove it.
	subs = append(subs, Subsystem{Name: "metrics_listen", Run: d.serveMetrics})
	d.view.Store(&v)

	l := &loop{d: d, v: v}
	loopCtx, stopLoop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		l.run(loopCtx)
	}()
	d.loop.Start()
	Supervise(ctx, d.log, DefaultBackoff, subs...)
	// The subsystems are stopped; only then does the loop stop, so a
	// subsystem's last event is never left waiting.
	stopLoop()
	<-loopDone
	d.loop.Stop()
	if d.notifier != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.notifier.Close(cctx)
		cancel()
	}
	// VRRP has stopped and removed its VIPs: keepalived's shutdown_script
	// runs now, from the configuration in force (a reload may change it).
	sg := &d.current().cfg.Global
	runStartStopScript(sg, "shutdown_script", sg.ShutdownScript, sg.ShutdownScriptTimeout, d.log)
	return nil
}

// newPlane builds the checks + IPVS half.
func (d *Director) newPlane(cfg *config.Config, node *consensus.Node) *dataplane.Plane {
	opts := dataplane.Options{Log: d.log.With("subsystem", "checks+ipvs"), OpenIPVS: d.opts.OpenIPVS}
	if node != nil {
		opts.Cluster = node
	}
	if d.mail != nil {
		opts.Alerter = d.mail
	}
	opts.Fifos = d.fifos.lvsWriters()
	if d.opts.StateDir != "" {
		opts.StateFile = filepath.Join(d.opts.StateDir, lvs.StateFileName)
	}
	return dataplane.New(cfg, opts)
}

// ErrStopped is returned by calls that need the director's loop after it
// stopped (or before Run started it).
var ErrStopped = errors.New("director is not running")

// do runs f on the director's loop and waits for it, or for ctx.
func (d *Director) do(ctx context.Context, f func(*loop)) error { return d.loop.Do(ctx, f) }

// Alive reports whether the director's loop, the VRRP loop and the checks
// + IPVS loop answer before ctx ends: the systemd watchdog's test, so a wedged daemon
// is restarted.
func (d *Director) Alive(ctx context.Context) error {
	if err := d.do(ctx, func(*loop) {}); err != nil {
		return fmt.Errorf("director loop: %w", err)
	}
	if m := d.current().vrrp; m != nil && m.Running() {
		if err := m.Ping(ctx); err != nil && m.Running() {
			return fmt.Errorf("vrrp loop: %w", err)
		}
	}
	if p := d.current().plane; p != nil {
		if err := p.Ping(ctx); err != nil && !errors.Is(err, dataplane.ErrNotRunning) {
			return fmt.Errorf("checks+ipvs loop: %w", err)
		}
	}
	return nil
}

// Reload applies cfg (from SIGHUP) as a diff against the running one. In
// cluster mode with a committed version, the committed configuration stays
// the source of truth: it is re-applied with the file's cluster { } block.
func (d *Director) Reload(ctx context.Context, cfg *config.Config) error {
	v := d.current()
	if v.node != nil && cfg.Cluster != nil {
		// Certificates and gossip keys rotate with SIGHUP whether or not
		// the rest of the file applies.
		if err := v.node.ReloadCredentials(cfg.Cluster); err != nil {
			d.log.Error("cluster credentials not reloaded, keeping the running ones", "err", err)
		} else {
			d.log.Info("cluster credentials reloaded")
		}
	}
	if v.node != nil && v.version > 0 {
		d.log.Warn("cluster configuration is committed: the file's cluster { } block is kept, the rest comes from the cluster (use hactl config push)", "version", v.version)
		cur, ok := v.node.FSM().Current()
		if !ok || cur.Version != v.version {
			return d.submit(ctx, change{source: "SIGHUP", parseErr: fmt.Errorf("committed version %d is not known here", v.version)})
		}
		local := cfg.Cluster
		committed, err := d.parseCommitted(cur, local)
		return d.submit(ctx, change{source: "SIGHUP", cfg: committed, parseErr: err, version: cur.Version})
	}
	return d.submit(ctx, change{source: "SIGHUP", cfg: cfg})
}

// Refused records a reload whose file could not be used (it did not
// parse): nothing changes, but the outcome is visible like any other.
func (d *Director) Refused(ctx context.Context, source string, err error) {
	d.submit(ctx, change{source: source, parseErr: err})
}

// change is one configuration to apply, from the file or the cluster.
type change struct {
	source   string
	cfg      *config.Config
	parseErr error  // the text could not be used: recorded, nothing applied
	version  uint64 // committed version (0: the file)
	// committed: a new version from the cluster (the running version
	// moves on success); SIGHUP re-applying the committed text is not.
	committed bool
}

// submit hands a change to the loop and waits for its outcome.
func (d *Director) submit(ctx context.Context, c change) error {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout+5*time.Second)
	defer cancel()
	var err error
	if derr := d.do(ctx, func(l *loop) { err = l.apply(c) }); derr != nil {
		return derr
	}
	return err
}

// scriptRunner is the global_defs script_user under enable_script_security.
func scriptRunner(g *config.GlobalDefs) *script.Runner {
	return &script.Runner{User: g.ScriptUser, Group: g.ScriptGroup, Secure: g.EnableScriptSecurity}
}
