package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Body limits: a configuration text (push, validate) fits many times in
// maxBody; every other request is a few fields.
const (
	maxBody      = 32 << 20
	maxSmallBody = 64 << 10
)

// Server serves a Backend over HTTP/JSON.
type Server struct {
	b   Backend
	log *slog.Logger
	mux *http.ServeMux

	// reads admits maxReads read requests at a time (see guard).
	reads chan struct{}

	mu    sync.Mutex
	srvs  []*http.Server
	paths []string
}

// maxReads is how many read requests (GET, HEAD: status, checks, ipvs,
// metrics...) the daemon serves at once; the others wait their turn.
//
// Why (issue 10): a read is CPU work with no waits in it, and each one
// in progress holds a P. Thirty-two clients polling status and metrics
// kept every P of the process busy, and the VRRP loop, woken by its
// timer, waited up to 58 ms for a P (runtime trace; its timer goroutine
// 82 ms): adverts 160-645 ms apart at advert_int 0.1 and the backup took
// over. One read at a time leaves the Ps of the scheduling headroom
// (vrrp.ensureHeadroom) to the loop. Writes (push, rollback, cluster
// changes) are not held: they are rare and some wait on the cluster.
const maxReads = 1

// readWriteLimit bounds writing one read's answer (an 18 MB scrape takes
// well under a second on the unix socket).
const readWriteLimit = 30 * time.Second

// NewServer returns a server for b; log may be nil.
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{b: b, log: log, mux: http.NewServeMux(), reads: make(chan struct{}, maxReads)}
	s.routes()
	return s
}

// Handler returns the HTTP handler (for tests and custom listeners): it
// identifies and logs callers as the server's own listeners do.
func (s *Server) Handler() http.Handler { return s.guard(s.mux) }

// Handle serves h at pattern (net/http.ServeMux syntax, e.g.
// "GET /metrics") on every listener of s, so extra endpoints share the
// API's access control: the root-only socket, or TCP with mutual TLS. It
// must be called before serving; a pattern that clashes with a route of
// the API is an error.
func (s *Server) Handle(pattern string, h http.Handler) (err error) {
	if h == nil {
		return fmt.Errorf("API route %q: no handler", pattern)
	}
	// ServeMux panics on a bad or conflicting pattern; report it instead.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("API route %q: %v", pattern, r)
		}
	}()
	s.mux.Handle(pattern, h)
	return nil
}

// ServeUnix listens on a unix socket at path, readable and writable by root
// only (mode 0600; its directory is created 0755 if missing), and serves in
// the background. A stale socket file is replaced; a live one (another
// daemon answering) is an error.
func (s *Server) ServeUnix(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create API socket directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("API socket %s is in use by another daemon", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale API socket: %w", err)
		}
	}
	// Create the socket with no permissions for group and others from the
	// start, so there is no window where it is open to them.
	ln, err := listenUnixPrivate(path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("chmod API socket: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, 0); err != nil {
			ln.Close()
			return fmt.Errorf("chown API socket: %w", err)
		}
	}
	s.mu.Lock()
	s.paths = append(s.paths, path)
	s.mu.Unlock()
	s.serve(ln)
	return nil
}

// ServeTLS listens on TCP at addr with mutual TLS: conf must require and
// verify client certificates (ClientAuth RequireAndVerifyClientCert), else
// nothing is served.
func (s *Server) ServeTLS(addr string, conf *tls.Config) (net.Addr, error) {
	if conf == nil || conf.ClientAuth != tls.RequireAndVerifyClientCert || conf.ClientCAs == nil {
		return nil, errors.New("TCP API needs mutual TLS (client certificates required and a client CA)")
	}
	ln, err := tls.Listen("tcp", addr, conf)
	if err != nil {
		return nil, fmt.Errorf("listen for API on %s: %w", addr, err)
	}
	s.serve(ln)
	return ln.Addr(), nil
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: s.guard(s.mux), ReadHeaderTimeout: 10 * time.Second, ConnContext: connContext}
	s.mu.Lock()
	s.srvs = append(s.srvs, srv)
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// Close stops every listener and removes the unix sockets.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range s.srvs {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range s.paths {
		os.Remove(p)
	}
	s.srvs, s.paths = nil, nil
	return errors.Join(errs...)
}

