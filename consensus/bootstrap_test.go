package consensus

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// simDirector is one director in the bootstrap simulation.
type simDirector struct {
	name    string
	b       *bootstrapper
	durable bootVote    // what is on its disk
	pub     []*nodeMeta // every meta it published, oldest first
	done    bool        // bootstrapped (or joined): no longer steps
}

// simBoot runs the bootstrap protocol of n directors expecting expect
// under a random schedule: gossip delivers each director's metas late, out
// of step across observers, and to some observers not at all for a while;
// members are seen as gone and back; directors restart (keeping only their
// durable vote) and fail to write their vote. It fails the test if two
// different server lists are ever chosen or bootstrapped, and returns the
// list bootstrapped (nil if none within the schedule). seed: every
// director knows the first one from the start (a common join address).
func simBoot(t *testing.T, rng *rand.Rand, n, expect, events int, seed bool) []bootServer {
	t.Helper()
	ds := make([]*simDirector, n)
	perm := rng.Perm(n)
	for i := range ds {
		// Names in random order of index, so the lowest name is not always
		// the first one seen.
		name := fmt.Sprintf("d%d", perm[i]+1)
		d := &simDirector{name: name}
		d.b = &bootstrapper{self: name, raftAddr: "addr-" + name, expect: expect}
		d.pub = []*nodeMeta{{RaftAddr: d.b.raftAddr, Boot: d.b.meta()}}
		ds[i] = d
	}
	// view[j][i]: the index in ds[i].pub that j sees (-1: j has not heard
	// of i); gone[j][i]: j currently holds i for dead.
	// link[j][i]: how likely a gossip round brings i's news to j, drawn
	// per pair so that some views stay partial (or empty) for long.
	view := make([][]int, n)
	gone := make([][]bool, n)
	link := make([][]float64, n)
	for j := range view {
		view[j] = make([]int, n)
		gone[j] = make([]bool, n)
		link[j] = make([]float64, n)
		for i := range view[j] {
			view[j][i] = -1
			link[j][i] = []float64{0, 0.05, 0.3, 1}[rng.IntN(4)]
			if i == j || seed && i == 0 {
				view[j][i], link[j][i] = 0, 1
			}
		}
	}
	now := time.Unix(0, 0)
	var chosen []bootServer
	check := func(what string, v []bootServer) {
		t.Helper()
		if v == nil {
			return
		}
		if chosen == nil {
			chosen = v
			return
		}
		if !slices.Equal(chosen, v) {
			t.Fatalf("two lists %s: %v and %v", what, chosen, v)
		}
	}
	var booted []bootServer
	step := func(j int) {
		d := ds[j]
		if d.done {
			return
		}
		var members []gossipMember
		for i, v := range view[j] {
			if i == j || v < 0 {
				continue
			}
			st := MemberAlive
			if gone[j][i] {
				st = MemberDead
			}
			members = append(members, gossipMember{Name: ds[i].name, State: st, Meta: *ds[i].pub[v]})
		}
		prev := *d.b
		out := d.b.step(members, now)
		if out.persist {
			if rng.IntN(20) == 0 {
				*d.b = prev // the write failed: nothing is published
				return
			}
			d.durable = d.b.vote
		}
		if d.b.ownChosen {
			check("chosen", d.b.chosen)
		}
		meta := &nodeMeta{RaftAddr: d.b.raftAddr, Boot: d.b.meta()}
		if d.b.chosen != nil && slices.ContainsFunc(d.b.chosen, func(s bootServer) bool { return s[0] == d.name }) {
			check("bootstrapped", d.b.chosen)
			booted = d.b.chosen
			meta = &nodeMeta{RaftAddr: d.b.raftAddr, HasState: true}
			d.done = true
		}
		d.pub = append(d.pub, meta)
	}
	for e := 0; e < events; e++ {
		now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
		j, i := rng.IntN(n), rng.IntN(n)
		switch r := rng.IntN(100); {
		case r < 45:
			step(j)
		case r < 90:
			// Deliver some newer meta of i to j, never an older one.
			if last := len(ds[i].pub) - 1; view[j][i] < last && rng.Float64() < link[j][i] {
				view[j][i] += 1 + rng.IntN(last-view[j][i])
			}
		case r < 95:
			if i != j {
				gone[j][i] = !gone[j][i]
			}
		default:
			// Restart: only the vote on disk survives.
			d := ds[j]
			if !d.done {
				d.b = &bootstrapper{self: d.name, raftAddr: d.b.raftAddr, expect: expect, vote: d.durable}
				d.pub = append(d.pub, &nodeMeta{RaftAddr: d.b.raftAddr, Boot: d.b.meta()})
			}
		}
	}
	// Then gossip settles: everyone sees everyone's latest meta, and the
	// directors step round by round until one bootstraps.
	for round := 0; round < 50 && booted == nil; round++ {
		now = now.Add(time.Second)
		for j := range ds {
			for i := range ds {
				view[j][i], gone[j][i] = len(ds[i].pub)-1, false
			}
			step(j)
		}
	}
	return booted
}

