package vrrp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func specNamed(name string, vrid uint8, mod func(*InstanceSpec)) *InstanceSpec {
	s := testSpec(mod)
	s.Name, s.VRID = name, vrid
	return s
}

func advFor(s *InstanceSpec, prio uint8) *Advert {
	return &Advert{Version: s.Version, VRID: s.VRID, Priority: prio, Interval: s.Interval, Addrs: s.VIPs,
		AuthType: s.AuthType, AuthData: PassAuth(s.AuthPass)}
}

func TestManagerElectionAndShutdown(t *testing.T) {
	s := specNamed("VI_1", 51, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, nil)
	h.waitState("VI_1", "BACKUP")
	h.clock.Advance(3599 * time.Millisecond)
	h.sync("VI_1")
	if st := h.status("VI_1"); st.State != "BACKUP" {
		t.Fatalf("master before Master_Down: %+v", st)
	}
	h.clock.Advance(time.Millisecond)
	h.waitState("VI_1", "MASTER")
	h.waitFor("VIPs added", h.addr("VI_1").isUp)
	h.clock.Advance(2 * time.Second)
	h.sync("VI_1")
	if got := h.conn("VI_1").sentPrios(); !reflect.DeepEqual(got, []int{100, 100, 100}) {
		t.Fatalf("adverts %v", got)
	}
	h.stop()
	if got := h.conn("VI_1").sentPrios(); got[len(got)-1] != 0 {
		t.Fatalf("no priority 0 on shutdown: %v", got)
	}
	if h.addr("VI_1").isUp() {
		t.Fatal("VIPs left after shutdown")
	}
	want := []string{"[INSTANCE VI_1 BACKUP 100]", "[INSTANCE VI_1 MASTER 100]", "[INSTANCE VI_1 STOP 100]"}
	if got := h.notes.events(); !reflect.DeepEqual(got, want) {
		t.Fatalf("notify %v want %v", got, want)
	}
}

func TestManagerPreemptAndDrops(t *testing.T) {
	s := specNamed("VI_1", 51, func(s *InstanceSpec) { s.Version, s.AuthType, s.AuthPass = 2, AuthPass, "s3cret" })
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, nil)
	h.clock.Advance(4 * time.Second)
	h.waitState("VI_1", "MASTER")
	bad := advFor(s, 200)
	bad.AuthData = PassAuth("nope")
	h.inject("VI_1", bad, peerHigh)
	if st := h.status("VI_1"); st.State != "MASTER" || st.Counters.Drops["auth"] != 1 {
		t.Fatalf("wrong password not dropped: %+v", st)
	}
	h.inject("VI_1", advFor(s, 200), peerHigh)
	h.waitState("VI_1", "BACKUP")
	h.waitFor("VIPs removed", func() bool { return !h.addr("VI_1").isUp() })
	if st := h.status("VI_1"); st.Master != peerHigh {
		t.Fatalf("master %v", st.Master)
	}
}

// manualGate answers claims when the test says so.
type manualGate struct {
	mu       sync.Mutex
	chans    []chan error
	released atomic.Int32
}

func (g *manualGate) Admit(ctx context.Context, c Claim) <-chan error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan error, 2)
	g.chans = append(g.chans, ch)
	return ch
}
func (g *manualGate) Release(Claim) { g.released.Add(1) }
func (g *manualGate) last() chan error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.chans[len(g.chans)-1]
}
func (g *manualGate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.chans)
}

func TestManagerGate(t *testing.T) {
	g := &manualGate{}
	s := specNamed("VI_1", 51, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) { o.Gate = g })
	h.clock.Advance(3600 * time.Millisecond)
	h.waitFor("gate asked", func() bool { return g.count() == 1 })
	h.sync("VI_1")
	if st := h.status("VI_1"); st.State != "BACKUP" || st.Gate != "pending" {
		t.Fatalf("pending claim: %+v", st)
	}
	g.last() <- errors.New("no quorum")
	h.waitState("VI_1", "FENCED")
	h.clock.Advance(3600 * time.Millisecond)
	h.waitFor("gate asked again", func() bool { return g.count() == 2 })
	g.last() <- nil
	h.waitState("VI_1", "MASTER")
	h.waitFor("VIPs added", h.addr("VI_1").isUp)
	g.last() <- errors.New("lease lost")
	h.waitState("VI_1", "FENCED")
	h.waitFor("VIPs removed", func() bool { return !h.addr("VI_1").isUp() })
	if p := h.conn("VI_1").sentPrios(); p[len(p)-1] != 0 {
		t.Fatalf("no priority 0 on revoke: %v", p)
	}
}

