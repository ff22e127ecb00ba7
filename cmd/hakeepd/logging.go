package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"sync"
	"sync/atomic"
	"time"
)

// newLogger builds the daemon's logger: stderr with -l, syslog otherwise
// (facility LOG_LOCAL0+N from -S), both when asked. Without a syslog daemon
// (no /dev/log) it falls back to stderr and says so, instead of going mute
// the way keepalived does.
//
// Records are written by a goroutine of their own (asyncHandler): a log
// call never waits for a terminal, a pipe or a syslog daemon, so logging
// from the VRRP event loop cannot delay an advert. The returned function
// writes what is still queued and closes the outputs.
func newLogger(o options, stderr io.Writer) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	if o.logDetail || o.debug {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handlers []slog.Handler
	closeOut := func() {}
	if o.logConsole {
		handlers = append(handlers, slog.NewTextHandler(stderr, hopts))
	}
	if !o.noSyslog && !o.logConsole {
		prio := syslog.Priority(int(syslog.LOG_LOCAL0)+o.logFacility*8) | syslog.LOG_INFO
		w, err := syslog.New(prio, "hakeepd")
		if err != nil {
			h := slog.NewTextHandler(stderr, hopts)
			handlers = append(handlers, h)
			slog.New(h).Warn("syslog unavailable, logging to stderr", "err", err)
		} else {
			handlers = append(handlers, slog.NewTextHandler(w, hopts))
			closeOut = func() { w.Close() }
		}
	}
	if len(handlers) == 0 {
		handlers = append(handlers, slog.NewTextHandler(io.Discard, hopts))
	}
	var h slog.Handler = handlers[0]
	if len(handlers) > 1 {
		h = fanout(handlers)
	}
	ah := newAsyncHandler(h, logQueueLen)
	return slog.New(ah), func() {
		ah.close(5 * time.Second)
		closeOut()
	}, nil
}

// logQueueLen bounds the records waiting for the output (a few MB at
// most): a burst of thousands of "real server down" lines within a second
// fits, a stalled output costs drops instead of memory or a blocked caller.
const logQueueLen = 8192

// asyncHandler queues records for one writer goroutine and never blocks:
// when the queue is full (the output stalls, or a burst outruns it) the
// record is dropped and counted, and the writer says how many were lost
// once it catches up. Order is kept for every record written.
type asyncHandler struct {
	inner slog.Handler // with this handler's attributes and groups applied
	q     *logQueue
}

type logQueue struct {
	root    slog.Handler // the output without any record's attributes: for the drop reports
	mu      sync.RWMutex // Handle holds it shared; close exclusively
	closed  bool
	ch      chan logItem
	dropped atomic.Uint64
	done    chan struct{}
}

type logItem struct {
	h slog.Handler
	r slog.Record
}

func newAsyncHandler(inner slog.Handler, n int) *asyncHandler {
	q := &logQueue{root: inner, ch: make(chan logItem, n), done: make(chan struct{})}
	go q.run()
	return &asyncHandler{inner: inner, q: q}
}

func (h *asyncHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *asyncHandler) Handle(ctx context.Context, r slog.Record) error {
	q := h.q
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		// After close (the daemon is exiting): write in line.
		return h.inner.Handle(ctx, r)
	}
	select {
	case q.ch <- logItem{h: h.inner, r: r.Clone()}:
	default:
		q.dropped.Add(1)
	}
	return nil
}

func (h *asyncHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &asyncHandler{inner: h.inner.WithAttrs(a), q: h.q}
}

func (h *asyncHandler) WithGroup(name string) slog.Handler {
	return &asyncHandler{inner: h.inner.WithGroup(name), q: h.q}
}

// dropped is how many records were lost so far.
func (h *asyncHandler) dropped() uint64 { return h.q.dropped.Load() }

func (q *logQueue) run() {
	defer close(q.done)
	var reported uint64
	for it := range q.ch {
		it.h.Handle(context.Background(), it.r)
		if len(q.ch) == 0 {
			reported = q.report(reported)
		}
	}
	q.report(reported)
}

// report writes one record saying how many were dropped since the last
// report (once the queue is empty again, so the report is not dropped).
func (q *logQueue) report(reported uint64) uint64 {
	n := q.dropped.Load()
	if n == reported {
		return n
	}
	r := slog.NewRecord(time.Now(), slog.LevelWarn, "log records dropped: the log output did not keep up", 0)
	r.AddAttrs(slog.Uint64("dropped", n-reported), slog.Uint64("dropped_total", n))
	q.root.Handle(context.Background(), r)
	return n
}

// close stops queueing (later records are written in line), then waits up
// to d for the queue to be written.
func (h *asyncHandler) close(d time.Duration) {
	q := h.q
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	select {
	case <-q.done:
	case <-time.After(d):
	}
}

// fanout sends every record to each handler.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var first error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil && first == nil {
				first = fmt.Errorf("log handler: %w", err)
			}
		}
	}
	return first
}

func (f fanout) WithAttrs(a []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(a)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
