package fence

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Reasons an instance is fenced, as status and logs show them.
const (
	ReasonNoQuorum   = "no quorum"
	ReasonExpired    = "lease expired"
	ReasonRefused    = "claim refused"
	ReasonWaiting    = "waiting for previous owner's lease"
	ReasonTaken      = "claimed by another director"
	ReasonRenewalRef = "renewal refused"
	// ReasonLapsed: the lease ran out while gossip still shows a quorum
	// (a Raft leader change stalls commits for about a second): the VIPs
	// are gone, VRRP stays MASTER and the renewals go on for Grace.
	ReasonLapsed = "lease lapsed, renewing"
)

// effects is what the core asks of the outside world. Every method returns
// at once except hold, which is synchronous: when it returns with a zero
// bound, the VIPs are gone and no write can install them again.
type effects interface {
	// claim proposes a claim; the answer comes back as claimDone(seq).
	claim(k Key, prevEpoch uint64, prio int, hold time.Duration, seq uint64, sent time.Time)
	// renew proposes one batched renewal; the answer is renewDone.
	renew(epochs map[Key]uint64, sent time.Time)
	// release proposes giving k up at epoch (VIPs already gone).
	release(k Key, epoch uint64)
	// hold sets how long VIPs of k may exist in the kernel: writes must
	// end their lifetime by bound (the kernel may keep them CoarseTimer
	// more); a zero bound removes them now and forbids writes.
	hold(k Key, bound time.Time)
	// reinstall is hold that also adds the VIPs again (a lapsed lease
	// renewed: VRRP, still MASTER, will not add them).
	reinstall(k Key, bound time.Time)
	// lapse is hold with a zero bound that lets VRRP go on advertising
	// as MASTER until the grace ends (Fence.Holds).
	lapse(k Key, until time.Time)
	// answer tells VRRP: the first answer of a claim admits (nil) or
	// refuses; after admission an answer revokes.
	answer(k Key, err error)
	// logf reports a fence decision.
	logf(k Key, msg string, args ...any)
}

type phase uint8

const (
	phIdle     phase = iota
	phClaiming       // claim proposed, not answered
	phWaiting        // claim committed: waiting for our apply and for the previous owner
	phOwned          // admitted: the VIPs may be installed
	// phLapsed: admitted, but the lease ran out with gossip showing a
	// quorum: VIPs removed, VRRP left MASTER (its adverts keep the backups
	// from a pointless takeover), renewing at our epoch until lapseEnd.
	phLapsed
	// phDeferred: VRRP asked while another director of at least our
	// priority owns the key and renews it; the answer waits for that
	// owner's next record (see admit).
	phDeferred
)

var phaseNames = [...]string{"idle", "claiming", "waiting", "owned", "lapsed", "deferred"}

// holds reports whether the phase keeps an epoch of ours that renewals
// cover and a foreign claim or the loss of quorum ends.
func (p phase) holds() bool { return p == phWaiting || p == phOwned || p == phLapsed }

func (p phase) String() string { return phaseNames[p] }

// entry is this director's fence state for one key.
type entry struct {
	key   Key
	want  bool // VRRP asks (an Admit not withdrawn or answered no)
	prio  int
	phase phase
	seq   uint64 // claim proposals, to match answers
	sent  time.Time
	epoch uint64 // ours while waiting or owned
	// leaseSent is when we sent our last accepted claim or renewal: the
	// lease runs to leaseSent+L on our clock.
	leaseSent time.Time
	lapseEnd  time.Time // phLapsed: when it gives up
	// waitEnd is when the previous owner's lease has surely ended, as
	// computed once our claim was applied here (waitKnown).
	waitEnd   time.Time
	waitKnown bool
	// phDeferred: the owner's record as it was when VRRP asked.
	deferOwner   string
	deferEpoch   uint64
	deferApplied time.Time
	reason       string // why fenced ("" when not)
	detail       string
	// Counters for metrics.
	claims, refusals, revokes uint64
}

func (e *entry) live(p Params, now time.Time) bool {
	return now.Before(e.leaseSent.Add(p.Lease))
}

