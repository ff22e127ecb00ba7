package vrrp

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// Scripts reports each tracked vrrp_script's result after rise and fall,
// follows changes, and forgets a script no instance tracks after a reload.
func TestManagerScripts(t *testing.T) {
	var mu sync.Mutex
	ok := map[string]bool{"chk_a": true, "chk_b": false}
	set := func(name string, v bool) {
		mu.Lock()
		defer mu.Unlock()
		ok[name] = v
	}
	script := func(name string) TrackScript {
		return TrackScript{Name: name, Script: "x", Interval: 5 * time.Millisecond, Weight: -10, Rise: 2, Fall: 2}
	}
	s1 := specNamed("VI_1", 51, func(s *InstanceSpec) { s.TrackScripts = []TrackScript{script("chk_b"), script("chk_a")} })
	s2 := specNamed("VI_2", 52, func(s *InstanceSpec) { s.TrackScripts = []TrackScript{script("chk_a")} })
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s1, s2}}, func(o *Options) {
		o.Scripts = func(_ context.Context, ts TrackScript) bool {
			mu.Lock()
			defer mu.Unlock()
			return ok[ts.Name]
		}
	})
	want := func(what string, w []ScriptStatus) {
		t.Helper()
		h.waitFor(what, func() bool { return reflect.DeepEqual(h.mgr.Scripts(), w) })
	}
	// Sorted by name, one entry per script however many instances track it.
	want("initial results", []ScriptStatus{{"chk_a", true}, {"chk_b", false}})
	set("chk_b", true)
	want("chk_b recovered", []ScriptStatus{{"chk_a", true}, {"chk_b", true}})
	set("chk_a", false)
	want("chk_a failing", []ScriptStatus{{"chk_a", false}, {"chk_b", true}})

	s1b := specNamed("VI_1", 51, func(s *InstanceSpec) { s.TrackScripts = []TrackScript{script("chk_a")} })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.mgr.Reload(ctx, &Set{Instances: []*InstanceSpec{s1b, s2}}); err != nil {
		t.Fatal(err)
	}
	want("chk_b forgotten after reload", []ScriptStatus{{"chk_a", false}})
}
