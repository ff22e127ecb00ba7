package director

import (
	"context"
	"sync"
	"time"

	"hakeep/config"
	"hakeep/dataplane"
	"hakeep/vrrp"
)

// runVRRP runs a VRRP manager built from the running configuration; a
// restart after a failure builds a new one. The manager is registered with
// the director's loop while it runs, so reloads reach it.
func (d *Director) runVRRP(ctx context.Context) error {
	cfg := d.current().cfg
	if len(cfg.Instances) == 0 {
		d.log.Info("no vrrp_instance configured")
	}
	set, err := vrrpSet(cfg)
	if err != nil {
		return err
	}
	removeStaleVIPs(ctx, cfg, d.log)
	g := &cfg.Global
	if d.notifier == nil {
		d.notifier = &vrrp.ScriptNotifier{Runner: scriptRunner(g), RouterID: dataplane.RouterID(g), Logger: d.log.With("subsystem", "notify")}
		if d.mail != nil {
			d.notifier.Alerter = d.mail
		}
	}
	d.masters.reset()
	// Without a cluster every claim is admitted, as keepalived does; with
	// one, fenced instances ask the fence (fencing.md).
	var gate vrrp.Gate = vrrp.AlwaysAdmit{}
	if d.fence != nil {
		gate = fenceGate{d: d, f: d.fence}
	}
	m, err := vrrp.New(set, vrrp.Options{
		Addresses:      addressFactory(d.log, d.fence, func() *config.Config { return d.current().cfg }),
		Notifier:       d.masters.wrap(d.notifier),
		Gate:           gate,
		ScriptUser:     g.ScriptUser,
		ScriptGroup:    g.ScriptGroup,
		ScriptSecurity: g.EnableScriptSecurity,
		Logger:         d.log.With("subsystem", "vrrp"),
	})
	if err != nil {
		return err
	}
	registered := make(chan struct{})
	go func() {
		defer close(registered)
		d.do(ctx, func(l *loop) { l.vrrpUp(m, cfg) })
	}()
	err = m.Run(ctx)
	<-registered
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	d.do(dctx, func(l *loop) { l.vrrpDown(m) })
	cancel()
	return err
}

// vrrpSet maps cfg to the VRRP manager's instances, creating the VMAC
// interfaces of use_vmac instances first (their adverts and VIPs live there).
func vrrpSet(cfg *config.Config) (*vrrp.Set, error) {
	set, err := vrrp.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := prepareVMACs(cfg, set); err != nil {
		return nil, err
	}
	return set, nil
}

// masterWatch tells the data plane which instances are MASTER (for
// ha_suspend services) from the VRRP notifications. It runs on the VRRP
// event loop, so it only records and hands on: it never blocks.
type masterWatch struct {
	plane *dataplane.Plane // nil with -P

	mu     sync.Mutex
	states map[string]vrrp.State
}

func newMasterWatch(p *dataplane.Plane) *masterWatch {
	return &masterWatch{plane: p, states: map[string]vrrp.State{}}
}

// reset forgets the states of a manager that stopped: nothing is MASTER
// until the new one says so.
func (w *masterWatch) reset() {
	w.mu.Lock()
	clear(w.states)
	w.mu.Unlock()
	w.hand()
}

func (w *masterWatch) notify(e vrrp.Event) {
	if e.Group {
		return
	}
	w.mu.Lock()
	w.states[e.Name] = e.State
	w.mu.Unlock()
	w.hand()
}

func (w *masterWatch) hand() {
	if w.plane == nil {
		return
	}
	w.mu.Lock()
	masters := make(map[string]bool, len(w.states))
	for name, st := range w.states {
		if st == vrrp.StateMaster {
			masters[name] = true
		}
	}
	w.mu.Unlock()
	w.plane.SetMasters(masters) // never blocks
}

// wrap returns a notifier that records states, then notifies next.
func (w *masterWatch) wrap(next *vrrp.ScriptNotifier) vrrp.Notifier {
	return watchingNotifier{w: w, next: next}
}

type watchingNotifier struct {
	w    *masterWatch
	next *vrrp.ScriptNotifier
}

func (n watchingNotifier) Notify(e vrrp.Event) {
	n.w.notify(e)
	n.next.Notify(e)
}

// Close lets the manager wait for the notify scripts at shutdown, as it
// does with a bare ScriptNotifier.
func (n watchingNotifier) Close(ctx context.Context) error { return n.next.Close(ctx) }
