package fence_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"hakeep/internal/lab"
)

// scenario is one fault and its heal, h1 owning both VIPs before.
type scenario struct {
	name string
	// takeover: the fenced VIP must leave h1 (within L1's bound); else it
	// must stay on h1 throughout.
	takeover bool
	// splitBrain: the fence-off control instance must be seen owned twice
	// (the proof that the sampler sees what the fence prevents).
	splitBrain bool
	// kaNA: the fault does not apply to keepalived (it has no Raft or
	// gossip): its column shows n/a.
	kaNA bool
	// quietAfterCont: the owner was paused past its lease; once it runs
	// again it must not advertise the fenced VRID as MASTER nor announce
	// its VIP (gratuitous ARP) before its fence admits it again.
	quietAfterCont bool
	fault          func(c *cluster) error
	heal           func(c *cluster) error
}

func (c *cluster) ipt(h string, rules ...[]string) error {
	for _, r := range rules {
		if err := c.l.Iptables(h, r...); err != nil {
			return err
		}
	}
	return nil
}

// flush removes every fault rule on every director.
func (c *cluster) flush() error {
	for _, h := range hosts {
		if err := c.ipt(h, []string{"-F", "INPUT"}, []string{"-F", "OUTPUT"}); err != nil {
			return err
		}
	}
	return nil
}

