package ipvs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/lvs"
)

// TestDaemonSideBySide measures the two daemons as an operator sees them:
// keepalived and hakeepd, each started as a process with the same
// keepalived.conf of 2,000 services x 20 real servers (no checkers), timed
// from exec until the kernel table is complete, then from SIGHUP with 1%
// changed until the table is right again; then the resident memory of all
// the daemon's processes and their CPU over 10 s with nothing to do.
// Env-gated (make bench-daemons, with -build ./cmd/hakeepd).
//
// HAKEEP_BENCH_DAEMON=keepalived or hakeepd measures that one only: a
// daemon measured after another in the same boot does not compare (the
// kernel's dest trash of the first slows the second for minutes), so the
// bench-daemons target boots the VM once per daemon and run
// (test/ipvs/benchdaemons) and prints the ratios. Each measurement ends in
// a line "BENCHDAEMON name start=S reload=S rss=KB idle=CPU-s/s" for it.
func TestDaemonSideBySide(t *testing.T) {
	if os.Getenv("HAKEEP_BENCH_KEEPALIVED") == "" {
		t.Skip("benchmark: set HAKEEP_BENCH_KEEPALIVED=1 (make bench-daemons)")
	}
	only := os.Getenv("HAKEEP_BENCH_DAEMON")
	if only == "none" {
		t.Skip("HAKEEP_BENCH_DAEMON=none: make bench-daemons runs it, one boot per daemon")
	}
	kbin, err := exec.LookPath("keepalived")
	if err != nil && only != "hakeepd" {
		t.Skip("no keepalived in this VM: pass -bin /usr/sbin/keepalived")
	}
	hbin, err := exec.LookPath("hakeepd")
	if err != nil && only != "keepalived" {
		t.Skip("no hakeepd in this VM: pass -build ./cmd/hakeepd")
	}
	newLab(t) // root and IPVS checks
	n, d := 2000, 20
	cfgA, textA := scaleConfig(n, d, false)
	cfgB, textB := scaleConfig(n, d, true)
	wantA, err := lvs.FromConfig(cfgA, lvs.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	wantB, err := lvs.FromConfig(cfgB, lvs.Inputs{})
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		start, reload time.Duration
		idleCPU       float64 // CPU seconds per second with nothing to do
		rssKB         int     // resident memory of all its processes after the reload
		// floorCPU, floorKB: idle CPU and memory of the same daemon with
		// the vrrp_instance alone (no virtual server): what the table
		// adds is the difference.
		floorCPU float64
		floorKB  int
		// settleCPU: CPU seconds used in the settleAfterReload before the
		// idle window (the reload's deferred read-back).
		settleCPU float64
	}
	// floor runs the daemon on the file's vrrp_instance alone in a fresh
	// namespace: 15 s to settle (the start's election, gratuitous ARPs 5 s
	// after MASTER, memory returned after the load), then 10 s idle.
	floor := func(name string, argv func(dir, conf string) []string, pids func(dir string, cmd *exec.Cmd) []int, stop func(dir string, cmd *exec.Cmd)) (float64, int) {
		dir := t.TempDir()
		conf := filepath.Join(dir, "keepalived.conf")
		vrrpOnly := textA[:strings.Index(textA, "virtual_server ")]
		if err := os.WriteFile(conf, []byte(vrrpOnly), 0o644); err != nil {
			t.Fatal(err)
		}
		nsPath := benchNS(t, fmt.Sprintf("%sf%d", name[:2], os.Getpid()))
		cmd := exec.Command("ip", append([]string{"netns", "exec", filepath.Base(nsPath)}, argv(dir, conf)...)...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		defer stop(dir, cmd)
		time.Sleep(15 * time.Second)
		c0, t0 := cpuSeconds(pids(dir, cmd)), time.Now()
		time.Sleep(10 * time.Second)
		return (cpuSeconds(pids(dir, cmd)) - c0) / time.Since(t0).Seconds(), rssKB(pids(dir, cmd))
	}
	measure := func(name string, argv func(dir, conf string) []string, pids func(dir string, cmd *exec.Cmd) []int, stop func(dir string, cmd *exec.Cmd)) result {
		dir := t.TempDir()
		conf := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(conf, []byte(textA), 0o644); err != nil {
			t.Fatal(err)
		}
		nsPath := benchNS(t, fmt.Sprintf("%sd%d", name[:2], os.Getpid()))
		k, err := lvs.NewKernel(nsPath, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		cmd := exec.Command("ip", append([]string{"netns", "exec", filepath.Base(nsPath)}, argv(dir, conf)...)...)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
		if name == "hakeepd" && os.Getenv("HAKEEP_BENCH_LOG") != "" {
			// The collector's cycles, in the log: what the idle CPU is.
			cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		// Stopped by SIGKILL so that neither tears its table down while
		// the other is measured.
		defer stop(dir, cmd)
		var r result
		r.start = waitGated(t, k, wantA.Table, sample(wantA.Table, nil, lastKey(cfgA)), start, logf.Name())
		t.Logf("%s: table complete at %s (exec at %s)", name, time.Now().Format("15:04:05.000"), start.Format("15:04:05.000"))
		// The reload is a running daemon's, as an operator's edit is:
		// SIGHUP once the daemon has settled after its start (hakeepd
		// reads its start's table back 5 s after writing it, which takes
		// seconds in TCG; keepalived reads nothing back). Otherwise the
		// SIGHUP of a slow boot lands in that read-back and the reload
		// measures the two together.
		waited, used := waitQuiet(t, func() []int { return pids(dir, cmd) })
		t.Logf("%s: settled %.1f s after the table was complete (%.2f CPU-s meanwhile)", name, waited.Seconds(), used)
		if err := os.WriteFile(conf, []byte(textB), 0o644); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		cmd.Process.Signal(syscall.SIGHUP)
		r.reload = waitGated(t, k, wantB.Table, sample(wantB.Table, wantA.Table, lastKey(cfgB)), start, logf.Name())
		t.Logf("%s: reloaded table complete at %s (SIGHUP at %s)", name, time.Now().Format("15:04:05.000"), start.Format("15:04:05.000"))
		// The operator's view agrees: ipvsadm -Ln lists every service and
		// destination.
		tab, err := parseIPVSAdmLn(sh(t, "ip", "netns", "exec", filepath.Base(nsPath), "ipvsadm", "-Ln"))
		if err != nil {
			t.Fatal(err)
		}
		dests := 0
		for _, s := range tab {
			dests += len(s.Dests)
		}
		if len(tab) != n || dests != n*d {
			t.Fatalf("%s: ipvsadm -Ln shows %d services, %d destinations; want %d, %d", name, len(tab), dests, n, n*d)
		}
		// Idle cost: CPU used over 10 s with the table complete and
		// nothing changing, after settleAfterReload; then the memory. The
		// CPU of the settling time is reported too (settle=): hakeepd
		// reads a large pass back from the kernel 5 s after writing it
		// (lvs verifyDelay; 4-8 s of TCG for this table), keepalived reads
		// nothing back.
		cs := cpuSeconds(pids(dir, cmd))
		time.Sleep(settleAfterReload)
		c0, t0 := cpuSeconds(pids(dir, cmd)), time.Now()
		r.settleCPU = c0 - cs
		time.Sleep(10 * time.Second)
		r.idleCPU = (cpuSeconds(pids(dir, cmd)) - c0) / time.Since(t0).Seconds()
		r.rssKB = rssKB(pids(dir, cmd))
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", cmd.Process.Pid)); err == nil {
			thp, _ := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
			t.Logf("%s memory (THP %s):\n%s", name, strings.TrimSpace(string(thp)), b)
		}
		stop(dir, cmd)
		r.floorCPU, r.floorKB = floor(name, argv, pids, stop)
		t.Logf("BENCHDAEMON %s start=%.3f reload=%.3f rss=%d idle=%.4f floor=%.4f floorrss=%d settle=%.3f", name, r.start.Seconds(), r.reload.Seconds(), r.rssKB, r.idleCPU, r.floorCPU, r.floorKB, r.settleCPU)
		if os.Getenv("HAKEEP_BENCH_LOG") != "" {
			b, _ := os.ReadFile(logf.Name())
			for _, l := range strings.Split(string(b), "\n") {
				if !strings.Contains(l, "ipvs change") && !strings.Contains(l, "IPVS: ") && !strings.Contains(l, "weight from 1 to 2") {
					t.Log(name + ": " + l)
				}
			}
		}
		return r
	}
	var ka, hk result
	if only != "hakeepd" {
		ka = measure("keepalived", func(dir, conf string) []string {
			return []string{kbin, "-n", "-l", "-D", "-G", "-f", conf,
				"-p", dir + "/k.pid", "-r", dir + "/v.pid", "-c", dir + "/c.pid", "-b", dir + "/b.pid"}
		}, func(dir string, cmd *exec.Cmd) []int {
			ps := []int{cmd.Process.Pid}
			for _, f := range []string{"v.pid", "c.pid"} {
				var pid int
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					if _, err := fmt.Sscan(string(b), &pid); err == nil {
						ps = append(ps, pid)
					}
				}
			}
			return ps
		}, killKeepalived)
	}
	if only != "keepalived" {
		hk = measure("hakeepd", func(dir, conf string) []string {
			return []string{hbin, "-n", "-l", "-f", conf, "-p", dir + "/h.pid", "--api", dir + "/api.sock"}
		}, func(_ string, cmd *exec.Cmd) []int {
			return []int{cmd.Process.Pid}
		}, func(_ string, cmd *exec.Cmd) {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		})
	}
	if only != "" {
		return
	}
	t.Logf("RESULT daemons (same boot: the second is slowed by the first's dest trash), %d services x %d real servers, exec / SIGHUP until the kernel table is complete", n, d)
	t.Logf("RESULT keepalived start:      %8.2f s", ka.start.Seconds())
	t.Logf("RESULT hakeepd start:         %8.2f s", hk.start.Seconds())
	t.Logf("RESULT keepalived reload 1%%:  %8.2f s", ka.reload.Seconds())
	t.Logf("RESULT hakeepd reload 1%%:     %8.2f s", hk.reload.Seconds())
	t.Logf("RESULT keepalived idle CPU:   %8.4f s/s (all its processes)", ka.idleCPU)
	t.Logf("RESULT hakeepd idle CPU:      %8.4f s/s", hk.idleCPU)
	t.Logf("RESULT keepalived RSS:        %8d kB (all its processes)", ka.rssKB)
	t.Logf("RESULT hakeepd RSS:           %8d kB", hk.rssKB)
}

// settleAfterReload is the wait between the reloaded table being complete
// and the idle measurement: past hakeepd's read-back of the reload's
// changes (5 s after them, then a dump of 42,000 entries: 4-8 s in TCG).
const settleAfterReload = 20 * time.Second

// rssKB sums VmRSS of the processes (from /proc/PID/status).
func rssKB(pids []int) int {
	total := 0
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				var kb int
				fmt.Sscan(f[1], &kb)
				total += kb
			}
		}
	}
	return total
}

