package owner

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errStopped = errors.New("stopped")

func TestDo(t *testing.T) {
	l := New[*int](errStopped)
	n := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		l.Start()
		for {
			select {
			case f := <-l.Events():
				f(&n)
			case <-ctx.Done():
				l.Stop()
				return
			}
		}
	}()
	for range 3 {
		if err := l.Do(context.Background(), func(p *int) { *p++ }); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Do(context.Background(), func(p *int) {
		if *p != 3 {
			t.Errorf("state %d, want 3", *p)
		}
	}); err != nil {
		t.Fatal(err)
	}
	// A stuck owner: Do gives up at its deadline.
	release, stuck := make(chan struct{}), make(chan struct{})
	go l.Do(context.Background(), func(*int) { close(stuck); <-release })
	<-stuck
	short, scancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer scancel()
	if err := l.Do(short, func(*int) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do on a stuck owner = %v, want a deadline", err)
	}
	close(release)
	cancel()
	// Stopped: Do fails at once, whatever its deadline.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := l.Do(context.Background(), func(*int) {})
		if errors.Is(err, errStopped) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Do after stop = %v, want errStopped", err)
		}
	}
}

func TestDoBeforeStartWaits(t *testing.T) {
	l := New[int](errStopped)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Do(ctx, func(int) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Do before Start = %v, want a deadline", err)
	}
	l.Stop()
	if err := l.Do(context.Background(), func(int) {}); !errors.Is(err, errStopped) {
		t.Errorf("Do after Stop = %v, want errStopped", err)
	}
}
