package director

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/consensus"
	"hakeep/internal/testpki"
	"hakeep/internal/vmtest"
	"hakeep/lvs"
)

// freePort returns a port free for both TCP and UDP on 127.0.0.1 (gossip
// uses both), chosen below the kernel's ephemeral range so that no other
// test's outgoing connection takes it before the director binds it.
func freePort(t *testing.T) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// startDirectors runs n directors in this process, each with its own
// cluster { } block on loopback (real Raft and gossip transports), VRRP off
// (no network namespaces here) and the checks/IPVS side on.
func startDirectors(t *testing.T, n int, initial string) []*Director {
	t.Helper()
	type ports struct{ raft, gossip int }
	ps := make([]ports, n)
	for i := range ps {
		ps[i] = ports{freePort(t), freePort(t)}
	}
	ca := testpki.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	var ds []*Director
	done := make(chan struct{}, n)
	for i := range n {
		var join []string
		for j := range n {
			if j != i {
				join = append(join, fmt.Sprintf("127.0.0.1:%d", ps[j].gossip))
			}
		}
		dir := t.TempDir()
		text := fmt.Sprintf("cluster {\n node_name d%d\n bind_addr 127.0.0.1\n raft_port %d\n gossip_port %d\n join { %s }\n bootstrap_expect %d\n data_dir %s\n%s}\n%s",
			i+1, ps[i].raft, ps[i].gossip, strings.Join(join, " "), n, dir, ca.ClusterLines(t, fmt.Sprintf("d%d", i+1)), initial)
		path := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("d%d", i+1)
		cfg, diags := config.Load(path, config.Options{ConfigID: id})
		if diags.HasErrors() {
			t.Fatalf("config: %v", diags)
		}
		d, err := New(Options{ConfigFile: path, ConfigID: id, Checks: true, Log: quietLog(), OpenIPVS: testIPVS(t, id)}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
		go func() {
			if err := d.Run(ctx); err != nil {
				t.Errorf("director %s: %v", id, err)
			}
			done <- struct{}{}
		}()
	}
	t.Cleanup(func() {
		cancel()
		timeout := time.After(30 * time.Second)
		for range n {
			select {
			case <-done:
			case <-timeout:
				buf := make([]byte, 1<<20)
				t.Fatalf("directors did not stop within 30 s of cancel; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
			}
		}
	})
	return ds
}

// testIPVS is the IPVS a test director programs: the kernel's where it
// has IPVS (in the VM: the directors of one test then share its table, as
// their desired tables are equal), else an in-memory table per director.
var testTables = map[string]*lvs.Memory{}

func testIPVS(t *testing.T, id string) func() (lvs.Client, error) {
	if vmtest.HasIPVS() {
		return nil
	}
	mem := lvs.NewMemory()
	testTables[id] = mem
	return func() (lvs.Client, error) { return mem, nil }
}

// tableOf reads director id's IPVS table.
func tableOf(t *testing.T, id string) lvs.Table {
	t.Helper()
	var c lvs.Client = testTables[id]
	if vmtest.HasIPVS() {
		k, err := lvs.NewKernel("", 1)
		if err != nil {
			t.Fatal(err)
		}
		c = k
	}
	tab, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func hasVirtualServer(tab lvs.Table, addr string) bool {
	for k := range tab {
		if k.Addr.String() == addr {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaderOf(ds []*Director) *Director {
	for _, d := range ds {
		if n := d.current().node; n != nil && n.IsLeader() {
			return d
		}
	}
	return nil
}

const pushedV1 = `
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
@d1 priority 150
@d2 priority 100
@d3 priority 50
    virtual_ipaddress {
        10.0.0.100
    }
}
virtual_server 10.0.0.100 80 {
    lb_algo wrr
    lb_kind DR
    real_server 192.168.1.11 80 {
        weight 3
    }
}
`

func TestClusterPushAppliedOnEveryDirector(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Raft cluster")
	}
	ds := startDirectors(t, 3, "")
	waitFor(t, "a Raft leader", 30*time.Second, func() bool { return leaderOf(ds) != nil })

	// A push through any node (here a follower's or the leader's API).
	node := ds[0].current().node
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := node.Push(ctx, "pushed.conf", []byte(pushedV1), "test", consensus.NewPushID())
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	version := res.Version
	waitFor(t, "version applied on all three", 20*time.Second, func() bool {
		for _, d := range ds {
			v := d.current().version
			if v != version {
				return false
			}
		}
		return true
	})
	// Each director took its own @node priority; the cluster block stayed.
	for i, d := range ds {
		cfg := d.current().cfg
		want := []int{150, 100, 50}[i]
		if got := cfg.Instances[0].Priority; got != want {
			t.Errorf("d%d priority = %d, want %d", i+1, got, want)
		}
		if cfg.Cluster == nil || cfg.Cluster.NodeName != fmt.Sprintf("d%d", i+1) {
			t.Errorf("d%d lost its node-local cluster block: %+v", i+1, cfg.Cluster)
		}
		vss := d.virtualServers()
		if len(vss) != 1 || vss[0].Scheduler != "wrr" || len(vss[0].RealServers) != 1 || vss[0].RealServers[0].Weight != 3 {
			t.Errorf("d%d virtual servers = %+v", i+1, vss)
		}
	}
	// The push added the first virtual server: every director programmed
	// it and still answers (this path wedged every director at once).
	for i, d := range ds {
		id := fmt.Sprintf("d%d", i+1)
		waitFor(t, id+" programs the first virtual server", 20*time.Second, func() bool { return hasVirtualServer(tableOf(t, id), "10.0.0.100") })
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		if err := d.Alive(actx); err != nil {
			t.Errorf("%s does not answer after the push: %v", id, err)
		}
		acancel()
	}
	// Every director reported it applied the version.
	waitFor(t, "applied records for all three", 10*time.Second, func() bool {
		recs := node.FSM().AppliedRecords()
		for i := range ds {
			if r, ok := recs[fmt.Sprintf("d%d", i+1)]; !ok || r.Version != version || r.Error != "" {
				return false
			}
		}
		return true
	})

	// A bad file is refused with file:line and nothing changes.
	bad := strings.Replace(pushedV1, "lb_algo wrr", "lb_algo wrr\n    }\n  }", 1)
	if _, err := node.Push(ctx, "bad.conf", []byte(bad), "test", consensus.NewPushID()); err == nil || !strings.Contains(err.Error(), "bad.conf:") {
		t.Fatalf("bad push: err = %v, want a file:line error", err)
	}
	for i, d := range ds {
		v := d.current().version
		if v != version {
			t.Errorf("d%d runs version %d after a refused push, want %d", i+1, v, version)
		}
	}

	// A push that removes the last virtual server: gone from every table.
	noVS := pushedV1[:strings.Index(pushedV1, "virtual_server")]
	res, err = node.Push(ctx, "no-vs.conf", []byte(noVS), "test", consensus.NewPushID())
	if err != nil {
		t.Fatalf("push without virtual servers: %v", err)
	}
	for i, d := range ds {
		id := fmt.Sprintf("d%d", i+1)
		waitFor(t, id+" applies the version without virtual servers", 20*time.Second, func() bool { return d.current().version == res.Version })
		waitFor(t, id+" removes the last virtual server", 20*time.Second, func() bool { return !hasVirtualServer(tableOf(t, id), "10.0.0.100") })
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		if err := d.Alive(actx); err != nil {
			t.Errorf("%s does not answer after the push: %v", id, err)
		}
		acancel()
	}
}
