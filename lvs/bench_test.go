package lvs

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
)

// benchTable builds services x dests: services 10.100.x.y:80, dests
// 10.200.a.b:80. shift moves 1% of it (weights, services out and in) for
// the reload benchmark.
func benchTable(services, dests int, shift bool) Table {
	t := Table{}
	for i := range services {
		si := i
		if shift && i < services/100 {
			si = services + i // 1% of the services replaced by new ones
		}
		a := netip.AddrFrom4([4]byte{10, 100, byte(si >> 8), byte(si)})
		s := &Service{Key: ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: a, Port: 80}, Scheduler: "wrr",
			Netmask: DefaultNetmask(AFInet), Dests: make(Dests, 0, dests)}
		for j := range dests {
			w := 1
			if shift && i%100 == 50 {
				w = 2 // 1% of the destinations change weight (on other services)
			}
			d := Dest{Addr: netip.AddrFrom4([4]byte{10, 200, byte(j), byte(i % 250)}), Port: 80, Weight: w}
			s.Dests.Set(d)
		}
		t[s.Key] = s
	}
	return t
}

// benchLog formats every change as production does, into nothing.
func benchLog() *slog.Logger {
	lvl := slog.LevelInfo
	if os.Getenv("LVS_BENCH_QUIET") != "" {
		lvl = slog.LevelWarn // to measure what logging each change costs
	}
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: lvl}))
}

func benchRec(b *testing.B) (*Reconciler, *Kernel) {
	b.Helper()
	_, path := newNS(b)
	k, err := NewKernel(path, 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Close)
	r, err := NewReconciler(k, Options{Log: benchLog()})
	if err != nil {
		b.Fatal(err)
	}
	return r, k
}

// BenchmarkFullApply2000x20: 2,000 services x 20 destinations into an
// empty kernel table (a fresh namespace each time: no dest trash).
func BenchmarkFullApply2000x20(b *testing.B) {
	want := benchTable(2000, 20, false)
	for b.Loop() {
		b.StopTimer()
		r, _ := benchRec(b)
		b.StartTimer()
		st, err := r.SetDesired(context.Background(), want)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Ops), "changes/op")
		b.ReportMetric(st.Apply.Seconds(), "apply-s/op")
		b.ReportMetric(st.Verify.Seconds(), "verify-s/op")
	}
}

// BenchmarkOneChange: one destination's weight in the full table.
func BenchmarkOneChange(b *testing.B) {
	r, _ := benchRec(b)
	base := benchTable(2000, 20, false)
	if _, err := r.SetDesired(context.Background(), base); err != nil {
		b.Fatal(err)
	}
	k := base.Keys()[1000]
	variants := [2]Table{base, make(Table, len(base))}
	for key, s := range base {
		variants[1][key] = s
	}
	s := base[k].clone()
	for _, d := range s.Dests {
		d.Weight = 5
		s.Dests.Set(d)
		break
	}
	variants[1][k] = s
	i := 0
	for b.Loop() {
		i++
		st, err := r.SetDesired(context.Background(), variants[i%2])
		if err != nil {
			b.Fatal(err)
		}
		if st.Ops != 1 {
			b.Fatalf("one change took %d ops", st.Ops)
		}
	}
}

// BenchmarkReload1Percent: a reload where 1% changed (400 weights, 20
// services out, 20 in).
func BenchmarkReload1Percent(b *testing.B) {
	r, _ := benchRec(b)
	variants := [2]Table{benchTable(2000, 20, false), benchTable(2000, 20, true)}
	if _, err := r.SetDesired(context.Background(), variants[0]); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		st, err := r.SetDesired(context.Background(), variants[i%2])
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Ops), "changes/op")
	}
}

// BenchmarkUnchangedReload: the same table again (diff only, no IPVS call).
func BenchmarkUnchangedReload(b *testing.B) {
	r := &Reconciler{c: newFake(), opt: Options{Workers: 4}, log: benchLog(), owned: map[ServiceKey]bool{}}
	t := benchTable(2000, 20, false)
	r.desired, r.cache = t, t.Clone()
	for b.Loop() {
		if st, err := r.SetDesired(context.Background(), t); err != nil || st.Ops != 0 {
			b.Fatal(st, err)
		}
	}
}