// TestBootstrapProtocolOneList: whatever the schedule, at most one server
// list is chosen and bootstrapped, and once gossip settles one is.
func TestBootstrapProtocolOneList(t *testing.T) {
	runs := 400
	if testing.Short() {
		runs = 100
	}
	for _, tc := range []struct {
		n, expect int
		seed      bool // all know one director from the start
	}{
		{1, 1, false},
		{3, 2, false},
		{3, 3, false},
		{4, 3, false},
		{5, 3, false},
		{5, 5, false},
		{9, 5, false},
		// 2×expect or more: safe when every quorum holds a common director.
		{6, 3, true},
		{8, 3, true},
	} {
		t.Run(fmt.Sprintf("n%d_expect%d_seed%v", tc.n, tc.expect, tc.seed), func(t *testing.T) {
			for run := 0; run < runs; run++ {
				rng := rand.New(rand.NewPCG(uint64(run), uint64(tc.n*100+tc.expect)))
				got := simBoot(t, rng, tc.n, tc.expect, 100*tc.n, tc.seed)
				if len(got) != tc.expect {
					t.Fatalf("run %d: bootstrapped %v, want a list of %d", run, got, tc.expect)
				}
			}
		})
	}
}

// TestBootstrapProtocolAdoptsAcceptedList: a proposer that finds a list
// already accepted by one of its quorum proposes that list, not its own
// first names: the case where two directors with different views
// overlap.
func TestBootstrapProtocolAdoptsAcceptedList(t *testing.T) {
	old := []bootServer{{"d3", "a3"}, {"d4", "a4"}, {"d5", "a5"}}
	peer := func(name string, boot bootMeta) gossipMember {
		boot.Expect = 3
		return gossipMember{Name: name, State: MemberAlive, Meta: nodeMeta{RaftAddr: "a" + name[1:], Boot: &boot}}
	}
	b := &bootstrapper{self: "d1", raftAddr: "a1", expect: 3}
	view := []gossipMember{peer("d2", bootMeta{}), peer("d3", bootMeta{Promised: ballot{4, "d3"}, Accepted: ballot{4, "d3"}, Value: old})}
	if out := b.step(view, time.Unix(0, 0)); !out.persist || b.prop != (ballot{5, "d1"}) || b.phase != 1 {
		t.Fatalf("did not propose above the ballots in sight: %+v, prop %+v phase %d", out, b.prop, b.phase)
	}
	// Both promise ballot 5; d3 still reports what it accepted under 4.
	view = []gossipMember{peer("d2", bootMeta{Promised: b.prop}), peer("d3", bootMeta{Promised: b.prop, Accepted: ballot{4, "d3"}, Value: old})}
	b.step(view, time.Unix(1, 0))
	if b.phase != 2 || !slices.Equal(b.vote.Value, old) || b.vote.Accepted != b.prop {
		t.Fatalf("phase %d, accepted %+v %v; want phase 2 with d3's list %v", b.phase, b.vote.Accepted, b.vote.Value, old)
	}
	// A quorum member promising a higher ballot ends the proposal.
	view = []gossipMember{peer("d2", bootMeta{Promised: ballot{9, "d2"}}), peer("d3", bootMeta{Promised: b.prop})}
	b.step(view, time.Unix(2, 0))
	if b.chosen != nil || b.phase == 2 && b.prop.N == 5 {
		t.Fatalf("proposal 5 still running after a higher promise: prop %+v phase %d chosen %v", b.prop, b.phase, b.chosen)
	}
}

