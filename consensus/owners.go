package consensus

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"
)

// This file is what the fence (package fence, wired by the director)
// needs of a node: ownership proposals, the records with this node's own
// apply times, and the gossip quorum hint. consensus knows nothing of
// leases: it only records, at apply, when this node applied what.

// ownerSeen is node-local: when this node applied the current owner's
// claim or last accepted renewal, and the previous owner's last one at
// the time of the claim.
type ownerSeen struct {
	applied  time.Time
	prevSeen time.Time
}

// OwnerRecord is an ownership record with this node's apply times (its
// own monotonic clock, never a sender's timestamp).
type OwnerRecord struct {
	Owner
	Applied  time.Time
	PrevSeen time.Time
}

func (c *Claim) key() string {
	if c.Key != "" {
		return c.Key
	}
	return strconv.Itoa(c.VRID)
}

func (r *Release) key() string {
	if r.Key != "" {
		return r.Key
	}
	return strconv.Itoa(r.VRID)
}

// leases is the renewal's key -> epoch map (old entries name VRIDs).
func (r *Renew) leases() map[string]uint64 {
	if len(r.Epochs) == 0 {
		return r.Keys
	}
	m := maps.Clone(r.Keys)
	if m == nil {
		m = map[string]uint64{}
	}
	for v, e := range r.Epochs {
		m[strconv.Itoa(v)] = e
	}
	return m
}

// sawClaim records the apply of a claim of key; prev was the owner
// before it. The caller holds f.mu.
func (f *FSM) sawClaim(key, prev string) {
	if f.seen == nil {
		f.seen = map[string]ownerSeen{}
	}
	old := f.seen[key]
	s := ownerSeen{applied: time.Now()}
	if prev != "" {
		s.prevSeen = old.applied
		if s.prevSeen.IsZero() {
			s.prevSeen = s.applied // never seen: count from now (later is safe)
		}
	}
	f.seen[key] = s
}

// sawRenewal records the apply of an accepted renewal of key.
func (f *FSM) sawRenewal(key string) {
	if f.seen == nil {
		f.seen = map[string]ownerSeen{}
	}
	s := f.seen[key]
	s.applied = time.Now()
	f.seen[key] = s
}

// restoredOwners: after a snapshot restore this node has not seen any
// renewal happen; it counts every record as applied now, which is later
// than the truth and so on the safe side. The caller holds f.mu.
func (f *FSM) restoredOwners() {
	now := time.Now()
	f.seen = map[string]ownerSeen{}
	for k := range f.st.Owners {
		f.seen[k] = ownerSeen{applied: now, prevSeen: now}
	}
}

// OwnerRecords returns the ownership records with this node's apply
// times.
func (f *FSM) OwnerRecords() map[string]OwnerRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]OwnerRecord, len(f.st.Owners))
	for k, o := range f.st.Owners {
		s := f.seen[k]
		out[k] = OwnerRecord{Owner: o, Applied: s.applied, PrevSeen: s.prevSeen}
	}
	return out
}

// ProposeClaim commits a compare-and-set claim of key (VRID vrid) at
// prevEpoch; it returns the new epoch.
func (n *Node) ProposeClaim(ctx context.Context, key string, vrid int, prevEpoch uint64, priority int, hold time.Duration) (uint64, error) {
	res, err := n.propose(ctx, Command{Type: CmdClaim, Claim: &Claim{Key: key, VRID: vrid, Node: n.cfg.NodeName, PrevEpoch: prevEpoch,
		Priority: priority, Hold: hold, At: time.Now().UTC()}})
	return res.Epoch, err
}

// ProposeRenew commits one batched renewal of the keys this node owns at
// the given epochs; it returns the keys refused.
func (n *Node) ProposeRenew(ctx context.Context, epochs map[string]uint64, sentAt time.Time) ([]string, error) {
	res, err := n.propose(ctx, Command{Type: CmdRenew, Renew: &Renew{Node: n.cfg.NodeName, Keys: epochs, SentAt: sentAt}})
	if err != nil && len(res.Refused) > 0 {
		return res.Refused, nil // committed; some keys refused
	}
	return res.Refused, err
}

// ProposeRelease commits giving key (VRID vrid) up at epoch.
func (n *Node) ProposeRelease(ctx context.Context, key string, vrid int, epoch uint64) error {
	_, err := n.propose(ctx, Command{Type: CmdRelease, Release: &Release{Key: key, VRID: vrid, Node: n.cfg.NodeName, Epoch: epoch, At: time.Now().UTC()}})
	return err
}

// WatchOwners signals (coalesced) after every applied ownership change.
func (n *Node) WatchOwners() (<-chan struct{}, func()) {
	ch, stop := n.Watch()
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case c, ok := <-ch:
				if !ok {
					close(out)
					return
				}
				if c&ChangeOwners == 0 {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, func() { stop(); close(done) }
}

// LiveVoters is the gossip hint: the voters gossip sees alive (this node
// included when it is a voter) and the number of voters.
func (n *Node) LiveVoters() (alive, voters int) {
	vs := n.Voters()
	if n.isClosed() {
		return 0, len(vs)
	}
	for _, m := range n.gossip.members() {
		if m.State == MemberAlive && slices.Contains(vs, m.Name) {
			alive++
		}
	}
	return alive, len(vs)
}
