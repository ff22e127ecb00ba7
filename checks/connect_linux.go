package checks

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// connector runs the TCP handshakes of every TCP-based check (TCP_CHECK,
// HTTP_GET, SSL_GET, SMTP_CHECK) on one goroutine: non-blocking connects
// watched by an epoll set, with a heap of connect_timeout deadlines. A
// probe waiting for a handshake costs a socket and ~150 bytes, no
// goroutine.
//
// Why: when the real servers' network is down every probe waits its whole
// connect_timeout, so 40,000 servers at connect_timeout 3 and
// delay_before_retry 3 keep ~20,000 probes in flight. As goroutines (one
// per probe, each in net.Dial) that was 86 MB of stacks for every GC cycle
// to scan, waves of thousands of goroutines made runnable when their
// deadlines expired together, and GC mark phases of 500-700 ms: the
// scheduler and GC latency that delayed the VRRP adverts of the same
// process by up to 500 ms (issue 10). Here a failed handshake is a few
// system calls on this goroutine; only an established connection gets a
// goroutine (a worker) for the rest of its check.
type connector struct {
	epfd int
	wake int // eventfd: new requests or close

	mu     sync.Mutex
	queue  []*connReq
	closed bool

	// Owned by run.
	pending []*connReq // by fd (small integers: a slice, not a map)
	byDue   connHeap
	seq     uint32
	ops     int       // handshakes started and ended
	ran     time.Time // when the loop last slept or yielded
	done    chan struct{}
	// now is the time as of the last wait, batch of starts or clockEvery
	// handshakes: one clock read for many handshakes (in the VM a read is
	// a system call to the emulated HPET, ~10 µs; it was 4 reads a
	// check). done may read it as the time its handshake ended.
	now time.Time
}

// The connector lets other goroutines run (runtime.Gosched) once it has
// run for yieldAfter since it last waited or yielded, looking at the
// clock every clockEvery handshakes started or ended. Timeouts come in
// waves (probes dispatched together expire together: ~19,000 at once in
// the issue 10 lab), and handling a wave took the connector's P for
// 230 ms at a stretch, during which the VRRP event loop, runnable, found
// no P (runtime trace). Its socket calls are raw (rawsys_linux.go), so to
// the scheduler it is simply running: past 10 ms sysmon preempts it, and
// each preemption keeps sysmon polling at its shortest period for a
// while. A yield is not free either: it wakes an idle P's thread to look
// for work, with clock reads and futex calls on both threads. Yielding
// every 8 handshakes once past 64 in a row was, in the VM at 2,000 checks
// a second, ~490 yields a second and most of the checker's futex calls
// and clock reads (perf; BENCHMARKS.md, "## checks", seventh session).
// Sixteen handshakes are ~0.2 ms on hardware and ~6 ms in the VM's
// emulated CPU, so the connector yields before sysmon has to preempt it.
const (
	clockEvery = 16
	yieldAfter = 5 * time.Millisecond // half sysmon's preemption
)

// connReq is one handshake to make. done is called exactly once, on the
// connector's goroutine, with the connected socket (its owner closes it)
// or an error; it must not block.
type connReq struct {
	remote  unix.Sockaddr
	local   unix.Sockaddr // nil: any
	timeout time.Duration // connect_timeout, from the connect
	done    func(fd int, err error)
	// deadline is set when the connect is made: connect_timeout counts
	// from there, as keepalived's does, not from when the check was due.
	// A connector running late (an emulated CPU, thousands of failing
	// checks due at once) then never fails a handshake it has not yet
	// waited for. done may read it (it runs on the connector).
	deadline time.Time
	// closes: done closes a connected socket at once, never duplicating
	// it (TCP_CHECK), so the close takes it out of the epoll set.
	closes bool

	fd    int
	seq   uint32
	index int // in byDue; -1 when out
}

// errConnectTimeout is the error of a handshake that did not finish by its
// deadline.
var errConnectTimeout = errors.New("timed out")

