package checks

import "golang.org/x/sys/unix"

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
// systemd's default hard limit is 524,288.
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
