package fence

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// CoarseTimer is how late the kernel may remove an address after its
// valid_lft: it checks lifetimes on a timer rounded up to whole seconds.
const CoarseTimer = time.Second

// Params are the fence's timing settings (the cluster block's lease,
// renew and clock_drift).
type Params struct {
	// Lease is L: how long a committed claim or renewal lets its director
	// own, counted on that director's clock from when it sent it.
	Lease time.Duration
	// Renew is the period of the batched renewals (L/4 by default).
	Renew time.Duration
	// Drift is rho, the bound on clock rate differences (0.01 = 1%).
	Drift float64
	// ClaimTimeout bounds one claim, renewal or release proposal (default
	// 2L): a minority's proposal never commits, so it must give up.
	ClaimTimeout time.Duration
	// Grace is how long an owner whose lease ran out, while gossip still
	// shows a quorum, keeps VRRP MASTER (VIPs removed) and keeps renewing
	// before it gives up (0: it gives up at once). A Raft leader change
	// stalls every commit for about a second, longer than the lease: the
	// owner then gets its VIPs back when a renewal commits instead of
	// handing the VRID over and taking it back by preemption. Its adverts
	// hold the backups down meanwhile, so a takeover it delays is one
	// whose wait for this owner's lease runs anyway (see DefaultParams).
	Grace time.Duration
}

// DefaultParams are safe for advert_int 1 s (fencing.md 7).
func DefaultParams() Params {
	p := Params{Lease: time.Second, Renew: 250 * time.Millisecond, Drift: 0.01}
	p.Grace = p.DefaultGrace()
	return p
}

// DefaultGrace is Lease - Renew: lease + grace stays below Wait, so
// a takeover that must wait for this owner's lease (its Raft cut, its
// adverts still heard) is not made later by the grace.
func (p Params) DefaultGrace() time.Duration { return p.Lease - p.Renew }

// Validate checks the settings against each other.
func (p Params) Validate() error {
	switch {
	case p.Lease <= 0:
		return errors.New("fence: lease must be positive")
	case p.Renew <= 0 || p.Renew >= p.Lease:
		return fmt.Errorf("fence: renew %s must be positive and shorter than the lease %s", p.Renew, p.Lease)
	case p.Drift < 0 || p.Drift >= 0.5:
		return fmt.Errorf("fence: clock drift %g must be in [0, 0.5)", p.Drift)
	case p.Grace < 0:
		return fmt.Errorf("fence: grace %s must not be negative", p.Grace)
	}
	return nil
}

func (p Params) claimTimeout() time.Duration {
	if p.ClaimTimeout > 0 {
		return p.ClaimTimeout
	}
	return 2 * p.Lease
}

// KernelLifetime is the valid_lft of a freshly renewed VIP: the lease in
// whole seconds, rounded up (the kernel counts only whole seconds).
func (p Params) KernelLifetime() time.Duration {
	return (p.Lease + time.Second - 1).Truncate(time.Second)
}

// hold is how far past the send of its last accepted renewal a director
// may write a VIP's lifetime to end: KernelLifetime from a write made at
// most one renew period after the send (a later reply is not written with
// the full lifetime, see lifetimeAt).
func (p Params) hold() time.Duration { return p.KernelLifetime() + p.Renew }

// HoldBound is how long, on the owner's own clock, after it sent its last
// accepted renewal its kernel may still hold a fenced VIP: the written
// bound plus the kernel's coarse timer. It holds whatever happens to the
// process after the send (SIGSTOP, hang, kill -9).
func (p Params) HoldBound() time.Duration { return p.hold() + CoarseTimer }

// Wait is how long a new owner waits, counted on its own clock from when
// it applied the previous owner's last accepted renewal, before it may
// add the VIPs (unless the previous owner released them). Apply comes
// after send in real time; the owner's clock may run slow by rho and ours
// fast by rho, hence (1+rho)/(1-rho).
func (p Params) Wait() time.Duration { return p.waitFor(0) }

// waitFor is Wait for a previous owner whose HoldBound is hold (0:
// unknown, ours is taken; the longer of the two counts).
func (p Params) waitFor(hold time.Duration) time.Duration {
	h := max(hold, p.HoldBound())
	return time.Duration(math.Ceil(float64(h) * (1 + p.Drift) / (1 - p.Drift)))
}

// lifetimeAt is the kernel lifetime a VIP may be written with at now, so
// that it ends by bound (whole seconds, rounded down); 0 means no write
// is allowed any more.
func lifetimeAt(bound, now time.Time) time.Duration {
	left := bound.Sub(now)
	if left < time.Second {
		return 0
	}
	return left.Truncate(time.Second)
}

// Takeover is L1's bound for a director whose claim is not answered by a
// release (crash, partition): Master_Down_Interval, then the wait from
// the old owner's last renewal, plus commits.
func (p Params) Takeover(masterDown, commit time.Duration) time.Duration {
	return masterDown + p.Wait() + 2*commit
}
