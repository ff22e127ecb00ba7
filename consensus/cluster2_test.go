package consensus

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/config"
)

func followers(c *tcluster, l *tnode) []*tnode {
	var out []*tnode
	for _, tn := range c.running() {
		if tn != l {
			out = append(out, tn)
		}
	}
	return out
}

func mustPush(t *testing.T, n *Node, text string) ApplyResult {
	t.Helper()
	r, err := n.Push(ctxT(t, 10*time.Second), "k.conf", []byte(text), "test", "")
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return r
}

func TestLeaderKillFollowerRestartWholeRestart(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3})
	l := c.leader()
	mustPush(t, l.node, "v1")
	c.waitVersion(1)

	// Kill the leader: the other two elect a new one and keep committing.
	l.stop()
	l2 := c.leader()
	if l2 == l {
		t.Fatal("stopped node still leader")
	}
	mustPush(t, l2.node, "v2")
	c.waitVersion(2)

	// The old leader comes back from disk (no new bootstrap) and catches up.
	l.start()
	c.waitVersion(2)
	if got := l.node.Voters(); len(got) != 3 {
		t.Fatalf("restarted node voters = %v", got)
	}

	// A follower restarts while a push happens.
	f := followers(c, c.leader())[0]
	f.stop()
	mustPush(t, c.leader().node, "v3")
	f.start()
	c.waitVersion(3)

	// Whole cluster down and up again: state and membership from disk.
	for _, tn := range c.nodes {
		tn.stop()
	}
	for _, tn := range c.nodes {
		tn.start()
	}
	c.leader()
	c.waitVersion(3)
	for _, tn := range c.nodes {
		h := tn.node.FSM().History()
		if len(h) != 3 || h[2].Text != "v3" {
			t.Fatalf("%s history after restart = %+v", tn.cfg.NodeName, h)
		}
	}
	mustPush(t, c.leader().node, "v4")
	c.waitVersion(4)
}

