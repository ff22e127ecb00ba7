// Package lab builds throwaway network-namespace labs for VRRP tests and the
// demo: a switch namespace with a bridge, host namespaces wired to it by
// veth pairs, processes (keepalived, hakeepd, anything) run inside hosts,
// address polling, the ARP view of a client, and packet captures on the
// bridge. It needs root. It is not a test package: tests and the demo
// program both use it.
package lab

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Options configure a lab.
type Options struct {
	// Extra names additional hosts (e.g. "client", "rs1") wired to the
	// bridge like the directors, numbered after them.
	Extra []string
	// Dir holds logs, configs and pid files; empty: a new temp dir that
	// Close removes unless KeepDir.
	Dir     string
	KeepDir bool
	Logger  *slog.Logger
}

// Host is one namespace on the lab bridge.
type Host struct {
	Name  string // "h1", "client"
	NS    string // namespace name: prefix + Name
	Index int    // 1-based position on the bridge
	MAC   net.HardwareAddr
	Addr4 netip.Prefix // 10.99.0.(10+Index)/24
	Addr6 netip.Prefix // fd00:99::(10+Index in hex)/64
	Dir   string       // per-host directory for configs, pid files, logs

	handle netns.NsHandle
	nl     *netlink.Handle
}

// LinkLocal is the host's eth0 link-local address (EUI-64 from its MAC).
func (h *Host) LinkLocal() netip.Addr {
	m := h.MAC
	b := [16]byte{0xfe, 0x80, 8: m[0] ^ 2, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]}
	return netip.AddrFrom16(b)
}

// Lab is a running lab. Close removes it.
type Lab struct {
	Prefix string
	Dir    string
	Switch *Host // the bridge namespace (br0); Addr fields unset
	Hosts  []*Host
	logger *slog.Logger
	tmpDir bool
	keep   bool

	mu       sync.Mutex
	procs    []*Process
	captures []*Capture
	closed   bool

	closeOnce sync.Once
	closeErr  error
}

// Net4 is the lab's IPv4 /24 and Net6 its IPv6 /64.
var (
	Net4 = netip.MustParsePrefix("10.99.0.0/24")
	Net6 = netip.MustParsePrefix("fd00:99::/64")
)

// Bridge is the name of the bridge in the switch namespace.
const Bridge = "br0"

// New builds a lab: namespace prefix+"sw" with bridge br0 (STP and multicast
// snooping off), and hosts prefix+"h1".."hN" plus opts.Extra, each with eth0
// (MAC 02:00:00:00:00:(10+i), 10.99.0.(10+i)/24, fd00:99::(10+i)/64,
// accept_dad 0) on the bridge and lo up. A stale lab with the same prefix
// is removed first. On error everything created is removed.
func New(prefix string, hosts int, opts Options) (l *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: needs root (network namespaces)")
	}
	// The prefix ends in "-" and host names have none, so removing a stale
	// lab can never touch another lab's (or anyone's) namespaces.
	if !validName(strings.TrimSuffix(prefix, "-"), true) || !strings.HasSuffix(prefix, "-") || len(prefix) > 24 {
		return nil, fmt.Errorf("lab: bad prefix %q: want letters, digits and dashes, ending in a dash", prefix)
	}
	for _, n := range opts.Extra {
		if !validName(n, false) || n == "sw" || (len(n) > 1 && n[0] == 'h' && strings.Trim(n[1:], "0123456789") == "") {
			return nil, fmt.Errorf("lab: bad extra host name %q: want letters and digits, not sw or hN", n)
		}
	}
	if hosts < 0 || hosts+len(opts.Extra) > 180 {
		return nil, fmt.Errorf("lab: bad host count %d", hosts)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := RemoveStale(prefix); err != nil {
		return nil, err
	}
	l = &Lab{Prefix: prefix, Dir: opts.Dir, logger: logger.With("lab", prefix), keep: opts.KeepDir}
	if l.Dir == "" {
		if l.Dir, err = os.MkdirTemp("", "hakeep-lab-"+prefix+"-"); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		l.tmpDir = true
	}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	if l.Switch, err = l.newNS("sw", 0); err != nil {
		return l, err
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: Bridge}, MulticastSnooping: &off}
	if err := l.Switch.nl.LinkAdd(br); err != nil {
		return l, fmt.Errorf("lab: add bridge: %w", err)
	}
	// STP off (no 15 s forward delay; the kernel's default, said anyway),
	// snooping off (multicast VRRP floods every port). netlink has no STP
	// attribute and /sys shows the caller's namespace, so use ip(8).
	if out, err := exec.Command("ip", "-n", l.Switch.NS, "link", "set", Bridge, "type", "bridge",
		"stp_state", "0", "mcast_snooping", "0").CombinedOutput(); err != nil {
		return l, fmt.Errorf("lab: configure bridge: %w: %s", err, out)
	}
	if err := l.Switch.nl.LinkSetUp(br); err != nil {
		return l, fmt.Errorf("lab: bridge up: %w", err)
	}
	names := make([]string, 0, hosts+len(opts.Extra))
	for i := 1; i <= hosts; i++ {
		names = append(names, fmt.Sprintf("h%d", i))
	}
	names = append(names, opts.Extra...)
	for i, name := range names {
		h, err := l.newNS(name, i+1)
		if err != nil {
			return l, err
		}
		if err := l.wire(h); err != nil {
			return l, err
		}
		l.Hosts = append(l.Hosts, h)
	}
	if err := l.waitUp(5 * time.Second); err != nil {
		return l, err
	}
	l.logger.Info("lab up", "hosts", len(l.Hosts), "dir", l.Dir)
	return l, nil
}

