package consensus

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotFormat is written into every snapshot; Restore refuses others.
const snapshotFormat = 1

// DefaultHistoryLimit bounds the number of configuration versions kept.
const DefaultHistoryLimit = 50

// pushIDLimit bounds the deduplication memory of push ids.
const pushIDLimit = 1024

// ConfigVersion is one committed cluster configuration.
type ConfigVersion struct {
	Version  uint64    `json:"version"`
	Text     string    `json:"text"`
	SHA256   string    `json:"sha256"`
	Source   string    `json:"source,omitempty"`
	PushedBy string    `json:"pushed_by,omitempty"`
	PushedAt time.Time `json:"pushed_at"`
	PushID   string    `json:"push_id,omitempty"`
	// Caller is who asked, as authenticated by the director that took the
	// request (PushedBy is the client's own word).
	Caller string `json:"caller,omitempty"`
	// RollbackOf is the version whose text this one re-committed (0: none).
	RollbackOf uint64 `json:"rollback_of,omitempty"`
	// Index is the Raft log index that committed it.
	Index uint64 `json:"index"`
}

// AppliedRecord is a director's last report about applying a version.
type AppliedRecord struct {
	Node    string    `json:"node"`
	Version uint64    `json:"version"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

// View is one director's view of one real server.
type View struct {
	Up bool      `json:"up"`
	At time.Time `json:"at"`
}

// Owner is the ownership record of one fenced instance (fencing.md),
// keyed by the instance's identity (the fence's "VRID/interface/family").
type Owner struct {
	Key   string `json:"key,omitempty"`
	VRID  int    `json:"vrid"`
	Node  string `json:"node"` // empty when released
	Epoch uint64 `json:"epoch"`
	// RenewedAt is the sender's time of the last committed renewal (or the
	// claim), for display: no director counts a lease from it.
	RenewedAt time.Time `json:"renewed_at"`
	// RenewIndex is the log index of that renewal or claim.
	RenewIndex uint64 `json:"renew_index"`
	// Priority and Hold are the owner's as it claimed (Hold: how long its
	// kernel may keep the VIPs after it sent its last renewal).
	Priority int           `json:"priority,omitempty"`
	Hold     time.Duration `json:"hold,omitempty"`
	// Prev is the owner before this claim, with its Hold; PrevReleased
	// says it has released (its VIPs are gone).
	Prev         string        `json:"prev,omitempty"`
	PrevHold     time.Duration `json:"prev_hold,omitempty"`
	PrevReleased bool          `json:"prev_released,omitempty"`
}

// State is everything the replicated state machine holds. It is also the
// snapshot body (with Format set).
type State struct {
	Format  int             `json:"format"`
	Current *ConfigVersion  `json:"current,omitempty"`
	History []ConfigVersion `json:"history,omitempty"` // oldest first, Current last
	// LastVersion is the highest version number ever committed.
	LastVersion uint64 `json:"last_version"`
	// PushIDs maps recent push ids to the version they committed, in
	// PushOrder (oldest first) for bounding.
	PushIDs   map[string]uint64        `json:"push_ids,omitempty"`
	PushOrder []string                 `json:"push_order,omitempty"`
	Applied   map[string]AppliedRecord `json:"applied,omitempty"`
	// Health: vs -> rs -> node -> view.
	Health map[string]map[string]map[string]View `json:"health,omitempty"`
	Owners map[string]Owner                      `json:"owners,omitempty"`
	// Membership is the audit trail of directors joined and removed,
	// oldest first, bounded by auditLimit.
	Membership []Membership `json:"membership,omitempty"`
}

// auditLimit bounds the kept membership records.
const auditLimit = 200

// ApplyResult is what the state machine returns for one command.
type ApplyResult struct {
	// Version is the configuration version committed (push, rollback) or the
	// one the push id had already committed (Duplicate).
	Version   uint64 `json:"version,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// Epoch is the VRID epoch after a claim, renewal or release.
	Epoch uint64 `json:"epoch,omitempty"`
	// Accepted counts accepted VRIDs of a renewal.
	Accepted int `json:"accepted,omitempty"`
	// Refused lists the keys a renewal refused.
	Refused []string `json:"refused,omitempty"`
	// Error is set when the command was refused (the log entry is still
	// committed; it changed nothing).
	Error string `json:"error,omitempty"`
}

