package dataplane

import (
	"context"
	"hakeep/internal/scaleconf"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"hakeep/checks"
	"hakeep/config"
	"hakeep/lvs"
)

// waitGet polls one service of the in-memory kernel until cond holds
// (cheaper than copying the whole table each time).
func waitGet(t *testing.T, mem *lvs.Memory, k lvs.ServiceKey, cond func(*lvs.Service) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, _ := mem.Get(k)
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s not as wanted after a minute", k)
		}
		time.Sleep(time.Millisecond)
	}
}

func countDests(tab lvs.Table) int {
	n := 0
	for _, s := range tab {
		n += len(s.Dests)
	}
	return n
}

// TestScaleProfile (manual, HAKEEP_SCALE=1) times the phases of a 2,000 x
// 20 start and 1% reload on the host with the in-memory kernel.
func TestScaleProfile(t *testing.T) {
	if os.Getenv("HAKEEP_SCALE") == "" {
		t.Skip("profile: set HAKEEP_SCALE=1 (HAKEEP_SCALE_HEAP=FILE for a heap profile after the reload)")
	}
	n, d := 2000, 20
	textA, textB := scaleconf.Text(n, d, false), scaleconf.Text(n, d, true)
	mem := lvs.NewMemory()
	t0 := time.Now()
	cfgA := parse(t, textA)
	t.Logf("parse %v", time.Since(t0))
	t0 = time.Now()
	p, stop := start(t, cfgA, mem)
	defer stop()
	last := lvs.ServiceKey{Family: lvs.AFInet, Proto: lvs.ProtoTCP, Addr: netip.AddrFrom4([4]byte{10, 100, byte((n - 1) >> 8), byte(n - 1)}), Port: 80}
	waitGet(t, mem, last, func(s *lvs.Service) bool { return s != nil && len(s.Dests) == d })
	t.Logf("start to table %v", time.Since(t0))
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("after start: heap inuse %d MB, sys %d MB", ms.HeapInuse>>20, ms.Sys>>20)
	if f := os.Getenv("HAKEEP_SCALE_CPU"); f != "" {
		w, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		pprof.StartCPUProfile(w)
		defer pprof.StopCPUProfile()
	}
	t0 = time.Now()
	cfgB := parse(t, textB)
	t.Logf("parse B %v", time.Since(t0))
	ctx := context.Background()
	if err := p.Reload(ctx, cfgB); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload returned %v", time.Since(t0))
	moved := lvs.ServiceKey{Family: lvs.AFInet, Proto: lvs.ProtoTCP, Addr: netip.AddrFrom4([4]byte{10, 100, byte(n >> 8), byte(n)}), Port: 80}
	waitGet(t, mem, moved, func(s *lvs.Service) bool { return s != nil && len(s.Dests) == d })
	t.Logf("reload to table %v", time.Since(t0))
	cfgA = nil
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("after reload: heap inuse %d MB, sys %d MB", ms.HeapInuse>>20, ms.Sys>>20)
	if f := os.Getenv("HAKEEP_SCALE_HEAP"); f != "" {
		w, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		pprof.WriteHeapProfile(w)
		w.Close()
	}
	runtime.KeepAlive(cfgB)
	runtime.KeepAlive(p)
}

func BenchmarkScalePhases(b *testing.B) {
	textA, textB := scaleconf.Text(2000, 20, false), scaleconf.Text(2000, 20, true)
	cfgA, _ := config.Parse("a", []byte(textA), config.Options{NoInclude: true})
	cfgB, _ := config.Parse("b", []byte(textB), config.Options{NoInclude: true})
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			config.Parse("b", []byte(textB), config.Options{NoInclude: true})
		}
	})
	b.Run("checks.FromConfig", func(b *testing.B) {
		for b.Loop() {
			checks.FromConfig(cfgB)
		}
	})
	b.Run("checks.Reload", func(b *testing.B) {
		m := checks.New(checks.Options{Logger: quiet()})
		sa, _ := checks.FromConfig(cfgA)
		sb, _ := checks.FromConfig(cfgB)
		m.Start(sa)
		defer m.Stop()
		for b.Loop() {
			m.Reload(sb)
			m.Reload(sa)
		}
	})
	b.Run("checks.State", func(b *testing.B) {
		m := checks.New(checks.Options{Logger: quiet()})
		sa, _ := checks.FromConfig(cfgA)
		m.Start(sa)
		defer m.Stop()
		for b.Loop() {
			m.State()
		}
	})
	b.Run("lvs.FromConfig", func(b *testing.B) {
		for b.Loop() {
			lvs.FromConfig(cfgB, lvs.Inputs{})
		}
	})
	b.Run("lvs.Diff", func(b *testing.B) {
		a, _ := lvs.FromConfig(cfgA, lvs.Inputs{})
		c, _ := lvs.FromConfig(cfgB, lvs.Inputs{})
		for b.Loop() {
			lvs.Diff(a.Table, c.Table, func(lvs.ServiceKey) bool { return true })
		}
	})
}
