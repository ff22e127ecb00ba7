package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"hakeep/api"
	"hakeep/config"
	"hakeep/consensus"
	"hakeep/internal/testpki"
)

// director is the test's stand-in for the daemon's director: it applies
// committed versions by parsing them with its own config id (so @node lines
// select per-director values) and reports back, like the real one must.
type director struct {
	node *consensus.Node
	mu   sync.Mutex
	cfg  *config.Config
	ver  uint64
	err  error
}

func (d *director) run(ch <-chan consensus.ConfigVersion) {
	for cv := range ch {
		cfg, diags := config.Parse(cv.Source, []byte(cv.Text), config.Options{ConfigID: d.node.Name(), NoInclude: true})
		err := diags.Err()
		d.mu.Lock()
		if err == nil {
			d.cfg, d.ver = cfg, cv.Version
		}
		d.err = err
		d.mu.Unlock()
		d.node.ReportApplied(cv.Version, err)
	}
}

func (d *director) Instances(ctx context.Context) ([]api.Instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.Instance
	if d.cfg != nil {
		for _, i := range d.cfg.Instances {
			var vips []string
			for _, v := range i.VIPs {
				vips = append(vips, v.Prefix.String())
			}
			out = append(out, api.Instance{Name: i.Name, VRID: i.VRID, State: i.State, Priority: i.Priority, Interface: i.Interface, VIPs: vips})
		}
	}
	return out, nil
}
func (d *director) VirtualServers(ctx context.Context) ([]api.VirtualServer, error) { return nil, nil }
func (d *director) Checks(ctx context.Context) ([]api.Check, error)                 { return nil, nil }
func (d *director) Running(ctx context.Context) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ver, d.err
}

func startCluster(t *testing.T) []string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var socks []string
	var first string
	base := t.TempDir()
	ca := testpki.New(t)
	for i := 1; i <= 3; i++ {
		fs := ca.Issue(t, fmt.Sprintf("d%d", i))
		creds, err := consensus.LoadCredentials(fs.Cert, fs.Key, fs.CA)
		if err != nil {
			t.Fatal(err)
		}
		cfg := consensus.Config{
			TLS: creds, GossipKeys: [][]byte{[]byte("0123456789abcdef")},
			NodeName: fmt.Sprintf("d%d", i), BindAddr: netip.MustParseAddr("127.0.0.1"), DataDir: filepath.Join(base, fmt.Sprintf("d%d", i)),
			BootstrapExpect: 3, Validate: consensus.ValidatePushed, Logger: log,
			Timeouts: consensus.Timeouts{Heartbeat: 250 * time.Millisecond, Election: 250 * time.Millisecond, LeaderLease: 150 * time.Millisecond, Commit: 5 * time.Millisecond},
			GossipTuning: func(c *memberlist.Config) {
				c.ProbeInterval, c.GossipInterval = 200*time.Millisecond, 50*time.Millisecond
			},
		}
		if first != "" {
			cfg.Join = []string{first}
		}
		n, err := consensus.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		if first == "" {
			first = n.GossipAddr()
		}
		d := &director{node: n}
		ch, cancel := n.Subscribe()
		t.Cleanup(cancel)
		go d.run(ch)
		s := api.NewServer(api.Compose(d, n.API()), log)
		sock := filepath.Join(base, fmt.Sprintf("d%d.sock", i))
		if err := s.ServeUnix(sock); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		socks = append(socks, sock)
	}
	// Wait for a leader seen by all three.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, s := range socks {
			st, err := api.NewClient(s).Status(context.Background())
			ok = ok && err == nil && st.Raft.Leader != "" && len(st.Members) == 3
		}
		if ok {
			return socks
		}
		if time.Now().After(deadline) {
			t.Fatal("cluster did not form")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHactlAgainstRealCluster(t *testing.T) {
	socks := startCluster(t)
	good := writeFile(t, "lb.conf", goodConf+"vrrp_instance VI_2 {\n interface eth0\n virtual_router_id 52\n @d3 priority 90\n virtual_ipaddress {\n 10.0.0.101\n }\n}\n")
	// Push through d2 and wait until all three applied it.
	code, out, errOut := hactl("--api", socks[1], "config", "push", good, "--wait", "--timeout", "20s")
	if code != 0 || !strings.Contains(out, "committed version 1") || !strings.Contains(out, "applied on: d1, d2, d3") {
		t.Fatalf("push = %d\n%s\n%s", code, out, errOut)
	}
	want := map[int]int{0: 150, 1: 120, 2: 100}
	for i, s := range socks {
		code, out, _ := hactl("--api", s, "--json", "status")
		var st api.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status on d%d = %d %s", i+1, code, out)
		}
		if st.Config.Version != 1 || st.Config.Running != 1 || len(st.Config.SHA256) != 64 || st.Raft.Term == 0 || len(st.Members) != 3 {
			t.Fatalf("d%d status = %+v", i+1, st)
		}
		if st.Instances[0].Priority != want[i] { // d3 has no @d3 line: the default
			t.Fatalf("d%d VI_1 priority = %d, want %d", i+1, st.Instances[0].Priority, want[i])
		}
	}
	// A bad file is refused before anything is sent.
	bad := writeFile(t, "bad.conf", badConf)
	if code, _, errOut := hactl("--api", socks[0], "config", "push", bad); code != 1 || !strings.Contains(errOut, "bad.conf:3:") {
		t.Fatalf("bad push = %d %q", code, errOut)
	}
	if code, out, _ := hactl("--api", socks[2], "config", "history"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("history after refused push = %d %q", code, out)
	}
	// Rollback and show.
	other := writeFile(t, "lb2.conf", strings.ReplaceAll(goodConf, "10.0.0.100/24", "10.0.0.200/24"))
	if code, _, errOut := hactl("--api", socks[0], "config", "push", other, "--wait"); code != 0 {
		t.Fatalf("second push: %s", errOut)
	}
	if code, out, _ := hactl("--api", socks[2], "config", "show"); code != 0 || !strings.Contains(out, "10.0.0.200/24") {
		t.Fatalf("show after push = %q", out)
	}
	if code, out, errOut := hactl("--api", socks[2], "config", "rollback", "1", "--wait"); code != 0 || !strings.Contains(out, "as version 3") {
		t.Fatalf("rollback = %d %q %q", code, out, errOut)
	}
	if code, out, _ := hactl("--api", socks[1], "config", "show"); code != 0 || !strings.Contains(out, "VI_2") {
		t.Fatalf("show after rollback = %q", out)
	}
	// d1's copy of the log may trail the one --wait asked by a moment.
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, out, _ = hactl("--api", socks[0], "status")
		if code == 0 && strings.Contains(out, "applied: d1 v3, d2 v3, d3 v3") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after rollback:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, _ = hactl("--api", socks[0], "cluster", "members")
	if code != 0 || strings.Count(out, "alive") != 3 {
		t.Fatalf("members = %q", out)
	}
}
