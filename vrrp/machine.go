package vrrp

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP instance state. Fenced is hakeep's: the instance wanted
// MASTER and its Gate refused.
type State int

// States.
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
	StateStop
	StateFenced
)

var stateNames = [...]string{"INIT", "BACKUP", "MASTER", "FAULT", "STOP", "FENCED"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// effects is what the machine asks of the outside world. Every method must
// return at once: the machine runs on the timer path.
type effects interface {
	send(prio uint8)
	setAddrs(up bool)
	transition(from, to State, why string)
	askGate()
	cancelGate()
	releaseGate()
	// holds asks the Gate whether the admitted claim still holds (true
	// for gates that cannot tell).
	holds() bool
	logDrop(r DropReason, src netip.Addr, detail string)
}

// machine is the RFC 5798 state machine of one instance with keepalived's
// extras. It is driven by explicit times, so tests need no clock at all.
type machine struct {
	spec *InstanceSpec
	fx   effects

	state    State
	prio     uint8 // effective priority
	fault    bool  // some tracked object says FAULT
	pending  bool  // waiting for the Gate
	gateErr  error // last refusal
	primary  netip.Addr
	masterIP netip.Addr
	// masterInt is Master_Adver_Interval: the master's interval in v3.
	masterInt time.Duration

	adverAt   time.Time // MASTER: next advert
	downAt    time.Time // BACKUP: Master_Down timer
	preemptAt time.Time // preempt_delay running since a lower-priority master was seen

	stats [numDropReasons]uint64
	rx    uint64
	tx    uint64
	// becameMaster counts MASTER entries (status, tests).
	becameMaster uint64
}

func newMachine(spec *InstanceSpec, fx effects) *machine {
	return &machine{spec: spec, fx: fx, prio: spec.Priority, masterInt: spec.Interval, primary: spec.SrcIP}
}

// skew is keepalived's Skew_Time: (256-prio)/256 s in v2; in v3 scaled by
// Master_Adver_Interval and truncated to centiseconds.
func (m *machine) skew() time.Duration {
	p := time.Duration(256 - int(m.prio))
	if m.spec.Version == 2 {
		return p * time.Second / 256
	}
	cs := m.masterInt / (10 * time.Millisecond)
	return (p * cs / 256) * 10 * time.Millisecond
}

func (m *machine) masterDown() time.Duration { return 3*m.masterInt + m.skew() }

// deadline is when tick must next run; zero means no timer.
func (m *machine) deadline() time.Time {
	switch m.state {
	case StateMaster:
		return m.adverAt
	case StateBackup, StateFenced:
		if m.pending {
			return time.Time{}
		}
		return m.downAt
	}
	return time.Time{}
}

// start leaves INIT. Stale VIPs are removed first, as keepalived does.
func (m *machine) start(now time.Time) {
	m.fx.setAddrs(false)
	if m.fault {
		m.setState(StateFault, "init: tracked object down")
		return
	}
	m.toBackup(now, "init")
	if m.spec.PreemptDelay > 0 {
		// keepalived: no preemption within preempt_delay of startup either.
		m.preemptAt = now.Add(m.spec.PreemptDelay)
	}
	if m.spec.Priority == 255 {
		m.claim(now) // the address owner does not wait (RFC 5798 6.4.1)
	}
}

func (m *machine) setState(s State, why string) {
	if s == m.state {
		return
	}
	from := m.state
	m.state = s
	m.fx.transition(from, s, why)
}

func (m *machine) toBackup(now time.Time, why string) {
	m.masterInt = m.spec.Interval
	m.downAt = now.Add(m.masterDown())
	m.preemptAt = time.Time{}
	m.setState(StateBackup, why)
}

// claim asks the Gate for MASTER; the answer comes through admitted/refused.
func (m *machine) claim(now time.Time) {
	if m.pending {
		return
	}
	m.pending = true
	m.fx.askGate()
}

func (m *machine) abandonClaim() {
	if m.pending {
		m.pending = false
		m.fx.cancelGate()
	}
}

// admitted is the Gate's yes.
func (m *machine) admitted(now time.Time) {
	if !m.pending {
		return
	}
	m.pending = false
	m.gateErr = nil
	if m.state != StateBackup && m.state != StateFenced {
		m.fx.releaseGate()
		return
	}
	m.becomeMaster(now, "gate admitted")
}

// refused is the Gate's no: the instance shows FENCED and asks again after
// another Master_Down_Interval.
func (m *machine) refused(now time.Time, err error) {
	if !m.pending {
		return
	}
	m.pending = false
	m.gateErr = err
	if m.state != StateBackup && m.state != StateFenced {
		return
	}
	m.downAt = now.Add(m.masterDown())
	m.setState(StateFenced, "gate refused: "+err.Error())
}

// revoked is the Gate taking ownership back: give up as on shutdown, but
// stay in the race as a backup.
func (m *machine) revoked(now time.Time, err error) {
	if m.state != StateMaster {
		return
	}
	m.fx.send(0)
	m.tx++
	m.fx.setAddrs(false)
	m.gateErr = err
	m.downAt = now.Add(m.masterDown())
	m.setState(StateFenced, "gate revoked: "+err.Error())
}

// errLapsed is why a MASTER gives up when its Gate no longer holds the
// claim at an advert.
var errLapsed = errors.New("claim no longer held when an advert was due (paused past the lease?)")

// advertise sends a MASTER advert if the Gate still holds the claim; else
// the instance gives up as on a revoke and releases the claim. A process
// paused past its fence's lease (SIGSTOP) wakes with its advert timer due
// and adverts from the director that took over queued on its socket:
// either would otherwise make it assert MASTER before its gate revokes,
// and push the new owner back to BACKUP.
func (m *machine) advertise(now time.Time) bool {
	if !m.fx.holds() {
		m.revoked(now, errLapsed)
		m.fx.releaseGate()
		return false
	}
	m.fx.send(m.prio)
	m.tx++
	return true
}

func (m *machine) becomeMaster(now time.Time, why string) {
	m.masterIP = m.primary
	m.preemptAt = time.Time{}
	m.setState(StateMaster, why)
	m.becameMaster++
	m.fx.send(m.prio)
	m.tx++
	m.fx.setAddrs(true)
	m.adverAt = now.Add(m.spec.Interval)
}

// leaveMaster goes to BACKUP after hearing a better master.
func (m *machine) leaveMaster(now time.Time, why string) {
	m.fx.setAddrs(false)
	m.fx.releaseGate()
	m.toBackup(now, why)
}

// tick runs expired timers.
func (m *machine) tick(now time.Time) {
	switch m.state {
	case StateMaster:
		if !now.Before(m.adverAt) {
			if !m.advertise(now) {
				return
			}
			m.adverAt = m.adverAt.Add(m.spec.Interval)
			if !m.adverAt.After(now) { // we were late: do not burst
				m.adverAt = now.Add(m.spec.Interval)
			}
		}
	case StateBackup, StateFenced:
		if !m.pending && !m.downAt.IsZero() && !now.Before(m.downAt) {
			m.downAt = time.Time{}
			m.masterIP = netip.Addr{}
			m.claim(now)
		}
	}
}

// receive handles an advert that passed the socket's checks and carries our
// VRID. It applies the instance's own checks (auth, v2 interval, addresses)
// and then RFC 5798 section 6.4.
func (m *machine) receive(now time.Time, a *Advert, src netip.Addr) {
	if r, detail := m.check(a); r != 0 {
		m.stats[r]++
		m.fx.logDrop(r, src, detail)
		return
	}
	m.rx++
	switch m.state {
	case StateBackup, StateFenced:
		if a.Priority == 0 {
			m.downAt = now.Add(m.skew())
			return
		}
		if !m.spec.Preempt || a.Priority >= m.prio || m.prio == 0 {
			m.follow(now, a, src)
			return
		}
		// A lower-priority master and we preempt, perhaps after a delay.
		if m.spec.PreemptDelay > 0 {
			if m.preemptAt.IsZero() {
				m.preemptAt = now.Add(m.spec.PreemptDelay)
			}
			if now.Before(m.preemptAt) {
				m.follow(now, a, src)
				return
			}
		}
		// Ignore it: Master_Down runs out and we take over.
		m.masterIP = src
	case StateMaster:
		if a.Priority == 0 {
			if m.advertise(now) {
				m.adverAt = now.Add(m.spec.Interval)
			}
			return
		}
		if a.Priority > m.prio || (a.Priority == m.prio && addrGreater(src, m.primary)) {
			m.leaveMaster(now, fmt.Sprintf("higher priority advert from %s (%d)", src, a.Priority))
			if m.spec.Version == 3 {
				m.masterInt = a.Interval
				m.downAt = now.Add(m.masterDown())
			}
			m.masterIP = src
			return
		}
		// A lower-priority master: assert ourselves at once (keepalived).
		if m.advertise(now) {
			m.adverAt = now.Add(m.spec.Interval)
		}
	}
}

// follow accepts src as master and restarts Master_Down.
func (m *machine) follow(now time.Time, a *Advert, src netip.Addr) {
	pre := m.preemptAt
	if m.pending {
		m.abandonClaim()
	}
	if m.state == StateFenced {
		m.setState(StateBackup, "master heard")
	}
	if m.spec.Version == 3 && a.Interval > 0 {
		m.masterInt = a.Interval
	}
	m.masterIP = src
	m.downAt = now.Add(m.masterDown())
	if a.Priority >= m.prio {
		m.preemptAt = time.Time{}
	} else {
		m.preemptAt = pre
	}
}

// check applies the per-instance acceptance rules; 0 means accepted.
func (m *machine) check(a *Advert) (DropReason, string) {
	s := m.spec
	if a.Version != s.Version {
		return DropVersion, fmt.Sprintf("version %d, ours %d", a.Version, s.Version)
	}
	if a.Version == 2 {
		want := PassAuth(s.AuthPass)
		if a.AuthType != s.AuthType {
			return DropAuth, fmt.Sprintf("auth type %d, ours %d", a.AuthType, s.AuthType)
		}
		if s.AuthType == AuthPass && a.AuthData != want {
			return DropAuth, "wrong password"
		}
		if a.Interval != s.Interval {
			return DropInterval, fmt.Sprintf("advert_int %v, ours %v", a.Interval, s.Interval)
		}
	}
	if !s.SkipCheckAdvAddr && a.Priority != 0 && !sameAddrs(a.Addrs, s.VIPs) {
		return DropAddrList, fmt.Sprintf("addresses %v, ours %v", a.Addrs, s.VIPs)
	}
	return 0, ""
}

// stop leaves the race: a master sends priority 0 and drops its VIPs.
func (m *machine) stop(now time.Time) {
	m.abandonClaim()
	if m.state == StateMaster {
		m.fx.send(0)
		m.tx++
		m.fx.setAddrs(false)
		m.fx.releaseGate()
	}
	m.setState(StateStop, "shutdown")
}

// setFault enters or leaves FAULT (tracked interface / script / file).
func (m *machine) setFault(now time.Time, fault bool, why string) {
	if fault == m.fault {
		return
	}
	m.fault = fault
	if m.state == StateInit {
		return // start() looks at m.fault
	}
	if fault {
		m.abandonClaim()
		if m.state == StateMaster {
			m.fx.send(0)
			m.tx++
			m.fx.setAddrs(false)
			m.fx.releaseGate()
		}
		m.setState(StateFault, why)
		return
	}
	if m.state == StateFault {
		m.toBackup(now, why)
		if m.spec.Priority == 255 {
			m.claim(now)
		}
	}
}

// setPriority changes the effective priority (tracking weights). A master
// advertises the new priority at once so backups can preempt.
func (m *machine) setPriority(now time.Time, p uint8) {
	if p == m.prio {
		return
	}
	m.prio = p
	if m.state == StateMaster && m.advertise(now) {
		m.adverAt = now.Add(m.spec.Interval)
	}
}

// forceMaster / forceBackup are sync-group moves.
func (m *machine) forceMaster(now time.Time) {
	if m.state == StateBackup || m.state == StateFenced {
		m.downAt = time.Time{}
		m.claim(now)
	}
}

func (m *machine) forceBackup(now time.Time, why string) {
	switch m.state {
	case StateMaster:
		m.leaveMaster(now, why)
	case StateBackup, StateFenced:
		m.abandonClaim()
	}
}

func addrGreater(a, b netip.Addr) bool {
	return bytes.Compare(a.Unmap().AsSlice(), b.Unmap().AsSlice()) > 0
}

func sameAddrs(got, want []netip.Addr) bool {
	if len(got) != len(want) {
		return false
	}
	seen := make(map[netip.Addr]int, len(want))
	for _, w := range want {
		seen[w.Unmap()]++
	}
	for _, g := range got {
		g = g.Unmap()
		if seen[g] == 0 {
			return false
		}
		seen[g]--
	}
	return true
}
