package consensus

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/config"
	"hakeep/internal/lab"
	"hakeep/internal/testpki"
)

// childEnv carries a child director's settings (TestChildDirector).
const childEnv = "HAKEEP_CONSENSUS_CHILD"

// childDirector is the director side in a child process: it parses each
// committed version with its own config id and reports it applied.
type childDirector struct {
	mu  sync.Mutex
	ver uint64
	err error
}

func (d *childDirector) Instances(context.Context) ([]api.Instance, error)           { return nil, nil }
func (d *childDirector) VirtualServers(context.Context) ([]api.VirtualServer, error) { return nil, nil }
func (d *childDirector) Checks(context.Context) ([]api.Check, error)                 { return nil, nil }
func (d *childDirector) Running(context.Context) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ver, d.err
}

// TestChildDirector is not a test: TestNetnsPartition runs the test binary
// inside a lab namespace with this test selected and childEnv set, as one
// director process (node + API on a unix socket) until SIGTERM.
func TestChildDirector(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("helper process for TestNetnsPartition")
	}
	// name,bind,join,dir,cert,key,ca,gossipkeyfile
	f := strings.Split(spec, ",")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	creds, err := LoadCredentials(f[4], f[5], f[6])
	if err != nil {
		t.Fatal(err)
	}
	keys, err := gossipKeys(f[7], true)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeName: f[0], BindAddr: netip.MustParseAddr(f[1]), RaftPort: 7301, GossipPort: 7401, BootstrapExpect: 3,
		DataDir: filepath.Join(f[3], "data"), HealthMode: HealthQuorum, Validate: ValidatePushed, Timeouts: testTimeouts,
		GossipTuning: fastGossip, Logger: log, TLS: creds, GossipKeys: keys}
	if f[2] != "" {
		cfg.Join = []string{f[2]}
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &childDirector{}
	ch, _ := n.Subscribe()
	go func() {
		for cv := range ch {
			_, diags := config.Parse(cv.Source, []byte(cv.Text), config.Options{ConfigID: n.Name(), NoInclude: true})
			d.mu.Lock()
			d.err = diags.Err()
			if d.err == nil {
				d.ver = cv.Version
			}
			d.mu.Unlock()
			n.ReportApplied(cv.Version, diags.Err())
		}
	}()
	srv := api.NewServer(api.Compose(d, n.API()), log)
	if err := srv.ServeUnix(filepath.Join(f[3], "api.sock")); err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Close()
	n.Close()
}

// TestNetnsPartition runs three director processes in network namespaces
// on a bridge and partitions the Raft leader with iptables: the majority
// elects a new leader and commits, the cut-off director falls back to local
// health and commits nothing, and after healing (and after a kill -9 and
// restart from disk) all three converge.
func TestNetnsPartition(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and iptables")
	}
	if testing.Short() {
		t.Skip("starts three processes in namespaces")
	}
	nl := startNetnsLab(t)
	l, procs, clients, status, agree := nl.lab, nl.procs, nl.clients, nl.status, nl.agree
	all := []string{"d1", "d2", "d3"}
	leader := agree("a cluster of three", all, "", 0)
	text, _ := os.ReadFile("testdata/pernode.conf")
	push := func(via string, body string) uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := clients[via].ConfigPush(ctx, api.PushRequest{Name: "pernode.conf", Text: body, PushID: NewPushID()})
		if err != nil {
			t.Fatalf("push via %s: %v", via, err)
		}
		return r.Version
	}
	v1 := push("d2", string(text))
	agree("version 1 everywhere", all, "", v1)

	// Partition the leader from Raft (in and out, by port).
	idx, _ := strconv.Atoi(strings.TrimPrefix(leader, "d"))
	lh := l.Hosts[idx-1].Name
	rules := [][]string{{"INPUT", "-p", "tcp", "--dport", "7301", "-j", "DROP"}, {"OUTPUT", "-p", "tcp", "--dport", "7301", "-j", "DROP"}}
	for _, r := range rules {
		if err := l.Iptables(lh, append([]string{"-A"}, r...)...); err != nil {
			t.Fatal(err)
		}
	}
	var majority []string
	for _, n := range all {
		if n != leader {
			majority = append(majority, n)
		}
	}
	newLeader := agree("a new leader on the majority side", majority, leader, v1)
	waitFor(t, "the cut-off director in health fallback", 30*time.Second, func() bool {
		st, err := status(leader)
		return err == nil && st.Health.Fallback && st.Raft.State != "Leader"
	})
	v2 := push(newLeader, strings.ReplaceAll(string(text), "150", "155"))
	if st, err := status(leader); err != nil || st.Config.Version != v1 {
		t.Fatalf("cut-off director: %+v %v, want it still at version %d", st.Config, err, v1)
	}
	for _, r := range rules {
		if err := l.Iptables(lh, append([]string{"-D"}, r...)...); err != nil {
			t.Fatal(err)
		}
	}
	agree("all three at version 2 after healing", all, "", v2)
	waitFor(t, "the healed director out of fallback", 30*time.Second, func() bool {
		st, err := status(leader)
		return err == nil && !st.Health.Fallback
	})

	// kill -9 a follower, commit without it, restart it from disk.
	victim := majority[0]
	if cur, _ := status(victim); cur.Raft.State == "Leader" {
		victim = majority[1]
		if victim == newLeader {
			victim = leader
		}
	}
	procs[victim].Kill()
	survivors := []string{}
	for _, n := range all {
		if n != victim {
			survivors = append(survivors, n)
		}
	}
	l3 := agree("survivors agree", survivors, victim, v2)
	v3 := push(l3, strings.ReplaceAll(string(text), "150", "160"))
	if err := procs[victim].Restart(); err != nil {
		t.Fatal(err)
	}
	agree("restarted director caught up from disk and the log", all, "", v3)
	waitFor(t, "every director applied version 3", 30*time.Second, func() bool {
		st, err := status("d1")
		if err != nil {
			return false
		}
		n := 0
		for _, a := range st.Config.Applied {
			if a.Version == v3 && a.Error == "" {
				n++
			}
		}
		return n == 3
	})
}

