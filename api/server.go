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

// maxBody bounds request bodies (a configuration file fits many times).
const maxBody = 32 << 20

// Server serves a Backend over HTTP/JSON.
type Server struct {
	b   Backend
	log *slog.Logger
	mux *http.ServeMux

	mu    sync.Mutex
	srvs  []*http.Server
	paths []string
}

// NewServer returns a server for b; log may be nil.
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{b: b, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

// Handler returns the HTTP handler (for tests and custom listeners).
func (s *Server) Handler() http.Handler { return s.mux }

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
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
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
		s.mux.HandleFunc("GET "+path, s.wrap(h))
	}
	post := func(path string, h func(r *http.Request) (any, error)) {
		s.mux.HandleFunc("POST "+path, s.wrap(h))
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
	st := Status{Node: cs.Node, Raft: cs.Raft, Config: cs.Config, Members: cs.Members, Health: cs.Health}
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

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(CodeBadRequest, "decode request body: %v", err)
	}
	return nil
}

type errorBody struct {
	Error *Error `json:"error"`
}

func (s *Server) wrap(h func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				ae = &Error{Code: CodeFailed, Message: err.Error()}
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
	}
	return http.StatusInternalServerError
}
