package lvs

import "net/netip"

// HealthTable is real servers' health by virtual server (its
// configuration key) and address. It is immutable once built: WithVS
// returns a table that shares every virtual server it does not replace,
// so a burst of checker transitions costs a copy of the virtual servers it
// touches, not of every real server's health.
type HealthTable struct {
	byVS map[string]map[netip.AddrPort]RSHealth
	n    int
}

// NewHealthTable makes a table of byVS, which it takes over (the caller
// must not change it afterwards).
func NewHealthTable(byVS map[string]map[netip.AddrPort]RSHealth) *HealthTable {
	h := &HealthTable{byVS: byVS}
	for _, rs := range byVS {
		h.n += len(rs)
	}
	return h
}

// HealthTableOf makes a table of a flat map (copied).
func HealthTableOf(m map[HealthKey]RSHealth) *HealthTable {
	byVS := map[string]map[netip.AddrPort]RSHealth{}
	for k, v := range m {
		rs := byVS[k.VS]
		if rs == nil {
			rs = map[netip.AddrPort]RSHealth{}
			byVS[k.VS] = rs
		}
		rs[k.RS] = v
	}
	return NewHealthTable(byVS)
}

// WithVS returns a table where the virtual servers of changes have the
// given health (taken over; nil or empty: none) and the others what h has.
func (h *HealthTable) WithVS(changes map[string]map[netip.AddrPort]RSHealth) *HealthTable {
	out := &HealthTable{byVS: make(map[string]map[netip.AddrPort]RSHealth, len(h.vs())+len(changes)), n: h.Len()}
	for vs, rs := range h.vs() {
		out.byVS[vs] = rs
	}
	for vs, rs := range changes {
		out.n -= len(out.byVS[vs])
		if len(rs) == 0 {
			delete(out.byVS, vs)
			continue
		}
		out.byVS[vs] = rs
		out.n += len(rs)
	}
	return out
}

func (h *HealthTable) vs() map[string]map[netip.AddrPort]RSHealth {
	if h == nil {
		return nil
	}
	return h.byVS
}

// Get returns the health of one real server; a nil table has none.
func (h *HealthTable) Get(k HealthKey) (RSHealth, bool) {
	v, ok := h.vs()[k.VS][k.RS]
	return v, ok
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
		for a, v := range rs {
			out[HealthKey{VS: vs, RS: a}] = v
		}
	}
	return out
}