// Err returns the refusal as an error, or nil.
func (r ApplyResult) Err() error {
	if r.Error == "" {
		return nil
	}
	return errors.New(r.Error)
}

// FSM is the replicated state machine. It is safe for concurrent readers
// while raft applies entries.
type FSM struct {
	mu           sync.RWMutex
	st           State
	historyLimit int
	// onConfig is called (outside the lock) after a new version is applied.
	onConfig func(ConfigVersion)
	// onChange is called (outside the lock) with what an entry changed.
	onChange func(Change)
	// seen is node-local, never replicated: when this node applied each
	// owner's claim or last accepted renewal (owners.go).
	seen map[string]ownerSeen
}

// Change says which parts of the state an applied entry changed.
type Change uint8

// Change bits.
const (
	ChangeConfig  Change = 1 << iota // a new configuration version
	ChangeApplied                    // a director's applied report
	ChangeHealth                     // a director's health views
	ChangeOwners                     // VIP ownership
	ChangeAll     = ChangeConfig | ChangeApplied | ChangeHealth | ChangeOwners
)

// NewFSM returns an empty state machine keeping historyLimit versions
// (DefaultHistoryLimit when <= 0).
func NewFSM(historyLimit int) *FSM {
	if historyLimit <= 0 {
		historyLimit = DefaultHistoryLimit
	}
	f := &FSM{historyLimit: historyLimit}
	f.st = emptyState()
	return f
}

func emptyState() State {
	return State{
		Format:  snapshotFormat,
		PushIDs: map[string]uint64{},
		Applied: map[string]AppliedRecord{},
		Health:  map[string]map[string]map[string]View{},
		Owners:  map[string]Owner{},
	}
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return ApplyResult{}
	}
	c, err := DecodeCommand(l.Data)
	if err != nil {
		// A bad entry must not stop the cluster: it is refused, visibly.
		return ApplyResult{Error: err.Error()}
	}
	res, changed := f.apply(c, l.Index)
	if changed != nil && f.onConfig != nil {
		f.onConfig(*changed)
	}
	if ch := changeOf(c.Type); f.onChange != nil && res.Error == "" && ch != 0 {
		f.onChange(ch)
	}
	return res
}

func changeOf(t CommandType) Change {
	switch t {
	case CmdPushConfig, CmdRollback:
		return ChangeConfig
	case CmdApplied:
		return ChangeApplied
	case CmdHealth:
		return ChangeHealth
	case CmdMembership:
		return 0 // the audit trail: nothing a director acts on
	}
	return ChangeOwners
}

