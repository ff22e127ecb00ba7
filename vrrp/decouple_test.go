package vrrp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// stuckNotifier blocks every Notify until released: a notifier that takes
// a lock held elsewhere, or writes to a full channel.
type stuckNotifier struct {
	release chan struct{}
	mu      sync.Mutex
	got     []State
}

func (n *stuckNotifier) Notify(e Event) {
	<-n.release
	n.mu.Lock()
	n.got = append(n.got, e.State)
	n.mu.Unlock()
}

// blockingGate blocks in Admit (against its contract) until released: the
// event loop is stuck inside it.
type blockingGate struct {
	entered chan struct{}
	release chan struct{}
}

func (g *blockingGate) Admit(ctx context.Context, c Claim) <-chan error {
	close(g.entered)
	<-g.release
	ch := make(chan error, 1)
	ch <- nil
	return ch
}

func (g *blockingGate) Release(Claim) {}

// advance runs the fake clock forward, failing t if the loop does not take
// the ticks (the clock waits for the loop to re-arm its timer).
func advance(t *testing.T, h *harness, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { h.clock.Advance(d); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the event loop stopped taking its timers")
	}
}

// TestManagerOutputsNeverBlockLoop: what the loop hands out cannot hold it
// up. A stuck Notifier: the master keeps advertising and Status answers;
// the state changes arrive, in order, once the notifier is released.
func TestManagerOutputsNeverBlockLoop(t *testing.T) {
	n := &stuckNotifier{release: make(chan struct{})}
	s := specNamed("VI_1", 51, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) { o.Notifier = n })
	advance(t, h, 3600*time.Millisecond)
	h.waitState("VI_1", "MASTER")
	advance(t, h, 10*time.Second)
	h.sync("VI_1")
	if got := len(h.conn("VI_1").sentPrios()); got != 11 {
		t.Fatalf("%d adverts in 10 s of MASTER with a stuck notifier, want 11", got)
	}
	close(n.release)
	h.waitFor("notifications delivered", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.got) == 2
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.got[0] != StateBackup || n.got[1] != StateMaster {
		t.Fatalf("notifications %v, want BACKUP then MASTER", n.got)
	}
}

// TestManagerStatusWithoutLoop: Status answers while the event loop is
// stuck (here inside a Gate that breaks its contract), and Ping reports the
// wedged loop.
func TestManagerStatusWithoutLoop(t *testing.T) {
	g := &blockingGate{entered: make(chan struct{}), release: make(chan struct{})}
	s := specNamed("VI_1", 51, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, func(o *Options) { o.Gate = g })
	go h.clock.Advance(3600 * time.Millisecond) // Master_Down: the loop calls Admit
	select {
	case <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("Master_Down never asked the gate")
	}
	st := make(chan []InstanceStatus, 1)
	go func() { st <- h.mgr.Status() }()
	select {
	case got := <-st:
		if len(got) != 1 || got[0].State != "BACKUP" {
			t.Fatalf("status %+v", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Status waited for the stuck loop")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.mgr.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping of a stuck loop: %v, want deadline exceeded", err)
	}
	close(g.release)
	h.waitState("VI_1", "MASTER")
	if err := h.mgr.Ping(context.Background()); err != nil {
		t.Fatalf("Ping of a running loop: %v", err)
	}
}

// TestManagerWatch: a watcher is signalled after each change Status shows
// (a state, a new master heard) and not for adverts alone; stop ends it.
func TestManagerWatch(t *testing.T) {
	s := specNamed("VI_1", 51, nil)
	h := newHarness(t, &Set{Instances: []*InstanceSpec{s}}, nil)
	ch, stop := h.mgr.Watch()
	defer stop()
	drain := func() {
		for len(ch) > 0 {
			<-ch
		}
	}
	wait := func(what string, cond func(InstanceStatus) bool) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("no signal for %s", what)
		}
		if st := h.status("VI_1"); !cond(st) {
			t.Fatalf("signalled for %s, status %+v", what, st)
		}
	}
	h.waitState("VI_1", "BACKUP")
	drain()
	advance(t, h, 3600*time.Millisecond)
	wait("MASTER", func(st InstanceStatus) bool { return st.State == "MASTER" })
	drain()
	advance(t, h, 5*time.Second) // adverts only
	h.sync("VI_1")
	if len(ch) != 0 {
		t.Fatal("signalled for adverts alone")
	}
	h.inject("VI_1", advFor(s, 200), peerHigh)
	wait("a better master", func(st InstanceStatus) bool { return st.State == "BACKUP" && st.Master == peerHigh })
	stop()
	h.inject("VI_1", advFor(s, 0), peerHigh)
	h.sync("VI_1")
	if len(ch) != 0 {
		t.Fatal("signalled after stop")
	}
}
