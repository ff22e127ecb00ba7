// Package apitest holds an in-memory api.Backend for tests of API clients
// (hactl): a small but working model of one director and its cluster
// configuration, without Raft or the kernel.
package apitest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"hakeep/api"
)

// Fake is an in-memory Backend. Set its exported fields before serving;
// the configuration calls keep a history like the real cluster does.
type Fake struct {
	mu sync.Mutex

	Node     string
	Raft     api.RaftStatus
	Members  []api.Member
	Health   api.HealthStatus
	Inst     []api.Instance
	VS       []api.VirtualServer
	Chk      []api.Check
	RunningV uint64
	RunErr   error
	Voters   []string
	// Validate refuses a pushed text with diagnostics (nil: accept all).
	Validate func(name, text string) []string
	// Unavailable makes every cluster call fail as if there were no leader.
	Unavailable bool
	// ApplyOnPush marks these voters as having applied each pushed version.
	ApplyOnPush []string
	// Security is shown in status (nil: none, as without a cluster).
	Security *api.SecurityStatus

	history []api.ConfigVersion
	applied map[string]api.Applied
	pushIDs map[string]uint64
	audit   []api.AuditEvent
	Calls   []string
}

// record adds an audit event with the API's authenticated caller.
func (f *Fake) record(ctx context.Context, e api.AuditEvent) {
	if c, ok := api.CallerFrom(ctx); ok {
		e.Caller = c.String() + " on " + f.Node
	}
	e.At = time.Now().UTC()
	f.mu.Lock()
	f.audit = append(f.audit, e)
	f.mu.Unlock()
}

// Audit returns the events recorded so far.
func (f *Fake) Audit(ctx context.Context) ([]api.AuditEvent, error) {
	if err := f.call("audit"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.AuditEvent{}, f.audit...), nil
}

func (f *Fake) call(name string) error {
	f.mu.Lock()
	f.Calls = append(f.Calls, name)
	f.mu.Unlock()
	if f.Unavailable {
		return api.Errorf(api.CodeUnavailable, "no Raft leader reachable")
	}
	return nil
}

// CallsCopy returns the calls made so far.
func (f *Fake) CallsCopy() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Calls)
}

// SetApplied records a director's report, as the real cluster does.
func (f *Fake) SetApplied(node string, version uint64, errMsg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applied == nil {
		f.applied = map[string]api.Applied{}
	}
	f.applied[node] = api.Applied{Node: node, Version: version, Error: errMsg, At: time.Now().UTC()}
}

func (f *Fake) Instances(ctx context.Context) ([]api.Instance, error)           { return f.Inst, nil }
func (f *Fake) VirtualServers(ctx context.Context) ([]api.VirtualServer, error) { return f.VS, nil }
func (f *Fake) Checks(ctx context.Context) ([]api.Check, error)                 { return f.Chk, nil }
func (f *Fake) Running(ctx context.Context) (uint64, error)                     { return f.RunningV, f.RunErr }