func (s *Server) routes() {
	get := func(path string, h func(r *http.Request) (any, error)) {
		s.mux.HandleFunc("GET "+path, s.wrap(maxSmallBody, h))
	}
	post := func(path string, h func(r *http.Request) (any, error)) {
		limit := int64(maxSmallBody)
		if path == "/v1/config/push" || path == "/v1/config/validate" || path == "/v1/config/plan" {
			limit = maxBody
		}
		s.mux.HandleFunc("POST "+path, s.wrap(limit, h))
	}
	get("/v1/status", s.status)
	get("/v1/vrrp", func(r *http.Request) (any, error) { return nonNil(s.b.Instances(r.Context())) })
	get("/v1/ipvs", func(r *http.Request) (any, error) { return nonNil(s.b.VirtualServers(r.Context())) })
	get("/v1/checks", func(r *http.Request) (any, error) { return nonNil(s.b.Checks(r.Context())) })
	post("/v1/config/validate", func(r *http.Request) (any, error) {
		var req ValidateRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.b.ConfigValidate(r.Context(), req)
	})
	post("/v1/config/push", func(r *http.Request) (any, error) {
		var req PushRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.b.ConfigPush(r.Context(), req)
	})
	post("/v1/config/plan", s.plan)
	get("/v1/config", func(r *http.Request) (any, error) { return s.b.ConfigShow(r.Context()) })
	get("/v1/config/history", func(r *http.Request) (any, error) { return nonNil(s.b.ConfigHistory(r.Context())) })
	get("/v1/config/applied", func(r *http.Request) (any, error) {
		v, err := strconv.ParseUint(r.URL.Query().Get("version"), 10, 64)
		if err != nil {
			return nil, Errorf(CodeBadRequest, "version: %v", err)
		}
		return s.b.ConfigApplied(r.Context(), v)
	})
	post("/v1/config/rollback", func(r *http.Request) (any, error) {
		var req RollbackRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return s.b.ConfigRollback(r.Context(), req)
	})
	post("/v1/cluster/init", func(r *http.Request) (any, error) { return ok(s.b.ClusterInit(r.Context())) })
	post("/v1/cluster/join", func(r *http.Request) (any, error) {
		var req JoinRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if req.Addr == "" {
			return nil, Errorf(CodeBadRequest, "join needs an address")
		}
		return ok(s.b.ClusterJoin(r.Context(), req.Addr))
	})
	get("/v1/cluster/members", func(r *http.Request) (any, error) { return nonNil(s.b.ClusterMembers(r.Context())) })
	post("/v1/cluster/remove", func(r *http.Request) (any, error) {
		var req RemoveRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if req.Node == "" {
			return nil, Errorf(CodeBadRequest, "remove needs a node name")
		}
		return ok(s.b.ClusterRemove(r.Context(), req.Node))
	})
	get("/v1/cluster/audit", func(r *http.Request) (any, error) { return nonNil(s.b.Audit(r.Context())) })
}

// nonNil turns a nil slice into an empty one, so JSON shows [] not null.
func nonNil[T any](v []T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []T{}
	}
	return v, nil
}

func ok(err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return map[string]bool{"ok": true}, nil
}

func (s *Server) status(r *http.Request) (any, error) {
	ctx := r.Context()
	cs, err := s.b.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	st := Status{Node: cs.Node, Raft: cs.Raft, Config: cs.Config, Members: cs.Members, Health: cs.Health, Security: cs.Security}
	if st.Instances, err = s.b.Instances(ctx); err != nil {
		return nil, err
	}
	if st.VirtualServers, err = s.b.VirtualServers(ctx); err != nil {
		return nil, err
	}
	v, aerr := s.b.Running(ctx)
	st.Config.Running = v
	if aerr != nil {
		st.Config.LocalError = aerr.Error()
	}
	if r, ok := s.b.(ReloadReporter); ok {
		st.Config.LastReload = r.LastReload(ctx)
	}
	if st.Members == nil {
		st.Members = []Member{}
	}
	if st.Instances == nil {
		st.Instances = []Instance{}
	}
	if st.VirtualServers == nil {
		st.VirtualServers = []VirtualServer{}
	}
	if st.Config.Applied == nil {
		st.Config.Applied = []Applied{}
	}
	return st, nil
}

