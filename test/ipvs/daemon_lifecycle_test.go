package ipvs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/lvs"
)

// The lifecycle of a real hakeepd around its IPVS table: a reload that
// adds the first virtual server to a daemon started without one (the path
// that once wedged the director), a refused reload, restarts that must
// never leave a service missing, and a restart that drops one service.
// Every wait has a deadline and the daemon is killed at cleanup, so a
// wedged daemon fails the test quickly instead of hanging it.

const (
	// lifeLimit bounds waits for the table or the log after an action.
	lifeLimit = 10 * time.Second
	// apiLimit is how fast a running daemon must answer a status call.
	apiLimit = time.Second
)

// lifeConf is VI_1 holding the VIP, then one rr NAT virtual server on
// 10.10.0.100 per port, with rs1 and rs2 on that port under TCP_CHECK
// (newDaemonLab has listeners on :80 and :8080).
func lifeConf(ports ...int) string {
	var b strings.Builder
	b.WriteString(`global_defs {
  router_id lifecycle
}
vrrp_instance VI_1 {
  state MASTER
  interface d0
  virtual_router_id 51
  priority 150
  advert_int 1
  virtual_ipaddress {
    10.10.0.100/32
  }
}
`)
	for _, p := range ports {
		fmt.Fprintf(&b, "virtual_server 10.10.0.100 %d {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", p)
		for _, rs := range []string{"10.20.1.2", "10.20.2.2"} {
			fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", rs, p)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// brokenConf is lifeConf(ports...) followed by a virtual server whose
// block is never closed: config refuses the whole file.
func brokenConf(ports ...int) string {
	return lifeConf(ports...) + "virtual_server 10.10.0.100 9090 {\n  lb_algo rr\n  lb_kind NAT\n"
}

// lifeTable is the ipvsadm shape of lifeConf(ports...) plus extra
// services ("TCP 10.99.0.1:81 rr" -> no destinations).
func lifeTable(ports []int, extra ...string) string {
	m := map[string][]string{}
	for _, p := range ports {
		m[fmt.Sprintf("TCP 10.10.0.100:%d rr", p)] = []string{
			fmt.Sprintf("10.20.1.2:%d Masq 1", p), fmt.Sprintf("10.20.2.2:%d Masq 1", p)}
	}
	for _, e := range extra {
		m[e] = nil
	}
	return want(m)
}

// statusPorts lists the ports of the virtual servers on 10.10.0.100 in a
// status reply, and how many of their real servers are healthy.
func statusPorts(st api.Status) map[uint16]int {
	out := map[uint16]int{}
	for _, vs := range st.VirtualServers {
		if vs.Address != "10.10.0.100" {
			continue
		}
		n := 0
		for _, rs := range vs.RealServers {
			if rs.Healthy {
				n++
			}
		}
		out[vs.Port] = n
	}
	return out
}

// writeLife writes text as the lab's configuration file.
func (dl *daemonLab) writeLife(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(dl.dir, "keepalived.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// stop sends SIGTERM and wants exit status 0 within lifeLimit.
func (d *daemon) stop() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	if err := d.waitExit(lifeLimit); err != nil {
		d.t.Fatalf("hakeepd after SIGTERM: %v, want exit status 0", err)
	}
}

// waitTableOrWedged is waitTable that, when the table never comes, also
// says whether the API still answers: a wedged director and a slow one
// fail differently.
func (d *daemon) waitTableOrWedged(what, want string) {
	d.t.Helper()
	deadline := time.Now().Add(lifeLimit)
	for {
		d.running()
		tab := d.ipvsadm()
		if tab.shape() == want {
			return
		}
		if time.Now().After(deadline) {
			api := "answers"
			if _, err := d.tryStatus(apiLimit); err != nil {
				api = fmt.Sprintf("does not answer within %s either (%v): the director is wedged", apiLimit, err)
			}
			d.t.Fatalf("%s: ipvsadm -Ln after %s:\n%s\nwant:\n%s\nthe API %s", what, lifeLimit, tab.shape(), want, api)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDaemonFirstVirtualServerBySIGHUP: a daemon started with VRRP only
// gets its first virtual server by SIGHUP. The service reaches the kernel,
// the API keeps answering, and SIGTERM still stops the daemon cleanly.
func TestDaemonFirstVirtualServerBySIGHUP(t *testing.T) {
	dl := newDaemonLab(t)
	conf := dl.writeLife(t, lifeConf())
	d := startDaemon(t, dl.bin, dl.d, dl.dir, conf)
	if st := d.waitAPI(lifeLimit); len(st.VirtualServers) != 0 {
		t.Fatalf("virtual servers before any was configured: %+v", st.VirtualServers)
	}
	if got := d.ipvsadm().shape(); got != "" {
		t.Fatalf("IPVS table before any virtual server was configured:\n%s", got)
	}

	logAt := d.logLen()
	dl.writeLife(t, lifeConf(80))
	d.signal(syscall.SIGHUP)
	d.waitTableOrWedged("first virtual server added by SIGHUP", lifeTable([]int{80}))
	d.waitLog(logAt, lifeLimit, "reload complete")
	if got := statusPorts(d.apiStatus(apiLimit)); len(got) != 1 {
		t.Errorf("status after the reload lists ports %v, want the virtual server on :80", got)
	}
	// The checkers of the new service run: both real servers listen.
	deadline := time.Now().Add(lifeLimit)
	for statusPorts(d.apiStatus(apiLimit))[80] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("real servers of the added virtual server not healthy within %s: %+v", lifeLimit, d.apiStatus(apiLimit).VirtualServers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.stop()
}

// TestDaemonBrokenSIGHUP: a file with an error is refused as a whole:
// whether it would add the first virtual server or replace one, the kernel
// table and the daemon's view stay as they were and the API answers.
func TestDaemonBrokenSIGHUP(t *testing.T) {
	dl := newDaemonLab(t)
	for _, tc := range []struct {
		name          string
		running, file []int // ports of the running and the broken file
	}{
		{"would_add_the_first_virtual_server", nil, []int{80}},
		{"would_replace_a_virtual_server", []int{80}, []int{8080}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh(t, "ip", "netns", "exec", dl.d, "ipvsadm", "-C")
			conf := dl.writeLife(t, lifeConf(tc.running...))
			d := startDaemon(t, dl.bin, dl.d, dl.dir, conf)
			d.waitAPI(lifeLimit)
			before := lifeTable(tc.running)
			d.waitTable("table at start", before, lifeLimit)

			logAt := d.logLen()
			dl.writeLife(t, brokenConf(tc.file...))
			d.signal(syscall.SIGHUP)
			d.waitLog(logAt, lifeLimit, "reload refused")
			d.waitLog(logAt, lifeLimit, "keepalived.conf:") // the error's file:line
			st := d.apiStatus(apiLimit)
			if got := d.ipvsadm().shape(); got != before {
				t.Fatalf("table changed by a refused reload:\n%s\nwant:\n%s", got, before)
			}
			if got := statusPorts(st); len(got) != len(tc.running) {
				t.Errorf("status after a refused reload lists ports %v, want %v", got, tc.running)
			}
			d.running()
			d.stop()
		})
	}
}

// kernelSample is one read of the kernel table during a restart.
type kernelSample struct {
	at    time.Duration // since sampling began
	err   error
	shape string // "" when the service is missing
}

// sampleService reads the service's destinations from the kernel of the
// namespace as fast as it can (1 ms apart, not to starve the daemon on
// two vCPUs) until stop is closed.
func sampleService(k *lvs.Kernel, svc string, stop <-chan struct{}) []kernelSample {
	var out []kernelSample
	start := time.Now()
	for {
		select {
		case <-stop:
			return out
		default:
		}
		tab, err := k.Dump()
		s := kernelSample{at: time.Since(start), err: err}
		for key, srv := range tab {
			if key.String() != svc {
				continue
			}
			var ds []string
			for _, d := range srv.SortedDests() {
				ds = append(ds, fmt.Sprintf("%s w%d", d.Key(), d.Weight))
			}
			s.shape = svc + " | " + strings.Join(ds, ", ")
		}
		out = append(out, s)
		time.Sleep(time.Millisecond)
	}
}

// TestDaemonRestartKeepsTable: SIGTERM leaves the table (no
// lvs_flush_on_stop), and a new daemon with the same file adopts it: the
// kernel is read every millisecond from just before the exec until the
// new daemon serves with its checks done, and every read has the service
// with both real servers.
func TestDaemonRestartKeepsTable(t *testing.T) {
	dl := newDaemonLab(t)
	conf := dl.writeLife(t, lifeConf(80))
	full := lifeTable([]int{80})
	d := startDaemon(t, dl.bin, dl.d, dl.dir, conf)
	d.waitTable("table at start", full, lifeLimit)
	d.waitAPI(lifeLimit)
	d.stop()
	if got := d.ipvsadm().shape(); got != full {
		t.Fatalf("table after SIGTERM (no lvs_flush_on_stop keeps it):\n%s\nwant:\n%s", got, full)
	}

	k, err := lvs.NewKernel("/run/netns/"+dl.d, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	stop := make(chan struct{})
	var samples []kernelSample
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		samples = sampleService(k, svc80, stop)
	}()
	stopped := false
	endSampling := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer endSampling()

	d2 := startDaemon(t, dl.bin, dl.d, dl.dir, conf)
	// Ready: the API answers and both real servers passed their checks.
	deadline := time.Now().Add(lifeLimit)
	for {
		d2.running()
		st, err := d2.tryStatus(apiLimit)
		if err == nil && statusPorts(st)[80] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted daemon not ready within %s (status: %+v, err %v)", lifeLimit, st.VirtualServers, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A few more delay_loops: the first check results and resyncs after
	// readiness are part of the start too.
	ready := time.Now()
	for time.Since(ready) < 2*time.Second {
		d2.running()
		time.Sleep(50 * time.Millisecond)
	}
	endSampling()

	wantShape := svc80 + " | 10.20.1.2:80 w1, 10.20.2.2:80 w1"
	var missing, changed []string
	for _, s := range samples {
		switch {
		case s.err != nil:
			t.Fatalf("read the kernel table at %s: %v", s.at, s.err)
		case s.shape == "":
			missing = append(missing, s.at.Round(time.Millisecond).String())
		case s.shape != wantShape:
			changed = append(changed, fmt.Sprintf("%s: %s", s.at.Round(time.Millisecond), s.shape))
		}
	}
	if len(samples) < 50 {
		t.Fatalf("only %d kernel reads during the restart: too few to tell", len(samples))
	}
	t.Logf("%d kernel reads over %s of restart", len(samples), samples[len(samples)-1].at.Round(time.Millisecond))
	if len(missing) > 0 {
		t.Errorf("service missing from the kernel in %d of %d reads during the restart, at %s", len(missing), len(samples), strings.Join(missing[:min(len(missing), 10)], " "))
	}
	if len(changed) > 0 {
		t.Errorf("service's real servers changed in %d of %d reads during the restart (want %q), first: %s", len(changed), len(samples), wantShape, strings.Join(changed[:min(len(changed), 5)], "; "))
	}
	if got := d2.ipvsadm().shape(); got != full {
		t.Fatalf("table after the restart:\n%s\nwant:\n%s", got, full)
	}
	d2.stop()
}

// TestDaemonRestartRemovesDropped: a service removed from the file while
// the daemon was stopped is deleted by the next daemon, which knows it
// created it (the lvs state file in --state-dir); the other service stays
// as it was, and a foreign one added with ipvsadm is left alone.
func TestDaemonRestartRemovesDropped(t *testing.T) {
	dl := newDaemonLab(t)
	if out, _ := exec.Command(dl.bin, "-h").CombinedOutput(); !strings.Contains(string(out), "state-dir") {
		t.Fatalf("hakeepd has no --state-dir flag (the lvs state file is not in this build):\n%s", out)
	}
	state := t.TempDir()
	conf := dl.writeLife(t, lifeConf(80, 8080))
	d := startDaemon(t, dl.bin, dl.d, dl.dir, conf, "--state-dir", state)
	d.waitTable("both services at start", lifeTable([]int{80, 8080}), lifeLimit)
	d.waitAPI(lifeLimit)
	sh(t, "ip", "netns", "exec", dl.d, "ipvsadm", "-A", "-t", "10.99.0.1:81", "-s", "rr")
	d.stop()
	kept := lifeTable([]int{80, 8080}, foreign+" rr")
	if got := d.ipvsadm().shape(); got != kept {
		t.Fatalf("table after SIGTERM:\n%s\nwant:\n%s", got, kept)
	}

	dl.writeLife(t, lifeConf(80))
	d2 := startDaemon(t, dl.bin, dl.d, dl.dir, conf, "--state-dir", state)
	d2.waitTable(":8080 deleted after a restart without it, :80 and the foreign service kept",
		lifeTable([]int{80}, foreign+" rr"), lifeLimit)
	if got := statusPorts(d2.apiStatus(apiLimit)); len(got) != 1 {
		t.Errorf("status after the restart lists ports %v, want only 80", got)
	}
	d2.stop()
}
