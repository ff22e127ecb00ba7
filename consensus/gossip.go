package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member states as shown by `hactl cluster members`.
const (
	MemberAlive   = "alive"
	MemberSuspect = "suspect"
	MemberDead    = "dead"
	MemberLeft    = "left"
	MemberUnknown = "unknown" // in the Raft configuration, never seen by gossip
)

// nodeMeta is what a director tells the others through gossip.
type nodeMeta struct {
	RaftAddr string `json:"raft"`
	// HasState: this director belongs to a bootstrapped Raft cluster.
	HasState bool `json:"state"`
	// Boot is this director's part in bootstrap_expect (see bootstrapLoop);
	// nil without bootstrap_expect and once it belongs to a cluster.
	Boot *bootMeta `json:"boot,omitempty"`
}

// ballot numbers a bootstrap proposal: by round, then by proposer name, so
// two directors never propose under the same ballot.
type ballot struct {
	N  uint64 `json:"n,omitempty"`
	By string `json:"by,omitempty"`
}

func (b ballot) less(o ballot) bool {
	return b.N < o.N || b.N == o.N && b.By < o.By
}

// bootServer is one server of a bootstrap configuration: name, Raft address.
type bootServer [2]string

// bootMeta is a director's bootstrap_expect state in gossip: its durable
// vote (acceptor) and its own proposal, if any (see bootstrapLoop). Short
// JSON names: memberlist caps node meta at 512 bytes.
type bootMeta struct {
	Expect int `json:"e"`
	// Promised: no proposal below this ballot gets this director's vote.
	Promised ballot `json:"p"`
	// Accepted is the ballot whose server list (Value) it last accepted.
	Accepted ballot       `json:"a"`
	Value    []bootServer `json:"v,omitempty"`
	// Prop is the round of this director's own proposal (0: none); Phase 1
	// asks for promises, phase 2 for acceptance of Value (then Accepted is
	// {Prop, this director}).
	Prop  uint64 `json:"r,omitempty"`
	Phase int    `json:"ph,omitempty"`
	// Chosen: every director of the proposal's quorum accepted Value.
	Chosen bool `json:"c,omitempty"`
}

// gossipMember is the gossip view of one director.
type gossipMember struct {
	Name  string
	Addr  string // gossip host:port
	State string
	Meta  nodeMeta
}

// gossip runs memberlist for discovery and the live view.
type gossip struct {
	ml  *memberlist.Memberlist
	log *slog.Logger
	// keyring is nil when gossip runs in plain text (insecure_open_cluster).
	keyring *memberlist.Keyring

	mu    sync.Mutex
	meta  nodeMeta
	known map[string]gossipMember // every member ever seen, last state
	// lastAck is when a probe of each member was last answered; memberlist
	// does not expose its suspect state, so a live member unanswered for
	// longer than suspectAfter is shown as suspect.
	lastAck       map[string]time.Time
	probeInterval time.Duration
	down          bool
	self          string // this node's name
	selfAddr      string // this node's gossip host:port
	// changed is signalled when a member joins, leaves or updates its meta
	// (bootstrapLoop reacts at once instead of at its next tick).
	changed chan struct{}
}

func newGossip(cfg Config, raftAddr string, log *slog.Logger) (*gossip, error) {
	g := &gossip{log: log, meta: nodeMeta{RaftAddr: raftAddr}, known: map[string]gossipMember{}, lastAck: map[string]time.Time{},
		changed: make(chan struct{}, 1)}
	mc := memberlist.DefaultLANConfig()
	if cfg.GossipTuning != nil {
		cfg.GossipTuning(mc)
	}
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr.String()
	mc.BindPort = cfg.GossipPort
	if cfg.AdvertiseAddr.IsValid() {
		mc.AdvertiseAddr = cfg.AdvertiseAddr.String()
	}
	mc.AdvertisePort = cfg.GossipPort
	if len(cfg.GossipKeys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.GossipKeys[1:], cfg.GossipKeys[0])
		if err != nil {
			return nil, fmt.Errorf("start gossip: install gossip keys: %w", err)
		}
		mc.Keyring = kr
		g.keyring = kr
		// Refuse plain-text gossip both ways.
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = g
	mc.Events = g
	mc.Ping = g
	g.probeInterval = mc.ProbeInterval
	mc.LogOutput = &logWriter{log: log, subsystem: "gossip"}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s:%d: %w", mc.BindAddr, mc.BindPort, err)
	}
	g.ml = ml
	g.self = mc.Name
	n := ml.LocalNode()
	g.selfAddr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	return g, nil
}

