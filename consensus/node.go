// Package consensus runs the directors' Raft cluster (hashicorp/raft with
// raft-boltdb on disk, TCP or mutual-TLS transport) and their memberlist
// gossip. Its state machine holds the cluster configuration and its history,
// each director's applied version, the replicated real-server health table
// and VIP ownership records (fencing.md). It does not apply configurations or
// program the kernel: the director subscribes to committed versions and
// reports back.
package consensus

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"hakeep/api"
)

// Timeouts are the Raft timers.
type Timeouts struct {
	Heartbeat   time.Duration
	Election    time.Duration
	LeaderLease time.Duration
	Commit      time.Duration
}

// LANTimeouts are tuned for directors on one LAN: a dead leader is replaced
// in about a second, far below the VRRP master-down interval with the
// default advert_int. Commit is short because followers learn the commit
// index only with the next append (raft sends one per Commit interval when
// idle: a few hundred tiny RPCs a second, cheap on a LAN, and it halves
// push-to-applied latency compared with 5 ms).
func LANTimeouts() Timeouts {
	return Timeouts{Heartbeat: 500 * time.Millisecond, Election: 500 * time.Millisecond, LeaderLease: 250 * time.Millisecond, Commit: 2 * time.Millisecond}
}

// Config is what a Node needs; ConfigFromCluster builds it from the
// cluster { } block.
type Config struct {
	NodeName      string
	BindAddr      netip.Addr
	AdvertiseAddr netip.Addr // defaults to BindAddr
	// RaftPort and GossipPort; 0 picks a free port (tests).
	RaftPort   int
	GossipPort int
	// Join lists gossip addresses of peers, tried at start.
	Join []string
	// BootstrapExpect > 0 bootstraps the Raft cluster once that many
	// directors see each other by gossip.
	BootstrapExpect int
	DataDir         string
	// TLS wraps every Raft and node-to-node connection in mutual TLS and
	// gives each peer an identity (see Credentials and authz.go). Its
	// certificate must name NodeName.
	TLS *Credentials
	// GossipKeys (16, 24 or 32 bytes each) encrypt gossip: the first
	// encrypts, every one decrypts (a key rotation installs the new key
	// everywhere before it encrypts with it).
	GossipKeys [][]byte
	// InsecureOpen lets the node run without TLS or gossip keys
	// (insecure_open_cluster): anyone who reaches its ports can then
	// command the cluster. Without it, New refuses to run open.
	InsecureOpen bool
	// HealthMode: local, master or quorum (default quorum... see Health*).
	HealthMode string
	Timeouts   Timeouts
	// HistoryLimit bounds the kept configuration versions.
	HistoryLimit int
	// SnapshotThreshold: log entries between snapshots (raft default 8192).
	SnapshotThreshold uint64
	// Validate checks a pushed configuration on the leader (nil: accept
	// anything). Return a *ValidationError to give file:line diagnostics.
	Validate func(name string, text []byte) error
	// Plan answers a dry run for this director (`hactl config push
	// --dry-run`): what it would change if text were applied. It must not
	// block; nil: this director cannot answer one.
	Plan func(name string, text []byte) api.DirectorPlan
	// ReportInterval is how often health and applied reports are batched
	// into the log (default 20 ms).
	ReportInterval time.Duration
	// GossipTuning adjusts the memberlist configuration (tests use
	// memberlist.DefaultLocalConfig timings).
	GossipTuning func(*memberlist.Config)
	Logger       *slog.Logger
}

// Health modes.
const (
	HealthLocal  = "local"
	HealthMaster = "master"
	HealthQuorum = "quorum"
)

// Sentinel errors; test with errors.Is.
var (
	ErrNoLeader           = errors.New("no Raft leader reachable")
	ErrAlreadyInitialized = errors.New("this director already belongs to a cluster")
	ErrNotMember          = errors.New("no such director in the cluster")
	ErrClosed             = errors.New("consensus node is closed")
	// ErrOpen: a node without TLS or gossip keys and no InsecureOpen.
	ErrOpen = errors.New("refusing to run an open cluster")
)

// ValidationError is a pushed configuration refused by validation.
type ValidationError struct {
	// Diagnostics are "file:line: message" lines.
	Diagnostics []string
}

func (e *ValidationError) Error() string {
	if len(e.Diagnostics) == 0 {
		return "configuration is invalid"
	}
	s := "configuration is invalid: " + e.Diagnostics[0]
	if len(e.Diagnostics) > 1 {
		s += fmt.Sprintf(" (and %d more)", len(e.Diagnostics)-1)
	}
	return s
}