func TestSnapshotRestoreAllState(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3, snapshot: 16})
	l := c.leader()
	mustPush(t, l.node, "one")
	mustPush(t, l.node, "two")
	for _, tn := range c.nodes {
		tn.node.ReportApplied(2, nil)
		tn.node.ReportHealth([]HealthEntry{{VS: "vs", RS: "rs1", Up: tn.cfg.NodeName != "d1"}})
	}
	if _, err := l.node.Propose(ctxT(t, 5*time.Second), Command{Type: CmdClaim, Claim: &Claim{VRID: 9, Node: "d2", At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reports committed", 10*time.Second, func() bool {
		return len(l.node.FSM().AppliedRecords()) == 3 && len(l.node.FSM().Views("vs", "rs1")) == 3
	})
	// Snapshot the leader and a follower, then wipe a third director and
	// let it rebuild from the leader's snapshot (InstallSnapshot).
	for _, tn := range c.nodes {
		if err := tn.node.Snapshot(); err != nil {
			t.Fatalf("%s: %v", tn.cfg.NodeName, err)
		}
	}
	var want State
	l.node.FSM().Read(func(s *State) { want = *s })
	victim := followers(c, l)[0]
	victim.stop()
	if err := os.RemoveAll(victim.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	// Enough entries after the snapshot that the log is compacted past them.
	for i := 0; i < 20; i++ {
		mustPush(t, c.leader().node, fmt.Sprintf("p%d", i))
	}
	for _, tn := range c.nodes {
		if tn.node != nil {
			if err := tn.node.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	victim.start()
	c.waitVersion(22)
	check := func(tn *tnode) {
		t.Helper()
		var got State
		tn.node.FSM().Read(func(s *State) { got = *s })
		if len(got.Applied) != 3 || len(got.Health["vs"]["rs1"]) != 3 || got.Owners["9"].Node != "d2" || len(got.PushIDs) != 22 {
			t.Fatalf("%s state after snapshot install: applied %d, views %d, owner %+v, push ids %d", tn.cfg.NodeName, len(got.Applied), len(got.Health["vs"]["rs1"]), got.Owners["9"], len(got.PushIDs))
		}
		if got.Health["vs"]["rs1"]["d1"].Up != want.Health["vs"]["rs1"]["d1"].Up {
			t.Fatalf("%s health view lost", tn.cfg.NodeName)
		}
	}
	check(victim)
	// And a plain restart restores from the local snapshot too.
	victim.stop()
	victim.start()
	c.waitVersion(22)
	check(victim)
}

func TestPushSemantics(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3, validate: ValidatePushed})
	l := c.leader()
	f := followers(c, l)[0]

	good, err := os.ReadFile("testdata/pernode.conf")
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.node.Push(ctxT(t, 10*time.Second), "pernode.conf", good, "op", "push-1")
	if err != nil || r.Version != 1 {
		t.Fatalf("push = %+v, %v", r, err)
	}
	c.waitVersion(1)

	// Bad files are refused with file:line, and nothing changes.
	for _, tc := range []struct{ file, want string }{
		{"bad.conf", "bad.conf:4: virtual_router_id"},
		{"with-cluster.conf", "with-cluster.conf:1: a pushed configuration must not contain a cluster"},
	} {
		text, _ := os.ReadFile("testdata/" + tc.file)
		_, err := f.node.Push(ctxT(t, 10*time.Second), tc.file, text, "op", "")
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.Contains(strings.Join(ve.Diagnostics, "\n"), tc.want) {
			t.Fatalf("push %s: err = %v, want diagnostics containing %q", tc.file, err, tc.want)
		}
	}
	for _, tn := range c.nodes {
		if h := tn.node.FSM().History(); len(h) != 1 {
			t.Fatalf("%s history after refused pushes: %d versions", tn.cfg.NodeName, len(h))
		}
	}

	// A retried push id commits once.
	r2, err := l.node.Push(ctxT(t, 10*time.Second), "pernode.conf", good, "op", "push-1")
	if err != nil || !r2.Duplicate || r2.Version != 1 {
		t.Fatalf("retried push = %+v, %v", r2, err)
	}

	// Push during leader loss: the push is sent from a follower while the
	// leader dies; it either commits exactly once or fails with an error.
	mustPush(t, l.node, strings.ReplaceAll(string(good), "150", "151"))
	var wg sync.WaitGroup
	var pr ApplyResult
	var perr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		pr, perr = f.node.Push(ctxT(t, 15*time.Second), "pernode.conf", []byte(strings.ReplaceAll(string(good), "150", "152")), "op", "during-loss")
	}()
	l.stop()
	wg.Wait()
	l.start()
	nl := c.leader()
	if err := nl.node.Barrier(5 * time.Second); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	count := 0
	for _, h := range nl.node.FSM().History() {
		if h.PushID == "during-loss" {
			count++
		}
	}
	switch {
	case perr == nil && count != 1:
		t.Fatalf("push during leader loss succeeded (%+v) but is in the history %d times", pr, count)
	case perr != nil && count > 1:
		t.Fatalf("push failed (%v) yet committed %d times", perr, count)
	}
	t.Logf("push during leader loss: result %+v, err %v, committed %d time(s)", pr, perr, count)

	// Rollback and history.
	before := nl.node.FSM().History()
	rb, err := f.node.Rollback(ctxT(t, 10*time.Second), 1, "op", "")
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	c.waitVersion(rb.Version)
	for _, tn := range c.nodes {
		cur, _ := tn.node.FSM().Current()
		if cur.Text != string(good) || cur.RollbackOf != 1 {
			t.Fatalf("%s after rollback: %+v", tn.cfg.NodeName, cur)
		}
		if h := tn.node.FSM().History(); len(h) != len(before)+1 {
			t.Fatalf("%s history has %d, want %d", tn.cfg.NodeName, len(h), len(before)+1)
		}
	}
	if _, err := f.node.Rollback(ctxT(t, 10*time.Second), 999, "op", ""); err == nil || !strings.Contains(err.Error(), "not in the history") {
		t.Fatalf("rollback to unknown version: %v", err)
	}
}