// holderGate is a manualGate that also says whether an admitted claim
// still holds (a fence's lease).
type holderGate struct {
	manualGate
	holds atomic.Bool
}

func (g *holderGate) Holds(Claim) bool { return g.holds.Load() }

// TestManagerHolderPausedPastLease: a MASTER whose gate stops holding the
// claim without a revoke reaching the loop (the process was paused past
// its lease, and its gate's loop has not run yet) sends no MASTER advert
// when its timer fires: priority 0, VIPs removed, FENCED, claim released.
func TestManagerHolderPausedPastLease(t *testing.T) {
	g := &holderGate{}
	g.holds.Store(true)
	s := specNamed("VI_1", 51, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) { o.Gate = g })
	h.clock.Advance(3600 * time.Millisecond)
	h.waitFor("gate asked", func() bool { return g.count() == 1 })
	g.last() <- nil
	h.waitState("VI_1", "MASTER")
	h.waitFor("VIPs added", h.addr("VI_1").isUp)
	h.clock.Advance(time.Second)
	h.sync("VI_1")
	before := h.conn("VI_1").sentPrios()
	if !reflect.DeepEqual(before, []int{100, 100}) {
		t.Fatalf("adverts while held %v", before)
	}
	g.holds.Store(false)
	h.clock.Advance(5 * time.Second)
	h.waitState("VI_1", "FENCED")
	h.waitFor("VIPs removed", func() bool { return !h.addr("VI_1").isUp() })
	h.waitFor("claim released", func() bool { return g.released.Load() == 1 })
	if got := h.conn("VI_1").sentPrios()[len(before):]; !reflect.DeepEqual(got, []int{0}) {
		t.Fatalf("adverts after the lease ran out %v, want only [0]", got)
	}
}

func TestManagerTracking(t *testing.T) {
	var scriptOK atomic.Bool
	scriptOK.Store(true)
	s := specNamed("VI_1", 51, func(s *InstanceSpec) {
		s.TrackInterfaces = []TrackInterface{{Name: "eth1", Weight: -30}, {Name: "eth2"}}
		s.TrackScripts = []TrackScript{{Name: "chk", Script: "x", Interval: 5 * time.Millisecond, Weight: -40, Rise: 2, Fall: 2}}
	})
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) {
		o.Scripts = func(context.Context, TrackScript) bool { return scriptOK.Load() }
	})
	h.waitState("VI_1", "BACKUP")
	h.links.set("eth1", false)
	h.waitFor("priority 70", func() bool { return h.status("VI_1").Priority == 70 })
	scriptOK.Store(false)
	h.waitFor("priority 30", func() bool { return h.status("VI_1").Priority == 30 })
	scriptOK.Store(true)
	h.links.set("eth1", true)
	h.waitFor("priority 100", func() bool { return h.status("VI_1").Priority == 100 })
	h.links.set("eth2", false)
	h.waitState("VI_1", "FAULT")
	if st := h.status("VI_1"); !strings.Contains(st.Fault, "eth2") {
		t.Fatalf("fault reason %q", st.Fault)
	}
	h.links.set("eth2", true)
	h.waitState("VI_1", "BACKUP")
	h.links.set("eth0", false) // the instance's own interface
	h.waitState("VI_1", "FAULT")
}

