package outage_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// testRun is one "-t" of a daemon: wall time, user+system CPU and peak RSS
// (the kernel's ru_maxrss of the process).
type testRun struct {
	wall, cpu time.Duration
	maxRSS    int64 // bytes
	code      int
}

// configTest runs argv (a daemon's -t) inside the network namespace ns and
// reads its resource use from wait4.
func configTest(b *testing.B, ns string, argv ...string) testRun {
	b.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// ip netns exec execs the daemon in place: the rusage is the daemon's.
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.Fatalf("%v: %v", argv, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return testRun{
		wall:   wall,
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		maxRSS: ru.Maxrss << 10,
		code:   code,
	}
}

// BenchmarkConfigTest is issue 13's "-t" side by side: hakeepd -t and
// keepalived -t on the same file, 2,000 TCP NAT virtual servers x 20 real
// servers with an HTTP_GET each, plus one vrrp_instance, alternating which
// goes first, each in a throwaway network namespace (-t runs no checks,
// but the file's real servers are the outage's 10.60.x.x: nothing of it
// ever runs in the host's namespace). Rounds: $HAKEEP_T_ROUNDS (default 7);
// b.N is not used.
//
//	go test -run '^$' -bench ConfigTest -benchtime 1x ./test/outage/
func BenchmarkConfigTest(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespace)")
	}
	hk, ka := hakeepdBin(b), keepalivedBin(b)
	rounds := 7
	if v, err := strconv.Atoi(os.Getenv("HAKEEP_T_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	dir := b.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	// The outage's table plus one vrrp_instance on the namespace's eth0.
	text := checksConf(load{vs: 2000, rs: 20}) + "vrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n" +
		"    virtual_router_id 51\n    priority 150\n    advert_int 1\n    virtual_ipaddress {\n        10.99.0.100/24\n    }\n}\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	ns := fmt.Sprintf("hkt%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Skipf("ip netns add: %v: %s", err, out)
	}
	b.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p").CombinedOutput(); err != nil {
		b.Fatalf("veth: %v: %s", err, out)
	}
	argv := map[daemon][]string{
		hakeepd: {hk, "-t", "-f", conf},
		keepalived: {ka, "-t", "-l", "-f", conf, "-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"),
			"-c", filepath.Join(dir, "c.pid")},
	}
	runs := map[daemon][]testRun{}
	for i := 0; i < rounds; i++ {
		order := []daemon{hakeepd, keepalived}
		if i%2 == 1 {
			order = []daemon{keepalived, hakeepd}
		}
		for _, d := range order {
			r := configTest(b, ns, argv[d]...)
			if r.code != 0 {
				b.Fatalf("%s -t exited %d", d, r.code)
			}
			runs[d] = append(runs[d], r)
			b.Logf("round %d %-10s wall %6.3fs cpu %6.3fs max RSS %6.1f MB", i, d, r.wall.Seconds(), r.cpu.Seconds(), mb(r.maxRSS))
		}
	}
	med := func(d daemon, f func(testRun) float64) float64 {
		v := make([]float64, 0, len(runs[d]))
		for _, r := range runs[d] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	wall := func(r testRun) float64 { return r.wall.Seconds() }
	cpu := func(r testRun) float64 { return r.cpu.Seconds() }
	rss := func(r testRun) float64 { return mb(r.maxRSS) }
	for _, d := range []daemon{hakeepd, keepalived} {
		b.ReportMetric(med(d, wall), string(d)+"-wall-s")
		b.ReportMetric(med(d, cpu), string(d)+"-cpu-s")
		b.ReportMetric(med(d, rss), string(d)+"-rss-MB")
	}
	b.ReportMetric(med(keepalived, wall)/med(hakeepd, wall), "x-faster-wall")
	b.ReportMetric(med(keepalived, cpu)/med(hakeepd, cpu), "x-less-cpu")
	b.Logf("medians of %d rounds: hakeepd %.3f s (%.3f s CPU, %.1f MB), keepalived %.3f s (%.3f s CPU, %.1f MB)", rounds,
		med(hakeepd, wall), med(hakeepd, cpu), med(hakeepd, rss), med(keepalived, wall), med(keepalived, cpu), med(keepalived, rss))
}
