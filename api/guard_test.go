package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

type noLocal struct{}

func (noLocal) Instances(context.Context) ([]Instance, error)           { return nil, nil }
func (noLocal) VirtualServers(context.Context) ([]VirtualServer, error) { return nil, nil }
func (noLocal) Checks(context.Context) ([]Check, error)                 { return nil, nil }
func (noLocal) Running(context.Context) (uint64, error)                 { return 0, nil }

// TestSocketPeerRefused: a socket peer that is neither root nor the
// daemon's user is refused even if the socket's mode let it connect. The
// uid comes from the kernel (SO_PEERCRED, TestCallerAudit); here the
// connection's recorded caller stands in for other users.
func TestSocketPeerRefused(t *testing.T) {
	h := NewServer(Compose(noLocal{}, Standalone("d1")), nil).Handler()
	tests := []struct {
		name string
		cc   *connCaller
		want int
	}{
		{"root", &connCaller{c: Caller{Transport: "unix", UID: 0}}, http.StatusOK},
		{"the daemon's user", &connCaller{c: Caller{Transport: "unix", UID: os.Geteuid()}}, http.StatusOK},
		{"another user", &connCaller{c: Caller{Transport: "unix", UID: 4242}}, http.StatusForbidden},
		{"credentials unreadable", &connCaller{err: os.ErrPermission}, http.StatusForbidden},
		{"embedder's own listener", nil, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
			if tc.cc != nil {
				req = req.WithContext(context.WithValue(req.Context(), connCallerKey{}, *tc.cc))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("HTTP %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if tc.want == http.StatusForbidden && (!strings.Contains(rec.Body.String(), `"code":"forbidden"`) || rec.Header().Get("Connection") != "close") {
				t.Fatalf("refusal = %s %v", rec.Body, rec.Header())
			}
		})
	}
}