// partition cuts side from the other directors: each director drops
// everything whose source is across the cut (multicast adverts included:
// they carry the sender's address).
func (c *cluster) partition(side ...string) error {
	in := func(h string) bool { return strings.Contains(strings.Join(side, ","), h) }
	for _, h := range hosts {
		for _, o := range hosts {
			if in(h) != in(o) {
				if err := c.ipt(h, []string{"-A", "INPUT", "-s", c.l.Host(o).Addr4.Addr().String(), "-j", "DROP"}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// dropFromH1 makes h2 and h3 drop what h1 sends (matching extra): VRRP
// adverts leave through an AF_PACKET socket, which h1's OUTPUT chain never
// sees, so a cut of h1's adverts is made at the receivers.
func (c *cluster) dropFromH1(extra ...string) error {
	for _, h := range []string{"h2", "h3"} {
		r := append([]string{"-A", "INPUT", "-s", c.l.Host("h1").Addr4.Addr().String()}, extra...)
		if err := c.ipt(h, append(r, "-j", "DROP")); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) restart(h string) error { return c.both(h, (*lab.Daemon).Restart) }

func (c *cluster) kill(h string) error {
	return c.both(h, func(d *lab.Daemon) error { d.Kill(); return nil })
}

func (c *cluster) term(h string) error {
	return c.both(h, func(d *lab.Daemon) error { return d.Stop(10 * time.Second) })
}

var scenarios = []scenario{
	{name: "kill-9 owner", takeover: true,
		fault: func(c *cluster) error { return c.kill("h1") },
		heal:  func(c *cluster) error { return c.restart("h1") }},
	{name: "SIGTERM owner", takeover: true,
		fault: func(c *cluster) error { return c.term("h1") },
		heal:  func(c *cluster) error { return c.restart("h1") }},
	{name: "SIGSTOP owner", takeover: true, quietAfterCont: true,
		fault: func(c *cluster) error { return c.both("h1", func(d *lab.Daemon) error { return d.Pause() }) },
		heal:  func(c *cluster) error { return c.both("h1", func(d *lab.Daemon) error { return d.Resume() }) }},
	// hakeepd puts an instance whose link is down in FAULT and removes its
	// VIPs, fenced or not: no split brain to show here.
	{name: "owner link down", takeover: true,
		fault: func(c *cluster) error { return c.l.SetLink("h1", "eth0", false) },
		heal:  func(c *cluster) error { return c.l.SetLink("h1", "eth0", true) }},
	{name: "owner isolated, carrier up", takeover: true, splitBrain: true,
		fault: func(c *cluster) error {
			if err := c.ipt("h1", []string{"-A", "INPUT", "-i", "eth0", "-j", "DROP"}, []string{"-A", "OUTPUT", "-o", "eth0", "-j", "DROP"}); err != nil {
				return err
			}
			return c.dropFromH1()
		},
		heal: func(c *cluster) error { return c.flush() }},
	{name: "VRRP-only drops at owner", takeover: false, splitBrain: true,
		fault: func(c *cluster) error {
			if err := c.ipt("h1", []string{"-A", "INPUT", "-p", "112", "-j", "DROP"}); err != nil {
				return err
			}
			return c.dropFromH1("-p", "112")
		},
		heal: func(c *cluster) error { return c.flush() }},
	{name: "Raft+gossip-only drops at owner", takeover: true, kaNA: true,
		fault: func(c *cluster) error {
			var rules [][]string
			for _, ch := range []string{"INPUT", "OUTPUT"} {
				for _, p := range []string{"tcp", "udp"} {
					rules = append(rules, []string{"-A", ch, "-p", p, "-j", "DROP"})
				}
			}
			return c.ipt("h1", rules...)
		},
		heal: func(c *cluster) error { return c.flush() }},
	{name: "one direction: owner hears nothing", takeover: true,
		fault: func(c *cluster) error { return c.ipt("h1", []string{"-A", "INPUT", "-i", "eth0", "-j", "DROP"}) },
		heal:  func(c *cluster) error { return c.flush() }},
	{name: "{A}|{B,C}, A owner", takeover: true, splitBrain: true,
		fault: func(c *cluster) error { return c.partition("h1") },
		heal:  func(c *cluster) error { return c.flush() }},
	// A is the Raft leader when a backup leads (then every commit stalls
	// until B and C elect another: the owner's lease lapses), else h3.
	{name: "{A}|{B,C}, A backup", takeover: false, splitBrain: true,
		fault: func(c *cluster) error {
			a := "h3"
			if st, err := c.status("h2"); err == nil && (st.Raft.Leader == "h2" || st.Raft.Leader == "h3") {
				a = st.Raft.Leader
			}
			c.note = "A=" + a
			return c.partition(a)
		},
		heal: func(c *cluster) error { return c.flush() }},
}

// result is what one run of a scenario showed.
type result struct {
	name                string
	doubles, doublesU   int           // samples with two owners: fenced, control
	takeover, takeoverU time.Duration // fault to a new single owner (0: none)
	// keepalived's VI_K: samples with two owners, fault to another
	// director holding it; ka false when not run or n/a.
	ka        bool
	doublesK  int
	takeoverK time.Duration
	healMoves int // owner changes of the fenced VIP after the heal
	arpFlips  int // the client's MAC for the fenced VIP changed
	errs      []string
	// timeline: owners of the fenced VIP, of the control, the client's
	// ARP view, relative to the fault (h = heal).
	timeline string
}

// run injects sc's fault on a steady cluster, watches, heals, and checks
// the fence's properties.
func (c *cluster) run(sc scenario) result {
	r := result{name: sc.name}
	fail := func(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }
	bound := takeoverBound()
	c.note = ""
	c.runs++
	var capt *lab.Capture
	if sc.quietAfterCont {
		var err error
		if capt, err = c.l.StartCapture(fmt.Sprintf("run%d", c.runs), "arp or ip proto 112"); err != nil {
			fail("capture: %v", err)
			return r
		}
		defer capt.Stop()
	}
	t0 := time.Now()
	if err := sc.fault(c); err != nil {
		fail("fault: %v", err)
		return r
	}
	if sc.takeover {
		if err := waitFor(bound+5*time.Second, ownedBy(c.l, vipF, func(h string) bool { return h != "h1" })); err != nil {
			fail("no takeover: %v", err)
		}
		// A little longer under the fault: a late second owner shows too.
		time.Sleep(time.Second) // observation period, not a wait for state
	} else {
		// Long enough for a backup that stopped hearing the owner to try.
		time.Sleep(bound + time.Second) // observation period, not a wait for state
	}
	tHeal := time.Now()
	if err := sc.heal(c); err != nil {
		fail("heal: %v", err)
	}
	if err := waitFor(45*time.Second, ownedBy(c.l, vipF, func(h string) bool { return h == "h1" })); err != nil {
		fail("not back on h1 after the heal: %v", err)
	}
	// Settled: all alive and in their roles; then a second without moves.
	if err := waitFor(45*time.Second, c.steady); err != nil {
		fail("not steady after the heal: %v", err)
	}
	time.Sleep(time.Second) // observation period for late flaps
	end := time.Now()

	w := c.s.window(vipF, t0, end)
	wu := c.s.window(vipU, t0, end)
	r.doubles, r.doublesU, r.arpFlips = w.doubles, wu.doubles, w.arpFlips
	if at, _, ok := firstOwnerOtherThan(inWindow(w.changes, t0, tHeal), "h1"); ok {
		r.takeover = at.Sub(t0)
	}
	// The control's takeover: the first sample where another director
	// holds it (h1 may still hold it too: that is the split brain).
	r.takeoverU = firstOther(inWindow(wu.changes, t0, tHeal), t0)
	var wk window
	if c.ka != nil && !sc.kaNA {
		wk = c.s.window(vipK, t0, end)
		r.ka, r.doublesK = true, wk.doubles
		r.takeoverK = firstOther(inWindow(wk.changes, t0, tHeal), t0)
	}
	r.healMoves = moves(inWindow(w.changes, tHeal, end))
	r.timeline = fmt.Sprintf("%s heal at +%.3fs\n  fenced:%s\n  control:%s\n  client ARP:%s", c.note, tHeal.Sub(t0).Seconds(),
		fmtChanges(w.changes, t0), fmtChanges(wu.changes, t0), fmtChanges(c.s.arpWindow(t0, end), t0))
	if r.ka {
		r.timeline += "\n  keepalived:" + fmtChanges(wk.changes, t0)
	}
	if c.note != "" {
		r.name += " (" + c.note + ")"
	}

	if r.doubles > 0 {
		fail("S1: %d samples with two owners of the fenced VIP; owners:%s", r.doubles, fmtChanges(w.changes, t0))
	}
	switch {
	case sc.takeover && r.takeover == 0:
		fail("L1: the fenced VIP never left h1 under the fault; owners:%s", fmtChanges(w.changes, t0))
	case sc.takeover && r.takeover > bound:
		fail("L1: takeover took %s, bound %s; owners:%s", r.takeover.Round(time.Millisecond), bound, fmtChanges(w.changes, t0))
	case !sc.takeover && r.takeover != 0:
		fail("the fenced VIP left h1, whose lease was never in doubt; owners:%s", fmtChanges(w.changes, t0))
	}
	if r.healMoves > 1 {
		fail("L2: %d moves after the heal; owners:%s", r.healMoves, fmtChanges(w.changes, t0))
	}
	if sc.splitBrain && r.doublesU == 0 {
		fail("control: the fence-off VIP was never seen owned twice; owners:%s", fmtChanges(wu.changes, t0))
	}
	// keepalived double-owns where plain VRRP does: recorded, and asserted
	// only where the sampler must see it (the proof it can).
	if sc.splitBrain && r.ka && r.doublesK == 0 {
		fail("keepalived: its VIP was never seen owned twice; owners:%s", fmtChanges(wk.changes, t0))
	}
	if capt != nil {
		pk, err := capt.Packets()
		if err != nil {
			fail("capture: %v", err)
		} else {
			for _, e := range c.quietAfterCont(pk, tHeal, end) {
				fail("%s", e)
			}
		}
	}
	if len(r.errs) > 0 {
		r.timeline += "\n" + c.decisions(t0)
	}
	return r
}

// TestFence runs every scenario once on one cluster.
func TestFence(t *testing.T) {
	c := startCluster(t, defaultVRRP)
	t.Logf("L1 bound %s (Master_Down %s + wait %s + 2 x %s); sampling every %s",
		takeoverBound(), masterDown(100), params().Wait(), commitAllowance, sampleEvery)
	var results []result
	for _, sc := range selected(t) {
		r := c.run(sc)
		results = append(results, r)
		t.Logf("%s: %s", sc.name, r.timeline)
		if os.Getenv("HAKEEP_FENCE_LOGS") != "" {
			for _, h := range hosts {
				t.Logf("--- %s/hakeepd.log\n%s", h, c.d[h].Tail(60))
			}
		}
		for _, e := range r.errs {
			t.Errorf("%s: %s", sc.name, e)
		}
		if len(r.errs) > 0 && c.steady() != nil {
			t.Fatalf("%s left the cluster unsteady; stopping", sc.name)
		}
	}
	t.Log("\n" + table(results))
}

// TestFenceChaos repeats random scenarios for HAKEEP_FENCE_CHAOS (a Go
// duration; `make chaos DURATION=10m`) and prints a table per scenario.
func TestFenceChaos(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("HAKEEP_FENCE_CHAOS"))
	if err != nil || d <= 0 {
		t.Skip("set HAKEEP_FENCE_CHAOS=10m (make chaos DURATION=10m)")
	}
	c := startCluster(t, defaultVRRP)
	end := time.Now().Add(d)
	var results []result
	pick := selected(t)
	for time.Now().Before(end) {
		sc := pick[rand.IntN(len(pick))]
		r := c.run(sc)
		results = append(results, r)
		for _, e := range r.errs {
			t.Errorf("run %d, %s: %s", len(results), sc.name, e)
		}
		if len(r.errs) > 0 {
			t.Logf("run %d, %s: %s", len(results), sc.name, r.timeline)
		}
		if len(r.errs) > 0 && c.steady() != nil {
			t.Errorf("%s left the cluster unsteady; stopping", sc.name)
			break
		}
	}
	t.Log("\n" + table(results))
}

// selected is the scenarios whose name matches the regular expression
// HAKEEP_FENCE_SCENARIOS (all when unset).
func selected(t *testing.T) []scenario {
	f := os.Getenv("HAKEEP_FENCE_SCENARIOS")
	re, err := regexp.Compile(f)
	if err != nil {
		t.Fatalf("HAKEEP_FENCE_SCENARIOS: %v", err)
	}
	var out []scenario
	for _, sc := range scenarios {
		if re.MatchString(sc.name) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no scenario matches HAKEEP_FENCE_SCENARIOS=%q", f)
	}
	return out
}

// decisions is every director's fence, VRRP state and Raft leadership
// log lines since t0 (the why of a failed run).
func (c *cluster) decisions(t0 time.Time) string {
	var b strings.Builder
	keep := regexp.MustCompile(`fence|STATE|entering leader|entering candidate|lost leadership|VIPs`)
	for _, h := range hosts {
		fmt.Fprintf(&b, "  --- %s\n", h)
		for _, line := range strings.Split(c.d[h].Tail(400), "\n") {
			ts, ok := strings.CutPrefix(line, "time=")
			if !ok || len(ts) < 24 {
				continue
			}
			sp := strings.IndexByte(ts, ' ')
			if sp < 0 {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, ts[:sp])
			if err != nil || at.Before(t0.Add(-2*time.Second)) || !keep.MatchString(line) {
				continue
			}
			if i := strings.Index(line, "msg="); i > 0 {
				line = line[i:]
			}
			fmt.Fprintf(&b, "  %+.3fs %s\n", at.Sub(t0).Seconds(), line)
		}
	}
	return b.String()
}

// table aggregates results per scenario: runs, double-owner samples (fenced
// and control), takeover p50/max (fenced and control), worst moves after
// heal, client ARP flips.
func table(rs []result) string {
	type agg struct {
		runs, doubles, doublesU, moves, arp, fails int
		tk, tkU                                    []time.Duration
		kaRuns, doublesK                           int
		tkK                                        []time.Duration
	}
	by := map[string]*agg{}
	var order []string
	for _, r := range rs {
		a := by[r.name]
		if a == nil {
			a = &agg{}
			by[r.name] = a
			order = append(order, r.name)
		}
		a.runs++
		a.doubles += r.doubles
		a.doublesU += r.doublesU
		a.moves = max(a.moves, r.healMoves)
		a.arp += r.arpFlips
		if len(r.errs) > 0 {
			a.fails++
		}
		if r.takeover > 0 {
			a.tk = append(a.tk, r.takeover)
		}
		if r.takeoverU > 0 {
			a.tkU = append(a.tkU, r.takeoverU)
		}
		if r.ka {
			a.kaRuns++
			a.doublesK += r.doublesK
			if r.takeoverK > 0 {
				a.tkK = append(a.tkK, r.takeoverK)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %4s %5s | %7s %8s %8s %6s | %9s %8s %8s | %8s %8s %8s | %4s\n",
		"scenario", "runs", "fails", "doubles", "tk p50", "tk max", "moves", "ctl dbl", "ctl p50", "ctl max", "ka dbl", "ka p50", "ka max", "arp")
	for _, n := range order {
		a := by[n]
		ka := fmt.Sprintf("%8s %8s %8s", "n/a", "", "")
		if a.kaRuns > 0 {
			ka = fmt.Sprintf("%8d %8s %8s", a.doublesK, secs(median(a.tkK)), secs(maxD(a.tkK)))
		}
		fmt.Fprintf(&b, "%-36s %4d %5d | %7d %8s %8s %6d | %9d %8s %8s | %s | %4d\n", n, a.runs, a.fails,
			a.doubles, secs(median(a.tk)), secs(maxD(a.tk)), a.moves, a.doublesU, secs(median(a.tkU)), secs(maxD(a.tkU)), ka, a.arp)
	}
	b.WriteString("doubles: samples with two owners; tk: fault to a new single owner; moves: worst owner changes after heal;\n" +
		"ctl: the `fence off` instance on the same directors; ka: the same instance on three keepalived beside them, same fault\n" +
		"(tk: fault to another director holding it; n/a: the fault has nothing to hit in keepalived);\n" +
		"arp: changes of the client's MAC for the fenced VIP\n")
	return b.String()
}

func maxD(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// firstOther is when a director other than h1 first held the VIP in cs,
// relative to t0 (h1 may still hold it: a split brain); 0 if never.
func firstOther(cs []change, t0 time.Time) time.Duration {
	for _, ch := range cs {
		if slices.ContainsFunc(ch.Owners, func(h string) bool { return h != "h1" }) {
			return ch.At.Sub(t0)
		}
	}
	return 0
}

// quietAfterCont checks the wire after h1 was continued at cont: no MASTER
// advert for the fenced VRID and no gratuitous ARP for its VIP from h1
// before h1's fence logged its next admission (the log line is written
// before VRRP sends anything, so the order needs no margin).
func (c *cluster) quietAfterCont(pk *lab.Packets, cont, end time.Time) []string {
	admitted, ok := c.logAt("h1", cont, `msg="fence: claim admitted"`, fmt.Sprintf("key=%d/eth0/ipv4", vridF))
	if !ok {
		admitted = end
	}
	h1 := c.l.Host("h1")
	var errs []string
	for _, a := range pk.From(vridF, h1.Addr4.Addr()) {
		if a.Prio > 0 && !a.Time.Before(cont) && a.Time.Before(admitted) {
			errs = append(errs, fmt.Sprintf("continued h1 advertised VRID %d as MASTER (priority %d) at +%.3fs after SIGCONT, its fence admitted it at +%.3fs",
				vridF, a.Prio, a.Time.Sub(cont).Seconds(), admitted.Sub(cont).Seconds()))
		}
	}
	for _, a := range pk.ARPs {
		if a.Gratuitous() && a.SenderIP == vipF && slices.Equal(a.SenderMAC, h1.MAC) && !a.Time.Before(cont) && a.Time.Before(admitted) {
			errs = append(errs, fmt.Sprintf("continued h1 announced %s (gratuitous ARP) at +%.3fs after SIGCONT, its fence admitted it at +%.3fs",
				vipF, a.Time.Sub(cont).Seconds(), admitted.Sub(cont).Seconds()))
		}
	}
	return errs
}

// logAt is the time of the first line of h's hakeepd log after since that
// contains every one of subs.
func (c *cluster) logAt(h string, since time.Time, subs ...string) (time.Time, bool) {
	for _, line := range strings.Split(c.d[h].Tail(2000), "\n") {
		at, ok := lineTime(line)
		if !ok || at.Before(since) {
			continue
		}
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			return at, true
		}
	}
	return time.Time{}, false
}

// lineTime is the time= of a hakeepd log line.
func lineTime(line string) (time.Time, bool) {
	ts, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, false
	}
	if sp := strings.IndexByte(ts, ' '); sp > 0 {
		ts = ts[:sp]
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	return at, err == nil
}
