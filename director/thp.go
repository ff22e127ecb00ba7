package director

import "golang.org/x/sys/unix"

// noHugePages turns transparent huge pages off for the daemon's memory
// (prctl PR_SET_THP_DISABLE). With THP "always" (Debian's default) the
// kernel backs the Go heap with 2 MB pages and khugepaged fills them back
// in, so the 4 KB pages the runtime returns after a configuration load
// stay resident: in the VM, 30 of hakeepd's 66 MB anonymous memory were
// huge pages after loading 2,000 x 20 (live heap 33 MB). The runtime's
// GODEBUG=disablethp=1 does the same for the heap but only from the
// environment. Best effort: an old kernel without the option changes
// nothing.
func noHugePages() {
	unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)
}
