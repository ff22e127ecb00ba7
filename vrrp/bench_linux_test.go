package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func BenchmarkEncodeV3(b *testing.B) {
	a := &Advert{Version: 3, VRID: 51, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip4}}
	for b.Loop() {
		Encode(a, src11, DefaultGroup4, EncodeOptions{})
	}
}

func BenchmarkDecodeV2(b *testing.B) {
	p := unhex(b, capV2Prio0)
	for b.Loop() {
		Decode(p, src11, DefaultGroup4)
	}
}

// observer timestamps every advert of VRID 51 seen on host 3.
type observer struct {
	mu   sync.Mutex
	seen []seenAdvert
}

type seenAdvert struct {
	src  netip.Addr
	prio uint8
	at   time.Time
}

func (l *lab) observe(spec *InstanceSpec) *observer {
	o := &observer{}
	s := *spec
	s.SrcIP = l.addr(3)
	c := l.listen(3, &s)
	go func() {
		for {
			p, err := c.Recv()
			if err != nil {
				if _, ok := err.(*DropError); ok {
					continue
				}
				return
			}
			now := time.Now()
			o.mu.Lock()
			o.seen = append(o.seen, seenAdvert{p.Src, p.Advert.Priority, now})
			o.mu.Unlock()
		}
	}()
	return o
}

func (o *observer) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seen)
}

// gap returns the last advert from old and the first from new after index
// from, if both exist.
func (o *observer) gap(from int, old, new netip.Addr) (last, first time.Time, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.seen[from:] {
		if s.src == old && first.IsZero() {
			last = s.at
		}
		if s.src == new && s.prio != 0 && first.IsZero() && !last.IsZero() {
			first = s.at
		}
	}
	return last, first, !last.IsZero() && !first.IsZero()
}

// vipWatch records when the VIP appears in a namespace (netlink event
// time).
type vipWatch struct {
	mu sync.Mutex
	at []time.Time
}