// core is the fence's lease logic for every key of one director. It is
// driven by explicit times and owned by one goroutine.
type core struct {
	p     Params
	self  string
	fx    effects
	ents  map[Key]*entry
	table map[Key]Record

	quorum    bool
	quorumWhy string
	// committed is when we last learnt that a proposal of ours committed:
	// proof, fresher than gossip, that we reach a quorum.
	committed time.Time

	// inflight counts renewals proposed and not answered. One stuck on a
	// Raft leader that just died (a dial that times out) must not hold
	// back the next, which finds the new leader: up to maxInflight overlap.
	inflight  int
	lastRenew time.Time
	later     []laterRelease // due releases of dropped waiting claims
	renewals  uint64         // accepted renewal batches (metrics)
}

// maxInflight bounds the renewals in flight at once.
const maxInflight = 3

func newCore(p Params, self string, fx effects) *core {
	return &core{p: p, self: self, fx: fx, ents: map[Key]*entry{}, table: map[Key]Record{}}
}

func (c *core) ent(k Key) *entry {
	e := c.ents[k]
	if e == nil {
		e = &entry{key: k}
		c.ents[k] = e
	}
	return e
}

func (c *core) fenced(e *entry, reason, detail string) {
	e.reason, e.detail = reason, detail
}

// refuse answers a claim not yet admitted with no.
func (c *core) refuse(e *entry, reason, detail string) {
	c.fenced(e, reason, detail)
	e.want = false
	e.refusals++
	c.fx.logf(e.key, "claim refused", "reason", reason, "detail", detail)
	c.fx.answer(e.key, fmt.Errorf("fenced: %s: %s", reason, detail))
}

// admit is VRRP asking to become MASTER.
func (c *core) admit(now time.Time, k Key, prio int) {
	e := c.ent(k)
	e.want, e.prio = true, prio
	e.reason, e.detail = "", ""
	if !c.quorumOK(now) {
		c.refuse(e, ReasonNoQuorum, c.quorumWhy)
		return
	}
	switch e.phase {
	case phClaiming, phDeferred:
		return // the claim in flight, or the deferred ask, answers this one too
	case phWaiting, phOwned, phLapsed:
		// Not withdrawn since: the earlier claim still stands.
		c.check(now, e)
		return
	}
	rec := c.table[k]
	// A live owner of at least our priority keeps it: VRRP would not have
	// preempted it, so our Master_Down fired because adverts are lost, and
	// stealing would move the VIPs back and forth every interval.
	// But an owner that stops sends its priority-0 advert before its
	// release commits, and a backup asks after the skew (60 ms at
	// advert_int 0.1): refused then, it would ask again only a
	// Master_Down_Interval later. So the answer waits for the owner's next
	// record: a renewal refuses; a release, another claim, or the lease
	// running out lets the claim go on.
	if rec.Node != "" && rec.Node != c.self && now.Before(rec.Applied.Add(c.p.Lease)) && rec.Priority >= prio {
		e.phase, e.deferOwner, e.deferEpoch, e.deferApplied = phDeferred, rec.Node, rec.Epoch, rec.Applied
		return
	}
	e.phase = phClaiming
	e.seq++
	e.sent = now
	e.claims++
	c.fx.claim(k, rec.Epoch, prio, c.p.HoldBound(), e.seq, now)
}

// withdraw is VRRP taking its claim back (a better master, shutdown,
// leaving MASTER): the VIPs go and the record is released.
func (c *core) withdraw(now time.Time, k Key) {
	e := c.ents[k]
	if e == nil || !e.want {
		return
	}
	e.want = false
	e.reason, e.detail = "", ""
	if e.phase == phDeferred {
		e.phase = phIdle
	}
	if e.phase.holds() {
		c.drop(e)
	}
}

// undefer answers a deferred ask once the owner's record moved on.
func (c *core) undefer(now time.Time, e *entry) {
	rec := c.table[e.key]
	same := rec.Node == e.deferOwner && rec.Epoch == e.deferEpoch
	switch {
	case same && rec.Applied.After(e.deferApplied):
		e.phase = phIdle
		c.refuse(e, ReasonRefused, fmt.Sprintf("%s owns it (priority %d, epoch %d) and renews its lease", rec.Node, rec.Priority, rec.Epoch))
	case !same || !now.Before(e.deferApplied.Add(c.p.Lease)):
		e.phase = phIdle
		c.admit(now, e.key, e.prio)
	}
}

