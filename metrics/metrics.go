// Package metrics exposes hakeepd's state as Prometheus metrics. Every
// value is read from the subsystems at scrape time through small snapshot
// functions (Sources), so there is no second bookkeeping to drift from the
// truth. The handler is served by the API server (root-only unix socket or
// mutual-TLS TCP) and, only when global_defs has metrics_listen, by a
// plain-HTTP listener of its own that serves GET /metrics and nothing else
// (listen.go).
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hakeep/checks"
	"hakeep/consensus"
	"hakeep/fence"
	"hakeep/internal/version"
	"hakeep/lvs"
	"hakeep/vrrp"
)

// Cluster is one reading of this director's cluster node.
type Cluster struct {
	Status       consensus.Status
	AppliedIndex uint64 // Raft log index last applied to the state machine
}

// Sources are the snapshot functions the collectors call at every scrape.
// A nil function, or one returning ok false, means that subsystem does not
// run here: its metrics are left out (not reported as zero).
type Sources struct {
	VRRP func() []vrrp.InstanceStatus
	// Scripts are the vrrp_scripts' results (nil: VRRP does not run).
	Scripts    func() []vrrp.ScriptStatus
	Checks     func() ([]checks.RealServerState, bool)
	CheckStats func() (checks.Stats, bool)
	IPVS       func() (lvs.Status, bool)
	Cluster    func() (Cluster, bool)
	// Config is the committed version this director runs and why the
	// last committed version was not applied (nil: it was).
	Config func() (running uint64, applyErr error)
	// Reload is the outcome of the last reload (SIGHUP or committed
	// version); ok false leaves its series out.
	Reload func() (Reload, bool)
	// Fence is the quorum gate's view of the fenced instances (ok false:
	// no cluster block, so nothing is fenced).
	Fence func() (Fence, bool)
	// NotifyFifoDropped counts the notify_fifo lines dropped because a
	// fifo's reader was too slow (ok false: no fifo configured).
	NotifyFifoDropped func() (uint64, bool)
}

// Fence is one reading of this director's fence (fencing.md).
type Fence struct {
	Instances []FenceInstance
	// Renewals is the number of lease renewal batches committed.
	Renewals uint64
}

// FenceInstance is one fenced instance as the fence sees it.
type FenceInstance struct {
	Instance  string
	VRID      uint8
	Interface string
	// Fenced: VRRP asked to be MASTER and was refused, or was revoked;
	// Reason is one of FenceReasons then.
	Fenced                        bool
	Reason                        string
	Claims, Refusals, Revocations uint64
	// LeaseLeft is this director's lease left (0: it holds none).
	LeaseLeft time.Duration
}

// FenceReasons are the reasons reported by hakeep_fence_instance_fenced
// (one series per reason, 1 for the current one).
var FenceReasons = []string{fence.ReasonNoQuorum, fence.ReasonExpired, fence.ReasonRefused, fence.ReasonWaiting,
	fence.ReasonTaken, fence.ReasonRenewalRef, fence.ReasonLapsed}

// Reload is the last reload's outcome, as Prometheus's own
// ..._config_last_reload_successful series report theirs.
type Reload struct {
	OK          bool
	LastSuccess time.Time
}

// VRRPStates are the instance states reported by hakeep_vrrp_instance_state
// (one series per state, 1 for the current one).
var VRRPStates = vrrp.StateNames()

// RaftStates are the states reported by hakeep_cluster_raft_state.
var RaftStates = []string{"Follower", "Candidate", "Leader", "Shutdown"}

// MemberStatuses are the statuses counted by hakeep_cluster_members.
var MemberStatuses = []string{"alive", "suspect", "dead", "left", "unknown"}

// NewRegistry returns a registry of our own (not the global default) with
// hakeepd's collectors and the standard Go and process collectors.
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
		&vrrpCollector{src: src.VRRP, scripts: src.Scripts},
		&checksCollector{state: src.Checks, stats: src.CheckStats},
		&ipvsCollector{src: src.IPVS},
		&clusterCollector{src: src.Cluster, config: src.Config},
		&reloadCollector{src: src.Reload},
		&fenceCollector{src: src.Fence},
		&fifoCollector{src: src.NotifyFifoDropped},
	)
	return reg
}

