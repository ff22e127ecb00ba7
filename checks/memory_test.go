package checks

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hakeep/config"
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
// 13), ~2.8 KB a check; now ~325 bytes (the job, its real server entry,
// and their slots). The budget is that with 15% margin.
func TestMemoryPerCheck(t *testing.T) {
	tests := []struct {
		kind   Kind
		budget uint64 // bytes a check
	}{
		{KindHTTP, 375},
		{KindTCP, 375},
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

// outageConf is issue 13's file: vs x rs real servers, each with an
// HTTP_GET (url /health, status_code 200, connect_timeout 3, retry 3,
// delay_before_retry 3).
func outageConf(vs, rs int) string {
	var b strings.Builder
	b.WriteString("global_defs {\n    router_id outage\n}\n")
	i := 0
	for v := 0; v < vs; v++ {
		fmt.Fprintf(&b, "virtual_server 10.99.0.100 %d {\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n", 1000+v)
		for r := 0; r < rs; r++ {
			fmt.Fprintf(&b, "    real_server 10.60.%d.%d 80 {\n        HTTP_GET {\n            url {\n                path /health\n"+
				"                status_code 200\n            }\n            connect_timeout 3\n            retry 3\n"+
				"            delay_before_retry 3\n        }\n    }\n", i/250, i%250+1)
			i++
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// loadBudget is what a 2,000 x 20 load with an HTTP_GET on each real
// server may keep live in the daemon's checker half: the parsed
// configuration (which the daemon keeps as its running configuration,
// ~22 MB: config.TestLoadLargeRetained) plus the manager's jobs and real
// server entries (~13 MB). Measured 34.6 MB; 51.3 MB with the model's
// real servers and checkers carrying every keyword's fields, 58.6 MB with
// the file's text still referenced by the configuration, 169 MB before
// issue 13's checker shapes (a full copy of the checker and its prober
// per job).
const loadBudget = 38 << 20

// TestLoadMemoryBudget: load the file, map it and load the manager, as
// the daemon does at start; what stays live must fit loadBudget.
func TestLoadMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(outageConf(2000, 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	base := heapInUse()
	cfg, d := config.Load(path, config.Options{})
	if d.HasErrors() {
		t.Fatalf("diagnostics:\n%s", d)
	}
	specs, warnings := FromConfig(cfg)
	if len(specs) != 40000 || len(warnings) != 0 {
		t.Fatalf("%d specs, warnings %v", len(specs), warnings)
	}
	m := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := m.Reload(specs); err != nil { // not started: nothing probes
		t.Fatal(err)
	}
	specs = nil
	live := heapInUse() - base
	runtime.KeepAlive(cfg)
	runtime.KeepAlive(m)
	if live > loadBudget {
		t.Errorf("a 2,000 x 20 load keeps %.1f MB live (configuration + checks), budget %d MB", float64(live)/(1<<20), loadBudget>>20)
	} else {
		t.Logf("a 2,000 x 20 load keeps %.1f MB live (configuration + checks), budget %d MB", float64(live)/(1<<20), loadBudget>>20)
	}
}
