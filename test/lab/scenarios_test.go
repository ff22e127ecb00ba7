package lab_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"hakeep/internal/lab"
)

// vrrp is the per-scenario VRRP flavour.
type vrrp struct {
	version  int
	interval float64 // advert_int, seconds
	auth     string  // v2 PASS
	unicast  bool
}

var (
	fastV3 = vrrp{version: 3, interval: 0.1}
	v2Pass = vrrp{version: 2, interval: 1, auth: "s3cret"}
)

// masterDown is RFC 5798's Master_Down_Interval for a backup of prio.
func (v vrrp) masterDown(prio int) time.Duration {
	iv := time.Duration(v.interval * float64(time.Second))
	return 3*iv + time.Duration(256-prio)*iv/256
}

// deadline is a hard bound for a takeover expected after d: generous,
// because the CPU is shared by parallel test runs, but far below a
// missed-takeover failure.
func deadline(d time.Duration) time.Duration { return 2*d + 2*time.Second }

// conf builds host's config: one instance VI_1 (VRID 51) with the VIP,
// plus whatever mod changes.
func (e *env) conf(host string, v vrrp, prio int, mod func(*lab.Instance)) lab.Conf {
	in := lab.Instance{Name: "VI_1", State: "BACKUP", VRID: 51, Priority: prio, AdvertInt: v.interval,
		AuthPass: v.auth, VIPs: []string{vip4.String() + "/32"}}
	if v.unicast {
		self := e.l.Host(host)
		in.UnicastSrc = self.Addr4.Addr().String()
		for _, h := range e.hosts {
			if h != host {
				in.UnicastPeers = append(in.UnicastPeers, e.l.Host(h).Addr4.Addr().String())
			}
		}
	}
	if mod != nil {
		mod(&in)
	}
	return lab.Conf{Version: v.version, Instances: []lab.Instance{in}}
}

var prios = map[string]int{"h1": 150, "h2": 100, "h3": 50}

// startAll starts h1..h3 with priorities 150/100/50 and waits for h1.
func (e *env) startAll(v vrrp, mod func(host string, in *lab.Instance)) {
	e.t.Helper()
	for _, h := range e.hosts {
		h := h
		e.start(h, e.conf(h, v, prios[h], func(in *lab.Instance) {
			if mod != nil {
				mod(h, in)
			}
		}))
	}
	e.owner(vip4, "h1", deadline(v.masterDown(150)+time.Second))
}

type scenario struct {
	name string
	run  func(e *env)
}

