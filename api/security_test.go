package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/internal/pki"
	"hakeep/internal/testpki"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCallerAudit: the unix socket's caller is who the kernel says
// (SO_PEERCRED), a TCP caller its client certificate; changes are logged
// with them and recorded in the audit trail, whatever the client claims.
func TestCallerAudit(t *testing.T) {
	var logs logBuffer
	f := fake()
	s := api.NewServer(f, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	sock := t.TempDir() + "/api.sock"
	if err := s.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ca := testpki.New(t)
	srv := ca.Issue(t, "d1")
	pair, err := tls.LoadX509KeyPair(srv.Cert, srv.Key)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.ServeTLS("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	unix := api.NewClient(sock)
	alice := api.NewTLSClient(addr.String(), ca.ClientTLS(t, ca.IssueReq(t, pki.CertRequest{Name: "alice", Client: true})))

	if _, err := unix.ConfigPush(ctx(t), api.PushRequest{Name: "a.conf", Text: "a", PushID: "p1", PushedBy: "mallory@elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ConfigRollback(ctx(t), api.RollbackRequest{Version: 1, PushID: "p2", PushedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.ClusterRemove(ctx(t), "d2"); err != nil {
		t.Fatal(err)
	}
	events, err := unix.Audit(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	me := fmt.Sprintf("uid %d", os.Geteuid())
	want := []struct{ action, caller string }{
		{"push", fmt.Sprintf("pid %d via the unix socket on d1", os.Getpid())},
		{"rollback", `client certificate "alice" from 127.0.0.1:`},
		{"remove", `client certificate "alice"`},
	}
	if len(events) != len(want) {
		t.Fatalf("audit = %+v", events)
	}
	for i, w := range want {
		if events[i].Action != w.action || !strings.Contains(events[i].Caller, w.caller) {
			t.Errorf("event %d = %+v, want %s by %q", i, events[i], w.action, w.caller)
		}
	}
	if !strings.HasPrefix(events[0].Caller, me) || events[0].PushedBy != "mallory@elsewhere" {
		t.Errorf("push recorded as %+v: the caller is what the kernel says, pushed_by what the client says", events[0])
	}
	log := logs.String()
	for _, line := range []string{
		`level=INFO msg="audit: API request" method=POST path=/v1/config/push caller="` + me,
		`level=INFO msg="audit: API request" method=POST path=/v1/config/rollback caller="client certificate \"alice\"`,
		`level=INFO msg="audit: API request" method=POST path=/v1/cluster/remove caller="client certificate \"alice\"`,
		`level=DEBUG msg="audit: API request" method=GET path=/v1/cluster/audit`,
	} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %s\n%s", line, log)
		}
	}
}

// repeat is an endless stream of one byte.
type repeat byte

func (r repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestBodyLimits: every refused body says why, closes the connection and
// reaches nothing behind the API.
func TestBodyLimits(t *testing.T) {
	deep := `{"node":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}"
	big := func(n int64) io.Reader {
		return io.MultiReader(strings.NewReader(`{"name":"x","text":"`), io.LimitReader(repeat('a'), n))
	}
	tests := []struct {
		name string
		path string
		body io.Reader
		code int
		want string
	}{
		{"push over 32 MiB", "/v1/config/push", big(33 << 20), 413, "over the 33554432-byte limit"},
		{"remove over 64 KiB", "/v1/cluster/remove", big(100 << 10), 413, "over the 65536-byte limit"},
		{"empty", "/v1/cluster/remove", strings.NewReader(""), 400, "empty request body"},
		{"truncated", "/v1/cluster/remove", strings.NewReader(`{"node":"d2"`), 400, "truncated JSON"},
		{"wrong type", "/v1/cluster/remove", strings.NewReader(`{"node":5}`), 400, "cannot unmarshal number"},
		{"deep nesting", "/v1/cluster/remove", strings.NewReader(deep), 400, "exceeded max depth"},
		{"two objects", "/v1/cluster/remove", strings.NewReader(`{"node":"d2"}{"node":"d1"}`), 400, "data after its JSON object"},
		{"unknown field", "/v1/cluster/remove", strings.NewReader(`{"nodes":["d2"]}`), 400, "unknown field"},
		{"not an object", "/v1/config/rollback", strings.NewReader(`[1]`), 400, "cannot unmarshal array"},
		{"rollback version negative", "/v1/config/rollback", strings.NewReader(`{"version":-1}`), 400, "cannot unmarshal number -1"},
	}
	f := fake()
	h := api.NewServer(f, nil).Handler()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, tc.path, tc.body))
			var eb struct{ Error api.Error }
			if rec.Code != tc.code || json.Unmarshal(rec.Body.Bytes(), &eb) != nil || !strings.Contains(eb.Error.Message, tc.want) {
				t.Fatalf("HTTP %d %s, want %d and %q", rec.Code, rec.Body, tc.code, tc.want)
			}
			if rec.Header().Get("Connection") != "close" {
				t.Fatalf("connection not closed after a refused body")
			}
		})
	}
	if calls := f.CallsCopy(); len(calls) != 0 {
		t.Fatalf("refused bodies reached the backend: %v", calls)
	}

	// On a real connection: the reply, then the server hangs up.
	path, _ := serveUnix(t, fake())
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	body := `{"node":`
	fmt.Fprintf(c, "POST /v1/cluster/remove HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !resp.Close || !strings.Contains(string(rest), "truncated JSON") {
		t.Fatalf("HTTP %d close=%v %s", resp.StatusCode, resp.Close, rest)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("connection still open after a refused body (%d, %v)", n, err)
	}
}

// FuzzAPIBody posts arbitrary bodies to every route that takes one: the
// server answers each with a JSON reply (an error saying what is wrong, or
// a result) and never panics.
func FuzzAPIBody(f *testing.F) {
	routes := []string{"/v1/config/validate", "/v1/config/push", "/v1/config/rollback", "/v1/cluster/join", "/v1/cluster/remove", "/v1/cluster/init"}
	f.Add(uint8(1), []byte(`{"name":"a.conf","text":"vrrp_instance V {}","push_id":"p"}`))
	f.Add(uint8(2), []byte(`{"version":1}`))
	f.Add(uint8(3), []byte(`{"addr":"10.0.0.1:7401"}`))
	f.Add(uint8(4), []byte(`{"node":"d2"}`))
	f.Add(uint8(4), []byte(`{"node":"d2"`))
	f.Add(uint8(0), []byte(`{"name":[[[[[]]]]]}`))
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		h := api.NewServer(fake(), slog.New(slog.NewTextHandler(io.Discard, nil))).Handler()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, routes[int(route)%len(routes)], bytes.NewReader(body))
		h.ServeHTTP(rec, req.WithContext(context.Background()))
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("HTTP %d with a reply that is not JSON: %q", rec.Code, rec.Body)
		}
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("HTTP %d for a client's body: %s", rec.Code, rec.Body)
		}
	})
}
