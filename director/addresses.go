package director

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"

	"hakeep/config"
	"hakeep/vip"
	"hakeep/vrrp"
)

// vipSpec maps one vrrp_instance to what the address manager installs when
// the instance is MASTER: its VIPs (excluded ones too), virtual routes and
// rules, and the gratuitous ARP schedule (global vrrp_garp_* overridden by
// the instance's garp_*, which the config model has already merged).
func vipSpec(inst *config.VRRPInstance, iface string) (vip.Spec, error) {
	s := vip.Spec{Instance: inst.Name, Interface: iface, Timing: garpTiming(inst.GARP)}
	for _, v := range inst.VIPs {
		a, err := vipAddress(v)
		if err != nil {
			return s, err
		}
		if v.Excluded {
			s.Excluded = append(s.Excluded, a)
		} else {
			s.Addresses = append(s.Addresses, a)
		}
	}
	for _, v := range inst.ExcludedVIPs {
		a, err := vipAddress(v)
		if err != nil {
			return s, err
		}
		s.Excluded = append(s.Excluded, a)
	}
	for _, r := range inst.Routes {
		vr, err := vipRoute(r)
		if err != nil {
			return s, err
		}
		s.Routes = append(s.Routes, vr)
	}
	for _, r := range inst.Rules {
		vr, err := vipRule(r)
		if err != nil {
			return s, err
		}
		s.Rules = append(s.Rules, vr)
	}
	return s, nil
}

func garpTiming(g config.GARPSettings) vip.Timing {
	return vip.Timing{
		MasterDelay:         g.MasterDelay,
		MasterRepeat:        g.MasterRepeat,
		MasterRefresh:       g.MasterRefresh,
		MasterRefreshRepeat: g.MasterRefreshRepeat,
		GARPInterval:        g.Interval,
		GNAInterval:         g.GNAInterval,
		LowerPrioDelay:      g.LowerPrioDelay,
		LowerPrioRepeat:     g.LowerPrioRepeat,
	}
}

func vipAddress(v *config.VIP) (vip.Address, error) {
	a := vip.Address{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Broadcast: v.Brd}
	sc, err := parseScope(v.Scope)
	if err != nil {
		return a, fmt.Errorf("%s: VIP %s: %w", v.Pos, v.Prefix, err)
	}
	a.Scope = sc
	if v.BrdAuto == "+" && v.Prefix.Addr().Is4() && v.Prefix.Bits() < 31 {
		a.Broadcast = lastAddr(v.Prefix)
	}
	return a, nil
}

// lastAddr is the broadcast address of an IPv4 prefix ("brd +").
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func parseScope(s string) (vip.Scope, error) {
	switch s {
	case "", "global", "universe":
		return vip.ScopeGlobal, nil
	case "site":
		return vip.ScopeSite, nil
	case "link":
		return vip.ScopeLink, nil
	case "host":
		return vip.ScopeHost, nil
	case "nowhere":
		return vip.ScopeNowhere, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("unknown scope %q", s)
	}
	return vip.Scope(n), nil
}

// parseTable reads a routing table name or number (iproute2's names for the
// well-known ones).
func parseTable(s string) (int, error) {
	switch s {
	case "", "main":
		return 0, nil
	case "local":
		return 255, nil
	case "default":
		return 253, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("unknown routing table %q (use a number)", s)
	}
	return n, nil
}

func vipRoute(r *config.Route) (vip.Route, error) {
	vr := vip.Route{Dst: r.Dst, Via: r.Via, Dev: r.Dev, Src: r.Src, Metric: r.Metric, Blackhole: r.Type == "blackhole"}
	var err error
	if vr.Table, err = parseTable(r.Table); err != nil {
		return vr, fmt.Errorf("%s: virtual route %s: %w", r.Pos, r.Dst, err)
	}
	if r.Scope != "" {
		if vr.Scope, err = parseScope(r.Scope); err != nil {
			return vr, fmt.Errorf("%s: virtual route %s: %w", r.Pos, r.Dst, err)
		}
	}
	switch r.Type {
	case "", "unicast", "blackhole":
	default:
		return vr, fmt.Errorf("%s: virtual route %s: route type %s is not supported", r.Pos, r.Dst, r.Type)
	}
	return vr, nil
}

func vipRule(r *config.Rule) (vip.Rule, error) {
	vr := vip.Rule{From: r.From, To: r.To, Priority: r.Priority, IifName: r.IIF, OifName: r.OIF}
	var err error
	if vr.Table, err = parseTable(r.Table); err != nil {
		return vr, fmt.Errorf("%s: virtual rule: %w", r.Pos, err)
	}
	if r.FWMark != "" {
		n, err := strconv.ParseUint(r.FWMark, 0, 32)
		if err != nil {
			return vr, fmt.Errorf("%s: virtual rule: fwmark %q: %w", r.Pos, r.FWMark, err)
		}
		vr.Fwmark = uint32(n)
	}
	return vr, nil
}

// addressFactory builds the vrrp manager's address sets: one vip.Set per
// instance, from the instance's configuration carried in spec.Source.
func addressFactory(log *slog.Logger) func(vrrp.InstanceSpec) (vrrp.AddressSet, error) {
	return func(spec vrrp.InstanceSpec) (vrrp.AddressSet, error) {
		inst, ok := spec.Source.(*config.VRRPInstance)
		if !ok {
			return nil, fmt.Errorf("instance %s: no configuration for its addresses", spec.Name)
		}
		vs, err := vipSpec(inst, spec.Interface)
		if err != nil {
			return nil, err
		}
		set, err := vip.NewSet(vs, log)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", spec.Name, err)
		}
		return set, nil
	}
}
