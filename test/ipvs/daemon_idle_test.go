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
)

// idleConf is one VRRP master and nothing else: what a daemon costs with
// nothing to do but its adverts.
const idleConf = "global_defs {\n  router_id idle\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface v0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  virtual_ipaddress {\n    10.255.1.1/32\n  }\n}\n"

// TestDaemonIdle measures the idle cost of each daemon with one VRRP
// master (issue 13's idle goal; the VRRP advert path is most of it): CPU
// seconds per second and thread wakeups (context switches) per second
// over HAKEEP_BENCH_IDLE_SECONDS (default 30) after 15 s to settle, each
// daemon in a fresh namespace, one after the other. HAKEEP_BENCH_IDLE
// lists the daemons, by name in PATH or by path (vmtest -bin copies a
// host file to the same path): "keepalived" and hakeepd builds, e.g.
// HAKEEP_BENCH_IDLE=keepalived,hakeepd,/tmp/old/hakeepd. Each prints a
// line "BENCHIDLE name cpu=CPU-s/s wakeups=N/s".
func TestDaemonIdle(t *testing.T) {
	list := os.Getenv("HAKEEP_BENCH_IDLE")
	if list == "" {
		t.Skip("benchmark: set HAKEEP_BENCH_IDLE=keepalived,hakeepd")
	}
	secs := 30
	if v := os.Getenv("HAKEEP_BENCH_IDLE_SECONDS"); v != "" {
		fmt.Sscan(v, &secs)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for i, name := range strings.Split(list, ",") {
		bin, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s: not in PATH (vmtest -bin or -build)", name)
		}
		dir := t.TempDir()
		conf := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(conf, []byte(idleConf), 0o644); err != nil {
			t.Fatal(err)
		}
		var argv []string
		keepalived := strings.HasPrefix(filepath.Base(name), "keepalived")
		if keepalived {
			argv = []string{bin, "-n", "-l", "-G", "-P", "-f", conf, "-p", dir + "/k.pid", "-r", dir + "/v.pid", "-c", dir + "/c.pid", "-b", dir + "/b.pid"}
		} else {
			argv = []string{bin, "-n", "-l", "-G", "-f", conf, "-p", dir + "/h.pid", "--state-dir", dir}
		}
		ns := benchNS(t, fmt.Sprintf("idle%d-%d", i, os.Getpid()))
		cmd := exec.Command("ip", append([]string{"netns", "exec", filepath.Base(ns)}, argv...)...)
		logf, err := os.Create(filepath.Join(dir, "log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pids := func() []int {
			ps := []int{cmd.Process.Pid}
			for _, f := range []string{"v.pid"} {
				var pid int
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					if _, err := fmt.Sscan(string(b), &pid); err == nil {
						ps = append(ps, pid)
					}
				}
			}
			return ps
		}
		// Settled: the start's election (3 s), gratuitous ARPs (5 s
		// after MASTER) and the memory returned after the load are over.
		time.Sleep(15 * time.Second)
		c0, w0 := schedTotals(pids())
		t0 := time.Now()
		time.Sleep(time.Duration(secs) * time.Second)
		c1, w1 := schedTotals(pids())
		el := time.Since(t0).Seconds()
		t.Logf("BENCHIDLE %s cpu=%.5f wakeups=%.1f", name, (c1-c0)/el, float64(w1-w0)/el)
		if keepalived {
			killKeepalived(dir, cmd)
		} else {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		logf.Close()
	}
}

// schedTotals sums, over every thread of the processes, the CPU time
// (seconds) and the times a thread was scheduled in, from
// /proc/PID/task/TID/schedstat (nanosecond CPU time, unlike stat's ticks).
func schedTotals(pids []int) (cpu float64, runs int64) {
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var ns, wait, n int64
			if _, err := fmt.Sscan(string(b), &ns, &wait, &n); err == nil {
				cpu += float64(ns) / 1e9
				runs += n
			}
		}
	}
	return cpu, runs
}
