// Command demo shows the product in a network-namespace lab: three
// directors (priorities 150/100/50, one VIP), two real servers serving HTTP
// and a client on one bridge. With hakeepd the directors form a cluster
// (Raft bootstrap by expectation) and health-check the real servers of a
// virtual server; the cluster is closed (mutual TLS and a gossip key made
// by `hactl tls init`). The demo prints the election and the cluster, a
// stranger refused on the Raft port, the IPVS table with its health
// column, a real server going down and up again, a `hactl config push`, a
// kill -9 of the master with the takeover time, the restart and
// preemption, then removes everything. Run as root:
//
//	go run ./deploy/demo --hakeepd bin/hakeepd --hactl bin/hactl
//	go run ./deploy/demo --keepalived
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hakeep/internal/lab"
)

var (
	vip  = netip.MustParseAddr("10.99.0.100") // VI_1, the virtual server's address
	vip2 = netip.MustParseAddr("10.99.0.101") // VI_2, added by the config push
)

var directors = []string{"h1", "h2", "h3"}

type options struct {
	hakeepd    string
	hactl      string
	keepalived bool
	advertInt  float64
	version    int
}

func main() {
	if handled, err := helper(os.Args[1:], os.Stdout); handled {
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.hakeepd, "hakeepd", "", "path of the hakeepd binary to run on the directors")
	flag.StringVar(&o.hactl, "hactl", "", "path of hactl (default: next to hakeepd); shows the cluster, checks and config push")
	flag.BoolVar(&o.keepalived, "keepalived", false, "run Debian's keepalived on the directors instead (VRRP only)")
	flag.Float64Var(&o.advertInt, "advert-int", 1, "advert_int in seconds")
	flag.IntVar(&o.version, "vrrp-version", 3, "VRRP version (2 or 3)")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// demo is one run: the lab, its processes and the printer.
type demo struct {
	o       options
	l       *lab.Lab
	say     func(format string, args ...any)
	out     io.Writer
	impl    string
	self    string // this binary, run in lab hosts as real server and HTTP client
	daemons map[string]*lab.Daemon
	rs      map[string]*lab.Process // real-server HTTP processes
}

func run(o options, out io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the demo binary: %w", err)
	}
	d := &demo{o: o, out: out, impl: "hakeepd", self: self, daemons: map[string]*lab.Daemon{}, rs: map[string]*lab.Process{}}
	if o.keepalived {
		d.impl = "keepalived"
	}
	start := time.Now()
	d.say = func(format string, args ...any) {
		fmt.Fprintf(out, "[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	_ = lab.RemoveOrphans("hkdemo") // labs of demos killed before their cleanup
	removeOrphanDirs()
	d.l, err = lab.New(fmt.Sprintf("hkdemo%d-", os.Getpid()), 3, lab.Options{Extra: []string{"client", "rs1", "rs2"}})
	if err != nil {
		return err
	}
	defer func() {
		if err := d.l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: cleanup: %v\n", err)
		} else {
			d.say("lab removed: namespaces deleted, daemons and real servers gone")
		}
	}()
	// Ctrl-C still cleans up: closing the lab kills the daemons, and the
	// step waiting on them fails and returns.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			d.say("interrupted: cleaning up")
			d.l.Close()
		}
	}()
	d.say("lab up: bridge + directors h1, h2, h3 (10.99.0.11-13) + client (10.99.0.14) + real servers rs1, rs2 (10.99.0.15-16); VIP %s", vip)

	steps := []func() error{d.realServers, d.startDirectors, d.election}
	if d.cluster() {
		steps = append([]func() error{d.secrets}, steps...)
		steps = append(steps, d.raft, d.stranger, d.table, d.healthFlap, d.push)
	} else {
		steps = append(steps, func() error {
			d.say("keepalived runs VRRP only here (-P): the cluster, hactl, health checks and config push are hakeepd's and skipped")
			return nil
		})
	}
	steps = append(steps, d.failover, d.preemption, d.partition, d.stop)
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (o *options) check() error {
	if (o.hakeepd == "") == !o.keepalived {
		return errors.New("give exactly one of --hakeepd PATH or --keepalived")
	}
	if o.hakeepd != "" {
		abs, err := filepath.Abs(o.hakeepd)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("hakeepd binary: %w", err)
		}
		o.hakeepd = abs
		if o.hactl == "" {
			o.hactl = filepath.Join(filepath.Dir(abs), "hactl")
		}
		if o.hactl, err = filepath.Abs(o.hactl); err != nil {
			return err
		}
		if _, err := os.Stat(o.hactl); err != nil {
			return fmt.Errorf("hactl binary (--hactl): %w", err)
		}
	} else if _, err := exec.LookPath("keepalived"); err != nil {
		return fmt.Errorf("keepalived not installed (apt-get install keepalived): %w", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: the lab is built from network namespaces")
	}
	return nil
}

