package ipvs

import (
	"errors"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"hakeep/internal/vmtest"
	"hakeep/vip"
)

// TestVIPKernelNeedsOnlyRtnetlink: the address manager talks rtnetlink
// only, so it must open on a kernel where other netlink families (XFRM,
// netfilter) are not loaded and cannot be autoloaded, as in the vmtest
// guest, a locked-down host (kernel.modules_disabled) or a minimal kernel.
// Otherwise no VRRP instance starts and the VIP never appears
// (TestDaemonEndToEnd).
func TestVIPKernelNeedsOnlyRtnetlink(t *testing.T) {
	vmtest.RequireIPVS(t)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_XFRM)
	if err == nil {
		unix.Close(fd)
		t.Log("NETLINK_XFRM is available in this kernel: the test cannot show the failure here")
	} else if !errors.Is(err, unix.EPROTONOSUPPORT) {
		t.Logf("NETLINK_XFRM socket: %v", err)
	}
	_, closeFn, err := vip.NewKernel(netns.None())
	if err != nil {
		t.Fatalf("vip.NewKernel without the XFRM netlink family: %v", err)
	}
	closeFn()
}
