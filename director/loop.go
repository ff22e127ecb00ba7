package director

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"

	"hakeep/config"
	"hakeep/vrrp"
)

// loop is the director's own state, owned by one goroutine (run). Every
// change to it is an event on Director.events; after each, the loop
// publishes a fresh view.
//
// The fence (fencing.md) plugs in here: the loop will own the vrrp.Gate,
// hand it to each VRRP manager it registers (runVRRP) and feed it the
// cluster's ownership records as events, like the configuration.
type loop struct {
	d *Director
	v view
	// vrrpStale: the VRRP manager was registered while a reload ran, or
	// was not running yet, so it may run an older configuration; the loop
	// re-applies the running one shortly.
	vrrpStale bool
}

// resyncVRRPAfter is how soon a stale VRRP manager is brought up to date.
const resyncVRRPAfter = 500 * time.Millisecond

func (l *loop) run(ctx context.Context) {
	var retry *time.Timer
	var retryC <-chan time.Time
	for {
		if l.vrrpStale && retryC == nil {
			retry = time.NewTimer(resyncVRRPAfter)
			retryC = retry.C
		}
		select {
		case <-ctx.Done():
			if retry != nil {
				retry.Stop()
			}
			return
		case f := <-l.d.loop.Events():
			f(l)
		case <-retryC:
			retryC = nil
			l.syncVRRP()
		}
		l.publish()
	}
}

func (l *loop) publish() {
	v := l.v
	old := l.d.view.Swap(&v)
	if old == nil || old.cfg != v.cfg {
		l.d.cfgChanged.fire()
	}
}

// apply runs one configuration change and records its outcome. A refused
// change leaves everything as it was.
func (l *loop) apply(c change) error {
	err := c.parseErr
	if err == nil {
		err = l.applyConfig(c.cfg)
	}
	now := time.Now()
	if c.committed {
		if err == nil {
			l.v.version, l.v.applyErr = c.version, nil
		} else {
			l.v.applyErr = fmt.Errorf("version %d: %w", c.version, err)
		}
	}
	out := ReloadOutcome{Source: c.source, At: now, Err: err, LastSuccess: l.v.reload.LastSuccess}
	if err == nil {
		out.LastSuccess = now
	}
	l.v.reload = out
	if f := l.d.opts.OnReload; f != nil {
		f(out)
	}
	return err
}

// applyConfig switches every subsystem to cfg. What can be checked before
// the first change is checked first, so a refused configuration changes
// nothing.
func (l *loop) applyConfig(cfg *config.Config) error {
	if err := preflight(cfg, l.d.opts.VRRP); err != nil {
		return err
	}
	var set *vrrp.Set
	if l.v.vrrp != nil {
		var err error
		if set, err = vrrpSet(cfg); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	if set != nil {
		if !l.v.vrrp.Running() {
			// Starting (or restarting) right now: it is brought up to
			// date once it runs.
			l.vrrpStale = true
		} else if err := l.v.vrrp.Reload(ctx, set); err != nil {
			return fmt.Errorf("vrrp reload: %w", err)
		}
	}
	warnStartOnly(&l.v.cfg.Global, &cfg.Global, l.d.log)
	l.v.cfg = cfg
	if p := l.v.plane; p != nil {
		if err := p.Reload(ctx, cfg); err != nil {
			return fmt.Errorf("checks reload: %w", err)
		}
	}
	return nil
}

// vrrpUp registers a VRRP manager that runs from cfg.
func (l *loop) vrrpUp(m *vrrp.Manager, cfg *config.Config) {
	l.v.vrrp = m
	if cfg != l.v.cfg {
		l.vrrpStale = true
	}
}

// vrrpDown forgets a manager that stopped.
func (l *loop) vrrpDown(m *vrrp.Manager) {
	if l.v.vrrp == m {
		l.v.vrrp = nil
		l.vrrpStale = false
	}
}

// syncVRRP re-applies the running configuration to a stale VRRP manager.
func (l *loop) syncVRRP() {
	m := l.v.vrrp
	if m == nil {
		l.vrrpStale = false
		return
	}
	if !m.Running() {
		return // still starting: try again
	}
	set, err := vrrpSet(l.v.cfg)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		err = m.Reload(ctx, set)
		cancel()
	}
	if err != nil {
		l.d.log.Error("cannot bring the restarted VRRP manager to the running configuration", "err", err)
		return
	}
	l.vrrpStale = false
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
