package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the time source of the announcement schedule (a fake in tests).
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Set is the installed-when-master state of one VRRP instance. Its methods
// are safe for concurrent use.
type Set struct {
	spec   Spec
	k      Kernel
	close  func() error
	clock  Clock
	logger *slog.Logger

	mu         sync.Mutex
	active     bool
	stop       context.CancelFunc // stops the announcement goroutines
	annContext context.Context
	annWG      sync.WaitGroup
	life       time.Duration // current lifetime of installed addresses
	// expires (Unix ns; 0: permanent) is when the lifetime last written
	// runs out: the kernel drops the addresses then, and they are not
	// announced after it (a process paused past a fencing lease must not
	// announce VIPs it no longer holds when it runs again).
	expires atomic.Int64
}

// now is the clock's time when it has one (tests), else the system's.
func (s *Set) now() time.Time {
	if c, ok := s.clock.(interface{ Now() time.Time }); ok {
		return c.Now()
	}
	return time.Now()
}

// wrote records a write of the lifetime started at start.
func (s *Set) wrote(start time.Time) {
	if s.life == 0 {
		s.expires.Store(0)
		return
	}
	s.expires.Store(start.Add(s.life).UnixNano())
}

// expired reports whether the lifetime last written has run out.
func (s *Set) expired() bool {
	e := s.expires.Load()
	return e != 0 && s.now().UnixNano() >= e
}

// NewSet validates spec and returns a Set working through the real kernel
// in spec.Netns. Nothing is installed until Add.
func NewSet(spec Spec, logger *slog.Logger) (*Set, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("instance %s: %w", spec.Instance, err)
	}
	k, closeFn, err := NewKernel(spec.Netns)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", spec.Instance, err)
	}
	s := newSet(spec, k, realClock{}, logger)
	s.close = closeFn
	return s, nil
}

// NewSetWith is NewSet over a given Kernel and Clock (tests, other wiring).
func NewSetWith(spec Spec, k Kernel, clock Clock, logger *slog.Logger) (*Set, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("instance %s: %w", spec.Instance, err)
	}
	return newSet(spec, k, clock, logger), nil
}

func newSet(spec Spec, k Kernel, clock Clock, logger *slog.Logger) *Set {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Set{spec: spec, k: k, clock: clock, life: spec.Lifetime,
		logger: logger.With("instance", spec.Instance)}
}

// Close stops announcements and releases the netlink handle; it does not
// remove anything (call Remove first for that).
func (s *Set) Close() error {
	s.stopAnnounce()
	if s.close != nil {
		return s.close()
	}
	return nil
}

func (s *Set) dev(name string) string {
	if name == "" {
		return s.spec.Interface
	}
	return name
}

func (s *Set) allAddrs() []Address {
	return append(append([]Address(nil), s.spec.Addresses...), s.spec.Excluded...)
}

// Add installs the addresses (with the current lifetime), routes and rules,
// then announces the addresses: a burst of gratuitous ARPs / unsolicited
// NAs now, another after Timing.MasterDelay and, with MasterRefresh set,
// periodic bursts until Remove. Calling Add again re-applies what is
// missing and leaves a running schedule alone. Every failure is reported;
// what could be installed stays installed.
func (s *Set) Add(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	links := map[string]Link{}
	link := func(name string) (Link, error) {
		if l, ok := links[name]; ok {
			return l, nil
		}
		l, err := s.k.LinkByName(name)
		if err == nil {
			links[name] = l
		}
		return l, err
	}
	start := s.now()
	for _, a := range s.allAddrs() {
		dev := s.dev(a.Dev)
		l, err := link(dev)
		if err == nil {
			err = s.k.AddrReplace(l, a, s.life)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("add VIP %s on %s: %w", a.Prefix, dev, err))
			continue
		}
		s.logger.Debug("VIP added", "addr", a.Prefix.String(), "dev", dev, "lifetime", s.life)
	}
	for _, r := range s.spec.Routes {
		var l Link
		var err error
		if dev := s.routeDev(r); dev != "" {
			l, err = link(dev)
		}
		if err == nil {
			err = s.k.RouteReplace(r, l)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("add virtual route %s: %w", r, err))
		}
	}
	for _, r := range s.spec.Rules {
		if err := s.k.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add virtual rule %s: %w", r, err))
		}
	}
	// Before the announcements start: they read it.
	s.wrote(start)
	wasActive := s.active
	s.active = true
	if !wasActive {
		s.startAnnounce(links)
		s.logger.Info("VIPs installed", "addrs", len(s.allAddrs()), "routes", len(s.spec.Routes), "rules", len(s.spec.Rules))
	}
	return errors.Join(errs...)
}

func (s *Set) routeDev(r Route) string {
	if r.Dev != "" || r.Blackhole {
		return r.Dev
	}
	if !r.Via.IsValid() {
		return s.spec.Interface
	}
	return ""
}

