package dataplane

import (
	"context"
	"hakeep/internal/scaleconf"
	"net/netip"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/lvs"
)

// parseReusing is the SIGHUP's parse: reusing the running configuration.
func parseReusing(tb testing.TB, text string, running *config.Config) *config.Config {
	tb.Helper()
	cfg, diags := config.Parse("t.conf", []byte(text), config.Options{NoInclude: true, Reuse: running})
	if err := diags.Err(); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// waitTableEquals waits until the in-memory kernel holds want exactly.
func waitTableEquals(t *testing.T, mem *lvs.Memory, want lvs.Table) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, _ := mem.Dump()
		d := lvs.Diff(got, want, func(lvs.ServiceKey) bool { return true })
		if len(got) == len(want) && len(d) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel table not as a full load of the file gives after a minute: %d services, %d changes to go", len(got), len(d))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIncrementalReloadTable: reloads that reuse the running
// configuration's unchanged blocks (and so the plan's unchanged services)
// leave the kernel with the table a full load of each file gives.
func TestIncrementalReloadTable(t *testing.T) {
	n, d := 200, 5
	texts := []string{scaleconf.Text(n, d, false), scaleconf.Text(n, d, true), "\n\n" + scaleconf.Text(n, d, true), scaleconf.Text(n, d, false)}
	mem := lvs.NewMemory()
	running := parse(t, texts[0])
	p, stop := start(t, running, mem)
	defer stop()
	want, err := lvs.FromConfig(parse(t, texts[0]), lvs.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	waitTableEquals(t, mem, want.Table)
	for i, text := range texts[1:] {
		cfg := parseReusing(t, text, running)
		reused := 0
		old := map[*config.VirtualServer]bool{}
		for _, v := range running.VirtualServers {
			old[v] = true
		}
		for _, v := range cfg.VirtualServers {
			if old[v] || old[cfg.ReusedFrom(v)] {
				reused++
			}
		}
		if reused < n*9/10 {
			t.Fatalf("reload %d: only %d of %d virtual servers reused", i+1, reused, n)
		}
		if err := p.Reload(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		want, err := lvs.FromConfig(parse(t, text), lvs.Inputs{})
		if err != nil {
			t.Fatal(err)
		}
		waitTableEquals(t, mem, want.Table)
		running = cfg
	}
}

// BenchmarkReload1PercentPlane: the daemon's SIGHUP on the host, 2,000 x
// 20 with 1% changed, from the parse (reusing the running configuration)
// to Reload's return (the checkers' specs loaded); ms-to-table: to the
// first service the 1% change moves in the in-memory kernel (programmed
// last). Alternately the changed file and the original.
func BenchmarkReload1PercentPlane(b *testing.B) {
	b.Run("incremental", func(b *testing.B) { benchReloadPlane(b, true) })
	b.Run("full", func(b *testing.B) { benchReloadPlane(b, false) })
}

func benchReloadPlane(b *testing.B, reuse bool) {
	n, d := 2000, 20
	texts := []string{scaleconf.Text(n, d, false), scaleconf.Text(n, d, true)}
	mem := lvs.NewMemory()
	running := parseReusing(b, texts[0], nil)
	p := New(running, Options{Log: quiet(), OpenIPVS: func() (lvs.Client, error) { return mem, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	// The first and last services the 1% change moves in or out.
	moved := lvs.ServiceKey{Family: lvs.AFInet, Proto: lvs.ProtoTCP, Addr: netip.AddrFrom4([4]byte{10, 100, byte(n >> 8), byte(n)}), Port: 80}
	wait := func(present bool) {
		for {
			if s, _ := mem.Get(moved); (s != nil && len(s.Dests) == d) == present {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	wait(false)
	i := 0
	var toTable time.Duration
	for b.Loop() {
		i++
		t0 := time.Now()
		prev := running
		if !reuse {
			prev = nil
		}
		cfg := parseReusing(b, texts[i%2], prev)
		done := make(chan error, 1)
		go func() { done <- p.Reload(ctx, cfg) }()
		wait(i%2 == 1)
		toTable += time.Since(t0)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		running = cfg
	}
	b.ReportMetric(float64(toTable.Microseconds())/1000/float64(b.N), "ms-to-table")
}
