package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// recFx records the machine's effects as strings.
type recFx struct {
	log   []string
	asked bool
	// lapsed: the gate no longer holds the claim (a fence's lease ran out
	// while the process was paused).
	lapsed bool
}

func (r *recFx) add(f string, a ...any)                       { r.log = append(r.log, fmt.Sprintf(f, a...)) }
func (r *recFx) send(p uint8)                                 { r.add("send %d", p) }
func (r *recFx) setAddrs(up bool)                             { r.add("addrs %v", up) }
func (r *recFx) askGate()                                     { r.asked = true; r.add("gate ask") }
func (r *recFx) cancelGate()                                  { r.add("gate cancel") }
func (r *recFx) releaseGate()                                 { r.add("gate release") }
func (r *recFx) holds() bool                                  { return !r.lapsed }
func (r *recFx) transition(f, t State, _ string)              { r.add("%v->%v", f, t) }
func (r *recFx) logDrop(d DropReason, _ netip.Addr, _ string) { r.add("drop %v", d) }

var (
	peerLow  = netip.MustParseAddr("10.99.0.10")
	peerHigh = netip.MustParseAddr("10.99.0.12")
)

func testSpec(mod func(*InstanceSpec)) *InstanceSpec {
	s := &InstanceSpec{Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, Priority: 100,
		Interval: time.Second, Preempt: true, VIPs: []netip.Addr{vip4}, SrcIP: src11, Group: DefaultGroup4}
	if mod != nil {
		mod(s)
	}
	return s
}

type step struct {
	at time.Duration // since t0
	// one of:
	tick   bool
	adv    *Advert
	from   netip.Addr
	admit  bool
	refuse bool
	revoke bool
	fault  *bool
	prio   int
	stop   bool
	lapse  bool // from now the gate says the claim no longer holds
}

func adv(prio uint8) *Advert {
	return &Advert{Version: 3, VRID: 51, Priority: prio, Interval: time.Second, Addrs: []netip.Addr{vip4}}
}

var t0 = time.Unix(1_000_000, 0)

func bptr(b bool) *bool { return &b }

// run starts a machine at t0 and applies steps; the Gate admits at once
// unless the table says otherwise (autoAdmit).
func run(t *testing.T, spec *InstanceSpec, autoAdmit bool, steps []step) (*machine, *recFx) {
	t.Helper()
	fx := &recFx{}
	m := newMachine(spec, fx)
	m.start(t0)
	gate := func(now time.Time) {
		if autoAdmit && fx.asked && m.pending {
			fx.asked = false
			m.admitted(now)
		}
	}
	gate(t0)
	for _, s := range steps {
		now := t0.Add(s.at)
		switch {
		case s.tick:
			if d := m.deadline(); !d.IsZero() && d.After(now) {
				t.Fatalf("tick at %v before deadline %v", s.at, d.Sub(t0))
			}
			m.tick(now)
		case s.adv != nil:
			from := s.from
			if !from.IsValid() {
				from = peerHigh
			}
			m.receive(now, s.adv, from)
		case s.admit:
			m.admitted(now)
		case s.refuse:
			m.refused(now, errors.New("no quorum"))
		case s.revoke:
			m.revoked(now, errors.New("lease lost"))
		case s.fault != nil:
			m.setFault(now, *s.fault, "track")
		case s.prio != 0:
			m.setPriority(now, uint8(s.prio))
		case s.stop:
			m.stop(now)
		case s.lapse:
			fx.lapsed = true
		}
		gate(now)
	}
	return m, fx
}

