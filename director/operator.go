package director

import (
	"context"
	"log/slog"
	"time"

	"hakeep/config"
	"hakeep/dataplane"
	"hakeep/internal/notifyfifo"
	"hakeep/vrrp"
)

// notifyFifos are global_defs' notify_fifo, vrrp_notify_fifo and
// lvs_notify_fifo, open for the daemon's life (keepalived opens them at
// start; a reload that changes them takes effect at the next start).
type notifyFifos struct {
	all, vrrp, lvs *notifyfifo.Fifo
}

// openFifos opens the configured fifos. A fifo that cannot be opened is
// logged and left out, as keepalived does: the daemon still runs.
func openFifos(g *config.GlobalDefs, log *slog.Logger) *notifyFifos {
	open := func(kind string, c *config.NotifyFifo) *notifyfifo.Fifo {
		if c == nil || c.Path == "" {
			return nil
		}
		f, err := notifyfifo.Open(notifyfifo.Options{Path: c.Path, User: c.User, Group: c.Group, Script: c.Script,
			Runner: scriptRunner(g), Log: log.With("fifo", kind)})
		if err != nil {
			log.Error("notify fifo not opened", "keyword", kind, "pos", c.Pos.String(), "err", err)
			return nil
		}
		log.Info("notify fifo open", "keyword", kind, "path", c.Path)
		return f
	}
	return &notifyFifos{
		all:  open("notify_fifo", g.NotifyFifo),
		vrrp: open("vrrp_notify_fifo", g.VRRPNotifyFifo),
		lvs:  open("lvs_notify_fifo", g.LVSNotifyFifo),
	}
}

// vrrpNotifier adds the VRRP lines' fifos to n.
func (f *notifyFifos) vrrpNotifier(n vrrp.Notifier) vrrp.Notifier {
	if f == nil {
		return n
	}
	var ws []vrrp.LineWriter
	for _, x := range []*notifyfifo.Fifo{f.all, f.vrrp} {
		if x != nil {
			ws = append(ws, x)
		}
	}
	if len(ws) == 0 {
		return n
	}
	return vrrp.Notifiers{n, vrrp.FifoNotifier{Writers: ws}}
}

// lvsWriters are the fifos that get VS/RS lines.
func (f *notifyFifos) lvsWriters() []dataplane.LineWriter {
	if f == nil {
		return nil
	}
	var ws []dataplane.LineWriter
	for _, x := range []*notifyfifo.Fifo{f.all, f.lvs} {
		if x != nil {
			ws = append(ws, x)
		}
	}
	return ws
}

// any says whether a fifo is open.
func (f *notifyFifos) any() bool {
	return f != nil && (f.all != nil || f.vrrp != nil || f.lvs != nil)
}

// dropped counts the lines no fifo took (full pipe).
func (f *notifyFifos) dropped() uint64 {
	if f == nil {
		return 0
	}
	var n uint64
	for _, x := range []*notifyfifo.Fifo{f.all, f.vrrp, f.lvs} {
		if x != nil {
			n += x.Dropped()
		}
	}
	return n
}

func (f *notifyFifos) close() {
	if f == nil {
		return
	}
	for _, x := range []*notifyfifo.Fifo{f.all, f.vrrp, f.lvs} {
		if x != nil {
			x.Close()
		}
	}
}

// runStartStopScript runs startup_script (before VRRP starts) or
// shutdown_script (after the VIPs are gone) as script_user, waiting at
// most its timeout. A failure is logged and the daemon goes on, as
// keepalived's startup_shutdown_script_completed does.
func runStartStopScript(g *config.GlobalDefs, kind, cmd string, timeout time.Duration, log *slog.Logger) {
	if cmd == "" {
		return
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	log.Info("running "+kind, "script", cmd, "timeout", timeout)
	res := scriptRunner(g).Run(context.Background(), cmd, nil, timeout)
	if !res.OK() {
		log.Error(kind+" failed", "script", cmd, "exit", res.ExitCode, "timed_out", res.TimedOut, "err", res.Err)
	}
}

// warnStartOnly logs the global_defs settings a reload changed that only
// take effect at the next start.
func warnStartOnly(old, cur *config.GlobalDefs, log *slog.Logger) {
	same := func(a, b *config.NotifyFifo) bool {
		if a == nil || b == nil {
			return a == b
		}
		return a.Path == b.Path && a.User == b.User && a.Group == b.Group && a.Script == b.Script
	}
	for _, c := range []struct {
		kw      string
		changed bool
	}{
		{"notify_fifo", !same(old.NotifyFifo, cur.NotifyFifo)},
		{"vrrp_notify_fifo", !same(old.VRRPNotifyFifo, cur.VRRPNotifyFifo)},
		{"lvs_notify_fifo", !same(old.LVSNotifyFifo, cur.LVSNotifyFifo)},
		{"startup_script", old.StartupScript != cur.StartupScript || old.StartupScriptTimeout != cur.StartupScriptTimeout},
		{"vrrp_startup_delay", old.VRRPStartupDelay != cur.VRRPStartupDelay},
	} {
		if c.changed {
			log.Warn(c.kw+" changed by the reload: it takes effect when hakeepd next starts", "keyword", c.kw)
		}
	}
}

// NotifyFifoDropped counts the notify fifo lines dropped because a fifo
// was full (no reader keeping up); for metrics.
func (d *Director) NotifyFifoDropped() uint64 { return d.fifos.dropped() }
