package consensus

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestBootstrapExpectAndPush(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3, expect: 3})
	l := c.leader()
	for _, tn := range c.nodes {
		// A follower may hear the leader's heartbeat before it stores the
		// configuration entry.
		waitFor(t, tn.cfg.NodeName+" knows all three voters", 10*time.Second, func() bool {
			return slices.Equal(tn.node.Voters(), []string{"d1", "d2", "d3"})
		})
	}
	// Push through a follower: forwarded to the leader.
	var f *tnode
	for _, tn := range c.nodes {
		if tn != l {
			f = tn
		}
	}
	res, err := f.node.Push(ctxT(t, 5*time.Second), "a.conf", []byte("global_defs {}\n"), "test", "")
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if res.Version != 1 {
		t.Fatalf("version = %d, want 1", res.Version)
	}
	c.waitVersion(1)
	for _, tn := range c.nodes {
		cv, _ := tn.node.FSM().Current()
		if cv.Text != "global_defs {}\n" || cv.SHA256 != "" && len(cv.SHA256) != 64 || cv.PushedBy != "test" {
			t.Fatalf("%s current = %+v", tn.cfg.NodeName, cv)
		}
	}
}

func TestManualInitJoinRemove(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 3})
	d1, d2, d3 := c.nodes[0], c.nodes[1], c.nodes[2]
	if err := d1.node.Init(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("init: %v", err)
	}
	if err := d1.node.Init(ctxT(t, 5*time.Second)); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second init = %v, want ErrAlreadyInitialized", err)
	}
	for _, tn := range []*tnode{d2, d3} {
		if err := tn.node.Join(ctxT(t, 10*time.Second), d1.node.GossipAddr()); err != nil {
			t.Fatalf("%s join: %v", tn.cfg.NodeName, err)
		}
	}
	waitFor(t, "3 voters on d3", 10*time.Second, func() bool { return len(d3.node.Voters()) == 3 })
	c.leader()
	// Remove d3 through d2 (a follower or the leader).
	if err := d2.node.Remove(ctxT(t, 5*time.Second), "d3"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	waitFor(t, "2 voters on d1", 10*time.Second, func() bool { return slices.Equal(d1.node.Voters(), []string{"d1", "d2"}) })
	if err := d2.node.Remove(ctxT(t, 5*time.Second), "nope"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("remove unknown = %v, want ErrNotMember", err)
	}
	// Re-add d3 by joining again, and it catches up on a push made meanwhile.
	if _, err := d1.node.Push(ctxT(t, 5*time.Second), "x.conf", []byte("x"), "t", ""); err != nil {
		t.Fatal(err)
	}
	if err := d3.node.Join(ctxT(t, 10*time.Second), d2.node.GossipAddr()); err != nil {
		t.Fatalf("re-join: %v", err)
	}
	waitFor(t, "3 voters again", 10*time.Second, func() bool { return len(d1.node.Voters()) == 3 })
	c.waitVersion(1)
}

// TestManualRestartFindsPeers: a director joined by hand (no join list)
// finds its gossip peers again after a restart, from the peers it saved.
func TestManualRestartFindsPeers(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 2})
	d1, d2 := c.nodes[0], c.nodes[1]
	d2.cfg.Join = nil
	if err := d1.node.Init(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := d2.node.Join(ctxT(t, 10*time.Second), d1.node.GossipAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d2 saved its peers", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(d2.cfg.DataDir, peersFile))
		return err == nil
	})
	d2.stop()
	d2.start()
	waitFor(t, "d2 sees d1 alive again", 10*time.Second, func() bool {
		for _, m := range d2.node.Members() {
			if m.Name == "d1" && m.Status == MemberAlive {
				return true
			}
		}
		return false
	})
	c.leader()
}

// TestBootstrapExpectExtraDirector: a fourth director started with
// bootstrap_expect 3 does not bootstrap a second cluster: it joins the one
// the first three formed.
func TestBootstrapExpectExtraDirector(t *testing.T) {
	c := newCluster(t, clusterOpts{n: 4, expect: 3})
	c.leader()
	for _, tn := range c.nodes {
		waitFor(t, tn.cfg.NodeName+" in one 4-voter cluster", 15*time.Second, func() bool {
			return slices.Equal(tn.node.Voters(), []string{"d1", "d2", "d3", "d4"})
		})
	}
	mustPush(t, c.nodes[3].node, "from d4")
	c.waitVersion(1)
}
