package lvs

import (
	"strings"
	"testing"
	"time"
)

var timeoutSteps = []struct {
	name    string
	set     Timeouts
	want    Timeouts
	ipvsadm string // ipvsadm -L --timeout
}{
	{"all three", Timeouts{TCP: 901 * time.Second, TCPFin: 121 * time.Second, UDP: 301 * time.Second},
		Timeouts{TCP: 901 * time.Second, TCPFin: 121 * time.Second, UDP: 301 * time.Second}, "Timeout (tcp tcpfin udp): 901 121 301"},
	// keepalived's "lvs_timeouts udp 77": the others stay.
	{"zero keeps", Timeouts{UDP: 77 * time.Second},
		Timeouts{TCP: 901 * time.Second, TCPFin: 121 * time.Second, UDP: 77 * time.Second}, "Timeout (tcp tcpfin udp): 901 121 77"},
}

// TestMemoryTimeouts: the in-memory table keeps timeouts as the kernel
// does (TestKernelTimeouts checks the kernel itself in the VM).
func TestMemoryTimeouts(t *testing.T) {
	m := NewMemory()
	if got, _ := m.Timeouts(); got != memoryDefaultTimeouts {
		t.Fatalf("defaults %v", got)
	}
	for _, st := range timeoutSteps {
		if err := m.SetTimeouts(st.set); err != nil {
			t.Fatal(err)
		}
		if got, _ := m.Timeouts(); got != st.want {
			t.Fatalf("%s: %v, want %v", st.name, got, st.want)
		}
	}
	for _, bad := range []Timeouts{{TCP: -time.Second}, {UDP: 1500 * time.Millisecond}, {TCPFin: 32 * 24 * time.Hour}} {
		if err := m.SetTimeouts(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestKernelTimeouts: IPVS_CMD_SET_CONFIG reaches the kernel (read back
// with ipvsadm and with IPVS_CMD_GET_CONFIG), in the namespace's IPVS.
func TestKernelTimeouts(t *testing.T) {
	ns, path := newNS(t)
	k, err := NewKernel(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for _, st := range timeoutSteps {
		if err := k.SetTimeouts(st.set); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := strings.TrimSpace(inNS(t, ns, "ipvsadm", "-L", "--timeout")); got != st.ipvsadm {
			t.Fatalf("%s: ipvsadm says %q, want %q", st.name, got, st.ipvsadm)
		}
		if got, err := k.Timeouts(); err != nil || got != st.want {
			t.Fatalf("%s: read back %v %v, want %v", st.name, got, err, st.want)
		}
	}
}
