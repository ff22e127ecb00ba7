package lvs

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"hakeep/config"
)

// Schedulers are the IPVS schedulers keepalived accepts for lb_algo.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf"}

// HealthKey identifies a real server within a virtual server: the virtual
// server's configuration key (config.VirtualServer.Key()) and the real
// server's address, as the checks package reports them.
type HealthKey struct {
	VS string
	RS netip.AddrPort
}

// RSHealth is a real server's health result.
type RSHealth struct {
	Up bool
	// Weight is a dynamic weight (misc_dynamic) or -1 for the configured one.
	Weight int
}

// Inputs are what the desired table depends on besides the configuration.
type Inputs struct {
	// Health of the real servers that have checkers. A real server without
	// checkers is always up; one with checkers but no result yet is up
	// unless alpha is set (keepalived's behaviour).
	Health map[HealthKey]RSHealth
	// HealthTable, when set, is used instead of Health.
	HealthTable *HealthTable
	// Master reports whether this director is MASTER of the VRRP instance
	// holding vip; it decides ha_suspend services. nil: always master.
	Master func(vip netip.Addr) bool
	// Quorum is each virtual server's previous quorum state (by config
	// key), from the last Desired; missing: first computation.
	Quorum map[string]bool
}

// QuorumEvent is a virtual server gaining or losing quorum: the caller runs
// Script (quorum_up / quorum_down) when it is set.
type QuorumEvent struct {
	VS        string
	Up        bool
	Initial   bool // the state at start, not a change
	Script    string
	Weight    int // sum of the live real servers' weights
	Threshold int
}

// Desired is the table the kernel should hold and the quorum bookkeeping
// that produced it.
type Desired struct {
	Table  Table
	Quorum map[string]bool
	Events []QuorumEvent

	lastKey string // the configuration key of the virtual server added last
	// quorumShared: Quorum is the planner's own map, copied before the
	// first change (a re-plan of a few virtual servers changes few or no
	// quorum states, and copied the 2,000-entry map every time).
	quorumShared bool
}

// setQuorum records a virtual server's quorum state.
func (d *Desired) setQuorum(vs string, up bool) {
	if v, ok := d.Quorum[vs]; ok && v == up {
		return
	}
	if d.quorumShared {
		d.Quorum, d.quorumShared = maps.Clone(d.Quorum), false
	}
	d.Quorum[vs] = up
}

// ParseProto reads keepalived's protocol keyword.
func ParseProto(s string) (uint16, error) {
	switch strings.ToUpper(s) {
	case "", "TCP":
		return ProtoTCP, nil
	case "UDP":
		return ProtoUDP, nil
	case "SCTP":
		return ProtoSCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP or SCTP)", s)
}

// schedFlags maps keepalived's scheduler flags to IP_VS_SVC_F_SCHED*.
var schedFlags = map[string]uint32{
	"sh-fallback": FlagSched1, "sh-port": FlagSched2,
	"mh-fallback": FlagSched1, "mh-port": FlagSched2,
	"flag-1": FlagSched1, "flag-2": FlagSched2, "flag-3": FlagSched3,
}

func familyOf(a netip.Addr) uint16 {
	if a.Is4() || a.Is4In6() {
		return AFInet
	}
	return AFInet6
}

// maxRange bounds a virtual_server_group range expansion.
const maxRange = 65536

// expandRange lists first..last (inclusive).
func expandRange(first, last netip.Addr) ([]netip.Addr, error) {
	if !last.IsValid() {
		last = first
	}
	if first.BitLen() != last.BitLen() || last.Less(first) {
		return nil, fmt.Errorf("address range %s-%s is empty or mixes families", first, last)
	}
	var out []netip.Addr
	for a := first; ; a = a.Next() {
		out = append(out, a)
		if a == last {
			return out, nil
		}
		if len(out) >= maxRange {
			return nil, fmt.Errorf("address range %s-%s has more than %d addresses", first, last, maxRange)
		}
	}
}

