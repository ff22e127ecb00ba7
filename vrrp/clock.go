package vrrp

import "time"

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

// NewTimer returns a precise timer (timerfd on Linux), falling back to a
// Go timer.
func (RealClock) NewTimer(d time.Duration) Timer {
	if t, err := newFDTimer(d); err == nil {
		return t
	}
	return realTimer{time.NewTimer(d)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }
func (r realTimer) Close()                { r.t.Stop() }
