package ipvs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
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

// scaleConfig is the benchmark configuration: services x dests NAT
// services without checkers; with shift, 1% changed (weights on 1% of
// the services, 1% of the services replaced). It returns the model and
// the same configuration as keepalived.conf text.
func scaleConfig(services, dests int, shift bool) (*config.Config, string) {
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id bench\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface v0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  virtual_ipaddress {\n    10.255.1.1/32\n  }\n}\n")
	cfg := &config.Config{}
	for i := range services {
		si := i
		if shift && i < services/100 {
			si = services + i
		}
		vip := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 100, byte(si >> 8), byte(si)}), 80)
		vs := &config.VirtualServer{Addr: vip, Protocol: "TCP", LBAlgo: "wrr", LBKind: "NAT", Quorum: 1}
		fmt.Fprintf(&b, "virtual_server %s %d {\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n", vip.Addr(), vip.Port())
		for j := range dests {
			w := 1
			if shift && i%100 == 50 {
				w = 2
			}
			rs := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 200, byte(j), byte(i % 250)}), 80)
			vs.RealServers = append(vs.RealServers, &config.RealServer{Addr: rs, Weight: w})
			fmt.Fprintf(&b, "  real_server %s %d {\n    weight %d\n  }\n", rs.Addr(), rs.Port(), w)
		}
		b.WriteString("}\n")
		cfg.VirtualServers = append(cfg.VirtualServers, vs)
	}
	return cfg, b.String()
}

// benchNS makes a namespace with a link and default route (the kernel
// refuses destinations it cannot route to).
func benchNS(t *testing.T, name string) string {
	t.Helper()
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "link", "set", "v0", "up"},
		{"ip", "link", "set", "v1", "up"},
		{"ip", "addr", "add", "10.255.0.1/16", "dev", "v0"},
		{"ip", "route", "add", "default", "dev", "v0"},
	} {
		sh(t, append([]string{"ip", "netns", "exec", name}, c...)...)
	}
	return "/run/netns/" + name
}

// tableEquals reports whether the kernel table equals want exactly.
func tableEquals(k *lvs.Kernel, want lvs.Table) bool {
	return tableMiss(k, want) == ""
}

// nearlyDone is a cheap poll: the last service of the configuration is in
// the kernel with all its destinations as wanted (keepalived programs in
// configuration order); the full comparison follows.
func nearlyDone(k *lvs.Kernel, cfg *config.Config, want lvs.Table) bool {
	last := cfg.VirtualServers[len(cfg.VirtualServers)-1].Addr
	key := lvs.ServiceKey{Family: lvs.AFInet, Proto: lvs.ProtoTCP, Addr: last.Addr(), Port: last.Port()}
	s, err := k.Get(key)
	if err != nil {
		return false
	}
	w := want[key]
	if len(s.Dests) != len(w.Dests) {
		return false
	}
	for dk, d := range w.Dests {
		if s.Dests[dk].Key() != d.Key() || s.Dests[dk].Weight != d.Weight { // both sorted by key
			return false
		}
	}
	return true
}

// waitTable polls until the kernel holds want, returning the elapsed time
// since start.
func waitTable(t *testing.T, k *lvs.Kernel, cfg *config.Config, want lvs.Table, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		if nearlyDone(k, cfg, want) && tableEquals(k, want) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("kernel table not complete after %s", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKeepalivedSideBySide measures keepalived and hakeep's lvs package
// programming the same 2,000 x 20 table in the same VM, at start and on a
// reload with 1% changed. Run with make bench-ipvs (needs keepalived copied
// into the VM).
func TestKeepalivedSideBySide(t *testing.T) {
	if os.Getenv("HAKEEP_BENCH_KEEPALIVED") == "" {
		t.Skip("benchmark: set HAKEEP_BENCH_KEEPALIVED=1 (make bench-ipvs)")
	}
	kbin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("no keepalived in this VM: pass -bin /usr/sbin/keepalived")
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

	// keepalived: start until the table is complete, then SIGHUP with 1% changed.
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	os.WriteFile(conf, []byte(textA), 0o644)
	kaPath := benchNS(t, fmt.Sprintf("kab%d", os.Getpid()))
	kk, err := lvs.NewKernel(kaPath, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer kk.Close()
	cmd := exec.Command("ip", "netns", "exec", filepath.Base(kaPath), kbin, "-n", "-l", "-D", "-G", "-f", conf,
		"-p", dir+"/k.pid", "-r", dir+"/v.pid", "-c", dir+"/c.pid", "-b", dir+"/b.pid")
	logf, _ := os.Create(filepath.Join(dir, "keepalived.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer killKeepalived(dir, cmd)
	kaStart := waitTable(t, kk, cfgA, wantA.Table, start, 5*time.Minute)
	os.WriteFile(conf, []byte(textB), 0o644)
	start = time.Now()
	cmd.Process.Signal(syscall.SIGHUP)
	kaReload := waitTable(t, kk, cfgB, wantB.Table, start, 5*time.Minute)
	// Stop keepalived (SIGKILL: its table stays, no 60 s teardown) so it
	// does not compete for the CPU with what is measured next: its
	// children by the pids in their pid files, then the parent.
	killKeepalived(dir, cmd)

	// hakeep's lvs: the same, from the configuration model.
	hkPath := benchNS(t, fmt.Sprintf("hkb%d", os.Getpid()))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start = time.Now()
	hk, err := lvs.NewKernel(hkPath, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer hk.Close()
	rec, err := lvs.NewReconciler(hk, lvs.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	planA, err := lvs.FromConfig(cfgA, lvs.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	stA, err := rec.SetDesired(context.Background(), planA.Table)
	if err != nil {
		t.Fatal(err)
	}
	hkStart := time.Since(start)
	if !tableEquals(hk, wantA.Table) {
		t.Fatal("hakeep table incomplete")
	}
	start = time.Now()
	planB, err := lvs.FromConfig(cfgB, lvs.Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	stB, err := rec.SetDesired(context.Background(), planB.Table)
	if err != nil {
		t.Fatal(err)
	}
	hkReload := time.Since(start)
	if !tableEquals(hk, wantB.Table) {
		t.Fatal("hakeep table wrong after reload")
	}
	t.Logf("RESULT %d services x %d real servers", n, d)
	t.Logf("RESULT keepalived start (exec to complete table):  %8.2f s", kaStart.Seconds())
	t.Logf("RESULT hakeep lvs start (model to verified table):  %8.2f s  (apply %.2f s, read-back %.2f s, %d changes)", hkStart.Seconds(), stA.Apply.Seconds(), stA.Verify.Seconds(), stA.Ops)
	t.Logf("RESULT keepalived reload 1%% (SIGHUP to table):      %8.2f s", kaReload.Seconds())
	t.Logf("RESULT hakeep lvs reload 1%% (model to verified):    %8.2f s  (apply %.2f s, read-back %.2f s, %d changes)", hkReload.Seconds(), stB.Apply.Seconds(), stB.Verify.Seconds(), stB.Ops)
	t.Logf("RESULT speedup: start %.1fx, reload %.1fx", kaStart.Seconds()/hkStart.Seconds(), kaReload.Seconds()/hkReload.Seconds())
}

// killKeepalived SIGKILLs the keepalived children named in their pid files
// and the parent process.
func killKeepalived(dir string, cmd *exec.Cmd) {
	for _, f := range []string{"v.pid", "c.pid", "b.pid"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if cmd.ProcessState == nil {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
}