// netnsLab is three director processes in a lab.
type netnsLab struct {
	lab     *lab.Lab
	procs   map[string]*lab.Process
	clients map[string]*api.Client
	status  func(name string) (api.Status, error)
	agree   func(what string, names []string, exclude string, v uint64) string
}

func startNetnsLab(t testing.TB) *netnsLab {
	t.Helper()
	l, err := lab.New(fmt.Sprintf("hkc%d-", os.Getpid()%100000), 3, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	join := netip.AddrPortFrom(l.Hosts[0].Addr4.Addr(), 7401).String()
	ca := testpki.New(t)
	procs := map[string]*lab.Process{}
	clients := map[string]*api.Client{}
	for i, h := range l.Hosts {
		name := fmt.Sprintf("d%d", i+1)
		j := join
		if i == 0 {
			j = ""
		}
		fs := ca.Issue(t, name)
		spec := strings.Join([]string{name, h.Addr4.Addr().String(), j, h.Dir, fs.Cert, fs.Key, fs.CA, ca.GossipKeyFile(t)}, ",")
		p, err := l.Start(h.Name, "director", "env", childEnv+"="+spec, exe, "-test.run=^TestChildDirector$", "-test.v")
		if err != nil {
			t.Fatal(err)
		}
		procs[name] = p
		clients[name] = api.NewClient(filepath.Join(h.Dir, "api.sock"))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range procs {
				t.Logf("%s log tail:\n%s", name, p.Tail(30))
			}
		}
	})
	status := func(name string) (api.Status, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return clients[name].Status(ctx)
	}
	// agree waits until every named director reports the same leader (not
	// excluded) and at least version v; it returns the leader.
	agree := func(what string, names []string, exclude string, v uint64) string {
		var leader string
		waitFor(t, what, 30*time.Second, func() bool {
			leader = ""
			for _, n := range names {
				st, err := status(n)
				if err != nil || st.Raft.Leader == "" || st.Raft.Leader == exclude || st.Config.Version < v || (leader != "" && st.Raft.Leader != leader) {
					return false
				}
				leader = st.Raft.Leader
			}
			return true
		})
		return leader
	}
	return &netnsLab{lab: l, procs: procs, clients: clients, status: status, agree: agree}
}

// BenchmarkNetnsPushApplied: three director processes in namespaces on a
// bridge (real veth, real TCP); push until every director has parsed the
// version with its config id and its applied report is committed.
func BenchmarkNetnsPushApplied(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces")
	}
	nl := startNetnsLab(b)
	all := []string{"d1", "d2", "d3"}
	leader := nl.agree("a cluster of three", all, "", 0)
	text, _ := os.ReadFile("testdata/pernode.conf")
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := strings.ReplaceAll(string(text), "150", strconv.Itoa(1+i%200))
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := nl.clients[leader].ConfigPush(ctx, api.PushRequest{Name: "pernode.conf", Text: body, PushID: NewPushID()})
		if err == nil {
			_, err = nl.clients[leader].WaitApplied(ctx, r.Version)
		}
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}