// decode reads exactly one JSON object of v's type from the body (bounded
// by wrap's http.MaxBytesReader): oversize, truncated, mistyped, unknown
// fields, nesting beyond encoding/json's depth limit and trailing data are
// each refused with what was wrong.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One object, nothing after it.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errTrailing
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return Errorf(CodeTooLarge, "request body is over the %d-byte limit", mbe.Limit)
	case errors.Is(err, io.EOF):
		return Errorf(CodeBadRequest, "empty request body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeBadRequest, "request body is truncated JSON")
	case errors.Is(err, errTrailing):
		return Errorf(CodeBadRequest, "request body has data after its JSON object")
	}
	return Errorf(CodeBadRequest, "decode request body: %v", err)
}

var errTrailing = errors.New("trailing data")

type errorBody struct {
	Error *Error `json:"error"`
}

func (s *Server) wrap(limit int64, h func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		v, err := h(r)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				ae = &Error{Code: CodeFailed, Message: err.Error()}
			}
			if ae.Code == CodeBadRequest || ae.Code == CodeTooLarge {
				// Whatever else the client sends on this connection is not
				// worth reading.
				w.Header().Set("Connection", "close")
			}
			w.WriteHeader(httpStatus(ae.Code))
			_ = json.NewEncoder(w).Encode(errorBody{ae})
			s.log.Debug("API request failed", "method", r.Method, "path", r.URL.Path, "code", ae.Code, "err", ae.Message)
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			s.log.Debug("API reply failed", "path", r.URL.Path, "err", err)
		}
	}
}

func httpStatus(code string) int {
	switch code {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeInvalid:
		return http.StatusUnprocessableEntity
	case CodeNotFound:
		return http.StatusNotFound
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeForbidden:
		return http.StatusForbidden
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusInternalServerError
}

// connContext records the unix socket peer's credentials for the
// connection's requests (TLS clients are identified per request, once the
// handshake is done).
func connContext(ctx context.Context, c net.Conn) context.Context {
	if uc, ok := c.(*net.UnixConn); ok {
		cl, err := unixCaller(uc)
		return context.WithValue(ctx, connCallerKey{}, connCaller{cl, err})
	}
	return ctx
}

// identify returns who made r.
func identify(r *http.Request) (Caller, error) {
	if cc, ok := r.Context().Value(connCallerKey{}).(connCaller); ok {
		return cc.c, cc.err
	}
	if r.TLS != nil {
		if len(r.TLS.PeerCertificates) == 0 {
			return Caller{}, errors.New("TLS client without a certificate")
		}
		return Caller{Transport: "tls", Subject: r.TLS.PeerCertificates[0].Subject.CommonName, Addr: r.RemoteAddr}, nil
	}
	return Caller{Addr: r.RemoteAddr}, nil
}

// guard identifies the caller of every request (every route, /metrics
// included), refuses a socket peer that is neither root nor the daemon's
// own user (the socket is 0600 already; this holds even if someone loosens
// it), and logs each request with who made it: changes at Info, as the
// audit trail in the log, reads at Debug.
func (s *Server) guard(next http.Handler) http.Handler {
	euid := os.Geteuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := identify(r)
		if err == nil && c.Transport == "unix" && c.UID != 0 && c.UID != euid {
			err = fmt.Errorf("uid %d may not use the API (root, or uid %d that runs hakeepd, only)", c.UID, euid)
		}
		if err != nil {
			s.log.Warn("API request refused", "method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(errorBody{&Error{Code: CodeForbidden, Message: err.Error()}})
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			select {
			case s.reads <- struct{}{}:
				defer func() { <-s.reads }()
			case <-r.Context().Done():
				return // the caller left while waiting its turn
			}
			// A caller that stops reading must not keep the turn. The
			// deadline is the connection's: cleared for its next request.
			rc := http.NewResponseController(w)
			_ = rc.SetWriteDeadline(time.Now().Add(readWriteLimit))
			defer rc.SetWriteDeadline(time.Time{})
		}
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(WithCaller(r.Context(), c)))
		level := slog.LevelDebug
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			level = slog.LevelInfo
		}
		s.log.Log(r.Context(), level, "audit: API request", "method", r.Method, "path", r.URL.Path, "caller", c.String(), "status", rec.code)
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
