package director

import (
	"context"
	"log/slog"
	"time"

	"hakeep/config"
	"hakeep/consensus"
	"hakeep/fence"
	"hakeep/vrrp"
)

// nodeCluster is the fence's view of the consensus node. The fence does
// not import consensus (nor consensus the fence): the director joins them
// here.
type nodeCluster struct{ n *consensus.Node }

func (c nodeCluster) Claim(ctx context.Context, key string, prev uint64, prio int, hold time.Duration, at time.Time) (uint64, error) {
	k, err := fence.ParseKey(key)
	if err != nil {
		return 0, err
	}
	return c.n.ProposeClaim(ctx, key, int(k.VRID), prev, prio, hold)
}

func (c nodeCluster) Renew(ctx context.Context, epochs map[string]uint64, sent time.Time) ([]string, error) {
	return c.n.ProposeRenew(ctx, epochs, sent)
}

func (c nodeCluster) Release(ctx context.Context, key string, epoch uint64) error {
	k, err := fence.ParseKey(key)
	if err != nil {
		return err
	}
	return c.n.ProposeRelease(ctx, key, int(k.VRID), epoch)
}

func (c nodeCluster) Owners() map[string]fence.Record {
	recs := c.n.FSM().OwnerRecords()
	out := make(map[string]fence.Record, len(recs))
	for k, r := range recs {
		out[k] = fence.Record{Node: r.Node, Epoch: r.Epoch, Priority: r.Priority, Prev: r.Prev, PrevReleased: r.PrevReleased,
			Applied: r.Applied, PrevSeen: r.PrevSeen, Hold: r.Hold, PrevHold: r.PrevHold}
	}
	return out
}

func (c nodeCluster) Watch() (<-chan struct{}, func()) { return c.n.WatchOwners() }

func (c nodeCluster) Quorum() (int, int) { return c.n.LiveVoters() }

// newFence builds the fence of a director with a cluster block.
func newFence(cfg *config.Config, node *consensus.Node, log *slog.Logger) (*fence.Fence, error) {
	cl := cfg.Cluster
	p := fence.Params{Lease: cl.Lease, Renew: cl.Renew, Drift: cl.ClockDrift}
	// Not a setting (yet): Lease - Renew keeps a lapsed owner from delaying
	// any takeover (fence.Params.Grace).
	p.Grace = p.DefaultGrace()
	return fence.New(fence.Options{Node: node.Name(), Params: p, Cluster: nodeCluster{node}, Logger: log.With("subsystem", "fence")})
}

// fenceGate is the VRRP manager's gate: the fence for fenced instances,
// keepalived's behaviour for those with `fence off`.
type fenceGate struct {
	d *Director
	f *fence.Fence
}

func (g fenceGate) fenced(name string) bool {
	cfg := g.d.current().cfg
	in := cfg.Instance(name)
	return in != nil && in.Fenced(cfg)
}

func (g fenceGate) Admit(ctx context.Context, c vrrp.Claim) <-chan error {
	if !g.fenced(c.Instance) {
		return vrrp.AlwaysAdmit{}.Admit(ctx, c)
	}
	return g.f.Admit(ctx, c)
}

func (g fenceGate) Release(c vrrp.Claim) {
	if g.fenced(c.Instance) {
		g.f.Release(c)
	}
}

// Holds implements vrrp.Holder: VRRP asks it before each MASTER advert.
// An instance with `fence off` always holds; a fenced one while its lease
// (or a lapse's grace) runs.
func (g fenceGate) Holds(c vrrp.Claim) bool {
	return !g.fenced(c.Instance) || g.f.Holds(c)
}

var _ vrrp.Holder = fenceGate{}
