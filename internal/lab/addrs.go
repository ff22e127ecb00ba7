package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"time"

	"github.com/vishvananda/netlink"
)

// PollInterval is how often WaitAddr and friends look at the kernel.
const PollInterval = 5 * time.Millisecond

// HasAddr reports whether host holds addr on any interface.
func (l *Lab) HasAddr(host string, addr netip.Addr) (bool, error) {
	h := l.Host(host)
	if h == nil {
		return false, fmt.Errorf("lab: no host %q", host)
	}
	return h.HasAddr(addr)
}

// HasAddr reports whether the host holds addr on any interface.
func (h *Host) HasAddr(addr netip.Addr) (bool, error) {
	fam := netlink.FAMILY_V4
	if addr.Is6() && !addr.Is4In6() {
		fam = netlink.FAMILY_V6
	}
	as, err := h.nl.AddrList(nil, fam)
	if err != nil {
		return false, fmt.Errorf("lab: list addresses in %s: %w", h.NS, err)
	}
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}

// WaitAddr polls host every PollInterval until it holds addr and returns
// how long that took, or an error after timeout.
func (l *Lab) WaitAddr(host string, addr netip.Addr, timeout time.Duration) (time.Duration, error) {
	return l.waitAddr(host, addr, timeout, true)
}

// WaitNoAddr polls until host no longer holds addr.
func (l *Lab) WaitNoAddr(host string, addr netip.Addr, timeout time.Duration) (time.Duration, error) {
	return l.waitAddr(host, addr, timeout, false)
}

func (l *Lab) waitAddr(host string, addr netip.Addr, timeout time.Duration, want bool) (time.Duration, error) {
	start := time.Now()
	for {
		if l.isClosed() {
			return time.Since(start), ErrClosed
		}
		has, err := l.HasAddr(host, addr)
		if err != nil {
			return time.Since(start), err
		}
		if has == want {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			if want {
				return time.Since(start), fmt.Errorf("lab: %s does not hold %s after %s (holders: %v)", host, addr, timeout, l.WhoHas(addr))
			}
			return time.Since(start), fmt.Errorf("lab: %s still holds %s after %s", host, addr, timeout)
		}
		time.Sleep(PollInterval)
	}
}

// WhoHas returns the hosts holding addr; more than one is a split brain.
// With among given, only those hosts are looked at (e.g. the live ones:
// a crashed keepalived leaves its VIPs behind).
func (l *Lab) WhoHas(addr netip.Addr, among ...string) []string {
	var out []string
	for _, h := range l.Hosts {
		if len(among) > 0 && !contains(among, h.Name) {
			continue
		}
		if ok, _ := h.HasAddr(addr); ok {
			out = append(out, h.Name)
		}
	}
	return out
}

// HandoverGrace is how long two hosts may hold an address together before
// WaitOwner, StableOwner and a Monitor call it a split brain. At a
// preemption the new master adds the VIP and adverts, and the old one
// removes the VIP when that advert arrives, so a real VRRP handover
// overlaps by a moment (keepalived's too), longer when the shared CPU
// delays a daemon; a split brain lasts Master_Down_Interval or more (at
// least 0.3 s at advert_int 0.1). Set it to 0 for a strict check
// (fencing).
var HandoverGrace = 150 * time.Millisecond

// overlap tracks how long several owners have been seen together.
type overlap struct{ since time.Time }

func (o *overlap) check(addr netip.Addr, who []string) error {
	if len(who) < 2 {
		o.since = time.Time{}
		return nil
	}
	if o.since.IsZero() {
		o.since = time.Now()
	}
	if d := time.Since(o.since); d > HandoverGrace || HandoverGrace == 0 {
		return fmt.Errorf("lab: split brain: %s held by %v for %s", addr, who, d.Round(time.Millisecond))
	}
	return nil
}

// WaitOwner polls every host until exactly want holds addr (want "" means
// nobody) and fails if two hosts hold it together for longer than
// HandoverGrace. It returns the time taken. among limits the hosts looked
// at.
func (l *Lab) WaitOwner(addr netip.Addr, want string, timeout time.Duration, among ...string) (time.Duration, error) {
	start := time.Now()
	var ov overlap
	for {
		if l.isClosed() {
			return time.Since(start), ErrClosed
		}
		who := l.WhoHas(addr, among...)
		if err := ov.check(addr, who); err != nil {
			return time.Since(start), err
		}
		if (want == "" && len(who) == 0) || (len(who) == 1 && who[0] == want) {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("lab: want %s held by %q after %s, held by %v", addr, want, timeout, who)
		}
		time.Sleep(PollInterval)
	}
}

