// Package lab_test holds the VRRP lab scenarios (issue 3): three directors
// in network namespaces, each scenario asserting VIP ownership by polling
// every namespace with a hard deadline. Every scenario runs with real
// keepalived (proving the scenario and the harness) and with hakeepd once
// the built hakeepd actually speaks VRRP; mixed rows put both in one
// virtual router.
package lab_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
)

// impl names a VRRP implementation under test.
type impl string

const (
	keepalived impl = "keepalived"
	hakeepd    impl = "hakeepd"
)

var (
	vip4 = netip.MustParseAddr("10.99.0.100")
	vip5 = netip.MustParseAddr("10.99.0.101")
	vip6 = netip.MustParseAddr("fd00:99::100")
)

// env is one scenario's lab: which implementation runs on which host, the
// daemons started so far.
type env struct {
	t     testing.TB
	l     *lab.Lab
	impls map[string]impl
	d     map[string]*lab.Daemon
	hosts []string
	alive map[string]bool
	hkBin string
	mon   *lab.Monitor
	// doubleOwnerOK: the scenario makes two owners on purpose (plain
	// VRRP's split brain); the whole-run monitor does not fail it.
	doubleOwnerOK bool
}

func newEnv(t testing.TB, impls ...impl) *env {
	t.Helper()
	need := []string{"tcpdump"}
	for _, im := range impls {
		if im == keepalived {
			need = append(need, "keepalived")
		}
	}
	l := labtest.New(t, len(impls), lab.Options{Extra: []string{"client"}}, need...)
	e := &env{t: t, l: l, impls: map[string]impl{}, d: map[string]*lab.Daemon{}, alive: map[string]bool{}}
	// Never two owners, through the whole scenario (beyond a handover's
	// moment), among the daemons that are not crashed.
	e.mon = l.Monitor(vip4, vip5, vip6)
	t.Cleanup(func() {
		r := e.mon.Stop()
		if err := r.Check(lab.HandoverGrace); err != nil && !e.doubleOwnerOK {
			t.Errorf("%v; owner changes:", err)
			for _, c := range r.Changes {
				t.Logf("  %s", c)
			}
		}
	})
	for i, im := range impls {
		h := fmt.Sprintf("h%d", i+1)
		e.impls[h] = im
		e.hosts = append(e.hosts, h)
		if im == hakeepd {
			e.hkBin = hakeepdBin(t)
		}
	}
	return e
}

