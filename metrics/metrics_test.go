package metrics_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"hakeep/api"
	"hakeep/api/apitest"
	"hakeep/checks"
	"hakeep/consensus"
	"hakeep/internal/version"
	"hakeep/lvs"
	"hakeep/metrics"
	"hakeep/vrrp"
)

// fakeState is what the fake sources return; tests change it between
// scrapes to prove values are read at scrape time.
type fakeState struct {
	vrrp     []vrrp.InstanceStatus
	scripts  []vrrp.ScriptStatus
	rs       []checks.RealServerState
	stats    *checks.Stats
	ipvs     *lvs.Status
	cluster  *metrics.Cluster
	running  uint64
	applyErr error
	reload   *metrics.Reload
	fence    *metrics.Fence
	fifoDrop *uint64
}

func (f *fakeState) sources() metrics.Sources {
	return metrics.Sources{
		VRRP:    func() []vrrp.InstanceStatus { return f.vrrp },
		Scripts: func() []vrrp.ScriptStatus { return f.scripts },
		Checks:  func() ([]checks.RealServerState, bool) { return f.rs, f.rs != nil },
		CheckStats: func() (checks.Stats, bool) {
			if f.stats == nil {
				return checks.Stats{}, false
			}
			return *f.stats, true
		},
		IPVS: func() (lvs.Status, bool) {
			if f.ipvs == nil {
				return lvs.Status{}, false
			}
			return *f.ipvs, true
		},
		Cluster: func() (metrics.Cluster, bool) {
			if f.cluster == nil {
				return metrics.Cluster{}, false
			}
			return *f.cluster, true
		},
		Config: func() (uint64, error) { return f.running, f.applyErr },
		Reload: func() (metrics.Reload, bool) {
			if f.reload == nil {
				return metrics.Reload{}, false
			}
			return *f.reload, true
		},
		Fence: func() (metrics.Fence, bool) {
			if f.fence == nil {
				return metrics.Fence{}, false
			}
			return *f.fence, true
		},
		NotifyFifoDropped: func() (uint64, bool) {
			if f.fifoDrop == nil {
				return 0, false
			}
			return *f.fifoDrop, true
		},
	}
}

