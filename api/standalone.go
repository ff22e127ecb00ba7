package api

import "context"

// Standalone returns the Cluster side for a director without a cluster { }
// block (plain keepalived mode): status shows the node alone, and every
// cluster or configuration call says clearly that there is no cluster.
func Standalone(node string) Cluster { return standalone{node} }

type standalone struct{ node string }

func errNoCluster() error {
	return Errorf(CodeUnavailable, "this director runs without a cluster { } block: no cluster to push to or manage (hakeepd -f FILE with a cluster block enables it)")
}

func (s standalone) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	return ClusterStatus{Node: s.node, Health: HealthStatus{Mode: "local"}}, nil
}
func (s standalone) ConfigValidate(ctx context.Context, req ValidateRequest) (ValidateResult, error) {
	return ValidateResult{}, errNoCluster()
}
func (s standalone) ConfigPush(ctx context.Context, req PushRequest) (PushResult, error) {
	return PushResult{}, errNoCluster()
}
func (s standalone) ConfigShow(ctx context.Context) (ConfigVersion, error) {
	return ConfigVersion{}, errNoCluster()
}
func (s standalone) ConfigHistory(ctx context.Context) ([]ConfigVersion, error) {
	return nil, errNoCluster()
}
func (s standalone) ConfigRollback(ctx context.Context, req RollbackRequest) (PushResult, error) {
	return PushResult{}, errNoCluster()
}
func (s standalone) ConfigApplied(ctx context.Context, version uint64) (PushResult, error) {
	return PushResult{}, errNoCluster()
}
func (s standalone) ClusterInit(ctx context.Context) error                { return errNoCluster() }
func (s standalone) ClusterJoin(ctx context.Context, addr string) error   { return errNoCluster() }
func (s standalone) ClusterMembers(ctx context.Context) ([]Member, error) { return nil, errNoCluster() }
func (s standalone) ClusterRemove(ctx context.Context, node string) error { return errNoCluster() }
func (s standalone) Audit(ctx context.Context) ([]AuditEvent, error)      { return nil, errNoCluster() }
