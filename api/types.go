// Package api is hakeepd's HTTP/JSON API: the stable JSON types, the
// Backend interface the daemon implements, a server on a root-only unix
// socket (optionally TCP with mutual TLS), and a Go client. It holds no
// state of its own.
package api

import (
	"fmt"
	"time"
)

// DefaultSocket is where hakeepd serves the API unless --api says otherwise.
const DefaultSocket = "/run/hakeep/hakeepd.sock"

// Status is `hactl status`: everything an operator looks at first.
type Status struct {
	Node           string          `json:"node"`
	Raft           RaftStatus      `json:"raft"`
	Config         ConfigStatus    `json:"config"`
	Members        []Member        `json:"members"`
	Health         HealthStatus    `json:"health"`
	Instances      []Instance      `json:"instances"`
	VirtualServers []VirtualServer `json:"virtual_servers"`
	// Security is how the cluster's ports are protected (absent without a
	// cluster { } block).
	Security *SecurityStatus `json:"security,omitempty"`
}

// SecurityStatus says how this director's cluster ports are protected.
type SecurityStatus struct {
	// Insecure: the cluster runs open (insecure_open_cluster): anyone who
	// reaches its Raft or gossip port can command it.
	Insecure bool `json:"insecure"`
	// TLS: the Raft port takes mutual TLS from directors of the CA only.
	TLS bool `json:"tls"`
	// Names are the director names this director's certificate carries.
	Names        []string  `json:"names,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	CertSHA256   string    `json:"cert_sha256,omitempty"`
	// CAs is the number of CA certificates trusted (2 during a rotation).
	CAs int `json:"cas,omitempty"`
	// GossipKeys is the number of gossip keys installed (0: plain gossip;
	// more than 1 during a rotation).
	GossipKeys int `json:"gossip_keys"`
}

// AuditEvent is one change to the cluster: a configuration pushed or
// rolled back, a director joined or removed.
type AuditEvent struct {
	At      time.Time `json:"at"`
	Action  string    `json:"action"` // push, rollback, join, remove
	Version uint64    `json:"version,omitempty"`
	Node    string    `json:"node,omitempty"` // join, remove: the director
	// PushedBy is what the client said; Caller who the API authenticated
	// (socket peer uid, client certificate) on the director that took the
	// request; Via the director that handed it to the leader.
	PushedBy string `json:"pushed_by,omitempty"`
	Caller   string `json:"caller,omitempty"`
	Via      string `json:"via,omitempty"`
}

// RaftStatus is this director's Raft role.
type RaftStatus struct {
	// State is Leader, Follower, Candidate, Shutdown, or "" without a cluster.
	State       string `json:"state"`
	Leader      string `json:"leader"` // node name, "" when unknown
	Term        uint64 `json:"term"`
	LastIndex   uint64 `json:"last_index"`
	CommitIndex uint64 `json:"commit_index"`
}

// ConfigStatus is the committed configuration and who applied it.
type ConfigStatus struct {
	Version  uint64    `json:"version"` // 0: nothing committed yet (the local file is in use)
	SHA256   string    `json:"sha256"`
	PushedBy string    `json:"pushed_by,omitempty"`
	PushedAt time.Time `json:"pushed_at,omitzero"`
	// Running is the version this director runs (it may lag, or keep an
	// older one after a failed apply, with LocalError saying why).
	Running    uint64    `json:"running"`
	LocalError string    `json:"local_error,omitempty"`
	Applied    []Applied `json:"applied"`
	// LastReload is this director's last reload (SIGHUP or a committed
	// version), filled from Local when it reports one.
	LastReload *Reload `json:"last_reload,omitempty"`
}

// Reload is the outcome of a director's last reload.
type Reload struct {
	// Source is "start", "SIGHUP" or "version N".
	Source string    `json:"source"`
	At     time.Time `json:"at"`
	OK     bool      `json:"ok"`
	// Error says why it was refused: the running configuration stayed.
	Error       string    `json:"error,omitempty"`
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Applied is one director's last report on a version.
type Applied struct {
	Node    string    `json:"node"`
	Version uint64    `json:"version"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at,omitzero"`
}

// Member is one director in the cluster.
type Member struct {
	Name string `json:"name"`
	// Status: alive, suspect, dead, left (gossip) or unknown (in the Raft
	// configuration but never seen by gossip).
	Status     string `json:"status"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	RaftAddr   string `json:"raft_addr,omitempty"`
	Voter      bool   `json:"voter"`
	Leader     bool   `json:"leader"`
}

// HealthStatus says how real-server health is decided on this director.
type HealthStatus struct {
	Mode string `json:"mode"` // local, master, quorum
	// Fallback: cut off from the quorum, this director uses its own checks.
	Fallback bool   `json:"fallback"`
	Reason   string `json:"reason,omitempty"`
}

// Instance is one vrrp_instance as running on this director.
type Instance struct {
	Name      string   `json:"name"`
	VRID      int      `json:"vrid"`
	State     string   `json:"state"` // INIT, BACKUP, MASTER, FAULT, FENCED, STOP
	Priority  int      `json:"priority"`
	Interface string   `json:"interface,omitempty"`
	VIPs      []string `json:"vips"`
	Fenced    bool     `json:"fenced,omitempty"`
	// MasterAddr is the current master's address as heard in adverts.
	MasterAddr string `json:"master_addr,omitempty"`
	// Fence is the quorum gate's view of a fenced instance (nil: not
	// fenced, or never asked).
	Fence *InstanceFence `json:"fence,omitempty"`
}

// InstanceFence is the fence's state of one instance (fencing.md).
type InstanceFence struct {
	// Reason is why the instance is fenced now ("" when it is not): no
	// quorum, lease expired, claim refused, waiting for previous owner's
	// lease, claimed by another director, renewal refused, lease lapsed
	// (VIPs removed while renewals go on for a grace).
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Owner and Epoch are the replicated ownership record as applied here.
	Owner string `json:"owner,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
	// LeaseLeftMS is this director's lease left (0: it holds none).
	LeaseLeftMS int64 `json:"lease_left_ms,omitempty"`
}