// apply mutates the state; it returns the new configuration version when
// one was committed.
func (f *FSM) apply(c Command, index uint64) (ApplyResult, *ConfigVersion) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &f.st
	switch c.Type {
	case CmdPushConfig:
		p := c.Push
		if v, ok := st.PushIDs[p.PushID]; ok {
			return ApplyResult{Version: v, Duplicate: true}, nil
		}
		sum := sha256.Sum256([]byte(p.Text))
		if got := hex.EncodeToString(sum[:]); p.SHA256 != "" && p.SHA256 != got {
			return ApplyResult{Error: fmt.Sprintf("sha256 mismatch: pushed %s, text has %s", p.SHA256, got)}, nil
		}
		cv := f.commit(ConfigVersion{Text: p.Text, SHA256: hex.EncodeToString(sum[:]), Source: p.Source, PushedBy: p.PushedBy, Caller: p.Caller, PushedAt: p.At, PushID: p.PushID, Index: index})
		return ApplyResult{Version: cv.Version}, &cv
	case CmdRollback:
		r := c.Rollback
		if v, ok := st.PushIDs[r.PushID]; ok {
			return ApplyResult{Version: v, Duplicate: true}, nil
		}
		var old *ConfigVersion
		for i := range st.History {
			if st.History[i].Version == r.Version {
				old = &st.History[i]
			}
		}
		if old == nil {
			return ApplyResult{Error: fmt.Sprintf("version %d is not in the history (kept: %s)", r.Version, versionsString(st.History))}, nil
		}
		cv := f.commit(ConfigVersion{Text: old.Text, SHA256: old.SHA256, Source: old.Source, PushedBy: r.PushedBy, Caller: r.Caller, PushedAt: r.At, PushID: r.PushID, RollbackOf: old.Version, Index: index})
		return ApplyResult{Version: cv.Version}, &cv
	case CmdApplied:
		a := c.Applied
		st.Applied[a.Node] = AppliedRecord{Node: a.Node, Version: a.Version, Error: a.Error, At: a.At}
		return ApplyResult{Version: a.Version}, nil
	case CmdHealth:
		h := c.Health
		for _, e := range h.Entries {
			if e.Gone {
				delete(st.Health[e.VS][e.RS], h.Node)
				if len(st.Health[e.VS][e.RS]) == 0 {
					delete(st.Health[e.VS], e.RS)
				}
				if len(st.Health[e.VS]) == 0 {
					delete(st.Health, e.VS)
				}
				continue
			}
			rss := st.Health[e.VS]
			if rss == nil {
				rss = map[string]map[string]View{}
				st.Health[e.VS] = rss
			}
			nodes := rss[e.RS]
			if nodes == nil {
				nodes = map[string]View{}
				rss[e.RS] = nodes
			}
			nodes[h.Node] = View{Up: e.Up, At: h.At}
		}
		return ApplyResult{Accepted: len(h.Entries)}, nil
	case CmdClaim:
		cl := c.Claim
		key := cl.key()
		cur := st.Owners[key]
		if cur.Node == cl.Node && cur.Epoch == cl.PrevEpoch+1 {
			// The same claim again (a retry after a lost reply): it
			// already holds; nothing changes.
			return ApplyResult{Epoch: cur.Epoch, Duplicate: true}, nil
		}
		if cur.Epoch != cl.PrevEpoch {
			return ApplyResult{Epoch: cur.Epoch, Error: fmt.Sprintf("claim of %s by %s: stale epoch %d, current %d (owner %q)", key, cl.Node, cl.PrevEpoch, cur.Epoch, cur.Node)}, nil
		}
		o := Owner{Key: key, VRID: cl.VRID, Node: cl.Node, Epoch: cur.Epoch + 1, RenewedAt: cl.At, RenewIndex: index,
			Priority: cl.Priority, Hold: cl.Hold, Prev: cur.Node, PrevHold: cur.Hold, PrevReleased: cur.Node == ""}
		st.Owners[key] = o
		f.sawClaim(key, cur.Node)
		return ApplyResult{Epoch: o.Epoch}, nil
	case CmdRenew:
		r := c.Renew
		n := 0
		var refused []string
		for _, key := range slices.Sorted(maps.Keys(r.leases())) {
			cur, ok := st.Owners[key]
			if !ok || cur.Node != r.Node || cur.Epoch != r.leases()[key] {
				refused = append(refused, key)
				continue
			}
			cur.RenewedAt, cur.RenewIndex = r.SentAt, index
			st.Owners[key] = cur
			f.sawRenewal(key)
			n++
		}
		res := ApplyResult{Accepted: n, Refused: refused}
		if len(refused) > 0 {
			res.Error = fmt.Sprintf("renewal by %s refused for %v (stale epoch or not owner)", r.Node, refused)
		}
		return res, nil
	case CmdMembership:
		st.Membership = append(st.Membership, *c.Membership)
		if over := len(st.Membership) - auditLimit; over > 0 {
			st.Membership = slices.Delete(st.Membership, 0, over)
		}
		return ApplyResult{}, nil
	case CmdRelease:
		r := c.Release
		key := r.key()
		cur := st.Owners[key]
		if cur.Prev == r.Node && cur.Epoch == r.Epoch+1 && r.Node != "" {
			// The previous owner confirms its VIPs are gone after a newer
			// claim: the new owner's fast path (it need not wait out the
			// lease).
			cur.PrevReleased = true
			st.Owners[key] = cur
			return ApplyResult{Epoch: cur.Epoch}, nil
		}
		if cur.Node != r.Node || cur.Epoch != r.Epoch {
			return ApplyResult{Epoch: cur.Epoch, Error: fmt.Sprintf("release of %s by %s at epoch %d refused: owner %q epoch %d", key, r.Node, r.Epoch, cur.Node, cur.Epoch)}, nil
		}
		// The epoch stays: a later claim must name it, so a release cannot
		// race a newer claim.
		cur.Node, cur.Hold, cur.RenewIndex = "", 0, index
		st.Owners[key] = cur
		return ApplyResult{Epoch: cur.Epoch}, nil
	}
	return ApplyResult{Error: fmt.Sprintf("unknown command type %q", c.Type)}, nil
}

