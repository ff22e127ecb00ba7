// Package overload_test is issue 10's acceptance tests: a hakeepd VRRP
// master beside a keepalived backup while something else in hakeepd is
// overloaded. The backup must never take over, and the master's adverts
// must stay on time: its largest gap on the wire under 1.5 x advert_int,
// at advert_int 1 (v2) and 0.1 (v3). The overloads, one shared harness
// (runOverload with a scenario):
//
//   - TestOverloadAdverts: tens of thousands of health checks failing
//     slowly (the real servers' network is down);
//   - TestOverloadAPIFlood: many clients reading the API and metrics
//     without pause (api_test.go);
//   - TestOverloadReloadStorm: a storm of SIGHUP reloads changing virtual
//     servers and weights (reload_test.go);
//   - TestOverloadPushBurst: a burst of `hactl config push` to three
//     clustered directors (push_test.go);
//   - TestOverloadIPVSStorm: real servers flapping so the IPVS table is
//     reprogrammed again and again, in the vmtest VM (ipvs_test.go).
package overload_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
	"hakeep/internal/vmtest"
)

var (
	vip1 = netip.MustParseAddr("10.99.0.100") // VI_1: v2, advert_int 1, PASS
	vip2 = netip.MustParseAddr("10.99.0.101") // VI_2: v3, advert_int 0.1
)

// instance is one VRRP instance both daemons run.
type instance struct {
	name     string
	vrid     uint8
	version  int
	interval time.Duration
	vip      netip.Addr
}

var instances = []instance{
	{"VI_1", 51, 2, time.Second, vip1},
	{"VI_2", 52, 3, 100 * time.Millisecond, vip2},
}

// load is the failing-check load on h1.
type load struct {
	vs, rs int // virtual servers x real servers, one HTTP_GET each
}

func (l load) checks() int { return l.vs * l.rs }

// testLoad: 1,000 x 20 = 20,000 HTTP_GET checks, each failing after its
// whole connect_timeout of 3 s. Sized so the test holds tens of thousands
// of probes in flight (~10,000 at once: timeout 3 s, retry 3 s) and still
// ends in under a minute on a shared 2-core machine; the full 2,000 x 20 of
// the issue is BenchmarkOverloadAdverts' (HAKEEP_OVERLOAD_VS=2000).
var testLoad = load{vs: 1000, rs: 20}

// window is how long the adverts are measured: past the moment (~21 s
// after start: four attempts 3 s + 3 s apart) every real server goes down,
// which is the burst of transitions the rest of the daemon reacts to.
const window = 30 * time.Second

// rsNet is where the real servers are: routed from h1 through a gateway
// that never answers ARP. A gateway, not an on-link route: 20,000 on-link
// addresses would fill the kernel's neighbour table, which is one for the
// whole machine (gc_thresh3), and break every other lab running at the
// same time. That failure mode is covered without harm by the vrrp
// package's TestSocketMulticastSkipsNeighbourTable.
const rsNet = "10.60.0.0/16"

func TestOverloadAdverts(t *testing.T) {
	hostOnly(t)
	runOverload(t, hakeepdMaster, checksScenario(testLoad, window)).check(t)
}

// hostOnly skips t in the vmtest VM: the scenarios without IPVS run on
// the host (make test-unit), where the CPU is real; the VM runs
// TestOverloadIPVSStorm.
func hostOnly(t *testing.T) {
	t.Helper()
	if vmtest.InVM() {
		t.Skip("no IPVS on this path: runs on the host")
	}
}

// master says who is VRRP master on h1 while h1 is overloaded.
type master string

const (
	// hakeepdMaster: hakeepd does both, in one process.
	hakeepdMaster master = "hakeepd"
	// keepalivedMaster: keepalived is master (VRRP only) and hakeepd -C
	// runs the same checks beside it: the same load on the machine, the
	// VRRP job done by a process of its own, as keepalived splits it.
	keepalivedMaster master = "keepalived"
	// keepalivedAll: keepalived does the whole job, VRRP, checks and IPVS
	// (its checker needs kernel IPVS: in the VM only); no hakeepd on h1.
	keepalivedAll master = "keepalived-full"
)

