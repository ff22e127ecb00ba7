// Package vip is hakeep's address manager: it installs and removes the
// kernel side effects of being VRRP MASTER (virtual addresses, with an
// optional kernel lifetime for fencing, virtual routes and rules, VMAC
// macvlans) and announces the addresses with gratuitous ARP and unsolicited
// neighbour advertisements on keepalived's schedule. It does not decide
// when to be master: the vrrp package calls Add and Remove.
package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Scope is an address or route scope (keepalived's `scope host|link|global|site|nowhere`).
type Scope = netlink.Scope

// Scopes, as the kernel numbers them.
const (
	ScopeGlobal  = netlink.SCOPE_UNIVERSE
	ScopeSite    = netlink.SCOPE_SITE
	ScopeLink    = netlink.SCOPE_LINK
	ScopeHost    = netlink.SCOPE_HOST
	ScopeNowhere = netlink.SCOPE_NOWHERE
)

// Address is one virtual address (a line of virtual_ipaddress).
type Address struct {
	Prefix    netip.Prefix
	Dev       string     // "" means Spec.Interface
	Label     string     // e.g. "eth0:1"; must start with the device name
	Broadcast netip.Addr // zero: none given
	Scope     Scope
}

func (a Address) String() string { return a.Prefix.String() }

// Route is one virtual route (a line of virtual_routes).
type Route struct {
	Dst       netip.Prefix // zero with Default set means the default route
	Via       netip.Addr   // gateway; zero for a direct route
	Dev       string       // "" means no device (or Spec.Interface when Via is zero and not blackhole)
	Src       netip.Addr
	Metric    int
	Table     int // 0: main
	Scope     Scope
	Blackhole bool
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Blackhole {
		s = "blackhole " + s
	}
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.Table != 0 {
		s += fmt.Sprintf(" table %d", r.Table)
	}
	return s
}

// Rule is one virtual rule (a line of virtual_rules).
type Rule struct {
	From     netip.Prefix
	To       netip.Prefix
	Table    int
	Priority int // 0: let the kernel choose
	Fwmark   uint32
	IifName  string
	OifName  string
	Invert   bool
	// Family is derived from From/To; set it (4 or 6) for a rule with neither.
	Family int
}

func (r Rule) String() string {
	s := "from all"
	if r.From.IsValid() {
		s = "from " + r.From.String()
	}
	if r.To.IsValid() {
		s += " to " + r.To.String()
	}
	return fmt.Sprintf("%s table %d priority %d", s, r.Table, r.Priority)
}

// Timing is keepalived's gratuitous ARP / NA schedule.
type Timing struct {
	MasterDelay         time.Duration // vrrp_garp_master_delay: second burst after takeover (0: none)
	MasterRepeat        int           // vrrp_garp_master_repeat: packets per address per burst
	MasterRefresh       time.Duration // vrrp_garp_master_refresh: periodic bursts while master (0: off)
	MasterRefreshRepeat int           // vrrp_garp_master_refresh_repeat
	GARPInterval        time.Duration // vrrp_garp_interval: gap between gratuitous ARPs
	GNAInterval         time.Duration // vrrp_gna_interval: gap between unsolicited NAs
	LowerPrioDelay      time.Duration // vrrp_garp_lower_prio_delay: after a lower-priority advert
	LowerPrioRepeat     int           // vrrp_garp_lower_prio_repeat
}

// DefaultTiming returns keepalived's defaults: delay 5 s, repeat 5, no
// refresh, refresh repeat 1, no gaps; lower-priority bursts as at takeover.
func DefaultTiming() Timing {
	return Timing{
		MasterDelay:         5 * time.Second,
		MasterRepeat:        5,
		MasterRefreshRepeat: 1,
		LowerPrioDelay:      5 * time.Second,
		LowerPrioRepeat:     5,
	}
}

// Spec is everything one VRRP instance installs when it is MASTER.
type Spec struct {
	Instance  string    // for logs and errors
	Interface string    // default device for addresses (the VMAC when use_vmac)
	Addresses []Address // virtual_ipaddress
	Excluded  []Address // virtual_ipaddress_excluded: installed, not advertised
	Routes    []Route
	Rules     []Rule
	Timing    Timing
	// Lifetime > 0 installs every address with valid_lft = preferred_lft =
	// Lifetime (whole seconds, rounded up), so that the kernel removes it
	// when hakeepd stops renewing it (fencing.md item 5). 0 is permanent.
	Lifetime time.Duration
	// Netns is the namespace to work in; 0 or -1 (netns.None()) means the
	// caller's.
	Netns netns.NsHandle
}

// ErrInvalidSpec is wrapped by NewSet for a spec that cannot be installed.
var ErrInvalidSpec = errors.New("invalid VIP spec")

func (s Spec) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...))
	}
	for _, a := range append(append([]Address(nil), s.Addresses...), s.Excluded...) {
		if !a.Prefix.IsValid() {
			bad("address with no prefix")
			continue
		}
		dev := a.Dev
		if dev == "" {
			dev = s.Interface
		}
		if dev == "" {
			bad("address %s has no device and the instance has no interface", a.Prefix)
		}
		if a.Label != "" && (len(a.Label) > 15 || len(a.Label) < len(dev) || a.Label[:len(dev)] != dev) {
			bad("address %s: label %q must start with its device %q and be at most 15 characters", a.Prefix, a.Label, dev)
		}
		if a.Broadcast.IsValid() && (!a.Prefix.Addr().Is4() || !a.Broadcast.Is4()) {
			bad("address %s: broadcast %s is for IPv4 only", a.Prefix, a.Broadcast)
		}
	}
	for _, r := range s.Routes {
		if !r.Dst.IsValid() {
			bad("route with no destination")
			continue
		}
		if r.Via.IsValid() && r.Via.Is4() != r.Dst.Addr().Is4() {
			bad("route %s: gateway family differs from destination", r)
		}
		if r.Blackhole && r.Via.IsValid() {
			bad("route %s: blackhole route with a gateway", r)
		}
	}
	for _, r := range s.Rules {
		if r.From.IsValid() && r.To.IsValid() && r.From.Addr().Is4() != r.To.Addr().Is4() {
			bad("rule %s: from and to differ in family", r)
		}
		if !r.From.IsValid() && !r.To.IsValid() && r.Family != 4 && r.Family != 6 {
			bad("rule %s: no from/to and no family", r)
		}
	}
	if s.Lifetime < 0 {
		bad("negative lifetime %s", s.Lifetime)
	}
	t := s.Timing
	if t.MasterRepeat < 0 || t.MasterRefreshRepeat < 0 || t.LowerPrioRepeat < 0 ||
		t.MasterDelay < 0 || t.MasterRefresh < 0 || t.GARPInterval < 0 || t.GNAInterval < 0 || t.LowerPrioDelay < 0 {
		bad("negative gratuitous ARP timing %+v", t)
	}
	return errors.Join(errs...)
}
