// Command hakeepd is the hakeep director daemon: keepalived's configuration
// and flags, VRRP, health checks and IPVS, and (with a cluster { } block)
// the Raft cluster. It never forks; run it under systemd or in a terminal.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"hakeep/config"
	"hakeep/director"
	"hakeep/internal/version"
)

// Exit codes of -t, as keepalived's: clean, warnings only, errors.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitWarnings = 5
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "hakeepd: %v\n", err)
		return exitUsage
	}
	// --help, --version, --signum, -T, -s, -u, -m (flags.go, compat.go).
	if code, done := preRun(o, stdout, stderr); done {
		return code
	}
	if o.configID == "" {
		o.configID, _ = os.Hostname()
	}
	if o.configTest {
		oneShotGC()
	} else {
		daemonGC()
	}
	cfg, diags := config.Load(o.configFile, config.Options{ConfigID: o.configID})
	if o.allConfig {
		diags = missingIncludesAreErrors(diags)
	}
	switch {
	case o.configTest:
		diagOut, closeDiag, err := configTestOutput(o, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "hakeepd: %v\n", err)
			return exitError
		}
		defer closeDiag()
		for _, d := range diags {
			fmt.Fprintln(diagOut, d.String())
		}
		if diags.HasErrors() {
			return exitError
		}
		fmt.Fprint(stdout, cfg.Summary())
		if len(diags) > 0 {
			return exitWarnings
		}
		return exitOK
	case o.dumpConf:
		for _, d := range diags {
			fmt.Fprintln(stderr, d.String())
		}
		if diags.HasErrors() {
			return exitError
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cfg); err != nil {
			fmt.Fprintf(stderr, "hakeepd: %v\n", err)
			return exitError
		}
		return exitOK
	}
	return daemon(o, cfg, diags, stderr)
}

// oneShotGC sets the collector for -t, which loads the file once, prints
// its summary and exits: almost everything a load allocates is the
// configuration itself (2,000 x 20 with HTTP_GETs: 38 of 48 MB), so
// collecting during the load frees little (the same peak RSS, 58 MB,
// with and without) and costs a sixth of -t's CPU (0.27 -> 0.22 s,
// BENCHMARKS.md "## config"). The memory limit still collects a file far
// larger than any real one (the parser's bound is 5,000,000 lines). Not
// for -d: encoding the model as JSON makes garbage several times its size
// (peak RSS 376 MB with the collector off, 208 MB with it).
func oneShotGC() {
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(512 << 20)
}

// daemonGOGC is the daemon's collector target when GOGC is not in the
// environment. Its heap is mostly long-lived tables (the configuration,
// the checks, the desired IPVS table), which Go's default of 100 lets
// the heap grow to twice: 40,000 HTTP_GETs timing out sat at 120 MB RSS
// over ~48 MB live. At 40 the outage stays near 1.4x of what is live, for
// +12% CPU in the window in one same-build pair, within this host's ~10%
// run-to-run noise (BENCHMARKS.md, "What is left for the goal").
const daemonGOGC = 40

func daemonGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(daemonGOGC)
	}
}

