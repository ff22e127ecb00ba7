package overload_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/internal/lab/labtest"
	"hakeep/internal/testpki"
)

// pushVS x reloadRS real servers with failing HTTP_GET checks: every push
// is replicated to three directors and applied by each (a replan of 100
// services and 400 checks). The three share the lab's two cores, which a
// real cluster does not: with 300 services h3's and h4's applies took
// the CPU from h1 (max gaps 137-192 ms at advert_int 0.1; traced: the
// timer 10 ms late in the kernel and the loop 26 ms waiting for a P).
const (
	pushVS = 100
	// pushEvery is the burst's pace: one `hactl config push` after the
	// other, each from a new process, as a script pushing in a loop does.
	pushEvery = 300 * time.Millisecond
)

func TestOverloadPushBurst(t *testing.T) {
	hostOnly(t)
	runOverload(t, hakeepdMaster, pushScenario(20*time.Second)).check(t)
}

// pushScenario: h1, h3 and h4 run hakeepd as a cluster (h1 master of both
// instances at priority 150, h3 and h4 backups at 60 and 50) beside
// keepalived on h2 (100); h4's hactl pushes two versions of the virtual
// servers in turn for the whole window.
func pushScenario(d time.Duration) scenario {
	return scenario{
		name: fmt.Sprintf("hactl config push burst (every %s, 3 directors, %d virtual servers x %d)", pushEvery, pushVS, reloadRS),
		conf: pushConf(0), window: d, cluster: true,
		stress: func(ctx context.Context, e *env) (string, error) {
			hactl := e.hactl
			dir := filepath.Dir(e.conf)
			pushed, failed := 0, 0
			var firstErr string
			tick := time.NewTicker(pushEvery)
			defer tick.Stop()
			for ctx.Err() == nil {
				f := filepath.Join(dir, fmt.Sprintf("push-%d.conf", pushed%2))
				if err := os.WriteFile(f, []byte(clusterVRRPConf()+pushConf((pushed+1)%2)), 0o644); err != nil {
					return "", err
				}
				pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := exec.CommandContext(pctx, hactl, "--api", sockOf(e, "h4"), "config", "push", f).CombinedOutput()
				cancel()
				if err != nil {
					failed++
					if firstErr == "" {
						firstErr = fmt.Sprintf("%v: %s", err, out)
					}
				} else {
					pushed++
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
			return pushOutcome(e, pushed, failed, firstErr)
		},
	}
}

// pushOutcome: the burst was real when many pushes were committed, none
// failed, and every director runs the last one.
func pushOutcome(e *env, pushed, failed int, firstErr string) (string, error) {
	var running []string
	var versions []uint64
	// The last push's apply finishes first.
	deadline := time.Now().Add(15 * time.Second)
	for _, h := range append([]string{"h1"}, e.peers...) {
		for {
			st, err := statusOf(e, h)
			if err == nil && st.Config.Version > 0 && st.Config.Running == st.Config.Version {
				running = append(running, fmt.Sprintf("%s v%d", h, st.Config.Running))
				versions = append(versions, st.Config.Running)
				break
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("%s does not run the committed version: %+v, %v", h, st.Config, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	s := fmt.Sprintf("%d pushes committed, %d failed; at the end %s", pushed, failed, strings.Join(running, ", "))
	switch {
	case failed > 0:
		return s, fmt.Errorf("%d pushes failed, first: %s", failed, firstErr)
	case pushed < 10:
		return s, fmt.Errorf("only %d pushes committed", pushed)
	}
	for _, v := range versions[1:] {
		if v != versions[0] {
			return s, fmt.Errorf("the directors run different versions: %s", strings.Join(running, ", "))
		}
	}
	return s, nil
}

// startCluster starts hakeepd on h3 and h4 with their cluster blocks and
// returns h1's file (its block, the shared VRRP instances and conf).
func startCluster(t testing.TB, e *env, conf string) string {
	t.Helper()
	e.hactl = labtest.Binary(t, "hactl")
	ca := testpki.New(t)
	nodes := []string{"h1", "h3", "h4"}
	e.peers = nodes[1:]
	block := func(name string) string {
		h := e.l.Host(name)
		var join []string
		for _, p := range nodes {
			if p != name {
				join = append(join, e.l.Host(p).Addr4.Addr().String()+":7401")
			}
		}
		return fmt.Sprintf("cluster {\n    node_name %s\n    bind_addr %s\n    join { %s }\n    bootstrap_expect 3\n    data_dir %s\n%s}\n",
			name, h.Addr4.Addr(), strings.Join(join, " "), filepath.Join(h.Dir, "data"), ca.ClusterLines(t, name))
	}
	shared := clusterVRRPConf() + conf
	for _, name := range e.peers {
		if _, err := e.l.StartHakeepd(e.hk, name, block(name)+shared, "-i", name); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
	}
	return block("h1") + shared
}

// clusterVRRPConf is vrrpConf's two instances for the three directors,
// one text with a priority line per director (h3 and h4 below h2's
// keepalived), as a pushed configuration must be.
func clusterVRRPConf() string {
	s := vrrpConf("", 150)
	s = strings.Replace(s, "    router_id \n", "", 1)
	return strings.ReplaceAll(s, "    priority 150\n", "@h1 priority 150\n@h3 priority 60\n@h4 priority 50\n")
}

// pushConf is version k of the pushed virtual servers (reloadConf's
// shape, pushVS services).
func pushConf(k int) string {
	var b strings.Builder
	first := k * (pushVS / 10)
	for v := first; v < first+pushVS; v++ {
		fmt.Fprintf(&b, "virtual_server %s %d {\n    delay_loop 6\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n", vip1, 1000+v)
		for r := 0; r < reloadRS; r++ {
			i := v*reloadRS + r
			fmt.Fprintf(&b, "    real_server 10.60.%d.%d 80 {\n        weight %d\n        HTTP_GET {\n            url {\n                path /health\n"+
				"                status_code 200\n            }\n            connect_timeout 3\n            retry 3\n"+
				"            delay_before_retry 3\n        }\n    }\n", i/250, i%250+1, k+1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func sockOf(e *env, host string) string { return filepath.Join(e.l.Host(host).Dir, "hakeepd.sock") }

// statusOf is host's status through hactl --json, as an operator reads it.
func statusOf(e *env, host string) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.hactl, "--api", sockOf(e, host), "--json", "status").Output()
	var st api.Status
	if err != nil {
		return st, fmt.Errorf("hactl status on %s: %w", host, err)
	}
	return st, json.Unmarshal(out, &st)
}