// serviceKeys expands a virtual server into its kernel service keys.
func serviceKeys(cfg *config.Config, vs *config.VirtualServer, proto uint16) ([]ServiceKey, error) {
	fwmFamily := func() uint16 {
		switch vs.FWMarkFamily {
		case "inet6":
			return AFInet6
		case "inet":
			return AFInet
		}
		// Otherwise the first real server's family decides.
		if len(vs.RealServers) > 0 {
			if a := vs.RealServers[0].Addr.Addr(); a.IsValid() && a.Is6() && !a.Is4In6() {
				return AFInet6
			}
		}
		return AFInet
	}
	switch {
	case vs.Group != "":
		var g *config.VirtualServerGroup
		for _, c := range cfg.VSGroups {
			if c.Name == vs.Group {
				g = c
			}
		}
		if g == nil {
			return nil, fmt.Errorf("virtual_server group %s: no virtual_server_group %s", vs.Group, vs.Group)
		}
		var keys []ServiceKey
		for _, m := range g.Members {
			if m.FWMark != 0 {
				keys = append(keys, ServiceKey{Family: fwmFamily(), FWMark: m.FWMark})
				continue
			}
			addrs, err := expandRange(m.Addr, m.LastAddr)
			if err != nil {
				return nil, fmt.Errorf("virtual_server_group %s (%s): %w", g.Name, m.Pos, err)
			}
			for _, a := range addrs {
				a = a.Unmap()
				keys = append(keys, ServiceKey{Family: familyOf(a), Proto: proto, Addr: a, Port: m.Port})
			}
		}
		return keys, nil
	case vs.FWMark != 0:
		return []ServiceKey{{Family: fwmFamily(), FWMark: vs.FWMark}}, nil
	default:
		a := vs.Addr.Addr().Unmap()
		if !a.IsValid() {
			return nil, fmt.Errorf("virtual_server at %s has no address", vs.Pos)
		}
		return []ServiceKey{{Family: familyOf(a), Proto: proto, Addr: a, Port: vs.Addr.Port()}}, nil
	}
}

// FromConfig computes the IPVS table the kernel should hold for cfg, given
// the real servers' health, VRRP mastership (ha_suspend) and the previous
// quorum states. It is a pure function.
func FromConfig(cfg *config.Config, in Inputs) (Desired, error) {
	out := Desired{Table: Table{}, Quorum: map[string]bool{}}
	if cfg == nil {
		return out, nil
	}
	for _, vs := range cfg.VirtualServers {
		if _, err := addVirtualServer(&out, cfg, vs, in); err != nil {
			return Desired{}, fmt.Errorf("virtual_server %s (%s): %w", vs.Key(), vs.Pos, err)
		}
	}
	return out, nil
}