// cluster reports whether the directors run as a hakeepd cluster.
func (d *demo) cluster() bool { return !d.o.keepalived }

// realServers starts an HTTP server on rs1 and rs2 and fetches a page from
// each, directly, from the client.
func (d *demo) realServers() error {
	for _, name := range []string{"rs1", "rs2"} {
		addr := d.l.Host(name).Addr4.Addr()
		p, err := d.l.Start(name, "http", d.self, cmdServe, netip.AddrPortFrom(addr, 80).String(), name)
		if err != nil {
			return err
		}
		d.rs[name] = p
		if err := p.WaitLog("listening", 5*time.Second); err != nil {
			return err
		}
	}
	d.say("real servers: HTTP on rs1 and rs2 port 80 (answering their name)")
	for _, name := range []string{"rs1", "rs2"} {
		if err := d.clientGet(name); err != nil {
			return err
		}
	}
	if d.o.keepalived {
		return nil // keepalived runs VRRP only: no table to speak of
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		d.say("this kernel has no IPVS: the table is computed and health-checked but not programmed; make test runs IPVS in a VM")
	} else {
		d.say("this kernel has IPVS: the master programs the table (DR needs the VIP on the real servers' lo, not set up here, so the client still goes direct)")
	}
	return nil
}

// clientGet fetches http://rs/ from the client, straight to the real
// server, retrying for a few seconds (a server just started), and prints it.
func (d *demo) clientGet(rs string) error {
	var out string
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if out, err = d.get(rs); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("client cannot reach %s: %w", rs, err)
	}
	d.say("client: GET %s -> %s", d.url(rs), out)
	return nil
}

func (d *demo) url(rs string) string { return fmt.Sprintf("http://%s/", d.l.Host(rs).Addr4.Addr()) }

// get is one GET of http://rs/ from the client: "STATUS BODY".
func (d *demo) get(rs string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := d.l.Exec(ctx, "client", d.self, cmdGet, d.url(rs))
	return strings.TrimSpace(string(out)), err
}

func (d *demo) startDirectors() error {
	prio := map[string]int{"h1": 150, "h2": 100, "h3": 50}
	for i, h := range directors {
		var err error
		var dm *lab.Daemon
		if d.o.keepalived {
			dm, err = d.l.StartKeepalived(h, d.shared(false, 1), "-i", h)
		} else {
			dm, err = d.l.StartHakeepd(d.o.hakeepd, h, d.clusterBlock(i)+d.shared(false, 1), "-i", h)
		}
		if err != nil {
			return err
		}
		d.daemons[h] = dm
		d.say("started %s on %s (priority %d, VRRPv%d, advert_int %gs)", d.impl, h, prio[h], d.o.version, d.o.advertInt)
	}
	if d.cluster() {
		d.say("each director's file: a cluster { } block (bootstrap_expect 3, join the other two; tls_cert/tls_key/tls_ca and gossip_key from hactl tls init) + VI_1 + virtual_server %s:80 (wrr, DR, HTTP_GET / every 1 s on rs1, rs2)", vip)
	}
	return nil
}