// StableOwner checks for d that exactly want holds addr the whole time
// (polling every PollInterval): no flapping, no second owner (beyond
// HandoverGrace while want holds it too).
func (l *Lab) StableOwner(addr netip.Addr, want string, d time.Duration, among ...string) error {
	end := time.Now().Add(d)
	var ov overlap
	for time.Now().Before(end) {
		if l.isClosed() {
			return ErrClosed
		}
		who := l.WhoHas(addr, among...)
		if err := ov.check(addr, who); err != nil {
			return err
		}
		if !contains(who, want) {
			return fmt.Errorf("lab: %s held by %v, want only %s", addr, who, want)
		}
		time.Sleep(PollInterval)
	}
	return nil
}

// Neigh returns the MAC host's neighbour table holds for addr (the
// client's ARP view of a VIP), or nil when it has no usable entry.
func (l *Lab) Neigh(host string, addr netip.Addr) (net.HardwareAddr, error) {
	h := l.Host(host)
	if h == nil {
		return nil, fmt.Errorf("lab: no host %q", host)
	}
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := h.nl.NeighList(0, fam)
	if err != nil {
		return nil, fmt.Errorf("lab: neighbours in %s: %w", h.NS, err)
	}
	for _, n := range ns {
		ip, _ := netip.AddrFromSlice(n.IP)
		if ip.Unmap() == addr && len(n.HardwareAddr) == 6 &&
			n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0 {
			return n.HardwareAddr, nil
		}
	}
	return nil, nil
}

// Exec runs a command inside host and returns its combined output.
func (l *Lab) Exec(ctx context.Context, host string, name string, args ...string) ([]byte, error) {
	h := l.Host(host)
	if h == nil {
		if host == "sw" && l.Switch != nil {
			h = l.Switch
		} else {
			return nil, fmt.Errorf("lab: no host %q", host)
		}
	}
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("lab: %s in %s: %w: %s", name, h.NS, err, out)
	}
	return out, nil
}

// Ping pings addr from host until one reply comes back (up to 3 tries of
// 1 s), which also refreshes host's neighbour entry for addr.
func (l *Lab) Ping(host string, addr netip.Addr) error {
	var err error
	for try := 0; try < 3; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = l.Exec(ctx, host, "ping", "-n", "-q", "-c", "1", "-W", "1", addr.String())
		cancel()
		if err == nil || l.isClosed() {
			return err
		}
	}
	return err
}

// SetLink sets host's interface dev up or down (a cut cable).
func (l *Lab) SetLink(host, dev string, up bool) error {
	h := l.Host(host)
	if h == nil {
		return fmt.Errorf("lab: no host %q", host)
	}
	link, err := h.nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("lab: %s in %s: %w", dev, h.NS, err)
	}
	if up {
		err = h.nl.LinkSetUp(link)
	} else {
		err = h.nl.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("lab: set %s up=%v in %s: %w", dev, up, h.NS, err)
	}
	return nil
}

// WaitNeighMAC polls host's neighbour entry for addr until it is mac
// (gratuitous ARPs update an existing entry).
func (l *Lab) WaitNeighMAC(host string, addr netip.Addr, mac net.HardwareAddr, timeout time.Duration) error {
	start := time.Now()
	for {
		if l.isClosed() {
			return ErrClosed
		}
		got, err := l.Neigh(host, addr)
		if err != nil {
			return err
		}
		if got.String() == mac.String() {
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("lab: %s's neighbour entry for %s is %v after %s, want %s", host, addr, got, timeout, mac)
		}
		time.Sleep(PollInterval)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// AddVeth creates a veth pair a <-> b inside host, both up: an extra
// interface to track or cut (there is no dummy module here).
func (l *Lab) AddVeth(host, a, b string) error {
	h := l.Host(host)
	if h == nil {
		return fmt.Errorf("lab: no host %q", host)
	}
	if err := h.nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		return fmt.Errorf("lab: add veth %s/%s in %s: %w", a, b, h.NS, err)
	}
	for _, n := range []string{a, b} {
		if err := l.SetLink(host, n, true); err != nil {
			return err
		}
	}
	return nil
}

// ErrClosed is returned by waits on a lab that was closed meanwhile.
var ErrClosed = errors.New("lab: closed")

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}