func TestEffectivePriority(t *testing.T) {
	tr := &tracker{links: map[string]bool{"a": false, "b": true}, scripts: map[string]bool{"ok": true, "bad": false},
		files: map[string]int64{"/f": 3, "/z": 0, "/big": 100}}
	tests := []struct {
		name  string
		spec  InstanceSpec
		prio  uint8
		fault bool
	}{
		{"plain", InstanceSpec{Priority: 100}, 100, false},
		{"if down negative weight", InstanceSpec{Priority: 100, TrackInterfaces: []TrackInterface{{Name: "a", Weight: -20}}}, 80, false},
		{"if up positive weight", InstanceSpec{Priority: 100, TrackInterfaces: []TrackInterface{{Name: "b", Weight: 20}}}, 120, false},
		{"if down weight 0", InstanceSpec{Priority: 100, TrackInterfaces: []TrackInterface{{Name: "a"}}}, 100, true},
		{"if up reverse weight 0", InstanceSpec{Priority: 100, TrackInterfaces: []TrackInterface{{Name: "b", Reverse: true}}}, 100, true},
		{"script fails", InstanceSpec{Priority: 100, TrackScripts: []TrackScript{{Name: "bad", Weight: -50}, {Name: "ok", Weight: 5}}}, 55, false},
		{"clamp low", InstanceSpec{Priority: 10, TrackScripts: []TrackScript{{Name: "bad", Weight: -50}}}, 1, false},
		{"clamp high", InstanceSpec{Priority: 250, TrackScripts: []TrackScript{{Name: "ok", Weight: 50}}}, 254, false},
		{"owner unchanged", InstanceSpec{Priority: 255, TrackScripts: []TrackScript{{Name: "bad", Weight: -50}}}, 255, false},
		{"file weight", InstanceSpec{Priority: 100, TrackFiles: []TrackFile{{Path: "/f", Weight: -10}}}, 70, false},
		{"file weight 0 non-zero", InstanceSpec{Priority: 100, TrackFiles: []TrackFile{{Path: "/f"}}}, 100, true},
		{"file weight 0 zero", InstanceSpec{Priority: 100, TrackFiles: []TrackFile{{Path: "/z"}}}, 100, false},
		{"file below -253", InstanceSpec{Priority: 100, TrackFiles: []TrackFile{{Path: "/big", Weight: -3}}}, 100, true},
		{"file reverse", InstanceSpec{Priority: 100, TrackFiles: []TrackFile{{Path: "/f", Weight: -10, Reverse: true}}}, 130, false},
	}
	for _, tt := range tests {
		p, f := tr.effective(&tt.spec)
		if p != tt.prio || (f != "") != tt.fault {
			t.Errorf("%s: prio %d fault %q; want %d %v", tt.name, p, f, tt.prio, tt.fault)
		}
	}
}

func TestManagerSyncGroup(t *testing.T) {
	a := specNamed("VI_A", 51, nil)
	b := specNamed("VI_B", 52, func(s *InstanceSpec) { s.TrackInterfaces = []TrackInterface{{Name: "eth9"}} })
	set := &Set{Instances: []*InstanceSpec{a, b}, Groups: []*SyncGroupSpec{{Name: "G1", Members: []string{"VI_A", "VI_B"}}}}
	h := newHarness(t, set, nil)
	// B hears a master; A does not: A's timer makes both MASTER.
	h.clock.Advance(3 * time.Second)
	h.inject("VI_B", advFor(b, 150), peerHigh)
	h.clock.Advance(600 * time.Millisecond)
	h.waitState("VI_A", "MASTER")
	h.waitState("VI_B", "MASTER")
	// A higher master on A moves both back.
	h.inject("VI_A", advFor(a, 150), peerHigh)
	h.waitState("VI_A", "BACKUP")
	h.waitState("VI_B", "BACKUP")
	// A fault on B puts A in FAULT too.
	h.links.set("eth9", false)
	h.waitState("VI_B", "FAULT")
	h.waitState("VI_A", "FAULT")
	h.waitFor("group notify", func() bool {
		ev := strings.Join(h.notes.events(), " ")
		return strings.Contains(ev, "[GROUP G1 MASTER]") && strings.Contains(ev, "[GROUP G1 BACKUP]") && strings.Contains(ev, "[GROUP G1 FAULT]")
	})
	h.links.set("eth9", true)
	h.waitState("VI_A", "BACKUP")
	h.waitState("VI_B", "BACKUP")
}

