package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"hakeep/api"
)

// unixGet fetches path from the API server listening on the unix socket.
func unixGet(t *testing.T, sock, path string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, "http://hakeepd"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHandleExtraRoute(t *testing.T) {
	s := api.NewServer(fake(), nil)
	if err := s.Handle("GET /extra", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "extra ok\n")
	})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pattern string
		h       http.Handler
		want    string
	}{
		{"GET /v1/status", http.NotFoundHandler(), "conflicts"},
		{"GET /extra", http.NotFoundHandler(), "conflicts"},
		{"BAD PATTERN WITH SPACES", http.NotFoundHandler(), "API route"},
		{"GET /nil", nil, "no handler"},
	} {
		if err := s.Handle(tc.pattern, tc.h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Handle(%q) = %v, want error containing %q", tc.pattern, err, tc.want)
		}
	}
	path, _ := serveUnix(t, fake())
	if code, _ := unixGet(t, path, "/extra"); code != http.StatusNotFound {
		t.Fatalf("route of another server served: %d", code)
	}
	sock := t.TempDir() + "/x.sock"
	if err := s.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if code, body := unixGet(t, sock, "/extra"); code != http.StatusOK || body != "extra ok\n" {
		t.Fatalf("GET /extra = %d %q", code, body)
	}
	// The API's own routes still work next to the extra one.
	if code, body := unixGet(t, sock, "/v1/status"); code != http.StatusOK || !strings.Contains(body, `"node": "d1"`) {
		t.Fatalf("GET /v1/status = %d %q", code, body)
	}
}