func TestMachineTransitions(t *testing.T) {
	ms := time.Millisecond
	// v3, prio 100, interval 1 s: skew = 156*100/256 = 60 cs = 600 ms;
	// Master_Down = 3.6 s.
	tests := []struct {
		name      string
		spec      func(*InstanceSpec)
		noAdmit   bool
		steps     []step
		wantState State
		wantLog   string // effects after start, joined by "; "
		wantDown  time.Duration
		wantAdver time.Duration
	}{
		{name: "backup alone takes over after Master_Down",
			steps:     []step{{at: 3600 * ms, tick: true}},
			wantState: StateMaster, wantAdver: 4600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true"},
		{name: "advert from higher keeps backup and restarts Master_Down",
			steps:     []step{{at: 3000 * ms, adv: adv(150)}},
			wantState: StateBackup, wantDown: 6600 * ms,
			wantLog: "addrs false; INIT->BACKUP"},
		{name: "v2 skew is (256-p)/256 s",
			spec: func(s *InstanceSpec) {
				s.Version = 2
				s.AuthType = AuthPass
				s.AuthPass = "s3cret"
			},
			steps:     []step{{at: time.Second, adv: &Advert{Version: 2, VRID: 51, Priority: 150, Interval: time.Second, AuthType: AuthPass, AuthData: PassAuth("s3cret"), Addrs: []netip.Addr{vip4}}}},
			wantState: StateBackup, wantDown: time.Second + 3*time.Second + 156*time.Second/256,
			wantLog: "addrs false; INIT->BACKUP"},
		{name: "priority 0 advert: take over after skew",
			steps:     []step{{at: time.Second, adv: adv(150)}, {at: 2 * time.Second, adv: adv(0)}, {at: 2600 * ms, tick: true}},
			wantState: StateMaster, wantAdver: 3600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true"},
		{name: "v3 backup adopts master interval",
			steps:     []step{{at: time.Second, adv: &Advert{Version: 3, VRID: 51, Priority: 150, Interval: 100 * ms, Addrs: []netip.Addr{vip4}}}},
			wantState: StateBackup, wantDown: time.Second + 300*ms + 60*ms,
			wantLog: "addrs false; INIT->BACKUP"},
		{name: "preempt: lower master ignored, backup takes over",
			steps:     []step{{at: time.Second, adv: adv(50)}, {at: 3600 * ms, tick: true}},
			wantState: StateMaster,
			wantLog:   "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true", wantAdver: 4600 * ms},
		{name: "nopreempt: lower master followed",
			spec:      func(s *InstanceSpec) { s.Preempt = false },
			steps:     []step{{at: 3 * time.Second, adv: adv(50)}},
			wantState: StateBackup, wantDown: 6600 * ms,
			wantLog: "addrs false; INIT->BACKUP"},
		{name: "preempt_delay: lower master followed until the delay ran out",
			spec: func(s *InstanceSpec) { s.PreemptDelay = 5 * time.Second },
			steps: []step{{at: 1 * time.Second, adv: adv(50)}, {at: 4 * time.Second, adv: adv(50)},
				{at: 6 * time.Second, adv: adv(50)}, {at: 7 * time.Second, adv: adv(50)}},
			// last followed advert at 4 s (delay ends at 6 s): down at 7.6 s
			wantState: StateBackup, wantDown: 7600 * ms,
			wantLog: "addrs false; INIT->BACKUP"},
		{name: "preempt_delay also runs from startup",
			spec:  func(s *InstanceSpec) { s.PreemptDelay = 5 * time.Second },
			steps: []step{{at: 4 * time.Second, adv: adv(50)}, {at: 5 * time.Second, adv: adv(50)}},
			// 4 s: within the startup delay, followed (down at 7.6 s); 5 s:
			// delay over, ignored.
			wantState: StateBackup, wantDown: 7600 * ms,
			wantLog: "addrs false; INIT->BACKUP"},
		{name: "owner 255 is master at once",
			spec:      func(s *InstanceSpec) { s.Priority = 255 },
			wantState: StateMaster, wantAdver: time.Second,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 255; addrs true"},
		{name: "master sends adverts every interval",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4600 * ms, tick: true}, {at: 5600 * ms, tick: true}},
			wantState: StateMaster, wantAdver: 6600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 100; send 100"},
		{name: "master hears higher: backup",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, adv: adv(150)}},
			wantState: StateBackup, wantDown: 7600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; addrs false; gate release; MASTER->BACKUP"},
		{name: "master hears lower: stays, sends advert at once",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, adv: adv(50)}},
			wantState: StateMaster, wantAdver: 5 * time.Second,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 100"},
		{name: "master hears equal priority from higher address: backup",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, adv: adv(100), from: peerHigh}},
			wantState: StateBackup, wantDown: 7600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; addrs false; gate release; MASTER->BACKUP"},
		{name: "master hears equal priority from lower address: stays",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, adv: adv(100), from: peerLow}},
			wantState: StateMaster, wantAdver: 5 * time.Second,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 100"},
		{name: "master hears priority 0: advert at once",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, adv: adv(0)}},
			wantState: StateMaster, wantAdver: 5 * time.Second,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 100"},
		{name: "stop as master: priority 0 and VIPs removed",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, stop: true}},
			wantState: StateStop,
			wantLog:   "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 0; addrs false; gate release; MASTER->STOP"},
		{name: "stop as backup: no advert",
			steps:     []step{{at: time.Second, stop: true}},
			wantState: StateStop,
			wantLog:   "addrs false; INIT->BACKUP; BACKUP->STOP"},
		{name: "fault as master: priority 0, VIPs removed",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, fault: bptr(true)}},
			wantState: StateFault,
			wantLog:   "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 0; addrs false; gate release; MASTER->FAULT"},
		{name: "fault cleared: backup with fresh Master_Down",
			steps:     []step{{at: time.Second, fault: bptr(true)}, {at: 2 * time.Second, fault: bptr(false)}},
			wantState: StateBackup, wantDown: 5600 * ms,
			wantLog: "addrs false; INIT->BACKUP; BACKUP->FAULT; FAULT->BACKUP"},
		{name: "fault ignores adverts and timers",
			steps:     []step{{at: time.Second, fault: bptr(true)}, {at: 2 * time.Second, adv: adv(0)}, {at: 9 * time.Second, tick: true}},
			wantState: StateFault,
			wantLog:   "addrs false; INIT->BACKUP; BACKUP->FAULT"},
		{name: "gate pending: stays backup, no timer",
			noAdmit:   true,
			steps:     []step{{at: 3600 * ms, tick: true}},
			wantState: StateBackup,
			wantLog:   "addrs false; INIT->BACKUP; gate ask"},
		{name: "gate pending then higher advert: claim cancelled",
			noAdmit:   true,
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 3700 * ms, adv: adv(150)}, {at: 3800 * ms, admit: true}},
			wantState: StateBackup, wantDown: 7300 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; gate cancel"},
		{name: "gate refuses: FENCED, asks again after Master_Down",
			noAdmit:   true,
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, refuse: true}, {at: 7600 * ms, tick: true}, {at: 7700 * ms, admit: true}},
			wantState: StateMaster, wantAdver: 8700 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->FENCED; gate ask; FENCED->MASTER; send 100; addrs true"},
		{name: "gate revokes: priority 0, VIPs removed, FENCED",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, revoke: true}},
			wantState: StateFenced, wantDown: 7600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 0; addrs false; MASTER->FENCED"},
		// SIGSTOP past the fence's lease: when the process runs again its
		// advert timer is long due; the gate is asked first, and the
		// instance gives up instead of asserting MASTER over whoever took
		// over meanwhile.
		{name: "advert due after a pause past the lease: priority 0, FENCED, released",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, lapse: true}, {at: 9 * time.Second, tick: true}},
			wantState: StateFenced, wantDown: 12600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 0; addrs false; MASTER->FENCED; gate release"},
		// The adverts of the director that took over were queued on the
		// socket during the pause and may be read before the timer runs.
		{name: "lower-priority advert read after a pause past the lease: no assertion",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, lapse: true}, {at: 9 * time.Second, adv: adv(50), from: peerLow}},
			wantState: StateFenced, wantDown: 12600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 0; addrs false; MASTER->FENCED; gate release"},
		{name: "priority-0 advert read after a pause past the lease: no assertion",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, lapse: true}, {at: 9 * time.Second, adv: adv(0), from: peerLow}},
			wantState: StateFenced, wantDown: 12600 * ms,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 0; addrs false; MASTER->FENCED; gate release"},
		{name: "gate still holds: the late advert goes out",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 9 * time.Second, tick: true}},
			wantState: StateMaster, wantAdver: 10 * time.Second,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 100"},
		{name: "priority change as master is advertised at once",
			steps:     []step{{at: 3600 * ms, tick: true}, {at: 4 * time.Second, prio: 80}},
			wantState: StateMaster, wantAdver: 5 * time.Second,
			wantLog: "addrs false; INIT->BACKUP; gate ask; BACKUP->MASTER; send 100; addrs true; send 80"},
		{name: "wrong address list dropped",
			steps:     []step{{at: time.Second, adv: &Advert{Version: 3, VRID: 51, Priority: 150, Interval: time.Second}}},
			wantState: StateBackup, wantDown: 3600 * ms,
			wantLog: "addrs false; INIT->BACKUP; drop addr_list"},
		{name: "skip_check_adv_addr accepts other list",
			spec:      func(s *InstanceSpec) { s.SkipCheckAdvAddr = true },
			steps:     []step{{at: time.Second, adv: &Advert{Version: 3, VRID: 51, Priority: 150, Interval: time.Second}}},
			wantState: StateBackup, wantDown: 4600 * ms,
			wantLog: "addrs false; INIT->BACKUP"},
		{name: "v2 wrong password dropped",
			spec:      func(s *InstanceSpec) { s.Version = 2; s.AuthType = AuthPass; s.AuthPass = "s3cret" },
			steps:     []step{{at: time.Second, adv: &Advert{Version: 2, VRID: 51, Priority: 150, Interval: time.Second, AuthType: AuthPass, AuthData: PassAuth("wrong"), Addrs: []netip.Addr{vip4}}}},
			wantState: StateBackup,
			wantLog:   "addrs false; INIT->BACKUP; drop auth", wantDown: 3000*ms + 156*time.Second/256},
		{name: "v2 interval mismatch dropped",
			spec:      func(s *InstanceSpec) { s.Version = 2 },
			steps:     []step{{at: time.Second, adv: &Advert{Version: 2, VRID: 51, Priority: 150, Interval: 2 * time.Second, Addrs: []netip.Addr{vip4}}}},
			wantState: StateBackup,
			wantLog:   "addrs false; INIT->BACKUP; drop interval", wantDown: 3000*ms + 156*time.Second/256},
		{name: "version mismatch dropped",
			steps:     []step{{at: time.Second, adv: &Advert{Version: 2, VRID: 51, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip4}}}},
			wantState: StateBackup, wantDown: 3600 * ms,
			wantLog: "addrs false; INIT->BACKUP; drop version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, fx := run(t, testSpec(tt.spec), !tt.noAdmit, tt.steps)
			if m.state != tt.wantState {
				t.Errorf("state %v, want %v", m.state, tt.wantState)
			}
			if got := strings.Join(fx.log, "; "); got != tt.wantLog {
				t.Errorf("effects\n got %s\nwant %s", got, tt.wantLog)
			}
			if tt.wantDown != 0 && m.downAt.Sub(t0) != tt.wantDown {
				t.Errorf("Master_Down at %v, want %v", m.downAt.Sub(t0), tt.wantDown)
			}
			if tt.wantAdver != 0 && m.adverAt.Sub(t0) != tt.wantAdver {
				t.Errorf("next advert at %v, want %v", m.adverAt.Sub(t0), tt.wantAdver)
			}
		})
	}
}

func TestSkewKeepalived(t *testing.T) {
	tests := []struct {
		version  int
		prio     uint8
		interval time.Duration
		want     time.Duration
	}{
		{2, 100, time.Second, 609375 * time.Microsecond},
		{3, 100, time.Second, 600 * time.Millisecond},
		{3, 100, 100 * time.Millisecond, 60 * time.Millisecond},
		{3, 150, time.Second, 410 * time.Millisecond},
		{3, 254, 10 * time.Millisecond, 0},
		{2, 1, time.Second, 255 * time.Second / 256},
	}
	for _, tt := range tests {
		m := newMachine(&InstanceSpec{Version: tt.version, Priority: tt.prio, Interval: tt.interval}, &recFx{})
		if got := m.skew(); got != tt.want {
			t.Errorf("v%d prio %d int %v: skew %v want %v", tt.version, tt.prio, tt.interval, got, tt.want)
		}
	}
}

func TestSameAddrs(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if !sameAddrs([]netip.Addr{a, b}, []netip.Addr{b, a}) || sameAddrs([]netip.Addr{a, a}, []netip.Addr{a, b}) ||
		sameAddrs([]netip.Addr{a}, []netip.Addr{a, b}) {
		t.Fatal("sameAddrs wrong")
	}
}