func full() *fakeState {
	lastOK := time.Unix(1700000000, 500_000_000)
	return &fakeState{
		vrrp: []vrrp.InstanceStatus{{
			Name: "VI_1", VRID: 51, Interface: "eth0", State: "MASTER", Priority: 140, BasePriority: 150,
			VIPs:     []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.101")},
			Counters: vrrp.Counters{RxAdverts: 7, TxAdverts: 1234, BecameMaster: 2, Drops: map[string]uint64{"auth": 3, "ttl": 1}},
		}, {
			Name: "VI_2", VRID: 52, Interface: "eth1", State: "BACKUP", Priority: 100, BasePriority: 100,
			// The same address twice: one series, not a failed scrape.
			VIPs: []netip.Addr{netip.MustParseAddr("fd00::52"), netip.MustParseAddr("fd00::52")},
		}},
		scripts: []vrrp.ScriptStatus{{Name: "chk_haproxy", OK: true}, {Name: "chk_nginx", OK: false}},
		rs: []checks.RealServerState{{
			VirtualServer: "10.0.0.100:80/TCP", RealServer: "192.168.0.10:80", Up: true, Weight: -1,
			Checkers: []checks.CheckerState{{Checker: "HTTP_GET 192.168.0.10:80/health", Kind: "HTTP_GET", Up: true, Runs: 10, Failures: 1}},
		}, {
			VirtualServer: "10.0.0.100:80/TCP", RealServer: "192.168.0.11:80", Up: false, Weight: 5,
			Checkers: []checks.CheckerState{
				{Checker: "TCP_CHECK 192.168.0.11:80", Kind: "TCP_CHECK", Runs: 4, Failures: 4},
				{Checker: "TCP_CHECK 192.168.0.11:80", Kind: "TCP_CHECK", Runs: 4, Failures: 4}, // duplicate: reported once
			},
		}},
		stats: &checks.Stats{Probes: 99, Jobs: 3, InFlight: 1, Pending: 2, LagP50: time.Millisecond, LagP99: 20 * time.Millisecond, LagMax: time.Second},
		ipvs: &lvs.Status{Changes: 12, Failures: 1, LastOK: lastOK, Services: []lvs.ServiceStatus{{
			Service: "TCP 10.0.0.100:80", QuorumUp: true, InKernel: true, Dests: []lvs.DestStatus{
				{Addr: "192.168.0.10:80", Weight: 3, ActiveConn: 5, InActConn: 8, InKernel: true},
				{Addr: "192.168.0.11:80", Weight: 0, InKernel: false},
			},
		}, {Service: "UDP 10.0.0.100:53", InKernel: false}}},
		cluster: &metrics.Cluster{AppliedIndex: 41, Status: consensus.Status{
			Node: "d1", State: "Leader", Leader: "d1", Term: 3, LastIndex: 42, CommitIndex: 41,
			Config:  &consensus.ConfigVersion{Version: 7},
			Applied: map[string]consensus.AppliedRecord{"d1": {Node: "d1", Version: 7}, "d2": {Node: "d2", Version: 6, Error: "bad interface"}},
			Members: []consensus.Member{{Name: "d1", Status: "alive", Voter: true}, {Name: "d2", Status: "alive", Voter: true}, {Name: "d3", Status: "suspect", Voter: true}, {Name: "d4", Status: "unknown"}},
			Health:  consensus.HealthStatus{Mode: "quorum", Fallback: true},
		}},
		running:  6,
		applyErr: errors.New("interface eth9 missing"),
		reload:   &metrics.Reload{OK: false, LastSuccess: time.Unix(1700000100, 250_000_000)},
		fifoDrop: new(uint64(3)),
		fence: &metrics.Fence{Renewals: 812, Instances: []metrics.FenceInstance{
			{Instance: "VI_1", VRID: 51, Interface: "eth0", Claims: 3, Refusals: 0, Revocations: 1, LeaseLeft: 750 * time.Millisecond},
			{Instance: "VI_2", VRID: 52, Interface: "eth1", Fenced: true, Reason: "no quorum", Claims: 2, Refusals: 5},
		}},
	}
}

// scrape serves the registry with the real handler and parses the reply.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d: %s", rec.Code, rec.Body.String())
	}
	return parse(t, rec.Body)
}

func parse(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// want; ok false if there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() != "" {
			return true
		}
	}
	return false
}

