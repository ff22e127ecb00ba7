package overload_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/internal/lab"
	"hakeep/internal/vmtest"
)

// The IPVS storm: ipvsVS virtual services on h1, each with a steady real
// server (no checker); every ipvsVS/ipvsFlap-th also has one whose
// TCP_CHECK flips with a listener the test opens and closes in h1 every
// ipvsFlip. Each flip takes ipvsFlap destinations out of the kernel
// table, or puts them back, and the reconciler rereads the whole table.
// Sized for the VM: its emulated CPU is 20-30x slower than the host's.
// With 1,000 services all flapping, neither daemon held advert_int 0.1
// there (max gaps 766 ms keepalived, 892 ms hakeepd, both with backup
// takeovers; BenchmarkOverloadIPVSStorm, HAKEEP_OVERLOAD_FLAP).
const (
	ipvsVS   = 2000
	ipvsFlap = 200
	ipvsFlip = 6 * time.Second
	// ipvsAddr is where the flapping real servers listen: h1's own end of
	// the real-server link, port ipvsPort0+v for service v.
	ipvsAddr  = "10.61.0.1"
	ipvsPort0 = 20000
)

// ipvsWindow: long enough for several flips once the checks have seen
// every real server up, short enough for the VM (TCG is 20-30x slower).
const ipvsWindow = 36 * time.Second

// requireVMIPVS skips without kernel IPVS (this host's kernel has none:
// the test runs in the VM, make test-ipvs). In the VM it must run: a
// missing keepalived or tcpdump is a failure there, not a skip.
func requireVMIPVS(t testing.TB) {
	t.Helper()
	if vmtest.InVM() {
		for _, b := range []struct{ name, host string }{
			{"keepalived", "/usr/sbin/keepalived"}, // the backup, on h2
			{"tcpdump", "/usr/bin/tcpdump"},        // the advert capture
		} {
			if _, err := exec.LookPath(b.name); err != nil {
				t.Fatalf("in the VM without %s: pass -bin %s to vmtest (%v)", b.name, b.host, err)
			}
		}
	}
	vmtest.RequireIPVS(t)
}

func TestOverloadIPVSStorm(t *testing.T) {
	requireVMIPVS(t)
	runOverload(t, hakeepdMaster, ipvsScenario(ipvsFlap, ipvsWindow)).check(t)
}

// BenchmarkOverloadIPVSStorm: the storm with hakeepd as master (VRRP,
// checks and IPVS in one process) and with keepalived doing the whole
// job (its VRRP, checker and IPVS processes on the same file). In the VM:
//
//	go run ./internal/vmtest/cmd/vmtest -bin /usr/sbin/keepalived -bin /usr/bin/tcpdump -build ./cmd/hakeepd \
//	    -run '^$' -bench OverloadIPVSStorm -benchtime 1x ./test/overload
func BenchmarkOverloadIPVSStorm(b *testing.B) {
	requireVMIPVS(b)
	flap := ipvsFlap
	if v, err := strconv.Atoi(os.Getenv("HAKEEP_OVERLOAD_FLAP")); err == nil && v > 0 && ipvsVS%v == 0 {
		flap = v
	}
	benchOverload(b, fmt.Sprintf("%dx%d", ipvsVS, flap), ipvsScenario(flap, ipvsWindow), hakeepdMaster, keepalivedAll)
}

