package ipvs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	netlab "hakeep/internal/lab"
)

// TestDaemonChecksSideBySide measures the health checkers of both daemons
// doing the same job in the VM (keepalived's checker needs kernel IPVS):
// 100 services x 20 real servers (HAKEEP_BENCH_CHECKS) with TCP_CHECK at delay_loop 1 against
// listeners the test runs, each daemon with -C (checkers and IPVS only).
// It reports the checks per second the listeners saw and the CPU the
// daemon used for them. Env-gated with the other side-by-side benchmarks.
func TestDaemonChecksSideBySide(t *testing.T) {
	if os.Getenv("HAKEEP_BENCH_KEEPALIVED") == "" {
		t.Skip("benchmark: set HAKEEP_BENCH_KEEPALIVED=1 (make bench-ipvs)")
	}
	kbin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("no keepalived in this VM: pass -bin /usr/sbin/keepalived")
	}
	hbin, err := exec.LookPath("hakeepd")
	if err != nil {
		t.Skip("no hakeepd in this VM: pass -build ./cmd/hakeepd")
	}
	newLab(t) // root and IPVS checks
	const dests, basePort = 20, 20000
	services := 100 // HAKEEP_BENCH_CHECKS=N: N/20 services
	if v := os.Getenv("HAKEEP_BENCH_CHECKS"); v != "" {
		if _, err := fmt.Sscan(v, &services); err != nil || services < dests {
			t.Fatalf("HAKEEP_BENCH_CHECKS=%q: want a number of checks >= %d", v, dests)
		}
		services /= dests
	}
	n := services * dests
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id checkbench\n}\n")
	for i := range services {
		fmt.Fprintf(&b, "virtual_server 10.100.0.%d 80 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", i+1)
		for j := range dests {
			fmt.Fprintf(&b, "  real_server 10.255.0.1 %d {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", basePort+i*dests+j)
		}
		b.WriteString("}\n")
	}

	// checksPerSec: connections the listeners accepted; connectsPerSec:
	// connects the daemon made (the namespace's TCP ActiveOpens, the
	// kernel's count, the same for both daemons: a handshake reset before
	// the listener saw its last ACK is a check done but never accepted);
	// cpuPerSec: the daemon's processes' CPU.
	type result struct{ checksPerSec, connectsPerSec, cpuPerSec float64 }
	measure := func(name string, env []string, argv func(dir, conf string) []string, pids func(dir string, cmd *exec.Cmd) []int, stop func(dir string, cmd *exec.Cmd), stats func(dir string)) result {
		dir := t.TempDir()
		conf := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		ns := filepath.Base(benchNS(t, fmt.Sprintf("%sc%d", name[:2], os.Getpid())))
		// The real servers: n listeners on the director's own address,
		// counting the connections the checkers make.
		var accepted atomic.Int64
		for p := basePort; p < basePort+n; p++ {
			var l net.Listener
			if err := netlab.InNamedNS(ns, func() (err error) { l, err = net.Listen("tcp", fmt.Sprintf("10.255.0.1:%d", p)); return err }); err != nil {
				t.Fatal(err)
			}
			defer l.Close() // per measurement: 2,000 listeners each
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepted.Add(1)
					c.Close()
				}
			}()
		}
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv(dir, conf)...)...)
		cmd.Env = append(os.Environ(), env...)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		defer stop(dir, cmd)
		// Warm up: every real server checked at least twice, then 3 s.
		deadline := time.Now().Add(3 * time.Minute)
		for accepted.Load() < int64(2*n) {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(logf.Name())
				if len(log) > 4000 {
					log = log[len(log)-4000:]
				}
				t.Fatalf("%s: only %d checks in 3 minutes; its log ends:\n%s", name, accepted.Load(), log)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		if stats != nil {
			stats(dir)
		}
		o0 := activeOpens(t, cmd.Process.Pid)
		c0, a0, t0 := cpuSeconds(pids(dir, cmd)), accepted.Load(), time.Now()
		time.Sleep(10 * time.Second)
		el := time.Since(t0).Seconds()
		r := result{float64(accepted.Load()-a0) / el, float64(activeOpens(t, cmd.Process.Pid)-o0) / el, (cpuSeconds(pids(dir, cmd)) - c0) / el}
		if stats != nil {
			stats(dir)
		}
		benchPerf(t, name, pids(dir, cmd), accepted.Load)
		return r
	}
	kaArgs := func(dir, conf string) []string {
		return []string{kbin, "-n", "-l", "-G", "-C", "-f", conf,
			"-p", dir + "/k.pid", "-r", dir + "/v.pid", "-c", dir + "/c.pid", "-b", dir + "/b.pid"}
	}
	kaPids := func(dir string, cmd *exec.Cmd) []int {
		ps := []int{cmd.Process.Pid}
		var pid int
		if b, err := os.ReadFile(filepath.Join(dir, "c.pid")); err == nil {
			if _, err := fmt.Sscan(string(b), &pid); err == nil {
				ps = append(ps, pid)
			}
		}
		return ps
	}
	ka := measure("keepalived", nil, kaArgs, kaPids, killKeepalived, nil)
	runHakeepd := func(name, bin string, env []string) result {
		return measure(name, env, func(dir, conf string) []string {
			return []string{bin, "-n", "-l", "-C", "-f", conf, "-p", dir + "/h.pid", "--api", dir + "/api.sock"}
		}, func(_ string, cmd *exec.Cmd) []int {
			return []int{cmd.Process.Pid}
		}, func(_ string, cmd *exec.Cmd) {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}, func(dir string) { checkerStats(t, name, dir+"/api.sock") })
	}
	hk := runHakeepd("hakeepd", hbin, nil)
	t.Logf("RESULT checkers, %d TCP_CHECKs at delay_loop 1 (%d services x %d real servers), 10 s window", n, services, dests)
	line := func(who string, r result) {
		t.Logf("RESULT %s: %7.0f checks/s accepted, %.3f CPU-ms each; %7.0f connects/s, %.3f CPU-ms each; %.2f CPU-s/s",
			who, r.checksPerSec, 1000*r.cpuPerSec/r.checksPerSec, r.connectsPerSec, 1000*r.cpuPerSec/r.connectsPerSec, r.cpuPerSec)
	}
	line("keepalived", ka)
	line("hakeepd", hk)
	// HAKEEP_BENCH_HAKEEPD_ENV="K=V ..." and/or HAKEEP_BENCH_HAKEEPD_ALT=
	// /path/to/another/hakeepd (passed with -bin): hakeepd once more, with
	// that environment or build, in the same boot (boots differ more than
	// builds do).
	alt, altBin := strings.Fields(os.Getenv("HAKEEP_BENCH_HAKEEPD_ENV")), os.Getenv("HAKEEP_BENCH_HAKEEPD_ALT")
	if len(alt) > 0 || altBin != "" {
		if altBin == "" {
			altBin = hbin
		}
		hk2 := runHakeepd("hx-hakeepd-alt", altBin, alt) // its own namespace (the first two letters)
		line(fmt.Sprintf("%s %v", altBin, alt), hk2)
	}
	// HAKEEP_BENCH_KEEPALIVED_AGAIN=1: keepalived once more, last (the
	// later runs of a boot tend to be faster: both orders in one boot).
	if os.Getenv("HAKEEP_BENCH_KEEPALIVED_AGAIN") == "1" {
		ka2 := measure("ky-keepalived-again", nil, kaArgs, kaPids, killKeepalived, nil)
		line("keepalived again", ka2)
	}
}