// Node is one director's membership in the cluster.
type Node struct {
	cfg    Config
	log    *slog.Logger
	fsm    *FSM
	raft   *raft.Raft
	store  *raftboltdb.BoltStore
	trans  *raft.NetworkTransport
	mux    *muxListener
	gossip *gossip

	raftAddr string

	rpcMu   sync.Mutex
	rpcIdle map[string][]*rpcConn // kept RPC connections by peer address

	joining atomic.Bool // a background gossip join is under way
	joinMu  sync.Mutex
	joined  map[string]bool // join addresses joined once (joinMissing)

	subMu   sync.Mutex
	subs    map[chan ConfigVersion]struct{}
	watches map[*watch]struct{}

	repMu    sync.Mutex
	applied  *Applied                  // pending applied report
	local    map[healthKey]bool        // this director's own view
	dirty    map[healthKey]HealthEntry // views not yet committed (Gone: drop it)
	kick     chan struct{}
	lastOK   time.Time // last successful report commit
	closed   chan struct{}
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

type healthKey struct{ vs, rs string }

// New opens (or creates) the node's data directory, starts Raft and gossip,
// and either resumes from disk or waits to be bootstrapped (by expectation,
// or by Init / Join).
func New(cfg Config) (*Node, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("start consensus: empty node name")
	}
	if !cfg.BindAddr.IsValid() {
		return nil, errors.New("start consensus: no bind address")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("start consensus: no data directory")
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = LANTimeouts()
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 20 * time.Millisecond
	}
	switch cfg.HealthMode {
	case "":
		cfg.HealthMode = HealthLocal
	case HealthLocal, HealthMaster, HealthQuorum:
	default:
		return nil, fmt.Errorf("start consensus: unknown health mode %q (want local, master or quorum)", cfg.HealthMode)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.NodeName)
	if err := checkSecurity(&cfg, log); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: log, fsm: NewFSM(cfg.HistoryLimit), subs: map[chan ConfigVersion]struct{}{},
		local: map[healthKey]bool{}, dirty: map[healthKey]HealthEntry{}, kick: make(chan struct{}, 1), closed: make(chan struct{})}
	n.fsm.onConfig = n.notify
	n.fsm.onChange = n.notifyChange
	if err := n.start(); err != nil {
		n.shutdown()
		return nil, err
	}
	return n, nil
}

func (n *Node) start() error {
	cfg := n.cfg
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &logWriter{log: n.log, subsystem: "raft"}})

	mux, err := newMuxListener(net.JoinHostPort(cfg.BindAddr.String(), strconv.Itoa(cfg.RaftPort)), cfg.TLS, n.log)
	if err != nil {
		return err
	}
	n.mux = mux
	mux.rpc = n.serveRPC
	mux.allowRaft = n.allowRaft
	adv := cfg.AdvertiseAddr
	if !adv.IsValid() {
		adv = cfg.BindAddr
	}
	port := mux.ln.Addr().(*net.TCPAddr).Port
	n.cfg.RaftPort = port
	n.raftAddr = net.JoinHostPort(adv.String(), strconv.Itoa(port))
	sl := &streamLayer{m: mux, advertise: &net.TCPAddr{IP: adv.AsSlice(), Port: port}}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: sl, MaxPool: 3, Timeout: 5 * time.Second, Logger: hlog})

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("open raft store in %s: %w", cfg.DataDir, err)
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, hlog)
	if err != nil {
		return fmt.Errorf("open snapshot store in %s: %w", cfg.DataDir, err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.HeartbeatTimeout = cfg.Timeouts.Heartbeat
	rc.ElectionTimeout = cfg.Timeouts.Election
	rc.LeaderLeaseTimeout = cfg.Timeouts.LeaderLease
	rc.CommitTimeout = cfg.Timeouts.Commit
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	rc.Logger = hlog
	hasState, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, noPipeline{n.trans})
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	// Served only now: authorization reads the Raft configuration.
	go mux.serve()

	if cfg.GossipPort == 0 {
		// memberlist needs the same port for UDP and TCP: pick a free TCP
		// port (tests only; production configures it).
		p, err := freePort(cfg.BindAddr)
		if err != nil {
			return err
		}
		n.cfg.GossipPort = p
	}
	g, err := newGossip(n.cfg, n.raftAddr, n.log)
	if err != nil {
		return err
	}
	n.gossip = g
	g.setHasState(hasState)
	if hasState {
		n.log.Info("resuming cluster state from disk", "data_dir", cfg.DataDir)
	}
	if join := n.joinAddrs(); len(join) > 0 {
		if _, err := g.join(join); err != nil {
			n.log.Warn("initial gossip join failed; retrying in the background", "err", err)
		}
	}
	n.wg.Add(3)
	go n.bootstrapLoop(hasState)
	go n.reportLoop()
	go n.gossipLoop()
	return nil
}

func freePort(addr netip.Addr) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Name is this director's node name.
func (n *Node) Name() string { return n.cfg.NodeName }

// RaftAddr is the address peers reach this node's Raft port at.
func (n *Node) RaftAddr() string { return n.raftAddr }

// GossipAddr is the address peers join this node's gossip at.
func (n *Node) GossipAddr() string { return n.gossip.addr() }

// FSM gives read access to the replicated state.
func (n *Node) FSM() *FSM { return n.fsm }

// Close leaves gossip and stops Raft; the data directory stays for a
// restart.
func (n *Node) Close() error {
	n.once.Do(func() {
		close(n.closed)
		n.closeErr = n.shutdown()
		n.wg.Wait()
		// Raft has stopped applying: end every subscriber's range loop.
		n.subMu.Lock()
		for ch := range n.subs {
			close(ch)
		}
		for w := range n.watches {
			close(w.ch)
		}
		n.subs, n.watches = nil, nil
		n.subMu.Unlock()
	})
	return n.closeErr
}