// TestBootstrapProtocolAcceptor: an acceptor's rules, table by table.
func TestBootstrapProtocolAcceptor(t *testing.T) {
	list := []bootServer{{"d1", "a1"}, {"d2", "a2"}, {"d3", "a3"}}
	other := []bootServer{{"d2", "a2"}, {"d3", "a3"}, {"d4", "a4"}}
	for _, tc := range []struct {
		name string
		vote bootVote
		prop bootMeta // d1's meta
		want bootVote
	}{
		{"promises a higher ballot", bootVote{Promised: ballot{2, "d9"}}, bootMeta{Prop: 3, Phase: 1},
			bootVote{Promised: ballot{3, "d1"}}},
		{"keeps what it accepted when promising", bootVote{Promised: ballot{2, "d9"}, Accepted: ballot{2, "d9"}, Value: other}, bootMeta{Prop: 3, Phase: 1},
			bootVote{Promised: ballot{3, "d1"}, Accepted: ballot{2, "d9"}, Value: other}},
		{"refuses a lower ballot", bootVote{Promised: ballot{3, "d2"}}, bootMeta{Prop: 3, Phase: 1},
			bootVote{Promised: ballot{3, "d2"}}},
		{"accepts at its promise", bootVote{Promised: ballot{3, "d1"}}, bootMeta{Prop: 3, Phase: 2, Accepted: ballot{3, "d1"}, Value: list},
			bootVote{Promised: ballot{3, "d1"}, Accepted: ballot{3, "d1"}, Value: list}},
		{"does not accept below its promise", bootVote{Promised: ballot{4, "d0"}}, bootMeta{Prop: 3, Phase: 2, Accepted: ballot{3, "d1"}, Value: list},
			bootVote{Promised: ballot{4, "d0"}}},
		{"ignores a phase 2 without the proposer's own acceptance", bootVote{}, bootMeta{Prop: 3, Phase: 2, Accepted: ballot{2, "d1"}, Value: list},
			bootVote{}},
		{"ignores a malformed list", bootVote{}, bootMeta{Prop: 3, Phase: 2, Accepted: ballot{3, "d1"}, Value: list[:2]},
			bootVote{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// d0 is the lowest name, so this director never proposes itself.
			b := &bootstrapper{self: "d0", raftAddr: "a0", expect: 3, vote: tc.vote}
			tc.prop.Expect = 3
			b.step([]gossipMember{{Name: "d1", State: MemberAlive, Meta: nodeMeta{RaftAddr: "a1", Boot: &tc.prop}}}, time.Unix(0, 0))
			if b.vote.Promised != tc.want.Promised || b.vote.Accepted != tc.want.Accepted || !slices.Equal(b.vote.Value, tc.want.Value) {
				t.Fatalf("vote = %+v, want %+v", b.vote, tc.want)
			}
		})
	}
}

// TestBootstrapProtocolHoldsBack: no proposal while a cluster exists, while
// a director expects another number, with fewer than expect in sight, or
// with a lower name in sight.
func TestBootstrapProtocolHoldsBack(t *testing.T) {
	fresh := func(name string, expect int) gossipMember {
		return gossipMember{Name: name, State: MemberAlive, Meta: nodeMeta{RaftAddr: "a" + name, Boot: &bootMeta{Expect: expect}}}
	}
	inCluster := gossipMember{Name: "d9", State: MemberAlive, Meta: nodeMeta{RaftAddr: "a9", HasState: true}}
	dead := fresh("d3", 3)
	dead.State = MemberDead
	for _, tc := range []struct {
		name     string
		view     []gossipMember
		propose  bool
		conflict string
	}{
		{"three fresh", []gossipMember{fresh("d2", 3), fresh("d3", 3)}, true, ""},
		{"a cluster exists", []gossipMember{fresh("d2", 3), fresh("d3", 3), inCluster}, false, ""},
		{"another bootstrap_expect", []gossipMember{fresh("d2", 3), fresh("d3", 3), fresh("d4", 5)}, false, "d4"},
		{"too few", []gossipMember{fresh("d2", 3)}, false, ""},
		{"a dead one does not count", []gossipMember{fresh("d2", 3), dead}, false, ""},
		{"a lower name proposes", []gossipMember{fresh("d0", 3), fresh("d2", 3)}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &bootstrapper{self: "d1", raftAddr: "a1", expect: 3}
			out := b.step(tc.view, time.Unix(0, 0))
			if got := b.prop.N > 0; got != tc.propose || out.conflict != tc.conflict {
				t.Fatalf("proposing %v conflict %q, want %v %q", got, out.conflict, tc.propose, tc.conflict)
			}
		})
	}
}