// benchPerf runs HAKEEP_BENCH_PERF, a shell command (perf, with -bin
// /usr/bin/perf), after the measured window with PIDS replaced by the
// daemon's processes (comma-separated) and logs its output with the
// checks the listeners saw meanwhile: where each daemon's time per check
// goes, kernel included, e.g. "perf trace -s -p PIDS -- sleep 10". Not
// in the window: tracing slows what it traces.
func benchPerf(t *testing.T, name string, pids []int, accepted func() int64) {
	cmdline := os.Getenv("HAKEEP_BENCH_PERF")
	if cmdline == "" {
		return
	}
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = fmt.Sprint(p)
	}
	a0 := accepted()
	out, err := exec.Command("sh", "-c", strings.ReplaceAll(cmdline, "PIDS", strings.Join(ps, ","))).CombinedOutput()
	t.Logf("PERF %s (%d checks meanwhile; err %v):\n%s", name, accepted()-a0, err, out)
}

// checkerStats logs what hakeepd's checkers say of their run, before and
// after the window (its /metrics on the API socket: probes, failed runs,
// real servers down, the lag of probes behind their schedule).
func checkerStats(t *testing.T, name, sock string) {
	c := http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Get("http://hakeepd/metrics")
	if err != nil {
		t.Logf("STATS %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Logf("STATS %s: %s", name, resp.Status) // a scrape that timed out
		return
	}
	var probes, runs, fails, down float64
	var lag []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ') // labels may hold spaces
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		series, v := line[:i], line[i+1:]
		var f float64
		fmt.Sscan(v, &f)
		switch {
		case series == "hakeep_checks_probes_total":
			probes = f
		case strings.HasPrefix(series, "hakeep_checker_runs_total{"):
			runs += f
		case strings.HasPrefix(series, "hakeep_checker_failures_total{"):
			fails += f
		case strings.HasPrefix(series, "hakeep_check_realserver_up{") && f == 0:
			down++
		case strings.HasPrefix(series, "hakeep_checks_lag_seconds{"):
			lag = append(lag, strings.TrimPrefix(line, "hakeep_checks_lag_seconds"))
		}
	}
	t.Logf("STATS %s: %.0f probes, %.0f checker runs, %.0f failed, %.0f real servers down, lag %v", name, probes, runs, fails, down, lag)
}

// activeOpens is TCP's ActiveOpens in pid's network namespace: the
// connects made there (/proc/PID/net/snmp).
func activeOpens(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/snmp", pid))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "ActiveOpens" && i < len(f) {
				var v int64
				fmt.Sscan(f[i], &v)
				return v
			}
		}
	}
	t.Fatalf("no Tcp ActiveOpens in /proc/%d/net/snmp", pid)
	return 0
}