// scenario is one overload of h1: the virtual servers it runs beside the
// two VRRP instances and what is done to it while the adverts are
// measured. Every scenario shares runOverload, so each is measured the
// same way.
type scenario struct {
	name   string
	conf   string        // h1's virtual servers, after the VRRP instances
	window time.Duration // how long the adverts are measured
	// setup wires what the scenario needs in the lab before h1 starts
	// (nil: nothing beyond the dead real-server network).
	setup func(t testing.TB, e *env)
	// ready waits, once h1 is master, for what must be in place before
	// the window (nil: nothing).
	ready func(ctx context.Context, e *env) error
	// cluster: h1 runs hakeepd with a cluster { } block, and so do h3
	// and h4 (backups at lower priorities): three directors sharing the
	// configuration by push (hakeepd master only).
	cluster bool
	// stress runs from the window's start; ctx ends with the window. It
	// says what it did, and returns an error when the load was not what
	// the scenario claims (a test that could not fail otherwise).
	stress func(ctx context.Context, e *env) (string, error)
}

// env is what a scenario's stress acts on.
type env struct {
	l      *lab.Lab
	m      master
	hk     string       // the hakeepd binary
	sock   string       // API socket of h1's hakeepd (the master, or -C beside keepalived)
	conf   string       // the VRRP master's configuration file on h1
	master *lab.Process // h1's VRRP master process
	peers  []string     // the other directors of a cluster (h3, h4)
	hactl  string       // the hactl binary (cluster scenarios)
}

type result struct {
	m       master
	sc      string
	gaps    map[uint8][]time.Duration // per VRID, sorted
	h2      map[uint8]int             // adverts the backups (h2, and h3, h4 in a cluster) sent in the window
	owners  []lab.OwnerChange         // VIP changes in the window
	summary string                    // what the stress did
	loadErr error                     // the stress was not real
}