// waitUp polls until the bridge, every port and every eth0 are
// operationally up, so the first packet of a test is not lost.
func (l *Lab) waitUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		down := ""
		check := func(h *Host, name string) {
			if down != "" {
				return
			}
			link, err := h.nl.LinkByName(name)
			if err != nil || link.Attrs().OperState != netlink.OperUp {
				down = h.NS + "/" + name
			}
		}
		check(l.Switch, Bridge)
		for _, h := range l.Hosts {
			check(l.Switch, fmt.Sprintf("port%d", h.Index))
			check(h, "eth0")
		}
		if down == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s not up after %s", down, timeout)
		}
		time.Sleep(PollInterval)
	}
}

func (l *Lab) newNS(name string, index int) (*Host, error) {
	h := &Host{Name: name, NS: l.Prefix + name, Index: index, handle: -1}
	var err error
	if h.handle, err = newNamedNS(h.NS); err != nil {
		return nil, fmt.Errorf("lab: create namespace %s: %w", h.NS, err)
	}
	if name == "sw" {
		l.Switch = h // so Close finds it even if the rest fails
	}
	if h.nl, err = netlink.NewHandleAt(h.handle, unix.NETLINK_ROUTE); err != nil {
		h.handle.Close()
		return nil, fmt.Errorf("lab: netlink in %s: %w", h.NS, err)
	}
	if lo, err := h.nl.LinkByName("lo"); err == nil {
		err = h.nl.LinkSetUp(lo)
		if err != nil {
			return h, fmt.Errorf("lab: lo up in %s: %w", h.NS, err)
		}
	}
	h.Dir = filepath.Join(l.Dir, name)
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return h, fmt.Errorf("lab: %w", err)
	}
	return h, nil
}

// wire creates the host's eth0 (peer "portN" on the bridge) and addresses.
func (l *Lab) wire(h *Host) error {
	hostOff := 10 + h.Index
	h.MAC = net.HardwareAddr{2, 0, 0, 0, byte(hostOff >> 8), byte(hostOff)}
	h.Addr4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, 0, byte(hostOff)}), 24)
	a6 := Net6.Addr().As16()
	a6[14], a6[15] = byte(hostOff>>8), byte(hostOff)
	h.Addr6 = netip.PrefixFrom(netip.AddrFrom16(a6), 64)
	if err := inNS(h.handle, func() error {
		// Usable IPv6 at once; rp_filter off in case the host's defaults are inherited.
		return errors.Join(
			writeFile("/proc/sys/net/ipv6/conf/all/accept_dad", "0"),
			writeFile("/proc/sys/net/ipv6/conf/default/accept_dad", "0"),
			writeFile("/proc/sys/net/ipv4/conf/all/rp_filter", "0"),
			writeFile("/proc/sys/net/ipv4/conf/default/rp_filter", "0"))
	}); err != nil {
		return fmt.Errorf("lab: sysctls in %s: %w", h.NS, err)
	}
	br, err := l.Switch.nl.LinkByName(Bridge)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	port := fmt.Sprintf("port%d", h.Index)
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index},
		PeerName:         "eth0",
		PeerHardwareAddr: h.MAC,
		PeerNamespace:    netlink.NsFd(int(h.handle)),
	}
	if err := l.Switch.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: add veth for %s: %w", h.NS, err)
	}
	p, err := l.Switch.nl.LinkByName(port)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := l.Switch.nl.LinkSetUp(p); err != nil {
		return fmt.Errorf("lab: %s up: %w", port, err)
	}
	eth0, err := h.nl.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("lab: eth0 in %s: %w", h.NS, err)
	}
	for _, p := range []netip.Prefix{h.Addr4, h.Addr6} {
		if err := h.nl.AddrAdd(eth0, &netlink.Addr{IPNet: prefixNet(p)}); err != nil {
			return fmt.Errorf("lab: address %s in %s: %w", p, h.NS, err)
		}
	}
	if err := h.nl.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("lab: eth0 up in %s: %w", h.NS, err)
	}
	return nil
}

