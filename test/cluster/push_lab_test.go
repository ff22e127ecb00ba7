// Package cluster_test runs three hakeepd directors with a cluster { }
// block in network namespaces and drives them with hactl, as an operator
// would: bootstrap by expectation, then `hactl config push` changing a VIP
// and a priority, applied on all three while the unchanged instance keeps
// its master and VIPs.
package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
	"hakeep/internal/testpki"
	"hakeep/internal/vmtest"
)

var (
	vip1  = netip.MustParseAddr("10.99.0.100") // VI_1, changed by the push
	vip1b = netip.MustParseAddr("10.99.0.102") // added to VI_1 by the push
	vip2  = netip.MustParseAddr("10.99.0.101") // VI_2, untouched by the push
)

// build returns hakeepd and hactl: built from the tree, or the guest's
// (vmtest -build) in the VM.
func build(t *testing.T) (hakeepd, hactl string) {
	t.Helper()
	return labtest.Binary(t, "hakeepd"), labtest.Binary(t, "hactl")
}

// instances is the cluster's VRRP configuration; prio1 gives VI_1's
// priority per director, extra adds lines to VI_1's VIP block.
func instances(prio1 [3]int, extra string) string {
	return fmt.Sprintf(`global_defs {
    script_user root
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    version 3
    advert_int 0.1
@h1 priority %d
@h2 priority %d
@h3 priority %d
    virtual_ipaddress {
        10.99.0.100/32
%s    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    version 3
    advert_int 0.1
@h1 priority 150
@h2 priority 100
@h3 priority 50
    virtual_ipaddress {
        10.99.0.101/32
    }
}
`, prio1[0], prio1[1], prio1[2], extra)
}

// labCAs holds each lab's cluster CA: its directors share it and a gossip
// key, as a closed cluster must.
var labCAs sync.Map // *lab.Lab -> *testpki.CA

// clusterBlock is director i's cluster { } block: bootstrap by expectation
// with the other two, mutual TLS and an encrypted gossip.
func clusterBlock(t *testing.T, l *lab.Lab, i int) string {
	t.Helper()
	v, ok := labCAs.Load(l)
	if !ok {
		v, _ = labCAs.LoadOrStore(l, testpki.New(t))
	}
	ca := v.(*testpki.CA)
	h := l.Hosts[i]
	var join []string
	for _, p := range l.Hosts[:3] {
		if p != h {
			join = append(join, p.Addr4.Addr().String()+":7401")
		}
	}
	return fmt.Sprintf("cluster {\n    node_name %s\n    bind_addr %s\n    join { %s }\n    bootstrap_expect 3\n    data_dir %s\n%s}\n",
		h.Name, h.Addr4.Addr(), strings.Join(join, " "), filepath.Join(h.Dir, "data"), ca.ClusterLines(t, h.Name))
}

// hactlLimit bounds one hactl run: a daemon that never answers fails the
// test instead of hanging it (a push's own --timeout is shorter).
const hactlLimit = 40 * time.Second

func hactl(t *testing.T, bin string, l *lab.Lab, host string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hactlLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--api", sock(l, host)}, args...)...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("hactl %s on %s: no answer within %s: %w", strings.Join(args, " "), host, hactlLimit, err)
	}
	return string(out), err
}

// sock is the API socket of host's hakeepd (lab.StartHakeepd's --api).
func sock(l *lab.Lab, host string) string { return filepath.Join(l.Host(host).Dir, "hakeepd.sock") }