var scenarios = []scenario{
	{"election by priority", func(e *env) {
		e.startAll(fastV3, nil)
		e.stable(vip4, "h1", time.Second)
		if got := e.clientView(vip4); got != "h1" {
			e.t.Fatalf("client's ARP view of %s: %s, want h1", vip4, got)
		}
	}},
	{"kill -9 master (v3 0.1 s)", func(e *env) { killMaster(e, fastV3) }},
	{"kill -9 master (v2 1 s, PASS)", func(e *env) { killMaster(e, v2Pass) }},
	{"SIGTERM master: priority 0, takeover at skew time", func(e *env) {
		v := vrrp{version: 3, interval: 1}
		e.startAll(v, nil)
		if err := e.d["h1"].Signal(syscall.SIGTERM); err != nil {
			e.t.Fatal(err)
		}
		// h1 is still running while it stops: all three are watched, so a
		// moment with two owners fails the test.
		took := e.owner(vip4, "h2", deadline(time.Second))
		// A priority-0 advert makes the backup take over after its skew time
		// (0.61 s), far below Master_Down_Interval (3.61 s).
		if took > 3*time.Second {
			e.t.Errorf("takeover took %s after SIGTERM; priority 0 should make it ~0.6 s", took)
		}
		e.t.Logf("h2 owns the VIP %s after SIGTERM", took.Round(time.Millisecond))
		e.stop("h1")
		if ok, _ := e.l.HasAddr("h1", vip4); ok {
			e.t.Error("h1 kept its VIP after SIGTERM")
		}
	}},
	{"restart with preemption", func(e *env) {
		e.startAll(fastV3, nil)
		e.kill("h1")
		e.owner(vip4, "h2", deadline(fastV3.masterDown(100)))
		e.restart("h1")
		// keepalived leaves the VIP on a crashed node; the restarted one removes it
		// at start (stale VIPs), then preempts back after its own Master_Down.
		e.owner(vip4, "h1", deadline(fastV3.masterDown(150)+time.Second))
		e.stable(vip4, "h1", time.Second)
	}},
	{"nopreempt", func(e *env) {
		v := fastV3
		nopre := func(in *lab.Instance) { in.Nopreempt = true }
		e.start("h2", e.conf("h2", v, 100, nopre))
		e.owner(vip4, "h2", deadline(v.masterDown(100)))
		e.start("h1", e.conf("h1", v, 150, nopre))
		e.stable(vip4, "h2", 2*time.Second) // h1 is higher but must not preempt
	}},
	{"preempt_delay", func(e *env) {
		v := fastV3
		e.start("h2", e.conf("h2", v, 100, nil))
		e.owner(vip4, "h2", deadline(v.masterDown(100)))
		start := time.Now()
		e.start("h1", e.conf("h1", v, 150, func(in *lab.Instance) { in.PreemptDelay = 2 }))
		e.stable(vip4, "h2", 1500*time.Millisecond) // within the 2 s delay
		e.owner(vip4, "h1", deadline(2*time.Second))
		if d := time.Since(start); d < 2*time.Second {
			e.t.Errorf("h1 preempted after %s, before preempt_delay 2 s", d)
		}
	}},
	{"track_script weight drop forces a switch", func(e *env) {
		v := fastV3
		flag := filepath.Join(e.l.Dir, "h1.healthy")
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			e.t.Fatal(err)
		}
		e.start("h1", lab.Conf{Version: 3,
			Scripts:   []lab.Script{{Name: "chk", Command: "/usr/bin/test -f " + flag, Interval: 1, Weight: -60, Fall: 1, Rise: 1}},
			Instances: []lab.Instance{{Name: "VI_1", State: "BACKUP", VRID: 51, Priority: 150, AdvertInt: v.interval, VIPs: []string{vip4.String() + "/32"}, TrackScripts: []string{"chk"}}}})
		e.start("h2", e.conf("h2", v, 100, nil))
		e.owner(vip4, "h1", deadline(v.masterDown(150)+time.Second))
		os.Remove(flag) // 150 - 60 = 90 < 100
		e.owner(vip4, "h2", deadline(2*time.Second))
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			e.t.Fatal(err)
		}
		e.owner(vip4, "h1", deadline(2*time.Second)) // back to 150: preempts
	}},
	{"track_interface link down -> FAULT", func(e *env) {
		v := fastV3
		if err := e.l.AddVeth("h1", "trk0", "trk1"); err != nil {
			e.t.Fatal(err)
		}
		e.start("h1", e.conf("h1", v, 150, func(in *lab.Instance) { in.TrackIfaces = []string{"trk0"} }))
		e.start("h2", e.conf("h2", v, 100, nil))
		e.owner(vip4, "h1", deadline(v.masterDown(150)+time.Second))
		if err := e.l.SetLink("h1", "trk0", false); err != nil {
			e.t.Fatal(err)
		}
		e.owner(vip4, "h2", deadline(v.masterDown(100)))
		e.stable(vip4, "h2", 500*time.Millisecond)
		if err := e.l.SetLink("h1", "trk0", true); err != nil {
			e.t.Fatal(err)
		}
		e.owner(vip4, "h1", deadline(v.masterDown(150)+time.Second))
	}},
	{"sync group moves two instances together", func(e *env) {
		v := fastV3
		if err := e.l.AddVeth("h1", "trk0", "trk1"); err != nil {
			e.t.Fatal(err)
		}
		group := func(host string, prio int, track bool) lab.Conf {
			c := lab.Conf{Version: 3, SyncGroups: []lab.SyncGroup{{Name: "G1", Members: []string{"VI_1", "VI_2"}}}}
			for i, a := range []netip.Addr{vip4, vip5} {
				in := lab.Instance{Name: fmt.Sprintf("VI_%d", i+1), State: "BACKUP", VRID: 51 + i, Priority: prio,
					AdvertInt: v.interval, VIPs: []string{a.String() + "/32"}}
				if track && i == 1 {
					in.TrackIfaces = []string{"trk0"}
				}
				c.Instances = append(c.Instances, in)
			}
			return c
		}
		e.start("h1", group("h1", 150, true))
		e.start("h2", group("h2", 100, false))
		e.owner(vip4, "h1", deadline(v.masterDown(150)+time.Second))
		e.owner(vip5, "h1", deadline(v.masterDown(150)+time.Second))
		// Only VI_2 tracks trk0; the group takes VI_1 along.
		if err := e.l.SetLink("h1", "trk0", false); err != nil {
			e.t.Fatal(err)
		}
		e.owner(vip5, "h2", deadline(v.masterDown(100)))
		e.owner(vip4, "h2", deadline(v.masterDown(100)))
	}},
	{"unicast peers", func(e *env) {
		v := vrrp{version: 3, interval: 0.1, unicast: true}
		e.startAll(v, nil)
		e.kill("h1")
		e.owner(vip4, "h2", deadline(v.masterDown(100)))
		e.stable(vip4, "h2", 500*time.Millisecond)
	}},
	{"v3 advert_int 0.05", func(e *env) {
		v := vrrp{version: 3, interval: 0.05}
		e.startAll(v, nil)
		e.stable(vip4, "h1", time.Second) // no flapping at 20 adverts/s
		e.kill("h1")
		e.owner(vip4, "h2", deadline(v.masterDown(100)))
	}},
	{"IPv6 VIP", func(e *env) {
		v := fastV3
		for _, h := range e.hosts {
			e.start(h, lab.Conf{Version: 3, Instances: []lab.Instance{{Name: "VI_6", State: "BACKUP", VRID: 61,
				Priority: prios[h], AdvertInt: v.interval, VIPs: []string{vip6.String() + "/64"}}}})
		}
		e.owner(vip6, "h1", deadline(v.masterDown(150)+time.Second))
		capt, err := e.l.StartCapture("na", "icmp6")
		if err != nil {
			e.t.Fatal(err)
		}
		e.kill("h1")
		e.owner(vip6, "h2", deadline(v.masterDown(100)))
		e.stable(vip6, "h2", 500*time.Millisecond)
		// The new master's unsolicited NAs: from h2's MAC, target the VIP,
		// override set, hop limit 255; a burst of 5 as keepalived's.
		pk, err := capt.Packets()
		if err != nil {
			e.t.Fatal(err)
		}
		nas := 0
		for _, n := range pk.NAs {
			if n.SrcMAC.String() != e.l.Host("h2").MAC.String() || n.Target != vip6 || n.Solicited {
				continue
			}
			if !n.Override || n.HopLimit != 255 || n.Dst != netip.MustParseAddr("ff02::1") {
				e.t.Errorf("unsolicited NA not in keepalived's form: %+v", n)
			}
			nas++
		}
		if nas != 5 {
			e.t.Errorf("saw %d unsolicited NAs for %s from h2, want 5", nas, vip6)
		}
		if err := e.l.Ping("client", vip6); err != nil {
			e.t.Errorf("client cannot reach the IPv6 VIP: %v", err)
		}
	}},
	{"wrong password: both become MASTER, logged", func(e *env) {
		e.doubleOwnerOK = true
		v := vrrp{version: 2, interval: 1}
		e.hosts = e.hosts[:2]
		e.start("h1", e.conf("h1", vrrp{version: 2, interval: 1, auth: "secret1"}, 150, nil))
		e.start("h2", e.conf("h2", vrrp{version: 2, interval: 1, auth: "secret2"}, 100, nil))
		// Each drops the other's adverts, so each claims the VIP (keepalived's behaviour).
		for _, h := range []string{"h1", "h2"} {
			if _, err := e.l.WaitAddr(h, vip4, deadline(v.masterDown(100))); err != nil {
				e.t.Fatal(err)
			}
		}
		for _, h := range []string{"h1", "h2"} {
			if err := e.d[h].WaitLog("passw", 3*time.Second); err != nil {
				e.t.Errorf("%s does not log the bad password: %v", h, err)
			}
		}
	}},
	{"VRRP dropped one way: plain VRRP double-owns", func(e *env) {
		e.doubleOwnerOK = true
		if _, err := exec.LookPath("iptables"); err != nil {
			e.t.Skip("needs iptables (Debian package iptables)")
		}
		v := fastV3
		e.startAll(v, nil)
		// h2 stops hearing h1; without a quorum nothing stops h2 claiming
		// the VIP while h1 keeps it: the split brain fencing.md is about.
		if err := e.l.DropVRRP("h2", true); err != nil {
			e.t.Fatal(err)
		}
		for _, h := range []string{"h1", "h2"} {
			if _, err := e.l.WaitAddr(h, vip4, deadline(v.masterDown(100))); err != nil {
				e.t.Fatal(err)
			}
		}
		if err := e.l.DropVRRP("h2", false); err != nil {
			e.t.Fatal(err)
		}
		// Healed: h2 hears the higher priority again (within an advert
		// interval: both own until then) and yields once.
		if _, err := e.l.WaitNoAddr("h2", vip4, deadline(v.masterDown(100))); err != nil {
			e.t.Fatal(err)
		}
		e.owner(vip4, "h1", time.Second)
		e.stable(vip4, "h1", 500*time.Millisecond)
	}},
	{"SIGSTOP master: backup takes over, the paused one keeps its VIP", func(e *env) {
		e.doubleOwnerOK = true
		v := fastV3
		e.startAll(v, nil)
		if err := e.d["h1"].Pause(); err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.l.WaitAddr("h2", vip4, deadline(v.masterDown(100))); err != nil {
			e.t.Fatal(err)
		}
		// Plain VRRP: nothing removes the hung master's VIP (kernel
		// lifetimes do, with fencing).
		if ok, _ := e.l.HasAddr("h1", vip4); !ok {
			e.t.Error("the paused master lost its VIP without fencing")
		}
		if err := e.d["h1"].Resume(); err != nil {
			e.t.Fatal(err)
		}
		e.owner(vip4, "h1", deadline(v.masterDown(100)+time.Second))
	}},
	{"notify scripts: arguments and order", func(e *env) {
		v := fastV3
		e.hosts = e.hosts[:2]
		for _, h := range e.hosts {
			s := e.notifyScript(h)
			e.start(h, e.conf(h, v, prios[h], func(in *lab.Instance) {
				in.Notify = s
				in.NotifyMaster, in.NotifyBackup, in.NotifyStop = s+" master", s+" backup", s+" stop"
			}))
			// h1 master before h2 starts: otherwise a slow h1 start lets
			// h2 be master for a moment, and its sequence differs.
			if h == "h1" {
				e.owner(vip4, "h1", deadline(v.masterDown(150)+time.Second))
			}
		}
		// Notify scripts run asynchronously: let the transitions' scripts
		// finish before the next transition, or their lines race.
		e.waitNotify("h1", "INSTANCE VI_1 MASTER 150", "master")
		e.waitNotify("h2", "INSTANCE VI_1 BACKUP 100", "backup")
		e.stop("h1")
		e.owner(vip4, "h2", deadline(2*time.Second))
		e.waitNotify("h2", "INSTANCE VI_1 MASTER 100", "master")
		e.stop("h2")
		want := map[string][]string{
			"h1": {"INSTANCE VI_1 BACKUP 150", "INSTANCE VI_1 MASTER 150", "INSTANCE VI_1 STOP 150"},
			"h2": {"INSTANCE VI_1 BACKUP 100", "INSTANCE VI_1 MASTER 100", "INSTANCE VI_1 STOP 100"},
		}
		wantOwn := map[string][]string{"h1": {"backup", "master", "stop"}, "h2": {"backup", "master", "stop"}}
		for _, h := range e.hosts {
			// Scripts run asynchronously: poll for the last line.
			var generic, own []string
			end := time.Now().Add(3 * time.Second)
			for {
				generic, own = nil, nil
				for _, line := range e.notifications(h) {
					if strings.HasPrefix(line, "INSTANCE ") {
						generic = append(generic, line)
					} else {
						own = append(own, line)
					}
				}
				if len(generic) >= 3 && len(own) >= 3 || time.Now().After(end) {
					break
				}
				time.Sleep(lab.PollInterval)
			}
			if !reflect.DeepEqual(generic, want[h]) {
				e.t.Errorf("%s: notify calls %q, want %q", h, generic, want[h])
			}
			if !reflect.DeepEqual(own, wantOwn[h]) {
				e.t.Errorf("%s: notify_master/backup/stop calls %q, want %q", h, own, wantOwn[h])
			}
		}
	}},
}

