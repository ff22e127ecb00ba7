// Package vrrp speaks VRRP v2 (RFC 3768) and v3 (RFC 5798) as keepalived
// does: byte-exact packets, raw sockets, and the state machine with
// keepalived's extras (skew, preempt_delay, priority 0 on stop, v3 interval
// adoption, tracking, sync groups, notify scripts). It does not touch
// addresses: VIPs go through an AddressSet (the vip package).
//
// Layout: packet.go is the codec; machine.go the per-instance state
// machine, driven by explicit times so tables test every transition;
// manager.go runs all instances on one event loop (timers, sync groups,
// gate answers, tracking) with everything slow - address changes, scripts,
// notifications, socket reads - on other goroutines, so an advert is never
// late because of them (keepalived #2066); socket_linux.go the raw sockets.
//
// keepalived's behaviours kept (checked against Debian's 2.2.7 in a
// namespace lab): `state MASTER` starts like BACKUP and waits
// Master_Down_Interval (only priority 255 starts as MASTER); a master that
// hears a lower priority sends an advert at once; equal priorities go to
// the higher primary address; v3 backups adopt the master's interval, v2
// drops a different interval; skew is truncated to centiseconds in v3;
// preempt_delay counts from startup and from first seeing a lower master.
//
// The Gate is the fencing seam (fencing.md). When an instance's
// Master_Down timer fires it stays BACKUP (Status shows gate "pending") and
// calls Gate.Admit, which returns at once with a channel. The first value
// decides: nil -> MASTER; an error -> FENCED, asked again after another
// Master_Down_Interval. A later value (or close) revokes: one priority-0
// advert, VIPs removed, FENCED. The claim's context is cancelled when the
// instance withdraws it, and Release is called when an admitted instance
// leaves MASTER. AlwaysAdmit is plain keepalived behaviour. Notify scripts
// see FENCED as keepalived's FAULT (notify.go): notify_fenced runs if set,
// else notify_fault, and the generic notify script gets FAULT.
//
// The timer path waits on nothing else (issue 10). Status reads a view the
// loop publishes after each change (never a round trip through the loop);
// Watch signals changes without blocking; notifications go through a
// bounded queue to their own goroutine, so a stuck Notifier delays no
// advert; the loop's timer is a timerfd and a runtime timer armed together
// (clock.go: the runtime timer wins when the process is busy, the timerfd
// when it is idle); multicast adverts leave as link-layer frames that need
// no entry in the kernel's neighbour table (link_linux.go), which health
// checks to a dead on-link network can fill for the whole host.
//
// Wiring: set, _ := FromConfig(cfg); m, _ := New(set, Options{Addresses:
// factory, Notifier: &ScriptNotifier{...}}); go m.Run(ctx); m.Reload(ctx,
// newSet) on SIGHUP; m.Status() for the API and m.Watch() for whoever
// follows state changes; m.Ping(ctx) for a watchdog. Cancelling ctx stops
// like keepalived on SIGTERM.
package vrrp
