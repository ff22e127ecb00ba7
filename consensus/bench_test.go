package consensus

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"hakeep/config"
)

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// BenchmarkPushCommittedOnAll: one push from the leader until all three
// directors' state machines hold the new version (loopback, real TCP).
func BenchmarkPushCommittedOnAll(b *testing.B) {
	c := newCluster(b, clusterOpts{n: 3, expect: 3, timeouts: LANTimeouts()})
	l := c.leader()
	text := []byte(goodBenchConf)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := l.node.Push(ctxT(b, 10*time.Second), "k.conf", text, "bench", "")
		if err != nil {
			b.Fatal(err)
		}
		for _, tn := range c.nodes {
			for {
				if cv, ok := tn.node.FSM().Current(); ok && cv.Version >= res.Version {
					break
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkHealthTransitions: each director reports 1,000 transitions at
// once (batched by the report loop); measures until all 3,000 views are in
// the leader's state machine.
func BenchmarkHealthTransitions(b *testing.B) {
	c := newCluster(b, clusterOpts{n: 3, expect: 3, timeouts: LANTimeouts()})
	l := c.leader()
	const per = 1000
	total := 0
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		up := i%2 == 0
		for _, tn := range c.nodes {
			batch := make([]HealthEntry, per)
			for j := range batch {
				batch[j] = HealthEntry{VS: "10.0.0.1:80/TCP", RS: fmt.Sprintf("192.168.%d.%d:80", j/250, j%250), Up: up}
			}
			tn.node.ReportHealth(batch)
		}
		total += per * len(c.nodes)
		for {
			done := true
			for _, tn := range c.nodes {
				v := l.node.FSM().Views("10.0.0.1:80/TCP", "192.168.3.249:80")
				if tn.node.PendingReports() != 0 || v[tn.cfg.NodeName].Up != up {
					done = false
				}
			}
			if done {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "transitions/s")
}

// BenchmarkLeaderFailover (LAN timeouts) measures until the two others
// agree on a new leader: "stop" is a graceful Close (leadership handed
// over), "crash" cuts the leader's transport (like kill -9 or a pulled
// cable: an election timeout has to pass first).
func BenchmarkLeaderFailover(b *testing.B) {
	for _, mode := range []string{"stop", "crash"} {
		b.Run(mode, func(b *testing.B) {
			c := newCluster(b, clusterOpts{n: 3, expect: 3, timeouts: LANTimeouts()})
			var lat []time.Duration
			for i := 0; i < b.N; i++ {
				l := c.leader()
				start := time.Now()
				if mode == "stop" {
					l.stop()
				} else {
					l.node.mux.setCut(true)
				}
				for {
					ok := true
					name := ""
					for _, tn := range followers(c, l) {
						ln := tn.node.Leader()
						if ln == "" || ln == l.cfg.NodeName || (name != "" && ln != name) {
							ok = false
						}
						name = ln
					}
					if ok {
						break
					}
					time.Sleep(time.Millisecond)
				}
				lat = append(lat, time.Since(start))
				if mode == "stop" {
					l.start()
				} else {
					l.node.mux.setCut(false)
				}
				c.leader()
			}
			b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
			b.ReportMetric(float64(slices.Max(lat).Milliseconds()), "max-ms")
		})
	}
}

const goodBenchConf = `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        10.0.0.100/24
    }
}
`

// BenchmarkPushAppliedOnAll: push on the leader until every director has
// parsed the version with its own config id and its applied report is
// committed (what `hactl config push --wait` waits for), kernel work aside.
func BenchmarkPushAppliedOnAll(b *testing.B) {
	c := newCluster(b, clusterOpts{n: 3, expect: 3, timeouts: LANTimeouts(), validate: ValidatePushed})
	l := c.leader()
	for _, tn := range c.nodes {
		ch, cancel := tn.node.Subscribe()
		b.Cleanup(cancel)
		go func(n *Node) {
			for cv := range ch {
				_, diags := config.Parse(cv.Source, []byte(cv.Text), config.Options{ConfigID: n.Name(), NoInclude: true})
				n.ReportApplied(cv.Version, diags.Err())
			}
		}(tn.node)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		text := []byte(strings.Replace(goodBenchConf, "priority 100", fmt.Sprintf("priority %d", 1+i%200), 1))
		res, err := l.node.Push(ctxT(b, 10*time.Second), "k.conf", text, "bench", "")
		if err != nil {
			b.Fatal(err)
		}
		for {
			recs := l.node.FSM().AppliedRecords()
			done := len(recs) == 3
			for _, r := range recs {
				done = done && r.Version >= res.Version
			}
			if done {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}