// runOverload builds the lab, starts keepalived (backup) on h2 and the
// master m on h1 with sc's virtual servers (with h3 and h4 for a cluster
// scenario), then runs sc's stress for its window while the bridge's
// capture records the adverts.
func runOverload(t testing.TB, m master, sc scenario) *result {
	hosts := 2
	if sc.cluster {
		if m != hakeepdMaster {
			t.Fatalf("%s: a cluster scenario runs hakeepd as master", sc.name)
		}
		hosts = 4
	}
	l := labtest.New(t, hosts, lab.Options{}, "keepalived", "tcpdump")
	e := &env{l: l, m: m, hk: hakeepdBin(t)}
	ctx := context.Background()
	// The dead real-server network.
	if err := l.AddVeth("h1", "rsa", "rsb"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"addr", "add", "10.61.0.1/30", "dev", "rsa"},
		{"route", "add", rsNet, "via", "10.61.0.2", "dev", "rsa"},
	} {
		if _, err := l.Exec(ctx, "h1", "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	if sc.setup != nil {
		sc.setup(t, e)
	}
	capt, err := l.StartCapture("adverts", "ip proto 112")
	if err != nil {
		t.Fatal(err)
	}
	// keepalived (backup, priority 100) on h2 first, on a quiet machine:
	// the lab gives it 10 s to start its VRRP process, which a loaded h1
	// in the VM's emulated CPU can starve. It is master until h1 starts
	// and preempts it.
	if _, err := l.StartKeepalived("h2", vrrpConf("h2", 100)); err != nil {
		t.Fatal(err)
	}
	h1dir := l.Host("h1").Dir
	e.sock = filepath.Join(h1dir, "hakeepd.sock")
	switch m {
	case hakeepdMaster:
		e.conf = filepath.Join(h1dir, "hakeepd.conf")
		text := vrrpConf("h1", 150) + sc.conf
		if sc.cluster {
			text = startCluster(t, e, sc.conf)
		}
		if err := os.WriteFile(e.conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		// Only the flags every hakeepd has, so an older build can be
		// measured the same way (HAKEEPD_BIN).
		argv := []string{e.hk, "-n", "-l", "-G", "-f", e.conf, "-p", filepath.Join(h1dir, "hakeepd.pid"), "-api", e.sock}
		if sc.cluster {
			// The pushed file names each director (@h1 lines).
			argv = append(argv, "-i", "h1", "--state-dir", h1dir)
		}
		p, err := l.Start("h1", "hakeepd", argv...)
		if err != nil {
			t.Fatal(err)
		}
		e.master = p
	case keepalivedMaster:
		// keepalived reads the virtual servers too (-P: it runs none of
		// them), so a reload of its file is the same work as hakeepd's.
		d, err := l.StartKeepalived("h1", vrrpConf("h1", 150)+sc.conf)
		if err != nil {
			t.Fatal(err)
		}
		e.conf, e.master = d.Conf, d.Process
		path := filepath.Join(h1dir, "checks.conf")
		if err := os.WriteFile(path, []byte(globalConf("h1")+sc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Start("h1", "hakeepd-checks", e.hk, "-n", "-l", "-G", "-C", "-f", path,
			"-p", filepath.Join(h1dir, "hakeepd.pid"), "-api", e.sock); err != nil {
			t.Fatal(err)
		}
	case keepalivedAll:
		e.conf, e.sock = filepath.Join(h1dir, "keepalived.conf"), ""
		if err := os.WriteFile(e.conf, []byte(vrrpConf("h1", 150)+sc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		pid := func(n string) string { return filepath.Join(h1dir, n+".pid") }
		// As lab.StartKeepalived, without -P.
		p, err := l.Start("h1", "keepalived", "keepalived", "-n", "-l", "-D", "-G", "-f", e.conf,
			"-p", pid("keepalived"), "-r", pid("vrrp"), "-c", pid("checkers"), "-b", pid("bfd"))
		if err != nil {
			t.Fatal(err)
		}
		e.master = p
	}
	// h1 takes both instances over (a large file in the VM's emulated CPU
	// takes a while to load) and h2 steps back.
	for _, in := range instances {
		if _, err := l.WaitAddr("h1", in.vip, time.Minute); err != nil {
			t.Fatalf("%s never became master of %s: %v", m, in.name, err)
		}
		if _, err := l.WaitNoAddr("h2", in.vip, 10*time.Second); err != nil {
			t.Fatalf("keepalived on h2 kept %s's VIP: %v", in.name, err)
		}
	}
	if sc.ready != nil {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err := sc.ready(rctx, e)
		cancel()
		if err != nil {
			t.Fatalf("%s on %s: %v", sc.name, m, err)
		}
	}
	// The window. Captures are stamped with the wall clock: if it steps
	// during the window (the host's clock was set), advert gaps are
	// unmeasurable and the window is run again, once, with a new capture.
	type outcome struct {
		summary string
		err     error
	}
	var (
		mon        *lab.Monitor
		start, end time.Time
		done       chan outcome
	)
	for attempt := 1; ; attempt++ {
		mon = l.Monitor(vip1, vip2)
		start = time.Now()
		sctx, cancel := context.WithTimeout(ctx, sc.window)
		done = make(chan outcome, 1)
		go func() {
			if sc.stress == nil {
				<-sctx.Done()
				done <- outcome{}
				return
			}
			s, err := sc.stress(sctx, e)
			done <- outcome{s, err}
		}()
		// The measurement itself: nothing to wait for, the capture and the
		// monitor record what happens during the window.
		<-sctx.Done()
		cancel()
		end = time.Now()
		step := end.Round(0).Sub(start.Round(0)) - end.Sub(start)
		if step.Abs() < 250*time.Millisecond || attempt == 2 {
			break
		}
		t.Logf("the wall clock stepped by %s during the window: measuring it again", step.Round(time.Millisecond))
		mon.Stop()
		<-done
		capt.Stop()
		if capt, err = l.StartCapture("adverts-again", "ip proto 112"); err != nil {
			t.Fatal(err)
		}
	}
	rep := mon.Stop()
	pk, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	out := <-done
	res := &result{m: m, sc: sc.name, gaps: map[uint8][]time.Duration{}, h2: map[uint8]int{}, owners: rep.Changes,
		summary: out.summary, loadErr: out.err}
	h1 := l.Host("h1").Addr4.Addr()
	for _, in := range instances {
		var at []time.Time
		for _, a := range pk.From(in.vrid, h1) {
			if !a.Time.Before(start) && !a.Time.After(end) {
				at = append(at, a.Time)
			}
		}
		res.gaps[in.vrid] = gaps(start, end, at)
		// Any other host's advert is a takeover: keepalived's, or a
		// clustered hakeepd backup's.
		for _, h := range l.Hosts {
			if h.Name == "h1" {
				continue
			}
			for _, a := range pk.From(in.vrid, h.Addr4.Addr()) {
				if !a.Time.Before(start) && !a.Time.After(end) {
					res.h2[in.vrid]++
				}
			}
		}
	}
	return res
}

// gaps are the silences between start, each advert and end, sorted.
func gaps(start, end time.Time, at []time.Time) []time.Duration {
	prev := start
	var out []time.Duration
	for _, a := range append(at, end) {
		out = append(out, a.Sub(prev))
		prev = a
	}
	slices.Sort(out)
	return out
}

// vmFloor is the largest advert gap allowed in the vmtest VM for an
// instance whose advert_int is below it. The VM's emulated CPU (qemu TCG,
// 20-30x slower, sharing the host's cores) misses sub-second timing on
// its own: with nothing but 20 checks on h1, adverts at advert_int 0.1
// were up to 430 ms apart from hakeepd and 278 ms from keepalived, and
// the backup, itself in the VM, may then take over. There the test holds
// advert_int 1 to the 1.5 x bound and takeovers, and a faster instance to
// this floor: a stall of seconds (the issue's) still fails it.
const vmFloor = time.Second

// limit is the largest advert gap allowed for in here, and whether a
// takeover by the backup fails the test.
func limit(in instance) (time.Duration, bool) {
	if vmtest.InVM() && in.interval < vmFloor {
		return vmFloor, false
	}
	return in.interval * 3 / 2, true
}

func (r *result) check(t *testing.T) {
	t.Helper()
	strict := map[netip.Addr]bool{}
	for _, in := range instances {
		g := r.gaps[in.vrid]
		t.Logf("%s, %s %s (v%d, advert_int %s): %d gaps, p50 %s p99 %s max %s; backups sent %d adverts", r.sc, r.m, in.name, in.version, in.interval,
			len(g), pct(g, 50), pct(g, 99), pct(g, 100), r.h2[in.vrid])
		lim, takeover := limit(in)
		strict[in.vip] = takeover
		if pct(g, 100) >= lim {
			t.Errorf("%s: largest advert gap %s, want under %s", in.name, pct(g, 100), lim)
		}
		if n := r.h2[in.vrid]; n > 0 && takeover {
			t.Errorf("%s: a backup sent %d adverts: it took over", in.name, n)
		}
	}
	for _, c := range r.owners {
		if strict[c.Addr] && !slices.Equal(c.Owners, []string{"h1"}) {
			t.Errorf("VIP owners changed: %s", c)
		}
	}
	t.Logf("%s: %s", r.sc, r.summary)
	if r.loadErr != nil {
		t.Errorf("%s: the load was not real: %v", r.sc, r.loadErr)
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted) - 1) * p / 100
	return sorted[i].Round(100 * time.Microsecond)
}

// checksScenario: ld's failing checks are the whole overload. The load
// was real when every real server was probed on its schedule, so all of
// them were found down within the window.
func checksScenario(ld load, d time.Duration) scenario {
	return scenario{
		name: fmt.Sprintf("%d failing checks", ld.checks()), conf: checksConf(ld), window: d,
		stress: func(ctx context.Context, e *env) (string, error) {
			<-ctx.Done()
			down, inFlight, err := checkerState(e.sock)
			if err != nil {
				return "", err
			}
			s := fmt.Sprintf("checker at the end: %d of %d real servers down, %d probes in flight", down, ld.checks(), inFlight)
			if down != ld.checks() {
				return s, fmt.Errorf("%d of %d real servers down at the end, want all", down, ld.checks())
			}
			return s, nil
		},
	}
}

// checkerState reads, from h1's metrics, how many real servers are down
// and how many probes are in flight.
func checkerState(sock string) (down, inFlight int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, status, err := apiGet(ctx, apiClient(sock, 1), "/metrics")
	if err != nil || status != http.StatusOK {
		return 0, 0, fmt.Errorf("scrape h1's metrics: status %d, %v", status, err)
	}
	down = len(regexp.MustCompile(`(?m)^hakeep_check_realserver_up\{[^}]*\} 0$`).FindAllIndex(out, -1))
	if m := regexp.MustCompile(`(?m)^hakeep_checks_in_flight (\d+)$`).FindSubmatch(out); m != nil {
		inFlight, _ = strconv.Atoi(string(m[1]))
	}
	return down, inFlight, nil
}

// apiClient talks HTTP to hakeepd's API socket with up to conns
// connections (the socket is a file: no need to enter h1's namespace).
func apiClient(sock string, conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: conns,
	}}
}

// apiGet reads path from the API: the body and the status code.
func apiGet(ctx context.Context, c *http.Client, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://hakeepd"+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

func globalConf(host string) string {
	return fmt.Sprintf("global_defs {\n    router_id %s\n    script_user root\n    enable_script_security\n}\n", host)
}

// vrrpConf is both instances at priority prio (h1 150, h2 100).
func vrrpConf(host string, prio int) string {
	var b strings.Builder
	b.WriteString(globalConf(host))
	for _, in := range instances {
		fmt.Fprintf(&b, "vrrp_instance %s {\n    state BACKUP\n    interface eth0\n    version %d\n    virtual_router_id %d\n"+
			"    priority %d\n    advert_int %g\n", in.name, in.version, in.vrid, prio, in.interval.Seconds())
		if in.version == 2 {
			b.WriteString("    authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n")
		}
		fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s/32\n    }\n}\n", in.vip)
	}
	return b.String()
}

// checksConf is ld.vs virtual servers on VI_1's VIP with ld.rs real
// servers each in rsNet, every one with the HTTP_GET.
func checksConf(ld load) string {
	var b strings.Builder
	i := 0
	for v := 0; v < ld.vs; v++ {
		fmt.Fprintf(&b, "virtual_server %s %d {\n    delay_loop 6\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n", vip1, 1000+v)
		for r := 0; r < ld.rs; r++ {
			fmt.Fprintf(&b, "    real_server 10.60.%d.%d 80 {\n        HTTP_GET {\n            url {\n                path /health\n"+
				"                status_code 200\n            }\n            connect_timeout 3\n            retry 3\n"+
				"            delay_before_retry 3\n        }\n    }\n", i/250, i%250+1)
			i++
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// hakeepdBin is $HAKEEPD_BIN, or hakeepd built from this tree.
func hakeepdBin(t testing.TB) string {
	if p := os.Getenv("HAKEEPD_BIN"); p != "" {
		return p
	}
	return labtest.Binary(t, "hakeepd")
}

// BenchmarkOverloadAdverts measures the master's advert gaps under the
// failing-check load, hakeepd (VRRP and checks in one process) beside
// keepalived as master with the same checks run next to it by hakeepd -C
// (keepalived's own checker needs kernel IPVS, which the lab's kernel
// lacks; the load on the machine is the same). One measurement per case;
// b.N is not used.
//
//	go test -run '^$' -bench OverloadAdverts -benchtime 1x ./test/overload/
//	HAKEEP_OVERLOAD_VS=2000 HAKEEP_OVERLOAD_SECONDS=60 go test ...   # the 2,000 x 20
func BenchmarkOverloadAdverts(b *testing.B) {
	ld, d := testLoad, window
	if v, err := strconv.Atoi(os.Getenv("HAKEEP_OVERLOAD_VS")); err == nil && v > 0 {
		ld.vs = v
	}
	if v, err := strconv.Atoi(os.Getenv("HAKEEP_OVERLOAD_SECONDS")); err == nil && v > 0 {
		d = time.Duration(v) * time.Second
	}
	benchOverload(b, fmt.Sprintf("%dx%d", ld.vs, ld.rs), checksScenario(ld, d), hakeepdMaster, keepalivedMaster)
}

// benchOverload runs sc once per master and reports the advert gaps (one
// measurement per case: b.N is not used).
func benchOverload(b *testing.B, name string, sc scenario, masters ...master) {
	for _, m := range masters {
		b.Run(string(m)+"/"+name, func(b *testing.B) {
			r := runOverload(b, m, sc)
			for _, in := range instances {
				g := r.gaps[in.vrid]
				b.Logf("%s, %s %s advert_int %s: p50 %s p99 %s max %s; h2 adverts %d", sc.name, m, in.name, in.interval,
					pct(g, 50), pct(g, 99), pct(g, 100), r.h2[in.vrid])
				unit := fmt.Sprintf("-%gs", in.interval.Seconds())
				b.ReportMetric(ms(pct(g, 50)), "p50-ms"+unit)
				b.ReportMetric(ms(pct(g, 99)), "p99-ms"+unit)
				b.ReportMetric(ms(pct(g, 100)), "max-ms"+unit)
				b.ReportMetric(float64(r.h2[in.vrid]), "h2-adverts"+unit)
			}
			b.Logf("%s: %s", sc.name, r.summary)
			if r.loadErr != nil {
				b.Errorf("the load was not real: %v", r.loadErr)
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
