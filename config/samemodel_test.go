package config

import "testing"

func TestSameIgnoringPos(t *testing.T) {
	type vip struct {
		Pos  int    `json:"pos"`
		Addr string `json:"addr"`
	}
	tests := []struct {
		name string
		a, b any
		same bool
	}{
		{"only positions differ", []vip{{1, "a"}}, []vip{{9, "a"}}, true},
		{"values differ", []vip{{1, "a"}}, []vip{{1, "b"}}, false},
		{"nested positions", map[string][]vip{"x": {{1, "a"}}}, map[string][]vip{"x": {{2, "a"}}}, true},
		{"lengths differ", []vip{{1, "a"}}, []vip{{1, "a"}, {2, "b"}}, false},
	}
	for _, tt := range tests {
		if got := SameIgnoringPos(tt.a, tt.b); got != tt.same {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.same)
		}
	}
}
