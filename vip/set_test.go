package vip

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGARPFrameMatchesKeepalived(t *testing.T) {
	// testing.md: keepalived's gratuitous ARP for 10.99.0.100 from 02:00:00:00:00:0b.
	want, _ := hex.DecodeString(strings.ReplaceAll(
		"ffff ffff ffff 0200 0000 000b 0806 0001 0800 0604 0001 0200 0000 000b 0a63 0064 ffff ffff ffff 0a63 0064", " ", ""))
	got, err := GARPFrame(net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}, netip.MustParseAddr("10.99.0.100"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("GARP frame\n got %x\nwant %x", got, want)
	}
}

func TestVMACAddr(t *testing.T) {
	for _, tc := range []struct {
		vrid uint8
		v6   bool
		want string
	}{{51, false, "00:00:5e:00:01:33"}, {51, true, "00:00:5e:00:02:33"}, {255, false, "00:00:5e:00:01:ff"}} {
		if got := VMACAddr(tc.vrid, tc.v6).String(); got != tc.want {
			t.Errorf("VMACAddr(%d, %v) = %s, want %s", tc.vrid, tc.v6, got, tc.want)
		}
	}
}

func TestSpecValidation(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.1/32")
	for _, tc := range []struct {
		name string
		spec Spec
		want string // "" = valid
	}{
		{"ok", Spec{Interface: "eth0", Addresses: []Address{{Prefix: p, Label: "eth0:1"}}}, ""},
		{"no device", Spec{Addresses: []Address{{Prefix: p}}}, "has no device"},
		{"bad label", Spec{Interface: "eth0", Addresses: []Address{{Prefix: p, Label: "eth1:1"}}}, "label"},
		{"v6 brd", Spec{Interface: "eth0", Addresses: []Address{{Prefix: netip.MustParsePrefix("fd00::1/128"), Broadcast: netip.MustParseAddr("10.0.0.255")}}}, "broadcast"},
		{"no prefix", Spec{Interface: "eth0", Addresses: []Address{{}}}, "no prefix"},
		{"route family", Spec{Routes: []Route{{Dst: netip.MustParsePrefix("10.1.0.0/16"), Via: netip.MustParseAddr("fd00::1")}}}, "gateway family"},
		{"blackhole via", Spec{Routes: []Route{{Dst: netip.MustParsePrefix("10.1.0.0/16"), Via: netip.MustParseAddr("10.0.0.1"), Blackhole: true}}}, "blackhole"},
		{"rule family", Spec{Rules: []Rule{{From: p, To: netip.MustParsePrefix("fd00::/64")}}}, "differ in family"},
		{"rule nothing", Spec{Rules: []Rule{{Table: 100}}}, "no family"},
		{"negative lifetime", Spec{Lifetime: -time.Second}, "negative lifetime"},
		{"negative repeat", Spec{Timing: Timing{MasterRepeat: -1}}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSetWith(tc.spec, newFakeKernel("eth0"), &fakeClock{}, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want ErrInvalidSpec containing %q", err, tc.want)
			}
		})
	}
}