// TestSubscribeApplyPerNode plays the director's part: each node subscribes,
// parses the committed text with its own config id (@node lines), and
// reports applied; every node then sees who applied what.
func TestSubscribeApplyPerNode(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3, validate: ValidatePushed})
	l := c.leader()
	prio := make(chan string, 3)
	for _, tn := range c.nodes {
		ch, cancel := tn.node.Subscribe()
		t.Cleanup(cancel)
		go func(n *Node) {
			cv, ok := <-ch
			if !ok {
				return
			}
			cfg, diags := config.Parse(cv.Source, []byte(cv.Text), config.Options{ConfigID: n.Name(), NoInclude: true})
			if err := diags.Err(); err != nil {
				n.ReportApplied(cv.Version, err)
				return
			}
			prio <- fmt.Sprintf("%s=%d", n.Name(), cfg.Instances[0].Priority)
			n.ReportApplied(cv.Version, nil)
		}(tn.node)
	}
	text, _ := os.ReadFile("testdata/pernode.conf")
	if _, err := l.node.Push(ctxT(t, 10*time.Second), "pernode.conf", text, "op", ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		select {
		case p := <-prio:
			got = append(got, p)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v applied", got)
		}
	}
	slices.Sort(got)
	if want := []string{"d1=150", "d2=120", "d3=100"}; !slices.Equal(got, want) {
		t.Fatalf("priorities %v, want %v", got, want)
	}
	for _, tn := range c.nodes {
		waitFor(t, tn.cfg.NodeName+" sees all applied", 10*time.Second, func() bool {
			res := tn.node.API()
			pr, _ := res.ConfigApplied(t.Context(), 1)
			return len(pr.Applied) == 3 && len(pr.Pending) == 0
		})
	}
	// A late subscriber gets the current version at once.
	ch, cancel := c.nodes[2].node.Subscribe()
	defer cancel()
	select {
	case cv := <-ch:
		if cv.Version != 1 {
			t.Fatalf("late subscriber got %d", cv.Version)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("late subscriber got nothing")
	}
	// Closing the node ends subscribers' range loops.
	c.nodes[2].stop()
	for range ch {
	}
	if ch2, _ := c.nodes[0].node.Watch(); ch2 == nil {
		t.Fatal("nil watch channel")
	}
}

