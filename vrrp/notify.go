package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"hakeep/script"
)

// Event is a state change to notify about.
type Event struct {
	// Group is true for a vrrp_sync_group event ("GROUP name STATE").
	Group    bool
	Name     string
	State    State
	Priority uint8
	Scripts  NotifySpec
	// SMTPAlert asks for an e-mail through the Alerter.
	SMTPAlert bool
}

// Args are keepalived's arguments to the generic notify script:
// "INSTANCE VI_1 MASTER 100" or "GROUP G1 MASTER". FENCED is passed as
// FAULT: scripts written for keepalived know only MASTER, BACKUP, FAULT
// and STOP, and FAULT is the one that means "this node must not hold the
// VIPs".
func (e Event) Args() []string {
	st := e.State
	if st == StateFenced {
		st = StateFault
	}
	if e.Group {
		return []string{"GROUP", e.Name, st.String()}
	}
	return []string{"INSTANCE", e.Name, st.String(), strconv.Itoa(int(e.Priority))}
}

// Notifier receives state changes. Notify must not block: it is called on
// the VRRP event loop.
type Notifier interface {
	Notify(e Event)
}

// Alerter sends an e-mail alert (smtp_alert); the mail package implements
// it. Alert must not block.
type Alerter interface {
	Alert(subject, body string)
}

// ScriptNotifier runs notify scripts with keepalived's conventions: the
// state's own script (notify_master ...) first, then the generic notify
// script with the event's arguments. Each instance or group has its own
// queue, so its scripts run in order and never block the state machine.
//
// FENCED (hakeep's: the quorum gate refused or revoked MASTER) runs
// notify_fenced instead of notify_fault when it is set, else notify_fault,
// so keepalived scripts that give up the service on FAULT keep doing so;
// the generic notify script gets FAULT as its state word (see Args).
type ScriptNotifier struct {
	Runner  *script.Runner
	Alerter Alerter // optional
	// RouterID prefixes e-mail subjects as keepalived does.
	RouterID string
	Timeout  time.Duration // per script; 0 means 60 s
	Logger   *slog.Logger

	mu     sync.Mutex
	queues map[string]chan Event
	wg     sync.WaitGroup
}

const notifyQueueLen = 64

// Notify queues the event on its instance's (or group's) queue.
func (n *ScriptNotifier) Notify(e Event) {
	key := "i:" + e.Name
	if e.Group {
		key = "g:" + e.Name
	}
	n.mu.Lock()
	if n.queues == nil {
		n.queues = map[string]chan Event{}
	}
	q, ok := n.queues[key]
	if !ok {
		q = make(chan Event, notifyQueueLen)
		n.queues[key] = q
		n.wg.Add(1)
		go n.worker(q)
	}
	n.mu.Unlock()
	select {
	case q <- e:
	default:
		n.log().Warn("notify queue full, event dropped", "name", e.Name, "state", e.State.String())
	}
}

func (n *ScriptNotifier) log() *slog.Logger {
	if n.Logger != nil {
		return n.Logger
	}
	return slog.Default()
}

func (n *ScriptNotifier) worker(q chan Event) {
	defer n.wg.Done()
	for e := range q {
		n.run(e)
	}
}

func (n *ScriptNotifier) run(e Event) {
	var specific string
	switch e.State {
	case StateMaster:
		specific = e.Scripts.Master
	case StateBackup:
		specific = e.Scripts.Backup
	case StateFault:
		specific = e.Scripts.Fault
	case StateStop:
		specific = e.Scripts.Stop
	case StateFenced:
		// Instead of, not besides, notify_fault: one script per state, so
		// a fenced node does not run two handlers for one change.
		specific = e.Scripts.Fenced
		if specific == "" {
			specific = e.Scripts.Fault
		}
	}
	timeout := n.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	for _, s := range []struct {
		cmd  string
		args []string
	}{{specific, nil}, {e.Scripts.Any, e.Args()}} {
		if s.cmd == "" || n.Runner == nil {
			continue
		}
		res := n.Runner.Run(context.Background(), s.cmd, s.args, timeout)
		if !res.OK() {
			n.log().Warn("notify script failed", "name", e.Name, "state", e.State.String(), "script", s.cmd,
				"exit", res.ExitCode, "timed_out", res.TimedOut, "err", res.Err)
		}
	}
	if e.SMTPAlert && n.Alerter != nil {
		n.Alerter.Alert(alertText(n.RouterID, e))
	}
}

// alertText is keepalived's alert subject and body.
func alertText(routerID string, e Event) (string, string) {
	kind := "VRRP Instance"
	if e.Group {
		kind = "VRRP Group"
	}
	subject := fmt.Sprintf("[%s] %s %s - Entering %s state", routerID, kind, e.Name, e.State)
	var body string
	switch e.State {
	case StateMaster:
		body = "=> VRRP Instance is now owning VRRP VIPs <="
	case StateBackup:
		body = "=> VRRP Instance is nolonger owning VRRP VIPs <="
	case StateFault:
		body = "=> VRRP Instance is in FAULT state <="
	case StateFenced:
		// The mail names the real state: the reader is a person, not a
		// keepalived script.
		body = "=> VRRP Instance is FENCED: the cluster refused it MASTER, it holds no VIPs <="
	default:
		body = fmt.Sprintf("=> VRRP Instance is now %s <=", e.State)
	}
	if e.Group {
		body = fmt.Sprintf("=> All VRRP group instances are now in %s state <=", e.State)
	}
	return subject, body
}

// Close waits (until ctx ends) for queued scripts to finish; no Notify may
// follow.
func (n *ScriptNotifier) Close(ctx context.Context) error {
	n.mu.Lock()
	for k, q := range n.queues {
		close(q)
		delete(n.queues, k)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for notify scripts: %w", ctx.Err())
	}
}