func TestAddRemoveFake(t *testing.T) {
	k := newFakeKernel("eth0", "eth1")
	spec := Spec{
		Instance:  "VI_1",
		Interface: "eth0",
		Addresses: []Address{{Prefix: mustPrefix(t, "10.0.0.100/32")}, {Prefix: mustPrefix(t, "fd00::100/128"), Dev: "eth1"}},
		Excluded:  []Address{{Prefix: mustPrefix(t, "10.0.9.1/32")}},
		Routes:    []Route{{Dst: mustPrefix(t, "192.0.2.0/24"), Via: netip.MustParseAddr("10.0.0.1")}},
		Rules:     []Rule{{From: mustPrefix(t, "10.0.0.100/32"), Table: 100}},
		Lifetime:  3 * time.Second,
	}
	s, err := NewSetWith(spec, k, &fakeClock{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ { // idempotent
		if err := s.Add(ctx); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	if ok, err := s.Present(); !ok || err != nil {
		t.Fatalf("Present = %v, %v; want true", ok, err)
	}
	if got := k.addrs["eth1"][mustPrefix(t, "fd00::100/128")].ValidLft; got != 3*time.Second {
		t.Errorf("lifetime = %s, want 3s", got)
	}
	if len(k.routes) != 1 || len(k.rules) != 1 || len(k.addrs["eth0"]) != 2 {
		t.Errorf("installed routes %v rules %v eth0 addrs %v", k.routes, k.rules, k.addrs["eth0"])
	}
	if err := s.Refresh(ctx, 7*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := k.addrs["eth0"][mustPrefix(t, "10.0.0.100/32")].ValidLft; got != 7*time.Second {
		t.Errorf("refreshed lifetime = %s, want 7s", got)
	}
	for i := 0; i < 2; i++ {
		if err := s.Remove(ctx); err != nil {
			t.Fatalf("Remove #%d: %v", i, err)
		}
	}
	if ok, _ := s.Present(); ok {
		t.Fatal("Present after Remove")
	}
	if len(k.routes)+len(k.rules)+len(k.addrs["eth0"])+len(k.addrs["eth1"]) != 0 {
		t.Errorf("left behind: routes %v rules %v addrs %v", k.routes, k.rules, k.addrs)
	}
}

func TestAddErrorsNameWhatAndWhere(t *testing.T) {
	k := newFakeKernel("eth0")
	k.failAddr = mustPrefix(t, "10.0.0.100/32")
	s, err := NewSetWith(Spec{Interface: "eth0", Addresses: []Address{
		{Prefix: mustPrefix(t, "10.0.0.100/32")}, {Prefix: mustPrefix(t, "10.0.0.101/32")}, {Prefix: mustPrefix(t, "10.0.0.102/32"), Dev: "eth9"},
	}}, k, &fakeClock{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Add(context.Background())
	if err == nil {
		t.Fatal("Add succeeded with a failing kernel")
	}
	for _, want := range []string{"add VIP 10.0.0.100/32 on eth0: operation not permitted", "add VIP 10.0.0.102/32 on eth9"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, ok := k.addrs["eth0"][mustPrefix(t, "10.0.0.101/32")]; !ok {
		t.Error("the address that could be added was not")
	}
	_ = s.Remove(context.Background())
}

func TestAnnounceSchedule(t *testing.T) {
	k := newFakeKernel("eth0")
	clk := &fakeClock{}
	s, err := NewSetWith(Spec{
		Interface: "eth0",
		Addresses: []Address{{Prefix: mustPrefix(t, "10.0.0.100/32")}, {Prefix: mustPrefix(t, "fd00::100/128")}},
		Timing: Timing{MasterDelay: 5 * time.Second, MasterRepeat: 5, MasterRefresh: 60 * time.Second,
			MasterRefreshRepeat: 2},
	}, k, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Burst 1: 5 rounds x 2 addresses, then the goroutine waits for the delay.
	waitFor(t, "first burst", func() bool { return k.sentCount() == 10 && clk.pending() == 1 })
	if k.sent[0] != "garp eth0 10.0.0.100" || k.sent[1] != "na eth0 fd00::100" {
		t.Errorf("first round = %v", k.sent[:2])
	}
	clk.Advance(4 * time.Second)
	if n := k.sentCount(); n != 10 {
		t.Fatalf("sent %d before master delay passed", n)
	}
	clk.Advance(time.Second)
	waitFor(t, "second burst", func() bool { return k.sentCount() == 20 && clk.pending() == 1 })
	clk.Advance(60 * time.Second)
	waitFor(t, "refresh burst", func() bool { return k.sentCount() == 24 && clk.pending() == 1 })
	if err := s.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if n := k.sentCount(); n != 24 {
		t.Fatalf("sent %d after Remove, want 24", n)
	}
}

// TestAnnounceNotPastLifetime: addresses with a kernel lifetime (fenced)
// are not announced once it ran out (the kernel dropped them: a process
// paused past its lease wakes with the second burst due), unless a
// refresh extended it.
func TestAnnounceNotPastLifetime(t *testing.T) {
	for _, tc := range []struct {
		name      string
		lifetime  time.Duration
		refreshAt time.Duration // 0: no refresh
		want      int           // packets after the second burst was due
	}{
		{"permanent: announced", 0, 0, 2},
		{"lifetime ran out: not announced", time.Second, 0, 1},
		{"refreshed before the burst: announced", time.Second, 4500 * time.Millisecond, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel("eth0")
			clk := &fakeClock{}
			s, err := NewSetWith(Spec{Interface: "eth0", Lifetime: tc.lifetime,
				Addresses: []Address{{Prefix: mustPrefix(t, "10.0.0.100/32")}},
				// The refresh wait shows when the second burst is over.
				Timing: Timing{MasterDelay: 5 * time.Second, MasterRepeat: 1, MasterRefresh: time.Hour, MasterRefreshRepeat: 1},
			}, k, clk, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Add(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "first burst", func() bool { return k.sentCount() == 1 && clk.pending() == 1 })
			if tc.refreshAt > 0 {
				clk.Advance(tc.refreshAt)
				if err := s.Refresh(context.Background(), tc.lifetime); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(5*time.Second - tc.refreshAt)
			waitFor(t, "second burst over", func() bool { return clk.pending() == 1 })
			n := k.sentCount()
			if err := s.Remove(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("sent %d, want %d", n, tc.want)
			}
		})
	}
}

// TestAnnounceReAddedAfterLifetime: a set added again long after its
// previous lifetime ran out announces at once: the new lifetime is
// recorded before the announcements start.
func TestAnnounceReAddedAfterLifetime(t *testing.T) {
	k := newFakeKernel("eth0")
	clk := &fakeClock{}
	s, err := NewSetWith(Spec{Interface: "eth0", Lifetime: time.Second,
		Addresses: []Address{{Prefix: mustPrefix(t, "10.0.0.100/32")}},
		Timing:    Timing{MasterRepeat: 1, MasterRefresh: time.Hour, MasterRefreshRepeat: 1},
	}, k, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 20; round++ {
		if err := s.Add(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("the burst of Add %d", round), func() bool { return k.sentCount() == round })
		if err := s.Remove(context.Background()); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Second)
	}
}

func TestAnnounceIntervalAndLowerPrio(t *testing.T) {
	k := newFakeKernel("eth0")
	clk := &fakeClock{}
	s, err := NewSetWith(Spec{
		Interface: "eth0",
		Addresses: []Address{{Prefix: mustPrefix(t, "10.0.0.100/32")}},
		Timing:    Timing{MasterRepeat: 3, GARPInterval: 10 * time.Millisecond, LowerPrioDelay: time.Second, LowerPrioRepeat: 2},
	}, k, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.AnnounceLowerPrio() // inactive: nothing
	if err := s.Add(context.Background()); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		waitFor(t, "spaced GARP", func() bool { return k.sentCount() == want && clk.pending() == 1 })
		clk.Advance(10 * time.Millisecond)
	}
	waitFor(t, "schedule end", func() bool { return clk.pending() == 0 })
	s.AnnounceLowerPrio()
	waitFor(t, "lower prio wait", func() bool { return clk.pending() == 1 })
	clk.Advance(time.Second)
	waitFor(t, "lower prio burst", func() bool { return k.sentCount() == 4 && clk.pending() == 1 })
	clk.Advance(10 * time.Millisecond)
	waitFor(t, "lower prio burst 2", func() bool { return k.sentCount() == 5 })
	if err := s.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveStaleFake(t *testing.T) {
	k := newFakeKernel("eth0")
	l, _ := k.LinkByName("eth0")
	_ = k.AddrReplace(l, Address{Prefix: mustPrefix(t, "10.0.0.100/24")}, 0) // other prefix length: still ours
	_ = k.AddrReplace(l, Address{Prefix: mustPrefix(t, "10.0.0.5/24")}, 0)   // not a VIP
	s, _ := NewSetWith(Spec{Interface: "eth0", Addresses: []Address{{Prefix: mustPrefix(t, "10.0.0.100/32")}}}, k, &fakeClock{}, nil)
	removed, err := s.RemoveStale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != mustPrefix(t, "10.0.0.100/24") {
		t.Fatalf("removed %v", removed)
	}
	if _, ok := k.addrs["eth0"][mustPrefix(t, "10.0.0.5/24")]; !ok {
		t.Fatal("removed an address that is not a VIP")
	}
}