// keyCount is the number of installed gossip keys.
func (g *gossip) keyCount() int {
	if g.keyring == nil {
		return 0
	}
	return len(g.keyring.GetKeys())
}

// setKeys makes keys the keyring: keys[0] encrypts from now on, every one
// of them decrypts, and keys not listed are dropped. Rotating without
// downtime is three reloads on every director: add the new key second,
// then put it first, then drop the old one.
func (g *gossip) setKeys(keys [][]byte) error {
	if g.keyring == nil {
		if len(keys) == 0 {
			return nil
		}
		return errors.New("gossip runs unencrypted: encrypting it needs a restart of hakeepd")
	}
	if len(keys) == 0 {
		return errors.New("gossip_key removed: gossip stays encrypted with the keys it has (running unencrypted needs a restart with insecure_open_cluster)")
	}
	for _, k := range keys {
		if err := g.keyring.AddKey(k); err != nil {
			return fmt.Errorf("install gossip key: %w", err)
		}
	}
	if err := g.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("use the first gossip key: %w", err)
	}
	for _, old := range g.keyring.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := g.keyring.RemoveKey(old); err != nil {
				return fmt.Errorf("drop an old gossip key: %w", err)
			}
		}
	}
	return nil
}

// addr returns the gossip address this node advertises.
func (g *gossip) addr() string { return g.selfAddr }

func (g *gossip) setHasState(v bool) {
	g.mu.Lock()
	changed := g.meta.HasState != v || v && g.meta.Boot != nil
	g.meta.HasState = v
	if v {
		// A member of a cluster takes no further part in bootstrapping.
		g.meta.Boot = nil
	}
	g.mu.Unlock()
	if changed {
		if err := g.ml.UpdateNode(time.Second); err != nil {
			g.log.Warn("gossip meta update failed", "err", err)
		}
	}
}

// setBoot publishes this director's bootstrap state (see bootstrapLoop).
func (g *gossip) setBoot(b *bootMeta) {
	g.mu.Lock()
	old, _ := json.Marshal(g.meta.Boot)
	now, _ := json.Marshal(b)
	changed := !bytes.Equal(old, now) && !g.meta.HasState
	if changed {
		g.meta.Boot = b
	}
	g.mu.Unlock()
	if !changed {
		return
	}
	// The new meta is queued for broadcast at once; waiting for it to be
	// sent would only slow the caller down.
	if err := g.ml.UpdateNode(10 * time.Millisecond); err != nil {
		g.log.Debug("gossip meta update not sent yet", "err", err)
	}
}

// metaFits reports whether this director's meta with boot b stays within
// memberlist's limit.
func (g *gossip) metaFits(b *bootMeta) bool {
	g.mu.Lock()
	m := g.meta
	g.mu.Unlock()
	m.Boot = b
	raw, err := json.Marshal(m)
	return err == nil && len(raw) <= memberlist.MetaMaxSize
}

func (g *gossip) kick() {
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

func (g *gossip) join(addrs []string) (int, error) {
	n, err := g.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("gossip join %v: %w", addrs, err)
	}
	return n, nil
}