// Host returns the host called name ("h1", "client") or nil.
func (l *Lab) Host(name string) *Host {
	for _, h := range l.Hosts {
		if h.Name == name || h.NS == name {
			return h
		}
	}
	return nil
}

// HostByMAC returns the host whose eth0 has mac, or nil.
func (l *Lab) HostByMAC(mac net.HardwareAddr) *Host {
	for _, h := range l.Hosts {
		if h.MAC.String() == mac.String() {
			return h
		}
	}
	return nil
}

// Close kills every process started in the lab, stops captures, deletes the
// namespaces and (for a temp dir, unless KeepDir) the directory. It is safe
// to call more than once and reports what it could not undo.
func (l *Lab) Close() error {
	l.mu.Lock()
	l.closed = true // waits see it at once
	l.mu.Unlock()
	// A second caller (a signal handler, a deferred Close) waits for the first.
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	procs, caps := l.procs, l.captures
	l.mu.Unlock()
	var errs []error
	for _, c := range caps {
		c.Stop()
	}
	for _, p := range procs {
		p.Kill()
	}
	hosts := append([]*Host{}, l.Hosts...)
	if l.Switch != nil {
		hosts = append(hosts, l.Switch)
	}
	for _, h := range hosts {
		if h.nl != nil {
			h.nl.Close()
		}
		if h.handle > 0 {
			h.handle.Close()
		}
	}
	if err := RemoveStale(l.Prefix); err != nil {
		errs = append(errs, err)
	}
	if l.tmpDir && !l.keep {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("lab: remove %s: %w", l.Dir, err))
		}
	}
	l.logger.Info("lab down")
	return errors.Join(errs...)
}

// RemoveStale kills every process in, and deletes, the namespaces named
// prefix+<name> where name has only letters and digits: a lab's switch and
// hosts.
func RemoveStale(prefix string) error {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: list namespaces: %w", err)
	}
	var errs []error
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !validName(rest, false) {
			continue
		}
		killNS(e.Name())
		if err := netns.DeleteNamed(e.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("lab: delete namespace %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// PIDsIn returns the processes whose network namespace is the named one.
func PIDsIn(name string) []int {
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		return nil
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid <= 0 {
			continue
		}
		var ps syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &ps) == nil && ps.Ino == st.Ino && ps.Dev == st.Dev {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// killNS SIGKILLs everything left in a lab namespace and waits (briefly)
// until it is gone, so the namespace really goes away.
func killNS(name string) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		pids := PIDsIn(name)
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newNamedNS creates a named namespace (bind-mounted under /run/netns like
// `ip netns add`) without moving the caller.
func newNamedNS(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer orig.Close()
	h, nerr := netns.NewNamed(name)
	if err := netns.Set(orig); err != nil {
		return -1, fmt.Errorf("return to original namespace: %w", err) // thread stays locked and dies
	}
	runtime.UnlockOSThread()
	return h, nerr
}

// InNamedNS runs fn on an OS thread switched into the namespace called
// name (ip netns); sockets fn opens stay there.
func InNamedNS(name string, fn func() error) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", name, err)
	}
	defer h.Close()
	return inNS(h, fn)
}

// inNS runs fn on a locked thread inside ns.
func inNS(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func writeFile(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func validName(s string, dashes bool) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || dashes && c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// RemoveOrphans removes the labs named base+PID+"-"... whose process PID
// no longer runs (a test or demo killed before its cleanup ran). Labs of
// running processes are left alone.
func RemoveOrphans(base string) error {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: list namespaces: %w", err)
	}
	var errs []error
	done := map[string]bool{}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok {
			continue
		}
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n == len(rest) || rest[n] != '-' {
			continue
		}
		pid := 0
		fmt.Sscanf(rest[:n], "%d", &pid)
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // still running
		}
		i := strings.LastIndex(e.Name(), "-")
		prefix := e.Name()[:i+1]
		if done[prefix] {
			continue
		}
		done[prefix] = true
		if err := RemoveStale(prefix); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
