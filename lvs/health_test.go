package lvs

import (
	"net/netip"
	"testing"
)

// WithVS replaces whole virtual servers and shares the others; the table
// it was made from does not change.
func TestHealthTableWithVS(t *testing.T) {
	a1, a2, b1 := ap("10.1.0.1:80"), ap("10.1.0.2:80"), ap("10.2.0.1:80")
	base := HealthTableOf(map[HealthKey]RSHealth{
		{VS: "a", RS: a1}: {Up: true, Weight: -1},
		{VS: "a", RS: a2}: {Up: true, Weight: -1},
		{VS: "b", RS: b1}: {Up: false, Weight: -1},
	})
	tests := []struct {
		name    string
		changes map[string]map[netip.AddrPort]RSHealth
		want    map[HealthKey]RSHealth
	}{
		{"nothing", nil, base.Map()},
		{"one virtual server replaced", map[string]map[netip.AddrPort]RSHealth{"a": {a1: {Up: false, Weight: 3}}},
			map[HealthKey]RSHealth{{VS: "a", RS: a1}: {Up: false, Weight: 3}, {VS: "b", RS: b1}: {Up: false, Weight: -1}}},
		{"one gone, one new", map[string]map[netip.AddrPort]RSHealth{"b": nil, "c": {b1: {Up: true, Weight: -1}}},
			map[HealthKey]RSHealth{{VS: "a", RS: a1}: {Up: true, Weight: -1}, {VS: "a", RS: a2}: {Up: true, Weight: -1}, {VS: "c", RS: b1}: {Up: true, Weight: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := base.WithVS(tc.changes)
			if got.Len() != len(tc.want) {
				t.Errorf("Len %d, want %d", got.Len(), len(tc.want))
			}
			for k, w := range tc.want {
				if g, ok := got.Get(k); !ok || g != w {
					t.Errorf("%v: %+v (%v), want %+v", k, g, ok, w)
				}
			}
			if m := got.Map(); len(m) != len(tc.want) {
				t.Errorf("Map has %d entries, want %d", len(m), len(tc.want))
			}
			if base.Len() != 3 {
				t.Errorf("the table it came from changed: %v", base.Map())
			}
		})
	}
	var none *HealthTable
	if _, ok := none.Get(HealthKey{VS: "a", RS: a1}); ok || none.Len() != 0 {
		t.Error("a nil table has health")
	}
}
