package vip

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel is an in-memory Kernel: addresses per link, routes, rules,
// and a log of announcements. failAddr makes AddrReplace fail for one prefix.
type fakeKernel struct {
	mu       sync.Mutex
	links    map[string]Link
	addrs    map[string]map[netip.Prefix]InstalledAddr
	routes   map[string]Route
	rules    map[string]Rule
	sent     []string // "garp eth0 10.0.0.1" / "na eth0 fd00::1"
	failAddr netip.Prefix
}

func newFakeKernel(links ...string) *fakeKernel {
	k := &fakeKernel{links: map[string]Link{}, addrs: map[string]map[netip.Prefix]InstalledAddr{},
		routes: map[string]Route{}, rules: map[string]Rule{}}
	for i, n := range links {
		k.links[n] = Link{Index: i + 2, Name: n, MAC: []byte{2, 0, 0, 0, 0, byte(i + 1)}}
		k.addrs[n] = map[netip.Prefix]InstalledAddr{}
	}
	return k
}

func (k *fakeKernel) LinkByName(name string) (Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.links[name]
	if !ok {
		return Link{}, fmt.Errorf("find interface %s: %w", name, unix.ENODEV)
	}
	return l, nil
}

func (k *fakeKernel) AddrReplace(l Link, a Address, lifetime time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a.Prefix == k.failAddr {
		return unix.EPERM
	}
	k.addrs[l.Name][a.Prefix] = InstalledAddr{Prefix: a.Prefix, Label: a.Label, ValidLft: lifetime}
	return nil
}

func (k *fakeKernel) AddrDel(l Link, a Address) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.addrs[l.Name][a.Prefix]; !ok {
		return unix.EADDRNOTAVAIL
	}
	delete(k.addrs[l.Name], a.Prefix)
	return nil
}

func (k *fakeKernel) AddrList(l Link) ([]InstalledAddr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []InstalledAddr
	for _, a := range k.addrs[l.Name] {
		out = append(out, a)
	}
	return out, nil
}

func (k *fakeKernel) RouteReplace(r Route, dev Link) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.routes[r.String()] = r
	return nil
}

func (k *fakeKernel) RouteDel(r Route, dev Link) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.routes[r.String()]; !ok {
		return unix.ESRCH
	}
	delete(k.routes, r.String())
	return nil
}

func (k *fakeKernel) RuleAdd(r Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.rules[r.String()]; ok {
		return unix.EEXIST
	}
	k.rules[r.String()] = r
	return nil
}

func (k *fakeKernel) RuleDel(r Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.rules[r.String()]; !ok {
		return unix.ENOENT
	}
	delete(k.rules, r.String())
	return nil
}

func (k *fakeKernel) SendGARP(l Link, a netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sent = append(k.sent, "garp "+l.Name+" "+a.String())
	return nil
}

func (k *fakeKernel) SendNA(l Link, a netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sent = append(k.sent, "na "+l.Name+" "+a.String())
	return nil
}

func (k *fakeKernel) sentCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.sent)
}

// fakeClock fires After channels only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Duration
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Duration
	ch chan time.Time
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{at: c.now + d, ch: ch})
	return ch
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(0, int64(c.now))
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// Advance moves time on and fires every waiter that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now += d
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at <= c.now {
			w.ch <- time.Unix(0, int64(c.now))
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}
