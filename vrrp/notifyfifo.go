package vrrp

import (
	"strconv"
)

// FifoLine is keepalived's notify_fifo line for e (vrrp_notify.c
// notify_fifo: "%s \"%s\" %s %d\n"): `INSTANCE "VI_1" MASTER 100` or,
// for a sync group, `GROUP "G1" BACKUP 0`. FENCED is written as FAULT, as
// for the generic notify script (see Args): fifo readers written for
// keepalived know only its states.
func (e Event) FifoLine() string {
	st := e.State
	if st == StateFenced {
		st = StateFault
	}
	kind, prio := "INSTANCE", int(e.Priority)
	if e.Group {
		kind, prio = "GROUP", 0
	}
	return kind + ` "` + e.Name + `" ` + st.String() + " " + strconv.Itoa(prio) + "\n"
}

// LineWriter takes one fifo line without blocking
// (notifyfifo.Fifo.WriteLine).
type LineWriter interface {
	WriteLine(line string)
}

// FifoNotifier writes each state change's FifoLine to every writer
// (notify_fifo and vrrp_notify_fifo).
type FifoNotifier struct {
	Writers []LineWriter
}

// Notify writes e's line; the writers never wait for a reader.
func (n FifoNotifier) Notify(e Event) {
	line := e.FifoLine()
	for _, w := range n.Writers {
		w.WriteLine(line)
	}
}

// Notifiers hands each event to several notifiers, in order.
type Notifiers []Notifier

// Notify calls every notifier; each must not block (see Notifier).
func (ns Notifiers) Notify(e Event) {
	for _, n := range ns {
		n.Notify(e)
	}
}
