package consensus

import (
	"context"
	"errors"
	"slices"

	"hakeep/api"
)

// API returns the api.Cluster side of the daemon's API backed by this node
// (compose it with the director's api.Local through api.Compose).
func (n *Node) API() api.Cluster { return apiCluster{n} }

type apiCluster struct{ n *Node }

func (a apiCluster) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	st := a.n.Status()
	cs := api.ClusterStatus{
		Node:   st.Node,
		Raft:   api.RaftStatus{State: st.State, Leader: st.Leader, Term: st.Term, LastIndex: st.LastIndex, CommitIndex: st.CommitIndex},
		Health: api.HealthStatus{Mode: st.Health.Mode, Fallback: st.Health.Fallback, Reason: st.Health.Reason},
	}
	for _, m := range st.Members {
		cs.Members = append(cs.Members, apiMember(m))
	}
	if st.Config != nil {
		cs.Config = api.ConfigStatus{Version: st.Config.Version, SHA256: st.Config.SHA256, PushedBy: st.Config.PushedBy, PushedAt: st.Config.PushedAt}
	}
	cs.Config.Applied = appliedList(st.Applied)
	cs.Security = apiSecurity(a.n.Security())
	return cs, nil
}

func apiSecurity(s Security) *api.SecurityStatus {
	out := &api.SecurityStatus{Insecure: s.Insecure, TLS: s.TLS, GossipKeys: s.GossipKeys}
	if s.Identity != nil {
		out.Names, out.CertNotAfter, out.CertSHA256, out.CAs = s.Identity.Names, s.Identity.NotAfter, s.Identity.CertSHA256, len(s.Identity.CASHA256)
	}
	return out
}

// callerCtx carries the API's authenticated caller into the consensus
// calls, for the audit trail: "uid 0 (root) pid 4242 via the unix socket
// on d2".
func (a apiCluster) callerCtx(ctx context.Context) context.Context {
	if c, ok := api.CallerFrom(ctx); ok {
		return WithCaller(ctx, c.String()+" on "+a.n.cfg.NodeName)
	}
	return ctx
}

func apiMember(m Member) api.Member {
	return api.Member{Name: m.Name, Status: m.Status, GossipAddr: m.GossipAddr, RaftAddr: m.RaftAddr, Voter: m.Voter, Leader: m.Leader}
}

func appliedList(recs map[string]AppliedRecord) []api.Applied {
	out := []api.Applied{}
	for _, name := range sortedKeys(recs) {
		r := recs[name]
		out = append(out, api.Applied{Node: r.Node, Version: r.Version, Error: r.Error, At: r.At})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// apiError maps consensus errors onto API error codes.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		return &api.Error{Code: api.CodeInvalid, Message: "configuration refused by the leader's validation", Diagnostics: ve.Diagnostics}
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrClosed):
		return &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
	case errors.Is(err, ErrNotMember):
		return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, ErrForbidden):
		return &api.Error{Code: api.CodeForbidden, Message: err.Error()}
	}
	return err
}

func (a apiCluster) ConfigValidate(ctx context.Context, req api.ValidateRequest) (api.ValidateResult, error) {
	if a.n.cfg.Validate == nil {
		return api.ValidateResult{Valid: true}, nil
	}
	err := a.n.cfg.Validate(req.Name, []byte(req.Text))
	var ve *ValidationError
	switch {
	case err == nil:
		return api.ValidateResult{Valid: true}, nil
	case errors.As(err, &ve):
		return api.ValidateResult{Valid: false, Errors: ve.Diagnostics}, nil
	}
	return api.ValidateResult{}, err
}

func (a apiCluster) ConfigPush(ctx context.Context, req api.PushRequest) (api.PushResult, error) {
	res, err := a.n.Push(a.callerCtx(ctx), req.Name, []byte(req.Text), req.PushedBy, req.PushID)
	if err != nil {
		return api.PushResult{}, apiError(err)
	}
	out := a.applied(res.Version)
	out.Duplicate = res.Duplicate
	return out, nil
}

