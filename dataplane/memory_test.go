//go:build !race

package dataplane

import (
	"context"
	"net/netip"
	"runtime"
	"testing"

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

// TestLoadMemoryBudget (issue 13): what a director retains after loading
// a large file and reloading it with 1% changed: the parsed configuration
// and the data plane (checks manager, health, planner, the reconciler's
// desired table and its picture of the kernel). The in-memory kernel the
// test programs is measured apart and left out. It fails when a load
// retains more than its budget. (Not under -race: the race detector's
// shadow memory is not the daemon's.)
func TestLoadMemoryBudget(t *testing.T) {
	tests := []struct {
		services, dests int
		budgetMB        uint64
	}{
		{2000, 20, 32},
		{200, 20, 5},
	}
	for _, tc := range tests {
		t.Run("", func(t *testing.T) {
			textA, textB := scaleText(tc.services, tc.dests, false), scaleText(tc.services, tc.dests, true)
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
			// Let the planner finish its pass (verify, bookkeeping).
			if err := p.Ping(context.Background()); err != nil {
				t.Fatal(err)
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