func TestHealthQuorumAndFallback(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3, mode: HealthQuorum})
	c.leader()
	watch, cancelWatch := c.nodes[2].node.Watch()
	defer cancelWatch()
	report := func(tn *tnode, up bool) {
		tn.node.ReportHealth([]HealthEntry{{VS: "10.0.0.1:80/TCP", RS: "192.168.0.10:80", Up: up}})
	}
	everywhere := func(what string, up bool, nodes ...*tnode) {
		t.Helper()
		waitFor(t, what, 10*time.Second, func() bool {
			for _, tn := range nodes {
				e := tn.node.Healthy("10.0.0.1:80/TCP", "192.168.0.10:80")
				if !e.Known || e.Up != up || len(e.Views) != 3 {
					return false
				}
			}
			return true
		})
	}
	for _, tn := range c.nodes {
		report(tn, true)
	}
	everywhere("up everywhere", true, c.nodes...)
	select {
	case ch := <-watch:
		if ch&ChangeHealth == 0 {
			t.Fatalf("watch got %b, want the health bit", ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no health change notified")
	}
	// One director sees it down: under quorum it stays up everywhere,
	// including on that director.
	report(c.nodes[0], false)
	waitFor(t, "d1's down view replicated", 10*time.Second, func() bool {
		v := c.nodes[2].node.FSM().Views("10.0.0.1:80/TCP", "192.168.0.10:80")
		return !v["d1"].Up
	})
	everywhere("up under quorum with 1 of 3 down", true, c.nodes...)
	// Two of three: down everywhere, also on the director that sees it up.
	report(c.nodes[1], false)
	everywhere("down everywhere with 2 of 3 down", false, c.nodes...)
	if e := c.nodes[2].node.EffectiveAll()["10.0.0.1:80/TCP"]["192.168.0.10:80"]; e.Up || e.Source != HealthQuorum {
		t.Fatalf("EffectiveAll on d3 = %+v", e)
	}

	// Partition d3: it falls back to its own view and says so.
	d3 := c.nodes[2]
	// d3 must be a follower, so the majority side keeps its leader.
	if d3.node.IsLeader() {
		if err := d3.node.raft.LeadershipTransfer().Error(); err != nil {
			t.Fatalf("leadership transfer: %v", err)
		}
	}
	waitFor(t, "a leader other than d3", 15*time.Second, func() bool { l := c.leader(); return l != d3 })
	d3.node.mux.setCut(true)
	waitFor(t, "d3 in fallback", 15*time.Second, func() bool { return d3.node.HealthState().Fallback })
	if e := d3.node.Healthy("10.0.0.1:80/TCP", "192.168.0.10:80"); !e.Up || e.Source != "local-fallback" {
		t.Fatalf("partitioned d3 health = %+v, want its own view (up, local-fallback)", e)
	}
	// The majority side is unaffected.
	for _, tn := range c.nodes[:2] {
		if hs := tn.node.HealthState(); hs.Fallback {
			t.Fatalf("majority side %s in fallback: %+v", tn.cfg.NodeName, hs)
		}
		if e := tn.node.Healthy("10.0.0.1:80/TCP", "192.168.0.10:80"); e.Up || e.Source != HealthQuorum {
			t.Fatalf("majority side %s health = %+v, want down by quorum", tn.cfg.NodeName, e)
		}
	}
	// d3's reports while cut off are kept and replicated after healing.
	report(d3, false)
	d3.node.mux.setCut(false)
	waitFor(t, "d3 healed", 15*time.Second, func() bool { return !d3.node.HealthState().Fallback })
	waitFor(t, "d3's view replicated after heal", 10*time.Second, func() bool {
		v := c.nodes[0].node.FSM().Views("10.0.0.1:80/TCP", "192.168.0.10:80")
		return !v["d3"].Up && d3.node.PendingReports() == 0
	})
}

func TestDecideModes(t *testing.T) {
	voters := []string{"a", "b", "c"}
	v := func(ups ...bool) map[string]View {
		m := map[string]View{}
		for i, u := range ups {
			m[voters[i]] = View{Up: u}
		}
		return m
	}
	tests := []struct {
		name      string
		hs        HealthStatus
		leader    string
		views     map[string]View
		local     bool
		haveLocal bool
		wantUp    bool
		wantSrc   string
	}{
		{"quorum all up", HealthStatus{Mode: HealthQuorum}, "a", v(true, true, true), true, true, true, "quorum"},
		{"quorum one down", HealthStatus{Mode: HealthQuorum}, "a", v(false, true, true), false, true, true, "quorum"},
		{"quorum two down", HealthStatus{Mode: HealthQuorum}, "a", v(false, false, true), false, true, false, "quorum"},
		{"quorum two others down", HealthStatus{Mode: HealthQuorum}, "a", v(true, false, false), true, true, false, "quorum"},
		{"quorum local overrides own stale view", HealthStatus{Mode: HealthQuorum}, "a", v(true, false, true), false, true, false, "quorum"},
		{"quorum nobody", HealthStatus{Mode: HealthQuorum}, "a", nil, false, false, false, "local"},
		{"master uses leader", HealthStatus{Mode: HealthMaster}, "b", v(true, false, true), true, true, false, "master"},
		{"master no leader view", HealthStatus{Mode: HealthMaster}, "", v(true, false, true), true, true, true, "local"},
		{"local", HealthStatus{Mode: HealthLocal}, "a", v(false, false, false), true, true, true, "local"},
		{"fallback", HealthStatus{Mode: HealthQuorum, Fallback: true}, "", v(false, false, false), true, true, true, "local-fallback"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := decide(tc.hs, "a", tc.leader, voters, tc.views, tc.local, tc.haveLocal)
			if e.Up != tc.wantUp || e.Source != tc.wantSrc {
				t.Fatalf("decide = %+v, want up %v source %s", e, tc.wantUp, tc.wantSrc)
			}
		})
	}
}