// ipvsScenario flips every flapping real server together every ipvsFlip
// for the window. The load was real when the master reprogrammed the
// kernel table on most flips.
func ipvsScenario(flap int, d time.Duration) scenario {
	fl := &flapper{every: ipvsVS / flap}
	return scenario{
		name: fmt.Sprintf("IPVS storm (%d services, %d real servers flipping every %s)", ipvsVS, flap, ipvsFlip),
		conf: ipvsConf(fl.every), window: d,
		setup: func(t testing.TB, e *env) {
			fl.ns = e.l.Host("h1").NS
			if err := fl.set(true); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fl.set(false) })
		},
		// The window starts with the whole table in the kernel: the storm
		// is the flips, not the first programming.
		ready: func(ctx context.Context, e *env) error {
			for {
				out, err := e.l.Exec(ctx, "h1", "cat", "/proc/net/ip_vs")
				n := strings.Count(string(out), "\nTCP ")
				if err == nil && n >= ipvsVS {
					return nil
				}
				if ctx.Err() != nil {
					return fmt.Errorf("%d of %d services in h1's kernel table: %v", n, ipvsVS, err)
				}
				time.Sleep(time.Second)
			}
		},
		stress: func(ctx context.Context, e *env) (string, error) {
			// Only the changes made during the window count.
			var from int64
			if st, err := os.Stat(e.master.Log); err == nil {
				from = st.Size()
			}
			flips := 0
			tick := time.NewTicker(ipvsFlip)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return ipvsOutcome(e, flips, flap, from)
				case <-tick.C:
				}
				flips++
				if err := fl.set(flips%2 == 0); err != nil {
					return "", err
				}
			}
		},
	}
}

// ipvsOutcome counts the IPVS changes the master made, from its log
// after offset from: hakeepd's reconciler reports each pass ("ipvs
// reconciled ... changes=N"), keepalived's checker each real server it
// removes or adds.
// (Not from hakeepd's metrics: in the VM's emulated CPU a scrape of
// 4,000 destinations outlasts the handler's timeout.)
func ipvsOutcome(e *env, flips, flap int, from int64) (string, error) {
	b, err := os.ReadFile(e.master.Log)
	if err != nil {
		return "", err
	}
	b = b[min(from, int64(len(b))):]
	changes := 0
	switch e.m {
	case keepalivedAll:
		changes = strings.Count(string(b), "Removing service") + strings.Count(string(b), "Adding service")
	default:
		for _, m := range regexp.MustCompile(`msg="ipvs reconciled".* changes=(\d+)`).FindAllSubmatch(b, -1) {
			n, _ := strconv.Atoi(string(m[1]))
			changes += n
		}
	}
	s := fmt.Sprintf("%d flips, %d IPVS changes in the window", flips, changes)
	// Half the flips' worth of destination changes at least: the table
	// was reprogrammed again and again, not once.
	if want := flips * flap / 2; changes < want {
		return s, fmt.Errorf("%d IPVS changes, want at least %d", changes, want)
	}
	return s, nil
}

// ipvsConf: service v is vip1:(1000+v) with a steady real server on the
// dead network and, when v is a multiple of every, a flapping one on h1's
// listener ipvsPort0+v.
func ipvsConf(every int) string {
	var b strings.Builder
	for v := 0; v < ipvsVS; v++ {
		fmt.Fprintf(&b, "virtual_server %s %d {\n    delay_loop 3\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n", vip1, 1000+v)
		fmt.Fprintf(&b, "    real_server 10.60.%d.%d 80 {\n        weight 1\n    }\n", v/250, v%250+1)
		if v%every == 0 {
			fmt.Fprintf(&b, "    real_server %s %d {\n        weight 1\n        TCP_CHECK {\n            connect_timeout 1\n            retry 0\n        }\n    }\n",
				ipvsAddr, ipvsPort0+v)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// flapper holds the flapping real servers' listeners in h1's namespace,
// one for every every-th service.
type flapper struct {
	ns    string
	every int
	mu    sync.Mutex
	ls    []net.Listener
}

// set opens every listener (up) or closes them all (down: connections
// are refused, so every check fails at once).
func (f *flapper) set(up bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.ls {
		l.Close()
	}
	f.ls = nil
	if !up {
		return nil
	}
	return lab.InNamedNS(f.ns, func() error {
		for v := 0; v < ipvsVS; v += f.every {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ipvsAddr, ipvsPort0+v))
			if err != nil {
				return err
			}
			f.ls = append(f.ls, l)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		return nil
	})
}
