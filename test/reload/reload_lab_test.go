// Package reload_test shows hakeepd's SIGHUP reload in a namespace lab:
// an unchanged instance keeps its state and VIPs (keepalived #2159 moved
// every VIP on reload), a changed one moves as VRRP says, and a broken
// file is reported with file:line while the running configuration stays.
package reload_test

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
)

var (
	vip1 = netip.MustParseAddr("10.99.0.100") // VI_1: never changed
	vip2 = netip.MustParseAddr("10.99.0.101") // VI_2: priority changed by a reload
)

// conf is both directors' file; prio2 is h1's VI_2 priority.
func conf(prio2 int, labelV1 string) string {
	return fmt.Sprintf(`global_defs {
    script_user root
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    version 3
    advert_int 0.1
@h1 priority 150
@h2 priority 100
    virtual_ipaddress {
        10.99.0.100/32 dev eth0 label %s
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    version 3
    advert_int 0.1
@h1 priority %d
@h2 priority 100
    virtual_ipaddress {
        10.99.0.101/32
    }
}
`, labelV1, prio2)
}

// noEvents fails if anything happened to the watched VIP.
func noEvents(t *testing.T, what string, ch <-chan lab.AddrEvent) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("%s: VIP changed on reload: %+v", what, ev)
	default:
	}
}

func TestSIGHUPReload(t *testing.T) {
	bin := labtest.Binary(t, "hakeepd")
	l := labtest.New(t, 2, lab.Options{})
	hosts := []string{"h1", "h2"}
	d := map[string]*lab.Daemon{}
	for _, h := range hosts {
		dm, err := l.StartHakeepd(bin, h, conf(150, "eth0:web"), "-i", h)
		if err != nil {
			t.Fatalf("start %s: %v", h, err)
		}
		d[h] = dm
	}
	for _, v := range []netip.Addr{vip1, vip2} {
		if _, err := l.WaitOwner(v, "h1", 10*time.Second, hosts...); err != nil {
			t.Fatal(err)
		}
	}
	// Both settled before the first reload: h2 starts after h1, and its
	// start (BACKUP, its first Master_Down timer, in a loaded VM a
	// takeover h1's next advert undoes) is not the reload's doing.
	for _, inst := range []string{"(VI_1) Entering BACKUP STATE", "(VI_2) Entering BACKUP STATE"} {
		if err := d["h2"].WaitLog(inst, 10*time.Second); err != nil {
			t.Fatalf("h2 start: %v", err)
		}
	}
	settled := time.Now().Add(15 * time.Second)
	for _, v := range []netip.Addr{vip1, vip2} {
		for {
			if _, err := l.WaitOwner(v, "h1", 10*time.Second, hosts...); err != nil {
				t.Fatal(err)
			}
			err := l.StableOwner(v, "h1", time.Second, hosts...)
			if err == nil {
				break
			}
			if time.Now().After(settled) {
				t.Fatalf("not settled 15 s after the start: %v", err)
			}
		}
	}
	ev1, stop1, err := l.Watch(vip1, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	defer stop1()
	ev2, stop2, err := l.Watch(vip2, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()

	reload := func(text, wantLog string) {
		t.Helper()
		if err := os.WriteFile(d["h1"].Conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		seen := d["h1"].LogCount(wantLog)
		if err := d["h1"].Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if err := d["h1"].WaitLogCount(wantLog, seen+1, 10*time.Second); err != nil {
			t.Fatalf("after SIGHUP: %v", err)
		}
	}

	// 1. The same file: nothing moves, nothing is re-added.
	reload(conf(150, "eth0:web"), "reload complete")
	if err := l.StableOwner(vip1, "h1", 500*time.Millisecond, hosts...); err != nil {
		t.Fatal(err)
	}
	noEvents(t, "unchanged file, VI_1", ev1)
	noEvents(t, "unchanged file, VI_2", ev2)

	// 2. A broken file: refused with file:line, the running one stays.
	reload(conf(150, "eth0:web")+"vrrp_instance VI_3 {\n    virtual_router_id 300\n}\n", "hakeepd.conf:27: virtual_router_id")
	if err := d["h1"].WaitLog("keeping the running one", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.StableOwner(vip2, "h1", 500*time.Millisecond, hosts...); err != nil {
		t.Fatal(err)
	}
	noEvents(t, "broken file, VI_1", ev1)
	noEvents(t, "broken file, VI_2", ev2)

	// 3. VI_2's priority on h1 drops below h2's: VI_2 moves to h2 (h2
	// preempts), VI_1 is not touched.
	reload(conf(50, "eth0:web"), "reload complete")
	if _, err := l.WaitOwner(vip2, "h2", 5*time.Second, hosts...); err != nil {
		t.Fatal(err)
	}
	if err := l.StableOwner(vip1, "h1", 500*time.Millisecond, hosts...); err != nil {
		t.Fatal(err)
	}
	noEvents(t, "VI_2 priority change, VI_1", ev1)
	if !d["h1"].Running() || !d["h2"].Running() {
		t.Fatal("a daemon died during reloads")
	}
}
