package ipvs

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemonConf is the parameters of the end-to-end keepalived.conf: the
// seed documents' NAT director (one VRRP instance holding the VIP, a wrr
// NAT service with TCP_CHECK and HTTP_GET real servers) plus a service
// on :8080 with a sorry server.
type daemonConf struct {
	Dir         string // notify scripts write here
	Weight2     int    // weight of 10.20.2.2:80
	Inhibit     bool   // inhibit_on_failure on :80
	Quorum      bool   // :8080 gets a second real server, quorum 2, hysteresis 1
	FlushOnStop string // "", "lvs_flush_on_stop", "lvs_flush_on_stop VS"
	Second8080  bool   // :8080 gets 10.20.2.2:8080 too (without quorum)
	No8080      bool   // no :8080 service
	Priority    int    // VI_1's priority (default 150)
	HASuspend   bool   // ha_suspend on :80
	Broken      bool   // an error on a known line
}

// brokenLine is the line of the error in a Broken configuration.
const brokenLine = 2

func (c daemonConf) String() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	notify := func(name string) string {
		return fmt.Sprintf("    notify_up \"%s/notify.sh up %s\"\n    notify_down \"%s/notify.sh down %s\"", c.Dir, name, c.Dir, name)
	}
	w("global_defs {")
	if c.Broken {
		w("  router_id") // line 2: router_id without a value
	} else {
		w("  router_id e2e")
	}
	if c.FlushOnStop != "" {
		w("  %s", c.FlushOnStop)
	}
	w("}")
	prio := c.Priority
	if prio == 0 {
		prio = 150
	}
	w(`vrrp_instance VI_1 {
  state MASTER
  interface d0
  virtual_router_id 51
  priority %d
  advert_int 1
  virtual_ipaddress {
    10.10.0.100/32
  }
}
virtual_server 10.10.0.100 80 {
  delay_loop 1
  lb_algo wrr
  lb_kind NAT
  protocol TCP`, prio)
	if c.HASuspend {
		w("  ha_suspend")
	}
	if c.Inhibit {
		w("  inhibit_on_failure")
	}
	w("  real_server 10.20.1.2 80 {\n    weight 1\n%s", notify("rs1"))
	w("    TCP_CHECK {\n      connect_timeout 1\n    }\n  }")
	w("  real_server 10.20.2.2 80 {\n    weight %d\n%s", c.Weight2, notify("rs2"))
	w("    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n      connect_timeout 1\n    }\n  }")
	w("}")
	if c.No8080 {
		return b.String()
	}
	w(`virtual_server 10.10.0.100 8080 {
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
  sorry_server 10.20.2.2 8081`)
	if c.Quorum {
		w("  quorum 2\n  hysteresis 1")
		w("  quorum_up \"%s/quorum.sh up\"\n  quorum_down \"%s/quorum.sh down\"", c.Dir, c.Dir)
		w("  real_server 10.20.1.2 8080 {\n    weight 2\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }")
		w("  real_server 10.20.2.2 8080 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }")
	} else {
		w("  real_server 10.20.1.2 8080 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }")
		if c.Second8080 {
			w("  real_server 10.20.2.2 8080 {\n    weight 2\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }")
		}
	}
	w("}")
	return b.String()
}

const (
	svc80   = "TCP 10.10.0.100:80"
	svc8080 = "TCP 10.10.0.100:8080"
	foreign = "TCP 10.99.0.1:81"
)

// daemonLab is newLab's namespaces without the VIP (VRRP adds it), the
// real servers on :80 and :8080, the sorry server, and the scripts.
type daemonLab struct {
	*lab
	bin, dir string
	rs80     []*rserver // rs1, rs2 on :80
	rs8080   []*rserver // rs1, rs2 on :8080
	sorry    *rserver   // rs2 :8081
}

