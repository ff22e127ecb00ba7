package vrrp

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// fdTimer is the precise half of the real clock's timer: a Linux timerfd
// read by a goroutine blocked in read(2). The Go runtime's own timers wake
// an idle process through the netpoller with millisecond resolution, so
// they fire up to 1 ms late; a timerfd is a high-resolution kernel timer
// (microsecond wakeups). Its reader, though, comes back from read(2)
// without a P and queues behind every runnable goroutine when the process
// is busy, which is where the runtime timer is the faster one (dualTimer).
type fdTimer struct {
	fd     int
	fire   func()
	closed atomic.Bool
}

func newFDTimer(fire func()) (*fdTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	t := &fdTimer{fd: fd, fire: fire}
	go t.run()
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
		t.fire()
	}
}

// arm sets the timer to fire once after d; 0 disarms it.
func (t *fdTimer) arm(d time.Duration) {
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	unix.TimerfdSettime(t.fd, 0, &its, nil)
}

// close ends the reader: fire at once so read(2) returns, then it closes
// the fd (closing under a blocked read would not wake it).
func (t *fdTimer) close() {
	t.closed.Store(true)
	t.arm(1)
}
