package consensus

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"hakeep/internal/testpki"
)

// simDirector is one director in the bootstrap simulation.
type simDirector struct {
	name    string
	b       *bootstrapper
	durable bootVote    // what is on its disk
	pub     []*nodeMeta // every meta it published, oldest first
	done    bool        // bootstrapped: no longer steps
}

// simResult is what one simulated start came to.
type simResult struct {
	booted    []bootServer // the list bootstrapped (nil: none)
	early     bool         // bootstrapped before gossip settled
	contested bool         // two different lists were proposed
	adopted   bool         // a proposer proposed a list another had picked
}

// simBoot runs the bootstrap protocol of n directors expecting expect
// under a random schedule: director j hears of director i only after a
// random delay (up to 30 s), then gets i's metas late and out of step
// with other observers; members are taken for dead and back;
// directors restart, keeping only the vote on their disk, and fail to
// write their vote. It fails the test if two different server lists are
// ever chosen or bootstrapped. At the end gossip settles (everyone sees
// everyone's latest meta) and the directors step until one bootstraps.
// seed: every director knows the first one from the start (a common join
// address).
func simBoot(t *testing.T, rng *rand.Rand, n, expect, events int, seed bool) simResult {
	t.Helper()
	ds := make([]*simDirector, n)
	perm := rng.Perm(n)
	for i := range ds {
		// Names in random order, so the lowest is not always the seed.
		name := fmt.Sprintf("d%d", perm[i]+1)
		d := &simDirector{name: name}
		d.b = &bootstrapper{self: name, raftAddr: "addr-" + name, expect: expect}
		d.pub = []*nodeMeta{{RaftAddr: d.b.raftAddr, Boot: d.b.meta()}}
		ds[i] = d
	}
	now := time.Unix(0, 0)
	// view[j][i]: the index in ds[i].pub that j sees (-1: j has not heard
	// of i); gone[j][i]: j takes i for dead; heard[j][i]: when j can first
	// hear of i.
	view := make([][]int, n)
	gone := make([][]bool, n)
	heard := make([][]time.Time, n)
	for j := range view {
		view[j] = make([]int, n)
		gone[j] = make([]bool, n)
		heard[j] = make([]time.Time, n)
		for i := range view[j] {
			view[j][i] = -1
			delay := time.Duration(rng.IntN([]int{1, 2000, 10000, 30000}[rng.IntN(4)])) * time.Millisecond
			heard[j][i] = now.Add(delay)
			if i == j || seed && i == 0 {
				view[j][i], heard[j][i] = 0, now
			}
		}
	}
	var res simResult
	var chosen []bootServer
	proposed := map[string]bool{}
	check := func(what string, v []bootServer) {
		t.Helper()
		if chosen == nil {
			chosen = v
		} else if !slices.Equal(chosen, v) {
			t.Fatalf("two lists %s: %v and %v", what, chosen, v)
		}
	}
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
		if d.b.phase == 2 && prev.phase == 1 {
			proposed[fmt.Sprint(d.b.vote.Value)] = true
			// Its own pick would be the first names of its quorum.
			names := append([]string{d.name}, d.b.quorum...)
			slices.Sort(names)
			for k, s := range d.b.vote.Value {
				res.adopted = res.adopted || s[0] != names[k]
			}
		}
		if d.b.ownChosen {
			check("chosen", d.b.chosen)
		}
		meta := &nodeMeta{RaftAddr: d.b.raftAddr, Boot: d.b.meta()}
		if d.b.chosen != nil && slices.ContainsFunc(d.b.chosen, func(s bootServer) bool { return s[0] == d.name }) {
			check("bootstrapped", d.b.chosen)
			res.booted = d.b.chosen
			meta = &nodeMeta{RaftAddr: d.b.raftAddr, HasState: true}
			d.done = true
		}
		d.pub = append(d.pub, meta)
	}
	for e := 0; e < events; e++ {
		now = now.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
		j, i := rng.IntN(n), rng.IntN(n)
		switch r := rng.IntN(100); {
		case r < 40:
			step(j)
		case r < 95:
			// A gossip message reaches j with news of some members: a newer
			// meta of each, never an older one, and that it is alive.
			for i := range ds {
				if last := len(ds[i].pub) - 1; view[j][i] < last && !now.Before(heard[j][i]) && rng.IntN(2) == 0 {
					view[j][i] += 1 + rng.IntN(last-view[j][i])
					gone[j][i] = false
				}
			}
		case r < 99:
			gone[j][i] = i != j
		default:
			// Restart: only the vote on disk survives.
			if d := ds[j]; !d.done {
				d.b = &bootstrapper{self: d.name, raftAddr: d.b.raftAddr, expect: expect, vote: d.durable}
				d.pub = append(d.pub, &nodeMeta{RaftAddr: d.b.raftAddr, Boot: d.b.meta()})
			}
		}
	}
	res.early = res.booted != nil
	for round := 0; round < 50 && res.booted == nil; round++ {
		now = now.Add(time.Second)
		for j := range ds {
			for i := range ds {
				view[j][i], gone[j][i] = len(ds[i].pub)-1, false
			}
			step(j)
		}
	}
	res.contested = len(proposed) > 1
	return res
}

