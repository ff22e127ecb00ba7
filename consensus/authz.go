package consensus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// ErrForbidden: the peer proved who it is, and that is not someone allowed
// to do what it asked.
var ErrForbidden = errors.New("not allowed by this cluster")

// Authorization on the Raft port (mutual TLS): a peer's identity is the
// director names its certificate carries (see Credentials).
//
//   - Raft traffic is taken only from a server of the Raft configuration
//     (before this director belongs to a cluster, from any director the
//     CA vouches for: one of them will bootstrap it or add it).
//   - apply and remove only from a server of the Raft configuration: a
//     director of the cluster, never a stranger with a valid certificate.
//   - join also from a director joining as itself, under the name its
//     certificate carries: issuing a director certificate from the
//     cluster's CA (hactl tls cert create NAME) is the operator's
//     admission of NAME, and NAME only.
//
// Without TLS (insecure_open_cluster) there is no identity to check and
// everything is taken, as the warning at every start says.

// serverIDs returns the names in the latest Raft configuration; known is
// false while this director has none (not bootstrapped, not joined).
func (n *Node) serverIDs() (ids map[string]bool, known bool) {
	if n.raft == nil {
		return nil, false
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) == 0 {
		return nil, false
	}
	ids = map[string]bool{}
	for _, s := range f.Configuration().Servers {
		ids[string(s.ID)] = true
	}
	return ids, true
}

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrForbidden)
}

// allowRaft decides whether p may carry Raft traffic to this director.
func (n *Node) allowRaft(p peer) error {
	if !p.tls {
		return nil
	}
	if len(p.names) == 0 {
		return forbidden("certificate %q names no director", p.subject)
	}
	ids, known := n.serverIDs()
	if !known {
		return nil
	}
	for _, name := range p.names {
		if ids[name] {
			return nil
		}
	}
	return forbidden("certificate names %s, not a director of this cluster", strings.Join(p.names, " "))
}

// authorize decides whether p may make request req.
func (n *Node) authorize(p peer, req rpcRequest) error {
	if !p.tls {
		return nil
	}
	if len(p.names) == 0 {
		return forbidden("%s: certificate %q names no director", req.Op, p.subject)
	}
	ids, _ := n.serverIDs()
	for _, name := range p.names {
		if ids[name] {
			return nil
		}
	}
	if req.Op == opJoin && slices.Contains(p.names, req.ID) {
		return nil
	}
	if req.Op == opJoin {
		return forbidden("join as %q: the certificate names %s (a director joins under its own name only)", req.ID, strings.Join(p.names, " "))
	}
	return forbidden("%s: the certificate names %s, not a director of this cluster", req.Op, strings.Join(p.names, " "))
}

// recordMembership commits the audit record of a join or removal the
// leader just made. The change itself is done: a record that fails to
// commit (leadership lost) is logged, not retried.
func (n *Node) recordMembership(action string, req rpcRequest, via string, timeout time.Duration) {
	m := &Membership{Action: action, Node: req.ID, Caller: req.Caller, Via: via, At: time.Now().UTC()}
	if action == MemberJoin {
		m.Addr = req.Addr
	}
	data, err := EncodeCommand(Command{Type: CmdMembership, Membership: m})
	if err == nil {
		err = n.raft.Apply(data, timeout).Error()
	}
	if err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
		n.log.Warn("audit record of a membership change not committed", "action", action, "peer", req.ID, "err", err)
	}
}

func pushedByOf(c Command) string {
	switch {
	case c.Push != nil:
		return c.Push.PushedBy
	case c.Rollback != nil:
		return c.Rollback.PushedBy
	}
	return ""
}

type callerKey struct{}

// WithCaller returns ctx carrying who asked for what follows (Push,
// Rollback, Remove, Join), as the API authenticated them; it is recorded
// in the audit trail and the leader's log.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// callerOf is ctx's caller, or this director itself.
func (n *Node) callerOf(ctx context.Context) string {
	if s, ok := ctx.Value(callerKey{}).(string); ok && s != "" {
		if len(s) > maxCallerLen {
			s = s[:maxCallerLen]
		}
		return s
	}
	return "director " + n.cfg.NodeName
}