func (l *lab) watchVIP(i int, vip netip.Addr) *vipWatch {
	_, ns := l.handle(i)
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { close(done) })
	w := &vipWatch{}
	go func() {
		for u := range ch {
			ip, _ := netip.AddrFromSlice(u.LinkAddress.IP)
			if u.NewAddr && ip.Unmap() == vip {
				w.mu.Lock()
				w.at = append(w.at, time.Now())
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *vipWatch) after(t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.at {
		if !a.Before(t) {
			return a, true
		}
	}
	return time.Time{}, false
}

// peer is one side of the measured pair: hakeep (in-process manager) or
// keepalived.
type peer interface {
	stop(crash bool)
}

type hakeepPeer struct{ d *daemon }

func (p *hakeepPeer) stop(crash bool) {
	if crash {
		// As kill -9: adverts stop, VIPs stay.
		p.d.mgr.do(context.Background(), func() {
			for _, in := range p.d.mgr.order {
				in.conn.Close()
			}
		})
	}
	p.d.stop()
}

type kaPeer struct {
	k   *keepalived
	dir string
}

func (p *kaPeer) stop(crash bool) {
	if crash {
		b, _ := os.ReadFile(p.dir + "/vrrp.pid")
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		p.k.cmd.Process.Kill()
	} else {
		p.k.cmd.Process.Signal(syscall.SIGTERM)
	}
	<-p.k.done
}

func (l *lab) startKA(i int, conf string) *kaPeer {
	k := l.keepalived(i, conf)
	return &kaPeer{k: k, dir: k.dir}
}

type trialResult struct{ gap, vip, rfc time.Duration }

func stats(ds []time.Duration) (med, mx time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// BenchmarkLabTakeover measures takeover side by side with keepalived, in
// the same lab: h1 master (150), h2 backup (100), h3 observes the wire.
// Run: go test -run XXX -bench LabTakeover -benchtime 1x ./vrrp
// (env HAKEEP_BENCH_TRIALS, default 10).
func BenchmarkLabTakeover(b *testing.B) {
	trials := 10
	if n, err := strconv.Atoi(os.Getenv("HAKEEP_BENCH_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	cases := []struct {
		name    string
		version int
		intv    time.Duration
		kaIntv  string
		extra   string
	}{
		{"v3-0.1s", 3, 100 * time.Millisecond, "0.1", "version 3"},
		{"v2-1s-PASS", 2, time.Second, "1", "authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }"},
	}
	vip := netip.MustParseAddr("10.77.0.100")
	for _, c := range cases {
		for _, impl := range []string{"hakeep", "keepalived"} {
			for _, crash := range []bool{false, true} {
				mode := "graceful"
				if crash {
					mode = "crash"
				}
				b.Run(c.name+"/"+impl+"/"+mode, func(b *testing.B) {
					l := newLab(b, 3)
					mod := func(s *InstanceSpec) {
						s.Version = c.version
						if c.version == 2 {
							s.AuthType, s.AuthPass = AuthPass, "s3cret"
						}
					}
					spec := labSpec(100, c.intv, mod).Instances[0]
					obs := l.observe(spec)
					w := l.watchVIP(2, vip)
					conf := func(prio int) string {
						return strings.Replace(fmt.Sprintf(kaConf, "BACKUP", prio, c.kaIntv, c.extra), "10.99.0.100/32", "10.77.0.100/32", 1)
					}
					start := func(i, prio int) peer {
						if impl == "hakeep" {
							return &hakeepPeer{l.daemon(i, labSpec(uint8(prio), c.intv, mod), nil)}
						}
						return l.startKA(i, conf(prio))
					}
					backup := start(2, 100)
					_ = backup
					skew := newMachine(&InstanceSpec{Version: c.version, Priority: 100, Interval: c.intv}, &recFx{})
					rfc := skew.skew()
					if crash {
						rfc = skew.masterDown()
					}
					var res []trialResult
					for n := 0; n < trials; n++ {
						m := obs.mark()
						p1 := start(1, 150)
						// h1 preempts (or wins) and h2 has dropped the VIP.
						l.poll(10*c.intv+10*time.Second, "h1 master", func() bool {
							obs.mu.Lock()
							defer obs.mu.Unlock()
							cnt := 0
							for _, s := range obs.seen[m:] {
								if s.src == l.addr(1) && s.prio == 150 {
									cnt++
								}
							}
							return cnt >= 3
						})
						m = obs.mark()
						time.Sleep(c.intv * 3 / 2) // land the stop at a random point of the cycle
						t0 := time.Now()
						p1.stop(crash)
						var last, first time.Time
						l.poll(3*(3*c.intv+time.Second), "h2 adverts", func() bool {
							var ok bool
							last, first, ok = obs.gap(m, l.addr(1), l.addr(2))
							return ok
						})
						va, ok := time.Time{}, false
						l.poll(2*time.Second, "VIP on h2", func() bool { va, ok = w.after(t0); return ok })
						res = append(res, trialResult{gap: first.Sub(last), vip: va.Sub(first), rfc: rfc})
						if crash {
							// Remove the VIP a crashed h1 left behind, as a restart would.
							h1, _ := l.handle(1)
							(&nsAddrs{h: h1, vips: []netip.Addr{vip}}).Remove(context.Background())
						}
					}
					var gaps, vips []time.Duration
					for _, r := range res {
						gaps = append(gaps, r.gap)
						vips = append(vips, r.vip)
					}
					gm, gx := stats(gaps)
					vm, vx := stats(vips)
					b.ReportMetric(float64(gm.Microseconds())/1000, "gap-med-ms")
					b.ReportMetric(float64(gx.Microseconds())/1000, "gap-max-ms")
					b.ReportMetric(float64(vm.Microseconds())/1000, "vip-after-advert-med-ms")
					b.ReportMetric(float64(vx.Microseconds())/1000, "vip-after-advert-max-ms")
					b.Logf("| %s | %s | %s | %d | %.1f | %.1f / %.1f | %.2f / %.2f |", c.name, impl, mode, trials,
						float64(rfc.Microseconds())/1000, float64(gm.Microseconds())/1000, float64(gx.Microseconds())/1000,
						float64(vm.Microseconds())/1000, float64(vx.Microseconds())/1000)
				})
			}
		}
	}
}

// BenchmarkLabJitter measures advert interval jitter of a master at
// advert_int 0.1 s while two busy loops burn both cores, for hakeep and
// keepalived, from tcpdump's kernel timestamps on the lab bridge
// (HAKEEP_BENCH_BURNERS sets the number of busy loops).
// Run: go test -run XXX -bench LabJitter -benchtime 1x ./vrrp
func BenchmarkLabJitter(b *testing.B) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		b.Skip("needs tcpdump (Debian package tcpdump)")
	}
	for _, impl := range []string{"hakeep", "hakeep-rt", "keepalived"} {
		b.Run(impl, func(b *testing.B) {
			l := newLab(b, 3)
			if impl == "hakeep-rt" {
				// The whole test process at SCHED_RR 10, as hakeepd would run
				// with vrrp_rt_priority 10; busy loops and tcpdump are started
				// under chrt -o so they stay SCHED_OTHER.
				if err := SetRealtime(10); err != nil {
					b.Skipf("cannot use SCHED_RR: %v", err)
				}
				defer SetRealtime(0)
			}
			if impl != "keepalived" {
				l.daemon(1, labSpec(150, 100*time.Millisecond, nil), nil)
			} else {
				l.startKA(1, strings.Replace(fmt.Sprintf(kaConf, "BACKUP", 150, "0.1", "version 3"), "10.99.0.100/32", "10.77.0.100/32", 1))
			}
			var burners []*exec.Cmd
			nb := 2
			if n, err := strconv.Atoi(os.Getenv("HAKEEP_BENCH_BURNERS")); err == nil {
				nb = n
			}
			for i := 0; i < nb; i++ {
				c := exec.Command("chrt", "-o", "0", "sh", "-c", "while :; do :; done")
				c.Start()
				burners = append(burners, c)
			}
			defer func() {
				for _, c := range burners {
					c.Process.Kill()
					c.Wait()
				}
			}()
			var out strings.Builder
			td := exec.Command("chrt", "-o", "0", "ip", "netns", "exec", l.sw, "tcpdump", "-i", "br0", "-n", "-tt", "--immediate-mode", "-l",
				"ip proto 112 and src 10.77.0.11")
			td.Stdout = &out
			if err := td.Start(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(25 * time.Second)
			td.Process.Signal(syscall.SIGINT)
			td.Wait()
			var ts []float64
			for _, line := range strings.Split(out.String(), "\n") {
				f := strings.Fields(line)
				if len(f) > 2 && strings.Contains(line, "VRRP") {
					if v, err := strconv.ParseFloat(f[0], 64); err == nil {
						ts = append(ts, v)
					}
				}
			}
			if len(ts) < 50 {
				b.Fatalf("only %d adverts captured", len(ts))
			}
			ts = ts[10:] // the master's start
			var dev []time.Duration
			for i := 1; i < len(ts); i++ {
				d := time.Duration((ts[i]-ts[i-1])*1e9) - 100*time.Millisecond
				dev = append(dev, d.Abs())
			}
			slices.Sort(dev)
			p99 := dev[len(dev)*99/100]
			p50 := dev[len(dev)/2]
			b.ReportMetric(float64(p50.Microseconds())/1000, "jitter-p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "jitter-p99-ms")
			b.ReportMetric(float64(dev[len(dev)-1].Microseconds())/1000, "jitter-max-ms")
			b.Logf("| %s | %d intervals | p50 %.2f ms | p99 %.2f ms | max %.2f ms |", impl, len(dev),
				float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, float64(dev[len(dev)-1].Microseconds())/1000)
		})
	}
}
