package overload_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// floodLoad: 250 x 20 = 5,000 failing checks, so a metrics scrape is
// ~5,000 real servers' series (a few MB) and /v1/checks and /v1/ipvs list
// 5,000 entries each: every answer is real work for the daemon.
var floodLoad = load{vs: 250, rs: 20}

// floodClients is how many clients hammer the API at once, each asking
// for the next endpoint as soon as the last answer is read.
const floodClients = 32

// floodPaths are the read endpoints an operator's tools poll: the
// Prometheus scrape and hactl's status, checks, ipvs and vrrp.
var floodPaths = []string{"/metrics", "/v1/status", "/v1/checks", "/v1/ipvs", "/v1/vrrp"}

func TestOverloadAPIFlood(t *testing.T) {
	hostOnly(t)
	runOverload(t, hakeepdMaster, floodScenario(20*time.Second)).check(t)
}

// BenchmarkOverloadAPIFlood: the flood against hakeepd as master, and
// against hakeepd -C beside keepalived as master (the same load on the
// machine, VRRP in a process of its own).
//
//	go test -run '^$' -bench OverloadAPIFlood -benchtime 1x ./test/overload/
func BenchmarkOverloadAPIFlood(b *testing.B) {
	benchOverload(b, "flood", floodScenario(20*time.Second), hakeepdMaster, keepalivedMaster)
}

// floodScenario: floodClients clients read floodPaths from h1's API
// socket without pause for the whole window.
func floodScenario(d time.Duration) scenario {
	return scenario{
		name: fmt.Sprintf("API flood (%d clients, %d checks)", floodClients, floodLoad.checks()), conf: checksConf(floodLoad), window: d,
		stress: func(ctx context.Context, e *env) (string, error) { return flood(ctx, e.sock) },
	}
}

// flood reads the API until ctx ends. The load was real when every
// endpoint answered many times and nothing failed but the metrics
// handler's own in-flight limit (503, promhttp's MaxRequestsInFlight).
func flood(ctx context.Context, sock string) (string, error) {
	c := apiClient(sock, floodClients)
	defer c.CloseIdleConnections()
	type count struct{ ok, busy, failed, bytes atomic.Int64 }
	counts := make([]count, len(floodPaths))
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range floodClients {
		wg.Go(func() {
			for j := i; ; j++ {
				k := j % len(floodPaths)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://hakeepd"+floodPaths[k], nil)
				resp, err := c.Do(req)
				if ctx.Err() != nil {
					if err == nil {
						resp.Body.Close()
					}
					return
				}
				if err != nil {
					counts[k].failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", floodPaths[k], err))
					continue
				}
				// Read every byte, as a scraper does: the daemon's work
				// includes writing the answer out.
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case ctx.Err() != nil:
					return
				case err == nil && resp.StatusCode == http.StatusOK:
					counts[k].ok.Add(1)
					counts[k].bytes.Add(n)
				case err == nil && resp.StatusCode == http.StatusServiceUnavailable && floodPaths[k] == "/metrics":
					counts[k].busy.Add(1)
				default:
					counts[k].failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: status %d, %v", floodPaths[k], resp.StatusCode, err))
				}
			}
		})
	}
	wg.Wait()
	var s string
	var errs []string
	for k, p := range floodPaths {
		c := &counts[k]
		s += fmt.Sprintf("%s %d ok (%.1f MB)", p, c.ok.Load(), float64(c.bytes.Load())/1e6)
		if p == "/metrics" {
			s += fmt.Sprintf(", %d busy", c.busy.Load())
		}
		s += fmt.Sprintf(", %d failed; ", c.failed.Load())
		// At least one answer a second per endpoint: a daemon that
		// stopped answering (or a flood that never ran) is no flood.
		if c.ok.Load() < 20 {
			errs = append(errs, fmt.Sprintf("%s answered %d times", p, c.ok.Load()))
		}
		if c.failed.Load() > 0 {
			errs = append(errs, fmt.Sprintf("%s failed %d times (first: %v)", p, c.failed.Load(), firstErr.Load()))
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("%v", errs)
	}
	return s, nil
}