// Handler serves reg in the Prometheus text exposition format. A series
// that cannot be collected (e.g. a duplicate) is left out and logged to
// log (nil: slog.Default), so one bad value does not blank the whole
// scrape.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// errorLog adapts slog to promhttp's Println logger.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Println(v ...any) {
	e.log.Warn("metrics scrape", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// buildInfo is hakeep_build_info, the usual constant 1 whose labels say
// which build runs (joins on it show versions across a fleet).
func buildInfo() prometheus.Collector {
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				rev = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "hakeep_build_info",
		Help:        "Always 1; the labels are the running build's version, Go version and VCS revision.",
		ConstLabels: prometheus.Labels{"version": version.String(), "goversion": runtime.Version(), "revision": rev},
	}, func() float64 { return 1 })
}

// --- VRRP ---

var (
	vrrpState       = desc("hakeep_vrrp_instance_state", "VRRP instance state: 1 for the current state, 0 for the others.", "vrrp_instance", "vrid", "interface", "state")
	vrrpPriority    = desc("hakeep_vrrp_priority", "Effective VRRP priority (after track_* adjustments).", "vrrp_instance", "vrid")
	vrrpBase        = desc("hakeep_vrrp_base_priority", "Configured VRRP priority.", "vrrp_instance", "vrid")
	vrrpTx          = desc("hakeep_vrrp_adverts_sent_total", "VRRP adverts sent.", "vrrp_instance", "vrid")
	vrrpRx          = desc("hakeep_vrrp_adverts_received_total", "VRRP adverts received and accepted for the instance.", "vrrp_instance", "vrid")
	vrrpMaster      = desc("hakeep_vrrp_became_master_total", "Transitions of the instance into MASTER.", "vrrp_instance", "vrid")
	vrrpDrops       = desc("hakeep_vrrp_adverts_dropped_total", "VRRP adverts dropped, by reason.", "vrrp_instance", "vrid", "reason")
	vrrpVIPs        = desc("hakeep_vrrp_vips", "Virtual addresses configured on the instance.", "vrrp_instance", "vrid")
	vrrpVIPHeld     = desc("hakeep_vrrp_vip_held", "One series per virtual address of the instance: 1 while the instance is MASTER here (this director holds and announces the address), else 0.", "vrrp_instance", "vrid", "interface", "address")
	vrrpScript      = desc("hakeep_vrrp_script_status", "vrrp_script result after rise and fall: 1 succeeding (keepalived's GOOD), 0 failing (BAD).", "script")
	vrrpInstanceAll = []*prometheus.Desc{vrrpState, vrrpPriority, vrrpBase, vrrpTx, vrrpRx, vrrpMaster, vrrpDrops, vrrpVIPs, vrrpVIPHeld, vrrpScript}
)

type vrrpCollector struct {
	src     func() []vrrp.InstanceStatus
	scripts func() []vrrp.ScriptStatus
}

func (c *vrrpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range vrrpInstanceAll {
		ch <- d
	}
}

func (c *vrrpCollector) Collect(ch chan<- prometheus.Metric) {
	if c.scripts != nil {
		for _, s := range c.scripts() {
			ch <- prometheus.MustNewConstMetric(vrrpScript, prometheus.GaugeValue, boolf(s.OK), s.Name)
		}
	}
	if c.src == nil {
		return
	}
	for _, st := range c.src() {
		vrid := strconv.Itoa(int(st.VRID))
		for _, s := range VRRPStates {
			ch <- prometheus.MustNewConstMetric(vrrpState, prometheus.GaugeValue, boolf(st.State == s), st.Name, vrid, st.Interface, s)
		}
		ch <- prometheus.MustNewConstMetric(vrrpPriority, prometheus.GaugeValue, float64(st.Priority), st.Name, vrid)
		ch <- prometheus.MustNewConstMetric(vrrpBase, prometheus.GaugeValue, float64(st.BasePriority), st.Name, vrid)
		ch <- prometheus.MustNewConstMetric(vrrpTx, prometheus.CounterValue, float64(st.Counters.TxAdverts), st.Name, vrid)
		ch <- prometheus.MustNewConstMetric(vrrpRx, prometheus.CounterValue, float64(st.Counters.RxAdverts), st.Name, vrid)
		ch <- prometheus.MustNewConstMetric(vrrpMaster, prometheus.CounterValue, float64(st.Counters.BecameMaster), st.Name, vrid)
		ch <- prometheus.MustNewConstMetric(vrrpVIPs, prometheus.GaugeValue, float64(len(st.VIPs)), st.Name, vrid)
		seen := map[netip.Addr]bool{}
		for _, a := range st.VIPs {
			// The same address twice on one instance would be a duplicate
			// series, which fails the whole scrape.
			if seen[a] {
				continue
			}
			seen[a] = true
			ch <- prometheus.MustNewConstMetric(vrrpVIPHeld, prometheus.GaugeValue, boolf(st.State == "MASTER"), st.Name, vrid, st.Interface, a.String())
		}
		for reason, n := range st.Counters.Drops {
			ch <- prometheus.MustNewConstMetric(vrrpDrops, prometheus.CounterValue, float64(n), st.Name, vrid, reason)
		}
	}
}

