// Command demo shows VRRP failover in a network-namespace lab: three
// directors (priorities 150/100/50, one VIP) and a client on one bridge.
// It prints who is master and the client's ARP view of the VIP, kills the
// master (kill -9), prints the takeover time, restarts it and shows
// preemption, then removes everything. Run as root:
//
//	go run ./deploy/demo --hakeepd bin/hakeepd
//	go run ./deploy/demo --keepalived
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"hakeep/internal/lab"
)

var vip = netip.MustParseAddr("10.99.0.100")

type options struct {
	hakeepd    string
	keepalived bool
	advertInt  float64
	version    int
}

func main() {
	var o options
	flag.StringVar(&o.hakeepd, "hakeepd", "", "path of the hakeepd binary to run on the directors")
	flag.BoolVar(&o.keepalived, "keepalived", false, "run Debian's keepalived on the directors instead")
	flag.Float64Var(&o.advertInt, "advert-int", 1, "advert_int in seconds")
	flag.IntVar(&o.version, "vrrp-version", 3, "VRRP version (2 or 3)")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(o options, out io.Writer) error {
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
	} else if _, err := exec.LookPath("keepalived"); err != nil {
		return fmt.Errorf("keepalived not installed (apt-get install keepalived): %w", err)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: the lab is built from network namespaces")
	}
	impl := "hakeepd"
	if o.keepalived {
		impl = "keepalived"
	}

	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	_ = lab.RemoveOrphans("hkdemo") // labs of demos killed before their cleanup
	l, err := lab.New(fmt.Sprintf("hkdemo%d-", os.Getpid()), 3, lab.Options{Extra: []string{"client"}})
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: cleanup: %v\n", err)
		} else {
			say("lab removed: namespaces deleted, daemons gone")
		}
	}()
	// Ctrl-C still cleans up: closing the lab kills the daemons, and the
	// step waiting on them fails and returns.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			say("interrupted: cleaning up")
			l.Close()
		}
	}()

	say("lab up: bridge + directors h1, h2, h3 (10.99.0.11-13) + client (10.99.0.14); VIP %s", vip)
	prio := map[string]int{"h1": 150, "h2": 100, "h3": 50}
	daemons := map[string]*lab.Daemon{}
	for _, h := range []string{"h1", "h2", "h3"} {
		conf := lab.Conf{RouterID: h, Version: o.version, Instances: []lab.Instance{{
			Name: "VI_1", State: "BACKUP", VRID: 51, Priority: prio[h], AdvertInt: o.advertInt,
			VIPs: []string{vip.String() + "/32"},
		}}}.String()
		var d *lab.Daemon
		if o.keepalived {
			d, err = l.StartKeepalived(h, conf)
		} else {
			d, err = l.StartHakeepd(o.hakeepd, h, conf)
		}
		if err != nil {
			return err
		}
		daemons[h] = d
		say("started %s on %s (priority %d, VRRPv%d, advert_int %gs)", impl, h, prio[h], o.version, o.advertInt)
	}
	iv := time.Duration(o.advertInt * float64(time.Second))
	masterDown := func(p int) time.Duration { return 3*iv + time.Duration(256-p)*iv/256 }
	limit := 4*masterDown(150) + 5*time.Second

	live := []string{"h1", "h2", "h3"}
	if _, err := l.WaitOwner(vip, "h1", limit, live...); err != nil {
		return fmt.Errorf("no master elected (%w); %s log:\n%s", err, impl, daemons["h1"].Tail(10))
	}
	say("MASTER: h1 holds %s (highest priority)", vip)
	if err := showClient(l, say); err != nil {
		return err
	}

	say("kill -9 %s on h1 (a crash: no priority-0 advert)", impl)
	daemons["h1"].Kill()
	live = []string{"h2", "h3"}
	took, err := l.WaitOwner(vip, "h2", limit, live...)
	if err != nil {
		return err
	}
	say("TAKEOVER: h2 holds %s %s after the kill (Master_Down_Interval %s)", vip, took.Round(time.Millisecond), masterDown(100).Round(time.Millisecond))
	if err := l.WaitNeighMAC("client", vip, l.Host("h2").MAC, 5*time.Second); err != nil {
		say("client's ARP entry not yet updated: %v", err)
	}
	if err := showClient(l, say); err != nil {
		return err
	}

	say("restart %s on h1", impl)
	restarted := time.Now()
	if err := daemons["h1"].Restart(); err != nil {
		return err
	}
	live = []string{"h1", "h2", "h3"}
	if _, err := l.WaitOwner(vip, "h1", limit, live...); err != nil {
		return err
	}
	say("PREEMPTION: h1 holds %s again, %s after its restart; h2 released it", vip, time.Since(restarted).Round(time.Millisecond))
	if err := l.WaitNeighMAC("client", vip, l.Host("h1").MAC, 5*time.Second); err != nil {
		say("client's ARP entry not yet updated: %v", err)
	}
	if err := showClient(l, say); err != nil {
		return err
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if err := daemons[h].Stop(10 * time.Second); err != nil {
			return err
		}
	}
	say("stopped all directors (SIGTERM)")
	return nil
}

// showClient pings the VIP from the client and prints its ARP view.
func showClient(l *lab.Lab, say func(string, ...any)) error {
	if err := l.Ping("client", vip); err != nil {
		return fmt.Errorf("client cannot reach the VIP: %w", err)
	}
	mac, err := l.Neigh("client", vip)
	if err != nil {
		return err
	}
	who := "unknown host"
	if h := l.HostByMAC(mac); h != nil {
		who = h.Name
	}
	say("client: ping %s ok; ARP %s -> %s -> %s", vip, vip, mac, who)
	return nil
}