// addVirtualServer adds vs's services to out and returns their keys.
func addVirtualServer(out *Desired, cfg *config.Config, vs *config.VirtualServer, in Inputs) ([]ServiceKey, error) {
	proto, err := ParseProto(vs.Protocol)
	if err != nil {
		return nil, err
	}
	sched := strings.ToLower(vs.LBAlgo)
	if sched == "" {
		sched = "wlc"
	}
	known := false
	for _, s := range Schedulers {
		known = known || s == sched
	}
	if !known {
		return nil, fmt.Errorf("unknown lb_algo %q", vs.LBAlgo)
	}
	method, err := ParseMethod(vs.LBKind)
	if err != nil {
		return nil, err
	}
	var flags uint32
	timeout := uint32(vs.PersistenceTimeout.Seconds())
	if timeout > 0 {
		flags |= FlagPersistent
	}
	if vs.OnePacket {
		flags |= FlagOnePacket
	}
	for _, f := range vs.SchedFlags {
		v, ok := schedFlags[strings.ToLower(f)]
		if !ok {
			return nil, fmt.Errorf("unknown scheduler flag %q", f)
		}
		flags |= v
	}
	keys, err := serviceKeys(cfg, vs, proto)
	if err != nil {
		return nil, err
	}

	// Health, weights and quorum of the pool.
	vsKey := vs.Key()
	out.lastKey = vsKey
	type rsState struct {
		dest    Dest
		alive   bool
		inhibit bool
	}
	pool := make([]rsState, 0, len(vs.RealServers))
	sum := 0
	for _, rs := range vs.RealServers {
		m := method
		if rs.Options().LVSMethod != "" {
			if m, err = ParseMethod(rs.Options().LVSMethod); err != nil {
				return nil, fmt.Errorf("real_server %s: %w", rs.Addr, err)
			}
		}
		alive := true
		weight := rs.Weight
		health := "up"
		if len(rs.Checkers) > 0 {
			var h RSHealth
			var ok bool
			if in.HealthTable != nil {
				h, ok = in.HealthTable.Get(HealthKey{vsKey, rs.Addr})
			} else {
				h, ok = in.Health[HealthKey{vsKey, rs.Addr}]
			}
			switch {
			case ok:
				alive = h.Up
				if h.Weight >= 0 {
					weight = h.Weight
				}
			case vs.Alpha:
				alive = false // alpha: down until the first check succeeds
			}
			if !alive {
				health = "down"
			}
		}
		a := rs.Addr.Addr().Unmap()
		st := rsState{
			dest:    Dest{Addr: a, Port: rs.Addr.Port(), Weight: weight, Method: m, Health: health},
			alive:   alive,
			inhibit: rs.InhibitOnFailure || vs.InhibitOnFailure,
		}
		pool = append(pool, st)
		if alive {
			sum += weight
		}
	}
	quorum, hyst := vs.Quorum, vs.Hysteresis
	prev, seen := in.Quorum[vsKey]
	var up bool
	switch {
	case !seen:
		up = sum >= quorum+hyst
		if !up {
			out.Events = append(out.Events, QuorumEvent{VS: vsKey, Up: false, Initial: true, Script: vs.QuorumDown, Weight: sum, Threshold: quorum + hyst})
		}
	case prev:
		up = !(sum == 0 || sum < quorum-hyst)
		if !up {
			out.Events = append(out.Events, QuorumEvent{VS: vsKey, Up: false, Script: vs.QuorumDown, Weight: sum, Threshold: quorum - hyst})
		}
	default:
		up = sum >= quorum+hyst
		if up {
			out.Events = append(out.Events, QuorumEvent{VS: vsKey, Up: true, Script: vs.QuorumUp, Weight: sum, Threshold: quorum + hyst})
		}
	}
	out.setQuorum(vsKey, up)

	n := len(pool)
	if vs.SorryServer != nil {
		n++
	}
	dests := make(Dests, 0, n)
	sorry := vs.SorryServer != nil && !up
	for _, st := range pool {
		d := st.dest
		switch {
		case st.alive && !sorry:
		case !st.alive && st.inhibit:
			d.Weight = 0
			d.Health = "down (inhibited)"
		default:
			continue // failed, or alive while the sorry server serves
		}
		dests = append(dests, d)
	}
	dests.Sort()
	if s := vs.SorryServer; s != nil && (sorry || vs.SorryServerInhibit) {
		m := method
		if s.LVSMethod != "" {
			if m, err = ParseMethod(s.LVSMethod); err != nil {
				return nil, fmt.Errorf("sorry_server %s: %w", s.Addr, err)
			}
		}
		d := Dest{Addr: s.Addr.Addr().Unmap(), Port: s.Addr.Port(), Weight: 1, Method: m, Health: "sorry"}
		if !sorry {
			d.Weight, d.Health = 0, "sorry (standby)"
		}
		if !dests.Has(d.Key()) {
			dests.Set(d)
		}
	}

	// Services of one virtual server share its destination map: tables
	// are not modified once built (Service), so one map serves them all.
	added := keys[:0:0]
	for _, k := range keys {
		if vs.HASuspend && in.Master != nil && k.FWMark == 0 && !in.Master(k.Addr) {
			continue // not MASTER of this VIP: the service waits
		}
		if _, dup := out.Table[k]; dup {
			return nil, fmt.Errorf("service %s is defined twice", k)
		}
		nm, err := NetmaskFromAddr(k.Family, vs.PersistenceGranularity)
		if err != nil {
			return nil, err
		}
		for _, d := range dests {
			if familyOf(d.Addr) != k.Family && d.Method != TUN {
				return nil, fmt.Errorf("real server %s: address family differs from %s (only TUN may mix families)", d.Key(), k)
			}
		}
		out.Table[k] = &Service{Key: k, Scheduler: sched, Flags: flags, Timeout: timeout, Netmask: nm,
			Dests: dests, Origin: vsKey, QuorumUp: up, frozen: true}
		added = append(added, k)
	}
	return added, nil
}

