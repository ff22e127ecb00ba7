package vrrp

import (
	"os"
	"runtime"
	"sync"
)

// schedHeadroom is how many Ps the process gets beyond the runtime's
// default when a manager runs, and minProcs the fewest it gets.
const (
	schedHeadroom = 2
	minProcs      = 8
)

var headroomOnce sync.Once

// ensureHeadroom raises GOMAXPROCS by schedHeadroom, once per process,
// unless the GOMAXPROCS environment variable set it.
//
// Why (issue 10): the event loop needs a P the moment its timer fires. Go
// has no goroutine priorities, so with as many Ps as cores, two goroutines
// busy at once (the data plane planning a 2,000-service table, a GC mark
// worker, the checker handling a wave of timeouts) leave the loop
// runnable but waiting; the runtime trace showed it waiting 245 ms that
// way. With Ps to spare the loop gets one at once and its thread competes
// for the CPU in the kernel, where a thread that mostly sleeps is run
// within a millisecond or two of waking. Measured in the overload lab
// (20,000 failing checks, 2 cores): advert p99 / max 116-119 / 120-134 ms
// at advert_int 0.1 with GOMAXPROCS 2, 101-102 / 113 ms with 4.
//
// Why at least 8: on a small machine the daemon has more goroutines that
// can be busy at once than default + 2 Ps: a reload's parse, the data
// plane's apply and planner, the checks manager, the connector, an API
// read, and the GC's dedicated mark worker (a quarter of the Ps, held for
// the whole mark phase). Under a SIGHUP storm on 2 cores (test/overload)
// the loop waited 83 ms for a P with 4 (a GC worker, the data plane and
// the checks manager on the others) and its adverts were 299 ms apart at
// advert_int 0.1; with 8, 127 ms at most in the same storm.
func ensureHeadroom() {
	headroomOnce.Do(func() {
		if os.Getenv("GOMAXPROCS") != "" {
			return // the operator's choice
		}
		runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0)+schedHeadroom, minProcs))
	})
}
