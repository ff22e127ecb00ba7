package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// Monitor samples, in the background, which hosts hold each of a set of
// addresses (one address dump per host per sample) and remembers the
// longest time two or more of the non-excluded hosts held one together,
// and every change of owners. It is the "never two owners" checker that
// runs through a whole scenario, not only while a test waits.
type Monitor struct {
	l     *Lab
	addrs []netip.Addr

	mu       sync.Mutex
	excluded map[string]bool
	since    map[netip.Addr]time.Time // start of the current overlap
	worst    map[netip.Addr]Overlap
	owners   map[netip.Addr][]string
	changes  []OwnerChange
	samples  int

	stop chan struct{}
	done chan struct{}
}

// Overlap is a stretch of time with several owners.
type Overlap struct {
	For   time.Duration
	Hosts []string
	At    time.Time
}

// OwnerChange is one change of an address's owners.
type OwnerChange struct {
	Time   time.Time
	Addr   netip.Addr
	Owners []string
}

func (c OwnerChange) String() string {
	return fmt.Sprintf("%s %s -> [%s]", c.Time.Format("15:04:05.000"), c.Addr, strings.Join(c.Owners, " "))
}

// MonitorReport is what a Monitor saw.
type MonitorReport struct {
	Samples int
	// Longest overlap per address (zero For: never two owners).
	Longest map[netip.Addr]Overlap
	Changes []OwnerChange
}

// Monitor starts sampling addrs every PollInterval until Stop.
func (l *Lab) Monitor(addrs ...netip.Addr) *Monitor {
	m := &Monitor{l: l, addrs: addrs, excluded: map[string]bool{}, since: map[netip.Addr]time.Time{},
		worst: map[netip.Addr]Overlap{}, owners: map[netip.Addr][]string{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

// Exclude stops (or resumes) counting host as an owner: a crashed
// keepalived leaves its VIPs behind, which is not a second live owner.
func (m *Monitor) Exclude(host string, excluded bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.excluded[host] = excluded
}

func (m *Monitor) run() {
	defer close(m.done)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		m.sample()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

func (m *Monitor) sample() {
	now := time.Now()
	held := map[netip.Addr][]string{}
	m.mu.Lock()
	excluded := copyBools(m.excluded)
	m.mu.Unlock()
	for _, h := range m.l.Hosts {
		if m.l.isClosed() {
			return
		}
		as, err := h.nl.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, a := range as {
			ip, _ := netip.AddrFromSlice(a.IP)
			ip = ip.Unmap()
			if slices.Contains(m.addrs, ip) && !excluded[h.Name] {
				held[ip] = append(held[ip], h.Name)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples++
	for _, a := range m.addrs {
		who := held[a]
		if !slices.Equal(who, m.owners[a]) {
			m.owners[a] = who
			m.changes = append(m.changes, OwnerChange{Time: now, Addr: a, Owners: who})
		}
		if len(who) < 2 {
			delete(m.since, a)
			continue
		}
		start, ok := m.since[a]
		if !ok {
			start = now
			m.since[a] = now
		}
		// A lower bound: from the first to the last sample that saw it. A
		// starved sampler must not turn a moment into a split brain.
		d := now.Sub(start)
		if w, ok := m.worst[a]; !ok || d > w.For {
			m.worst[a] = Overlap{For: d, Hosts: who, At: start}
		}
	}
}

func copyBools(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Stop ends sampling and returns the report.
func (m *Monitor) Stop() MonitorReport {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	r := MonitorReport{Samples: m.samples, Longest: map[netip.Addr]Overlap{}, Changes: append([]OwnerChange(nil), m.changes...)}
	for a, o := range m.worst {
		r.Longest[a] = o
	}
	return r
}

// Check returns an error naming the first address that had several owners
// for longer than grace.
func (r MonitorReport) Check(grace time.Duration) error {
	for a, o := range r.Longest {
		if o.For > grace {
			return fmt.Errorf("lab: %s held by %v together for %s (from %s)", a, o.Hosts, o.For.Round(time.Millisecond), o.At.Format("15:04:05.000"))
		}
	}
	return nil
}