func (n *Node) shutdown() error {
	var errs []error
	if n.raft != nil && n.raft.State() == raft.Leader && len(n.Voters()) > 1 {
		// A planned stop hands leadership over at once instead of making
		// the others wait for an election timeout.
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer before stop failed", "err", err)
		}
	}
	if n.gossip != nil {
		n.gossip.leave(200 * time.Millisecond)
	}
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("stop raft: %w", err))
		}
	}
	n.closeRPCConns()
	if n.trans != nil {
		n.trans.Close()
	} else if n.mux != nil {
		n.mux.close()
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// isClosed reports whether Close was called.
func (n *Node) isClosed() bool {
	select {
	case <-n.closed:
		return true
	default:
		return false
	}
}

// hasClusterState reports whether this node is part of a bootstrapped
// cluster (it has a log, or knows a configuration).
func (n *Node) hasClusterState() bool {
	if n.raft.LastIndex() > 0 {
		return true
	}
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// bootstrapLoop implements bootstrap_expect (E below) so that one Raft
// configuration only is ever bootstrapped, however many directors start at
// once and whatever part of the gossip pool each one has seen.
//
// What went wrong before: each director bootstrapped as soon as it saw E
// alive members, with the first E names of its own view. Views differ while
// gossip spreads: with E=3 and d1..d5 started together, d3 seeing
// {d1,d2,d3} bootstrapped {d1,d2,d3} while d2, told of d4 before d3,
// bootstrapped {d1,d2,d4}. An unbootstrapped director votes for any
// candidate, so d1 gave d3 its vote and d4 gave d2 its vote: two leaders,
// two clusters, whose first log entries differ at the same index and term.
//
// The rule now: the directors agree on the server list before any of them
// bootstraps, by single-decree Paxos carried in gossip meta (bootstrapper):
//
//   - Every director with bootstrap_expect is an acceptor. Its vote
//     (promised ballot; accepted ballot and list) is written to data_dir
//     before gossip shows it, so a restart does not forget it.
//   - A director proposes only while it sees at least E unbootstrapped
//     directors with the same bootstrap_expect (itself included), none with
//     another bootstrap_expect, no member of a cluster, and no lower name.
//     Its quorum is all of them. Phase 1: each promises its ballot; it then
//     proposes the list accepted under the highest ballot any of them
//     reports or, if none did, the first E names of its quorum. Phase 2:
//     each accepts that list. The list is then chosen, and the proposer
//     says so in gossip.
//   - A director bootstraps only a chosen list and only if it is in it, so
//     every BootstrapCluster call gets the same raft.Configuration: one
//     first log entry, one cluster. The others, the surplus directors, wait
//     for a member of that cluster to show in gossip and ask it to add them
//     as voters (opJoin), as any late director does.
//
// Why two different lists cannot both be chosen: Paxos is safe when any two
// quorums share an acceptor. A quorum is at least E distinct directors, so
// while fewer than 2E fresh directors take part, any two quorums intersect
// (pigeonhole), whatever each proposer saw when it decided. The shared
// director promised the later ballot either before the earlier list reached
// it (then it refused that list, which was not chosen) or after accepting
// it (then it reported the list, and the later proposer proposed it again).
// With 2E or more fresh directors, two proposals whose quorums share a
// director are still safe; two groups of E that have not heard of each
// other at all when they decide (no common join address) cannot be told
// from two deployments and would form two clusters. A director that sees a
// member of a cluster never proposes: it joins (as Consul does).
func (n *Node) bootstrapLoop(hasState bool) {
	defer n.wg.Done()
	if hasState {
		return
	}
	var bs *bootstrapper
	votePath := filepath.Join(n.cfg.DataDir, bootVoteFile)
	if n.cfg.BootstrapExpect > 0 {
		vote, err := readBootVote(votePath)
		if err != nil {
			// Voting afresh could contradict the lost vote: only joining an
			// existing cluster (or hactl cluster init/join) is left.
			n.log.Error("bootstrap_expect disabled: cannot read this director's bootstrap vote", "err", err)
		} else {
			bs = &bootstrapper{self: n.cfg.NodeName, raftAddr: n.raftAddr, expect: n.cfg.BootstrapExpect, vote: vote, fits: n.gossip.metaFits}
			n.gossip.setBoot(bs.meta())
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastJoin := time.Now()
	warned, warnedBig := "", false
	for {
		select {
		case <-n.closed:
			return
		case <-tick.C:
		case <-n.gossip.changed:
		}
		if n.hasClusterState() {
			n.gossip.setHasState(true)
			return
		}
		if time.Since(lastJoin) > time.Second {
			// gossipLoop does this too, less often.
			lastJoin = time.Now()
			n.joinMissing()
		}
		members := n.gossip.members()
		if bs == nil {
			continue
		}
		prev := *bs
		out := bs.step(members, time.Now())
		if out.conflict != "" && out.conflict != warned {
			warned = out.conflict
			n.log.Error("not bootstrapping: a director has a different bootstrap_expect (all must expect the same number)", "peer", out.conflict, "expect", n.cfg.BootstrapExpect)
		}
		if out.tooBig && !warnedBig {
			warnedBig = true
			n.log.Error("not bootstrapping: the server list does not fit in gossip meta (names or addresses too long); use hactl cluster init and join")
		}
		if out.persist {
			if err := writeBootVote(votePath, bs.vote); err != nil {
				n.log.Error("cannot save this director's bootstrap vote; retrying", "err", err)
				*bs = prev
				continue
			}
		}
		if bs.prop != prev.prop || bs.phase != prev.phase {
			n.log.Debug("bootstrap proposal", "ballot", bs.prop.N, "phase", bs.phase, "quorum", bs.quorum)
		}
		n.gossip.setBoot(bs.meta())
		if out.progress {
			n.gossip.kick() // the next step may follow at once (a quorum of one)
		}
		if bs.chosen != nil && slices.ContainsFunc(bs.chosen, func(s bootServer) bool { return s[0] == n.cfg.NodeName }) {
			var servers []raft.Server
			for _, s := range bs.chosen {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s[0]), Address: raft.ServerAddress(s[1])})
			}
			n.log.Info("bootstrapping raft cluster with the agreed servers", "expect", n.cfg.BootstrapExpect, "servers", serverNames(servers))
			if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				n.log.Error("bootstrap failed", "err", err)
				continue
			}
			n.gossip.setHasState(true)
			return
		}
		var existing []string
		for _, m := range members {
			if m.State == MemberAlive && m.Meta.HasState && m.Name != n.cfg.NodeName && m.Meta.RaftAddr != "" {
				existing = append(existing, m.Meta.RaftAddr)
			}
		}
		if len(existing) > 0 {
			// A cluster exists: ask it to add us (raft replicates to us if we
			// are already in its configuration).
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := n.joinVia(ctx, existing)
			cancel()
			if err == nil {
				n.gossip.setHasState(true)
				return
			}
			n.log.Debug("join existing cluster failed; retrying", "err", err)
		}
	}
}