func killMaster(e *env, v vrrp) {
	e.t.Helper()
	e.startAll(v, nil)
	capt, err := e.l.StartCapture("kill", "arp")
	if err != nil {
		e.t.Fatal(err)
	}
	e.kill("h1")
	took := e.owner(vip4, "h2", deadline(v.masterDown(100)))
	e.stable(vip4, "h2", 500*time.Millisecond)
	// The new master announces itself as keepalived does: a first burst of
	// vrrp_garp_master_repeat (5) gratuitous ARP requests, sender IP =
	// target IP = VIP, target MAC ff:ff:ff:ff:ff:ff (the second burst comes
	// vrrp_garp_master_delay, 5 s, later).
	pk, err := capt.Packets()
	if err != nil {
		e.t.Fatal(err)
	}
	garps := 0
	for _, a := range pk.ARPs {
		if a.SenderMAC.String() != e.l.Host("h2").MAC.String() || a.SenderIP != vip4 {
			continue
		}
		if a.Op != 1 || !a.Gratuitous() || a.TargetMAC.String() != "ff:ff:ff:ff:ff:ff" {
			e.t.Errorf("gratuitous ARP not in keepalived's form: %+v", a)
		}
		garps++
	}
	if garps != 5 {
		e.t.Errorf("saw %d gratuitous ARPs for %s from h2 after the takeover, want 5", garps, vip4)
	}
	e.t.Logf("h2 owns the VIP %s after kill -9 (Master_Down %s)", took.Round(time.Millisecond), v.masterDown(100))
	if got := e.clientView(vip4); got != "h2" {
		e.t.Errorf("client's ARP view after takeover: %s, want h2", got)
	}
}

