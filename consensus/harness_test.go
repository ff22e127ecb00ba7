package consensus

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"hakeep/api"
	"hakeep/internal/testpki"
)

// testTimeouts are short so elections in tests take a fraction of a second,
// but not so short that a loaded shared CPU flaps the leader.
var testTimeouts = Timeouts{Heartbeat: 250 * time.Millisecond, Election: 250 * time.Millisecond, LeaderLease: 150 * time.Millisecond, Commit: 5 * time.Millisecond}

func testLogger() *slog.Logger {
	if os.Getenv("HAKEEP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.SuspicionMult = 2
	c.TCPTimeout = time.Second
}

// tnode is one director of a test cluster; it can be stopped and started
// again on the same data dir and ports.
type tnode struct {
	t     testing.TB
	cfg   Config
	node  *Node
	files testpki.Files // its certificate's files (secure clusters)
}

type tcluster struct {
	t     testing.TB
	nodes []*tnode
	ca    *testpki.CA // nil for an insecure cluster
}

// creds issues a director certificate for name from ca and loads it.
func creds(t testing.TB, ca *testpki.CA, name string) (*Credentials, testpki.Files) {
	t.Helper()
	f := ca.Issue(t, name)
	c, err := LoadCredentials(f.Cert, f.Key, f.CA)
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

type clusterOpts struct {
	n      int
	expect int // bootstrap_expect; 0: manual
	// Every cluster is closed (mutual TLS from ca, gossip key) unless
	// insecure says otherwise; ca and keys are made when not given.
	insecure bool
	ca       *testpki.CA
	keys     [][]byte
	mode     string
	validate func(string, []byte) error
	snapshot uint64
	timeouts Timeouts
	log      *slog.Logger // default testLogger()
	// atOnce starts every node at the same instant, node i joining the
	// gossip addresses join(i, addrs) picks from everyone's (nil: all the
	// others'); ports are picked beforehand so they can be joined.
	atOnce bool
	join   func(i int, addrs []string) []string
	// plan gives each director its dry-run answer (Config.Plan).
	plan func(node string) func(name string, text []byte) api.DirectorPlan
}

func newCluster(t testing.TB, o clusterOpts) *tcluster {
	t.Helper()
	c := &tcluster{t: t}
	base := t.TempDir()
	if !o.insecure {
		if o.ca == nil {
			o.ca = testpki.New(t)
		}
		if o.keys == nil {
			o.keys = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
		}
		c.ca = o.ca
	}
	for i := 0; i < o.n; i++ {
		name := fmt.Sprintf("d%d", i+1)
		cfg := Config{
			NodeName: name, BindAddr: netip.MustParseAddr("127.0.0.1"),
			DataDir: filepath.Join(base, name), BootstrapExpect: o.expect,
			Timeouts: cmp.Or(o.timeouts, testTimeouts), GossipKeys: o.keys, HealthMode: o.mode, Validate: o.validate,
			SnapshotThreshold: o.snapshot, GossipTuning: fastGossip, Logger: cmp.Or(o.log, testLogger()), InsecureOpen: o.insecure,
		}
		if o.plan != nil {
			cfg.Plan = o.plan(name)
		}
		tn := &tnode{t: t, cfg: cfg}
		if o.ca != nil {
			tn.cfg.TLS, tn.files = creds(t, o.ca, name)
		}
		c.nodes = append(c.nodes, tn)
	}
	// Registered first: a node that failed to start stops the others.
	t.Cleanup(func() {
		for _, tn := range c.nodes {
			tn.stop()
		}
	})
	if o.atOnce {
		c.startAtOnce(o.join)
	} else {
		for i, tn := range c.nodes {
			if i > 0 {
				tn.cfg.Join = []string{c.nodes[0].node.GossipAddr()}
			}
			tn.start()
		}
	}
	return c
}

// startAtOnce starts every node in its own goroutine, all released
// together, each joining the gossip addresses join picks (nil: all the
// others').
func (c *tcluster) startAtOnce(join func(i int, addrs []string) []string) {
	c.t.Helper()
	// The gossip ports must be known before any node starts, so they are
	// picked free and bound later: another test's listener (or a Raft
	// port picked the same way) may take one in between. Then the whole
	// start is tried again with new ports.
	for attempt := 1; ; attempt++ {
		err := c.tryStartAtOnce(join)
		if err == nil {
			return
		}
		for _, tn := range c.nodes {
			tn.stop()
			os.RemoveAll(tn.cfg.DataDir) // a fresh start: no vote kept
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			c.t.Fatal(err)
		}
		c.t.Logf("start at once, attempt %d: %v; again with new ports", attempt, err)
	}
}

func (c *tcluster) tryStartAtOnce(join func(i int, addrs []string) []string) error {
	addrs := make([]string, len(c.nodes))
	for i, tn := range c.nodes {
		p, err := freePort(tn.cfg.BindAddr)
		if err != nil {
			return err
		}
		tn.cfg.GossipPort = p
		addrs[i] = net.JoinHostPort(tn.cfg.BindAddr.String(), strconv.Itoa(p))
	}
	for i, tn := range c.nodes {
		if join != nil {
			tn.cfg.Join = join(i, slices.Clone(addrs))
		} else {
			tn.cfg.Join = slices.Delete(slices.Clone(addrs), i, i+1)
		}
	}
	gate := make(chan struct{})
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, tn := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			tn.node, errs[i] = New(tn.cfg)
		}()
	}
	close(gate)
	wg.Wait()
	for i, tn := range c.nodes {
		if errs[i] != nil {
			return fmt.Errorf("start %s: %w", tn.cfg.NodeName, errs[i])
		}
	}
	for _, tn := range c.nodes {
		tn.cfg.RaftPort = tn.node.cfg.RaftPort
	}
	return nil
}

// stopAll stops every running node at once (a round of a test that starts
// many clusters need not wait for them one by one).
func (c *tcluster) stopAll() {
	var wg sync.WaitGroup
	for _, tn := range c.running() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tn.stop()
		}()
	}
	wg.Wait()
}

func (tn *tnode) start() {
	tn.t.Helper()
	n, err := New(tn.cfg)
	if err != nil {
		tn.t.Fatalf("start %s: %v", tn.cfg.NodeName, err)
	}
	tn.node = n
	// Keep the ports for a restart.
	tn.cfg.RaftPort = n.cfg.RaftPort
	tn.cfg.GossipPort = n.cfg.GossipPort
}

func (tn *tnode) stop() {
	if tn.node != nil {
		tn.node.Close()
		tn.node = nil
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leader waits for one leader agreed on by every running node and returns it.
func (c *tcluster) leader() *tnode {
	c.t.Helper()
	var l *tnode
	waitFor(c.t, "a leader known to every running node", 15*time.Second, func() bool {
		l = nil
		name := ""
		for _, tn := range c.nodes {
			if tn.node == nil {
				continue
			}
			if tn.node.IsLeader() {
				l = tn
			}
			ln := tn.node.Leader()
			if ln == "" || (name != "" && ln != name) {
				return false
			}
			name = ln
		}
		return l != nil && l.cfg.NodeName == name
	})
	return l
}

func (c *tcluster) running() []*tnode {
	var out []*tnode
	for _, tn := range c.nodes {
		if tn.node != nil {
			out = append(out, tn)
		}
	}
	return out
}

// waitVersion waits until every running node's FSM has version v.
func (c *tcluster) waitVersion(v uint64) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("version %d on every node", v), 10*time.Second, func() bool {
		for _, tn := range c.running() {
			cv, ok := tn.node.FSM().Current()
			if !ok || cv.Version != v {
				return false
			}
		}
		return true
	})
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
