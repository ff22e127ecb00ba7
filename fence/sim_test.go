package fence

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// A deterministic simulation of three directors around one replicated
// log, with the kernel's address lifetimes modelled at their worst (the
// coarse timer always late), clocks drifting by rho, pauses, crashes,
// partitions and apply lag. S1 is checked after every step of true time:
// at no instant do two kernels hold the VIP.

const simStep = 5 * time.Millisecond

type simProposal struct {
	from   string
	kind   string // claim, renew, release
	key    Key
	epoch  uint64 // claim: prev epoch; release: epoch
	prio   int
	hold   time.Duration
	epochs map[Key]uint64
	sent   time.Time // sender's clock
	seq    uint64
	at     time.Duration // true time it commits
}

// simRec is the replicated record (what consensus.FSM holds).
type simRec struct {
	node, prev     string
	epoch          uint64
	prio           int
	prevReleased   bool
	hold, prevHold time.Duration
}

type simEntry struct {
	p   simProposal
	ok  bool
	rec map[Key]simRec // state after the entry
	// refused keys of a renewal
	refused []Key
	epoch   uint64
}

type simNode struct {
	name    string
	rate    float64 // clock rate
	c       *core
	paused  bool
	dead    bool
	inMajor bool // can commit and apply
	applied int  // log entries applied
	lag     time.Duration
	table   map[Key]Record
	// kernel
	installed bool
	expiry    time.Duration // true time
	// fake VRRP
	wants    bool
	asking   bool // an Admit outstanding or admitted
	admitted bool
	retryAt  time.Duration
	inbox    []func()
	prio     int
	admits   []time.Duration // true times of admission
	alive    int             // gossip hint it sees
}

type sim struct {
	t     *testing.T
	p     Params
	now   time.Duration
	nodes map[string]*simNode
	order []string
	log   []simEntry
	state map[Key]simRec
	props []simProposal
	key   Key
	// commit latency
	commit  time.Duration
	masterD time.Duration
	double  int
	// forgetHold drops the claimant's HoldBound from the records (a
	// mutation: the checker must then see two owners).
	forgetHold bool
	moves      int
	lastOwn    string
}

func (n *simNode) local(t time.Duration) time.Time {
	return time.Unix(1000, 0).Add(time.Duration(float64(t) * n.rate))
}

type simFx struct {
	s *sim
	n *simNode
}

func (f simFx) claim(k Key, prev uint64, prio int, hold time.Duration, seq uint64, sent time.Time) {
	f.s.propose(simProposal{from: f.n.name, kind: "claim", key: k, epoch: prev, prio: prio, hold: hold, seq: seq, sent: sent})
}
func (f simFx) renew(e map[Key]uint64, sent time.Time) {
	f.s.propose(simProposal{from: f.n.name, kind: "renew", epochs: maps.Clone(e), sent: sent})
}
func (f simFx) release(k Key, epoch uint64) {
	f.s.propose(simProposal{from: f.n.name, kind: "release", key: k, epoch: epoch})
}
func (f simFx) hold(k Key, bound time.Time) {
	n := f.n
	if bound.IsZero() {
		n.installed = false
		return
	}
	if n.installed {
		f.s.write(n, bound)
	}
}
func (f simFx) reinstall(k Key, bound time.Time) { f.s.write(f.n, bound) }
func (f simFx) lapse(k Key, _ time.Time)         { f.hold(k, time.Time{}) }

func (f simFx) answer(k Key, err error) {
	n := f.n
	if err == nil && !n.admitted {
		n.admitted = true
		n.admits = append(n.admits, f.s.now)
		// VRRP adds the VIPs: through the guard, with the bound of now.
		b := n.c.ents[k].leaseSent.Add(n.c.p.hold())
		f.s.write(n, b)
		return
	}
	n.admitted, n.asking = false, false
	n.installed = false // a revoke removes them (hold did already)
	n.retryAt = f.s.now + f.s.masterD
}
func (f simFx) logf(Key, string, ...any) {}

// write installs or refreshes the VIP on n's kernel if the bound allows.
func (s *sim) write(n *simNode, bound time.Time) {
	lt := lifetimeAt(bound, n.local(s.now))
	if lt == 0 {
		return
	}
	n.installed = true
	// The kernel runs on n's clock; its coarse timer removes late.
	n.expiry = s.now + time.Duration(float64(lt+CoarseTimer)/n.rate)
}

func newSim(t *testing.T, rates map[string]float64) *sim {
	return newSimWith(t, rates, nil)
}

