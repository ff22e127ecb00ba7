package vrrp

import "context"

// Claim names the VRID an instance wants to own.
type Claim struct {
	Instance  string
	VRID      uint8
	Interface string
	IPv6      bool
}

// Gate is the fencing seam (fencing.md): it decides whether an instance may
// enter MASTER. It must never block: Admit returns at once with a channel
// the gate answers on later.
//
//   - The first value on the channel decides: nil admits (the instance
//     becomes MASTER), an error refuses (the instance shows FENCED and asks
//     again after another Master_Down_Interval).
//   - After admission, any further value, or closing the channel, revokes
//     ownership: the instance sends one priority-0 advert, removes its VIPs
//     and shows FENCED.
//   - ctx is cancelled when the instance withdraws the claim (a better master
//     appeared while pending, shutdown, or it left MASTER); Release is then
//     called if the claim had been admitted.
type Gate interface {
	Admit(ctx context.Context, c Claim) <-chan error
	Release(c Claim)
}

// Holder is a Gate that can tell, without blocking, whether an admitted
// claim still holds. A MASTER asks it before each advert it sends: a
// fence's lease can run out while the process is paused (SIGSTOP, a hang)
// and every timer is due at once when it runs again, before the gate has
// had a chance to revoke. Told no, the instance gives up as on a revoke.
type Holder interface {
	Holds(c Claim) bool
}

// AlwaysAdmit is the Gate of plain keepalived behaviour: every claim is
// admitted at once and never revoked.
type AlwaysAdmit struct{}

// Admit admits at once.
func (AlwaysAdmit) Admit(context.Context, Claim) <-chan error {
	ch := make(chan error, 1)
	ch <- nil
	return ch
}

// Release does nothing.
func (AlwaysAdmit) Release(Claim) {}
