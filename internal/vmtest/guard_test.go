package vmtest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGuestHasIPVS runs in the VM: the kernel must have IPVS with every
// scheduler the product supports, and the guest's ipvsadm must talk to it.
func TestGuestHasIPVS(t *testing.T) {
	if !InVM() {
		t.Skip("runs inside the VM only: go run ./internal/vmtest/cmd/vmtest ./internal/vmtest")
	}
	RequireIPVS(t)
	out, err := exec.Command("ipvsadm", "-Ln").CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm -Ln: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "IP Virtual Server version") {
		t.Fatalf("ipvsadm -Ln: unexpected output %q", out)
	}
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf"} {
		if out, err := exec.Command("ipvsadm", "-A", "-t", "10.0.0.1:80", "-s", s).CombinedOutput(); err != nil {
			t.Errorf("scheduler %s: %v: %s", s, err, out)
		}
		exec.Command("ipvsadm", "-D", "-t", "10.0.0.1:80").Run()
	}
}

func TestAccelAuto(t *testing.T) {
	a, cpu := Accel("tcg")
	if a != "tcg,thread=multi" || cpu != "max" {
		t.Fatalf("Accel(tcg) = %q %q", a, cpu)
	}
	if a, cpu := Accel("kvm"); a != "kvm" || cpu != "host" {
		t.Fatalf("Accel(kvm) = %q %q", a, cpu)
	}
}