func newDaemonLab(t *testing.T) *daemonLab {
	t.Helper()
	bin, err := exec.LookPath("hakeepd")
	if err != nil {
		t.Skip("no hakeepd in PATH: run through vmtest -build ./cmd/hakeepd (make test-ipvs)")
	}
	l := newLab(t)
	// newLab puts the VIP on the director by hand: here VRRP must.
	sh(t, "ip", "-n", l.d, "addr", "del", "10.10.0.100/32", "dev", "d0")
	dl := &daemonLab{lab: l, bin: bin, dir: t.TempDir()}
	for _, s := range []string{"notify.sh", "quorum.sh"} {
		log := strings.TrimSuffix(s, ".sh") + ".log"
		script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s/%s\n", dl.dir, log)
		if err := os.WriteFile(filepath.Join(dl.dir, s), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dl.rs80 = []*rserver{{name: "rs1", ns: l.rs[0], addr: "10.20.1.2:80"}, {name: "rs2", ns: l.rs[1], addr: "10.20.2.2:80"}}
	dl.rs8080 = []*rserver{{name: "rs1-8080", ns: l.rs[0], addr: "10.20.1.2:8080"}, {name: "rs2-8080", ns: l.rs[1], addr: "10.20.2.2:8080"}}
	dl.sorry = &rserver{name: "sorry", ns: l.rs[1], addr: "10.20.2.2:8081"}
	for _, s := range append(append([]*rserver{dl.sorry}, dl.rs80...), dl.rs8080...) {
		s.start(t)
		t.Cleanup(s.stop)
	}
	return dl
}

func (dl *daemonLab) writeConf(t *testing.T, c daemonConf) string {
	t.Helper()
	c.Dir = dl.dir
	p := filepath.Join(dl.dir, "keepalived.conf")
	if err := os.WriteFile(p, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDaemonEndToEnd runs the real hakeepd binary as a NAT director in a
// namespace of the VM and drives it from outside: VRRP takes the VIP,
// checks decide the real servers, and the kernel table (ipvsadm -Ln) and
// client traffic through the VIP show the result.
func TestDaemonEndToEnd(t *testing.T) {
	dl := newDaemonLab(t)
	const limit = 20 * time.Second
	conf := dl.writeConf(t, daemonConf{Weight2: 1})
	if out, err := exec.Command(dl.bin, "-t", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("hakeepd -t: %v\n%s", err, out)
	}
	d := startDaemon(t, dl.bin, dl.d, dl.dir, conf)
	notifyLog := filepath.Join(dl.dir, "notify.log")
	full := map[string][]string{
		svc80:   {"10.20.1.2:80 Masq 1", "10.20.2.2:80 Masq 1"},
		svc8080: {"10.20.1.2:8080 Masq 1"},
	}
	sched := func(m map[string][]string) map[string][]string {
		out := map[string][]string{}
		for k, v := range m {
			s := " wrr"
			if k == svc8080 {
				s = " rr"
			}
			if k == foreign {
				s = " rr"
			}
			out[k+s] = v
		}
		return out
	}

	t.Run("start", func(t *testing.T) {
		d.t = t
		d.waitTable("table at start", want(sched(full)), limit)
		waitVIP(t, dl.d, "d0", "10.10.0.100", limit)
		if got := getVIP(t, dl.c, "10.10.0.100:80", 10); got["rs1"] != 5 || got["rs2"] != 5 {
			t.Fatalf("wrr 1:1 through the VIP: %v, want 5 each", got)
		}
		if got := getVIP(t, dl.c, "10.10.0.100:8080", 2); got["rs1-8080"] != 2 {
			t.Fatalf(":8080 through the VIP: %v, want rs1-8080", got)
		}
	})

	t.Run("check_fails_and_recovers", func(t *testing.T) {
		d.t = t
		// TCP_CHECK: rs1 stops listening.
		dl.rs80[0].stop()
		d.waitTable("rs1 out after its TCP_CHECK failed", want(sched(map[string][]string{
			svc80: {"10.20.2.2:80 Masq 1"}, svc8080: full[svc8080]})), limit)
		waitLines(t, notifyLog, []string{"down rs1"}, limit)
		hits := dl.rs80[0].hits.Load()
		if got := getVIP(t, dl.c, "10.10.0.100:80", 10); got["rs2"] != 10 {
			t.Fatalf("with rs1 down: %v, want all 10 on rs2", got)
		}
		if dl.rs80[0].hits.Load() != hits {
			t.Fatal("a request reached the stopped server")
		}
		dl.rs80[0].start(t)
		d.waitTable("rs1 back with its weight", want(sched(full)), limit)
		waitLines(t, notifyLog, []string{"down rs1", "up rs1"}, limit)

		// HTTP_GET: rs2 answers /health with 503.
		dl.rs80[1].sick.Store(true)
		d.waitTable("rs2 out after its HTTP_GET failed", want(sched(map[string][]string{
			svc80: {"10.20.1.2:80 Masq 1"}, svc8080: full[svc8080]})), limit)
		waitLines(t, notifyLog, []string{"down rs1", "up rs1", "down rs2"}, limit)
		if got := getVIP(t, dl.c, "10.10.0.100:80", 4); got["rs1"] != 4 {
			t.Fatalf("with rs2 failing its HTTP check: %v, want all on rs1", got)
		}
		dl.rs80[1].sick.Store(false)
		d.waitTable("rs2 back", want(sched(full)), limit)
		waitLines(t, notifyLog, []string{"down rs1", "up rs1", "down rs2", "up rs2"}, limit)
	})

	t.Run("sorry_server", func(t *testing.T) {
		d.t = t
		dl.rs8080[0].stop()
		d.waitTable("sorry server when every real server is down", want(sched(map[string][]string{
			svc80: full[svc80], svc8080: {"10.20.2.2:8081 Masq 1"}})), limit)
		if got := getVIP(t, dl.c, "10.10.0.100:8080", 2); got["sorry"] != 2 {
			t.Fatalf(":8080 with its only real server down: %v, want the sorry server", got)
		}
		dl.rs8080[0].start(t)
		d.waitTable("sorry server out again", want(sched(full)), limit)
	})

	t.Run("sighup", func(t *testing.T) {
		d.t = t
		// A connection held open through the VIP across the reload.
		conn, err := dialer(dl.c)(context.Background(), "tcp", "10.10.0.100:80")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		deadline := time.Now().Add(limit)
		for d.ipvsadm().activeConns(svc80) != 1 {
			if time.Now().After(deadline) {
				t.Fatal("held connection not in ipvsadm")
			}
			time.Sleep(100 * time.Millisecond)
		}
		conns := serviceConns(t, dl.d, svc80)
		logAt := d.logLen()
		dl.writeConf(t, daemonConf{Weight2: 3})
		d.signal(syscall.SIGHUP)
		changed := map[string][]string{svc80: {"10.20.1.2:80 Masq 1", "10.20.2.2:80 Masq 3"}, svc8080: full[svc8080]}
		tab := d.waitTable("weight 3 after SIGHUP", want(sched(changed)), limit)
		d.waitLog(logAt, limit, "reload complete")
		d.waitLog(logAt, limit, "ipvs reconciled")
		if l := d.log.String()[logAt:]; strings.Contains(l, "delete-") || strings.Contains(l, "add-") {
			t.Errorf("the reload deleted or added IPVS entries instead of one update:\n%s", l)
		}
		if n := tab.activeConns(svc80); n != 1 {
			t.Errorf("held connection lost from IPVS after the reload: %d active", n)
		}
		// The kernel's connection counter lives with the service: lower
		// means it was deleted and added again.
		if after := serviceConns(t, dl.d, svc80); after < conns {
			t.Errorf("service connection counter went from %d to %d: the service was recreated", conns, after)
		}
		fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(conn); err != nil || !strings.Contains(string(b), "rs") {
			t.Errorf("held connection after the reload: %q %v", b, err)
		}
		// wrr 1:3: any 8 consecutive picks are two whole cycles.
		if got := getVIP(t, dl.c, "10.10.0.100:80", 8); got["rs1"] != 2 || got["rs2"] != 6 {
			t.Errorf("wrr 1:3 after the reload: %v, want 2 and 6", got)
		}

		// A file with an error: refused with file:line, nothing changes.
		logAt = d.logLen()
		bad := dl.writeConf(t, daemonConf{Weight2: 5, Broken: true})
		d.signal(syscall.SIGHUP)
		d.waitLog(logAt, limit, "reload refused")
		d.waitLog(logAt, limit, fmt.Sprintf("%s:%d", bad, brokenLine))
		if got := d.ipvsadm().shape(); got != want(sched(changed)) {
			t.Fatalf("table changed by a refused reload:\n%s", got)
		}
		full = changed
		dl.writeConf(t, daemonConf{Weight2: 3})
	})

	t.Run("drift_repaired_foreign_kept", func(t *testing.T) {
		d.t = t
		start := time.Now()
		sh(t, "ip", "netns", "exec", dl.d, "ipvsadm", "-C")
		d.waitTable("table restored after ipvsadm -C", want(sched(full)), 10*time.Second)
		t.Logf("restored %.1f s after ipvsadm -C", time.Since(start).Seconds())
		// A foreign service appears and one of ours loses a destination:
		// once the destination is back, a resync has seen the foreign
		// service and must have left it alone.
		sh(t, "ip", "netns", "exec", dl.d, "ipvsadm", "-A", "-t", "10.99.0.1:81", "-s", "rr")
		sh(t, "ip", "netns", "exec", dl.d, "ipvsadm", "-d", "-t", "10.10.0.100:80", "-r", "10.20.1.2:80")
		full[foreign] = nil
		d.waitTable("destination restored, foreign service kept", want(sched(full)), 10*time.Second)
	})

	t.Run("sighup_adds_and_removes", func(t *testing.T) {
		d.t = t
		// A real server added by a reload: checked and programmed.
		dl.writeConf(t, daemonConf{Weight2: 3, Second8080: true})
		d.signal(syscall.SIGHUP)
		more := map[string][]string{svc80: full[svc80], svc8080: {"10.20.1.2:8080 Masq 1", "10.20.2.2:8080 Masq 2"}, foreign: nil}
		d.waitTable("real server added by SIGHUP", want(sched(more)), limit)
		// A whole virtual server removed: deleted from the kernel, the
		// foreign service and the other one untouched.
		logAt := d.logLen()
		dl.writeConf(t, daemonConf{Weight2: 3, No8080: true})
		d.signal(syscall.SIGHUP)
		less := map[string][]string{svc80: full[svc80], foreign: nil}
		d.waitTable("virtual server removed by SIGHUP", want(sched(less)), limit)
		d.waitLog(logAt, limit, "reload complete")
		d.waitLog(logAt, limit, "ipvs reconciled")
		if l := d.log.String()[logAt:]; strings.Contains(l, "delete-dest") || strings.Count(l, "delete-service") != 1 {
			t.Errorf("removing one virtual server: want one delete-service and nothing else deleted:\n%s", l)
		}
		full = less
	})

	t.Run("sigterm_keeps_table", func(t *testing.T) {
		d.t = t
		d.signal(syscall.SIGTERM)
		if err := d.waitExit(limit); err != nil {
			t.Fatalf("hakeepd exit after SIGTERM: %v", err)
		}
		if got := d.ipvsadm().shape(); got != want(sched(full)) {
			t.Fatalf("table after SIGTERM (default keeps it):\n%s\nwant:\n%s", got, want(sched(full)))
		}
	})

	// A second daemon adopts the table: inhibit_on_failure, quorum with
	// hysteresis, and lvs_flush_on_stop VS.
	os.Remove(notifyLog)
	conf = dl.writeConf(t, daemonConf{Weight2: 1, Inhibit: true, Quorum: true, FlushOnStop: "lvs_flush_on_stop VS"})
	d = startDaemon(t, dl.bin, dl.d, dl.dir, conf)
	quorumLog := filepath.Join(dl.dir, "quorum.log")
	full = map[string][]string{
		svc80:   {"10.20.1.2:80 Masq 1", "10.20.2.2:80 Masq 1"},
		svc8080: {"10.20.1.2:8080 Masq 2", "10.20.2.2:8080 Masq 1"},
		foreign: nil,
	}

	t.Run("restart_adopts", func(t *testing.T) {
		d.t = t
		d.waitTable("second daemon's table", want(sched(full)), limit)
		waitVIP(t, dl.d, "d0", "10.10.0.100", limit)
	})

	t.Run("inhibit_on_failure", func(t *testing.T) {
		d.t = t
		dl.rs80[0].stop()
		inhibited := map[string][]string{svc80: {"10.20.1.2:80 Masq 0", "10.20.2.2:80 Masq 1"}, svc8080: full[svc8080], foreign: nil}
		d.waitTable("rs1 at weight 0", want(sched(inhibited)), limit)
		waitLines(t, notifyLog, []string{"down rs1"}, limit)
		// A request scheduled to the stopped server would be refused.
		if got := getVIP(t, dl.c, "10.10.0.100:80", 6); got["rs2"] != 6 {
			t.Fatalf("with rs1 inhibited: %v, want all on rs2", got)
		}
		dl.rs80[0].start(t)
		d.waitTable("rs1 back at weight 1", want(sched(full)), limit)
		waitLines(t, notifyLog, []string{"down rs1", "up rs1"}, limit)
	})

	t.Run("quorum_hysteresis", func(t *testing.T) {
		d.t = t
		// quorum 2, hysteresis 1, weights 2+1: losing rs1 leaves 1, not
		// below quorum-hysteresis, so the pool keeps serving.
		dl.rs8080[0].stop()
		d.waitTable("rs1:8080 out, quorum kept by hysteresis", want(sched(map[string][]string{
			svc80: full[svc80], svc8080: {"10.20.2.2:8080 Masq 1"}, foreign: nil})), limit)
		before, _ := os.ReadFile(quorumLog)
		if strings.Contains(string(before), "down") {
			t.Fatalf("quorum_down ran within the hysteresis: %q", before)
		}
		dl.rs8080[1].stop()
		d.waitTable("quorum lost: sorry server", want(sched(map[string][]string{
			svc80: full[svc80], svc8080: {"10.20.2.2:8081 Masq 1"}, foreign: nil})), limit)
		prefix := strings.Fields(string(before))
		waitLines(t, quorumLog, append(prefix, "down"), limit)
		if got := getVIP(t, dl.c, "10.10.0.100:8080", 2); got["sorry"] != 2 {
			t.Fatalf(":8080 without quorum: %v, want the sorry server", got)
		}
		dl.rs8080[0].start(t)
		dl.rs8080[1].start(t)
		d.waitTable("quorum back", want(sched(full)), limit)
		waitLines(t, quorumLog, append(prefix, "down", "up"), limit)
	})

	t.Run("sigterm_flush_on_stop_vs", func(t *testing.T) {
		d.t = t
		d.signal(syscall.SIGTERM)
		if err := d.waitExit(limit); err != nil {
			t.Fatalf("hakeepd exit after SIGTERM: %v", err)
		}
		// lvs_flush_on_stop VS: keepalived removes its own virtual
		// servers and leaves the rest.
		if got, w := d.ipvsadm().shape(), want(map[string][]string{foreign + " rr": nil}); got != w {
			t.Fatalf("table after SIGTERM with lvs_flush_on_stop VS:\n%s\nwant:\n%s", got, w)
		}
	})
}

// TestDaemonFlushOnStopAll: a bare lvs_flush_on_stop is keepalived's
// LVS_FLUSH_FULL: at shutdown the whole IPVS table is flushed, foreign
// services included (lvs_flush_on_stop VS removes only its own).
func TestDaemonFlushOnStopAll(t *testing.T) {
	dl := newDaemonLab(t)
	sh(t, "ip", "netns", "exec", dl.d, "ipvsadm", "-A", "-t", "10.99.0.1:81", "-s", "rr")
	conf := dl.writeConf(t, daemonConf{Weight2: 1, FlushOnStop: "lvs_flush_on_stop"})
	d := startDaemon(t, dl.bin, dl.d, dl.dir, conf)
	d.waitTable("table at start", want(map[string][]string{
		svc80 + " wrr":  {"10.20.1.2:80 Masq 1", "10.20.2.2:80 Masq 1"},
		svc8080 + " rr": {"10.20.1.2:8080 Masq 1"},
		foreign + " rr": nil,
	}), 20*time.Second)
	d.signal(syscall.SIGTERM)
	if err := d.waitExit(20 * time.Second); err != nil {
		t.Fatalf("hakeepd exit after SIGTERM: %v", err)
	}
	if got := d.ipvsadm().shape(); got != "" {
		t.Fatalf("table after SIGTERM with lvs_flush_on_stop (keepalived flushes everything):\n%s", got)
	}
}

// TestDaemonHASuspend: a virtual server with ha_suspend is in the kernel
// only while this director is MASTER of the VIP's instance. A second
// hakeepd (VRRP only, priority 200) on the client's end of the link is
// the other director.
func TestDaemonHASuspend(t *testing.T) {
	dl := newDaemonLab(t)
	const limit = 20 * time.Second
	peerDir := t.TempDir()
	peerConf := filepath.Join(peerDir, "keepalived.conf")
	err := os.WriteFile(peerConf, []byte(`vrrp_instance VI_1 {
  state BACKUP
  interface c0
  virtual_router_id 51
  priority 200
  advert_int 1
  virtual_ipaddress {
    10.10.0.100/32
  }
}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	startPeer := func() *daemon {
		return startDaemon(t, dl.bin, dl.c, peerDir, peerConf, "-P")
	}
	peer := startPeer()
	waitVIP(t, dl.c, "c0", "10.10.0.100", limit)

	conf := dl.writeConf(t, daemonConf{Weight2: 1, Priority: 100, HASuspend: true})
	d := startDaemon(t, dl.bin, dl.d, dl.dir, conf)
	backup := want(map[string][]string{svc8080 + " rr": {"10.20.1.2:8080 Masq 1"}})
	master := want(map[string][]string{
		svc80 + " wrr":  {"10.20.1.2:80 Masq 1", "10.20.2.2:80 Masq 1"},
		svc8080 + " rr": {"10.20.1.2:8080 Masq 1"},
	})
	// BACKUP: :8080 is programmed (the daemon works), :80 is not.
	d.waitLog(0, limit, "Entering BACKUP STATE")
	d.waitTable("ha_suspend service absent while BACKUP", backup, limit)

	// The peer stops (priority 0 advert): this director becomes MASTER.
	peer.signal(syscall.SIGTERM)
	if err := peer.waitExit(limit); err != nil {
		t.Fatalf("peer exit: %v", err)
	}
	waitVIP(t, dl.d, "d0", "10.10.0.100", limit)
	d.waitTable("ha_suspend service present while MASTER", master, limit)
	if got := getVIP(t, dl.c, "10.10.0.100:80", 4); got["rs1"] != 2 || got["rs2"] != 2 {
		t.Fatalf("through the VIP as MASTER: %v", got)
	}

	// The peer is back and preempts: the service goes again.
	startPeer()
	waitVIP(t, dl.c, "c0", "10.10.0.100", limit)
	d.waitTable("ha_suspend service removed after losing MASTER", backup, limit)
}
