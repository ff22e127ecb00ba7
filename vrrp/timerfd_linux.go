package vrrp

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// fdTimer is a Timer on a Linux timerfd. The Go runtime's own timers wake
// through the netpoller with millisecond resolution, so they fire up to
// 1 ms late; adverts and Master_Down must be on time to well under that, so
// the event loop's timer is a timerfd read by a goroutine blocked in read(2)
// (high-resolution kernel timer, microsecond wakeups).
type fdTimer struct {
	fd     int
	c      chan time.Time
	closed atomic.Bool
}

func newFDTimer(d time.Duration) (*fdTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	t := &fdTimer{fd: fd, c: make(chan time.Time, 1)}
	go t.run()
	t.Reset(d)
	return t, nil
}

func (t *fdTimer) run() {
	var buf [8]byte
	for {
		_, err := unix.Read(t.fd, buf[:])
		if t.closed.Load() {
			unix.Close(t.fd)
			return
		}
		if err != nil {
			continue // EINTR
		}
		select {
		case t.c <- time.Now():
		default:
		}
	}
}

func (t *fdTimer) C() <-chan time.Time { return t.c }

func (t *fdTimer) arm(d time.Duration) {
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	unix.TimerfdSettime(t.fd, 0, &its, nil)
}

// Reset re-arms the timer and discards an expiry not yet received. A stale
// expiry racing with Reset is harmless: the loop checks deadlines.
func (t *fdTimer) Reset(d time.Duration) {
	select {
	case <-t.c:
	default:
	}
	if d <= 0 {
		d = 1 // 0 would disarm
	}
	t.arm(d)
}

func (t *fdTimer) Stop() {
	t.arm(0)
	select {
	case <-t.c:
	default:
	}
}

// Close ends the reader: fire at once so read(2) returns, then it closes
// the fd (closing under a blocked read would not wake it).
func (t *fdTimer) Close() {
	t.closed.Store(true)
	t.arm(1)
}