func (a apiCluster) ConfigRollback(ctx context.Context, req api.RollbackRequest) (api.PushResult, error) {
	res, err := a.n.Rollback(a.callerCtx(ctx), req.Version, req.PushedBy, req.PushID)
	if err != nil {
		if res.Error != "" {
			return api.PushResult{}, &api.Error{Code: api.CodeNotFound, Message: res.Error}
		}
		return api.PushResult{}, apiError(err)
	}
	out := a.applied(res.Version)
	out.Duplicate = res.Duplicate
	return out, nil
}

func (a apiCluster) ConfigApplied(ctx context.Context, version uint64) (api.PushResult, error) {
	return a.applied(version), nil
}

// applied says which voters have applied version (or something newer), or
// failed to apply it, and which are still pending.
func (a apiCluster) applied(version uint64) api.PushResult {
	out := api.PushResult{Version: version, Applied: []api.Applied{}, Pending: []string{}}
	for _, h := range a.n.fsm.History() {
		if h.Version == version {
			out.SHA256 = h.SHA256
		}
	}
	recs := a.n.fsm.AppliedRecords()
	for _, v := range a.n.Voters() {
		r, ok := recs[v]
		switch {
		case ok && r.Version > version && r.Error == "", ok && r.Version == version:
			out.Applied = append(out.Applied, api.Applied{Node: r.Node, Version: r.Version, Error: r.Error, At: r.At})
		default:
			out.Pending = append(out.Pending, v)
		}
	}
	return out
}

func (a apiCluster) ConfigShow(ctx context.Context) (api.ConfigVersion, error) {
	cv, ok := a.n.fsm.Current()
	if !ok {
		return api.ConfigVersion{}, &api.Error{Code: api.CodeNotFound, Message: "no configuration has been committed to the cluster yet (each director runs its local file)"}
	}
	v := apiVersion(cv)
	v.Text = cv.Text
	return v, nil
}

func apiVersion(cv ConfigVersion) api.ConfigVersion {
	return api.ConfigVersion{Version: cv.Version, SHA256: cv.SHA256, Source: cv.Source, PushedBy: cv.PushedBy, Caller: cv.Caller, PushedAt: cv.PushedAt, RollbackOf: cv.RollbackOf}
}

func (a apiCluster) ConfigHistory(ctx context.Context) ([]api.ConfigVersion, error) {
	out := []api.ConfigVersion{}
	for _, cv := range a.n.fsm.History() {
		out = append(out, apiVersion(cv))
	}
	return out, nil
}

func (a apiCluster) ClusterInit(ctx context.Context) error {
	err := a.n.Init(ctx)
	if errors.Is(err, ErrAlreadyInitialized) {
		return &api.Error{Code: api.CodeFailed, Message: err.Error()}
	}
	return apiError(err)
}

func (a apiCluster) ClusterJoin(ctx context.Context, addr string) error {
	return apiError(a.n.Join(a.callerCtx(ctx), addr))
}

func (a apiCluster) ClusterMembers(ctx context.Context) ([]api.Member, error) {
	out := []api.Member{}
	for _, m := range a.n.Members() {
		out = append(out, apiMember(m))
	}
	return out, nil
}

func (a apiCluster) ClusterRemove(ctx context.Context, node string) error {
	return apiError(a.n.Remove(a.callerCtx(ctx), node))
}

// Audit merges the configuration history (pushes, rollbacks) with the
// membership records (joins, removals), oldest first.
func (a apiCluster) Audit(ctx context.Context) ([]api.AuditEvent, error) {
	out := []api.AuditEvent{}
	for _, cv := range a.n.fsm.History() {
		e := api.AuditEvent{At: cv.PushedAt, Action: "push", Version: cv.Version, PushedBy: cv.PushedBy, Caller: cv.Caller}
		if cv.RollbackOf != 0 {
			e.Action = "rollback"
		}
		out = append(out, e)
	}
	for _, m := range a.n.fsm.MembershipLog() {
		out = append(out, api.AuditEvent{At: m.At, Action: m.Action, Node: m.Node, Caller: m.Caller, Via: m.Via})
	}
	slices.SortStableFunc(out, func(x, y api.AuditEvent) int { return x.At.Compare(y.At) })
	return out, nil
}
