// Package outage_test is issue 13's "checks when the real servers are
// gone": every real server's network is down, so every HTTP_GET waits its
// whole connect_timeout, retries, and times out again. The checker must
// stay calm: memory bounded (not growing with the outage), CPU no more
// than keepalived's, and every real server still checked on its own
// schedule (no queue building up behind the probes in flight).
//
// The real servers are routed, inside the lab's namespaces, through a
// "sink" host that drops everything silently (forwarding off: no reply,
// no ICMP), so each handshake runs to its timeout. The checks each real
// server got are counted on the wire, in the sink (distinct SYNs: one per
// attempt), the same way for both daemons.
package outage_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
)

// load is the failing-check load: vs virtual servers x rs real servers,
// one HTTP_GET each (connect_timeout 3, retry 3, delay_before_retry 3).
type load struct {
	vs, rs    int
	delayLoop time.Duration // 0: keepalived's default (60 s)
	// vrrp: the daemon runs whole (not -C) with one vrrp_instance
	// (advert_int 1) beside the checks, and its adverts are timed on the
	// wire: "nothing else in the daemon slows".
	vrrp bool
}

func (l load) checks() int { return l.vs * l.rs }

// defaultDelayLoop is keepalived's.
const defaultDelayLoop = 60 * time.Second

func (l load) loop() time.Duration {
	if l.delayLoop == 0 {
		return defaultDelayLoop
	}
	return l.delayLoop
}

// Per attempt: connect_timeout; between the attempts of a retry cycle:
// delay_before_retry.
const connectTimeout, delayBeforeRetry = 3 * time.Second, 3 * time.Second

// rsNet is where the real servers are; sink drops all of it.
const rsNet = "10.60.0.0/16"

// daemon is who runs the checks.
type daemon string

const (
	hakeepd    daemon = "hakeepd"
	keepalived daemon = "keepalived"
)

// sample is one reading of the daemon's processes.
type sample struct {
	at  time.Duration // since the daemon started
	rss int64         // bytes, all the daemon's processes
	cpu float64       // CPU seconds so far (user + system)
}

type result struct {
	d       daemon
	load    load
	warmup  time.Duration // before the window: every check has started
	window  time.Duration
	samples []sample
	// perRS: checks each real server got in the window (SYNs seen).
	perRS []int
	// hakeepd's own numbers at the end: probes in flight, due probes
	// waiting for a slot, real servers down, p99 lag behind schedule.
	inFlight, pending, down int
	lagP99                  string
	metricsErr              string // why the numbers above could not be read
	// adverts: the intervals between the VRRP adverts in the window
	// (load.vrrp), sorted.
	adverts []time.Duration
}

// advertPct is the p-th percentile advert interval (0 without VRRP).
func (r *result) advertPct(p int) time.Duration {
	if len(r.adverts) == 0 {
		return 0
	}
	return r.adverts[(len(r.adverts)-1)*p/100]
}

// at is the last sample at or before d.
func (r *result) at(d time.Duration) sample {
	var s sample
	for _, x := range r.samples {
		if x.at > d {
			break
		}
		s = x
	}
	return s
}

// maxRSS is the largest RSS in [from, to].
func (r *result) maxRSS(from, to time.Duration) int64 {
	var m int64
	for _, x := range r.samples {
		if x.at >= from && x.at <= to {
			m = max(m, x.rss)
		}
	}
	return m
}

// endRSS is the median RSS of the window's last three samples.
func (r *result) endRSS() int64 {
	var last []int64
	for _, x := range r.samples {
		if x.at <= r.end() {
			last = append(last, x.rss)
		}
	}
	if len(last) > 3 {
		last = last[len(last)-3:]
	}
	if len(last) == 0 {
		return 0
	}
	slices.Sort(last)
	return last[len(last)/2]
}

// windowCPU is the CPU seconds spent in the window.
func (r *result) windowCPU() float64 {
	return r.at(r.warmup+r.window).cpu - r.at(r.warmup).cpu
}

func (r *result) end() time.Duration { return r.warmup + r.window }

func (r *result) pct(p int) int {
	if len(r.perRS) == 0 {
		return 0
	}
	return r.perRS[(len(r.perRS)-1)*p/100]
}

