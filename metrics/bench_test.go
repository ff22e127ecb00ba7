package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"hakeep/checks"
	"hakeep/lvs"
	"hakeep/metrics"
	"hakeep/vrrp"
)

// BenchmarkScrape is one full scrape (collect + text encoding) of a large
// director: 100 VRRP instances, 100 virtual servers with 10 real servers
// each (one checker per real server), and their IPVS destinations.
func BenchmarkScrape(b *testing.B) {
	fs := &fakeState{stats: &checks.Stats{}, ipvs: &lvs.Status{}}
	for i := range 100 {
		fs.vrrp = append(fs.vrrp, vrrp.InstanceStatus{Name: fmt.Sprintf("VI_%d", i), VRID: uint8(i + 1), Interface: "eth0", State: "BACKUP",
			Counters: vrrp.Counters{Drops: map[string]uint64{"auth": 1}}})
		svc := lvs.ServiceStatus{Service: fmt.Sprintf("TCP 10.0.%d.1:80", i), InKernel: true}
		for j := range 10 {
			rs := fmt.Sprintf("192.168.%d.%d:80", i, j)
			fs.rs = append(fs.rs, checks.RealServerState{VirtualServer: fmt.Sprintf("10.0.%d.1:80/TCP", i), RealServer: rs, Up: true, Weight: -1,
				Checkers: []checks.CheckerState{{Checker: "TCP_CHECK " + rs, Kind: "TCP_CHECK", Runs: 100}}})
			svc.Dests = append(svc.Dests, lvs.DestStatus{Addr: rs, Weight: 1, InKernel: true})
		}
		fs.ipvs.Services = append(fs.ipvs.Services, svc)
	}
	h := metrics.Handler(metrics.NewRegistry(fs.sources()), nil)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d", rec.Code)
		}
		n, _ := io.Copy(io.Discard, rec.Body)
		size = int(n)
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}