// VirtualServer is one virtual_server as programmed (or to be programmed).
type VirtualServer struct {
	Key       string `json:"key"` // "IP:PORT/PROTO", "fwmark:N/PROTO", ...
	Address   string `json:"address,omitempty"`
	Port      uint16 `json:"port,omitempty"`
	FWMark    uint32 `json:"fwmark,omitempty"`
	Protocol  string `json:"protocol"`
	Scheduler string `json:"scheduler"`
	// Persistence in seconds, 0 for none.
	Persistence int          `json:"persistence,omitempty"`
	RealServers []RealServer `json:"real_servers"`
}

// RealServer is one real_server of a virtual server.
type RealServer struct {
	Address string `json:"address"`
	Port    uint16 `json:"port"`
	Weight  int    `json:"weight"`
	Forward string `json:"forward,omitempty"` // NAT (Masq), DR (Route), TUN
	Healthy bool   `json:"healthy"`
	// HealthSource: quorum, master, local, local-fallback.
	HealthSource string `json:"health_source,omitempty"`
	// Views: each director's replicated view (node -> up).
	Views       map[string]bool `json:"views,omitempty"`
	ActiveConns uint32          `json:"active_conns,omitempty"`
	InactConns  uint32          `json:"inact_conns,omitempty"`
}

// Check is one health checker on this director.
type Check struct {
	VirtualServer string    `json:"virtual_server"`
	RealServer    string    `json:"real_server"`
	Kind          string    `json:"kind"` // TCP_CHECK, HTTP_GET, ...
	Up            bool      `json:"up"`
	LastChange    time.Time `json:"last_change,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
}

// ConfigVersion is one committed configuration (text omitted in history).
type ConfigVersion struct {
	Version  uint64    `json:"version"`
	SHA256   string    `json:"sha256"`
	Source   string    `json:"source,omitempty"`
	PushedBy string    `json:"pushed_by,omitempty"`
	PushedAt time.Time `json:"pushed_at,omitzero"`
	// Caller is who pushed it as authenticated by the API (PushedBy is the
	// client's own word).
	Caller     string `json:"caller,omitempty"`
	RollbackOf uint64 `json:"rollback_of,omitempty"`
	Text       string `json:"text,omitempty"`
}

// ValidateRequest asks the daemon to validate a file's text.
type ValidateRequest struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// ValidateResult lists the problems found ("file:line: message").
type ValidateResult struct {
	Valid    bool     `json:"valid"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// PushRequest pushes a configuration file's text to the cluster.
type PushRequest struct {
	Name string `json:"name"`
	Text string `json:"text"`
	// PushID deduplicates retries (hactl generates one per invocation).
	PushID   string `json:"push_id,omitempty"`
	PushedBy string `json:"pushed_by,omitempty"`
}

// RollbackRequest re-commits an older version.
type RollbackRequest struct {
	Version  uint64 `json:"version"`
	PushID   string `json:"push_id,omitempty"`
	PushedBy string `json:"pushed_by,omitempty"`
}

// PushResult is the committed version and who has applied it so far.
type PushResult struct {
	Version   uint64    `json:"version"`
	SHA256    string    `json:"sha256"`
	Duplicate bool      `json:"duplicate,omitempty"`
	Applied   []Applied `json:"applied"`
	// Pending lists voters that have not reported this version yet.
	Pending []string `json:"pending"`
}

// JoinRequest is `hactl cluster join ADDR`.
type JoinRequest struct {
	Addr string `json:"addr"`
}

// RemoveRequest is `hactl cluster remove NODE`.
type RemoveRequest struct {
	Node string `json:"node"`
}

// Error codes.
const (
	CodeBadRequest  = "bad_request" // malformed request
	CodeInvalid     = "invalid"     // configuration refused by validation
	CodeNotFound    = "not_found"
	CodeUnavailable = "unavailable" // no leader, no cluster
	CodeForbidden   = "forbidden"   // the caller is not allowed to do this
	CodeTooLarge    = "too_large"   // request body over the limit
	CodeFailed      = "failed"      // anything else
)

// Error is the API's error body: {"error": {...}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Diagnostics are "file:line: message" lines for CodeInvalid.
	Diagnostics []string `json:"diagnostics,omitempty"`
}

func (e *Error) Error() string {
	if len(e.Diagnostics) > 0 {
		s := e.Message
		for _, d := range e.Diagnostics {
			s += "\n" + d
		}
		return s
	}
	return e.Message
}

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
