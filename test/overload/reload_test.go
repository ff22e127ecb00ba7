package overload_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reloadVS x reloadRS real servers, each with a failing HTTP_GET: every
// reload replans 500 virtual servers and reconciles 2,000 checks.
const (
	reloadVS = 500
	reloadRS = 4
	// reloadShift virtual servers leave and as many come in on each
	// reload, and every weight changes.
	reloadShift = 50
	// reloadEvery is the storm's pace: about as fast as hakeepd reloads
	// this file on two shared cores (~60 ms each), ten reloads a second.
	// At 50 ms they ran back to back (SIGHUPs coalesce) and the host's
	// other load then delayed the loop's timer wakeups in the kernel by
	// up to ~50 ms (runtime trace: the loop itself never waited more than
	// 24 ms): max gaps 127-192 ms at advert_int 0.1, two runs of four
	// over the bound (BENCHMARKS.md).
	reloadEvery = 100 * time.Millisecond
)

func TestOverloadReloadStorm(t *testing.T) {
	hostOnly(t)
	runOverload(t, hakeepdMaster, reloadScenario(20*time.Second)).check(t)
}

// BenchmarkOverloadReloadStorm: the SIGHUP storm on hakeepd as master,
// and on keepalived as master (-P: its VRRP process re-reads the same
// file, virtual servers and all, on each SIGHUP).
//
//	go test -run '^$' -bench OverloadReloadStorm -benchtime 1x ./test/overload/
func BenchmarkOverloadReloadStorm(b *testing.B) {
	benchOverload(b, "sighup", reloadScenario(20*time.Second), hakeepdMaster, keepalivedMaster)
}

// reloadScenario: the master's file alternates between two versions
// (reloadShift virtual servers out and in, every weight changed), a
// SIGHUP after each rewrite, for the whole window. hakeepd has no reload
// command of its own (hactl talks to the cluster; a push needs one), so
// SIGHUP is the standalone daemon's only reload.
func reloadScenario(d time.Duration) scenario {
	return scenario{
		name: fmt.Sprintf("SIGHUP storm (every %s, %d virtual servers x %d)", reloadEvery, reloadVS, reloadRS),
		conf: reloadConf(0), window: d,
		stress: func(ctx context.Context, e *env) (string, error) {
			base := vrrpConf("h1", 150)
			sent := 0
			tick := time.NewTicker(reloadEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return reloadOutcome(e, sent)
				case <-tick.C:
				}
				sent++
				// Written aside and renamed: a reload never reads half a file.
				tmp := e.conf + ".new"
				if err := os.WriteFile(tmp, []byte(base+reloadConf(sent%2)), 0o644); err != nil {
					return "", err
				}
				if err := os.Rename(tmp, e.conf); err != nil {
					return "", err
				}
				if err := e.master.Signal(syscall.SIGHUP); err != nil {
					return "", fmt.Errorf("SIGHUP %d: %w", sent, err)
				}
			}
		},
	}
}

// reloadOutcome counts the reloads the master's log reports. The storm
// was real when the master finished many of them in the window, each a
// different file than the one before.
func reloadOutcome(e *env, sent int) (string, error) {
	// The reload in progress at the window's end finishes first.
	time.Sleep(time.Second)
	b, err := os.ReadFile(e.master.Log)
	if err != nil {
		return "", err
	}
	done, refused := 0, 0
	switch e.m {
	case hakeepdMaster:
		done = strings.Count(string(b), "reload complete")
		refused = strings.Count(string(b), "reload refused") + strings.Count(string(b), "reload failed")
	case keepalivedMaster:
		// keepalived logs a reload's start only.
		done = strings.Count(string(b), "Reloading ...")
	}
	s := fmt.Sprintf("%d SIGHUPs sent, %d reloads completed, %d refused or failed", sent, done, refused)
	if done < 10 || refused > 0 {
		return s, fmt.Errorf("want at least 10 reloads completed and none refused or failed (log %s)", filepath.Base(e.master.Log))
	}
	return s, nil
}

// reloadConf is version k (0 or 1) of the storm's virtual servers:
// version 1 drops the first reloadShift services, adds as many new ones
// and gives every real server weight 2.
func reloadConf(k int) string {
	var b strings.Builder
	first := k * reloadShift
	for v := first; v < first+reloadVS; v++ {
		fmt.Fprintf(&b, "virtual_server %s %d {\n    delay_loop 6\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n", vip1, 1000+v)
		for r := 0; r < reloadRS; r++ {
			i := v*reloadRS + r
			fmt.Fprintf(&b, "    real_server 10.60.%d.%d 80 {\n        weight %d\n        HTTP_GET {\n            url {\n                path /health\n"+
				"                status_code 200\n            }\n            connect_timeout 3\n            retry 3\n"+
				"            delay_before_retry 3\n        }\n    }\n", i/250, i%250+1, k+1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}