// members returns the gossip view, sorted by name: live members from
// memberlist (alive, suspect) plus the last state of those it dropped.
func (g *gossip) members() []gossipMember {
	// Built only from what the event delegate copied: the *Node values
	// memberlist.Members returns are updated under its lock, so reading
	// them here would race.
	g.mu.Lock()
	defer g.mu.Unlock()
	alive := 0
	for _, m := range g.known {
		if m.State == MemberAlive {
			alive++
		}
	}
	// Every member is probed about once per `alive` probe intervals.
	suspectAfter := time.Duration(alive+3) * g.probeInterval
	list := make([]gossipMember, 0, len(g.known))
	for name, m := range g.known {
		if m.State == MemberAlive && name != g.self {
			if last, ok := g.lastAck[name]; ok && time.Since(last) > suspectAfter {
				m.State = MemberSuspect
			}
		}
		list = append(list, m)
	}
	slices.SortFunc(list, func(a, b gossipMember) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// crash stops gossip without a graceful leave (fault injection in tests).
func (g *gossip) crash() {
	g.mu.Lock()
	g.down = true
	g.mu.Unlock()
	_ = g.ml.Shutdown()
}

func (g *gossip) leave(timeout time.Duration) {
	g.mu.Lock()
	down := g.down
	g.down = true
	g.mu.Unlock()
	if down {
		return
	}
	if err := g.ml.Leave(timeout); err != nil {
		g.log.Debug("gossip leave", "err", err)
	}
	if err := g.ml.Shutdown(); err != nil {
		g.log.Debug("gossip shutdown", "err", err)
	}
}

// record keeps the last known state of a member; memberlist's Node.State
// is not kept current, so the caller says what it is.
func (g *gossip) record(n *memberlist.Node, state string) {
	m := gossipMember{Name: n.Name, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), State: state}
	_ = json.Unmarshal(n.Meta, &m.Meta)
	g.mu.Lock()
	g.known[n.Name] = m
	g.mu.Unlock()
}

// memberlist.Delegate.

func (g *gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, _ := json.Marshal(g.meta)
	if len(b) > limit {
		return nil
	}
	return b
}
func (g *gossip) NotifyMsg([]byte)                           {}
func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (g *gossip) LocalState(join bool) []byte                { return nil }
func (g *gossip) MergeRemoteState(buf []byte, join bool)     {}

// memberlist.EventDelegate.

func (g *gossip) NotifyJoin(n *memberlist.Node) {
	g.record(n, MemberAlive)
	g.mu.Lock()
	g.lastAck[n.Name] = time.Now()
	g.mu.Unlock()
	g.log.Info("director joined gossip", "peer", n.Name, "addr", n.Address())
	g.kick()
}
func (g *gossip) NotifyLeave(n *memberlist.Node) {
	// memberlist calls this for a failed member and for one that left
	// gracefully alike; both are gone, shown as dead.
	g.record(n, MemberDead)
	g.log.Info("director gone from gossip", "peer", n.Name)
	g.kick()
}
func (g *gossip) NotifyUpdate(n *memberlist.Node) {
	g.record(n, MemberAlive)
	g.kick()
}

// memberlist.PingDelegate.

func (g *gossip) AckPayload() []byte { return nil }
func (g *gossip) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	g.mu.Lock()
	g.lastAck[other.Name] = time.Now()
	g.mu.Unlock()
}

// logWriter turns hashicorp "[LEVEL] message" log lines into slog records.
type logWriter struct {
	log       *slog.Logger
	subsystem string
}

func (w *logWriter) Write(p []byte) (int, error) {
	s := string(p)
	level := slog.LevelInfo
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[TRACE]", slog.LevelDebug - 4}, {"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if i := strings.Index(s, l.tag); i >= 0 {
			level = l.level
			s = s[i+len(l.tag):]
			break
		}
	}
	for len(s) > 0 && (s[0] == ' ' || s[0] == ':') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	w.log.Log(context.Background(), level, s, "subsystem", w.subsystem)
	return len(p), nil
}