// bootVoteFile keeps this director's bootstrap vote (see bootstrapLoop).
const bootVoteFile = "bootstrap-vote.json"

// bootRetry bounds one bootstrap proposal: one not complete by then (a
// quorum member never answered) starts over under a higher ballot. It
// serves progress only; no decision depends on time.
const bootRetry = 5 * time.Second

// bootVote is an acceptor's durable state.
type bootVote struct {
	Promised ballot       `json:"promised"`
	Accepted ballot       `json:"accepted"`
	Value    []bootServer `json:"value,omitempty"`
}

func readBootVote(path string) (bootVote, error) {
	var v bootVote
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// writeBootVote replaces the vote file durably: a vote shown in gossip must
// survive a crash.
func writeBootVote(path string, v bootVote) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// bootstrapper is one director's part in bootstrap_expect: acceptor,
// proposer and learner (see bootstrapLoop). step does no I/O, so the
// protocol is tested against simulated gossip as well as real clusters.
type bootstrapper struct {
	self, raftAddr string
	expect         int
	vote           bootVote
	prop           ballot   // own proposal; N 0: none
	phase          int      // 1: collecting promises, 2: acceptances
	quorum         []string // the other directors that must answer prop
	started        time.Time
	chosen         []bootServer // the chosen list, once known
	ownChosen      bool         // chosen by this director's proposal: say so
	// fits reports whether a meta fits in gossip (nil: always).
	fits func(*bootMeta) bool
}

// bootOutcome is what a step asks of the caller.
type bootOutcome struct {
	persist  bool   // the vote changed: write it before publishing the meta
	progress bool   // the state moved: step again soon
	conflict string // a director with another bootstrap_expect
	tooBig   bool   // the proposed list would not fit in gossip meta
}

// meta is the gossip view of b.
func (b *bootstrapper) meta() *bootMeta {
	m := &bootMeta{Expect: b.expect, Promised: b.vote.Promised, Accepted: b.vote.Accepted, Value: b.vote.Value, Chosen: b.ownChosen}
	if b.prop.N > 0 {
		m.Prop, m.Phase = b.prop.N, b.phase
	}
	return m
}

// setVote changes the vote if the resulting meta fits in gossip.
func (b *bootstrapper) setVote(v bootVote) bool {
	old := b.vote
	b.vote = v
	if b.fits != nil && !b.fits(b.meta()) {
		b.vote = old
		return false
	}
	return true
}

// validValue: a list of expect servers, distinct names, with addresses.
func validValue(v []bootServer, expect int) bool {
	if len(v) != expect {
		return false
	}
	seen := map[string]bool{}
	for _, s := range v {
		if s[0] == "" || s[1] == "" || seen[s[0]] {
			return false
		}
		seen[s[0]] = true
	}
	return true
}

// step takes one look at the gossip view (members, as gossip.members
// returns it) and moves the acceptor, learner and proposer on.
func (b *bootstrapper) step(members []gossipMember, now time.Time) (out bootOutcome) {
	peers := map[string]gossipMember{}
	inCluster := false
	for _, m := range members {
		switch {
		case m.Name == b.self || m.State != MemberAlive:
		case m.Meta.HasState:
			inCluster = true
		case m.Meta.Boot == nil || m.Meta.RaftAddr == "":
			// Bootstraps by hand (no bootstrap_expect), or not started yet.
		case m.Meta.Boot.Expect != b.expect:
			out.conflict = m.Name
		default:
			peers[m.Name] = m
		}
	}
	if b.chosen == nil {
		for _, m := range peers {
			if bm := m.Meta.Boot; bm.Chosen && validValue(bm.Value, b.expect) {
				b.chosen = bm.Value
				out.progress = true
				break
			}
		}
	}
	if b.accept(peers) {
		out.persist, out.progress = true, true
	}
	if b.chosen != nil {
		return out // nothing left to propose
	}
	persist, progress, tooBig := b.propose(peers, inCluster || out.conflict != "", now)
	out.persist = out.persist || persist
	out.progress = out.progress || progress
	out.tooBig = tooBig
	return out
}

// accept answers the proposals in sight, highest ballot first (a lower one
// is then refused by the promise anyway).
func (b *bootstrapper) accept(peers map[string]gossipMember) bool {
	type proposal struct {
		bal   ballot
		phase int
		value []bootServer
	}
	var props []proposal
	for name, m := range peers {
		bm := m.Meta.Boot
		if bm.Prop == 0 {
			continue
		}
		p := proposal{bal: ballot{N: bm.Prop, By: name}, phase: bm.Phase}
		if p.phase == 2 {
			// The proposer accepted its own list first: that is the list.
			if bm.Accepted != p.bal || !validValue(bm.Value, b.expect) {
				continue
			}
			p.value = bm.Value
		}
		props = append(props, p)
	}
	slices.SortFunc(props, func(x, y proposal) int {
		switch {
		case y.bal.less(x.bal):
			return -1
		case x.bal.less(y.bal):
			return 1
		}
		return 0
	})
	changed := false
	for _, p := range props {
		switch p.phase {
		case 1:
			if b.vote.Promised.less(p.bal) {
				changed = b.setVote(bootVote{Promised: p.bal, Accepted: b.vote.Accepted, Value: b.vote.Value}) || changed
			}
		case 2:
			if !p.bal.less(b.vote.Promised) && b.vote.Accepted != p.bal {
				changed = b.setVote(bootVote{Promised: p.bal, Accepted: p.bal, Value: p.value}) || changed
			}
		}
	}
	return changed
}

// propose runs this director's own proposal. blocked: a cluster exists or
// the directors disagree on bootstrap_expect.
func (b *bootstrapper) propose(peers map[string]gossipMember, blocked bool, now time.Time) (persist, progress, tooBig bool) {
	lowest := true
	for name := range peers {
		if name < b.self {
			lowest = false
		}
	}
	if b.prop.N > 0 && (blocked || !lowest || b.vote.Promised != b.prop || now.Sub(b.started) > bootRetry || b.outvoted(peers)) {
		// Our own acceptor promised a higher ballot, a quorum member left
		// or did, or it took too long: drop it (a later one starts over).
		b.prop, b.phase, b.quorum = ballot{}, 0, nil
		progress = true
	}
	switch {
	case b.prop.N > 0 && b.phase == 1:
		for _, q := range b.quorum {
			if peers[q].Meta.Boot.Promised != b.prop {
				return false, progress, false
			}
		}
		// Every one promised: the list accepted under the highest ballot
		// any reports, else the first expect names of the quorum.
		best := b.vote
		for _, q := range b.quorum {
			if bm := peers[q].Meta.Boot; best.Accepted.less(bm.Accepted) && validValue(bm.Value, b.expect) {
				best = bootVote{Accepted: bm.Accepted, Value: bm.Value}
			}
		}
		value := best.Value
		if best.Accepted.N == 0 {
			names := append([]string{b.self}, b.quorum...)
			slices.Sort(names)
			value = nil
			for _, name := range names[:b.expect] {
				addr := b.raftAddr
				if name != b.self {
					addr = peers[name].Meta.RaftAddr
				}
				value = append(value, bootServer{name, addr})
			}
		}
		if !b.setVote(bootVote{Promised: b.prop, Accepted: b.prop, Value: value}) {
			b.prop, b.phase, b.quorum = ballot{}, 0, nil
			return false, true, true
		}
		b.phase = 2
		return true, true, false
	case b.prop.N > 0 && b.phase == 2:
		for _, q := range b.quorum {
			if peers[q].Meta.Boot.Accepted != b.prop {
				return false, progress, false
			}
		}
		b.chosen, b.ownChosen = b.vote.Value, true
		return false, true, false
	case b.prop.N == 0 && !blocked && lowest && 1+len(peers) >= b.expect:
		top := max(b.vote.Promised.N, b.vote.Accepted.N)
		for _, m := range peers {
			bm := m.Meta.Boot
			top = max(top, bm.Promised.N, bm.Accepted.N, bm.Prop)
		}
		prop := ballot{N: top + 1, By: b.self}
		if !b.setVote(bootVote{Promised: prop, Accepted: b.vote.Accepted, Value: b.vote.Value}) {
			return false, progress, true
		}
		b.prop, b.phase, b.started = prop, 1, now
		b.quorum = slices.Sorted(maps.Keys(peers))
		return true, true, false
	}
	return false, progress, false
}

// outvoted: a quorum member is gone from the view or promised a higher
// ballot, so the current proposal cannot complete.
func (b *bootstrapper) outvoted(peers map[string]gossipMember) bool {
	for _, q := range b.quorum {
		m, ok := peers[q]
		if !ok || b.prop.less(m.Meta.Boot.Promised) {
			return true
		}
	}
	return false
}

func serverNames(s []raft.Server) []string {
	var out []string
	for _, x := range s {
		out = append(out, string(x.ID))
	}
	return out
}

// Init bootstraps a one-director cluster with this node (hactl cluster
// init); others then join it.
func (n *Node) Init(ctx context.Context) error {
	if n.hasClusterState() {
		return ErrAlreadyInitialized
	}
	cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeName), Address: raft.ServerAddress(n.raftAddr)}}}
	if err := n.raft.BootstrapCluster(cfg).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return ErrAlreadyInitialized
		}
		return fmt.Errorf("bootstrap cluster: %w", err)
	}
	n.gossip.setHasState(true)
	for {
		if n.raft.State() == raft.Leader {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leadership after init: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Join joins the cluster through the director whose gossip address is
// addr: gossip first, then the cluster's leader adds this node as a voter.
func (n *Node) Join(ctx context.Context, addr string) error {
	if _, err := n.gossip.join([]string{addr}); err != nil {
		return err
	}
	for {
		var peers []string
		for _, m := range n.gossip.members() {
			if m.Name != n.cfg.NodeName && m.State == MemberAlive && m.Meta.HasState {
				peers = append(peers, m.Meta.RaftAddr)
			}
		}
		if len(peers) > 0 {
			err := n.joinVia(ctx, peers)
			if err == nil {
				n.gossip.setHasState(true)
				return nil
			}
			if ctx.Err() != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if len(peers) == 0 {
				return fmt.Errorf("join via %s: no director there belongs to a cluster (run `hactl cluster init` on one first): %w", addr, ctx.Err())
			}
			return fmt.Errorf("join via %s: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) joinVia(ctx context.Context, peers []string) error {
	var last error
	for _, p := range peers {
		_, err := n.callRPC(ctx, p, rpcRequest{Op: opJoin, ID: n.cfg.NodeName, Addr: n.raftAddr, Caller: n.callerOf(ctx)})
		if err == nil {
			return nil
		}
		last = err
	}
	return last
}

// Remove takes a director out of the Raft configuration (hactl cluster
// remove).
func (n *Node) Remove(ctx context.Context, node string) error {
	_, err := n.leaderDo(ctx, rpcRequest{Op: opRemove, ID: node, Caller: n.callerOf(ctx)})
	return err
}

// Push validates text on the leader and commits it as the next version.
// pushID makes retries idempotent (empty: one is generated here, so the
// retry loop inside Push still commits at most once).
func (n *Node) Push(ctx context.Context, source string, text []byte, pushedBy, pushID string) (ApplyResult, error) {
	if pushID == "" {
		pushID = NewPushID()
	}
	sum := sha256.Sum256(text)
	c := Command{Type: CmdPushConfig, Push: &PushConfig{PushID: pushID, Source: source, Text: string(text), SHA256: hex.EncodeToString(sum[:]), PushedBy: pushedBy,
		At: time.Now().UTC(), Caller: n.callerOf(ctx)}}
	return n.propose(ctx, c)
}

// Rollback commits the text of an older version as a new version.
func (n *Node) Rollback(ctx context.Context, version uint64, pushedBy, pushID string) (ApplyResult, error) {
	if pushID == "" {
		pushID = NewPushID()
	}
	return n.propose(ctx, Command{Type: CmdRollback, Rollback: &Rollback{PushID: pushID, Version: version, PushedBy: pushedBy, At: time.Now().UTC(), Caller: n.callerOf(ctx)}})
}

// Propose commits any command through the leader (used for VIP ownership
// commands; configuration and reports have their own methods). A command
// the state machine refuses returns its ApplyResult and an error.
func (n *Node) Propose(ctx context.Context, c Command) (ApplyResult, error) {
	return n.propose(ctx, c)
}

func (n *Node) propose(ctx context.Context, c Command) (ApplyResult, error) {
	data, err := EncodeCommand(c)
	if err != nil {
		return ApplyResult{}, err
	}
	res, err := n.leaderDo(ctx, rpcRequest{Op: opApply, Cmd: data, Caller: n.callerOf(ctx)})
	if err != nil {
		return ApplyResult{}, err
	}
	return res, res.Err()
}

// NewPushID returns a random id for a push.
func NewPushID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Subscribe returns a channel that always holds the latest committed
// configuration version (older undelivered ones are replaced: the director
// only ever needs the newest), and a cancel func. The current version, if
// any, is delivered at once. The channel is closed when the node closes.
func (n *Node) Subscribe() (<-chan ConfigVersion, func()) {
	ch := make(chan ConfigVersion, 1)
	n.subMu.Lock()
	if n.subs == nil { // closed
		n.subMu.Unlock()
		close(ch)
		return ch, func() {}
	}
	n.subs[ch] = struct{}{}
	n.subMu.Unlock()
	if cv, ok := n.fsm.Current(); ok {
		deliver(ch, cv)
	}
	return ch, func() {
		n.subMu.Lock()
		delete(n.subs, ch)
		n.subMu.Unlock()
	}
}

func (n *Node) notify(cv ConfigVersion) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	for ch := range n.subs {
		deliver(ch, cv)
	}
}

// deliver replaces whatever is pending in ch with cv, unless the pending
// one is newer.
func deliver(ch chan ConfigVersion, cv ConfigVersion) {
	for {
		select {
		case ch <- cv:
			return
		default:
		}
		select {
		case old := <-ch:
			if old.Version > cv.Version {
				cv = old
			}
		default:
		}
	}
}

// ReportApplied records that this director applied version (err nil) or
// failed to (it keeps running its last good version). The report is
// replicated in the background, retried until it commits.
func (n *Node) ReportApplied(version uint64, applyErr error) {
	a := &Applied{Node: n.cfg.NodeName, Version: version, At: time.Now().UTC()}
	if applyErr != nil {
		a.Error = applyErr.Error()
	}
	n.repMu.Lock()
	n.applied = a
	n.repMu.Unlock()
	n.kickReport()
}

// ReportHealth records this director's own checker results (transitions or
// full state: only the latest value per real server counts). They are
// batched into the log in the background.
func (n *Node) ReportHealth(entries []HealthEntry) {
	n.repMu.Lock()
	for _, e := range entries {
		k := healthKey{e.VS, e.RS}
		n.local[k] = e.Up
		n.dirty[k] = HealthEntry{VS: e.VS, RS: e.RS, Up: e.Up}
	}
	n.repMu.Unlock()
	n.kickReport()
}

// ForgetHealth drops this director's view of a real server that is no
// longer configured, locally and (in the background) in the replicated
// table.
func (n *Node) ForgetHealth(vs, rs string) {
	n.repMu.Lock()
	delete(n.local, healthKey{vs, rs})
	// Replicate the removal so the table does not keep stale views.
	n.dirty[healthKey{vs, rs}] = HealthEntry{VS: vs, RS: rs, Gone: true}
	n.repMu.Unlock()
}

func (n *Node) kickReport() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// maxHealthBatch bounds one health log entry.
const maxHealthBatch = 4096

func (n *Node) reportLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.ReportInterval)
	defer tick.Stop()
	pending := false
	for {
		select {
		case <-n.closed:
			return
		case <-n.kick:
			pending = true
			n.repMu.Lock()
			urgent := n.applied != nil
			n.repMu.Unlock()
			if !urgent {
				// Health: gather more until the tick; batching is the point.
				continue
			}
			// An applied report is what `hactl config push --wait` waits
			// for: send it (and whatever health is pending) now.
		case <-tick.C:
			if !pending {
				continue
			}
		}
		pending = n.flushReports()
	}
}

// flushReports proposes the pending reports; it returns true while
// something is left to send.
func (n *Node) flushReports() bool {
	n.repMu.Lock()
	applied := n.applied
	batch := make([]HealthEntry, 0, min(len(n.dirty), maxHealthBatch))
	for _, e := range n.dirty {
		if len(batch) == maxHealthBatch {
			break
		}
		batch = append(batch, e)
	}
	n.repMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ok := true
	if applied != nil {
		if _, err := n.propose(ctx, Command{Type: CmdApplied, Applied: applied}); err != nil {
			n.log.Debug("applied report not committed yet", "version", applied.Version, "err", err)
			ok = false
		} else {
			n.repMu.Lock()
			if n.applied == applied {
				n.applied = nil
			}
			n.repMu.Unlock()
		}
	}
	if len(batch) > 0 {
		if _, err := n.propose(ctx, Command{Type: CmdHealth, Health: &Health{Node: n.cfg.NodeName, At: time.Now().UTC(), Entries: batch}}); err != nil {
			n.log.Debug("health batch not committed yet", "entries", len(batch), "err", err)
			ok = false
		} else {
			n.repMu.Lock()
			for _, e := range batch {
				k := healthKey{e.VS, e.RS}
				if v, still := n.dirty[k]; still && v == e {
					delete(n.dirty, k)
				}
			}
			n.repMu.Unlock()
		}
	}
	n.repMu.Lock()
	if ok {
		n.lastOK = time.Now()
	}
	left := n.applied != nil || len(n.dirty) > 0
	n.repMu.Unlock()
	return left
}

// PendingReports returns the number of health views and applied reports
// not yet committed.
func (n *Node) PendingReports() int {
	n.repMu.Lock()
	defer n.repMu.Unlock()
	c := len(n.dirty)
	if n.applied != nil {
		c++
	}
	return c
}

// Leader returns the current leader's node name ("" when none is known).
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// State returns the Raft role: Leader, Follower, Candidate or Shutdown.
func (n *Node) State() string { return n.raft.State().String() }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Voters returns the names of the voters in the Raft configuration.
func (n *Node) Voters() []string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, string(s.ID))
		}
	}
	slices.Sort(out)
	return out
}