func l(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestScrapeValues(t *testing.T) {
	fs := full()
	fams := scrape(t, metrics.Handler(metrics.NewRegistry(fs.sources()), nil))
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hakeep_vrrp_instance_state", l("vrrp_instance", "VI_1", "vrid", "51", "interface", "eth0", "state", "MASTER"), 1},
		{"hakeep_vrrp_instance_state", l("vrrp_instance", "VI_1", "state", "BACKUP"), 0},
		{"hakeep_vrrp_instance_state", l("vrrp_instance", "VI_2", "vrid", "52", "state", "BACKUP"), 1},
		{"hakeep_vrrp_instance_state", l("vrrp_instance", "VI_2", "state", "MASTER"), 0},
		{"hakeep_vrrp_priority", l("vrrp_instance", "VI_1", "vrid", "51"), 140},
		{"hakeep_vrrp_base_priority", l("vrrp_instance", "VI_1"), 150},
		{"hakeep_vrrp_adverts_sent_total", l("vrrp_instance", "VI_1"), 1234},
		{"hakeep_vrrp_adverts_received_total", l("vrrp_instance", "VI_1"), 7},
		{"hakeep_vrrp_became_master_total", l("vrrp_instance", "VI_1"), 2},
		{"hakeep_vrrp_adverts_dropped_total", l("vrrp_instance", "VI_1", "reason", "auth"), 3},
		{"hakeep_vrrp_adverts_dropped_total", l("vrrp_instance", "VI_1", "reason", "ttl"), 1},
		{"hakeep_vrrp_vips", l("vrrp_instance", "VI_1"), 2},
		{"hakeep_vrrp_vips", l("vrrp_instance", "VI_2"), 2},
		{"hakeep_vrrp_vip_held", l("vrrp_instance", "VI_1", "vrid", "51", "interface", "eth0", "address", "10.0.0.100"), 1},
		{"hakeep_vrrp_vip_held", l("vrrp_instance", "VI_1", "address", "10.0.0.101"), 1},
		{"hakeep_vrrp_vip_held", l("vrrp_instance", "VI_2", "vrid", "52", "interface", "eth1", "address", "fd00::52"), 0},
		{"hakeep_vrrp_script_status", l("script", "chk_haproxy"), 1},
		{"hakeep_vrrp_script_status", l("script", "chk_nginx"), 0},
		{"hakeep_build_info", l("version", version.String(), "goversion", runtime.Version()), 1},

		{"hakeep_check_realserver_up", l("vs", "10.0.0.100:80/TCP", "rs", "192.168.0.10:80"), 1},
		{"hakeep_check_realserver_up", l("rs", "192.168.0.11:80"), 0},
		{"hakeep_check_realserver_weight", l("rs", "192.168.0.11:80"), 5},
		{"hakeep_checker_runs_total", l("rs", "192.168.0.10:80", "kind", "HTTP_GET", "checker", "HTTP_GET 192.168.0.10:80/health"), 10},
		{"hakeep_checker_failures_total", l("rs", "192.168.0.10:80"), 1},
		{"hakeep_checker_up", l("rs", "192.168.0.10:80"), 1},
		{"hakeep_checker_failures_total", l("rs", "192.168.0.11:80", "kind", "TCP_CHECK"), 4},
		{"hakeep_checks_probes_total", nil, 99},
		{"hakeep_checks_jobs", nil, 3},
		{"hakeep_checks_in_flight", nil, 1},
		{"hakeep_checks_pending", nil, 2},
		{"hakeep_checks_lag_seconds", l("stat", "p50"), 0.001},
		{"hakeep_checks_lag_seconds", l("stat", "p99"), 0.02},
		{"hakeep_checks_lag_seconds", l("stat", "max"), 1},

		{"hakeep_ipvs_reconcile_changes_total", nil, 12},
		{"hakeep_ipvs_reconcile_failures_total", nil, 1},
		{"hakeep_ipvs_reconcile_last_success_timestamp_seconds", nil, 1700000000.5},
		{"hakeep_ipvs_reconcile_error", nil, 0},
		{"hakeep_ipvs_services", l("state", "desired"), 2},
		{"hakeep_ipvs_services", l("state", "programmed"), 1},
		{"hakeep_ipvs_destinations", l("state", "desired"), 2},
		{"hakeep_ipvs_destinations", l("state", "programmed"), 1},
		{"hakeep_ipvs_destination_weight", l("vs", "TCP 10.0.0.100:80", "rs", "192.168.0.10:80"), 3},
		{"hakeep_ipvs_destination_active_connections", l("rs", "192.168.0.10:80"), 5},
		{"hakeep_ipvs_destination_inactive_connections", l("rs", "192.168.0.10:80"), 8},
		{"hakeep_ipvs_service_quorum_up", l("vs", "TCP 10.0.0.100:80"), 1},
		{"hakeep_ipvs_service_quorum_up", l("vs", "UDP 10.0.0.100:53"), 0},

		{"hakeep_cluster_raft_state", l("state", "Leader"), 1},
		{"hakeep_cluster_raft_state", l("state", "Follower"), 0},
		{"hakeep_cluster_raft_term", nil, 3},
		{"hakeep_cluster_raft_last_index", nil, 42},
		{"hakeep_cluster_raft_commit_index", nil, 41},
		{"hakeep_cluster_raft_applied_index", nil, 41},
		{"hakeep_cluster_has_leader", nil, 1},
		{"hakeep_cluster_members", l("status", "alive"), 2},
		{"hakeep_cluster_members", l("status", "suspect"), 1},
		{"hakeep_cluster_members", l("status", "dead"), 0},
		{"hakeep_cluster_members", l("status", "unknown"), 1},
		{"hakeep_cluster_voters", nil, 3},
		{"hakeep_cluster_config_version_committed", nil, 7},
		{"hakeep_cluster_config_version_running", nil, 6},
		{"hakeep_cluster_config_apply_error", nil, 1},
		{"hakeep_cluster_config_version_applied", l("node", "d2"), 6},
		{"hakeep_cluster_config_node_apply_error", l("node", "d2"), 1},
		{"hakeep_cluster_config_node_apply_error", l("node", "d1"), 0},
		{"hakeep_cluster_health_fallback", nil, 1},
		{"hakeep_config_last_reload_successful", nil, 0},
		{"hakeep_config_last_reload_success_timestamp_seconds", nil, 1700000100.25},
		{"hakeep_notify_fifo_dropped_total", nil, 3},
		{"hakeep_fence_renewals_total", nil, 812},
		{"hakeep_fence_instance_fenced", l("vrrp_instance", "VI_1", "vrid", "51", "interface", "eth0", "reason", "no quorum"), 0},
		{"hakeep_fence_instance_fenced", l("vrrp_instance", "VI_2", "vrid", "52", "interface", "eth1", "reason", "no quorum"), 1},
		{"hakeep_fence_instance_fenced", l("vrrp_instance", "VI_2", "reason", "lease expired"), 0},
		{"hakeep_fence_claims_total", l("vrrp_instance", "VI_1", "vrid", "51"), 3},
		{"hakeep_fence_refusals_total", l("vrrp_instance", "VI_2"), 5},
		{"hakeep_fence_revocations_total", l("vrrp_instance", "VI_1"), 1},
		{"hakeep_fence_lease_remaining_seconds", l("vrrp_instance", "VI_1"), 0.75},
		{"hakeep_fence_lease_remaining_seconds", l("vrrp_instance", "VI_2"), 0},
	} {
		got, ok := value(fams, tc.name, tc.labels)
		if !ok {
			t.Errorf("%s%v: no series", tc.name, tc.labels)
			continue
		}
		if got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Weight is absent without a misc_dynamic result (-1), not 0 or -1.
	if _, ok := value(fams, "hakeep_check_realserver_weight", l("rs", "192.168.0.10:80")); ok {
		t.Error("weight reported for a real server without a dynamic weight")
	}
	if n := len(fams["hakeep_vrrp_vip_held"].GetMetric()); n != 3 {
		t.Errorf("VIP series = %d, want 3 (VI_2's address once)", n)
	}
	// The build's revision is a label (Go's VCS stamp; "unknown" in a
	// test binary, which has none).
	if bi := fams["hakeep_build_info"].GetMetric(); len(bi) != 1 || !hasLabel(bi[0], "revision") {
		t.Errorf("hakeep_build_info = %v, want one series with a revision label", bi)
	}
	// The duplicate checker entry gives one series, not a failed scrape.
	if n := len(fams["hakeep_checker_runs_total"].GetMetric()); n != 2 {
		t.Errorf("checker series = %d, want 2", n)
	}
	// The standard collectors are on our registry.
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("standard metric %s missing", name)
		}
	}
}

