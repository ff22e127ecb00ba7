package api

import (
	"context"
	"net/http"
)

// PlanRequest is `hactl config push --dry-run FILE`: what would each
// director change if this text were committed? Nothing is committed.
type PlanRequest struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// PlanResult is every director's answer, sorted by director name.
type PlanResult struct {
	Directors []DirectorPlan `json:"directors"`
}

// DirectorPlan is what one director would change, against what it runs.
type DirectorPlan struct {
	Director string `json:"director"`
	// RunningVersion is the committed version the plan is against (0: the
	// director runs its local file).
	RunningVersion uint64       `json:"running_version"`
	Changes        []PlanChange `json:"changes"`
	// Error says why this director has no plan (unreachable, no answer in
	// time, or the text does not parse for it: Diagnostics then has the
	// file:line errors).
	Error       string   `json:"error,omitempty"`
	Diagnostics []string `json:"diagnostics,omitempty"`
}

// Plan change kinds (PlanChange.Kind).
const (
	PlanInstance   = "vrrp_instance"
	PlanVIP        = "vip"
	PlanService    = "virtual_server"
	PlanRealServer = "real_server"
)

// Plan changes (PlanChange.Change).
const (
	PlanAdded      = "added"
	PlanRemoved    = "removed"
	PlanChanged    = "changed"
	PlanMoved      = "moved"
	PlanReweighted = "reweighted"
)

// PlanChange is one row of a plan: a VRRP instance, a VIP, an IPVS
// service or one of its real servers, and what would happen to it.
type PlanChange struct {
	Kind   string `json:"kind"`
	Object string `json:"object"`
	Change string `json:"change"`
	Detail string `json:"detail,omitempty"`
}

// LocalPlanner is a Local that can say what it would change for a text
// (the director). Standalone, its answer is the whole dry run.
type LocalPlanner interface {
	PlanLocal(ctx context.Context, req PlanRequest) (DirectorPlan, error)
}

// ClusterPlanner is a Cluster that asks every director for its plan
// (the consensus adapter).
type ClusterPlanner interface {
	ConfigPlan(ctx context.Context, req PlanRequest) (PlanResult, error)
}

// ConfigPlan answers a dry run: every director's plan in a cluster, this
// director's alone without one.
func (c composed) ConfigPlan(ctx context.Context, req PlanRequest) (PlanResult, error) {
	if cp, ok := c.Cluster.(ClusterPlanner); ok {
		return cp.ConfigPlan(ctx, req)
	}
	lp, ok := c.Local.(LocalPlanner)
	if !ok {
		return PlanResult{}, Errorf(CodeUnavailable, "this director cannot compute a dry run")
	}
	p, err := lp.PlanLocal(ctx, req)
	if err != nil {
		return PlanResult{}, err
	}
	return PlanResult{Directors: []DirectorPlan{p}}, nil
}

// plan serves POST /v1/config/plan. It changes nothing, but it carries a
// whole configuration and, in a cluster, reaches every director: it is as
// privileged as a push (the same listeners, the same callers).
func (s *Server) plan(r *http.Request) (any, error) {
	var req PlanRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	cp, ok := s.b.(ClusterPlanner)
	if !ok {
		return nil, Errorf(CodeUnavailable, "this director cannot compute a dry run")
	}
	res, err := cp.ConfigPlan(r.Context(), req)
	if err != nil {
		return nil, err
	}
	for i := range res.Directors {
		if res.Directors[i].Changes == nil {
			res.Directors[i].Changes = []PlanChange{}
		}
	}
	if res.Directors == nil {
		res.Directors = []DirectorPlan{}
	}
	return res, nil
}

// ConfigPlan asks for a dry run of req's text.
func (c *Client) ConfigPlan(ctx context.Context, req PlanRequest) (PlanResult, error) {
	var v PlanResult
	return v, c.do(ctx, http.MethodPost, "/v1/config/plan", req, &v)
}