// attempts is the checks (SYNs) of every real server in the window.
func (r *result) attempts() int {
	n := 0
	for _, c := range r.perRS {
		n += c
	}
	return n
}

// cpuPerAttempt is the window's CPU milliseconds per check attempt: the
// comparison that holds when a daemon cannot keep the schedule (an
// emulated CPU) and the two make different numbers of attempts.
func (r *result) cpuPerAttempt() float64 {
	if r.attempts() == 0 {
		return 0
	}
	return 1000 * r.windowCPU() / float64(r.attempts())
}

func (r *result) String() string {
	s := fmt.Sprintf("%s, %d HTTP_GETs timing out (%d x %d, delay_loop %s), %s window after %s: "+
		"RSS %.1f MB at the window's start, max %.1f MB, %.1f MB at its end; CPU %.2f s in the window (%.3f cores), "+
		"%.2f s in all; checks per real server in the window: min %d, median %d, max %d (on schedule: at least %d), "+
		"%d in all, %.3f CPU-ms each",
		r.d, r.load.checks(), r.load.vs, r.load.rs, r.load.loop(), r.window, r.warmup,
		mb(r.at(r.warmup).rss), mb(r.maxRSS(0, r.end())), mb(r.at(r.end()).rss),
		r.windowCPU(), r.windowCPU()/r.window.Seconds(), r.at(r.end()).cpu,
		r.pct(0), r.pct(50), r.pct(100), r.expectedMin(), r.attempts(), r.cpuPerAttempt())
	if len(r.adverts) > 0 {
		s += fmt.Sprintf("; %d VRRP adverts (advert_int 1 s), interval min %s, median %s, p99 %s, max %s",
			len(r.adverts)+1, r.advertPct(0), r.advertPct(50), r.advertPct(99), r.advertPct(100))
	}
	switch {
	case r.d != hakeepd:
	case r.metricsErr != "":
		s += "; at the end: metrics not read: " + r.metricsErr
	default:
		s += fmt.Sprintf("; at the end: in flight %d, pending %d, down %d, lag p99 %ss", r.inFlight, r.pending, r.down, r.lagP99)
	}
	return s
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// expectedMin is the fewest checks a real server gets in the window when
// it is checked on its schedule: its attempts start at most delay_loop +
// connect_timeout apart (after it went down; connect_timeout +
// delay_before_retry while retrying), so any window holds that many.
func (r *result) expectedMin() int {
	return int(r.window / (r.load.loop() + connectTimeout))
}

// runOutage starts d on a lab host whose real servers are all gone, and
// measures it for a warmup (by default the first delay_loop: every check
// starts within it; HAKEEP_OUTAGE_WARMUP=seconds for a slow machine, such
// as the TCG VM, where loading the file takes longer) plus window.
func runOutage(t testing.TB, d daemon, ld load, window time.Duration) *result {
	l := labtest.New(t, 1, lab.Options{Extra: []string{"sink"}}, "tcpdump")
	ctx := context.Background()
	sink := l.Host("sink")
	for _, c := range []struct {
		host string
		args []string
	}{
		// The sink routes nothing on (forwarding off) and answers
		// nothing: every SYN to rsNet is dropped without a trace.
		{"sink", []string{"sh", "-c", "echo 0 >/proc/sys/net/ipv4/ip_forward"}},
		{"h1", []string{"ip", "route", "add", rsNet, "via", sink.Addr4.Addr().String()}},
	} {
		if _, err := l.Exec(ctx, c.host, c.args[0], c.args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	pcap := filepath.Join(sink.Dir, "syn.pcap")
	// -Z root: it keeps root rather than switching to a "tcpdump" user
	// (the VM has none).
	capt, err := l.Start("sink", "tcpdump", "tcpdump", "-Z", "root", "-i", "eth0", "-n", "-s", "64", "-U", "-w", pcap,
		"dst net "+rsNet+" and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn")
	if err != nil {
		t.Fatal(err)
	}
	// tcpdump is ready when its file exists (it writes the header at once).
	waitFile(t, pcap)
	vrrpPcap := filepath.Join(sink.Dir, "vrrp.pcap")
	if ld.vrrp {
		vc, err := l.Start("sink", "tcpdump-vrrp", "tcpdump", "-Z", "root", "-i", "eth0", "-n", "-s", "64", "-U", "-w", vrrpPcap, "ip proto 112")
		if err != nil {
			t.Fatal(err)
		}
		waitFile(t, vrrpPcap)
		defer vc.Stop(10 * time.Second)
	}

	dir := l.Host("h1").Dir
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(checksConf(ld)), 0o644); err != nil {
		t.Fatal(err)
	}
	var argv []string
	sock := filepath.Join(dir, "hakeepd.sock")
	flags := []string{"-n", "-l", "-G", "-C"} // the checker alone
	if ld.vrrp {
		flags = flags[:3] // the whole daemon
	}
	switch d {
	case hakeepd:
		argv = append(append(argv, hakeepdBin(t)), flags...)
		argv = append(argv, "-f", conf,
			"-p", filepath.Join(dir, "hakeepd.pid"), "-api", sock, "--state-dir", "")
	case keepalived:
		argv = append(append(argv, keepalivedBin(t)), flags...)
		argv = append(argv, "-f", conf,
			"-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"),
			"-c", filepath.Join(dir, "c.pid"), "-b", filepath.Join(dir, "b.pid"))
	}
	started := time.Now()
	p, err := l.Start("h1", string(d), argv...)
	if err != nil {
		t.Fatal(err)
	}
	res := &result{d: d, load: ld, warmup: ld.loop(), window: window}
	if v, err := strconv.Atoi(os.Getenv("HAKEEP_OUTAGE_WARMUP")); err == nil && v > 0 {
		res.warmup = time.Duration(v) * time.Second
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s := readProcs(p.PID())
			s.at = time.Since(started)
			res.samples = append(res.samples, s) // read after sampled closes
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	// The measurement itself: the sampler and the capture record what
	// happens meanwhile; only a daemon that dies ends it early.
	select {
	case <-time.After(res.end() + 500*time.Millisecond):
	case <-p.Exited():
		close(stop)
		t.Fatalf("%s exited during the outage: %v", d, p.Err())
	}
	close(stop)
	<-sampled
	if d == hakeepd {
		res.inFlight, res.pending, res.down, res.lagP99, res.metricsErr = hakeepdMetrics(t, sock)
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Log(err)
	}
	if n, err := strconv.Atoi(os.Getenv("HAKEEP_OUTAGE_LOG")); err == nil && n > 0 {
		// What the daemon was doing: its first and last n log lines
		// other than real-server transitions, and when those came.
		dlog, _ := os.ReadFile(p.Log)
		var other []string
		var downs int
		var firstDown, lastDown string
		for _, line := range strings.Split(strings.TrimRight(string(dlog), "\n"), "\n") {
			if strings.Contains(line, "real server down") || strings.Contains(line, "real server up") {
				if downs++; downs == 1 {
					firstDown = line
				}
				lastDown = line
				continue
			}
			other = append(other, line)
		}
		if len(other) > 2*n {
			other = append(other[:n], other[len(other)-n:]...)
		}
		t.Logf("%s started at %s; %d real-server transitions, first:\n%s\nlast:\n%s\nother log lines (first and last %d):\n%s",
			d, started.UTC().Format(time.RFC3339Nano), downs, firstDown, lastDown, n, strings.Join(other, "\n"))
	}
	if err := capt.Stop(10 * time.Second); err != nil {
		t.Log(err)
	}
	from, to := started.Add(res.warmup), started.Add(res.end())
	counts, err := synsPerTarget(pcap, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) == 0 {
		fi, _ := os.Stat(pcap)
		log, _ := os.ReadFile(capt.Log)
		all, _ := synsPerTarget(pcap, time.Time{}, time.Now().Add(time.Hour))
		dlog, _ := os.ReadFile(p.Log)
		if len(dlog) > 2000 {
			dlog = dlog[len(dlog)-2000:]
		}
		t.Logf("no SYN to a real server captured in the window (%s to %s); %d targets in the whole capture of %d bytes; tcpdump: %s\n%s: ...%s",
			from.Format(time.TimeOnly), to.Format(time.TimeOnly), len(all), fi.Size(), log, d, dlog)
	}
	// Every real server, also one that got no check at all.
	for i := 0; i < ld.checks(); i++ {
		res.perRS = append(res.perRS, counts[rsAddr(i)])
	}
	slices.Sort(res.perRS)
	if ld.vrrp {
		ts, err := advertTimes(vrrpPcap, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(ts); i++ {
			res.adverts = append(res.adverts, ts[i].Sub(ts[i-1]))
		}
		slices.Sort(res.adverts)
		if len(res.adverts) == 0 {
			t.Errorf("no VRRP advert captured in the window")
		}
	}
	return res
}

// readProcs sums VmRSS and utime+stime over pid and its children
// (keepalived's checker is a child).
func readProcs(pid int) sample {
	var s sample
	pids := append([]int{pid}, children(pid)...)
	for _, p := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p)); err == nil {
			if m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b); m != nil {
				kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
				s.rss += kb << 10
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil {
			// Fields after the command (which may hold spaces).
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) > 12 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				s.cpu += (ut + st) / clkTck
			}
		}
	}
	return s
}

