package vrrp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// A small two-or-more-host lab for this package's kernel tests: named
// network namespaces on one bridge namespace, each host with eth0 =
// 10.77.0.(10+i)/24 and MAC 02:00:00:00:00:(10+i). Names carry the package
// name and the pid so parallel runs do not collide.

var labSeq atomic.Int32

type lab struct {
	t      testing.TB
	prefix string
	sw     string
	hosts  []string
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and raw sockets")
	}
}

// inNS runs f on a locked OS thread switched into the named namespace.
func inNS(t testing.TB, name string, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked and so dies with the goroutine; it
		// never returns to the pool in a foreign namespace.
		ns, err := netns.GetFromName(name)
		if err != nil {
			errc <- fmt.Errorf("namespace %s: %w", name, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func sysctl(path, val string) error {
	return os.WriteFile(filepath.Join("/proc/sys", path), []byte(val), 0o644)
}

func newLab(t testing.TB, n int) *lab {
	t.Helper()
	needRoot(t)
	l := &lab{t: t, prefix: fmt.Sprintf("vrrp%d-%d-", os.Getpid(), labSeq.Add(1))}
	l.sw = l.prefix + "sw"
	t.Cleanup(l.down)
	mk := func(name string) {
		t.Helper()
		err := func() error {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			orig, err := netns.Get()
			if err != nil {
				return err
			}
			defer orig.Close()
			defer netns.Set(orig)
			ns, err := netns.NewNamed(name)
			if err != nil {
				return fmt.Errorf("create namespace %s: %w", name, err)
			}
			ns.Close()
			return nil
		}()
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(l.sw)
	err := inNS(t, l.sw, func() error {
		lo, _ := netlink.LinkByName("lo")
		netlink.LinkSetUp(lo)
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge: %w", err)
		}
		os.WriteFile("/sys/class/net/br0/bridge/multicast_snooping", []byte("0"), 0o644)
		return netlink.LinkSetUp(br)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("%sh%d", l.prefix, i)
		mk(h)
		l.hosts = append(l.hosts, h)
		swns, err := netns.GetFromName(l.sw)
		if err != nil {
			t.Fatal(err)
		}
		err = inNS(t, h, func() error {
			for _, p := range []string{"net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"} {
				if err := sysctl(p, "0"); err != nil {
					return err
				}
			}
			lo, _ := netlink.LinkByName("lo")
			netlink.LinkSetUp(lo)
			mac, _ := net.ParseMAC(fmt.Sprintf("02:00:00:00:00:%02x", 10+i))
			veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", HardwareAddr: mac},
				PeerName: fmt.Sprintf("p%d", i), PeerNamespace: netlink.NsFd(int(swns))}
			if err := netlink.LinkAdd(veth); err != nil {
				return fmt.Errorf("add veth: %w", err)
			}
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			addr, _ := netlink.ParseAddr(fmt.Sprintf("10.77.0.%d/24", 10+i))
			if err := netlink.AddrAdd(link, addr); err != nil {
				return fmt.Errorf("add address: %w", err)
			}
			return netlink.LinkSetUp(link)
		})
		swns.Close()
		if err != nil {
			t.Fatal(err)
		}
		err = inNS(t, l.sw, func() error {
			p, err := netlink.LinkByName(fmt.Sprintf("p%d", i))
			if err != nil {
				return err
			}
			br, err := netlink.LinkByName("br0")
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(p, br); err != nil {
				return err
			}
			return netlink.LinkSetUp(p)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the IPv6 link-local addresses (needed by v6 tests).
	for _, h := range l.hosts {
		l.poll(5*time.Second, "link-local address on "+h, func() bool {
			ok := false
			inNS(t, h, func() error {
				ifi, err := net.InterfaceByName("eth0")
				if err != nil {
					return err
				}
				_, err = primaryAddr(ifi, true)
				ok = err == nil
				return nil
			})
			return ok
		})
	}
	return l
}

func (l *lab) addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i)}) }

func (l *lab) down() {
	for _, n := range append([]string{l.sw}, l.hosts...) {
		if err := netns.DeleteNamed(n); err != nil && !os.IsNotExist(err) {
			l.t.Logf("delete namespace %s: %v", n, err)
		}
	}
}

func (l *lab) poll(d time.Duration, what string, f func() bool) {
	l.t.Helper()
	end := time.Now().Add(d)
	for !f() {
		if time.Now().After(end) {
			l.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listen opens a Conn for spec inside host i (1-based).
func (l *lab) listen(i int, spec *InstanceSpec) Conn {
	l.t.Helper()
	var c Conn
	err := inNS(l.t, l.hosts[i-1], func() (err error) {
		c, err = Listen(spec)
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// keepalived is a running Debian keepalived (VRRP only) in a lab host.
type keepalived struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer
}

func (k *keepalived) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.out.Write(p)
}

func (k *keepalived) log() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.out.String()
}

func (l *lab) keepalived(i int, conf string) *keepalived {
	l.t.Helper()
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		l.t.Skip("needs keepalived (Debian package keepalived)")
	}
	dir := l.t.TempDir()
	cf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	k := &keepalived{dir: dir, done: make(chan struct{})}
	k.cmd = exec.Command("ip", "netns", "exec", l.hosts[i-1], bin, "-n", "-l", "-D", "-G", "-P", "-f", cf,
		"-p", dir+"/keepalived.pid", "-r", dir+"/vrrp.pid", "-c", dir+"/checkers.pid", "-b", dir+"/bfd.pid")
	k.cmd.Stdout, k.cmd.Stderr = k, k
	if err := k.cmd.Start(); err != nil {
		l.t.Fatalf("start keepalived: %v", err)
	}
	done := k.done
	go func() { k.cmd.Wait(); close(done) }()
	l.t.Cleanup(func() {
		k.cmd.Process.Signal(syscallTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			k.cmd.Process.Kill()
			<-done
		}
		if l.t.Failed() {
			l.t.Logf("keepalived log:\n%s", k.log())
		}
	})
	return k
}

func (l *lab) waitLog(k *keepalived, d time.Duration, s string) {
	l.t.Helper()
	l.poll(d, fmt.Sprintf("keepalived to log %q", s), func() bool { return strings.Contains(k.log(), s) })
}

var _ = context.Background