func TestManagerReload(t *testing.T) {
	a := specNamed("VI_A", 51, func(s *InstanceSpec) { s.SrcIP = netip.Addr{}; s.Source = "vips v1" })
	b := specNamed("VI_B", 52, nil)
	c := specNamed("VI_C", 53, nil)
	e := specNamed("VI_E", 55, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{a, b, c, e}}, nil)
	h.clock.Advance(4 * time.Second)
	for _, n := range []string{"VI_A", "VI_B", "VI_C", "VI_E"} {
		h.waitState(n, "MASTER")
		h.waitFor("VIPs", h.addr(n).isUp)
	}
	connA, connB, connE, addrA, addrE := h.conn("VI_A"), h.conn("VI_B"), h.conn("VI_E"), h.addr("VI_A"), h.addr("VI_E")
	// A: soft changes (priority, notify) and a new address configuration.
	a2 := *a
	a2.Priority, a2.Notify, a2.Source = 120, NotifySpec{Any: "/bin/true"}, "vips v2"
	// B: the VRID's wire identity changes (interval): restart.
	b2 := specNamed("VI_B", 52, func(s *InstanceSpec) { s.Interval = 2 * time.Second })
	// E: the same spec again (a fresh pointer, as after re-reading the file).
	e2 := *e
	d := specNamed("VI_D", 54, nil)
	if err := h.mgr.Reload(context.Background(), &Set{Instances: []*InstanceSpec{&a2, b2, d, &e2}}); err != nil {
		t.Fatal(err)
	}
	h.waitState("VI_B", "BACKUP")
	h.waitState("VI_D", "BACKUP")
	if st := h.status("VI_A"); st.State != "MASTER" || h.conn("VI_A") != connA || h.conn("VI_E") != connE {
		t.Fatalf("soft-changed instance restarted: %+v", st)
	}
	h.waitFor("new priority advertised", func() bool {
		p := connA.sentPrios()
		return p[len(p)-1] == 120 && h.status("VI_A").Priority == 120
	})
	h.waitFor("VIPs moved to the new address set", func() bool { return !addrA.isUp() && h.addr("VI_A").isUp() && h.addr("VI_A") != addrA })
	addrE.mu.Lock()
	ops := strings.Join(addrE.ops, ",")
	addrE.mu.Unlock()
	if ops != "remove,add" || h.addr("VI_E") != addrE {
		t.Fatalf("unchanged instance's VIPs touched: %s", ops)
	}
	if p := connB.sentPrios(); p[len(p)-1] != 0 {
		t.Fatalf("changed instance did not send priority 0: %v", p)
	}
	if len(h.mgr.Status()) != 4 || h.status("VI_C").Name != "" {
		t.Fatalf("removed instance still there: %+v", h.mgr.Status())
	}
	h.waitFor("removed instance's VIPs gone", func() bool { return !h.addr("VI_C").isUp() })
}

func TestSameRun(t *testing.T) {
	base := specNamed("X", 1, nil)
	tests := []struct {
		name string
		mod  func(*InstanceSpec)
		same bool
	}{
		{"identical", func(*InstanceSpec) {}, true},
		{"priority", func(s *InstanceSpec) { s.Priority = 50 }, true},
		{"to owner", func(s *InstanceSpec) { s.Priority = 255 }, false},
		{"nopreempt", func(s *InstanceSpec) { s.Preempt = false }, true},
		{"tracking", func(s *InstanceSpec) { s.TrackInterfaces = []TrackInterface{{Name: "eth1"}} }, true},
		{"vrid", func(s *InstanceSpec) { s.VRID = 2 }, false},
		{"vips", func(s *InstanceSpec) { s.VIPs = nil }, false},
		{"peers", func(s *InstanceSpec) { s.Peers = []netip.Addr{peerHigh} }, false},
		{"auth", func(s *InstanceSpec) { s.AuthPass = "x" }, false},
	}
	for _, tt := range tests {
		s := *base
		tt.mod(&s)
		if got := sameRun(base, &s); got != tt.same {
			t.Errorf("%s: sameRun %v want %v", tt.name, got, tt.same)
		}
	}
}

func TestSetValidate(t *testing.T) {
	a := specNamed("VI_A", 51, nil)
	tests := []struct {
		name string
		set  Set
	}{
		{"duplicate", Set{Instances: []*InstanceSpec{a, a}}},
		{"unknown member", Set{Instances: []*InstanceSpec{a}, Groups: []*SyncGroupSpec{{Name: "G", Members: []string{"X"}}}}},
		{"two groups", Set{Instances: []*InstanceSpec{a}, Groups: []*SyncGroupSpec{{Name: "G", Members: []string{"VI_A"}}, {Name: "H", Members: []string{"VI_A"}}}}},
		{"bad v2 interval", Set{Instances: []*InstanceSpec{specNamed("X", 1, func(s *InstanceSpec) { s.Version = 2; s.Interval = 1500 * time.Millisecond })}}},
		{"v6 VIP in v4 instance", Set{Instances: []*InstanceSpec{specNamed("X", 1, func(s *InstanceSpec) { s.VIPs = []netip.Addr{vip6} })}}},
	}
	for _, tt := range tests {
		if err := tt.set.Validate(); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// TestManagerRealScriptAndFile tracks a real script (through the script
// package) and a real track file.
func TestManagerRealScriptAndFile(t *testing.T) {
	dir := t.TempDir()
	flag := dir + "/ok"
	tf := dir + "/prio"
	os.WriteFile(flag, nil, 0o644)
	os.WriteFile(tf, []byte("0\n"), 0o644)
	s := specNamed("VI_1", 51, func(s *InstanceSpec) {
		s.TrackScripts = []TrackScript{{Name: "chk", Script: "test -e '" + flag + "'", Interval: 10 * time.Millisecond, Weight: -30, Rise: 1, Fall: 1}}
		s.TrackFiles = []TrackFile{{Name: "tf", Path: tf, Weight: -10}}
	})
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) {
		o.Scripts = nil // the real runner
		o.FilePoll = 10 * time.Millisecond
	})
	h.waitState("VI_1", "BACKUP")
	os.Remove(flag)
	h.waitFor("script failure lowers priority", func() bool { return h.status("VI_1").Priority == 70 })
	os.WriteFile(tf, []byte("2\n"), 0o644)
	h.waitFor("track file lowers priority", func() bool { return h.status("VI_1").Priority == 50 })
	os.WriteFile(flag, nil, 0o644)
	h.waitFor("script success restores", func() bool { return h.status("VI_1").Priority == 80 })
}

