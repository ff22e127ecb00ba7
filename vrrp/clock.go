package vrrp

import (
	"math"
	"sync/atomic"
	"time"
)

// Clock is the time source of the manager's event loop; tests use a fake.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the loop uses. Reset discards a pending
// expiry (Go 1.23 timer semantics).
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
	// Close releases the timer for good.
	Close()
}

// RealClock is the system clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer returns the event loop's timer: a timerfd and a Go runtime
// timer armed together, the first to fire wins (dualTimer).
func (RealClock) NewTimer(d time.Duration) Timer { return newDualTimer(d) }

// dualTimer fires through two paths at once and delivers whichever comes
// first; the loop checks its deadlines, so a second or stale expiry is
// only a spurious wakeup.
//
//   - The timerfd is microsecond-precise while the process is idle, where
//     a runtime timer can be up to 1 ms late.
//   - The runtime timer is on time while the process is busy: it is run by
//     the scheduler of a P between two goroutines and readies its waiter
//     in that P's next slot, ahead of the run queue. The timerfd's reader
//     returns from read(2) without a P and waits in the global run queue
//     behind every runnable goroutine: with thousands of health checks
//     completing at once that was measured at up to 190 ms (issue 10).
//
// The runtime timer is armed runtimeSlack after the timerfd: the
// netpoller sleeps until the runtime's earliest timer rounded down to the
// millisecond, so a runtime timer due with the timerfd woke an idle
// process twice per expiry (up to 1 ms early, then again). Armed a little
// later it is reset by the loop before it is due, and the timerfd alone
// wakes an idle process; a busy one still gets the runtime timer's
// expiry 2 ms after the deadline at worst.
type dualTimer struct {
	c  chan time.Time
	gt *time.Timer
	fd *fdTimer // nil where no timerfd could be made
	// due is the armed expiry (since base, monotonic): an expiry of an
	// earlier arming that comes in before it is dropped, so the timer
	// never fires early.
	base time.Time
	due  atomic.Int64
}

// runtimeSlack is how much later than the timerfd the runtime timer is
// armed (see dualTimer).
const runtimeSlack = 2 * time.Millisecond

func newDualTimer(d time.Duration) *dualTimer {
	t := &dualTimer{c: make(chan time.Time, 1), base: time.Now()}
	t.due.Store(int64(time.Since(t.base) + d))
	if fd, err := newFDTimer(t.fire); err == nil {
		t.fd = fd
		t.fd.arm(max(d, 1))
	}
	t.gt = time.AfterFunc(t.runtimeDelay(d), t.fire)
	return t
}

// runtimeDelay is when the runtime timer fires for an expiry after d.
func (t *dualTimer) runtimeDelay(d time.Duration) time.Duration {
	if t.fd == nil {
		return d
	}
	return d + runtimeSlack
}

func (t *dualTimer) fire() {
	if time.Since(t.base) < time.Duration(t.due.Load()) {
		return // a stale expiry
	}
	select {
	case t.c <- time.Now():
	default:
	}
}

func (t *dualTimer) C() <-chan time.Time { return t.c }

// Reset re-arms both paths and discards an expiry not yet received.
func (t *dualTimer) Reset(d time.Duration) {
	t.due.Store(int64(time.Since(t.base) + d))
	select {
	case <-t.c:
	default:
	}
	t.gt.Reset(t.runtimeDelay(d))
	if t.fd != nil {
		t.fd.arm(max(d, 1)) // 0 would disarm
	}
}

func (t *dualTimer) Stop() {
	t.due.Store(math.MaxInt64)
	t.gt.Stop()
	if t.fd != nil {
		t.fd.arm(0)
	}
	select {
	case <-t.c:
	default:
	}
}

func (t *dualTimer) Close() {
	t.gt.Stop()
	if t.fd != nil {
		t.fd.close()
	}
}
