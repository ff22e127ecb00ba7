package lvs

import (
	"net/netip"
	"slices"
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
		changes map[string]*VSHealth
		want    map[HealthKey]RSHealth
	}{
		{"nothing", nil, base.Map()},
		{"one virtual server replaced", map[string]*VSHealth{"a": vsh(a1, RSHealth{Up: false, Weight: 3})},
			map[HealthKey]RSHealth{{VS: "a", RS: a1}: {Up: false, Weight: 3}, {VS: "b", RS: b1}: {Up: false, Weight: -1}}},
		{"one gone, one new", map[string]*VSHealth{"b": nil, "c": vsh(b1, RSHealth{Up: true, Weight: -1})},
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

// vsh is a VSHealth of one real server.
func vsh(a netip.AddrPort, h RSHealth) *VSHealth {
	return (*VSHealth)(nil).With([]RSResult{{Addr: a, RSHealth: h}})
}

// With and Without make new versions: the old one does not change, the
// addresses stay sorted (Get searches them) and are shared while no real
// server comes or goes.
func TestVSHealthVersions(t *testing.T) {
	a1, a2, a3, a4 := ap("10.1.0.1:80"), ap("10.1.0.2:80"), ap("10.1.0.3:80"), ap("[2001:db8::1]:80")
	up, down := RSHealth{Up: true, Weight: -1}, RSHealth{Up: false, Weight: -1}
	base := (*VSHealth)(nil).With([]RSResult{{a3, up}, {a1, up}})
	tests := []struct {
		name       string
		do         func(*VSHealth) *VSHealth
		want       []RSResult // in address order
		sharesAddr bool
	}{
		{"set existing", func(v *VSHealth) *VSHealth { return v.With([]RSResult{{a1, down}}) },
			[]RSResult{{a1, down}, {a3, up}}, true},
		{"add between and after", func(v *VSHealth) *VSHealth { return v.With([]RSResult{{a4, up}, {a2, down}}) },
			[]RSResult{{a1, up}, {a2, down}, {a3, up}, {a4, up}}, false},
		{"later result wins", func(v *VSHealth) *VSHealth {
			return v.With([]RSResult{{a2, up}, {a1, down}, {a2, down}, {a1, RSHealth{Up: true, Weight: 7}}})
		}, []RSResult{{a1, RSHealth{Up: true, Weight: 7}}, {a2, down}, {a3, up}}, false},
		{"remove", func(v *VSHealth) *VSHealth { return v.Without(a1) }, []RSResult{{a3, up}}, false},
		{"remove absent", func(v *VSHealth) *VSHealth { return v.Without(a2) }, []RSResult{{a1, up}, {a3, up}}, true},
		{"remove all", func(v *VSHealth) *VSHealth { return v.Without(a1).Without(a3) }, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.do(base)
			var all []RSResult
			for a, h := range got.All {
				all = append(all, RSResult{a, h})
			}
			if !slices.Equal(all, tc.want) {
				t.Fatalf("got %v, want %v", all, tc.want)
			}
			for _, w := range tc.want {
				if h, ok := got.Get(w.Addr); !ok || h != w.RSHealth {
					t.Errorf("Get(%s) = %v, %v", w.Addr, h, ok)
				}
			}
			if len(tc.want) == 0 && got != nil {
				t.Errorf("an empty version is %v, want nil", got)
			}
			if shared := got != nil && got.Len() > 0 && &got.addrs[0] == &base.addrs[0]; shared != tc.sharesAddr {
				t.Errorf("addresses shared: %v, want %v", shared, tc.sharesAddr)
			}
			if h, _ := base.Get(a1); base.Len() != 2 || h != up {
				t.Errorf("the version it came from changed: %v", base.Map())
			}
		})
	}
}
