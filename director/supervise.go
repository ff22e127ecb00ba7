package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// A Subsystem is one long-running part of the daemon (VRRP, checks, IPVS,
// cluster, API). Run blocks until ctx is done or the subsystem fails.
type Subsystem struct {
	Name string
	Run  func(ctx context.Context) error
}

// Backoff bounds how fast a failing subsystem is restarted.
type Backoff struct {
	Min, Max time.Duration
	// Reset: a run that lasted this long counts as healthy, so the next
	// failure starts again from Min.
	Reset time.Duration
}

// DefaultBackoff restarts at once-ish, then slows to one try per 30 s.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 30 * time.Second, Reset: time.Minute}

// Supervise runs every subsystem and restarts the ones that return an error
// or panic, with exponential backoff, until ctx is done. It is keepalived's
// watchdog role, inside one process: a crash in the checkers must not take
// the VRRP side with it. A subsystem that returns nil before ctx is done has
// finished its job and is not restarted.
func Supervise(ctx context.Context, log *slog.Logger, b Backoff, subs ...Subsystem) {
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			superviseOne(ctx, log.With("subsystem", s.Name), b, s)
		}()
	}
	wg.Wait()
}

func superviseOne(ctx context.Context, log *slog.Logger, b Backoff, s Subsystem) {
	delay := b.Min
	for restarts := 0; ; restarts++ {
		start := time.Now()
		err := runGuarded(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			log.Info("subsystem finished")
			return
		}
		if time.Since(start) >= b.Reset {
			delay = b.Min
		}
		log.Error("subsystem failed, restarting", "err", err, "restarts", restarts+1, "backoff", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, b.Max)
	}
}

// errPanic marks a recovered panic so logs say it was one.
var errPanic = errors.New("panic")

func runGuarded(ctx context.Context, s Subsystem) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", errPanic, r, debug.Stack())
		}
	}()
	return s.Run(ctx)
}
