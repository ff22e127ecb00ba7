package ipvs

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	netlab "hakeep/internal/lab"
	"hakeep/internal/vmtest"
)

// TestDaemonSyncFailover: two hakeepd directors (DR) share a VIP by VRRP;
// with lvs_sync_daemon the MASTER's kernel sends its IPVS connections to
// the BACKUP's, so a TCP connection opened through the first director
// goes on through the second after a failover. Without it (the control
// case) the second director knows nothing of the connection and its
// kernel answers the next segment with a reset. The same run checks the
// operator keywords around it on the real daemon: notify_fifo lines,
// startup_script before VRRP, shutdown_script after the VIP is gone.
func TestDaemonSyncFailover(t *testing.T) {
	vmtest.RequireIPVS(t)
	bin, err := exec.LookPath("hakeepd")
	if err != nil {
		t.Skip("no hakeepd in PATH: run through vmtest -build ./cmd/hakeepd (make test-ipvs)")
	}
	for _, tc := range []struct {
		name     string
		sync     bool
		survives bool
	}{
		{"with lvs_sync_daemon", true, true},
		{"without it (control)", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) { syncFailover(t, bin, tc.sync, tc.survives) })
	}
}

func syncFailover(t *testing.T, bin string, withSync, survives bool) {
	const limit = 30 * time.Second
	p := fmt.Sprintf("sy%d", os.Getpid())
	if !withSync {
		p += "n"
	}
	sw, c, r := p+"sw", p+"c", p+"r"
	ds := []string{p + "d1", p + "d2"}
	attach := bridgeLab(t, sw, append([]string{c, r}, ds...)...)
	attach(c, "c0", "10.31.0.2/24", 0)
	attach(ds[0], "d0", "10.31.0.1/24", 1)
	attach(ds[1], "d0", "10.31.0.3/24", 2)
	attach(r, "e0", "10.31.0.11/24", 3)
	// DR: the real server holds the VIP on lo and never answers ARP for it.
	sh(t, "ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
	sh(t, "ip", "-n", r, "addr", "add", "10.31.0.100/32", "dev", "lo")
	var ln net.Listener
	if err := netlab.InNamedNS(r, func() (err error) { ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echo(ln)

	dir := t.TempDir()
	fifo := filepath.Join(dir, "d1.fifo")
	events := filepath.Join(dir, "events")
	// The scripts run in d1's namespace: the shutdown one records whether
	// the VIP is still there.
	startSh, stopSh := filepath.Join(dir, "start.sh"), filepath.Join(dir, "stop.sh")
	writeScript(t, startSh, "echo startup >> '"+events+"'\n")
	writeScript(t, stopSh, "if ip -o addr show dev d0 | grep -q 10.31.0.100; then echo shutdown-with-vip; else echo shutdown-without-vip; fi >> '"+events+"'\n")
	conf := func(name string, prio int, extra string) string {
		syncd := ""
		if withSync {
			syncd = "  lvs_sync_daemon d0 VI_1 id 31\n"
		}
		text := fmt.Sprintf(`global_defs {
  router_id %s
  script_user root
%s%s}
vrrp_instance VI_1 {
  state BACKUP
  interface d0
  virtual_router_id 31
  priority %d
  advert_int 1
  virtual_ipaddress {
    10.31.0.100/32
  }
}
virtual_server 10.31.0.100 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.31.0.11 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 1
    }
  }
}
`, name, syncd, extra, prio)
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(sub, "keepalived.conf")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	d1conf := conf("d1", 150, fmt.Sprintf("  notify_fifo %s\n  startup_script %s\n  shutdown_script %s\n", fifo, startSh, stopSh))
	d2conf := conf("d2", 100, "")
	// Each its own record of owned services: they share the VM's /run.
	d1 := startDaemon(t, bin, ds[0], filepath.Join(dir, "d1"), d1conf, "--state-dir", filepath.Join(dir, "d1"))
	d2 := startDaemon(t, bin, ds[1], filepath.Join(dir, "d2"), d2conf, "--state-dir", filepath.Join(dir, "d2"))
	waitVIP(t, ds[0], "d0", "10.31.0.100", limit)
	waitLines(t, events, []string{"startup"}, limit)
	lines := readFifo(t, fifo)
	expectLine(t, lines, `INSTANCE "VI_1" MASTER 150`, limit)
	if withSync {
		waitDaemon(t, ds[0], "master sync daemon (mcast=d0, syncid=31", limit)
		waitDaemon(t, ds[1], "backup sync daemon (mcast=d0, syncid=31", limit)
	}
	d2.waitTable("d2's table", want(map[string][]string{"TCP 10.31.0.100:80 rr": {"10.31.0.11:80 Route 1"}}), limit)

	// A connection through d1, a few exchanges (IPVS syncs a connection
	// after its third packet, and flushes its sync buffer every 2 s).
	var conn net.Conn
	if err := netlab.InNamedNS(c, func() (err error) { conn, err = net.DialTimeout("tcp", "10.31.0.100:80", 5*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	ask := func(msg string) error {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(conn, "%s\n", msg); err != nil {
			return err
		}
		l, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if l != msg+"\n" {
			return fmt.Errorf("echo %q, want %q", l, msg)
		}
		return nil
	}
	for i := range 5 {
		if err := ask(fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if withSync {
		// The backup's kernel holds the connection before any failover.
		deadline := time.Now().Add(limit)
		for !strings.Contains(sh(t, "ip", "netns", "exec", ds[1], "ipvsadm", "-Lnc"), "10.31.0.2:") {
			if time.Now().After(deadline) {
				t.Fatalf("connection not synced to d2:\n%s", sh(t, "ip", "netns", "exec", ds[1], "ipvsadm", "-Lnc"))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Failover: d1 stops (priority 0 advert, VIP removed); d2 takes over.
	d1.signal(syscall.SIGTERM)
	if err := d1.waitExit(limit); err != nil {
		t.Fatalf("d1 exit: %v", err)
	}
	waitVIP(t, ds[1], "d0", "10.31.0.100", limit)
	waitLines(t, events, []string{"startup", "shutdown-without-vip"}, limit)
	if withSync {
		waitDaemon(t, ds[1], "master sync daemon (mcast=d0, syncid=31", limit)
	}
	err := ask("after failover")
	switch {
	case survives && err != nil:
		t.Fatalf("the connection did not survive the failover: %v", err)
	case !survives && err == nil:
		t.Fatal("the connection survived without lvs_sync_daemon: the control case proves nothing")
	}
	d2.running()
}

func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := c.Write([]byte(l)); err != nil {
					return
				}
			}
		}()
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// readFifo follows a notify fifo (once the daemon has created it).
func readFifo(t *testing.T, path string) <-chan string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := os.Stat(path)
		if err == nil && st.Mode()&os.ModeNamedPipe != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fifo %s not created: %v", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	out := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			out <- sc.Text()
		}
	}()
	return out
}

func expectLine(t *testing.T, lines <-chan string, want string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	var seen []string
	for {
		select {
		case l := <-lines:
			if l == want {
				return
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("no fifo line %q; got %q", want, seen)
		}
	}
}

// waitDaemon polls ipvsadm -L --daemon in ns for a line starting with
// prefix.
func waitDaemon(t *testing.T, ns, prefix string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out := sh(t, "ip", "netns", "exec", ns, "ipvsadm", "-L", "--daemon")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, prefix) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %s's ipvsadm -L --daemon:\n%s", prefix, ns, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