// Snapshot forces a Raft snapshot now.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Barrier waits until every committed entry is applied to this node's
// state machine (leader only).
func (n *Node) Barrier(timeout time.Duration) error {
	return n.raft.Barrier(timeout).Error()
}

// AppliedIndex is the last log index applied to this node's state machine.
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

// cutOff reports whether this director cannot currently reach a quorum,
// with the reason.
func (n *Node) cutOff() (bool, string) {
	switch n.raft.State() {
	case raft.Leader:
		return false, ""
	case raft.Shutdown:
		return true, "raft is shut down"
	}
	if n.Leader() == "" {
		return true, "no raft leader reachable"
	}
	limit := 2 * (n.cfg.Timeouts.Heartbeat + n.cfg.Timeouts.Election)
	if lc := n.raft.LastContact(); time.Since(lc) > limit {
		return true, fmt.Sprintf("no contact with the leader for %s", time.Since(lc).Round(time.Millisecond))
	}
	return false, ""
}

// peersFile keeps the gossip addresses of the members last seen, so a
// director restarted without join addresses (joined by hand) finds its
// peers again.
const peersFile = "gossip-peers.json"

// joinAddrs is the configured join list plus the peers remembered on disk.
func (n *Node) joinAddrs() []string {
	addrs := slices.Clone(n.cfg.Join)
	if b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, peersFile)); err == nil {
		var saved []string
		if json.Unmarshal(b, &saved) == nil {
			for _, a := range saved {
				if a != n.gossip.addr() && !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
		}
	}
	return addrs
}

