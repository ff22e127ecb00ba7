package dataplane

import (
	"context"
	"testing"
	"time"

	"hakeep/lvs"
)

// TestLVSTimeouts: lvs_timeouts is set when IPVS opens (even without a
// virtual server) and again when a reload changes it.
func TestLVSTimeouts(t *testing.T) {
	mem := lvs.NewMemory()
	cfg := parse(t, "global_defs {\n lvs_timeouts tcp 100 tcpfin 10\n}\n")
	p := New(cfg, Options{Log: quiet(), OpenIPVS: func() (lvs.Client, error) { return mem, nil }})
	_, stop := runPlane(t, p)
	defer stop()
	wait := func(want lvs.Timeouts) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, _ := mem.Timeouts()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timeouts %v, want %v", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(lvs.Timeouts{TCP: 100 * time.Second, TCPFin: 10 * time.Second, UDP: 300 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Reload(ctx, parse(t, "global_defs {\n lvs_timeouts udp 50\n}\n")); err != nil {
		t.Fatal(err)
	}
	wait(lvs.Timeouts{TCP: 100 * time.Second, TCPFin: 10 * time.Second, UDP: 50 * time.Second})
}