// drop removes the VIPs and releases our record (also after a foreign
// claim: the state machine takes it as the previous owner's
// acknowledgement, the new owner's fast path).
func (c *core) drop(e *entry) {
	c.fx.hold(e.key, time.Time{})
	epoch, waiting, known, until := e.epoch, e.phase == phWaiting, e.waitKnown, e.waitEnd
	e.phase, e.epoch, e.waitEnd, e.waitKnown = phIdle, 0, time.Time{}, false
	if !waiting || (known && until.IsZero()) {
		c.fx.release(e.key, epoch)
		return
	}
	// A claim not admitted yet installed no VIPs, but releasing it lets
	// the next claimant in at once, past the lease of the owner before us
	// that this claim was waiting out (a crashed owner's kernel still
	// holds its VIPs). So it is released once that wait is over, and not
	// at all if it was never computed here: the next claimant then waits
	// out this claim's hold, which began after that owner's last renewal.
	if known {
		c.later = append(c.later, laterRelease{key: e.key, epoch: epoch, at: until})
	}
}

// laterRelease is a waiting claim's release, due when the previous
// owner's lease has surely ended.
type laterRelease struct {
	key   Key
	epoch uint64
	at    time.Time
}

// lose ends our claim or ownership for reason: VIPs first, then VRRP
// hears it (a revoke, or the refusal of a claim not yet admitted).
func (c *core) lose(e *entry, reason, detail string) {
	admitted := e.phase == phOwned || e.phase == phLapsed
	c.drop(e)
	if !e.want {
		c.fenced(e, reason, detail)
		return
	}
	if admitted {
		e.want = false
		e.revokes++
		c.fenced(e, reason, detail)
		c.fx.logf(e.key, "ownership revoked, VIPs removed", "reason", reason, "detail", detail)
		c.fx.answer(e.key, fmt.Errorf("fenced: %s: %s", reason, detail))
		return
	}
	c.refuse(e, reason, detail)
}

func (c *core) claimDone(now time.Time, k Key, seq, epoch uint64, err error) {
	e := c.ent(k)
	if seq != e.seq || e.phase != phClaiming {
		return
	}
	e.phase = phIdle
	if err != nil {
		if e.want {
			c.refuse(e, ReasonRefused, err.Error())
		}
		return
	}
	e.phase, e.epoch, e.leaseSent, e.lapseEnd = phWaiting, epoch, e.sent, time.Time{}
	c.committed = now
	if !e.want {
		c.drop(e) // withdrawn while the claim was in flight
		return
	}
	if !c.quorumOK(now) {
		c.lose(e, ReasonNoQuorum, c.quorumWhy)
		return
	}
	c.check(now, e)
}