// TestScenarios runs every scenario on three directors of one
// implementation: keepalived (the reference) and hakeepd.
func TestScenarios(t *testing.T) {
	for _, im := range []impl{keepalived, hakeepd} {
		t.Run(string(im), func(t *testing.T) {
			if im == hakeepd {
				hakeepdBin(t)
			}
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					sc.run(newEnv(t, im, im, im))
				})
			}
		})
	}
}

// TestMixed puts keepalived and hakeepd in one virtual router, both
// directions, v2 with PASS, v3 and unicast: election, failover and
// preemption across implementations.
func TestMixed(t *testing.T) {
	hakeepdBin(t)
	for _, v := range []struct {
		name string
		v    vrrp
	}{{"v2 PASS", v2Pass}, {"v3", fastV3}, {"v3 unicast", vrrp{version: 3, interval: 0.1, unicast: true}}} {
		for _, m := range []struct {
			name  string
			impls []impl
		}{
			{"keepalived master, hakeepd backups", []impl{keepalived, hakeepd, hakeepd}},
			{"hakeepd master, keepalived backups", []impl{hakeepd, keepalived, keepalived}},
		} {
			t.Run(v.name+"/"+m.name, func(t *testing.T) {
				e := newEnv(t, m.impls...)
				e.startAll(v.v, nil)
				e.stable(vip4, "h1", time.Second)
				e.kill("h1")
				e.owner(vip4, "h2", deadline(v.v.masterDown(100)))
				e.restart("h1")
				e.owner(vip4, "h1", deadline(v.v.masterDown(150)+time.Second))
				e.stop("h1")
				e.owner(vip4, "h2", deadline(2*time.Second))
			})
		}
	}
}

// TestMixedWrongPassword: keepalived and hakeepd with different PASS
// passwords each drop the other's adverts, so both claim the VIP (what two
// keepalived do), and both say why in their logs.
func TestMixedWrongPassword(t *testing.T) {
	hakeepdBin(t)
	e := newEnv(t, keepalived, hakeepd)
	e.doubleOwnerOK = true
	v := vrrp{version: 2, interval: 1}
	e.start("h1", e.conf("h1", vrrp{version: 2, interval: 1, auth: "secret1"}, 150, nil))
	e.start("h2", e.conf("h2", vrrp{version: 2, interval: 1, auth: "secret2"}, 100, nil))
	for _, h := range []string{"h1", "h2"} {
		if _, err := e.l.WaitAddr(h, vip4, deadline(v.masterDown(100))); err != nil {
			t.Fatal(err)
		}
		if err := e.d[h].WaitLog("passw", 3*time.Second); err != nil {
			t.Errorf("%s (%s) does not log the bad password: %v", h, e.impls[h], err)
		}
	}
}
