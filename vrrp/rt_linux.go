package vrrp

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SetRealtime puts every thread of this process under SCHED_RR at prio
// (1..99), as keepalived's vrrp_rt_priority does for its VRRP process; prio
// 0 returns them to SCHED_OTHER. Threads created later inherit the policy
// of the thread that creates them, so calling it early in main covers the
// Go runtime's threads. Processes started afterwards inherit it too: start
// scripts under a Runner only if that is wanted, or reset the policy.
//
// hakeepd does not call it by default (issue 10). keepalived's
// vrrp_rt_priority makes only its VRRP process real-time, and bounds it
// with RLIMIT_RTTIME (10 ms between blocking calls); here every thread of
// the daemon would be real-time, the health checks and the data plane's
// planner included (one plan of 2,000 services ran 245 ms on a CPU at a
// stretch), which could starve the rest of the machine and would trip
// such a limit. Measured in the overload lab it did not help against the
// daemon's own load (the GOMAXPROCS headroom does, headroom.go); it did
// cut the worst gap under two foreign busy loops (205 -> 124 ms at
// advert_int 0.1). It is safe where VRRP runs alone (hakeepd -P), which is
// where vrrp_rt_priority should apply it.
func SetRealtime(prio int) error {
	if prio < 0 || prio > 99 {
		return fmt.Errorf("real-time priority %d not 0..99", prio)
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_RR, Priority: uint32(prio)}
	if prio == 0 {
		attr.Policy, attr.Priority = 0, 0 // SCHED_OTHER
	}
	// Twice: a thread created during the first pass by a not yet converted
	// thread is caught by the second.
	for pass := 0; pass < 2; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("list threads: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetAttr(tid, attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("set scheduling policy of thread %d: %w", tid, err)
			}
		}
	}
	return nil
}
