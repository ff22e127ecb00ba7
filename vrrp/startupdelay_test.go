package vrrp

import (
	"reflect"
	"testing"
	"time"
)

// TestStartupDelay: with vrrp_startup_delay the instances stay in INIT,
// silent, until the delay has passed; then the state machine runs as
// without it (BACKUP, MASTER after Master_Down). An address owner
// (priority 255) waits too.
func TestStartupDelay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prio      uint8
		delay     time.Duration
		afterWait string        // state right after the delay
		toMaster  time.Duration // from the end of the delay
	}{
		{"backup first", 100, 5 * time.Second, "BACKUP", 3600 * time.Millisecond},
		{"address owner", 255, 2500 * time.Millisecond, "MASTER", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := specNamed("VI_1", 51, func(s *InstanceSpec) { s.Priority = tc.prio })
			h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) { o.StartupDelay = tc.delay })
			h.sync("VI_1")
			if st := h.status("VI_1"); st.State != "INIT" {
				t.Fatalf("at start: %s, want INIT", st.State)
			}
			h.clock.Advance(tc.delay - time.Millisecond)
			h.sync("VI_1")
			if st := h.status("VI_1"); st.State != "INIT" {
				t.Fatalf("1 ms before the end of the delay: %s, want INIT", st.State)
			}
			if got := h.conn("VI_1").sentPrios(); len(got) != 0 {
				t.Fatalf("adverts during the delay: %v", got)
			}
			if got := h.notes.events(); len(got) != 0 {
				t.Fatalf("notifications during the delay: %v", got)
			}
			h.clock.Advance(time.Millisecond)
			h.waitState("VI_1", tc.afterWait)
			if tc.toMaster > 0 {
				h.clock.Advance(tc.toMaster - time.Millisecond)
				h.sync("VI_1")
				if st := h.status("VI_1"); st.State != "BACKUP" {
					t.Fatalf("before Master_Down: %s", st.State)
				}
				h.clock.Advance(time.Millisecond)
				h.waitState("VI_1", "MASTER")
			}
			want := []string{"[INSTANCE VI_1 BACKUP 100]", "[INSTANCE VI_1 MASTER 100]"}
			if tc.prio == 255 {
				want = []string{"[INSTANCE VI_1 BACKUP 255]", "[INSTANCE VI_1 MASTER 255]"}
			}
			h.waitFor("notifications", func() bool { return len(h.notes.events()) >= len(want) })
			if got := h.notes.events(); !reflect.DeepEqual(got, want) {
				t.Fatalf("notifications %v, want %v", got, want)
			}
		})
	}
}

// TestStartupDelayReload: an instance added by a reload during the delay
// waits for its end as well.
func TestStartupDelayReload(t *testing.T) {
	a := specNamed("VI_A", 51, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{a}}, func(o *Options) { o.StartupDelay = 10 * time.Second })
	h.clock.Advance(4 * time.Second)
	b := specNamed("VI_B", 52, nil)
	if err := h.mgr.Reload(t.Context(), &Set{Instances: []*InstanceSpec{a, b}}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("VI_B started", func() bool { return len(h.mgr.Status()) == 2 })
	h.sync("VI_B")
	if st := h.status("VI_B"); st.State != "INIT" {
		t.Fatalf("VI_B added during the delay: %s, want INIT", st.State)
	}
	h.clock.Advance(6 * time.Second)
	h.waitState("VI_A", "BACKUP")
	h.waitState("VI_B", "BACKUP")
}