// clkTck is USER_HZ, 100 on Linux.
const clkTck = 100

// children are the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fs) > 1 && fs[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func waitFile(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hakeepdMetrics reads, over the API socket, the probes in flight and
// waiting, how many real servers are down and the p99 lag; failed says
// why it could not (a reply that is not the metrics, which printed as
// zeros in the VM before).
func hakeepdMetrics(t testing.TB, sock string) (inFlight, pending, down int, lagP99, failed string) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Get("http://hakeepd/metrics")
	if err != nil {
		return 0, 0, 0, "", err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, 0, "", err.Error()
	}
	out := string(body)
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, "", fmt.Sprintf("%s: %.200q", resp.Status, out)
	}
	m := regexp.MustCompile(`(?m)^hakeep_checks_in_flight (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		return 0, 0, 0, "", fmt.Sprintf("no hakeep_checks_in_flight in %d bytes: %.200q", len(out), out)
	}
	inFlight, _ = strconv.Atoi(m[1])
	down = len(regexp.MustCompile(`(?m)^hakeep_check_realserver_up\{[^}]*\} 0$`).FindAllStringIndex(out, -1))
	if m := regexp.MustCompile(`(?m)^hakeep_checks_pending (\d+)$`).FindStringSubmatch(out); m != nil {
		pending, _ = strconv.Atoi(m[1])
	}
	if m := regexp.MustCompile(`(?m)^hakeep_checks_lag_seconds\{stat="p99"\} (\S+)$`).FindStringSubmatch(out); m != nil {
		lagP99 = m[1]
	}
	return inFlight, pending, down, lagP99, ""
}

// rsAddr is the i-th real server.
func rsAddr(i int) string { return fmt.Sprintf("10.60.%d.%d:80", i/250, i%250+1) }

// checksConf is the file: ld.vs virtual servers x ld.rs real
// servers, each with an HTTP_GET (connect_timeout 3, retry 3,
// delay_before_retry 3).
func checksConf(ld load) string {
	var b strings.Builder
	b.WriteString("global_defs {\n    router_id outage\n    script_user root\n    enable_script_security\n}\n")
	i := 0
	for v := 0; v < ld.vs; v++ {
		fmt.Fprintf(&b, "virtual_server 10.99.0.100 %d {\n", 1000+v)
		if ld.delayLoop > 0 {
			fmt.Fprintf(&b, "    delay_loop %d\n", int(ld.delayLoop/time.Second))
		}
		b.WriteString("    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n")
		for r := 0; r < ld.rs; r++ {
			host, _, _ := strings.Cut(rsAddr(i), ":")
			fmt.Fprintf(&b, "    real_server %s 80 {\n        HTTP_GET {\n            url {\n                path /health\n"+
				"                status_code 200\n            }\n            connect_timeout %d\n            retry 3\n"+
				"            delay_before_retry %d\n        }\n    }\n", host,
				int(connectTimeout/time.Second), int(delayBeforeRetry/time.Second))
			i++
		}
		b.WriteString("}\n")
	}
	if ld.vrrp {
		b.WriteString("vrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n" +
			"    priority 150\n    advert_int 1\n    virtual_ipaddress {\n        10.99.0.100/32\n    }\n}\n")
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

func keepalivedBin(t testing.TB) string {
	p, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("no keepalived (Debian package; in the VM: vmtest -bin /usr/sbin/keepalived)")
	}
	return p
}