// joinMissing joins, in the background, every join address when this
// director is alone, else those never joined nor seen as a member's. The
// second case matters to directors started together: each joins the peers
// it can reach, and separate pools form (a's peer was not up yet, b's
// was), which would never merge if only a director left alone retried.
func (n *Node) joinMissing() {
	if n.joining.Load() {
		return
	}
	join := n.joinAddrs()
	if n.gossip.ml.NumMembers() > 1 {
		members := n.gossip.members()
		n.joinMu.Lock()
		join = slices.DeleteFunc(join, func(a string) bool {
			// A name rather than an address never matches a member: it
			// counts once joined.
			return n.joined[a] || slices.ContainsFunc(members, func(m gossipMember) bool { return m.Addr == a })
		})
		n.joinMu.Unlock()
	}
	if len(join) == 0 {
		return
	}
	n.joining.Store(true)
	// The callers run under n.wg, so this Add cannot race Close's Wait.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.joining.Store(false)
		for _, a := range join {
			if _, err := n.gossip.join([]string{a}); err != nil {
				n.log.Debug("gossip join retry failed", "err", err)
				continue
			}
			n.joinMu.Lock()
			if n.joined == nil {
				n.joined = map[string]bool{}
			}
			n.joined[a] = true
			n.joinMu.Unlock()
		}
	}()
}

