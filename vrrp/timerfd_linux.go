package vrrp

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdTimer is the precise half of the real clock's timer: a Linux timerfd
// watched by the runtime's netpoller. The Go runtime's own timers wake an
// idle process with millisecond resolution (the netpoller's epoll timeout),
// so they fire up to 1 ms late; a readable timerfd ends that epoll wait at
// once (a high-resolution kernel timer: microsecond wakeups). Its reader,
// though, is made runnable by whichever thread polls the network and
// queues behind every runnable goroutine when the process is busy, which
// is where the runtime timer is the faster one (dualTimer).
//
// Why not a goroutine blocked in read(2): a goroutine in a blocking
// system call keeps its P until the runtime's monitor thread takes it
// back, and entering the call wakes that thread, which then polls every
// 20 us to 10 ms until it does: ~30 wakeups per advert, most of an idle
// daemon's CPU (issue 13: with one VRRP master, 40 wakeups and 590 us of
// CPU a second before, 8 and 210 us after, on the host; test/ipvs
// TestDaemonIdle). Parked in the netpoller the reader costs no thread at
// all between expiries. Under load the two were not told apart by the
// overload lab (test/overload: the run-to-run spread on a loaded machine
// was larger than any difference).
//
// Its two system calls, the read of an expiry and the arming, are made
// without telling the scheduler (RawSyscall): neither can block (the fd is
// non-blocking), and a call the scheduler is told of wakes the monitor
// thread for the same 20 us-10 ms polling.
type fdTimer struct {
	f    *os.File
	rc   syscall.RawConn
	fire func()
}

func newFDTimer(fire func()) (*fdTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	// A non-blocking fd: os.NewFile registers it with the netpoller.
	f := os.NewFile(uintptr(fd), "vrrp-timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &fdTimer{f: f, rc: rc, fire: fire}
	go t.run()
	return t, nil
}

func (t *fdTimer) run() {
	var buf [8]byte
	for {
		// Read calls the function again each time the netpoller says the
		// fd is readable, until it returns true; an error is a close.
		err := t.rc.Read(func(fd uintptr) bool {
			_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			return e != unix.EAGAIN && e != unix.EINTR
		})
		if err != nil {
			return
		}
		t.fire()
	}
}

// arm sets the timer to fire once after d; 0 disarms it. Through the raw
// connection, so an arm racing close never touches a reused fd.
func (t *fdTimer) arm(d time.Duration) {
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	t.rc.Control(func(fd uintptr) {
		unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&its)), 0, 0, 0)
	})
}

// close ends the reader: closing a file the netpoller watches wakes a
// blocked Read with an error.
func (t *fdTimer) close() { t.f.Close() }