// ScriptRunner runs quorum_up / quorum_down scripts. Implementations must
// not block the caller for long (the script package runs them with
// timeouts); the lead wires the script package in.
type ScriptRunner interface {
	RunScript(ctx context.Context, script string, reason string)
}

// Planner computes desired tables over time: it keeps the quorum states
// between computations (hysteresis needs the previous state) and runs the
// quorum scripts when a virtual server gains or loses quorum. It keeps its
// last table too, so that a plan after a few health changes recomputes only
// the virtual servers they touch (PlanChanged).
type Planner struct {
	mu     sync.Mutex
	quorum map[string]bool
	runner ScriptRunner
	log    *slog.Logger
	// OnQuorum, when set before the first Plan, sees every quorum event
	// (the lvs notify fifo's VS lines); it must not block.
	OnQuorum func(QuorumEvent)

	// The last plan: its configuration, table, and each virtual server's
	// service keys in it (by configuration key); lastCfg nil: none.
	lastCfg *config.Config
	last    Table
	keysOf  map[string][]ServiceKey
	byKey   map[string]*config.VirtualServer // lastCfg's virtual servers
	order   map[*config.VirtualServer]int    // their places in lastCfg
	// lastHealth is the health table the last plan was given.
	lastHealth *HealthTable
}

// NewPlanner returns a planner running scripts through runner (nil: none).
func NewPlanner(runner ScriptRunner, log *slog.Logger) *Planner {
	if log == nil {
		log = slog.Default()
	}
	return &Planner{quorum: map[string]bool{}, runner: runner, log: log.With("component", "lvs")}
}

// Plan computes the desired table for cfg with in.Quorum taken from the
// planner's own state, records the new quorum states and runs the scripts
// of the events.
func (p *Planner) Plan(ctx context.Context, cfg *config.Config, in Inputs) (Table, error) {
	return p.PlanChanged(ctx, cfg, in, nil)
}

