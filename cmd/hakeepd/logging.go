package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
)

// newLogger builds the daemon's logger: stderr with -l, syslog otherwise
// (facility LOG_LOCAL0+N from -S), both when asked. Without a syslog daemon
// (no /dev/log) it falls back to stderr and says so, instead of going mute
// the way keepalived does.
func newLogger(o options, stderr io.Writer) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	if o.logDetail || o.debug {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handlers []slog.Handler
	closeFn := func() {}
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
			closeFn = func() { w.Close() }
		}
	}
	if len(handlers) == 0 {
		handlers = append(handlers, slog.NewTextHandler(io.Discard, hopts))
	}
	if len(handlers) == 1 {
		return slog.New(handlers[0]), closeFn, nil
	}
	return slog.New(fanout(handlers)), closeFn, nil
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