func newConnector() (*connector, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll add: %w", err)
	}
	c := &connector{epfd: epfd, wake: wake, done: make(chan struct{})}
	go c.run()
	return c, nil
}

// start queues a handshake; false once the connector is closed (done is
// then never called).
func (c *connector) start(r *connReq) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	// One wakeup for a run of starts (the scheduler dispatches every
	// due check at once): the connector takes the whole queue.
	first := len(c.queue) == 0
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	if first {
		c.poke()
	}
	return true
}

func (c *connector) poke() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(c.wake, one[:])
}

// close fails every handshake still waiting (done gets net.ErrClosed) and
// stops the goroutine; it returns once that is done.
func (c *connector) close() {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	if !already {
		c.poke()
	}
	<-c.done
}

func (c *connector) run() {
	defer close(c.done)
	events := make([]unix.EpollEvent, 256)
	for {
		timeout := -1
		if len(c.byDue) > 0 {
			d := c.byDue[0].deadline.Sub(c.now) // now: read by expire, just before
			timeout = int((d + time.Millisecond - 1) / time.Millisecond)
			timeout = max(timeout, 0)
		}
		_, woken, err := c.wait(events, timeout)
		if err != nil {
			// Cannot happen with a valid epoll fd; fail everything rather
			// than spin.
			c.shutdown(err)
			return
		}
		if woken {
			var buf [8]byte
			unix.Read(c.wake, buf[:])
			c.mu.Lock()
			q, closed := c.queue, c.closed
			c.queue = nil
			c.mu.Unlock()
			if closed {
				for _, r := range q {
					r.done(-1, net.ErrClosed)
				}
				c.shutdown(net.ErrClosed)
				return
			}
			c.now = time.Now() // the ends above may have taken a while
			for _, r := range q {
				c.begin(r)
			}
		}
		c.expire(events)
	}
}

// wait waits up to timeout ms (-1: no limit, 0: not at all) for events
// and ends the handshakes they report: n events, woken if the eventfd was
// among them.
func (c *connector) wait(events []unix.EpollEvent, timeout int) (n int, woken bool, err error) {
	n, err = unix.EpollWait(c.epfd, events, timeout)
	c.now = time.Now()
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("epoll wait: %w", err)
	}
	if timeout != 0 && (n == 0 || n == 1 && int(events[0].Fd) == c.wake) {
		// It slept until its timeout or a poke, not merely picked up
		// handshakes already done: the P was free meanwhile.
		c.ran = c.now
	}
	for _, ev := range events[:n] {
		if int(ev.Fd) == c.wake {
			woken = true
			continue
		}
		var r *connReq
		if int(ev.Fd) < len(c.pending) {
			r = c.pending[ev.Fd]
		}
		if r == nil || r.seq != uint32(ev.Pad) {
			continue
		}
		// The kernel flags EPOLLERR whenever the socket holds an error
		// (tcp_poll), so without it (or EPOLLHUP) the handshake is done:
		// no getsockopt for each healthy check.
		if ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			c.finish(r, nil)
			continue
		}
		soerr, gerr := rawSoError(r.fd)
		switch {
		case gerr != nil:
			c.finish(r, os.NewSyscallError("getsockopt", gerr))
		case soerr != 0:
			c.finish(r, os.NewSyscallError("connect", unix.Errno(soerr)))
		default:
			c.finish(r, nil)
		}
	}
	return n, woken, nil
}