// lastKey is the service of the configuration's last virtual server: both
// daemons program in configuration order (keepalived walks the file,
// hakeepd's changes go in key order, the same order in these files).
func lastKey(cfg *config.Config) lvs.ServiceKey {
	a := cfg.VirtualServers[len(cfg.VirtualServers)-1].Addr
	return lvs.ServiceKey{Family: lvs.AFInet, Proto: lvs.ProtoTCP, Addr: a.Addr(), Port: a.Port()}
}

// sample is the services a poll checks before it reads the whole table:
// the last one programmed, every 100th service of want and, with from,
// every service that differs between from and want (those must be in
// want's state, or gone). Full dumps take seconds in TCG and compete with
// the daemon measured, so they run only once the sample is right.
func sample(want, from lvs.Table, last lvs.ServiceKey) []lvs.ServiceKey {
	keys := []lvs.ServiceKey{last}
	seen := map[lvs.ServiceKey]bool{last: true}
	add := func(k lvs.ServiceKey) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	i := 0
	for k := range want {
		if i%100 == 0 {
			add(k)
		}
		i++
	}
	if from != nil {
		for _, op := range lvs.Diff(from, want, func(lvs.ServiceKey) bool { return true }) {
			add(op.Service.Key)
		}
	}
	return keys
}

