package main

import (
	"context"
	"io"
	"log/slog"
	"log/syslog"
	"sync"
	"sync/atomic"
	"time"
)

// newLogger builds the daemon's logger as keepalived does: syslog unless
// -G, and stderr too with -l (so -l -G is the console alone). The syslog
// facility is LOG_DAEMON, or LOG_LOCALn with -S n; each record's syslog
// priority follows its level (see syslogHandler), so journalctl -p err
// shows the errors. --log-json writes JSON objects instead of key=value
// text, on both outputs. Without a syslog daemon (no /dev/log) it falls
// back to stderr and says so, instead of going mute the way keepalived
// does.
//
// Records are written by a goroutine of their own (asyncHandler): a log
// call never waits for a terminal, a pipe or a syslog daemon, so logging
// from the VRRP event loop cannot delay an advert. The returned function
// writes what is still queued and closes the outputs.
func newLogger(o options, stderr io.Writer) (*slog.Logger, func(), error) {
	return buildLogger(o, stderr, dialLocalSyslog)
}

// syslogDialer opens the syslog connection for facility (LOG_DAEMON or
// LOG_LOCALn); tests pass one that dials a socket of their own.
type syslogDialer func(facility syslog.Priority) (*syslog.Writer, error)

// dialLocalSyslog is the local syslog daemon (/dev/log: journald or
// rsyslog).
func dialLocalSyslog(facility syslog.Priority) (*syslog.Writer, error) {
	return syslog.New(facility|syslog.LOG_INFO, "hakeepd")
}

// syslogFacility is keepalived's: LOG_DAEMON unless -S n asks for
// LOG_LOCALn (or -S user for LOG_USER).
func syslogFacility(o options) syslog.Priority {
	switch {
	case o.logFacilitySet:
		return syslog.LOG_LOCAL0 + syslog.Priority(o.logFacility*8)
	case o.logFacilityUser:
		return syslog.LOG_USER
	}
	return syslog.LOG_DAEMON
}

func buildLogger(o options, stderr io.Writer, dial syslogDialer) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	if o.logDetail || o.debug {
		level = slog.LevelDebug
	}
	format := func(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
		if o.logJSON {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handlers []slog.Handler
	closeOut := func() {}
	if o.logConsole {
		handlers = append(handlers, format(stderr, hopts))
	}
	if !o.noSyslog {
		w, err := dial(syslogFacility(o))
		switch {
		case err != nil && o.logConsole:
			slog.New(handlers[0]).Warn("syslog unavailable, logging to stderr only", "err", err)
		case err != nil:
			h := format(stderr, hopts)
			handlers = append(handlers, h)
			slog.New(h).Warn("syslog unavailable, logging to stderr", "err", err)
		default:
			// syslog stamps every message itself: no second timestamp.
			sopts := &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}
			handlers = append(handlers, newSyslogHandler(w, func(out io.Writer) slog.Handler { return format(out, sopts) }))
			closeOut = func() { w.Close() }
		}
	}
	var h slog.Handler
	switch len(handlers) {
	case 0:
		h = slog.DiscardHandler
	case 1:
		h = handlers[0]
	default:
		h = slog.NewMultiHandler(handlers...)
	}
	ah := newAsyncHandler(h, logQueueLen)
	return slog.New(ah), func() {
		ah.close(5 * time.Second)
		closeOut()
	}, nil
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// syslogHandler writes each record as one syslog message whose severity
// follows the record's level: Debug LOG_DEBUG, Info LOG_INFO, Warn
// LOG_WARNING, Error LOG_ERR (levels in between round down, as slog's
// own names do). journald keeps that as PRIORITY=, so journalctl -p
// filters on it. The formatting handler writes a record in one Write,
// which the shared lock pairs with that record's level.
type syslogHandler struct {
	inner slog.Handler // formats into out
	out   *prioWriter
}

type prioWriter struct {
	mu    sync.Mutex
	w     *syslog.Writer
	level slog.Level // of the record being written, under mu
}

func newSyslogHandler(w *syslog.Writer, format func(io.Writer) slog.Handler) *syslogHandler {
	out := &prioWriter{w: w}
	return &syslogHandler{inner: format(out), out: out}
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.level = r.Level
	return h.inner.Handle(ctx, r)
}

func (h *syslogHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &syslogHandler{inner: h.inner.WithAttrs(a), out: h.out}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{inner: h.inner.WithGroup(name), out: h.out}
}

// Write sends p at the current record's severity (the caller holds mu).
func (p *prioWriter) Write(b []byte) (int, error) {
	msg := string(b)
	var err error
	switch l := p.level; {
	case l >= slog.LevelError:
		err = p.w.Err(msg)
	case l >= slog.LevelWarn:
		err = p.w.Warning(msg)
	case l >= slog.LevelInfo:
		err = p.w.Info(msg)
	default:
		err = p.w.Debug(msg)
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
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

// logQueue is a slice that grows with what waits, up to max, rather than
// a channel of max records allocated up front (2.4 MB held for the
// daemon's life for a burst that rarely comes).
type logQueue struct {
	root    slog.Handler // the output without any record's attributes: for the drop reports
	max     int
	mu      sync.Mutex
	closed  bool
	items   []logItem
	wake    chan struct{} // one slot: records are waiting, or closed
	dropped atomic.Uint64
	done    chan struct{}
}

type logItem struct {
	h slog.Handler
	r slog.Record
}

func newAsyncHandler(inner slog.Handler, n int) *asyncHandler {
	q := &logQueue{root: inner, max: n, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return &asyncHandler{inner: inner, q: q}
}

func (h *asyncHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *asyncHandler) Handle(ctx context.Context, r slog.Record) error {
	q := h.q
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		// After close (the daemon is exiting): write in line.
		return h.inner.Handle(ctx, r)
	}
	if len(q.items) >= q.max {
		q.mu.Unlock()
		q.dropped.Add(1)
		return nil
	}
	q.items = append(q.items, logItem{h: h.inner, r: r.Clone()})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
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

// spareCap is the largest batch buffer the writer keeps for reuse; one
// grown by a burst is left to the collector.
const spareCap = 256

func (q *logQueue) run() {
	defer close(q.done)
	var reported uint64
	// Two buffers change hands: the one Handle appends to (q.items) and
	// the one being written (batch), which becomes the next q.items.
	var spare []logItem
	for range q.wake {
		for {
			q.mu.Lock()
			batch, closed := q.items, q.closed
			q.items, spare = spare, nil
			q.mu.Unlock()
			for i := range batch {
				batch[i].h.Handle(context.Background(), batch[i].r)
				batch[i] = logItem{} // the record's attributes go with it
			}
			if cap(batch) <= spareCap {
				spare = batch[:0]
			}
			if len(batch) == 0 {
				if closed {
					q.report(reported)
					return
				}
				break
			}
		}
		reported = q.report(reported)
	}
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
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
	case <-time.After(d):
	}
}