// expire fails the handshakes past their deadline. First it reads every
// event already waiting: a handshake that completed while this goroutine
// was busy (a batch of starts, more events than one wait returns, an
// emulated CPU) is not timed out for it. In the VM at 2,000 checks a
// second, reading 256 events a wait and then judging every deadline
// failed a third of the healthy checks as timed out (perf: closes without
// a getsockopt), each a retry and a real server marked down.
func (c *connector) expire(events []unix.EpollEvent) {
	if len(c.byDue) == 0 {
		return
	}
	c.now = time.Now()
	now := c.now
	if c.byDue[0].deadline.After(now) {
		return
	}
	// The eventfd, if ready, stays ready (it is read only by run).
	for {
		n, _, err := c.wait(events, 0)
		if err != nil || n < len(events) {
			break
		}
	}
	// Judged as of before the events were read: what ended meanwhile
	// ended in time.
	for len(c.byDue) > 0 && !c.byDue[0].deadline.After(now) {
		c.finish(c.byDue[0], errConnectTimeout)
	}
}

// step counts a handshake started or ended; every clockEvery it reads
// the clock, and yields if the loop has run for yieldAfter.
func (c *connector) step() {
	if c.ops++; c.ops%clockEvery != 0 {
		return
	}
	if c.now = time.Now(); c.now.Sub(c.ran) >= yieldAfter {
		runtime.Gosched()
		c.now = time.Now()
		c.ran = c.now
	}
}

// begin opens the socket and starts the handshake.
func (c *connector) begin(r *connReq) {
	c.step()
	family := unix.AF_INET
	if _, ok := r.remote.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := rawSocket(family)
	if err != nil {
		r.done(-1, os.NewSyscallError("socket", err))
		return
	}
	if r.local != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, r.local); err != nil {
			rawClose(fd)
			r.done(-1, os.NewSyscallError("bind", err))
			return
		}
	}
	r.deadline = c.now.Add(r.timeout)
	err = rawConnect(fd, r.remote)
	if err == nil {
		r.done(fd, nil) // loopback can complete at once
		return
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		rawClose(fd)
		r.done(-1, os.NewSyscallError("connect", err))
		return
	}
	c.seq++
	r.fd, r.seq = fd, c.seq
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLERR | unix.EPOLLHUP, Fd: int32(fd), Pad: int32(r.seq)}
	if err := rawEpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		rawClose(fd)
		r.done(-1, os.NewSyscallError("epoll_ctl", err))
		return
	}
	if fd >= len(c.pending) {
		c.pending = append(c.pending, make([]*connReq, fd+1-len(c.pending))...)
	}
	c.pending[fd] = r
	heap.Push(&c.byDue, r)
}

// finish ends a handshake: the socket goes to done on success and is
// closed otherwise.
func (c *connector) finish(r *connReq, err error) {
	c.step()
	c.pending[r.fd] = nil
	if r.index >= 0 {
		heap.Remove(&c.byDue, r.index)
	}
	if err != nil {
		// Closing the socket (never duplicated) takes it out of the
		// epoll set: no EPOLL_CTL_DEL, one system call less for each
		// of the handshakes that time out when real servers are gone.
		rawClose(r.fd)
		r.done(-1, err)
		return
	}
	// The owner may duplicate the socket (net.FileConn), which would keep
	// it in the set: take it out first, unless the owner only closes it
	// (one system call less per healthy TCP_CHECK).
	if !r.closes {
		rawEpollCtl(c.epfd, unix.EPOLL_CTL_DEL, r.fd, nil) // DEL ignores the event (Linux >= 2.6.9)
	}
	r.done(r.fd, nil)
}

func (c *connector) shutdown(err error) {
	for len(c.byDue) > 0 {
		c.finish(c.byDue[0], err)
	}
	unix.Close(c.wake)
	unix.Close(c.epfd)
}

// connHeap orders handshakes by deadline.
type connHeap []*connReq

func (h connHeap) Len() int           { return len(h) }
func (h connHeap) Less(a, b int) bool { return h[a].deadline.Before(h[b].deadline) }
func (h connHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index, h[b].index = a, b
}
func (h *connHeap) Push(x any) {
	r := x.(*connReq)
	r.index = len(*h)
	*h = append(*h, r)
}
func (h *connHeap) Pop() any {
	old := *h
	n := len(old)
	r := old[n-1]
	old[n-1] = nil
	r.index = -1
	*h = old[:n-1]
	return r
}
