package lvs

import (
	"net/netip"
	"slices"
)

// HealthTable is real servers' health by virtual server (its
// configuration key) and address. It is immutable once built: WithVS
// returns a table that shares every virtual server it does not replace,
// so a burst of checker transitions costs a copy of the virtual servers it
// touches, not of every real server's health.
type HealthTable struct {
	byVS map[string]*VSHealth
	n    int
}

// NewHealthTable makes a table of byVS, which it takes over (the caller
// must not change it afterwards; nil entries are none).
func NewHealthTable(byVS map[string]*VSHealth) *HealthTable {
	h := &HealthTable{byVS: byVS}
	for vs, rs := range byVS {
		if rs.Len() == 0 {
			delete(byVS, vs)
		}
		h.n += rs.Len()
	}
	return h
}

// HealthTableOf makes a table of a flat map.
func HealthTableOf(m map[HealthKey]RSHealth) *HealthTable {
	grouped := map[string][]RSResult{}
	for k, v := range m {
		grouped[k.VS] = append(grouped[k.VS], RSResult{Addr: k.RS, RSHealth: v})
	}
	byVS := make(map[string]*VSHealth, len(grouped))
	for vs, rs := range grouped {
		byVS[vs] = (*VSHealth)(nil).With(rs)
	}
	return NewHealthTable(byVS)
}

// WithVS returns a table where the virtual servers of changes have the
// given health (nil or empty: none) and the others what h has.
func (h *HealthTable) WithVS(changes map[string]*VSHealth) *HealthTable {
	out := &HealthTable{byVS: make(map[string]*VSHealth, len(h.vs())+len(changes)), n: h.Len()}
	for vs, rs := range h.vs() {
		out.byVS[vs] = rs
	}
	for vs, rs := range changes {
		out.n -= out.byVS[vs].Len()
		if rs.Len() == 0 {
			delete(out.byVS, vs)
			continue
		}
		out.byVS[vs] = rs
		out.n += rs.Len()
	}
	return out
}

func (h *HealthTable) vs() map[string]*VSHealth {
	if h == nil {
		return nil
	}
	return h.byVS
}

// VS returns one virtual server's health (nil: none).
func (h *HealthTable) VS(vs string) *VSHealth { return h.vs()[vs] }

// Get returns the health of one real server; a nil table has none.
func (h *HealthTable) Get(k HealthKey) (RSHealth, bool) {
	return h.vs()[k.VS].Get(k.RS)
}

// Len is the number of real servers with a health.
func (h *HealthTable) Len() int {
	if h == nil {
		return 0
	}
	return h.n
}

// Map returns a flat copy.
func (h *HealthTable) Map() map[HealthKey]RSHealth {
	out := make(map[HealthKey]RSHealth, h.Len())
	for vs, rs := range h.vs() {
		for i, a := range rs.addrs {
			out[HealthKey{VS: vs, RS: a}] = rs.res[i]
		}
	}
	return out
}

// VSHealth is one virtual server's real servers' health, immutable: the
// addresses in order and each one's result at the same index. A change
// copies the results (16 bytes a real server) and shares the addresses
// unless a real server comes or goes, so the versions a plan, the next
// plan and the checkers' latest results hold at once cost little: a map
// per version was ~1.6 KB for 20 real servers, copied whole by each
// transition, three generations of 2,000 of them live in an outage's
// down-wave.
type VSHealth struct {
	addrs []netip.AddrPort // sorted; shared between versions
	res   []RSHealth
}

// RSResult is one real server's health, for VSHealth.With.
type RSResult struct {
	Addr netip.AddrPort
	RSHealth
}

// Len is the number of real servers with a health; a nil VSHealth has none.
func (v *VSHealth) Len() int {
	if v == nil {
		return 0
	}
	return len(v.addrs)
}

func (v *VSHealth) find(a netip.AddrPort) (int, bool) {
	if v == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(v.addrs, a, netip.AddrPort.Compare)
}

// Get returns one real server's health.
func (v *VSHealth) Get(a netip.AddrPort) (RSHealth, bool) {
	if i, ok := v.find(a); ok {
		return v.res[i], true
	}
	return RSHealth{}, false
}

// All yields every real server's health in address order.
func (v *VSHealth) All(yield func(netip.AddrPort, RSHealth) bool) {
	for i := range v.Len() {
		if !yield(v.addrs[i], v.res[i]) {
			return
		}
	}
}

// With returns v with the results of rs set (a later result for the same
// address wins); v does not change.
func (v *VSHealth) With(rs []RSResult) *VSHealth {
	out := &VSHealth{}
	if v != nil {
		out.addrs, out.res = v.addrs, slices.Clone(v.res)
	}
	var add []RSResult // results for addresses v does not have
	for _, r := range rs {
		if i, ok := v.find(r.Addr); ok {
			out.res[i] = r.RSHealth
			continue
		}
		if add == nil {
			add = make([]RSResult, 0, len(rs))
		}
		add = append(add, r)
	}
	if len(add) == 0 {
		return out
	}
	// Merge them in, sorted, the last of equal ones kept.
	slices.SortStableFunc(add, func(a, b RSResult) int { return a.Addr.Compare(b.Addr) })
	n := 0
	for i := range add {
		if n > 0 && add[n-1].Addr == add[i].Addr {
			add[n-1] = add[i]
			continue
		}
		add[n] = add[i]
		n++
	}
	add = add[:n]
	addrs := make([]netip.AddrPort, 0, len(out.addrs)+n)
	res := make([]RSHealth, 0, len(out.addrs)+n)
	i := 0
	for _, f := range add {
		for i < len(out.addrs) && out.addrs[i].Compare(f.Addr) < 0 {
			addrs, res = append(addrs, out.addrs[i]), append(res, out.res[i])
			i++
		}
		addrs, res = append(addrs, f.Addr), append(res, f.RSHealth)
	}
	addrs, res = append(addrs, out.addrs[i:]...), append(res, out.res[i:]...)
	out.addrs, out.res = addrs, res
	return out
}

// Without returns v without the real server a (nil when none is left); v
// does not change.
func (v *VSHealth) Without(a netip.AddrPort) *VSHealth {
	i, ok := v.find(a)
	if !ok {
		return v
	}
	if v.Len() == 1 {
		return nil
	}
	return &VSHealth{addrs: slices.Delete(slices.Clone(v.addrs), i, i+1), res: slices.Delete(slices.Clone(v.res), i, i+1)}
}

// Map returns a copy as a map.
func (v *VSHealth) Map() map[netip.AddrPort]RSHealth {
	out := make(map[netip.AddrPort]RSHealth, v.Len())
	for a, h := range v.All {
		out[a] = h
	}
	return out
}