// limit bounds every wait for a VRRP transition.
func (d *demo) limit() time.Duration { return 4*d.masterDown(150) + 5*time.Second }

// masterDown is RFC 5798's Master_Down_Interval for priority p.
func (d *demo) masterDown(p int) time.Duration {
	iv := time.Duration(d.o.advertInt * float64(time.Second))
	return 3*iv + time.Duration(256-p)*iv/256
}

func (d *demo) election() error {
	if _, err := d.l.WaitOwner(vip, "h1", d.limit(), directors...); err != nil {
		return fmt.Errorf("no master elected (%w); %s log:\n%s", err, d.impl, d.daemons["h1"].Tail(10))
	}
	d.say("MASTER: h1 holds %s (highest priority)", vip)
	return d.showClient()
}

func (d *demo) failover() error {
	d.say("kill -9 %s on h1 (a crash: no priority-0 advert)", d.impl)
	d.daemons["h1"].Kill()
	live := []string{"h2", "h3"}
	took, err := d.l.WaitOwner(vip, "h2", d.limit(), live...)
	if err != nil {
		return err
	}
	why := fmt.Sprintf("Master_Down_Interval %s, counted from h1's last advert", d.masterDown(100).Round(time.Millisecond))
	if d.cluster() {
		// Killed, h1 cannot release its lease: the fence waits it out.
		why += "; fenced: and until h1's lease has surely run out (the kernel drops h1's VIP on its own)"
	}
	d.say("TAKEOVER: h2 holds %s %s after the kill (%s)", vip, took.Round(time.Millisecond), why)
	if err := d.l.WaitNeighMAC("client", vip, d.l.Host("h2").MAC, 5*time.Second); err != nil {
		d.say("client's ARP entry not yet updated: %v", err)
	}
	if err := d.showClient(); err != nil {
		return err
	}
	if d.cluster() {
		return d.raftAfterKill()
	}
	return nil
}

func (d *demo) preemption() error {
	d.say("restart %s on h1", d.impl)
	restarted := time.Now()
	if err := d.daemons["h1"].Restart(); err != nil {
		return err
	}
	if _, err := d.l.WaitOwner(vip, "h1", d.limit(), directors...); err != nil {
		return err
	}
	d.say("PREEMPTION: h1 holds %s again, %s after its restart; h2 released it", vip, time.Since(restarted).Round(time.Millisecond))
	if err := d.l.WaitNeighMAC("client", vip, d.l.Host("h1").MAC, 5*time.Second); err != nil {
		d.say("client's ARP entry not yet updated: %v", err)
	}
	if err := d.showClient(); err != nil {
		return err
	}
	if d.cluster() {
		return d.rejoined()
	}
	return nil
}

func (d *demo) stop() error {
	for _, h := range directors {
		if err := d.daemons[h].Stop(10 * time.Second); err != nil {
			return err
		}
	}
	d.say("stopped all directors (SIGTERM)")
	return nil
}

// showClient pings the VIP from the client and prints its ARP view.
func (d *demo) showClient() error {
	if err := d.l.Ping("client", vip); err != nil {
		return fmt.Errorf("client cannot reach the VIP: %w", err)
	}
	mac, err := d.l.Neigh("client", vip)
	if err != nil {
		return err
	}
	who := "unknown host"
	if h := d.l.HostByMAC(mac); h != nil {
		who = h.Name
	}
	d.say("client: ping %s ok; ARP %s -> %s -> %s", vip, vip, mac, who)
	return nil
}

// removeOrphanDirs removes the lab directories (logs, Raft data) of demos
// killed before their cleanup: hakeep-lab-hkdemoPID-... in the temp dir,
// where PID no longer runs.
func removeOrphanDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "hakeep-lab-hkdemo*-*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), "hakeep-lab-hkdemo")
		pid, err := strconv.Atoi(rest[:strings.Index(rest, "-")])
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // that demo still runs
		}
		os.RemoveAll(dir)
	}
}