// check moves a waiting claim on, and ends a claim or ownership that the
// applied records, the lease or the clock no longer allow.
func (c *core) check(now time.Time, e *entry) {
	if e.phase == phDeferred {
		c.undefer(now, e)
		return
	}
	if !e.phase.holds() {
		return
	}
	rec := c.table[e.key]
	if rec.Epoch > e.epoch || (rec.Epoch == e.epoch && rec.Node != c.self) {
		who := rec.Node
		if who == "" {
			who = "another director (released since)"
		}
		c.lose(e, ReasonTaken, fmt.Sprintf("%s claimed epoch %d", who, rec.Epoch))
		return
	}
	if e.phase == phWaiting && rec.Epoch == e.epoch {
		e.waitEnd, e.waitKnown = c.waitUntil(rec), true
	}
	if e.phase == phLapsed {
		if !now.Before(e.lapseEnd) {
			c.lose(e, ReasonExpired, fmt.Sprintf("no renewal committed for %s", now.Sub(e.leaseSent).Round(time.Millisecond)))
		}
		return
	}
	if !e.live(c.p, now) {
		ago := now.Sub(e.leaseSent).Round(time.Millisecond)
		// Found out late (the process was paused: SIGSTOP, a hang), the
		// expiry is no Raft stall, and our view of the records is stale:
		// give up at once.
		onTime := now.Sub(e.leaseSent.Add(c.p.Lease)) < c.p.Renew
		if e.phase == phOwned && e.want && c.quorumOK(now) && c.p.Grace > 0 && onTime {
			// Safety first: the VIPs go now, as for any lost lease.
			e.phase, e.lapseEnd = phLapsed, now.Add(c.p.Grace)
			c.fx.lapse(e.key, e.lapseEnd)
			c.fenced(e, ReasonLapsed, fmt.Sprintf("last renewal sent %s ago; renewing for %s more", ago, c.p.Grace))
			c.fx.logf(e.key, "lease lapsed, VIPs removed, renewing", "last_renewal_ago", ago, "grace", c.p.Grace)
			return
		}
		// A claim of ours that committed late (after a heal a Raft
		// election can hold a commit past the lease): our epoch is
		// current, no VIPs are installed yet, and a renewal at it restores
		// the lease. Renewing for the grace, rather than releasing at
		// once, keeps a lower-priority backup from taking the VRID in
		// between (two moves where preemption says one).
		if end := e.leaseSent.Add(c.p.Lease + c.p.Grace); e.phase == phWaiting && e.want && c.quorumOK(now) && now.Before(end) {
			e.lapseEnd = end
			c.fenced(e, ReasonLapsed, fmt.Sprintf("claim committed %s after it was sent; renewing until %s from now", ago, end.Sub(now).Round(time.Millisecond)))
			return
		}
		c.lose(e, ReasonExpired, fmt.Sprintf("last renewal sent %s ago", ago))
		return
	}
	if e.phase == phOwned || rec.Epoch < e.epoch {
		return // owned; or our claim is committed but not applied here yet
	}
	if w := e.waitEnd; now.Before(w) {
		c.fenced(e, ReasonWaiting, fmt.Sprintf("%s's lease may run until %s from now", rec.Prev, w.Sub(now).Round(time.Millisecond)))
		return
	}
	e.phase = phOwned
	e.reason, e.detail = "", ""
	c.fx.hold(e.key, e.leaseSent.Add(c.p.hold()))
	c.fx.logf(e.key, "claim admitted", "epoch", e.epoch, "previous", rec.Prev, "previous_released", rec.PrevReleased)
	c.fx.answer(e.key, nil)
}

// waitUntil is when the previous owner's VIPs are surely gone, on our
// clock: now when it released them (or it was us), else its HoldBound
// (stretched by rho both ways) after we applied its last accepted renewal.
func (c *core) waitUntil(rec Record) time.Time {
	if rec.Prev == "" || rec.Prev == c.self || rec.PrevReleased {
		return time.Time{}
	}
	return rec.PrevSeen.Add(c.p.waitFor(rec.PrevHold))
}

// owners takes a new applied table.
func (c *core) owners(now time.Time, t map[Key]Record) {
	c.table = t
	for _, k := range slices.SortedFunc(maps.Keys(c.ents), keyCmp) {
		c.check(now, c.ents[k])
	}
}

// quorumOK: gossip shows a quorum, or a proposal of ours committed within
// two renewal periods. After a heal gossip still shows the peers dead or
// suspect for seconds (suspicions started during the cut time out) while
// Raft already commits; the hint is only there to give up faster than
// the lease when commits stop, so a fresh commit outranks it.
func (c *core) quorumOK(now time.Time) bool {
	return c.quorum || (!c.committed.IsZero() && now.Sub(c.committed) < 2*c.p.Renew)
}

// members takes the gossip hint: fewer than a quorum of live voters ends
// every claim and ownership at once, without waiting for the lease,
// unless our commits show that Raft still reaches a quorum (quorumOK).
func (c *core) members(now time.Time, alive, voters int) {
	ok := voters > 0 && alive >= voters/2+1
	why := fmt.Sprintf("%d of %d voters alive", alive, voters)
	c.quorum, c.quorumWhy = ok, why
	if c.quorumOK(now) {
		return
	}
	for _, k := range slices.SortedFunc(maps.Keys(c.ents), keyCmp) {
		e := c.ents[k]
		switch e.phase {
		case phWaiting, phOwned, phLapsed:
			c.lose(e, ReasonNoQuorum, why)
		case phClaiming:
			if e.want {
				c.refuse(e, ReasonNoQuorum, why) // its commit, if any, is released
			}
		case phDeferred:
			e.phase = phIdle
			c.refuse(e, ReasonNoQuorum, why)
		}
	}
}

