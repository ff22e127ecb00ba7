//go:build !race

package dataplane

import (
	"context"
	"hakeep/internal/scaleconf"
	"net/netip"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/lvs"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// gcPercent reads the collector's target.
func gcPercent() int {
	v := debug.SetGCPercent(-1)
	debug.SetGCPercent(v)
	return v
}

// TestLoadMemoryBudget (issue 13): what a director retains after loading
// a large file and reloading it with 1% changed: the parsed configuration
// and the data plane (checks manager, health, planner, the reconciler's
// desired table and its picture of the kernel). The in-memory kernel the
// test programs is measured apart and left out. It fails when a load
// retains more than its budget. (Not under -race: the race detector's
// shadow memory is not the daemon's.)
func TestLoadMemoryBudget(t *testing.T) {
	gogc := gcPercent()
	tests := []struct {
		services, dests int
		budgetMB        uint64
	}{
		// Measured 15.9 and 1.6 MB (26.5 and 2.6 before issue 13's
		// compact real servers, checks entries and destination slices).
		{2000, 20, 18},
		{200, 20, 2},
	}
	for _, tc := range tests {
		t.Run("", func(t *testing.T) {
			textA, textB := scaleconf.Text(tc.services, tc.dests, false), scaleconf.Text(tc.services, tc.dests, true)
			base := liveHeap()
			mem := lvs.NewMemory()
			cfg, diags := config.Parse("a.conf", []byte(textA), config.Options{NoInclude: true})
			if err := diags.Err(); err != nil {
				t.Fatal(err)
			}
			p, stop := start(t, cfg, mem)
			full := func(tab lvs.Table) bool { return len(tab) == tc.services && countDests(tab) == tc.services*tc.dests }
			waitTable(t, mem, "the first table", full)
			cfg, diags = config.Parse("b.conf", []byte(textB), config.Options{NoInclude: true})
			if err := diags.Err(); err != nil {
				t.Fatal(err)
			}
			if err := p.Reload(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			moved := lvs.ServiceKey{Family: lvs.AFInet, Proto: lvs.ProtoTCP, Addr: netip.AddrFrom4([4]byte{10, 100, byte(tc.services >> 8), byte(tc.services)}), Port: 80}
			waitTable(t, mem, "the reloaded table", func(tab lvs.Table) bool { return full(tab) && tab[moved] != nil })
			// The load's end restores the collector's target (raised
			// during the load) and returns the memory.
			deadline := time.Now().Add(30 * time.Second)
			for gcPercent() != gogc {
				if time.Now().After(deadline) {
					t.Fatalf("GC percent %d after the load, want %d back", gcPercent(), gogc)
				}
				time.Sleep(10 * time.Millisecond)
			}
			all := liveHeap()
			cfg = nil
			stop()
			p = nil
			kernel := liveHeap()
			runtime.KeepAlive(mem)
			retained := int64(all) - int64(kernel)
			t.Logf("%d x %d: retained %.1f MB (the in-memory kernel: %.1f MB more, left out)", tc.services, tc.dests,
				float64(retained)/(1<<20), float64(int64(kernel)-int64(base))/(1<<20))
			if retained > int64(tc.budgetMB)<<20 {
				t.Errorf("%d x %d retains %.1f MB after a load and a reload; budget %d MB", tc.services, tc.dests, float64(retained)/(1<<20), tc.budgetMB)
			}
		})
	}
}
