package vrrp

// SameRun reports whether a reload from a to b keeps the instance running
// (state and VIPs kept, soft settings updated in place) rather than
// restarting it: what `hactl config push --dry-run` tells the operator.
func SameRun(a, b *InstanceSpec) bool { return sameRun(a, b) }