// --- Checks ---

var (
	rsUp       = desc("hakeep_check_realserver_up", "Real server health from this director's checkers (1 up, 0 down).", "vs", "rs")
	rsWeight   = desc("hakeep_check_realserver_weight", "Real server weight set by a MISC_CHECK misc_dynamic result (absent when none).", "vs", "rs")
	ckUp       = desc("hakeep_checker_up", "One checker's current result (1 up, 0 down).", "vs", "rs", "checker", "kind")
	ckRuns     = desc("hakeep_checker_runs_total", "Checker runs.", "vs", "rs", "checker", "kind")
	ckFails    = desc("hakeep_checker_failures_total", "Checker runs that failed.", "vs", "rs", "checker", "kind")
	ckProbes   = desc("hakeep_checks_probes_total", "Probes run by the check scheduler.")
	ckJobs     = desc("hakeep_checks_jobs", "Distinct checker jobs scheduled.")
	ckInFlight = desc("hakeep_checks_in_flight", "Probes running now.")
	ckPending  = desc("hakeep_checks_pending", "Probes due but waiting for a free slot.")
	// The label is stat, not quantile: Prometheus reserves quantile for
	// summaries (which also carry _sum and _count; we have neither).
	ckLag     = desc("hakeep_checks_lag_seconds", "Lag of probes behind their schedule over recent samples: p50, p99 and max.", "stat")
	checksAll = []*prometheus.Desc{rsUp, rsWeight, ckUp, ckRuns, ckFails, ckProbes, ckJobs, ckInFlight, ckPending, ckLag}
)

type checksCollector struct {
	state func() ([]checks.RealServerState, bool)
	stats func() (checks.Stats, bool)
}

func (c *checksCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range checksAll {
		ch <- d
	}
}

func (c *checksCollector) Collect(ch chan<- prometheus.Metric) {
	if c.state != nil {
		if rss, ok := c.state(); ok {
			for _, rs := range rss {
				ch <- prometheus.MustNewConstMetric(rsUp, prometheus.GaugeValue, boolf(rs.Up), rs.VirtualServer, rs.RealServer)
				if rs.Weight >= 0 {
					ch <- prometheus.MustNewConstMetric(rsWeight, prometheus.GaugeValue, float64(rs.Weight), rs.VirtualServer, rs.RealServer)
				}
				seen := map[string]bool{}
				for _, ck := range rs.Checkers {
					// Two identical checkers on one real server would make
					// duplicate series, which fails the whole scrape.
					if seen[ck.Checker] {
						continue
					}
					seen[ck.Checker] = true
					l := []string{rs.VirtualServer, rs.RealServer, ck.Checker, string(ck.Kind)}
					ch <- prometheus.MustNewConstMetric(ckUp, prometheus.GaugeValue, boolf(ck.Up), l...)
					ch <- prometheus.MustNewConstMetric(ckRuns, prometheus.CounterValue, float64(ck.Runs), l...)
					ch <- prometheus.MustNewConstMetric(ckFails, prometheus.CounterValue, float64(ck.Failures), l...)
				}
			}
		}
	}
	if c.stats != nil {
		if s, ok := c.stats(); ok {
			ch <- prometheus.MustNewConstMetric(ckProbes, prometheus.CounterValue, float64(s.Probes))
			ch <- prometheus.MustNewConstMetric(ckJobs, prometheus.GaugeValue, float64(s.Jobs))
			ch <- prometheus.MustNewConstMetric(ckInFlight, prometheus.GaugeValue, float64(s.InFlight))
			ch <- prometheus.MustNewConstMetric(ckPending, prometheus.GaugeValue, float64(s.Pending))
			ch <- prometheus.MustNewConstMetric(ckLag, prometheus.GaugeValue, s.LagP50.Seconds(), "p50")
			ch <- prometheus.MustNewConstMetric(ckLag, prometheus.GaugeValue, s.LagP99.Seconds(), "p99")
			ch <- prometheus.MustNewConstMetric(ckLag, prometheus.GaugeValue, s.LagMax.Seconds(), "max")
		}
	}
}