// tick runs what is due at now: lease ends, waits ended, the renewal.
func (c *core) tick(now time.Time) {
	for _, k := range slices.SortedFunc(maps.Keys(c.ents), keyCmp) {
		c.check(now, c.ents[k])
	}
	c.later = slices.DeleteFunc(c.later, func(r laterRelease) bool {
		if now.Before(r.at) {
			return false
		}
		c.fx.release(r.key, r.epoch)
		return true
	})
	if c.inflight >= maxInflight || now.Before(c.lastRenew.Add(c.p.Renew)) {
		return
	}
	epochs := map[Key]uint64{}
	for k, e := range c.ents {
		if e.phase.holds() {
			epochs[k] = e.epoch
		}
	}
	if len(epochs) == 0 {
		return
	}
	c.inflight++
	c.lastRenew = now
	c.fx.renew(epochs, now)
}

// renewDone takes a renewal's answer: accepted keys extend their lease
// from its send time and rewrite the VIPs' kernel lifetimes.
func (c *core) renewDone(now time.Time, sent time.Time, epochs map[Key]uint64, refused []Key, err error) {
	c.inflight--
	if err != nil && len(refused) == 0 {
		c.fx.logf(Key{}, "lease renewal failed", "err", err)
		return // the leases run out on their own
	}
	c.renewals++
	c.committed = now
	for _, k := range slices.SortedFunc(maps.Keys(epochs), keyCmp) {
		e := c.ents[k]
		if e == nil || e.epoch != epochs[k] || !e.phase.holds() {
			continue
		}
		if slices.Contains(refused, k) {
			c.lose(e, ReasonRenewalRef, fmt.Sprintf("epoch %d is not current", e.epoch))
			continue
		}
		if sent.After(e.leaseSent) {
			e.leaseSent = sent
			if e.phase == phWaiting {
				e.lapseEnd = time.Time{} // live again
			}
		}
		switch {
		case e.phase == phOwned:
			c.fx.hold(k, e.leaseSent.Add(c.p.hold()))
		case e.phase == phLapsed && e.live(c.p, now):
			// Accepted at our epoch: nobody claimed since, and every
			// claimant now waits from its apply of this renewal, exactly
			// as after a claim of ours.
			e.phase = phOwned
			e.reason, e.detail = "", ""
			c.fx.reinstall(k, e.leaseSent.Add(c.p.hold()))
			c.fx.logf(k, "lapsed lease renewed, VIPs back", "epoch", e.epoch)
		}
	}
	c.tick(now)
}

// next is when tick must run next (zero: nothing due).
func (c *core) next() time.Time {
	var at time.Time
	min := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for _, r := range c.later {
		min(r.at)
	}
	held := false
	for _, e := range c.ents {
		if e.phase == phDeferred {
			min(e.deferApplied.Add(c.p.Lease))
			continue
		}
		if !e.phase.holds() {
			continue
		}
		held = true
		if e.phase == phLapsed {
			min(e.lapseEnd)
			continue
		}
		if e.phase == phWaiting && !e.lapseEnd.IsZero() {
			min(e.lapseEnd) // a late claim renewing: nothing else is due
			continue
		}
		min(e.leaseSent.Add(c.p.Lease))
		if e.phase == phWaiting {
			if rec := c.table[e.key]; rec.Epoch == e.epoch && rec.Node == c.self {
				min(c.waitUntil(rec))
			}
		}
	}
	if held && c.inflight < maxInflight {
		min(c.lastRenew.Add(c.p.Renew))
	}
	return at
}

func keyCmp(a, b Key) int {
	switch {
	case a.VRID != b.VRID:
		return int(a.VRID) - int(b.VRID)
	case a.Interface != b.Interface:
		if a.Interface < b.Interface {
			return -1
		}
		return 1
	case a.IPv6 != b.IPv6:
		if a.IPv6 {
			return 1
		}
		return -1
	}
	return 0
}
