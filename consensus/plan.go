package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"hakeep/api"
)

// opPlan asks a director what it would change for a configuration text
// (`hactl config push --dry-run`). Unlike the other ops it is never
// forwarded to the leader: each director answers for itself, and nothing
// is proposed. Only directors of the cluster may ask (authorize).
const opPlan = "plan"

// planTimeout bounds each director's answer to a dry run: one that is
// down or stuck is reported as such, the others still answer. A variable
// for tests.
var planTimeout = 5 * time.Second

// ConfigPlan is the cluster's dry run: the text is validated as a push
// would be, then every director of the Raft configuration says what it
// would change (this one directly, the others over the node-to-node RPC,
// all at once).
func (a apiCluster) ConfigPlan(ctx context.Context, req api.PlanRequest) (api.PlanResult, error) {
	if v := a.n.cfg.Validate; v != nil {
		err := v(req.Name, []byte(req.Text))
		var ve *ValidationError
		if errors.As(err, &ve) {
			return api.PlanResult{}, &api.Error{Code: api.CodeInvalid, Message: "configuration refused by validation; nothing was planned", Diagnostics: ve.Diagnostics}
		}
		if err != nil {
			return api.PlanResult{}, err
		}
	}
	// The peers log who asked (the API's caller on this director).
	return api.PlanResult{Directors: a.n.PlanAll(a.callerCtx(ctx), req.Name, []byte(req.Text))}, nil
}

// PlanAll asks every director of the Raft configuration (just this one
// before the cluster forms) for its plan of text, in parallel, each within
// planTimeout; an unreachable director gets a plan with an Error. The
// result is sorted by director name.
func (n *Node) PlanAll(ctx context.Context, name string, text []byte) []api.DirectorPlan {
	type target struct{ id, addr string }
	targets := []target{{id: n.cfg.NodeName}}
	if n.raft != nil {
		if f := n.raft.GetConfiguration(); f.Error() == nil {
			for _, s := range f.Configuration().Servers {
				if string(s.ID) != n.cfg.NodeName {
					targets = append(targets, target{string(s.ID), string(s.Address)})
				}
			}
		}
	}
	cmd, err := json.Marshal(api.PlanRequest{Name: name, Text: string(text)})
	out := make([]api.DirectorPlan, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			if t.id == n.cfg.NodeName {
				out[i] = n.planHere(name, text)
				return
			}
			if err != nil {
				out[i] = api.DirectorPlan{Director: t.id, Error: err.Error()}
				return
			}
			tctx, cancel := context.WithTimeout(ctx, planTimeout)
			defer cancel()
			out[i] = n.planThere(tctx, t.id, t.addr, rpcRequest{Op: opPlan, Cmd: cmd, Caller: n.callerOf(ctx)})
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b api.DirectorPlan) int { return strings.Compare(a.Director, b.Director) })
	return out
}

// planHere is this director's own plan.
func (n *Node) planHere(name string, text []byte) api.DirectorPlan {
	if n.cfg.Plan == nil {
		return api.DirectorPlan{Director: n.cfg.NodeName, Error: "this director cannot compute a dry run"}
	}
	p := n.cfg.Plan(name, text)
	p.Director = n.cfg.NodeName
	return p
}

// planThere asks the director id at addr for its plan.
func (n *Node) planThere(ctx context.Context, id, addr string, req rpcRequest) api.DirectorPlan {
	resp, err := n.exchange(ctx, addr, req)
	if err == nil && resp.Kind != "" {
		_, err = fromResponse(resp)
	}
	if err == nil && resp.Plan == nil {
		err = errors.New("no plan in the answer (a director of an older version?)")
	}
	if err != nil {
		// ctx's own timer may fire a little after its deadline has
		// passed: the clock decides, not ctx.Err().
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
			err = fmt.Errorf("no answer within %s: %w", planTimeout, err)
		}
		return api.DirectorPlan{Director: id, Error: err.Error()}
	}
	p := *resp.Plan
	p.Director = id // the name we asked, whatever it calls itself
	return p
}

// servePlan answers a peer's dry run for this director.
func (n *Node) servePlan(req rpcRequest) rpcResponse {
	var pr api.PlanRequest
	if err := json.Unmarshal(req.Cmd, &pr); err != nil {
		return toResponse(ApplyResult{}, fmt.Errorf("%w: plan: %v", ErrBadCommand, err))
	}
	n.log.Info("audit: dry run of a configuration", "source", pr.Name, "caller", req.Caller)
	p := n.planHere(pr.Name, []byte(pr.Text))
	return rpcResponse{Plan: &p}
}