// gossipLoop rejoins gossip when this director finds itself alone (it was
// restarted, or the network healed after everyone declared it dead) or a
// join address was never seen (joinMissing), and remembers the peers it
// sees.
func (n *Node) gossipLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var saved []string
	for {
		select {
		case <-n.closed:
			return
		case <-tick.C:
		}
		n.joinMissing()
		if n.gossip.ml.NumMembers() <= 1 {
			continue
		}
		var peers []string
		for _, m := range n.gossip.members() {
			if m.State == MemberAlive && m.Name != n.cfg.NodeName {
				peers = append(peers, m.Addr)
			}
		}
		slices.Sort(peers)
		if len(peers) > 0 && !slices.Equal(peers, saved) {
			b, _ := json.Marshal(peers)
			if err := os.WriteFile(filepath.Join(n.cfg.DataDir, peersFile), b, 0o600); err != nil {
				n.log.Warn("save gossip peers", "err", err)
			} else {
				saved = peers
			}
		}
	}
}

type watch struct {
	ch chan Change
}

// Watch returns a channel that receives what changed in the replicated
// state (config, applied reports, health views, VIP owners), coalesced:
// a slow reader gets one value with every bit that changed meanwhile. The
// director recomputes effective health on ChangeHealth; it should also
// poll HealthState now and then, since losing the quorum changes no state.
func (n *Node) Watch() (<-chan Change, func()) {
	w := &watch{ch: make(chan Change, 1)}
	n.subMu.Lock()
	if n.subs == nil { // closed
		n.subMu.Unlock()
		close(w.ch)
		return w.ch, func() {}
	}
	if n.watches == nil {
		n.watches = map[*watch]struct{}{}
	}
	n.watches[w] = struct{}{}
	n.subMu.Unlock()
	return w.ch, func() {
		n.subMu.Lock()
		delete(n.watches, w)
		n.subMu.Unlock()
	}
}

func (n *Node) notifyChange(c Change) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	// Only this function sends, under subMu: after the drain the send
	// cannot block.
	for w := range n.watches {
		v := c
		select {
		case old := <-w.ch:
			v |= old
		default:
		}
		w.ch <- v
	}
}

// noPipeline turns off raft's pipelined replication. In hashicorp/raft
// 1.7.3 a pipeline whose response decoder has stopped (a follower answered
// with a newer term) fills its in-flight queue and blocks the replication
// goroutine for good, so raft.Shutdown never returns and hakeepd hangs at
// stop (seen in director tests). Three directors on a LAN do not need
// pipelining: each AppendEntries then waits for its answer.
type noPipeline struct{ *raft.NetworkTransport }

func (noPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}