// newSimWith gives some directors their own lease settings (the cluster
// block is node-local).
func newSimWith(t *testing.T, rates map[string]float64, params map[string]Params) *sim {
	p := DefaultParams()
	s := &sim{t: t, p: p, nodes: map[string]*simNode{}, state: map[Key]simRec{}, key: Key{VRID: 51, Interface: "eth0"},
		commit: 3 * time.Millisecond, masterD: 3600 * time.Millisecond}
	for _, name := range []string{"A", "B", "C"} {
		r := rates[name]
		if r == 0 {
			r = 1
		}
		n := &simNode{name: name, rate: r, inMajor: true, table: map[Key]Record{}, prio: 100, alive: 3}
		np := p
		if q, ok := params[name]; ok {
			np = q
		}
		n.c = newCore(np, name, simFx{s: s, n: n})
		n.c.members(n.local(0), 3, 3)
		s.nodes[name] = n
		s.order = append(s.order, name)
	}
	return s
}

func (s *sim) propose(p simProposal) {
	n := s.nodes[p.from]
	if !n.inMajor {
		// Never commits: the proposer times out.
		p.at = s.now + s.p.claimTimeout()
		p.kind = "timeout:" + p.kind
	} else {
		p.at = s.now + s.commit
	}
	s.props = append(s.props, p)
}

// commitDue commits (or times out) due proposals in order.
func (s *sim) commitDue() {
	var keep []simProposal
	for _, p := range s.props {
		if p.at > s.now {
			keep = append(keep, p)
			continue
		}
		n := s.nodes[p.from]
		if strings.HasPrefix(p.kind, "timeout:") {
			s.reply(n, p, simEntry{}, errors.New("timed out"))
			continue
		}
		e := s.apply(p)
		s.log = append(s.log, e)
		var err error
		if !e.ok {
			err = ErrRefused
		}
		if n.inMajor {
			s.reply(n, p, e, err)
		} else {
			s.reply(n, p, e, errors.New("reply lost"))
		}
	}
	s.props = keep
}

func (s *sim) apply(p simProposal) simEntry {
	e := simEntry{p: p}
	st := maps.Clone(s.state)
	switch p.kind {
	case "claim":
		cur := st[p.key]
		if cur.epoch == p.epoch {
			rel := cur.node == ""
			st[p.key] = simRec{node: p.from, prev: cur.node, epoch: cur.epoch + 1, prio: p.prio, prevReleased: rel, hold: p.hold, prevHold: cur.hold}
			if s.forgetHold {
				st[p.key] = simRec{node: p.from, prev: cur.node, epoch: cur.epoch + 1, prio: p.prio, prevReleased: rel}
			}
			e.ok, e.epoch = true, cur.epoch+1
		}
	case "renew":
		e.ok = true
		for k, ep := range p.epochs {
			cur := st[k]
			if cur.node != p.from || cur.epoch != ep {
				e.refused = append(e.refused, k)
			}
		}
	case "release":
		cur := st[p.key]
		switch {
		case cur.node == p.from && cur.epoch == p.epoch:
			cur.node = ""
			st[p.key] = cur
			e.ok = true
		case cur.prev == p.from && cur.epoch == p.epoch+1:
			cur.prevReleased = true
			st[p.key] = cur
			e.ok = true
		}
	}
	s.state = st
	e.rec = st
	return e
}

func (s *sim) reply(n *simNode, p simProposal, e simEntry, err error) {
	n.inbox = append(n.inbox, func() {
		now := n.local(s.now)
		switch strings.TrimPrefix(p.kind, "timeout:") {
		case "claim":
			n.c.claimDone(now, p.key, p.seq, e.epoch, err)
		case "renew":
			n.c.renewDone(now, p.sent, p.epochs, e.refused, err)
		}
	})
}

// applyDue applies committed entries on n (after its lag), recording
// the local apply times as consensus does.
func (s *sim) applyDue(n *simNode) bool {
	changed := false
	for n.applied < len(s.log) {
		e := s.log[n.applied]
		if e.p.at+n.lag > s.now {
			break
		}
		n.applied++
		changed = true
		now := n.local(s.now)
		for k, r := range e.rec {
			old := n.table[k]
			rec := Record{Node: r.node, Epoch: r.epoch, Priority: r.prio, Prev: r.prev, PrevReleased: r.prevReleased, Applied: old.Applied, PrevSeen: old.PrevSeen, Hold: r.hold, PrevHold: r.prevHold}
			switch {
			case e.p.kind == "claim" && e.ok && e.p.key == k:
				rec.Applied, rec.PrevSeen = now, old.Applied
			case e.p.kind == "renew" && e.p.epochs[k] == r.epoch && r.node == e.p.from:
				rec.Applied = now
			}
			n.table[k] = rec
		}
	}
	return changed
}