func status(t *testing.T, bin string, l *lab.Lab, host string) (api.Status, error) {
	t.Helper()
	out, err := hactl(t, bin, l, host, "--json", "status")
	if err != nil {
		return api.Status{}, fmt.Errorf("hactl status on %s: %v: %s", host, err, out)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("hactl status --json on %s: %v: %s", host, err, out)
	}
	return st, nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hosts are the three directors of every cluster test.
var hosts = []string{"h1", "h2", "h3"}

// startCluster starts hakeepd on the three hosts with their cluster block
// and initial, and waits for them to bootstrap by expectation: one leader
// known to all three, three members.
func startCluster(t *testing.T, l *lab.Lab, hakeepd, hactlBin, initial string) {
	t.Helper()
	for i, h := range hosts {
		if _, err := l.StartHakeepd(hakeepd, h, clusterBlock(t, l, i)+initial, "-i", h); err != nil {
			t.Fatalf("start %s: %v", h, err)
		}
	}
	waitFor(t, "a Raft leader known to all three", 30*time.Second, func() error {
		for _, h := range hosts {
			st, err := status(t, hactlBin, l, h)
			if err != nil {
				return err
			}
			if st.Raft.Leader == "" || len(st.Members) != 3 {
				return fmt.Errorf("%s: leader %q, %d members", h, st.Raft.Leader, len(st.Members))
			}
		}
		return nil
	})
}

func TestPushInLab(t *testing.T) {
	if vmtest.InVM() {
		// No IPVS on this path: it runs on the host (test-unit). Under the
		// VM's emulated CPU the fence's 1 s lease cannot be renewed in
		// time; TestPushFirstVirtualServer is this test's VM twin.
		t.Skip("VRRP + cluster only: runs on the host")
	}
	hakeepd, hactlBin := build(t)
	l := labtest.New(t, 3, lab.Options{})
	initial := instances([3]int{150, 100, 50}, "")
	startCluster(t, l, hakeepd, hactlBin, initial)
	if _, err := l.WaitOwner(vip1, "h1", 10*time.Second, hosts...); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitOwner(vip2, "h1", 10*time.Second, hosts...); err != nil {
		t.Fatal(err)
	}

	// A file with a cluster block, or with an error, is refused; nothing
	// changes.
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte(strings.Replace(initial, "virtual_router_id 51", "virtual_router_id 351", 1)), 0o644)
	if out, err := hactl(t, hactlBin, l, "h3", "config", "push", bad); err == nil || !strings.Contains(out, "bad.conf:") {
		t.Fatalf("bad push: err %v, output %q: want a failure naming bad.conf:LINE", err, out)
	}
	withCluster := filepath.Join(t.TempDir(), "with-cluster.conf")
	os.WriteFile(withCluster, []byte(clusterBlock(t, l, 0)+initial), 0o644)
	if out, err := hactl(t, hactlBin, l, "h3", "config", "push", withCluster); err == nil || !strings.Contains(out, "cluster") {
		t.Fatalf("push with a cluster block: err %v, output %q: want a refusal", err, out)
	}

	// VI_2 must not move: watch its VIP through the push.
	events, stop, err := l.Watch(vip2, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	// The push: h2 gets the highest VI_1 priority, VI_1 gains a VIP.
	pushed := filepath.Join(t.TempDir(), "pushed.conf")
	os.WriteFile(pushed, []byte(instances([3]int{150, 200, 50}, "        10.99.0.102/32\n")), 0o644)
	start := time.Now()
	out, err := hactl(t, hactlBin, l, "h3", "config", "push", pushed, "--wait", "--timeout", "20s")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	committed := time.Since(start)
	for _, h := range hosts {
		if !strings.Contains(out, h) {
			t.Errorf("push output does not say %s applied it:\n%s", h, out)
		}
	}
	if _, err := l.WaitOwner(vip1b, "h2", 10*time.Second, hosts...); err != nil {
		t.Fatal(err)
	}
	onMaster := time.Since(start)
	if _, err := l.WaitOwner(vip1, "h2", 5*time.Second, hosts...); err != nil {
		t.Fatal(err)
	}
	t.Logf("push committed and applied on all three in %v (hactl --wait); new VIP on the new master %v after the push started", committed, onMaster)

	// Every director runs the new version.
	var version uint64
	for _, h := range hosts {
		st, err := status(t, hactlBin, l, h)
		if err != nil {
			t.Fatal(err)
		}
		if st.Config.Version == 0 || st.Config.Running != st.Config.Version || st.Config.LocalError != "" {
			t.Errorf("%s: config %+v, want the committed version running", h, st.Config)
		}
		if version == 0 {
			version = st.Config.Version
		} else if st.Config.Version != version {
			t.Errorf("%s: version %d, others %d", h, st.Config.Version, version)
		}
	}
	// VI_2 stayed on h1 without a single change.
	if err := l.StableOwner(vip2, "h1", 500*time.Millisecond, hosts...); err != nil {
		t.Fatal(err)
	}
	// The fence refreshes a held VIP's kernel lifetime on each renewal,
	// which the kernel reports as an add on its holder: only a removal,
	// or an add elsewhere, is a move.
	for drained := false; !drained; {
		select {
		case ev := <-events:
			if !ev.Added || ev.Host != "h1" {
				t.Fatalf("VI_2's VIP moved during the push: %+v", ev)
			}
		default:
			drained = true
		}
	}
	// History has both versions; rollback to nothing older is refused
	// clearly (version 1 is the only one).
	if out, err := hactl(t, hactlBin, l, "h1", "config", "history"); err != nil || !strings.Contains(out, fmt.Sprint(version)) {
		t.Errorf("history: %v\n%s", err, out)
	}
}