// sampleRight reports whether the sampled services are as in want.
func sampleRight(k *lvs.Kernel, want lvs.Table, keys []lvs.ServiceKey) bool {
	for _, key := range keys {
		if !serviceRight(k, want, key) {
			return false
		}
	}
	return true
}

// serviceRight reports whether the kernel holds the service key as want
// does (absent when want lacks it).
func serviceRight(k *lvs.Kernel, want lvs.Table, key lvs.ServiceKey) bool {
	w, wanted := want[key]
	s, err := k.Get(key)
	if !wanted {
		return err != nil
	}
	if err != nil || len(s.Dests) != len(w.Dests) {
		return false
	}
	for dk, d := range w.Dests {
		if s.Dests[dk].Key() != d.Key() || s.Dests[dk].Weight != d.Weight { // both sorted by key
			return false
		}
	}
	return true
}

// waitGated polls until the kernel holds want exactly and returns the time
// from start until then: the latest of the times at which each sampled
// service was first read right (each poll reads only those not yet
// right, 10 ms apart), once a second read of every sampled service and
// a full comparison of the whole table confirm it (else it starts over).
// A dump of 42,000 entries takes seconds in TCG, and even reading the 80
// sampled services takes tens of milliseconds: a time taken at the end
// of a poll of them all would count the harness's reading as the
// daemon's (the time such a poll ends is logged too).
func waitGated(t *testing.T, k *lvs.Kernel, want lvs.Table, keys []lvs.ServiceKey, start time.Time, daemonLog string) time.Duration {
	t.Helper()
	firstRight := make(map[lvs.ServiceKey]time.Duration, len(keys))
	lastMiss := ""
	for {
		for _, key := range keys {
			if _, done := firstRight[key]; !done && serviceRight(k, want, key) {
				firstRight[key] = time.Since(start) // read right by now
			}
		}
		if len(firstRight) == len(keys) {
			pollEnd := time.Since(start)
			var at time.Duration
			for _, d := range firstRight {
				at = max(at, d)
			}
			if !sampleRight(k, want, keys) {
				lastMiss = "a sampled service went wrong again"
			} else if miss := tableMiss(k, want); miss != "" {
				lastMiss = miss
			} else {
				t.Logf("every sampled service read right after %.3f s (the poll that read the last one ended at %.3f s), whole table confirmed after %.2f s",
					at.Seconds(), pollEnd.Seconds(), time.Since(start).Seconds())
				return at
			}
			clear(firstRight) // one went wrong again: not complete yet
		}
		if time.Since(start) > 5*time.Minute {
			var wrong []string
			for _, key := range keys {
				if _, done := firstRight[key]; !done {
					wrong = append(wrong, key.String())
				}
			}
			b, _ := os.ReadFile(daemonLog)
			t.Fatalf("kernel table not complete after 5 minutes; %d sampled services not right, first %q; last full comparison: %s; the daemon's log:\n%s",
				len(wrong), wrong[:min(5, len(wrong))], lastMiss, b[max(0, len(b)-20000):])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitQuiet waits until the processes use less than 3% of a CPU over a
// second (at most 2 minutes), and returns how long that took and the CPU
// seconds they used meanwhile.
func waitQuiet(t *testing.T, pids func() []int) (time.Duration, float64) {
	t.Helper()
	t0, c0 := time.Now(), cpuSeconds(pids())
	for time.Since(t0) < 2*time.Minute {
		c := cpuSeconds(pids())
		time.Sleep(time.Second)
		if cpuSeconds(pids())-c < 0.03 {
			break
		}
	}
	return time.Since(t0), cpuSeconds(pids()) - c0
}

// tableMiss compares the whole kernel table with want: "" when equal,
// else what differs.
func tableMiss(k *lvs.Kernel, want lvs.Table) string {
	got, err := k.Dump()
	if err != nil {
		return "dump: " + err.Error()
	}
	ops := lvs.Diff(got, want, func(lvs.ServiceKey) bool { return true })
	if len(ops) == 0 && len(got) == len(want) {
		return ""
	}
	return fmt.Sprintf("%d services read, %d wanted, %d changes short, first %v", len(got), len(want), len(ops), ops[:min(3, len(ops))])
}

// cpuSeconds sums user+system CPU time of the processes (from
// /proc/PID/stat, in clock ticks of 1/100 s).
func cpuSeconds(pids []int) float64 {
	total := 0.0
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesized command name: state is field 3,
		// utime and stime are fields 14 and 15.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		var ut, st float64
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		total += (ut + st) / 100
	}
	return total
}