// TestManagerFaultAtStart: a tracked interface already down at start puts
// the instance straight into FAULT (stale VIPs still removed).
func TestManagerFaultAtStart(t *testing.T) {
	fl := &fakeLinks{state: map[string]bool{"eth1": false}}
	s := specNamed("VI_1", 51, func(s *InstanceSpec) { s.TrackInterfaces = []TrackInterface{{Name: "eth1"}} })
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) { o.Links = fl })
	h.waitState("VI_1", "FAULT")
	h.waitFor("stale VIPs removed", func() bool {
		a := h.addr("VI_1")
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.ops) == 1 && a.ops[0] == "remove"
	})
	fl.set("eth1", true)
	h.waitState("VI_1", "BACKUP")
	if got := h.notes.events(); strings.Join(got, " ") != "[INSTANCE VI_1 FAULT 100] [INSTANCE VI_1 BACKUP 100]" {
		t.Fatalf("notify %v", got)
	}
}

// TestManagerInsecureScriptDisabled: under enable_script_security a track
// script in a world-writable directory is disabled (not tracked), as
// keepalived does, instead of failing the instance.
func TestManagerInsecureScriptDisabled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: enable_script_security applies to scripts run as root")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	bad := writeTestScript(t, dir, "bad.sh", "exit 1")
	safeDir := t.TempDir()
	good := writeTestScript(t, safeDir, "good.sh", "exit 1")
	var logs lockedBuf
	s := specNamed("VI_1", 51, func(s *InstanceSpec) {
		s.TrackScripts = []TrackScript{
			{Name: "bad", Script: bad, Interval: 10 * time.Millisecond, Rise: 1, Fall: 1},
			{Name: "good", Script: good, Interval: 10 * time.Millisecond, Weight: -10, Rise: 1, Fall: 1},
		}
	})
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) {
		o.Scripts, o.ScriptSecurity = nil, true
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	h.waitFor("secure script tracked", func() bool { return h.status("VI_1").Priority == 90 })
	h.waitFor("insecure script disabled", func() bool { return strings.Contains(logs.String(), "VRRP script disabled") })
	if st := h.status("VI_1"); st.State != "BACKUP" {
		t.Fatalf("insecure script was tracked: %+v", st)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestManagerBadInstance: an instance whose socket cannot open is logged and
// left out; the others run, and Reload reports it.
func TestManagerBadInstance(t *testing.T) {
	good, bad := specNamed("VI_1", 51, nil), specNamed("VI_BAD", 52, nil)
	h := newHarnessN(t, &Set{Instances: []*InstanceSpec{good, bad}}, 1, func(o *Options) {
		listen := o.Listen
		o.Listen = func(s *InstanceSpec) (Conn, error) {
			if strings.HasPrefix(s.Name, "VI_BAD") {
				return nil, errors.New("no such interface")
			}
			return listen(s)
		}
	})
	h.waitState("VI_1", "BACKUP")
	if len(h.mgr.Status()) != 1 {
		t.Fatalf("status %+v", h.mgr.Status())
	}
	bad2 := specNamed("VI_BAD2", 53, nil)
	if err := h.mgr.Reload(context.Background(), &Set{Instances: []*InstanceSpec{good, bad2}}); err == nil {
		t.Fatal("Reload hid the failed instance")
	}
	if h.status("VI_1").State != "BACKUP" {
		t.Fatal("good instance disturbed")
	}
}