// PlanChanged is Plan when, since the last plan, the inputs changed only
// for the virtual servers whose configuration keys (VirtualServer.Key) are
// in changed: with the same cfg (the same pointer) it recomputes those and
// keeps every other service of the last table (the same *Service). A nil
// changed, another cfg, or no last plan: everything is computed. The
// result is the one Plan gives.
func (p *Planner) PlanChanged(ctx context.Context, cfg *config.Config, in Inputs, changed map[string]bool) (Table, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	in.Quorum = p.quorum
	var d Desired
	if changed == nil || cfg == nil || cfg != p.lastCfg {
		var keysOf map[string][]ServiceKey
		var reused bool
		if cfg != p.lastCfg {
			d, keysOf, reused = p.planReusing(cfg, in) // a reload (planreuse.go)
		}
		if !reused {
			d = Desired{Table: Table{}, Quorum: map[string]bool{}}
			keysOf = map[string][]ServiceKey{}
		}
		if cfg != nil && !reused {
			for _, vs := range cfg.VirtualServers {
				keys, err := addVirtualServer(&d, cfg, vs, in)
				if err != nil {
					p.lastCfg = nil
					return nil, fmt.Errorf("virtual_server %s (%s): %w", vs.Key(), vs.Pos, err)
				}
				keysOf[d.lastKey] = keys
			}
		}
		p.lastCfg, p.last, p.keysOf, p.byKey, p.order = cfg, d.Table, keysOf, nil, nil
	} else {
		if p.byKey == nil {
			p.indexLast()
		}
		d = Desired{Table: maps.Clone(p.last), Quorum: p.quorum, quorumShared: true}
		// In configuration order, as a full plan: quorum events (and
		// their scripts) come in the same order.
		var vss []*config.VirtualServer
		for k := range changed {
			if vs := p.byKey[k]; vs != nil { // else not in this configuration (a late result)
				vss = append(vss, vs)
			}
		}
		slices.SortFunc(vss, func(a, b *config.VirtualServer) int { return cmp.Compare(p.order[a], p.order[b]) })
		for _, vs := range vss {
			k := vs.Key()
			for _, sk := range p.keysOf[k] {
				delete(d.Table, sk)
			}
			keys, err := addVirtualServer(&d, cfg, vs, in)
			if err != nil {
				p.lastCfg = nil
				return nil, fmt.Errorf("virtual_server %s (%s): %w", vs.Key(), vs.Pos, err)
			}
			p.keysOf[k] = keys
		}
		p.last = d.Table
	}
	p.quorum = d.Quorum
	p.lastHealth = in.HealthTable
	for _, e := range d.Events {
		state := "lost"
		if e.Up {
			state = "gained"
		}
		if e.Initial {
			state = "starting without"
		}
		p.log.Info("ipvs quorum "+state, "vs", e.VS, "weight", e.Weight, "threshold", e.Threshold, "script", e.Script)
		if p.OnQuorum != nil {
			p.OnQuorum(e)
		}
		if e.Script != "" && p.runner != nil {
			p.runner.RunScript(ctx, e.Script, "quorum "+state+" for "+e.VS)
		}
	}
	return d.Table, nil
}

// Shutdown runs, for the virtual servers with omega set whose quorum is
// up, their quorum_down script: keepalived's omega runs the down
// notifiers when the daemon stops.
func (p *Planner) Shutdown(ctx context.Context, cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cfg == nil {
		return
	}
	for _, vs := range cfg.VirtualServers {
		k := vs.Key()
		if !vs.Omega || !p.quorum[k] {
			continue
		}
		p.quorum[k] = false
		p.log.Info("ipvs quorum down at shutdown (omega)", "vs", k, "script", vs.QuorumDown)
		if p.OnQuorum != nil {
			p.OnQuorum(QuorumEvent{VS: k, Up: false, Script: vs.QuorumDown})
		}
		if vs.QuorumDown != "" && p.runner != nil {
			p.runner.RunScript(ctx, vs.QuorumDown, "shutdown (omega) of "+k)
		}
	}
}

// MasterOf builds Inputs.Master for ha_suspend from the configuration's
// VRRP instances: a VIP is served while isMaster(instance name) is true
// for an instance that lists it in virtual_ipaddress. A VIP that no
// instance holds counts as served.
func MasterOf(cfg *config.Config, isMaster func(instance string) bool) func(netip.Addr) bool {
	owners := map[netip.Addr][]string{}
	if cfg != nil {
		for _, in := range cfg.Instances {
			for _, v := range in.VIPs {
				a := v.Prefix.Addr().Unmap()
				owners[a] = append(owners[a], in.Name)
			}
		}
	}
	return func(vip netip.Addr) bool {
		names, ok := owners[vip.Unmap()]
		if !ok {
			return true
		}
		for _, n := range names {
			if isMaster(n) {
				return true
			}
		}
		return false
	}
}