// --- IPVS ---

var (
	ipvsChanges    = desc("hakeep_ipvs_reconcile_changes_total", "IPVS changes (add, edit, delete) made by the reconciler.")
	ipvsFailures   = desc("hakeep_ipvs_reconcile_failures_total", "IPVS changes that failed.")
	ipvsLastOK     = desc("hakeep_ipvs_reconcile_last_success_timestamp_seconds", "Unix time of the last reconcile that left the kernel as desired (0: never).")
	ipvsErr        = desc("hakeep_ipvs_reconcile_error", "1 when the last reconcile or kernel read failed, else 0.")
	ipvsServices   = desc("hakeep_ipvs_services", "Virtual services desired, and of those programmed in the kernel.", "state")
	ipvsDests      = desc("hakeep_ipvs_destinations", "Destinations (real servers) desired, and of those programmed in the kernel.", "state")
	ipvsDestWeight = desc("hakeep_ipvs_destination_weight", "Destination weight (as in the kernel when programmed).", "vs", "rs")
	ipvsActive     = desc("hakeep_ipvs_destination_active_connections", "Active connections to the destination (kernel counter).", "vs", "rs")
	ipvsInactive   = desc("hakeep_ipvs_destination_inactive_connections", "Inactive connections to the destination (kernel counter).", "vs", "rs")
	ipvsQuorum     = desc("hakeep_ipvs_service_quorum_up", "1 when the virtual service has its quorum of healthy real servers.", "vs")
	ipvsAll        = []*prometheus.Desc{ipvsChanges, ipvsFailures, ipvsLastOK, ipvsErr, ipvsServices, ipvsDests, ipvsDestWeight, ipvsActive, ipvsInactive, ipvsQuorum}
)

type ipvsCollector struct{ src func() (lvs.Status, bool) }

func (c *ipvsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range ipvsAll {
		ch <- d
	}
}

