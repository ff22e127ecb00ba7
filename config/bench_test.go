package config

import (
	"fmt"
	"hakeep/internal/scaleconf"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"weak"
)

// largeConfig generates vs virtual servers with rs real servers each, every
// real server with an HTTP_GET check (the size keepalived's tracker
// reports it dying near), plus one vrrp_instance.
func largeConfig(vs, rs int) []byte {
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id bench\n}\n")
	b.WriteString("vrrp_instance VI_1 {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n")
	b.WriteString("  authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }\n  virtual_ipaddress {\n    10.99.0.100/24 dev eth0\n  }\n}\n")
	for v := 0; v < vs; v++ {
		fmt.Fprintf(&b, "virtual_server 10.%d.%d.1 80 {\n  delay_loop 6\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n", 100+v/250, v%250)
		for r := 0; r < rs; r++ {
			fmt.Fprintf(&b, "  real_server 172.16.%d.%d 8080 {\n    weight %d\n    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n", v/250, r+1+(v%10)*20, 1+r%5)
			b.WriteString("      connect_timeout 3\n      retry 3\n      delay_before_retry 2\n    }\n  }\n")
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

func writeLarge(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "large.conf")
	if p := os.Getenv("HAKEEP_LARGE_CONF"); p != "" {
		path = p // keep it, e.g. to time keepalived -t on the same file
	}
	if err := os.WriteFile(path, largeConfig(2000, 20), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkLoadLarge: read, parse and validate 2,000 virtual servers x 20
// real servers with HTTP_GET checks from disk.
func BenchmarkLoadLarge(b *testing.B) {
	path := writeLarge(b)
	b.ReportAllocs()
	// On a shared machine wall time swings with other jobs; the process's
	// CPU time per load (all threads, GC included) is reported too.
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, d := Load(path, Options{})
		if d.HasErrors() || len(c.VirtualServers) != 2000 {
			b.Fatalf("bad result: %d virtual servers\n%s", len(c.VirtualServers), d)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestLoadLargeMemory: the large config loads correctly with under 100 MB
// allocated in all (a budget on bytes, not on time).
func TestLoadLargeMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	path := writeLarge(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, d := Load(path, Options{})
	runtime.ReadMemStats(&after)
	if d.HasErrors() || len(d) != 0 {
		t.Fatalf("diagnostics:\n%s", d)
	}
	n := 0
	for _, v := range c.VirtualServers {
		for _, r := range v.RealServers {
			if len(r.Checkers) != 1 || r.Checkers[0].HTTPFields().URLs[0].StatusCodes[0].Lo != 200 || r.Checkers[0].Retry != 3 {
				t.Fatalf("real server %s: %+v", r.Addr, r.Checkers)
			}
			n++
		}
	}
	if n != 40000 {
		t.Fatalf("%d real servers, want 40000", n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 {
		t.Errorf("allocated %d MB, budget 100 MB", alloc>>20)
	} else {
		t.Logf("allocated %d MB", alloc>>20)
	}
}

// retainedBudget is what a loaded 2,000 x 20 configuration with an
// HTTP_GET on each real server may keep on the heap (the daemon keeps its
// running configuration): the model's structs, ~520 bytes a real server
// with its checker and url (20.8 MB measured; 37.6 MB when every real
// server and checker carried the fields of every keyword and checker
// kind), and none of the file's text (8.2 MB; with it, 43.5 MB, before
// issue 13).
const retainedBudget = 23 << 20

// TestLoadLargeRetained: the live heap a loaded 2,000 x 20 configuration
// keeps, measured after a collection, stays within retainedBudget (a
// budget on bytes, not on time).
func TestLoadLargeRetained(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	path := writeLarge(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, d := Load(path, Options{})
	runtime.GC()
	runtime.ReadMemStats(&after)
	if d.HasErrors() || len(c.VirtualServers) != 2000 {
		t.Fatalf("bad result:\n%s", d)
	}
	retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(c)
	if retained > retainedBudget {
		t.Errorf("a loaded 2,000 x 20 configuration retains %.1f MB, budget %d MB", float64(retained)/(1<<20), retainedBudget>>20)
	} else {
		t.Logf("retained %.1f MB (budget %d MB)", float64(retained)/(1<<20), retainedBudget>>20)
	}
}

// TestLoadDropsFileText: once loaded, nothing in the model refers to the
// file's bytes (words are copied out of them), so the text is garbage.
func TestLoadDropsFileText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.conf")
	if err := os.WriteFile(path, largeConfig(2, 3), 0o644); err != nil {
		t.Fatal(err)
	}
	var text weak.Pointer[byte]
	readHook = func(data []byte) { text = weak.Make(&data[0]) }
	defer func() { readHook = nil }()
	c, d := Load(path, Options{})
	if d.HasErrors() || len(c.VirtualServers) != 2 {
		t.Fatalf("bad result:\n%s", d)
	}
	runtime.GC()
	runtime.GC()
	if text.Value() != nil {
		t.Error("the file's text is still referenced after the load")
	}
	if got := c.VirtualServers[1].RealServers[2].Checkers[0].HTTPFields().URLs[0].Path; got != "/health" {
		t.Errorf("path %q", got)
	}
	runtime.KeepAlive(c)
}

// BenchmarkReload1Percent: the daemon's SIGHUP parse of the 2,000 x 20
// file with 1% changed, in full and reusing the running configuration's
// unchanged blocks.
func BenchmarkReload1Percent(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "k.conf")
	if err := os.WriteFile(path, []byte(scaleconf.Text(2000, 20, false)), 0o644); err != nil {
		b.Fatal(err)
	}
	running, d := Load(path, Options{})
	if d.HasErrors() {
		b.Fatal(d)
	}
	if err := os.WriteFile(path, []byte(scaleconf.Text(2000, 20, true)), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"full", "incremental"} {
		b.Run(mode, func(b *testing.B) {
			opts := Options{}
			if mode == "incremental" {
				opts.Reuse = running
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				c, d := Load(path, opts)
				if d.HasErrors() || len(c.VirtualServers) != 2000 {
					b.Fatalf("bad result\n%s", d)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}
