package director

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var fastBackoff = Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond, Reset: time.Hour}

func TestSuperviseRestarts(t *testing.T) {
	tests := []struct {
		name string
		fail func(n int32) error // what run number n does
	}{
		{"error", func(int32) error { return errors.New("boom") }},
		{"panic", func(int32) error { panic("kaboom") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var runs atomic.Int32
			done := make(chan struct{})
			go func() {
				Supervise(ctx, quietLog(), fastBackoff, Subsystem{Name: "x", Run: func(ctx context.Context) error {
					n := runs.Add(1)
					if n >= 3 {
						cancel() // third run: stop supervising
						<-ctx.Done()
						return nil
					}
					return tt.fail(n)
				}})
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("supervisor did not stop")
			}
			if got := runs.Load(); got != 3 {
				t.Fatalf("runs = %d, want 3 (two failures restarted)", got)
			}
		})
	}
}

func TestSuperviseFinishedIsNotRestarted(t *testing.T) {
	var runs atomic.Int32
	Supervise(context.Background(), quietLog(), fastBackoff, Subsystem{Name: "once", Run: func(context.Context) error {
		runs.Add(1)
		return nil
	}})
	if got := runs.Load(); got != 1 {
		t.Fatalf("runs = %d, want 1", got)
	}
}

func TestRunGuardedReportsPanic(t *testing.T) {
	err := runGuarded(context.Background(), Subsystem{Run: func(context.Context) error { panic("x") }})
	if !errors.Is(err, errPanic) {
		t.Fatalf("err = %v, want a panic error", err)
	}
}