// TestBootstrapProtocolOneList: whatever the schedule, at most one server
// list is chosen and bootstrapped, and once gossip settles one is. The
// schedules must also have produced what the rule is for: lists decided
// while gossip was still spreading, and competing proposals.
func TestBootstrapProtocolOneList(t *testing.T) {
	runs := 150
	if testing.Short() {
		runs = 50
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
			early, contested, adopted := 0, 0, 0
			for run := 0; run < runs; run++ {
				rng := rand.New(rand.NewPCG(uint64(run), uint64(tc.n*100+tc.expect)))
				res := simBoot(t, rng, tc.n, tc.expect, 300*tc.n, tc.seed)
				if len(res.booted) != tc.expect {
					t.Fatalf("run %d: bootstrapped %v, want a list of %d", run, res.booted, tc.expect)
				}
				if res.early {
					early++
				}
				if res.contested {
					contested++
				}
				if res.adopted {
					adopted++
				}
			}
			t.Logf("%d runs: %d bootstrapped while gossip spread, %d with competing lists, %d with a list adopted", runs, early, contested, adopted)
			if tc.n > 1 && early == 0 || tc.n > tc.expect && contested+adopted == 0 {
				t.Fatalf("the schedules never tested the rule: %d early bootstraps, %d contested, %d adopted", early, contested, adopted)
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

// joinTopologies are the ways directors started together find each other:
// each shapes which part of the pool a director sees first.
var joinTopologies = []struct {
	name string
	join func(rng *rand.Rand) func(i int, addrs []string) []string
}{
	{"all", func(*rand.Rand) func(int, []string) []string { return nil }},
	{"one-seed", func(rng *rand.Rand) func(int, []string) []string {
		seed := -1
		return func(i int, addrs []string) []string {
			if seed < 0 {
				seed = rng.IntN(len(addrs))
			}
			if seed != i {
				return addrs[seed : seed+1]
			}
			return nil
		}
	}},
	{"ring", func(*rand.Rand) func(int, []string) []string {
		return func(i int, addrs []string) []string { return []string{addrs[(i+1)%len(addrs)]} }
	}},
	{"random-tree", func(rng *rand.Rand) func(int, []string) []string {
		// Each joins one director before it in a random order: a
		// connected pool, found through a different path by each.
		var order []int
		return func(i int, addrs []string) []string {
			if order == nil {
				order = rng.Perm(len(addrs))
			}
			k := slices.Index(order, i)
			if k == 0 {
				return nil
			}
			return []string{addrs[order[rng.IntN(k)]]}
		}
	}},
}

// TestBootstrapExpectManyAtOnce: directors with bootstrap_expect 3, three
// and more of them, started at the same instant under several join
// topologies, end in one cluster every round: one first log entry (the
// bootstrap configuration of exactly three) on every director, every
// director a voter in one configuration, one leader that all follow. The
// surplus directors are added as voters.
func TestBootstrapExpectManyAtOnce(t *testing.T) {
	const expect = 3
	rounds := []struct{ n, rounds int }{{3, 4}, {4, 8}, {5, 10}}
	if testing.Short() {
		rounds = []struct{ n, rounds int }{{3, 2}, {4, 3}, {5, 5}}
	}
	ca := testpki.New(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("topology seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, r := range rounds {
		for round := 0; round < r.rounds; round++ {
			topo := joinTopologies[round%len(joinTopologies)]
			t.Run(fmt.Sprintf("n%d/%s/%d", r.n, topo.name, round), func(t *testing.T) {
				c := newCluster(t, clusterOpts{n: r.n, expect: expect, ca: ca, atOnce: true, join: topo.join(rng)})
				defer c.stopAll()
				oneCluster(t, c, expect)
			})
		}
	}
}

// oneCluster waits until the nodes of c form one cluster: every one a
// voter of the same configuration, one leader that all follow. It fails at
// once if two nodes hold different first log entries (two bootstraps).
func oneCluster(t *testing.T, c *tcluster, expect int) {
	t.Helper()
	var names []string
	for _, tn := range c.nodes {
		names = append(names, tn.cfg.NodeName)
	}
	slices.Sort(names)
	var state string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var genesis *raft.Log
		var genesisOf string
		leaders, follow := map[string]bool{}, map[string]bool{}
		whole := true
		var b strings.Builder
		for _, tn := range c.nodes {
			n := tn.node
			voters := n.Voters()
			fmt.Fprintf(&b, "\n  %s: %s, leader %q, voters %v, last index %d", tn.cfg.NodeName, n.State(), n.Leader(), voters, n.raft.LastIndex())
			if n.raft.LastIndex() >= 1 {
				var l raft.Log
				if err := n.store.GetLog(1, &l); err != nil {
					t.Fatalf("%s: read log entry 1: %v", tn.cfg.NodeName, err)
				}
				if genesis == nil {
					genesis, genesisOf = &l, tn.cfg.NodeName
				} else if l.Term != genesis.Term || l.Type != genesis.Type || !bytes.Equal(l.Data, genesis.Data) {
					t.Fatalf("two clusters: %s and %s hold different first log entries (%s and %s)%s", genesisOf, tn.cfg.NodeName,
						genesisServers(genesis), genesisServers(&l), b.String())
				}
			}
			if n.IsLeader() {
				leaders[tn.cfg.NodeName] = true
			}
			follow[n.Leader()] = true
			whole = whole && slices.Equal(voters, names)
		}
		state = b.String()
		if whole && len(leaders) == 1 && len(follow) == 1 && leaders[slices.Collect(maps.Keys(follow))[0]] {
			if genesis.Type != raft.LogConfiguration || len(raft.DecodeConfiguration(genesis.Data).Servers) != expect {
				t.Fatalf("first log entry is not a bootstrap configuration of %d: %s%s", expect, genesisServers(genesis), state)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single cluster of %v after 20s:%s", names, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// genesisServers describes a first log entry: the servers of a
// configuration entry, else its type.
func genesisServers(l *raft.Log) string {
	if l.Type != raft.LogConfiguration {
		return fmt.Sprintf("a %s entry", l.Type)
	}
	return fmt.Sprint(serverNames(raft.DecodeConfiguration(l.Data).Servers))
}

// TestBootstrapMetaFits: a director's meta during bootstrap stays within
// memberlist's 512 bytes for realistic lists (five long names with IPv6
// addresses), and a list that does not fit is never proposed.
func TestBootstrapMetaFits(t *testing.T) {
	long, v6 := "director-frankfurt-01", "[2001:db8:ffff:ffff::101]:7301"
	for _, tc := range []struct {
		name, addr string
		expect     int
		fits       bool
	}{
		{"d1", "10.0.0.11:7301", 3, true},
		{long, v6, 3, true},
		{long, v6, 5, true},
		{long, v6, 9, false},
	} {
		g := &gossip{meta: nodeMeta{RaftAddr: tc.addr}}
		value := make([]bootServer, tc.expect)
		for i := range value {
			value[i] = bootServer{tc.name, tc.addr}
		}
		b := ballot{N: 1 << 40, By: tc.name}
		meta := &bootMeta{Expect: tc.expect, Promised: b, Accepted: b, Value: value, Prop: b.N, Phase: 2, Chosen: true}
		if got := g.metaFits(meta); got != tc.fits {
			t.Errorf("expect %d of %q at %s: fits = %v, want %v", tc.expect, tc.name, tc.addr, got, tc.fits)
		}
	}

	// A director whose list would not fit proposes nothing and says so.
	bs := &bootstrapper{self: "d1", raftAddr: "a1", expect: 3, fits: func(m *bootMeta) bool { return len(m.Value) == 0 }}
	peer := func(name string, boot bootMeta) gossipMember {
		boot.Expect = 3
		return gossipMember{Name: name, State: MemberAlive, Meta: nodeMeta{RaftAddr: "a" + name[1:], Boot: &boot}}
	}
	bs.step([]gossipMember{peer("d2", bootMeta{}), peer("d3", bootMeta{})}, time.Unix(0, 0))
	out := bs.step([]gossipMember{peer("d2", bootMeta{Promised: bs.prop}), peer("d3", bootMeta{Promised: bs.prop})}, time.Unix(1, 0))
	if !out.tooBig || bs.vote.Value != nil || bs.phase == 2 {
		t.Fatalf("outcome %+v, vote %+v, phase %d: want the list refused", out, bs.vote, bs.phase)
	}
}

// TestBootstrapVoteFile: the vote survives a restart as written; a missing
// file is a fresh vote, an unreadable one an error (bootstrapLoop then
// takes no part rather than vote afresh).
func TestBootstrapVoteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), bootVoteFile)
	if v, err := readBootVote(path); err != nil || v.Promised.N != 0 || v.Value != nil {
		t.Fatalf("missing file: %+v, %v", v, err)
	}
	want := bootVote{Promised: ballot{7, "d2"}, Accepted: ballot{6, "d1"}, Value: []bootServer{{"d1", "a1"}, {"d2", "a2"}, {"d3", "a3"}}}
	if err := writeBootVote(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := readBootVote(path)
	if err != nil || got.Promised != want.Promised || got.Accepted != want.Accepted || !slices.Equal(got.Value, want.Value) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, want)
	}
	if err := os.WriteFile(path, []byte(`{"promised":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readBootVote(path); err == nil {
		t.Fatal("a truncated vote file read without error")
	}
}
