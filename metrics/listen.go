package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// PlainHandler is what the plain-HTTP metrics listener (metrics_listen)
// serves: GET (and HEAD) /metrics and nothing else. It carries no API
// route at all, so an unauthenticated client on that port can read the
// metrics and never reach anything that changes state or reveals the
// configuration.
func PlainHandler(metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: this listener serves GET /metrics only", http.StatusMethodNotAllowed)
			return
		}
		metrics.ServeHTTP(w, r)
	})
}

// Listener serves PlainHandler on a plain TCP address.
type Listener struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr (HOST:PORT; port 0 picks one) and starts serving h
// wrapped in PlainHandler. The timeouts keep a slow or idle client from
// holding connections open: a scrape is one short request.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           PlainHandler(h),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	l := &Listener{srv: srv, ln: ln}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return l, nil
}

// Addr is the bound address (the port chosen for port 0).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops the listener, letting scrapes in progress finish for up to
// five seconds.
func (l *Listener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.srv.Shutdown(ctx)
}