// notifyScript writes a script that appends its arguments to host's
// notify log and returns its path (root-owned, mode 755: script security).
func (e *env) notifyScript(host string) string {
	e.t.Helper()
	path := filepath.Join(e.l.Dir, "notify."+host+".sh")
	script := "#!/bin/sh\necho \"$@\" >> " + filepath.Join(e.l.Dir, "notify."+host+".log") + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// start runs host's implementation with conf.
func (e *env) start(host string, c lab.Conf) *lab.Daemon {
	e.t.Helper()
	c.RouterID = host
	var d *lab.Daemon
	var err error
	switch e.impls[host] {
	case keepalived:
		d, err = e.l.StartKeepalived(host, c.String())
	case hakeepd:
		d, err = e.l.StartHakeepd(e.hkBin, host, c.String())
	}
	if err != nil {
		e.t.Fatalf("start %s on %s: %v", e.impls[host], host, err)
	}
	e.d[host] = d
	e.alive[host] = true
	return d
}

// kill is a crash (kill -9 of the daemon and its children).
func (e *env) kill(host string) {
	e.mon.Exclude(host, true) // its VIP stays behind: not a live owner
	e.d[host].Kill()
	e.alive[host] = false
}

// stop is a graceful stop (SIGTERM: priority-0 advert, VIPs removed).
func (e *env) stop(host string) {
	e.t.Helper()
	if err := e.d[host].Stop(10 * time.Second); err != nil {
		e.t.Fatal(err)
	}
	e.alive[host] = false
}

func (e *env) restart(host string) {
	e.t.Helper()
	if err := e.d[host].Restart(); err != nil {
		e.t.Fatal(err)
	}
	e.alive[host] = true
	// The crashed run's VIPs are stale: the new run removes them at start
	// (keepalived does), and only then is the host counted as an owner.
	for _, a := range []netip.Addr{vip4, vip5, vip6} {
		if _, err := e.l.WaitNoAddr(host, a, 3*time.Second); err != nil {
			e.t.Fatalf("restarted %s on %s did not remove its stale VIP: %v", e.impls[host], host, err)
		}
	}
	e.mon.Exclude(host, false)
}

func (e *env) live() []string {
	var out []string
	for _, h := range e.hosts {
		if e.alive[h] {
			out = append(out, h)
		}
	}
	return out
}

// owner waits until exactly want (among the live daemons: a crashed
// keepalived leaves its VIP behind) holds addr, failing on two owners.
func (e *env) owner(addr netip.Addr, want string, timeout time.Duration) time.Duration {
	e.t.Helper()
	took, err := e.l.WaitOwner(addr, want, timeout, e.live()...)
	if err != nil {
		e.t.Fatal(err)
	}
	return took
}

// stable asserts want alone holds addr for d.
func (e *env) stable(addr netip.Addr, want string, d time.Duration) {
	e.t.Helper()
	if err := e.l.StableOwner(addr, want, d, e.live()...); err != nil {
		e.t.Fatal(err)
	}
}

// notifications returns the notify lines host's daemon wrote so far.
func (e *env) notifications(host string) []string {
	b, _ := os.ReadFile(filepath.Join(e.l.Dir, "notify."+host+".log"))
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

var (
	hkOnce   sync.Once
	hkPath   string
	hkReason string // why hakeepd rows skip
)

// hakeepdBin builds hakeepd once (or takes $HAKEEPD_BIN) and checks that
// it really runs VRRP: one instance alone in a lab must send adverts. It
// skips t otherwise, so wiring VRRP into hakeepd enables these rows.
func hakeepdBin(t testing.TB) string {
	t.Helper()
	hkOnce.Do(func() {
		hkPath = os.Getenv("HAKEEPD_BIN")
		if hkPath == "" {
			dir, err := os.MkdirTemp("", "hakeepd-bin-")
			if err != nil {
				hkReason = err.Error()
				return
			}
			hkPath = filepath.Join(dir, "hakeepd")
			out, err := exec.Command("go", "build", "-o", hkPath, "hakeep/cmd/hakeepd").CombinedOutput()
			if err != nil {
				hkReason = fmt.Sprintf("hakeepd does not build: %v: %s", err, out)
				return
			}
		}
		hkReason = probeVRRP(hkPath)
	})
	if hkReason != "" {
		t.Skip(hkReason)
	}
	return hkPath
}

// probeVRRP starts hakeepd alone with one instance and reports "" if it
// sent a VRRP advert within 3 s, else why not.
func probeVRRP(bin string) string {
	_ = lab.RemoveOrphans("hkprobe")
	l, err := lab.New(fmt.Sprintf("hkprobe%d-", os.Getpid()), 1, lab.Options{})
	if err != nil {
		return "cannot build probe lab: " + err.Error()
	}
	defer l.Close()
	capt, err := l.StartCapture("probe", "")
	if err != nil {
		return "cannot capture: " + err.Error()
	}
	conf := lab.Conf{Version: 3, Instances: []lab.Instance{{Name: "VI_1", State: "MASTER", VRID: 51, Priority: 150,
		AdvertInt: 0.1, VIPs: []string{"10.99.0.100/32"}}}}.String()
	d, err := l.StartHakeepd(bin, "h1", conf)
	if err != nil {
		return "hakeepd does not run VRRP yet: it does not start: " + err.Error()
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && d.Running() {
		time.Sleep(100 * time.Millisecond)
	}
	tail := d.Tail(5)
	d.Stop(5 * time.Second)
	pk, err := capt.Packets()
	if err != nil {
		return "cannot read probe capture: " + err.Error()
	}
	if len(pk.From(51, netip.Addr{})) == 0 {
		return "hakeepd does not run VRRP yet (no advert within 3 s; log tail: " + tail + ")"
	}
	return ""
}

// ping checks that the client reaches addr and returns which host's MAC
// its ARP entry names.
func (e *env) clientView(addr netip.Addr) string {
	e.t.Helper()
	if err := e.l.Ping("client", addr); err != nil {
		e.t.Fatalf("client ping %s: %v", addr, err)
	}
	mac, err := e.l.Neigh("client", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	if h := e.l.HostByMAC(mac); h != nil {
		return h.Name
	}
	return fmt.Sprint(mac)
}

// waitNotify polls until host's notify log holds every one of lines.
func (e *env) waitNotify(host string, lines ...string) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		have := map[string]bool{}
		for _, l := range e.notifications(host) {
			have[l] = true
		}
		missing := ""
		for _, l := range lines {
			if !have[l] {
				missing = l
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: notify %q not called within 5 s (calls: %q)", host, missing, e.notifications(host))
		}
		time.Sleep(lab.PollInterval)
	}
}

func mustAddr(t testing.TB, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