// daemon runs until SIGTERM/SIGINT. SIGHUP re-reads the file: an invalid
// file is reported and the running configuration is kept.
func daemon(o options, cfg *config.Config, diags config.Diagnostics, stderr io.Writer) int {
	log, closeLog, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "hakeepd: %v\n", err)
		return exitError
	}
	defer closeLog()
	diags.Log(log)
	if diags.HasErrors() {
		log.Error("configuration has errors, not starting", "file", o.configFile)
		return exitError
	}
	if err := writePidFile(o.pidFile); err != nil {
		log.Error("cannot start", "err", err)
		return exitError
	}
	defer removePidFile(o.pidFile)

	d, err := director.New(director.Options{
		ConfigFile: o.configFile,
		ConfigID:   o.configID,
		VRRP:       !o.checkOnly,
		Checks:     !o.vrrpOnly,
		APISocket:  o.apiSocket,
		StateDir:   o.stateDir,
		// SIGHUP's own outcome goes out with its READY=1 (notifiedReload);
		// a committed cluster version only updates the status line.
		OnReload: func(r director.ReloadOutcome) {
			if r.Source != "SIGHUP" {
				go sdNotify(statusLine(r))
			}
		},
		Log: log,
	}, cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitError
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, sigJSON, sigStatsClear)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	log.Info("hakeepd started", "version", version.String(), "config", o.configFile, "config_id", o.configID, "pid", os.Getpid())
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("cannot tell systemd we are ready", "err", err)
	}
	go runWatchdog(ctx, func() bool { return answers(d) })
	// SIGHUPs are handled one at a time off the signal loop, so SIGTERM is
	// heard even during a long reload; a SIGHUP that arrives meanwhile
	// becomes one more reload.
	hup := make(chan struct{}, 1)
	go func() {
		// The configuration last applied: a reload reuses its unchanged
		// virtual_server blocks (config.Options.Reuse).
		running := cfg
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				notifiedReload(sdNotify, func() error { return reload(ctx, o, d, log, &running) })
			}
		}
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("stopped", "err", err)
				return exitError
			}
			return exitOK
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				select {
				case hup <- struct{}{}:
				default: // one is pending already
				}
			case syscall.SIGUSR1, syscall.SIGUSR2:
				dumpState(d, log, s == syscall.SIGUSR2)
			case sigJSON: // keepalived --signum=JSON
				dumpState(d, log, false)
			case sigStatsClear: // keepalived --signum=STATS_CLEAR
				log.Info("STATS_CLEAR: nothing to clear, hakeepd's counters are Prometheus counters and only grow")
			default:
				log.Info("stopping", "signal", s.String())
				sdNotify("STOPPING=1")
				cancel()
			}
		}
	}
}

// answers reports whether the director's event loops answer in time (the
// systemd watchdog's health test): a wedged loop stops the pets, and
// systemd restarts the daemon.
func answers(d *director.Director) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.Alive(ctx) == nil
}

// statusLine is systemd's STATUS= for a reload outcome (systemctl status
// shows it).
func statusLine(r director.ReloadOutcome) string {
	if r.Err != nil {
		return fmt.Sprintf("STATUS=last reload (%s at %s) refused, running configuration kept: %v", r.Source, r.At.Format(time.DateTime), r.Err)
	}
	return fmt.Sprintf("STATUS=configuration applied (%s at %s)", r.Source, r.At.Format(time.DateTime))
}

// reload re-reads the file for SIGHUP and applies it; the error says why
// it was refused (errRefused: the file has errors) or failed to apply.
// running is the configuration last applied, which the parse may reuse
// parts of; it becomes cfg once cfg is applied.
func reload(ctx context.Context, o options, d *director.Director, log *slog.Logger, running **config.Config) error {
	t0 := time.Now()
	cfg, err := reloadConfig(o, log, *running)
	if err != nil {
		d.Refused(ctx, "SIGHUP", err)
		return fmt.Errorf("%w: %v", errRefused, err)
	}
	log.Info("configuration read", "file", o.configFile, "took", time.Since(t0).Round(time.Millisecond),
		"virtual_servers", len(cfg.VirtualServers), "unchanged_blocks_reused", cfg.Reused())
	if err := d.Reload(ctx, cfg); err != nil {
		log.Error("reload failed, keeping the running configuration", "err", err)
		return err
	}
	*running = cfg
	log.Info("reload complete", "file", o.configFile)
	return nil
}

// reloadConfig reads the file again for SIGHUP and logs what it found. It
// returns an error when the file must not be applied: any error, a truncated
// file (a block left open) among them.
func reloadConfig(o options, log *slog.Logger, running *config.Config) (*config.Config, error) {
	if o.configTest {
		oneShotGC()
	}
	cfg, diags := config.Load(o.configFile, config.Options{ConfigID: o.configID, Reuse: running})
	diags.Log(log)
	if err := diags.Err(); err != nil {
		log.Error("reload refused: configuration has errors, keeping the running one", "file", o.configFile)
		return nil, err
	}
	return cfg, nil
}

// dumpState logs the daemon's state (SIGUSR1) or counters (SIGUSR2) as
// JSON, keepalived's /tmp/keepalived.data and .stats in one log line.
func dumpState(d *director.Director, log *slog.Logger, stats bool) {
	b, err := json.Marshal(d.Status())
	if err != nil {
		log.Error("state dump", "err", err)
		return
	}
	kind := "state"
	if stats {
		kind = "stats"
	}
	log.Info("dump", "kind", kind, "data", string(b))
}
