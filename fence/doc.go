// Package fence is the quorum gate of fenced VRRP instances (fencing.md):
// an instance may own its VIPs only while this director holds the
// instance's ownership record in the cluster's replicated state, under a
// lease it renews through the log. It implements vrrp.Gate and guards the
// instance's address sets so that no VIP is written to the kernel outside
// the lease, and every VIP it writes carries a kernel lifetime that ends
// with the lease even if hakeepd is paused, hung or killed.
//
// It does not run VRRP (the vrrp package decides who wants to be master)
// and it does not replicate anything itself: it talks to the cluster
// through the small Cluster interface, which the director implements over
// consensus.Node and tests implement in memory. The lease logic (core.go)
// is driven by explicit times with its side effects behind an interface,
// like vrrp's machine.
package fence
