// Package director wires hakeepd together: it turns the configuration model
// into running subsystems (VRRP, health checks, IPVS, cluster, API), applies
// a new configuration as a diff (SIGHUP or a pushed version) and supervises
// the subsystems. It holds no protocol logic of its own.
package director

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"hakeep/api"
	"hakeep/checks"
	"hakeep/config"
	"hakeep/consensus"
	"hakeep/mail"
	"hakeep/metrics"
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
	Log       *slog.Logger
}

// Director owns the running configuration and the subsystems built from it.
type Director struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	cfg      *config.Config // running configuration (cluster block included)
	version  uint64         // committed cluster version running (0: the file)
	applyErr error          // why the last committed version was not applied

	vrrp     *vrrp.Manager // nil until Run, or with -C / no instances
	notifier *vrrp.ScriptNotifier
	mail     *mail.Client
	data     *dataPlane
	node     *consensus.Node
	runCtx   context.Context
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
	return &Director{opts: opts, log: opts.Log, cfg: cfg}, nil
}

// Run starts the subsystems and supervises them until ctx is done; then it
// stops them in order (VRRP last-gasp adverts first, then the rest).
func (d *Director) Run(ctx context.Context) error {
	d.mu.Lock()
	cfg := d.cfg
	d.runCtx = ctx
	d.mu.Unlock()

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

	var subs []Subsystem
	if cfg.Cluster != nil {
		node, err := startCluster(d, cfg)
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.node = node
		d.mu.Unlock()
		defer node.Close()
		subs = append(subs, Subsystem{Name: "cluster", Run: d.followCluster})
	}
	if d.opts.VRRP {
		subs = append(subs, Subsystem{Name: "vrrp", Run: d.runVRRP})
	}
	if d.opts.Checks {
		d.data = newDataPlane(d)
		subs = append(subs, Subsystem{Name: "checks+ipvs", Run: d.data.run})
	}
	if d.opts.APISocket != "" {
		subs = append(subs, Subsystem{Name: "api", Run: d.serveAPI})
	}
	Supervise(ctx, d.log, DefaultBackoff, subs...)
	if d.notifier != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.notifier.Close(cctx)
		cancel()
	}
	return nil
}

// scriptRunner is the global_defs script_user under enable_script_security.
func scriptRunner(g *config.GlobalDefs) *script.Runner {
	return &script.Runner{User: g.ScriptUser, Group: g.ScriptGroup, Secure: g.EnableScriptSecurity}
}

// runVRRP runs the VRRP manager; a restart after a failure starts from the
// configuration running now.
func (d *Director) runVRRP(ctx context.Context) error {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	if len(cfg.Instances) == 0 {
		d.log.Info("no vrrp_instance configured")
	}
	set, err := d.vrrpSet(cfg)
	if err != nil {
		return err
	}
	removeStaleVIPs(ctx, cfg, d.log)
	g := &cfg.Global
	if d.notifier == nil {
		d.notifier = &vrrp.ScriptNotifier{Runner: scriptRunner(g), RouterID: routerID(g), Logger: d.log.With("subsystem", "notify")}
		if d.mail != nil {
			d.notifier.Alerter = d.mail
		}
	}
	m, err := vrrp.New(set, vrrp.Options{
		Addresses:      addressFactory(d.log),
		Notifier:       d.notifier,
		ScriptUser:     g.ScriptUser,
		ScriptGroup:    g.ScriptGroup,
		ScriptSecurity: g.EnableScriptSecurity,
		Logger:         d.log.With("subsystem", "vrrp"),
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.vrrp = m
	d.mu.Unlock()
	return m.Run(ctx)
}

// vrrpSet maps cfg to the VRRP manager's instances, creating the VMAC
// interfaces of use_vmac instances first (their adverts and VIPs live there).
func (d *Director) vrrpSet(cfg *config.Config) (*vrrp.Set, error) {
	set, err := vrrp.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := prepareVMACs(cfg, set); err != nil {
		return nil, err
	}
	return set, nil
}

func routerID(g *config.GlobalDefs) string {
	if g.RouterID != "" {
		return g.RouterID
	}
	h, _ := os.Hostname()
	return h
}

// Reload applies cfg (from SIGHUP) as a diff against the running one. In
// cluster mode with a committed version, the committed configuration stays
// the source of truth and is re-applied instead.
func (d *Director) Reload(cfg *config.Config) error {
	d.mu.Lock()
	node, version := d.node, d.version
	d.mu.Unlock()
	if node != nil && version > 0 {
		d.log.Warn("cluster configuration is committed: the file's cluster { } block is kept, the rest comes from the cluster (use hactl config push)", "version", version)
		return d.applyCommitted(version, cfg.Cluster)
	}
	return d.apply(cfg)
}

// preflight checks what the kernel must provide before anything changes:
// every instance's interface exists (a director missing one keeps its last
// good configuration).
func preflight(cfg *config.Config, vrrpOn bool) error {
	if !vrrpOn {
		return nil
	}
	var errs []error
	for _, i := range cfg.Instances {
		if _, err := netlink.LinkByName(i.Interface); err != nil {
			errs = append(errs, fmt.Errorf("%s: vrrp_instance %s: interface %s: %w", i.Pos, i.Name, i.Interface, err))
		}
	}
	return errors.Join(errs...)
}

// apply switches every subsystem to cfg. Everything that can fail is
// checked before the first change, so a refused configuration changes
// nothing.
func (d *Director) apply(cfg *config.Config) error {
	if err := preflight(cfg, d.opts.VRRP); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var set *vrrp.Set
	if d.vrrp != nil {
		var err error
		if set, err = d.vrrpSet(cfg); err != nil {
			return err
		}
	}
	var specs []checks.Spec
	if d.data != nil {
		var warnings []string
		specs, warnings = checks.FromConfig(cfg)
		for _, w := range warnings {
			d.log.Warn("checks", "msg", w)
		}
	}
	if set != nil {
		ctx := d.runCtx
		if ctx == nil {
			ctx = context.Background()
		}
		if err := d.vrrp.Reload(ctx, set); err != nil {
			return fmt.Errorf("vrrp reload: %w", err)
		}
	}
	d.cfg = cfg
	if d.data != nil {
		if err := d.data.reload(cfg, specs); err != nil {
			return fmt.Errorf("checks reload: %w", err)
		}
	}
	return nil
}

// serveAPI serves the API on the root-only unix socket until ctx is done.
func (d *Director) serveAPI(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(d.opts.APISocket), 0o755); err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	d.mu.Lock()
	node := d.node
	d.mu.Unlock()
	cl := api.Standalone(d.opts.ConfigID)
	if node != nil {
		cl = node.API()
	}
	srv := api.NewServer(api.Compose(localView{d}, cl), d.log.With("subsystem", "api"))
	if err := srv.Handle("GET /metrics", metrics.Handler(metrics.NewRegistry(d.metricsSources()), d.log.With("subsystem", "metrics"))); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if err := srv.ServeUnix(d.opts.APISocket); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	defer srv.Close()
	d.mu.Lock()
	c := d.cfg.Cluster
	d.mu.Unlock()
	if c != nil && c.APIListen != "" {
		conf, err := consensus.LoadTLS(c.TLSCert, c.TLSKey, c.TLSCA)
		if err != nil {
			return fmt.Errorf("api_listen %s: %w", c.APIListen, err)
		}
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		conf.ClientCAs = conf.RootCAs
		if _, err := srv.ServeTLS(c.APIListen, conf); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}
