package vip

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"hakeep/config"
)

// SpecFromConfig builds the Spec of one vrrp_instance from the parsed
// configuration: VIPs (dev, label, brd, scope), excluded VIPs, virtual
// routes and rules, the gratuitous ARP settings and, with use_vmac, the
// VMAC as the default device. Words the kernel side cannot honour are an
// error naming the line.
func SpecFromConfig(in *config.VRRPInstance) (Spec, error) {
	s := Spec{Instance: in.Name, Interface: in.Interface}
	if in.UseVMAC {
		s.Interface = in.VMACName
		if s.Interface == "" {
			s.Interface = fmt.Sprintf("vrrp.%d", in.VRID)
		}
	}
	g := in.GARP
	s.Timing = Timing{MasterDelay: g.MasterDelay, MasterRepeat: g.MasterRepeat, MasterRefresh: g.MasterRefresh,
		MasterRefreshRepeat: g.MasterRefreshRepeat, GARPInterval: g.Interval, GNAInterval: g.GNAInterval,
		LowerPrioDelay: g.LowerPrioDelay, LowerPrioRepeat: g.LowerPrioRepeat}
	var errs []error
	for _, v := range in.VIPs {
		a, err := addressFromConfig(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Addresses = append(s.Addresses, a)
	}
	for _, v := range in.ExcludedVIPs {
		a, err := addressFromConfig(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Excluded = append(s.Excluded, a)
	}
	for _, r := range in.Routes {
		vr, err := routeFromConfig(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: virtual route %s: %w", r.Pos, r.Dst, err))
			continue
		}
		s.Routes = append(s.Routes, vr)
	}
	for _, r := range in.Rules {
		vr, err := ruleFromConfig(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: virtual rule: %w", r.Pos, err))
			continue
		}
		s.Rules = append(s.Rules, vr)
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, fmt.Errorf("instance %s: %w", in.Name, err)
	}
	if err := s.validate(); err != nil {
		return Spec{}, fmt.Errorf("instance %s: %w", in.Name, err)
	}
	return s, nil
}

func addressFromConfig(v *config.VIP) (Address, error) {
	a := Address{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Broadcast: v.Brd}
	sc, err := parseScope(v.Scope)
	if err != nil {
		return a, fmt.Errorf("%s: VIP %s: %w", v.Pos, v.Prefix, err)
	}
	a.Scope = sc
	switch v.BrdAuto {
	case "":
	case "+", "-":
		if !v.Prefix.Addr().Is4() {
			return a, fmt.Errorf("%s: VIP %s: brd %s is for IPv4 only", v.Pos, v.Prefix, v.BrdAuto)
		}
		b := v.Prefix.Masked().Addr().As4()
		if v.BrdAuto == "+" {
			host := uint32(1)<<(32-v.Prefix.Bits()) - 1
			if v.Prefix.Bits() == 0 {
				host = ^uint32(0)
			}
			n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
			b = [4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		}
		a.Broadcast = netip.AddrFrom4(b)
	default:
		return a, fmt.Errorf("%s: VIP %s: brd %q", v.Pos, v.Prefix, v.BrdAuto)
	}
	return a, nil
}

func routeFromConfig(r *config.Route) (Route, error) {
	vr := Route{Dst: r.Dst, Via: r.Via, Dev: r.Dev, Src: r.Src, Metric: r.Metric}
	switch r.Type {
	case "", "unicast":
	case "blackhole":
		vr.Blackhole = true
	default:
		return vr, fmt.Errorf("route type %q is not supported", r.Type)
	}
	var err error
	if vr.Table, err = parseTable(r.Table); err != nil {
		return vr, err
	}
	if vr.Scope, err = parseScope(r.Scope); err != nil {
		return vr, err
	}
	return vr, nil
}

func ruleFromConfig(r *config.Rule) (Rule, error) {
	vr := Rule{From: r.From, To: r.To, Priority: r.Priority, IifName: r.IIF, OifName: r.OIF}
	var err error
	if vr.Table, err = parseTable(r.Table); err != nil {
		return vr, err
	}
	if r.FWMark != "" {
		mark, _, _ := strings.Cut(r.FWMark, "/")
		m, err := strconv.ParseUint(mark, 0, 32)
		if err != nil {
			return vr, fmt.Errorf("fwmark %q: %w", r.FWMark, err)
		}
		vr.Fwmark = uint32(m)
	}
	if !vr.From.IsValid() && !vr.To.IsValid() {
		vr.Family = 4
	}
	return vr, nil
}

// parseScope maps iproute2's scope words (or a number) to a Scope.
func parseScope(s string) (Scope, error) {
	switch s {
	case "", "global", "universe":
		return ScopeGlobal, nil
	case "site":
		return ScopeSite, nil
	case "link":
		return ScopeLink, nil
	case "host":
		return ScopeHost, nil
	case "nowhere":
		return ScopeNowhere, nil
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown scope %q", s)
	}
	return Scope(n), nil
}

// parseTable maps a routing table name or number; names other than
// main/local/default come from /etc/iproute2/rt_tables as for ip(8).
func parseTable(s string) (int, error) {
	switch s {
	case "":
		return 0, nil
	case "main":
		return 254, nil
	case "local":
		return 255, nil
	case "default":
		return 253, nil
	}
	if n, err := strconv.ParseUint(s, 0, 32); err == nil {
		return int(n), nil
	}
	for _, path := range []string{"/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables"} {
		if n, ok := lookupTable(path, s); ok {
			return n, nil
		}
	}
	return 0, fmt.Errorf("unknown routing table %q", s)
}

func lookupTable(path, name string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && !strings.HasPrefix(fields[0], "#") && fields[1] == name {
			if n, err := strconv.ParseUint(fields[0], 0, 32); err == nil {
				return int(n), true
			}
		}
	}
	return 0, false
}
