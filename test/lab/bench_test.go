package lab_test

import (
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"hakeep/internal/lab"
)

// BenchmarkFailover measures takeover after kill -9 and after SIGTERM of
// the master (priorities 150/100/50), at advert_int 1 s (v2, PASS) and
// 0.1 s (v3), for keepalived and hakeepd in the same lab. Each iteration
// is one trial; run with -benchtime 10x for ten. Reported per case:
// wire gap (the old master's last advert to the new master's first, from
// a capture on the bridge) and VIP time (from the kill/signal to the
// kernel's notification that h2 holds the VIP), median and max in ms.
//
//	go test -run '^$' -bench BenchmarkFailover -benchtime 10x -timeout 60m ./test/lab/
func BenchmarkFailover(b *testing.B) {
	cases := []struct {
		name string
		v    vrrp
		term bool
	}{
		{"v2-1s-PASS/kill9", v2Pass, false},
		{"v2-1s-PASS/sigterm", v2Pass, true},
		{"v3-0.1s/kill9", fastV3, false},
		{"v3-0.1s/sigterm", fastV3, true},
	}
	for _, im := range []impl{keepalived, hakeepd} {
		b.Run(string(im), func(b *testing.B) {
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) { benchFailover(b, im, c.v, c.term) })
			}
		})
	}
}

func benchFailover(b *testing.B, im impl, v vrrp, term bool) {
	e := newEnv(b, im, im, im)
	e.startAll(v, nil)
	capt, err := e.l.StartCapture("bench", "ip proto 112")
	if err != nil {
		b.Fatal(err)
	}
	h1, h2 := e.l.Host("h1").Addr4.Addr(), e.l.Host("h2").Addr4.Addr()
	var events []time.Time // kill/signal instants
	var vipTimes []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// h1 is master and has been for a few adverts: a clean start.
		e.owner(vip4, "h1", deadline(v.masterDown(150)+time.Second))
		e.stable(vip4, "h1", 3*time.Duration(v.interval*float64(time.Second)))
		ch, stop, err := e.l.Watch(vip4, "h2")
		if err != nil {
			b.Fatal(err)
		}
		at := time.Now()
		if term {
			err = e.d["h1"].Signal(syscall.SIGTERM)
		} else {
			e.kill("h1")
		}
		if err != nil {
			b.Fatal(err)
		}
		ev, err := lab.WaitEvent(ch, "h2", true, deadline(v.masterDown(100)))
		stop()
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, at)
		vipTimes = append(vipTimes, ev.Time.Sub(at))
		if term {
			e.stop("h1")
		}
		e.owner(vip4, "h2", deadline(v.masterDown(100)))
		e.restart("h1")
	}
	b.StopTimer()
	pk, err := capt.Packets()
	if err != nil {
		b.Fatal(err)
	}
	var gaps, prio0 []time.Duration
	for i, at := range events {
		g, err := pk.WireGap(51, h1, h2, at)
		if err != nil {
			b.Fatalf("trial %d: %v", i, err)
		}
		gaps = append(gaps, g)
		// After SIGTERM: how long the daemon took to send its priority-0 advert.
		for _, a := range pk.From(51, h1) {
			if term && a.Prio == 0 && !a.Time.Before(at) {
				prio0 = append(prio0, a.Time.Sub(at))
				break
			}
		}
	}
	rfc := v.masterDown(100)
	if term {
		rfc = time.Duration(256-100) * time.Duration(v.interval*float64(time.Second)) / 256
	}
	b.Logf("%s %s: RFC %s; wire gaps %v; VIP times %v", im, map[bool]string{true: "sigterm", false: "kill -9"}[term],
		rfc, roundAll(gaps), roundAll(vipTimes))
	b.ReportMetric(ms(median(gaps)), "wire-ms-median")
	b.ReportMetric(ms(maxOf(gaps)), "wire-ms-max")
	b.ReportMetric(ms(median(vipTimes)), "vip-ms-median")
	b.ReportMetric(ms(maxOf(vipTimes)), "vip-ms-max")
	if term {
		if len(prio0) != len(events) {
			b.Errorf("saw %d priority-0 adverts for %d SIGTERMs", len(prio0), len(events))
		}
		b.Logf("SIGTERM to priority-0 advert: %v", roundAll(prio0))
		b.ReportMetric(ms(median(prio0)), "prio0-ms-median")
		b.ReportMetric(ms(maxOf(prio0)), "prio0-ms-max")
	}
	b.ReportMetric(0, "ns/op") // wall time per trial is setup noise
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func roundAll(ds []time.Duration) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprint(d.Round(time.Millisecond))
	}
	return s
}
