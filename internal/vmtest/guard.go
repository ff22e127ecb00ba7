// Package vmtest boots a throw-away qemu VM running Debian's cloud kernel
// (which has IPVS as modules) and runs compiled Go test binaries inside it,
// so IPVS code is tested against a real kernel on hosts whose own kernel
// has no IPVS. It also provides the guard that IPVS tests call to skip when
// they are not in such a kernel. It does not know anything about IPVS
// itself beyond loading the modules.
package vmtest

import (
	"os"
	"testing"

	"github.com/vishvananda/netlink"
)

// EnvInVM is set to "1" in the guest's environment.
const EnvInVM = "IPVS_VM"

// InVM reports whether this process runs inside the vmtest guest.
func InVM() bool { return os.Getenv(EnvInVM) == "1" }

// HasIPVS reports whether the running kernel has the IPVS generic-netlink
// family (module ip_vs loaded or built in).
func HasIPVS() bool {
	f, err := netlink.GenlFamilyGet("IPVS")
	return err == nil && f != nil && f.ID != 0
}

// RequireIPVS skips the test unless it runs as root on a kernel with IPVS.
// The host kernel usually has none: the tests then run through the VM.
func RequireIPVS(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root and kernel IPVS: run make test-ipvs (boots a VM)")
	}
	if !HasIPVS() {
		t.Skip("needs kernel IPVS: run make test-ipvs (boots a VM)")
	}
}
