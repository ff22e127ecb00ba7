package api

import "context"

// Backend is what hakeepd implements to serve the API. Return an *Error to
// choose the error code; any other error is reported as CodeFailed.
type Backend interface {
	Local
	Cluster
}

// Local is the director's own view: VRRP instances, the IPVS table, the
// checkers. The daemon's director implements it.
type Local interface {
	Instances(ctx context.Context) ([]Instance, error)
	VirtualServers(ctx context.Context) ([]VirtualServer, error)
	Checks(ctx context.Context) ([]Check, error)
	// Running returns the configuration version this director runs and the
	// last apply error (0 and nil before any committed version).
	Running(ctx context.Context) (version uint64, applyErr error)
}

// ReloadReporter is implemented by a Local that reports its last reload
// (hactl status shows it).
type ReloadReporter interface {
	LastReload(ctx context.Context) *Reload
}

// Cluster is the replicated side: cluster membership and configuration.
// The consensus package's adapter implements it.
type Cluster interface {
	ClusterStatus(ctx context.Context) (ClusterStatus, error)
	ConfigValidate(ctx context.Context, req ValidateRequest) (ValidateResult, error)
	ConfigPush(ctx context.Context, req PushRequest) (PushResult, error)
	ConfigShow(ctx context.Context) (ConfigVersion, error)
	ConfigHistory(ctx context.Context) ([]ConfigVersion, error)
	ConfigRollback(ctx context.Context, req RollbackRequest) (PushResult, error)
	ConfigApplied(ctx context.Context, version uint64) (PushResult, error)
	ClusterInit(ctx context.Context) error
	ClusterJoin(ctx context.Context, addr string) error
	ClusterMembers(ctx context.Context) ([]Member, error)
	ClusterRemove(ctx context.Context, node string) error
	// Audit is the cluster's audit trail, oldest first: pushes,
	// rollbacks, joins and removals with who asked.
	Audit(ctx context.Context) ([]AuditEvent, error)
}

// ClusterStatus is the cluster part of Status.
type ClusterStatus struct {
	Node    string
	Raft    RaftStatus
	Config  ConfigStatus // Running and LocalError are filled from Local
	Members []Member
	Health  HealthStatus
	// Security is nil without a cluster.
	Security *SecurityStatus
}

// Compose joins a Local and a Cluster into a Backend.
func Compose(l Local, c Cluster) Backend { return composed{l, c} }

type composed struct {
	Local
	Cluster
}

// LastReload forwards to the Local when it reports reloads.
func (c composed) LastReload(ctx context.Context) *Reload {
	if r, ok := c.Local.(ReloadReporter); ok {
		return r.LastReload(ctx)
	}
	return nil
}