func (f *Fake) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	if err := f.call("status"); err != nil {
		return api.ClusterStatus{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := api.ClusterStatus{Node: f.Node, Raft: f.Raft, Members: f.Members, Health: f.Health, Security: f.Security}
	if n := len(f.history); n > 0 {
		cur := f.history[n-1]
		cs.Config = api.ConfigStatus{Version: cur.Version, SHA256: cur.SHA256, PushedBy: cur.PushedBy, PushedAt: cur.PushedAt}
	}
	for _, name := range sortedKeys(f.applied) {
		cs.Config.Applied = append(cs.Config.Applied, f.applied[name])
	}
	return cs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func (f *Fake) ConfigValidate(ctx context.Context, req api.ValidateRequest) (api.ValidateResult, error) {
	if f.Validate != nil {
		if errs := f.Validate(req.Name, req.Text); len(errs) > 0 {
			return api.ValidateResult{Errors: errs}, nil
		}
	}
	return api.ValidateResult{Valid: true}, nil
}

func (f *Fake) commit(text, source, by, id string, rollbackOf uint64) api.PushResult {
	f.mu.Lock()
	if f.pushIDs == nil {
		f.pushIDs = map[string]uint64{}
	}
	if v, ok := f.pushIDs[id]; ok && id != "" {
		f.mu.Unlock()
		r := f.result(v)
		r.Duplicate = true
		return r
	}
	sum := sha256.Sum256([]byte(text))
	v := uint64(len(f.history) + 1)
	f.history = append(f.history, api.ConfigVersion{Version: v, SHA256: hex.EncodeToString(sum[:]), Source: source, PushedBy: by, PushedAt: time.Now().UTC(), RollbackOf: rollbackOf, Text: text})
	f.pushIDs[id] = v
	f.mu.Unlock()
	for _, n := range f.ApplyOnPush {
		f.SetApplied(n, v, "")
	}
	return f.result(v)
}

func (f *Fake) result(v uint64) api.PushResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := api.PushResult{Version: v, Applied: []api.Applied{}, Pending: []string{}}
	if v >= 1 && int(v) <= len(f.history) {
		r.SHA256 = f.history[v-1].SHA256
	}
	for _, n := range f.Voters {
		if a, ok := f.applied[n]; ok && (a.Version == v || a.Version > v && a.Error == "") {
			r.Applied = append(r.Applied, a)
		} else {
			r.Pending = append(r.Pending, n)
		}
	}
	return r
}

func (f *Fake) ConfigPush(ctx context.Context, req api.PushRequest) (api.PushResult, error) {
	if err := f.call("push"); err != nil {
		return api.PushResult{}, err
	}
	if f.Validate != nil {
		if errs := f.Validate(req.Name, req.Text); len(errs) > 0 {
			return api.PushResult{}, &api.Error{Code: api.CodeInvalid, Message: "configuration refused", Diagnostics: errs}
		}
	}
	r := f.commit(req.Text, req.Name, req.PushedBy, req.PushID, 0)
	if !r.Duplicate {
		f.record(ctx, api.AuditEvent{Action: "push", Version: r.Version, PushedBy: req.PushedBy})
	}
	return r, nil
}

func (f *Fake) ConfigShow(ctx context.Context) (api.ConfigVersion, error) {
	if err := f.call("show"); err != nil {
		return api.ConfigVersion{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.history) == 0 {
		return api.ConfigVersion{}, api.Errorf(api.CodeNotFound, "no configuration has been committed")
	}
	return f.history[len(f.history)-1], nil
}

func (f *Fake) ConfigHistory(ctx context.Context) ([]api.ConfigVersion, error) {
	if err := f.call("history"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.ConfigVersion{}
	for _, h := range f.history {
		h.Text = ""
		out = append(out, h)
	}
	return out, nil
}

func (f *Fake) ConfigRollback(ctx context.Context, req api.RollbackRequest) (api.PushResult, error) {
	if err := f.call("rollback"); err != nil {
		return api.PushResult{}, err
	}
	f.mu.Lock()
	if req.Version == 0 || int(req.Version) > len(f.history) {
		f.mu.Unlock()
		return api.PushResult{}, api.Errorf(api.CodeNotFound, "version %d is not in the history", req.Version)
	}
	old := f.history[req.Version-1]
	f.mu.Unlock()
	r := f.commit(old.Text, old.Source, req.PushedBy, req.PushID, req.Version)
	if !r.Duplicate {
		f.record(ctx, api.AuditEvent{Action: "rollback", Version: r.Version, PushedBy: req.PushedBy})
	}
	return r, nil
}

func (f *Fake) ConfigApplied(ctx context.Context, version uint64) (api.PushResult, error) {
	if err := f.call("applied"); err != nil {
		return api.PushResult{}, err
	}
	return f.result(version), nil
}

func (f *Fake) ClusterInit(ctx context.Context) error { return f.call("init") }
func (f *Fake) ClusterJoin(ctx context.Context, addr string) error {
	return f.call("join " + addr)
}
func (f *Fake) ClusterMembers(ctx context.Context) ([]api.Member, error) {
	if err := f.call("members"); err != nil {
		return nil, err
	}
	return f.Members, nil
}
func (f *Fake) ClusterRemove(ctx context.Context, node string) error {
	if err := f.call("remove " + node); err != nil {
		return err
	}
	for _, m := range f.Members {
		if m.Name == node {
			f.record(ctx, api.AuditEvent{Action: "remove", Node: node})
			return nil
		}
	}
	return api.Errorf(api.CodeNotFound, "no such director %q", node)
}