func TestReadAtScrapeTime(t *testing.T) {
	fs := full()
	h := metrics.Handler(metrics.NewRegistry(fs.sources()), nil)
	scrape(t, h)
	fs.vrrp[0].State = "BACKUP"
	fs.vrrp[0].Counters.TxAdverts = 2000
	fs.scripts[1].OK = true
	fs.ipvs.LastError = "netlink: permission denied"
	fs.cluster.Status.State = "Follower"
	fs.applyErr = nil
	fs.fence.Instances[1].Fenced = false
	fs.fence.Instances[0].Fenced, fs.fence.Instances[0].Reason = true, "lease expired"
	fams := scrape(t, h)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"hakeep_vrrp_instance_state", l("vrrp_instance", "VI_1", "state", "MASTER"), 0},
		{"hakeep_vrrp_instance_state", l("vrrp_instance", "VI_1", "state", "BACKUP"), 1},
		{"hakeep_vrrp_adverts_sent_total", l("vrrp_instance", "VI_1"), 2000},
		{"hakeep_vrrp_vip_held", l("vrrp_instance", "VI_1", "address", "10.0.0.100"), 0},
		{"hakeep_vrrp_script_status", l("script", "chk_nginx"), 1},
		{"hakeep_ipvs_reconcile_error", nil, 1},
		{"hakeep_cluster_raft_state", l("state", "Leader"), 0},
		{"hakeep_cluster_raft_state", l("state", "Follower"), 1},
		{"hakeep_cluster_config_apply_error", nil, 0},
		{"hakeep_fence_instance_fenced", l("vrrp_instance", "VI_2", "reason", "no quorum"), 0},
		{"hakeep_fence_instance_fenced", l("vrrp_instance", "VI_1", "reason", "lease expired"), 1},
	} {
		if got, ok := value(fams, tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
}

// A subsystem that does not run here has no series at all.
func TestAbsentSubsystems(t *testing.T) {
	for _, tc := range []struct {
		name    string
		src     metrics.Sources
		present []string
		absent  []string
	}{
		{"nothing", metrics.Sources{}, []string{"hakeep_build_info"}, []string{"hakeep_vrrp_instance_state", "hakeep_vrrp_vip_held", "hakeep_vrrp_script_status", "hakeep_check_realserver_up", "hakeep_checks_probes_total", "hakeep_ipvs_services", "hakeep_cluster_raft_term", "hakeep_cluster_config_version_running", "hakeep_fence_renewals_total"}},
		{"not running", (&fakeState{}).sources(), nil, []string{"hakeep_vrrp_instance_state", "hakeep_check_realserver_up", "hakeep_checks_probes_total", "hakeep_ipvs_services", "hakeep_cluster_raft_term", "hakeep_fence_instance_fenced"}},
		{"vrrp only", metrics.Sources{VRRP: full().sources().VRRP}, []string{"hakeep_vrrp_instance_state"}, []string{"hakeep_ipvs_services", "hakeep_cluster_raft_term"}},
		{"checks without ipvs", metrics.Sources{Checks: full().sources().Checks, IPVS: (&fakeState{}).sources().IPVS}, []string{"hakeep_check_realserver_up"}, []string{"hakeep_ipvs_reconcile_changes_total"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fams := scrape(t, metrics.Handler(metrics.NewRegistry(tc.src), nil))
			for _, n := range tc.present {
				if fams[n] == nil {
					t.Errorf("%s missing", n)
				}
			}
			for _, n := range tc.absent {
				if fams[n] != nil {
					t.Errorf("%s present: %v", n, fams[n])
				}
			}
			if fams["go_goroutines"] == nil {
				t.Error("go collector missing")
			}
		})
	}
}

// Every hakeep_ metric name is documented in cmd/hactl/README.md, so the
// names operators alert on are the ones the daemon exports.
func TestNamesDocumented(t *testing.T) {
	fams := scrape(t, metrics.Handler(metrics.NewRegistry(full().sources()), nil))
	doc := readDoc(t)
	var names []string
	for n := range fams {
		if strings.HasPrefix(n, "hakeep_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) < 40 {
		t.Fatalf("only %d hakeep_ metric families: %v", len(names), names)
	}
	for _, n := range names {
		if !strings.Contains(doc, "`"+n+"`") {
			t.Errorf("metric %s not documented in cmd/hactl/README.md", n)
		}
	}
}

// The metrics are served by the real API server on its root-only unix
// socket, next to the JSON API.
func TestThroughAPIServerUnixSocket(t *testing.T) {
	fs := full()
	srv := api.NewServer(&apitest.Fake{Node: "d1"}, nil)
	if err := srv.Handle("GET /metrics", metrics.Handler(metrics.NewRegistry(fs.sources()), nil)); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "run", "hakeepd.sock")
	if err := srv.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://hakeepd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text exposition format", ct)
	}
	fams := parse(t, resp.Body)
	if v, ok := value(fams, "hakeep_vrrp_instance_state", l("vrrp_instance", "VI_1", "state", "MASTER")); !ok || v != 1 {
		t.Fatalf("VI_1 MASTER = %v %v", v, ok)
	}
	// The JSON API still answers on the same socket.
	cl := api.NewClient(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := cl.Status(ctx); err != nil || st.Node != "d1" {
		t.Fatalf("status next to metrics: %+v %v", st, err)
	}
}

func readDoc(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join("..", "go.mod")); err != nil {
		t.Skip("no source tree here (the vmtest guest has only the test binary)")
	}
	b, err := os.ReadFile(filepath.Join("..", "cmd", "hactl", "README.md"))
	if err != nil {
		t.Fatalf("read metric docs: %v", err)
	}
	return string(b)
}
