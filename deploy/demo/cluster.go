package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"hakeep/api"
)

// shared is the configuration every director runs (keepalived's "@hN"
// lines pick per-director values, hakeepd -i / keepalived -i name the
// director): VI_1 and the virtual server on its VIP; the pushed version
// adds VI_2 and gives rs1 another weight.
func (d *demo) shared(withVI2 bool, rs1Weight int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global_defs {
@h1 router_id h1
@h2 router_id h2
@h3 router_id h3
    script_user root
    enable_script_security
    vrrp_version %d
}
`, d.o.version)
	instance := func(name string, vrid int, addr string) {
		fmt.Fprintf(&b, `vrrp_instance %s {
    state BACKUP
    interface eth0
    virtual_router_id %d
@h1 priority 150
@h2 priority 100
@h3 priority 50
    advert_int %g
    virtual_ipaddress {
        %s/32
    }
}
`, name, vrid, d.o.advertInt, addr)
	}
	instance("VI_1", 51, vip.String())
	if withVI2 {
		instance("VI_2", 52, vip2.String())
	}
	fmt.Fprintf(&b, "virtual_server %s 80 {\n    delay_loop 1\n    lb_algo wrr\n    lb_kind DR\n    protocol TCP\n", vip)
	for _, rs := range []string{"rs1", "rs2"} {
		w := 1
		if rs == "rs1" {
			w = rs1Weight
		}
		fmt.Fprintf(&b, `    real_server %s 80 {
        weight %d
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
`, d.l.Host(rs).Addr4.Addr(), w)
	}
	b.WriteString("}\n")
	return b.String()
}

// clusterBlock is director i's node-local cluster { } block: bootstrap by
// expectation with the other two, health decided by a quorum of views,
// mutual TLS and gossip encryption with the files `hactl tls init` made.
func (d *demo) clusterBlock(i int) string {
	h := d.l.Host(directors[i])
	var join []string
	for _, p := range directors {
		if p != h.Name {
			join = append(join, d.l.Host(p).Addr4.Addr().String()+":7401")
		}
	}
	return fmt.Sprintf("cluster {\n    node_name %s\n    bind_addr %s\n    join { %s }\n    bootstrap_expect 3\n    data_dir %s\n    health_mode quorum\n"+
		"    tls_cert %s\n    tls_key %s\n    tls_ca %s\n    gossip_key %s\n}\n",
		h.Name, h.Addr4.Addr(), strings.Join(join, " "), filepath.Join(h.Dir, "data"),
		filepath.Join(d.tlsDir(), h.Name+".pem"), filepath.Join(d.tlsDir(), h.Name+"-key.pem"), filepath.Join(d.tlsDir(), "ca.pem"), filepath.Join(d.tlsDir(), "gossip.key"))
}

// tlsDir holds the cluster's CA, certificates and gossip key.
func (d *demo) tlsDir() string { return filepath.Join(d.l.Dir, "tls") }

// secrets makes the cluster's secrets with hactl, as an operator would:
// one command for the CA, a certificate per director and the gossip key.
func (d *demo) secrets() error {
	args := append([]string{"tls", "init", "--dir", d.tlsDir()}, directors...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.o.hactl, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("hactl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	d.say("SECURE: cluster CA, a certificate per director (its name in the SAN) and a gossip key, made by hactl:")
	d.say("$ hactl %s", strings.Join(args, " "))
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Fprintf(d.out, "          | %s\n", line)
	}
	return nil
}

// stranger is issue 12's attack from the client, which is not a director:
// a 'P' and {"op":"remove","id":"h3"} on the leader's Raft port. A closed
// cluster does not even finish the TLS handshake with it.
func (d *demo) stranger() error {
	var st api.Status
	if err := d.hactlJSON("h1", &st, "status"); err != nil {
		return err
	}
	leader := d.l.Host(st.Raft.Leader)
	if leader == nil {
		return fmt.Errorf("no leader to attack: %q", st.Raft.Leader)
	}
	target := leader.Addr4.Addr().String() + ":7301"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := d.l.Exec(ctx, "client", d.self, cmdRaftRPC, target, `{"op":"remove","id":"h3"}`)
	if err != nil {
		return fmt.Errorf("stranger: %w: %s", err, out)
	}
	res := strings.TrimSpace(string(out))
	if !strings.HasPrefix(res, "no reply") {
		return fmt.Errorf("the client, not a director, got an answer from %s's Raft port: %s", leader.Name, res)
	}
	if err := d.hactlJSON("h1", &st, "status"); err != nil {
		return err
	}
	voters := 0
	for _, m := range st.Members {
		if m.Voter {
			voters++
		}
	}
	if voters != 3 {
		return fmt.Errorf("%d voters after the stranger's remove", voters)
	}
	d.say("STRANGER: the client (not a director) sent 'P' + {\"op\":\"remove\",\"id\":\"h3\"} to the leader %s's Raft port %s: %s; still 3 voters", leader.Name, target, res)
	return nil
}

func (d *demo) sock(host string) string { return filepath.Join(d.l.Host(host).Dir, "hakeepd.sock") }

// hactl runs hactl against host's daemon and returns its output.
func (d *demo) hactl(host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.o.hactl, append([]string{"--api", d.sock(host)}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("hactl %s on %s: %w: %s", strings.Join(args, " "), host, err, out)
	}
	return string(out), nil
}

// hactlJSON decodes `hactl --json args` from host into v.
func (d *demo) hactlJSON(host string, v any, args ...string) error {
	out, err := d.hactl(host, append([]string{"--json"}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("hactl --json %s on %s: %w: %s", strings.Join(args, " "), host, err, out)
	}
	return nil
}

// show prints hactl's human output, indented under the command line.
func (d *demo) show(host string, args ...string) error {
	out, err := d.hactl(host, args...)
	if err != nil {
		return err
	}
	d.say("$ hactl --api %s %s", d.sock(host), strings.Join(args, " "))
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Fprintf(d.out, "          | %s\n", line)
	}
	return nil
}

// poll calls cond every 100 ms until it returns nil or timeout passes.
func poll(what string, timeout time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// raft waits for the Raft leader, known to all three directors, and prints
// the cluster status.
func (d *demo) raft() error {
	var st api.Status
	_, err := poll("a Raft leader known to all three directors", 30*time.Second, func() error {
		for _, h := range directors {
			if err := d.hactlJSON(h, &st, "status"); err != nil {
				return err
			}
			if st.Raft.Leader == "" || len(st.Members) != 3 {
				return fmt.Errorf("%s: leader %q, %d members", h, st.Raft.Leader, len(st.Members))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.say("RAFT: bootstrapped by expectation (3 of 3 seen); leader %s, term %d, agreed by all three", st.Raft.Leader, st.Raft.Term)
	return d.show("h1", "status")
}

// rsHealth returns host's view of each real server ("10.99.0.15:80" ->
// the entry) of the virtual server on the VIP.
func (d *demo) rsHealth(host string) (map[string]api.RealServer, error) {
	var vss []api.VirtualServer
	if err := d.hactlJSON(host, &vss, "ipvs"); err != nil {
		return nil, err
	}
	m := map[string]api.RealServer{}
	for _, vs := range vss {
		if vs.Address != vip.String() {
			continue
		}
		for _, rs := range vs.RealServers {
			m[fmt.Sprintf("%s:%d", rs.Address, rs.Port)] = rs
		}
	}
	return m, nil
}

func (d *demo) rsKey(rs string) string { return d.l.Host(rs).Addr4.Addr().String() + ":80" }

// waitHealth waits until every director in hosts sees rs as up (or down),
// with cond checked on the entry as well.
func (d *demo) waitHealth(rs string, up bool, hosts []string, cond func(api.RealServer) error) (time.Duration, error) {
	return poll(fmt.Sprintf("%s healthy=%v on %v", rs, up, hosts), 20*time.Second, func() error {
		for _, h := range hosts {
			m, err := d.rsHealth(h)
			if err != nil {
				return err
			}
			e, ok := m[d.rsKey(rs)]
			if !ok {
				return fmt.Errorf("%s: no %s in the table", h, rs)
			}
			if e.Healthy != up {
				return fmt.Errorf("%s: %s healthy=%v", h, rs, e.Healthy)
			}
			if cond != nil {
				if err := cond(e); err != nil {
					return fmt.Errorf("%s: %w", h, err)
				}
			}
		}
		return nil
	})
}

// table shows the desired IPVS table once both real servers are up.
func (d *demo) table() error {
	for _, rs := range []string{"rs1", "rs2"} {
		if _, err := d.waitHealth(rs, true, directors, nil); err != nil {
			return err
		}
	}
	d.say("CHECKS: HTTP_GET / -> 200 on rs1 and rs2 from every director; the desired table on the master:")
	return d.show("h1", "ipvs")
}

// healthFlap stops rs1's server, shows the directors marking it down and
// the replicated views, then starts it again.
func (d *demo) healthFlap() error {
	d.say("stop the HTTP server on rs1")
	if err := d.rs["rs1"].Stop(5 * time.Second); err != nil {
		return err
	}
	took, err := d.waitHealth("rs1", false, directors, nil)
	if err != nil {
		return err
	}
	// With health_mode quorum two failed checks take rs1 out everywhere;
	// wait for the third director's own checker (it may be retrying).
	if _, err := poll("every director's own check of rs1 down", 10*time.Second, func() error {
		for _, h := range directors {
			var cs []api.Check
			if err := d.hactlJSON(h, &cs, "checks"); err != nil {
				return err
			}
			for _, c := range cs {
				if c.RealServer == d.rsKey("rs1") && c.Up {
					return fmt.Errorf("%s: its check of rs1 is still up", h)
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	out, err := d.get("rs1")
	if err == nil {
		return fmt.Errorf("rs1 still answers after its server stopped: %s", out)
	}
	d.say("client: GET %s -> %s (rs1's server is down)", d.url("rs1"), out[strings.LastIndex(out, ": ")+2:])
	d.say("CHECK DOWN: rs1 out of the table on h1, h2 and h3 %s after its server stopped; every director's own HTTP_GET failed", took.Round(time.Millisecond))
	if err := d.show("h1", "checks"); err != nil {
		return err
	}
	if err := d.show("h1", "ipvs"); err != nil {
		return err
	}
	// Each director's view reaches the Raft log on its own schedule.
	var e api.RealServer
	if _, err := poll("every director's view of rs1 replicated to h3", 10*time.Second, func() error {
		m, err := d.rsHealth("h3")
		if err != nil {
			return err
		}
		e = m[d.rsKey("rs1")]
		if len(e.Views) != len(directors) {
			return fmt.Errorf("views %s", views(e.Views))
		}
		return nil
	}); err != nil {
		return err
	}
	d.say("REPLICATED: h3's Raft state has every director's view of rs1: %s; health_source %s", views(e.Views), e.HealthSource)

	d.say("start the HTTP server on rs1 again")
	if err := d.rs["rs1"].Restart(); err != nil {
		return err
	}
	if took, err = d.waitHealth("rs1", true, directors, nil); err != nil {
		return err
	}
	d.say("CHECK UP: rs1 back in the table on h1, h2 and h3 %s after its restart", took.Round(time.Millisecond))
	return d.clientGet("rs1")
}

func views(v map[string]bool) string {
	var names []string
	for n := range v {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%s", n, map[bool]string{true: "up", false: "down"}[v[n]]))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// push commits a new file from h3 (rs1 weight 1 -> 3, a second instance
// VI_2) and shows who applied it and that VI_1's VIP stayed put.
func (d *demo) push() error {
	file := filepath.Join(d.l.Dir, "pushed.conf")
	if err := os.WriteFile(file, []byte(d.shared(true, 3)), 0o644); err != nil {
		return fmt.Errorf("write the pushed file: %w", err)
	}
	events, stop, err := d.l.Watch(vip, directors...)
	if err != nil {
		return err
	}
	defer stop()
	d.say("CONFIG PUSH from h3: rs1 weight 1 -> 3, new instance VI_2 with VIP %s (no cluster block: that stays node-local)", vip2)
	if err := d.show("h3", "config", "push", file, "--wait", "--timeout", "20s"); err != nil {
		return err
	}
	var applied []string
	var version uint64
	for _, h := range directors {
		var st api.Status
		if err := d.hactlJSON(h, &st, "status"); err != nil {
			return err
		}
		if st.Config.Version == 0 || st.Config.Running != st.Config.Version || st.Config.LocalError != "" {
			return fmt.Errorf("%s after the push: config %+v, want the committed version running", h, st.Config)
		}
		version = st.Config.Version
		applied = append(applied, h)
	}
	if _, err := d.waitHealth("rs1", true, directors, func(e api.RealServer) error {
		if e.Weight != 3 {
			return fmt.Errorf("rs1 weight %d", e.Weight)
		}
		return nil
	}); err != nil {
		return err
	}
	if _, err := d.l.WaitOwner(vip2, "h1", d.limit(), directors...); err != nil {
		return err
	}
	if err := d.l.StableOwner(vip, "h1", 500*time.Millisecond, directors...); err != nil {
		return err
	}
	// A fenced VIP's lifetime is rewritten at each lease renewal: an
	// "added" on h1, which holds it, is that refresh, not a move.
	for drained := false; !drained; {
		select {
		case ev := <-events:
			if !ev.Added || ev.Host != "h1" {
				return fmt.Errorf("VI_1's VIP moved during the push: %+v", ev)
			}
		default:
			drained = true
		}
	}
	d.say("PUSH APPLIED: %s run config version %d (rs1 weight 3); VI_2 up on h1 with %s", strings.Join(applied, ", "), version, vip2)
	d.say("UNCHANGED: %s stayed on h1 through the push (no address change on any director)", vip)
	return d.show("h1", "ipvs")
}

// raftAfterKill shows the cluster without h1: a leader among h2 and h3.
func (d *demo) raftAfterKill() error {
	var st api.Status
	_, err := poll("a Raft leader among h2 and h3", 30*time.Second, func() error {
		if err := d.hactlJSON("h2", &st, "status"); err != nil {
			return err
		}
		if st.Raft.Leader == "" || st.Raft.Leader == "h1" {
			return fmt.Errorf("leader %q", st.Raft.Leader)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.say("RAFT without h1: leader %s, term %d (a quorum of 2 of 3 voters)", st.Raft.Leader, st.Raft.Term)
	return nil
}

// rejoined shows h1 back from its data_dir, running the pushed version
// rather than its local file.
func (d *demo) rejoined() error {
	var st api.Status
	_, err := poll("h1 running the committed configuration", 30*time.Second, func() error {
		if err := d.hactlJSON("h1", &st, "status"); err != nil {
			return err
		}
		if st.Raft.Leader == "" || st.Config.Version == 0 || st.Config.Running != st.Config.Version {
			return fmt.Errorf("h1: leader %q, config %+v", st.Raft.Leader, st.Config)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := d.l.WaitOwner(vip2, "h1", d.limit(), directors...); err != nil {
		return err
	}
	d.say("REJOINED: h1 resumed from its data_dir (no new bootstrap): leader %s, runs pushed version %d, holds VI_2's %s too", st.Raft.Leader, st.Config.Running, vip2)
	return nil
}
