package fence

import (
	"context"
	"errors"
	"time"
)

// Record is one ownership record as this director applied it. Node,
// Epoch, Priority, Prev and PrevReleased are replicated; Applied and
// PrevSeen are this director's own clock readings at apply time (never a
// sender's timestamp).
type Record struct {
	Node     string // "" when released
	Epoch    uint64
	Priority int // the owner's priority when it claimed
	// Prev is the owner before Node's claim; PrevReleased says it released
	// (removed its VIPs) after that claim, or had before it.
	Prev         string
	PrevReleased bool
	// Applied is when this director applied Node's claim or its last
	// accepted renewal; PrevSeen is the same reading for Prev at the time
	// of the claim.
	Applied  time.Time
	PrevSeen time.Time
	// Hold is Node's HoldBound as it claimed (leases are node-local
	// settings: the wait must use the previous owner's, not ours);
	// PrevHold is Prev's.
	Hold, PrevHold time.Duration
}

// Cluster is what the fence needs of the consensus layer. Proposals block
// until committed (or ctx ends); a refused command returns ErrRefused.
type Cluster interface {
	// Claim proposes a compare-and-set claim of key at prevEpoch, with
	// our priority and HoldBound; it returns the new epoch.
	Claim(ctx context.Context, key string, prevEpoch uint64, priority int, hold time.Duration, at time.Time) (uint64, error)
	// Renew proposes one batched renewal; it returns the keys refused
	// (stale epoch, not owner).
	Renew(ctx context.Context, epochs map[string]uint64, sentAt time.Time) (refused []string, err error)
	// Release gives key up at epoch (also accepted for epoch-1 after a
	// newer claim, as the previous owner's acknowledgement).
	Release(ctx context.Context, key string, epoch uint64) error
	// Owners is the records as this director applied them.
	Owners() map[string]Record
	// Watch signals (coalesced) after each applied ownership change.
	Watch() (<-chan struct{}, func())
	// Quorum is the fast hint from gossip: voters seen alive (self
	// included) and voters in all.
	Quorum() (alive, voters int)
}

// ErrRefused is wrapped by a committed command the state machine refused.
var ErrRefused = errors.New("refused by the state machine")