// Remove stops the announcements and deletes rules, routes and addresses.
// What is already gone is not an error.
func (s *Set) Remove(ctx context.Context) error {
	s.stopAnnounce()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = false
	var errs []error
	for _, r := range s.spec.Rules {
		if err := s.k.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete virtual rule %s: %w", r, err))
		}
	}
	for _, r := range s.spec.Routes {
		var l Link
		var err error
		if dev := s.routeDev(r); dev != "" {
			l, err = s.k.LinkByName(dev)
		}
		if err == nil {
			err = s.k.RouteDel(r, l)
		}
		// A route whose device is gone went with it.
		if err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete virtual route %s: %w", r, err))
		}
	}
	for _, a := range s.allAddrs() {
		dev := s.dev(a.Dev)
		l, err := s.k.LinkByName(dev)
		if err == nil {
			err = s.k.AddrDel(l, a)
		}
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete VIP %s on %s: %w", a.Prefix, dev, err))
		}
	}
	s.logger.Info("VIPs removed", "addrs", len(s.allAddrs()))
	return errors.Join(errs...)
}

// Refresh re-installs the addresses with a new kernel lifetime (a fencing
// lease renewal); later Adds use it too. lifetime 0 makes them permanent.
// It does nothing to an inactive Set but remember the lifetime.
func (s *Set) Refresh(ctx context.Context, lifetime time.Duration) error {
	if lifetime < 0 {
		return fmt.Errorf("refresh VIPs of %s: negative lifetime %s", s.spec.Instance, lifetime)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.life = lifetime
	if !s.active {
		return nil
	}
	defer s.wrote(s.now())
	var errs []error
	for _, a := range s.allAddrs() {
		dev := s.dev(a.Dev)
		l, err := s.k.LinkByName(dev)
		if err == nil {
			err = s.k.AddrReplace(l, a, lifetime)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("refresh VIP %s on %s: %w", a.Prefix, dev, err))
		}
	}
	return errors.Join(errs...)
}

// Present reports whether every address of the set is installed.
func (s *Set) Present() (bool, error) {
	byDev := map[string][]InstalledAddr{}
	for _, a := range s.allAddrs() {
		dev := s.dev(a.Dev)
		have, ok := byDev[dev]
		if !ok {
			l, err := s.k.LinkByName(dev)
			if err != nil {
				return false, fmt.Errorf("check VIP %s on %s: %w", a.Prefix, dev, err)
			}
			if have, err = s.k.AddrList(l); err != nil {
				return false, fmt.Errorf("list addresses on %s: %w", dev, err)
			}
			byDev[dev] = have
		}
		found := false
		for _, h := range have {
			found = found || h.Prefix == a.Prefix
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// RemoveStale deletes this set's addresses wherever they are on its
// devices: VIPs left behind by a crashed previous run (keepalived does the
// same at start). It returns what it removed.
func (s *Set) RemoveStale(ctx context.Context) ([]netip.Prefix, error) {
	ifaces := []string{}
	seen := map[string]bool{}
	var addrs []netip.Addr
	for _, a := range s.allAddrs() {
		if d := s.dev(a.Dev); !seen[d] {
			seen[d] = true
			ifaces = append(ifaces, d)
		}
		addrs = append(addrs, a.Prefix.Addr())
	}
	return RemoveStale(ctx, s.k, ifaces, addrs, s.logger)
}

// RemoveStale deletes every address in addrs (any prefix length) found on
// the interfaces ifaces and returns what it removed.
func RemoveStale(ctx context.Context, k Kernel, ifaces []string, addrs []netip.Addr, logger *slog.Logger) ([]netip.Prefix, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	var removed []netip.Prefix
	var errs []error
	for _, name := range ifaces {
		l, err := k.LinkByName(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove stale VIPs on %s: %w", name, err))
			continue
		}
		have, err := k.AddrList(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove stale VIPs: list addresses on %s: %w", name, err))
			continue
		}
		for _, h := range have {
			if !want[h.Prefix.Addr()] {
				continue
			}
			if err := k.AddrDel(l, Address{Prefix: h.Prefix}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("remove stale VIP %s on %s: %w", h.Prefix, name, err))
				continue
			}
			logger.Info("stale VIP removed", "addr", h.Prefix.String(), "dev", name)
			removed = append(removed, h.Prefix)
		}
	}
	return removed, errors.Join(errs...)
}

// AnnounceLowerPrio schedules keepalived's burst after a MASTER hears a
// lower-priority advert: LowerPrioRepeat packets per address after
// LowerPrioDelay. It does nothing when the set is not active.
func (s *Set) AnnounceLowerPrio() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active || s.spec.Timing.LowerPrioRepeat == 0 {
		return
	}
	ctx, done := s.annCtx()
	if ctx == nil {
		return
	}
	go func() {
		defer done()
		if s.wait(ctx, s.spec.Timing.LowerPrioDelay) {
			s.burst(ctx, nil, s.spec.Timing.LowerPrioRepeat)
		}
	}()
}

// annCtx returns the announcement context and a done func for an extra
// goroutine tied to the running schedule (nil when none runs).
func (s *Set) annCtx() (context.Context, func()) {
	if s.stop == nil {
		return nil, nil
	}
	s.annWG.Add(1)
	return s.annContext, s.annWG.Done
}