// TestPushWithoutQuorum: with no quorum a push fails clearly and commits
// nothing; retried with the same id once the quorum is back, it commits
// exactly once.
func TestPushWithoutQuorum(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3})
	l := c.leader()
	mustPush(t, l.node, "v1")
	c.waitVersion(1)
	fs := followers(c, l)
	fs[0].stop()
	fs[1].stop()
	_, err := l.node.Push(ctxT(t, 1500*time.Millisecond), "k.conf", []byte("v2"), "op", "retry-me")
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("push without quorum: err = %v, want ErrNoLeader", err)
	}
	t.Logf("push without quorum: %v", err)
	fs[0].start()
	fs[1].start()
	nl := c.leader()
	r, err := nl.node.Push(ctxT(t, 10*time.Second), "k.conf", []byte("v2"), "op", "retry-me")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := nl.node.Barrier(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, h := range nl.node.FSM().History() {
		if h.PushID == "retry-me" {
			count++
		}
	}
	// The failed attempt may still have been in the old leader's log and
	// committed by the new term: then the retry is a duplicate. Either way
	// the push is in the history once.
	if count != 1 {
		t.Fatalf("push committed %d times (result %+v)", count, r)
	}
}

// TestPushOnPartitionedLeader: a push accepted by a leader that has just
// been cut off cannot commit; it fails clearly, the same push retried on
// the majority side commits, and after healing it is in every director's
// history exactly once.
func TestPushOnPartitionedLeader(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3, mode: HealthQuorum})
	l := c.leader()
	mustPush(t, l.node, "v1")
	c.waitVersion(1)
	l.node.mux.setCut(true)
	_, err := l.node.Push(ctxT(t, 1500*time.Millisecond), "k.conf", []byte("v2"), "op", "cut-push")
	if err == nil {
		t.Fatal("push on a partitioned leader succeeded")
	}
	t.Logf("push on partitioned leader: %v", err)
	// A cut-off leader steps down and falls back to its own checks.
	waitFor(t, "old leader in health fallback", 15*time.Second, func() bool { return l.node.HealthState().Fallback })
	var nl *tnode
	waitFor(t, "a new leader on the majority side", 15*time.Second, func() bool {
		for _, tn := range followers(c, l) {
			if tn.node.IsLeader() {
				nl = tn
				return true
			}
		}
		return false
	})
	r, err := nl.node.Push(ctxT(t, 10*time.Second), "k.conf", []byte("v2"), "op", "cut-push")
	if err != nil || r.Version != 2 {
		t.Fatalf("retry on majority: %+v %v", r, err)
	}
	l.node.mux.setCut(false)
	c.waitVersion(2)
	for _, tn := range c.nodes {
		n := 0
		for _, h := range tn.node.FSM().History() {
			if h.PushID == "cut-push" {
				n++
			}
		}
		if n != 1 || len(tn.node.FSM().History()) != 2 {
			t.Fatalf("%s: push in history %d times, %d versions", tn.cfg.NodeName, n, len(tn.node.FSM().History()))
		}
	}
}

func TestHealthMasterMode(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3, mode: HealthMaster})
	l := c.leader()
	for _, tn := range c.nodes {
		tn.node.ReportHealth([]HealthEntry{{VS: "vs", RS: "rs", Up: tn != l}})
	}
	// Only the leader sees it down: in master mode that decides everywhere.
	waitFor(t, "leader's view everywhere", 10*time.Second, func() bool {
		for _, tn := range c.nodes {
			e := tn.node.Healthy("vs", "rs")
			if e.Up || e.Source != HealthMaster {
				return false
			}
		}
		return true
	})
}
