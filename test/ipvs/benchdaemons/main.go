// Command benchdaemons runs test/ipvs TestDaemonSideBySide once per daemon
// and run, each in its own boot of the qemu VM (a daemon measured after
// another in the same boot is slowed by the first's dest trash), and
// prints keepalived's and hakeepd's start, reload, RSS and idle CPU with
// the ratios (make bench-daemons).
//
//	go run ./test/ipvs/benchdaemons [-runs 3] [-log]
//
// It must run from the module's root, as root (vmtest boots the VM).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

type result struct {
	start, reload, idle, floor, settle float64
	rss, floorRSS                      int
}

func main() {
	runs := flag.Int("runs", 1, "boots per daemon")
	logs := flag.Bool("log", false, "print the daemons' logs (HAKEEP_BENCH_LOG)")
	flag.Parse()
	daemons := []string{"keepalived", "hakeepd"}
	got := map[string][]result{}
	for run := range *runs {
		for _, d := range daemons {
			r, err := boot(d, *logs)
			if err != nil {
				fmt.Fprintf(os.Stderr, "benchdaemons: %s run %d: %v\n", d, run+1, err)
				os.Exit(1)
			}
			got[d] = append(got[d], r)
			fmt.Printf("run %d %-10s start %6.2f s  reload %6.2f s  RSS %6.1f MB  idle %.4f CPU-s/s  (VRRP alone: RSS %.1f MB, idle %.4f)  settling %.2f CPU-s  load %s\n",
				run+1, d, r.start, r.reload, float64(r.rss)/1024, r.idle, float64(r.floorRSS)/1024, r.floor, r.settle, loadavg())
		}
	}
	med := func(d string, f func(result) float64) float64 {
		var v []float64
		for _, r := range got[d] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	start := func(r result) float64 { return r.start }
	reload := func(r result) float64 { return r.reload }
	rss := func(r result) float64 { return float64(r.rss) / 1024 }
	idle := func(r result) float64 { return r.idle }
	fmt.Printf("\nmedians of %d boot(s) per daemon (2,000 x 20 NAT, one vrrp_instance, TCG 2 vCPUs 4 GiB)\n", *runs)
	fmt.Printf("| | keepalived | hakeepd | keepalived / hakeepd |\n| --- | --- | --- | --- |\n")
	row := func(name, unit string, f func(result) float64, prec int) {
		k, h := med("keepalived", f), med("hakeepd", f)
		ratio := "-"
		if h > 0 {
			ratio = fmt.Sprintf("%.2fx", k/h)
		}
		fmt.Printf("| %s | %.*f %s | %.*f %s | %s |\n", name, prec, k, unit, prec, h, unit, ratio)
	}
	row("start to full table", "s", start, 2)
	row("reload 1% to full table", "s", reload, 2)
	row("RSS after the reload", "MB", rss, 1)
	row("CPU in the 20 s after the reload (read-back)", "CPU-s", func(r result) float64 { return r.settle }, 2)
	row("idle CPU after the reload", "CPU-s/s", idle, 4)
	row("RSS, vrrp_instance alone", "MB", func(r result) float64 { return float64(r.floorRSS) / 1024 }, 1)
	row("idle CPU, vrrp_instance alone", "CPU-s/s", func(r result) float64 { return r.floor }, 4)
}

// loadavg is the host's 1-minute load average.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// boot runs the benchmark for daemon d in one VM boot.
func boot(d string, logs bool) (result, error) {
	args := []string{"run", "./internal/vmtest/cmd/vmtest", "-mem", "4096", "-timeout", "15m",
		"-bin", "/usr/sbin/keepalived", "-build", "./cmd/hakeepd",
		"-env", "HAKEEP_BENCH_KEEPALIVED=1", "-env", "HAKEEP_BENCH_DAEMON=" + d}
	if logs {
		args = append(args, "-env", "HAKEEP_BENCH_LOG=1")
	}
	args = append(args, "-run", "^TestDaemonSideBySide$", "./test/ipvs")
	cmd := exec.Command("go", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	var r result
	found := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if logs {
			fmt.Println(line)
		}
		i := strings.Index(line, "BENCHDAEMON ")
		if i < 0 {
			continue
		}
		var name string
		if _, err := fmt.Sscanf(line[i:], "BENCHDAEMON %s start=%g reload=%g rss=%d idle=%g floor=%g floorrss=%d settle=%g", &name, &r.start, &r.reload, &r.rss, &r.idle, &r.floor, &r.floorRSS, &r.settle); err == nil && name == d {
			found = true
		}
	}
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return r, fmt.Errorf("vmtest: %w", err)
	}
	if !found {
		return r, fmt.Errorf("no BENCHDAEMON line for %s (skipped? root and qemu needed)", d)
	}
	return r, nil
}
