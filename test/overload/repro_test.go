package overload_test

// Development harness (temporary): knobs from the environment.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func TestRepro(t *testing.T) {
	if os.Getenv("REPRO") == "" {
		t.Skip("REPRO unset")
	}
	nvs, nrs := envInt("VS", 200), envInt("RS", 20)
	secs := envInt("SECS", 30)
	bin := os.Getenv("HAKEEPD_BIN")
	l := labtest.New(t, 2, lab.Options{KeepDir: os.Getenv("KEEP") != ""}, "keepalived", "tcpdump")
	t.Logf("lab dir %s", l.Dir)
	ctx := context.Background()
	if err := l.AddVeth("h1", "rsa", "rsb"); err != nil {
		t.Fatal(err)
	}
	routes := [][]string{{"addr", "add", "10.61.0.1/30", "dev", "rsa"}, {"route", "add", "10.60.0.0/16", "via", "10.61.0.2", "dev", "rsa"}}
	if os.Getenv("ONLINK") != "" {
		routes[1] = []string{"route", "add", "10.60.0.0/16", "dev", "rsa"}
	}
	for _, args := range routes {
		if _, err := l.Exec(ctx, "h1", "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	b.WriteString("global_defs {\n router_id h1\n script_user root\n enable_script_security\n}\n")
	inst := func(prio int) string {
		return fmt.Sprintf(`vrrp_instance VI_1 {
 state BACKUP
 interface eth0
 virtual_router_id 51
 priority %d
 advert_int 1
 authentication {
  auth_type PASS
  auth_pass s3cret
 }
 virtual_ipaddress {
  10.99.0.100/32
 }
}
vrrp_instance VI_2 {
 state BACKUP
 version 3
 interface eth0
 virtual_router_id 52
 priority %d
 advert_int 0.1
 virtual_ipaddress {
  10.99.0.101/32
 }
}
`, prio, prio)
	}
	b.WriteString(inst(150))
	i := 0
	for v := 0; v < nvs; v++ {
		fmt.Fprintf(&b, "virtual_server 10.99.0.100 %d {\n delay_loop 6\n lb_algo rr\n lb_kind NAT\n protocol TCP\n", 1000+v)
		for r := 0; r < nrs; r++ {
			fmt.Fprintf(&b, " real_server 10.60.%d.%d 80 {\n  HTTP_GET {\n   url {\n    path /\n    status_code 200\n   }\n   connect_timeout 3\n   retry 3\n   delay_before_retry 3\n  }\n }\n", i/250, i%250+1)
			i++
		}
		b.WriteString("}\n")
	}
	kconf := "global_defs {\n router_id h2\n script_user root\n enable_script_security\n}\n" + inst(100)
	capt, err := l.StartCapture("adverts", "ip proto 112")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartKeepalived("h2", kconf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(l.Host("h1").Dir, "hakeepd.conf")
	os.WriteFile(path, []byte(b.String()), 0o644)
	argv := []string{"env", "GODEBUG=" + os.Getenv("HK_GODEBUG"), "GOTRACEBACK=all"}
	for _, kv := range strings.Fields(os.Getenv("HK_ENV")) {
		argv = append(argv, kv)
	}
	argv = append(argv, strings.Fields(os.Getenv("HK_PREFIX"))...)
	argv = append(argv, bin, "-n", "-l", "-f", path, "-p", filepath.Join(l.Host("h1").Dir, "hakeepd.pid"), "-api", filepath.Join(l.Host("h1").Dir, "hakeepd.sock"))
	d, err := l.Start("h1", "hakeepd", argv...)
	if err != nil {
		t.Fatal(err)
	}
	mon := l.Monitor(netip.MustParseAddr("10.99.0.100"), netip.MustParseAddr("10.99.0.101"))
	start := time.Now()
	for time.Since(start) < time.Duration(secs)*time.Second {
		time.Sleep(5 * time.Second)
		if sb, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.PID())); err == nil {
			f := strings.Fields(string(sb))
			ut, _ := strconv.Atoi(f[13])
			stt, _ := strconv.Atoi(f[14])
			t.Logf("%4.0fs cpu user %.1fs sys %.1fs", time.Since(start).Seconds(), float64(ut)/100, float64(stt)/100)
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.PID()))
		for _, ln := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(ln, "VmRSS") || strings.HasPrefix(ln, "Threads") {
				t.Logf("%4.0fs %s", time.Since(start).Seconds(), ln)
			}
		}
		if os.Getenv("SCRAPE") != "" {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			t0 := time.Now()
			out, err := l.Exec(sctx, "h1", "curl", "-s", "--unix-socket", filepath.Join(l.Host("h1").Dir, "hakeepd.sock"), "http://x/metrics")
			cancel()
			var keep []string
			for _, ln := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(ln, "hakeep_checks_") || strings.HasPrefix(ln, "go_goroutines") || strings.HasPrefix(ln, "go_memstats_heap_inuse") {
					keep = append(keep, ln)
				}
			}
			t.Logf("scrape %v (%d bytes, err %v): %s", time.Since(t0).Round(time.Millisecond), len(out), err, strings.Join(keep, "; "))
		}
	}
	if os.Getenv("QUIT") != "" {
		d.Signal(syscall.SIGQUIT)
		time.Sleep(2 * time.Second)
	}
	rep := mon.Stop()
	for _, c := range rep.Changes {
		t.Logf("owner %s", c)
	}
	pk, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	h1 := l.Host("h1").Addr4.Addr()
	for _, vrid := range []uint8{51, 52} {
		ads := pk.From(vrid, h1)
		var gaps []time.Duration
		for k := 1; k < len(ads); k++ {
			gaps = append(gaps, ads[k].Time.Sub(ads[k-1].Time))
		}
		sorted := append([]time.Duration(nil), gaps...)
		sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
		if len(sorted) > 0 {
			t.Logf("vrid %d: %d adverts from h1, gap p50 %v p99 %v max %v", vrid, len(ads), sorted[len(sorted)/2], sorted[len(sorted)*99/100], sorted[len(sorted)-1])
		}
		for k, g := range gaps {
			if (vrid == 51 && g > 1500*time.Millisecond) || (vrid == 52 && g > 150*time.Millisecond) {
				t.Logf("vrid %d: gap %v ending %s", vrid, g.Round(time.Millisecond), ads[k+1].Time.Format("15:04:05.000"))
			}
		}
		t.Logf("vrid %d: h2 adverts %d", vrid, len(pk.From(vrid, l.Host("h2").Addr4.Addr())))
	}
}