func (c *ipvsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src == nil {
		return
	}
	st, ok := c.src()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(ipvsChanges, prometheus.CounterValue, float64(st.Changes))
	ch <- prometheus.MustNewConstMetric(ipvsFailures, prometheus.CounterValue, float64(st.Failures))
	var lastOK float64
	if !st.LastOK.IsZero() {
		lastOK = float64(st.LastOK.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(ipvsLastOK, prometheus.GaugeValue, lastOK)
	ch <- prometheus.MustNewConstMetric(ipvsErr, prometheus.GaugeValue, boolf(st.LastError != ""))
	var svcIn, dests, destsIn int
	for _, s := range st.Services {
		if s.InKernel {
			svcIn++
		}
		ch <- prometheus.MustNewConstMetric(ipvsQuorum, prometheus.GaugeValue, boolf(s.QuorumUp), s.Service)
		for _, d := range s.Dests {
			dests++
			if d.InKernel {
				destsIn++
			}
			ch <- prometheus.MustNewConstMetric(ipvsDestWeight, prometheus.GaugeValue, float64(d.Weight), s.Service, d.Addr)
			ch <- prometheus.MustNewConstMetric(ipvsActive, prometheus.GaugeValue, float64(d.ActiveConn), s.Service, d.Addr)
			ch <- prometheus.MustNewConstMetric(ipvsInactive, prometheus.GaugeValue, float64(d.InActConn), s.Service, d.Addr)
		}
	}
	ch <- prometheus.MustNewConstMetric(ipvsServices, prometheus.GaugeValue, float64(len(st.Services)), "desired")
	ch <- prometheus.MustNewConstMetric(ipvsServices, prometheus.GaugeValue, float64(svcIn), "programmed")
	ch <- prometheus.MustNewConstMetric(ipvsDests, prometheus.GaugeValue, float64(dests), "desired")
	ch <- prometheus.MustNewConstMetric(ipvsDests, prometheus.GaugeValue, float64(destsIn), "programmed")
}

// --- Reload ---

var (
	reloadOK   = desc("hakeep_config_last_reload_successful", "1 when the last reload (SIGHUP or committed version) was applied, 0 when it was refused and the running configuration kept.")
	reloadTime = desc("hakeep_config_last_reload_success_timestamp_seconds", "Unix time of the last configuration applied (the start counts).")
)

var fifoDropped = desc("hakeep_notify_fifo_dropped_total", "notify_fifo lines dropped because the fifo was full (its reader too slow); a line is never waited for.")

type fifoCollector struct{ src func() (uint64, bool) }

func (c *fifoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- fifoDropped }

func (c *fifoCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src == nil {
		return
	}
	if n, ok := c.src(); ok {
		ch <- prometheus.MustNewConstMetric(fifoDropped, prometheus.CounterValue, float64(n))
	}
}

type reloadCollector struct{ src func() (Reload, bool) }

func (c *reloadCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reloadOK
	ch <- reloadTime
}

func (c *reloadCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src == nil {
		return
	}
	r, ok := c.src()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(reloadOK, prometheus.GaugeValue, boolf(r.OK))
	ch <- prometheus.MustNewConstMetric(reloadTime, prometheus.GaugeValue, float64(r.LastSuccess.Unix())+float64(r.LastSuccess.Nanosecond())/1e9)
}

// --- Cluster ---

var (
	raftState      = desc("hakeep_cluster_raft_state", "Raft state of this node: 1 for the current state, 0 for the others.", "state")
	raftTerm       = desc("hakeep_cluster_raft_term", "Current Raft term.")
	raftLast       = desc("hakeep_cluster_raft_last_index", "Last Raft log index stored on this node.")
	raftCommit     = desc("hakeep_cluster_raft_commit_index", "Raft commit index known to this node.")
	raftApplied    = desc("hakeep_cluster_raft_applied_index", "Raft log index last applied to the state machine.")
	members        = desc("hakeep_cluster_members", "Cluster members by status (gossip view merged with the Raft configuration).", "status")
	voters         = desc("hakeep_cluster_voters", "Voting members in the Raft configuration.")
	hasLeader      = desc("hakeep_cluster_has_leader", "1 when this node knows a leader, else 0.")
	cfgCommitted   = desc("hakeep_cluster_config_version_committed", "Configuration version committed in the cluster (0: none yet).")
	cfgRunning     = desc("hakeep_cluster_config_version_running", "Committed configuration version this director runs (0: the local file).")
	cfgApplyErr    = desc("hakeep_cluster_config_apply_error", "1 when the last committed version failed to apply on this director, else 0.")
	cfgNodeApplied = desc("hakeep_cluster_config_version_applied", "Last configuration version each director reported applying.", "node")
	cfgNodeErr     = desc("hakeep_cluster_config_node_apply_error", "1 when a director reported an error applying its last version.", "node")
	healthFallback = desc("hakeep_cluster_health_fallback", "1 when this director, cut off from the quorum, uses its own checks only.")
	clusterAll     = []*prometheus.Desc{raftState, raftTerm, raftLast, raftCommit, raftApplied, members, voters, hasLeader, cfgCommitted, cfgRunning, cfgApplyErr, cfgNodeApplied, cfgNodeErr, healthFallback}
)

type clusterCollector struct {
	src    func() (Cluster, bool)
	config func() (uint64, error)
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range clusterAll {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src == nil {
		return
	}
	cl, ok := c.src()
	if !ok {
		return
	}
	st := cl.Status
	for _, s := range RaftStates {
		ch <- prometheus.MustNewConstMetric(raftState, prometheus.GaugeValue, boolf(st.State == s), s)
	}
	ch <- prometheus.MustNewConstMetric(raftTerm, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(raftLast, prometheus.GaugeValue, float64(st.LastIndex))
	ch <- prometheus.MustNewConstMetric(raftCommit, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(raftApplied, prometheus.GaugeValue, float64(cl.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(hasLeader, prometheus.GaugeValue, boolf(st.Leader != ""))
	byStatus := map[string]int{}
	nv := 0
	for _, m := range st.Members {
		byStatus[m.Status]++
		if m.Voter {
			nv++
		}
	}
	for _, s := range MemberStatuses {
		ch <- prometheus.MustNewConstMetric(members, prometheus.GaugeValue, float64(byStatus[s]), s)
	}
	ch <- prometheus.MustNewConstMetric(voters, prometheus.GaugeValue, float64(nv))
	var committed uint64
	if st.Config != nil {
		committed = st.Config.Version
	}
	ch <- prometheus.MustNewConstMetric(cfgCommitted, prometheus.GaugeValue, float64(committed))
	if c.config != nil {
		running, err := c.config()
		ch <- prometheus.MustNewConstMetric(cfgRunning, prometheus.GaugeValue, float64(running))
		ch <- prometheus.MustNewConstMetric(cfgApplyErr, prometheus.GaugeValue, boolf(err != nil))
	}
	for node, r := range st.Applied {
		ch <- prometheus.MustNewConstMetric(cfgNodeApplied, prometheus.GaugeValue, float64(r.Version), node)
		ch <- prometheus.MustNewConstMetric(cfgNodeErr, prometheus.GaugeValue, boolf(r.Error != ""), node)
	}
	ch <- prometheus.MustNewConstMetric(healthFallback, prometheus.GaugeValue, boolf(st.Health.Fallback))
}

// --- Fence ---

var (
	fenceFenced     = desc("hakeep_fence_instance_fenced", "1 for the reason the fenced instance is refused MASTER now, 0 for the other reasons (all 0: not fenced).", "vrrp_instance", "vrid", "interface", "reason")
	fenceClaims     = desc("hakeep_fence_claims_total", "Ownership claims this director proposed for the instance.", "vrrp_instance", "vrid", "interface")
	fenceRefusals   = desc("hakeep_fence_refusals_total", "Times the fence refused the instance MASTER (no quorum, refused claim, live owner, ...).", "vrrp_instance", "vrid", "interface")
	fenceRevokes    = desc("hakeep_fence_revocations_total", "Times the fence took MASTER back from the instance (lease lost, claimed elsewhere, no quorum).", "vrrp_instance", "vrid", "interface")
	fenceLeaseLeft  = desc("hakeep_fence_lease_remaining_seconds", "Time left on this director's lease for the instance (0: it holds none).", "vrrp_instance", "vrid", "interface")
	fenceRenewals   = desc("hakeep_fence_renewals_total", "Lease renewal batches this director committed.")
	fenceCollectAll = []*prometheus.Desc{fenceFenced, fenceClaims, fenceRefusals, fenceRevokes, fenceLeaseLeft, fenceRenewals}
)

type fenceCollector struct{ src func() (Fence, bool) }

func (c *fenceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range fenceCollectAll {
		ch <- d
	}
}

func (c *fenceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src == nil {
		return
	}
	f, ok := c.src()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(fenceRenewals, prometheus.CounterValue, float64(f.Renewals))
	for _, in := range f.Instances {
		l := []string{in.Instance, strconv.Itoa(int(in.VRID)), in.Interface}
		for _, r := range FenceReasons {
			ch <- prometheus.MustNewConstMetric(fenceFenced, prometheus.GaugeValue, boolf(in.Fenced && in.Reason == r), append(l, r)...)
		}
		ch <- prometheus.MustNewConstMetric(fenceClaims, prometheus.CounterValue, float64(in.Claims), l...)
		ch <- prometheus.MustNewConstMetric(fenceRefusals, prometheus.CounterValue, float64(in.Refusals), l...)
		ch <- prometheus.MustNewConstMetric(fenceRevokes, prometheus.CounterValue, float64(in.Revocations), l...)
		ch <- prometheus.MustNewConstMetric(fenceLeaseLeft, prometheus.GaugeValue, in.LeaseLeft.Seconds(), l...)
	}
}