// commit appends a new version; the caller holds the lock.
func (f *FSM) commit(cv ConfigVersion) ConfigVersion {
	st := &f.st
	st.LastVersion++
	cv.Version = st.LastVersion
	st.History = append(st.History, cv)
	if over := len(st.History) - f.historyLimit; over > 0 {
		st.History = slices.Delete(st.History, 0, over)
	}
	cur := cv
	st.Current = &cur
	st.PushIDs[cv.PushID] = cv.Version
	st.PushOrder = append(st.PushOrder, cv.PushID)
	if over := len(st.PushOrder) - pushIDLimit; over > 0 {
		for _, id := range st.PushOrder[:over] {
			delete(st.PushIDs, id)
		}
		st.PushOrder = slices.Delete(st.PushOrder, 0, over)
	}
	return cv
}

func versionsString(h []ConfigVersion) string {
	if len(h) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", h[0].Version, h[len(h)-1].Version)
}

// Read calls fn with the current state under the read lock; fn must not
// keep references into it.
func (f *FSM) Read(fn func(*State)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(&f.st)
}

// Current returns the committed configuration, ok false when none.
func (f *FSM) Current() (ConfigVersion, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st.Current == nil {
		return ConfigVersion{}, false
	}
	return *f.st.Current, true
}

// History returns the kept versions, oldest first.
func (f *FSM) History() []ConfigVersion {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.st.History)
}

// MembershipLog returns the audit trail of joins and removals, oldest
// first.
func (f *FSM) MembershipLog() []Membership {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.st.Membership)
}

// AppliedRecords returns every director's last report, by node.
func (f *FSM) AppliedRecords() map[string]AppliedRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.st.Applied)
}

// Owners returns the VIP ownership records, by key.
func (f *FSM) Owners() map[string]Owner {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.st.Owners)
}

// Views returns every director's view of rs in vs, by node.
func (f *FSM) Views(vs, rs string) map[string]View {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.st.Health[vs][rs])
}

// HealthTable returns a deep copy of the health table.
func (f *FSM) HealthTable() map[string]map[string]map[string]View {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]map[string]map[string]View, len(f.st.Health))
	for vs, rss := range f.st.Health {
		m := make(map[string]map[string]View, len(rss))
		for rs, nodes := range rss {
			m[rs] = maps.Clone(nodes)
		}
		out[vs] = m
	}
	return out
}

// Snapshot implements raft.FSM: the whole state as versioned JSON.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return fsmSnapshot(b), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	st, err := DecodeSnapshot(data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.restoredOwners()
	cur := st.Current
	f.mu.Unlock()
	if cur != nil && f.onConfig != nil {
		f.onConfig(*cur)
	}
	if f.onChange != nil {
		f.onChange(ChangeAll)
	}
	return nil
}

// DecodeSnapshot parses a snapshot body written by Snapshot.
func DecodeSnapshot(data []byte) (State, error) {
	st := emptyState()
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("decode snapshot: %w", err)
	}
	if st.Format != snapshotFormat {
		return State{}, fmt.Errorf("decode snapshot: format %d, this build reads %d", st.Format, snapshotFormat)
	}
	if st.PushIDs == nil {
		st.PushIDs = map[string]uint64{}
	}
	if st.Applied == nil {
		st.Applied = map[string]AppliedRecord{}
	}
	if st.Health == nil {
		st.Health = map[string]map[string]map[string]View{}
	}
	if st.Owners == nil {
		st.Owners = map[string]Owner{}
	}
	if st.Current != nil && (len(st.History) == 0 || st.History[len(st.History)-1].Version != st.Current.Version) {
		return State{}, fmt.Errorf("decode snapshot: current version %d is not the last of the history", st.Current.Version)
	}
	return st, nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// pushed reports whether a push id has already committed, and its version.
func (f *FSM) pushed(id string) (uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.st.PushIDs[id]
	return v, ok
}
