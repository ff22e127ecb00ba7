package checks

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// outageSpecs is vs x rs real servers with the issue 13 HTTP_GET (or a
// TCP_CHECK) each, as FromConfig builds them.
func outageSpecs(kind Kind, vs, rs int) []Spec {
	specs := make([]Spec, 0, vs*rs)
	i := 0
	for v := 0; v < vs; v++ {
		key := fmt.Sprintf("10.99.0.100:%d/TCP", 1000+v)
		name := fmt.Sprintf("[10.99.0.100]:tcp:%d", 1000+v)
		for r := 0; r < rs; r++ {
			ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 60, byte(i / 250), byte(i%250 + 1)}), 80)
			c := Checker{Kind: kind, Connect: ap, ConnectTimeout: 3 * time.Second, Retry: 3,
				DelayBeforeRetry: 3 * time.Second, DelayLoop: DefaultDelayLoop, Warmup: DefaultDelayLoop}
			if kind == KindHTTP {
				c.HTTP.URLs = []URL{{Path: "/health", Status: []StatusRange{{200, 200}}}}
			}
			specs = append(specs, Spec{VirtualServer: key, VirtualServerName: name, Protocol: "tcp",
				RealServer: ap, Weight: 1, Checkers: []Checker{c}})
			i++
		}
	}
	return specs
}

// TestMemoryPerCheck: what the manager keeps per check, once loaded. It
// lives for the daemon's life, so it must not be a copy of the whole
// checker and its prober: 40,000 HTTP_GETs cost 113 MB that way (issue
// 13), ~2.8 KB a check; now ~360 bytes (the job, its real server entry,
// and their slots). The budget is that with 25% margin.
func TestMemoryPerCheck(t *testing.T) {
	tests := []struct {
		kind   Kind
		budget uint64 // bytes a check
	}{
		{KindHTTP, 450},
		{KindTCP, 450},
	}
	const vs, rs = 500, 20
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			base := heapInUse()
			m := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			// Not started: nothing probes, only what Reload keeps stays.
			if err := m.Reload(outageSpecs(tt.kind, vs, rs)); err != nil {
				t.Fatal(err)
			}
			per := (heapInUse() - base) / (vs * rs)
			runtime.KeepAlive(m)
			t.Logf("%s: %d bytes a check", tt.kind, per)
			if per > tt.budget {
				t.Errorf("%s: %d bytes a check, budget %d", tt.kind, per, tt.budget)
			}
		})
	}
}