func (s *sim) run(d time.Duration) {
	end := s.now + d
	for s.now < end {
		s.now += simStep
		s.commitDue()
		for _, name := range s.order {
			n := s.nodes[name]
			if n.paused || n.dead {
				continue
			}
			now := n.local(s.now)
			if n.inMajor && s.applyDue(n) {
				n.c.owners(now, maps.Clone(n.table))
			}
			for len(n.inbox) > 0 {
				f := n.inbox[0]
				n.inbox = n.inbox[1:]
				f()
			}
			if at := n.c.next(); !at.IsZero() && !now.Before(at) {
				n.c.tick(now)
			}
			// Fake VRRP: asks when it wants and its timer allows.
			if n.wants && !n.asking && s.now >= n.retryAt {
				n.asking = true
				n.c.admit(now, s.key, n.prio)
			}
			if !n.wants && n.asking {
				n.asking, n.admitted = false, false
				n.c.withdraw(now, s.key)
			}
		}
		s.check()
	}
}

func (s *sim) check() {
	var own []string
	for _, name := range s.order {
		n := s.nodes[name]
		if n.installed && s.now < n.expiry {
			own = append(own, name)
		}
	}
	if len(own) > 1 {
		s.double++
		if s.double == 1 && s.t != nil {
			s.t.Errorf("S1 violated at %s: %v own the VIP", s.now, own)
		}
	}
	cur := strings.Join(own, ",")
	if len(own) == 1 && cur != s.lastOwn {
		if s.lastOwn != "" {
			s.moves++
		}
		s.lastOwn = cur
	}
}

func (s *sim) owner() string {
	for _, name := range s.order {
		n := s.nodes[name]
		if n.installed && s.now < n.expiry {
			return name
		}
	}
	return ""
}

// partition puts the named nodes in the minority: they commit nothing and
// apply nothing; the gossip hint reaches everyone after hint (or never).
func (s *sim) partition(minority ...string) {
	for _, n := range s.nodes {
		n.inMajor = !slices.Contains(minority, n.name)
	}
}

func (s *sim) gossip() {
	major := 0
	for _, n := range s.nodes {
		if n.inMajor {
			major++
		}
	}
	for _, n := range s.nodes {
		if n.paused || n.dead {
			continue
		}
		alive := major
		if !n.inMajor {
			alive = 1
		}
		n.c.members(n.local(s.now), alive, 3)
	}
}

func (s *sim) heal() {
	for _, n := range s.nodes {
		n.inMajor = true
	}
	s.gossip()
}

type simStep2 struct {
	do  func(s *sim)
	run time.Duration
}

