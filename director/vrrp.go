package director

import (
	"context"
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
	d.masters.hand(nil) // a new manager: nothing is MASTER yet
	// Without a cluster every claim is admitted, as keepalived does; with
	// one, fenced instances ask the fence (fencing.md).
	var gate vrrp.Gate = vrrp.AlwaysAdmit{}
	if d.fence != nil {
		gate = fenceGate{d: d, f: d.fence}
	}
	m, err := vrrp.New(set, vrrp.Options{
		Addresses:      addressFactory(d.log, d.fence, func() *config.Config { return d.current().cfg }),
		Notifier:       d.fifos.vrrpNotifier(d.notifier),
		Gate:           gate,
		ScriptUser:     g.ScriptUser,
		ScriptGroup:    g.ScriptGroup,
		ScriptSecurity: g.EnableScriptSecurity,
		// Counted from the daemon's start: a manager restarted after a
		// failure does not wait again.
		StartupDelay: max(0, g.VRRPStartupDelay-time.Since(d.startedAt)),
		Logger:       d.log.With("subsystem", "vrrp"),
	})
	if err != nil {
		return err
	}
	registered := make(chan struct{})
	go func() {
		defer close(registered)
		d.do(ctx, func(l *loop) { l.vrrpUp(m, cfg) })
	}()
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		d.masters.follow(wctx, m)
	}()
	err = m.Run(ctx)
	stopWatch()
	<-watched
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
// ha_suspend services), from the VRRP manager's published status: it
// follows Watch's coalesced signals, so it never blocks the VRRP loop and
// never misses the latest state.
type masterWatch struct {
	plane *dataplane.Plane // nil with -P
	// onStatus, when set, also gets every status (lvs_sync_daemon); it
	// must not block.
	onStatus func([]vrrp.InstanceStatus)
}

func newMasterWatch(p *dataplane.Plane) *masterWatch { return &masterWatch{plane: p} }

// hand tells the plane the MASTER set of sts (latest wins, never blocks).
func (w *masterWatch) hand(sts []vrrp.InstanceStatus) {
	if w.onStatus != nil {
		w.onStatus(sts)
	}
	if w.plane == nil {
		return
	}
	masters := map[string]bool{}
	for _, st := range sts {
		if st.State == vrrp.StateMaster.String() {
			masters[st.Name] = true
		}
	}
	w.plane.SetMasters(masters)
}

// follow hands on m's MASTER set at every change until ctx ends.
func (w *masterWatch) follow(ctx context.Context, m *vrrp.Manager) {
	ch, stop := m.Watch()
	defer stop()
	w.hand(m.Status())
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			w.hand(m.Status())
		}
	}
}
