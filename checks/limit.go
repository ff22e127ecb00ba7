package checks

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdReserve is left of the file-descriptor limit for everything else the
// daemon opens (sockets of VRRP, the API, Raft, IPVS netlink, log files).
const fdReserve = 1024

// minConcurrent is the floor of the default bound, whatever the limit.
const minConcurrent = 256

// defaultMaxConcurrent bounds probes in flight by the file descriptors the
// process may open (each probe holds one socket). It is no throughput
// knob: every check should run on its own schedule, and a failing one
// holds its socket for its whole connect_timeout, so 40,000 real servers
// whose network is down need ~20,000 probes in flight at connect_timeout 3
// and delay_before_retry 3. A fixed 4,096 made them queue: each server was
// probed every ~30 s instead of every 6 s, so an outage took minutes to be
// seen (issue 10). Go raises the soft limit to the hard one at start;
// systemd's default hard limit is 524,288; Reload raises a lower one
// (raiseFileLimit).
func defaultMaxConcurrent() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 4096
	}
	return concurrentFor(rl.Cur)
}

// concurrentFor is the bound for a soft file-descriptor limit.
func concurrentFor(nofile uint64) int {
	if nofile <= fdReserve+minConcurrent {
		return minConcurrent
	}
	return int(min(nofile-fdReserve, 1<<20))
}

// raiseFileLimit makes room for a socket per check, as keepalived's
// checker does (set_checker_max_fds: one per checker plus its own): when
// the soft limit is below checks+fdReserve it is raised to that, and the
// hard limit with it where allowed (root). Under a bare init the hard
// limit is the kernel's 4,096: the bound was then 3,072 probes in flight,
// and 40,000 failing checks (8,000 in flight while they retry) queued for
// minutes behind their schedule. It returns the soft limit in force.
//
// It makes the system call itself: syscall.Setrlimit (and x/sys's, which
// calls it) would make child processes (MISC_CHECK, notify scripts)
// inherit the raised soft limit, where Go otherwise gives them the one the
// daemon started with, as keepalived does (set_child_rlimit).
func raiseFileLimit(checks int) uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	want := uint64(checks) + fdReserve
	if rl.Cur == unix.RLIM_INFINITY || rl.Cur >= want {
		return rl.Cur
	}
	next := unix.Rlimit{Cur: want, Max: max(rl.Max, want)}
	if rl.Max == unix.RLIM_INFINITY {
		next.Max = rl.Max
	}
	if setFileLimit(&next) != nil {
		// Not allowed above the hard limit: as far as it goes.
		next = unix.Rlimit{Cur: rl.Max, Max: rl.Max}
		if rl.Cur == rl.Max || setFileLimit(&next) != nil {
			return rl.Cur
		}
	}
	return next.Cur
}

func setFileLimit(rl *unix.Rlimit) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, uintptr(unsafe.Pointer(rl)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
