package director

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/consensus"
	"hakeep/internal/testpki"
)

// scrapeMetrics fetches /metrics over the API's unix socket.
func scrapeMetrics(t *testing.T, sock string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://hakeepd/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d %v: %s", resp.StatusCode, err, b)
	}
	return string(b)
}

// TestMetricsServedByDirector runs a one-node cluster director (real Raft
// on loopback, the checks side on, VRRP and IPVS off so the host's kernel
// is not touched) and scrapes its API socket: the cluster and checks
// metrics follow a pushed configuration, VRRP has no series.
func TestMetricsServedByDirector(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a one-node Raft cluster")
	}
	dir := t.TempDir()
	text := fmt.Sprintf("cluster {\n node_name m1\n bind_addr 127.0.0.1\n raft_port %d\n gossip_port %d\n bootstrap_expect 1\n data_dir %s\n%s}\n",
		freePort(t), freePort(t), dir, testpki.New(t).ClusterLines(t, "m1"))
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(path, config.Options{ConfigID: "m1"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	sock := filepath.Join(dir, "run", "hakeepd.sock")
	d, err := New(Options{ConfigFile: path, ConfigID: "m1", Checks: true, APISocket: sock, Log: quietLog()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("director: %v", err)
		}
	})
	waitFor(t, "this node to lead", 30*time.Second, func() bool {
		n := d.current().node
		return n != nil && n.IsLeader()
	})
	waitFor(t, "the API socket", 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })

	body := scrapeMetrics(t, sock)
	for _, line := range []string{
		`hakeep_cluster_raft_state{state="Leader"} 1`,
		`hakeep_cluster_raft_state{state="Follower"} 0`,
		`hakeep_cluster_has_leader 1`,
		`hakeep_cluster_voters 1`,
		`hakeep_cluster_config_version_committed 0`,
		`hakeep_cluster_config_version_running 0`,
		`hakeep_cluster_config_apply_error 0`,
		`hakeep_checks_jobs 0`,
	} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	for _, absent := range []string{"hakeep_vrrp_instance_state{", "hakeep_ipvs_services{"} {
		if strings.Contains(body, absent) {
			t.Errorf("metrics have %s for a subsystem that does not run", absent)
		}
	}

	// A pushed version shows as committed and, once applied, running.
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	res, err := d.current().node.Push(pctx, "pushed.conf", []byte("global_defs {\n router_id m1\n}\n"), "test", consensus.NewPushID())
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	want := []string{
		fmt.Sprintf("hakeep_cluster_config_version_committed %d", res.Version),
		fmt.Sprintf("hakeep_cluster_config_version_running %d", res.Version),
		fmt.Sprintf(`hakeep_cluster_config_version_applied{node="m1"} %d`, res.Version),
	}
	waitFor(t, "the pushed version in the metrics", 20*time.Second, func() bool {
		body = scrapeMetrics(t, sock)
		for _, line := range want {
			if !strings.Contains(body, "\n"+line+"\n") {
				return false
			}
		}
		return true
	})
}
