package director

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"hakeep/config"
	"hakeep/lvs"
	"hakeep/vrrp"
)

// syncDaemon keeps the kernel's IPVS connection sync daemon in step with
// the VRRP instance lvs_sync_daemon names, as keepalived does
// (vrrp.c: ipvs_syncd_master on entering MASTER, ipvs_syncd_backup on
// leaving it): the master daemon while the instance is MASTER, the backup
// daemon otherwise, none without the keyword. It runs on its own
// goroutine; VRRP's status reaches it through a one-slot signal, so the
// VRRP loop never waits for the kernel.
type syncDaemon struct {
	log  *slog.Logger
	conf func() *config.LVSSyncDaemon // the running configuration's
	// changed returns a channel closed when the configuration changes
	// (taken before conf is read).
	changed func() <-chan struct{}
	open    func() (lvs.SyncDaemonClient, func(), error)

	status atomic.Pointer[[]vrrp.InstanceStatus]
	kick   chan struct{}

	// Owned by run.
	client lvs.SyncDaemonClient
	close  func()
	have   *lvs.SyncDaemon // what this director started
	// lastErr is the last error logged: a failure retried every
	// syncRetry is logged once, not each time.
	lastErr string
}

func (s *syncDaemon) logErr(msg string, err error, args ...any) {
	if e := msg + ": " + err.Error(); e != s.lastErr {
		s.lastErr = e
		s.log.Error(msg, append(args, "err", err)...)
	}
}

func newSyncDaemon(log *slog.Logger, conf func() *config.LVSSyncDaemon, changed func() <-chan struct{}, open func() (lvs.SyncDaemonClient, func(), error)) *syncDaemon {
	return &syncDaemon{log: log, conf: conf, changed: changed, open: open, kick: make(chan struct{}, 1)}
}

// set hands the latest VRRP status; it never blocks.
func (s *syncDaemon) set(sts []vrrp.InstanceStatus) {
	s.status.Store(&sts)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// syncRetry is how soon a failed start or stop is tried again.
const syncRetry = time.Second

// run applies the wanted daemon until ctx ends, then stops it. It wakes
// for a VRRP status, a configuration change (a reload changes the daemon
// without a VRRP transition) or, after a failure, the retry: an idle
// director does not poll.
func (s *syncDaemon) run(ctx context.Context) error {
	retry := time.NewTimer(syncRetry)
	retry.Stop()
	defer retry.Stop()
	defer s.stop()
	for {
		changed := s.changed()
		if !s.apply() {
			retry.Reset(syncRetry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-changed:
		case <-retry.C:
		}
		retry.Stop()
	}
}

// want is the daemon the configuration and the instance's state ask for.
func (s *syncDaemon) want() *lvs.SyncDaemon {
	c := s.conf()
	if c == nil {
		return nil
	}
	d := &lvs.SyncDaemon{State: lvs.SyncBackup, Interface: c.Interface, SyncID: uint32(c.SyncID),
		MaxLen: uint16(c.MaxLen), Port: uint16(c.Port), TTL: uint8(c.TTL), Group: c.Group}
	if p := s.status.Load(); p != nil {
		for _, st := range *p {
			if st.Name == c.Instance && st.State == vrrp.StateMaster.String() {
				d.State = lvs.SyncMaster
			}
		}
	}
	return d
}

// apply starts, stops or restarts the daemon to match want; false means
// it failed and is to be tried again.
func (s *syncDaemon) apply() bool {
	w := s.want()
	if w == nil && s.have == nil || w != nil && s.have != nil && *w == *s.have {
		return true
	}
	if s.client == nil {
		c, closeC, err := s.open()
		if err != nil {
			s.logErr("lvs_sync_daemon: IPVS not available", err)
			return false
		}
		s.client, s.close = c, closeC
	}
	if s.have != nil {
		// keepalived stops the other state's daemon before starting one;
		// a changed interface or id needs a restart as well.
		if err := s.client.StopSyncDaemon(s.have.State); err != nil {
			s.logErr("lvs_sync_daemon: stop failed", err, "daemon", s.have.String())
			return false
		}
		s.log.Info("IPVS sync daemon stopped", "daemon", s.have.String())
		s.have = nil
	}
	if w == nil {
		return true
	}
	if err := s.client.StartSyncDaemon(*w); err != nil {
		// A daemon of this state left by an earlier run (crash, kill -9):
		// take it over with this configuration.
		s.client.StopSyncDaemon(w.State)
		if err = s.client.StartSyncDaemon(*w); err != nil {
			s.logErr("lvs_sync_daemon: start failed; retrying", err, "daemon", w.String())
			return false
		}
	}
	s.log.Info("IPVS sync daemon started", "daemon", w.String())
	s.have, s.lastErr = w, ""
	return true
}

// stop stops the daemon this director started (VRRP is stopping).
func (s *syncDaemon) stop() {
	if s.close != nil {
		defer s.close()
	}
	if s.have == nil || s.client == nil {
		return
	}
	if err := s.client.StopSyncDaemon(s.have.State); err != nil {
		s.log.Error("lvs_sync_daemon: stop failed", "daemon", s.have.String(), "err", err)
	} else {
		s.log.Info("IPVS sync daemon stopped", "daemon", s.have.String())
	}
	s.have = nil
}

// openSyncClient is the director's IPVS client for sync daemons: the one
// tests inject (OpenIPVS) when it has them, else the kernel's.
func (d *Director) openSyncClient() (lvs.SyncDaemonClient, func(), error) {
	if d.opts.OpenIPVS != nil {
		c, err := d.opts.OpenIPVS()
		if err != nil {
			return nil, nil, err
		}
		if sc, ok := c.(lvs.SyncDaemonClient); ok {
			return sc, nil, nil // shared with the data plane: not ours to close
		}
	}
	if err := lvs.CheckIPVS(); err != nil {
		return nil, nil, err
	}
	k, err := lvs.NewKernel("", 1)
	if err != nil {
		return nil, nil, err
	}
	return k, k.Close, nil
}