func TestS1Interleavings(t *testing.T) {
	slow, fast := 1-0.01, 1+0.01
	p := DefaultParams()
	bound := p.Takeover(3600*time.Millisecond, 3*time.Millisecond) + simStep*4
	tests := []struct {
		name  string
		rates map[string]float64
		setup func(s *sim)
		steps []simStep2
		// want: owner at the end; maxTakeover after the fault (0: not checked)
		want      string
		first     string // owner after the first step (default A)
		moves     int
		takeoverB bool
	}{
		{name: "kill -9 of the owner", want: "B", moves: 1, takeoverB: true, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) {
				s.nodes["A"].dead = true
				s.nodes["B"].wants = true
				s.nodes["B"].retryAt = s.now + s.masterD
			}, 10 * time.Second},
		}},
		{name: "kill -9, owner's clock slow, new owner's fast", rates: map[string]float64{"A": slow, "B": fast}, want: "B", moves: 1, takeoverB: true, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.nodes["A"].dead = true; s.nodes["B"].wants = true; s.nodes["B"].retryAt = s.now }, 10 * time.Second},
		}},
		{name: "SIGSTOP the owner, B takes over, SIGCONT", rates: map[string]float64{"A": slow, "B": fast}, want: "B", moves: 1, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.nodes["A"].paused = true; s.nodes["B"].wants = true; s.nodes["B"].retryAt = s.now }, 8 * time.Second},
			// A resumes believing it is master: its lease ran out.
			{func(s *sim) { s.nodes["A"].paused = false }, 5 * time.Second},
		}},
		{name: "SIGSTOP right after a renewal was sent", want: "B", moves: 1, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2*time.Second + 250*time.Millisecond},
			{func(s *sim) { s.nodes["A"].paused = true; s.nodes["B"].wants = true; s.nodes["B"].retryAt = s.now }, 8 * time.Second},
		}},
		{name: "{A}|{B,C} with A the owner, gossip hint", want: "B", moves: 1, takeoverB: true, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.partition("A"); s.nodes["B"].wants = true; s.nodes["B"].retryAt = s.now + s.masterD }, 500 * time.Millisecond},
			{func(s *sim) { s.gossip() }, 10 * time.Second},
		}},
		{name: "{A}|{B,C} with A the owner, no gossip hint (lease only)", want: "B", moves: 1, takeoverB: true, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.partition("A"); s.nodes["B"].wants = true; s.nodes["B"].retryAt = s.now + s.masterD }, 10 * time.Second},
		}},
		{name: "{A}|{B,C} with A a backup: A cannot claim", want: "B", first: "B", moves: 0, setup: func(s *sim) { s.nodes["B"].prio = 150 }, steps: []simStep2{
			{func(s *sim) { s.nodes["A"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.partition("A"); s.nodes["A"].wants = true }, 10 * time.Second},
			{func(s *sim) { s.heal(); s.nodes["A"].wants = false }, 5 * time.Second},
		}},
		{name: "graceful handoff: the owner withdraws", want: "B", moves: 1, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			// B hears the priority-0 advert and claims after its skew time.
			{func(s *sim) {
				s.nodes["A"].wants = false
				s.nodes["B"].wants = true
				s.nodes["B"].retryAt = s.now + 600*time.Millisecond
			}, 3 * time.Second},
		}},
		{name: "preemption by a higher priority while the owner lives", want: "B", moves: 1, setup: func(s *sim) { s.nodes["B"].prio = 150 }, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.nodes["B"].wants = true }, 300 * time.Millisecond},
			{func(s *sim) { s.nodes["A"].wants = false }, 3 * time.Second},
		}},
		{name: "VRRP-only drops: both want, equal priority, no flapping", want: "A", moves: 0, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.nodes["B"].wants = true }, 20 * time.Second},
		}},
		{name: "slow apply on the new owner", want: "B", moves: 1, setup: func(s *sim) { s.nodes["B"].lag = 400 * time.Millisecond }, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.nodes["A"].dead = true; s.nodes["B"].wants = true; s.nodes["B"].retryAt = s.now }, 10 * time.Second},
		}},
		{name: "owner in the minority, replies lost, then heals", want: "B", moves: 1, steps: []simStep2{
			{func(s *sim) { s.nodes["B"].wants = false }, 2 * time.Second},
			{func(s *sim) { s.partition("A"); s.nodes["B"].wants = true; s.nodes["B"].retryAt = s.now + s.masterD }, 10 * time.Second},
			// VRRP on the wire: A hears B and steps down.
			{func(s *sim) { s.heal(); s.nodes["A"].wants = false }, 5 * time.Second},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, tc.rates)
			for _, n := range s.nodes {
				n.wants = n.name != "C"
			}
			if tc.setup != nil {
				tc.setup(s)
			}
			var faultAt time.Duration
			for i, st := range tc.steps {
				if i == 1 {
					faultAt = s.now
				}
				st.do(s)
				s.run(st.run)
				first := tc.first
				if first == "" {
					first = "A"
				}
				if i == 0 && s.owner() != first {
					t.Fatalf("after the first step the owner is %q, want %s", s.owner(), first)
				}
			}
			if got := s.owner(); got != tc.want {
				t.Errorf("owner at the end = %q, want %q", got, tc.want)
			}
			if s.moves != tc.moves {
				t.Errorf("the VIP moved %d times, want %d", s.moves, tc.moves)
			}
			if tc.takeoverB {
				b := s.nodes["B"]
				if len(b.admits) == 0 {
					t.Fatal("B never admitted")
				}
				if took := b.admits[len(b.admits)-1] - faultAt; took > bound {
					t.Errorf("takeover took %s (simulated), L1 bound %s", took, bound)
				}
			}
			if s.double > 0 {
				t.Errorf("%d steps of %s with two owners", s.double, simStep)
			}
		})
	}
	_ = fmt.Sprint
}

// TestS1CheckerSeesViolations shows the simulation can fail: with the
// previous owner's HoldBound left out of the records, a new owner with a
// shorter lease than the old one waits too little after a SIGSTOP, and
// the checker counts instants with two owners. With it, none.
func TestS1CheckerSeesViolations(t *testing.T) {
	long := Params{Lease: 4 * time.Second, Renew: time.Second, Drift: 0.01}
	for _, tc := range []struct {
		forget bool
		double bool
	}{{forget: true, double: true}, {forget: false, double: false}} {
		t.Run(fmt.Sprintf("forgetHold=%v", tc.forget), func(t *testing.T) {
			s := newSimWith(nil, nil, map[string]Params{"A": long})
			s.forgetHold = tc.forget
			s.nodes["A"].wants = true
			s.run(3 * time.Second)
			if s.owner() != "A" {
				t.Fatalf("owner %q, want A", s.owner())
			}
			s.nodes["A"].paused = true
			s.nodes["B"].wants = true
			s.run(12 * time.Second)
			if got := s.double > 0; got != tc.double {
				t.Errorf("two owners seen in %d steps; want some: %v", s.double, tc.double)
			}
			if s.owner() != "B" {
				t.Errorf("owner at the end %q, want B", s.owner())
			}
		})
	}
}
