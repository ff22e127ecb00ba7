package checks

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

type recAlerter struct {
	mu   sync.Mutex
	msgs []string
}

func (a *recAlerter) Alert(subject, body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.msgs = append(a.msgs, subject+"|"+body)
}

func (a *recAlerter) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.msgs...)
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got []byte
	for time.Now().Before(deadline) {
		got, _ = os.ReadFile(path)
		if strings.TrimSpace(string(got)) == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: %q, want %q", path, got, want)
}

// setState replaces the exit code the check script reads, atomically: a
// plain rewrite can be caught half done (empty file, "exit" with status 0).
func setState(t *testing.T, path, code string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestMiscCheckExitCodesAndNotify(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.WriteFile(state, []byte("0"), 0o644)
	check := filepath.Join(dir, "check.sh")
	writeScript(t, check, "[ \"$1\" = arg1 ] && [ \"$2\" = 'two words' ] || exit 99\nexit $(cat "+state+")\n")
	notify := filepath.Join(dir, "notify.sh")
	writeScript(t, notify, "echo \"$@\" > "+filepath.Join(dir, "notified")+"\n")

	rs := netip.MustParseAddrPort("10.0.0.7:80")
	c := Checker{Kind: KindMisc, Connect: rs, DelayLoop: 100 * time.Millisecond, DelayBeforeRetry: 50 * time.Millisecond,
		Misc: MiscOptions{Path: check + " arg1 'two words'", Timeout: 5 * time.Second, Dynamic: true}}
	spec := Spec{VirtualServer: "vs", VirtualServerName: "[10.0.0.1]:tcp:80", RealServer: rs, Weight: 1,
		NotifyUp: notify + " up 10.0.0.7", NotifyDown: notify + " down 10.0.0.7", SMTPAlert: true, Checkers: []Checker{c}}
	al := &recAlerter{}
	w := newRealWorld(t, []Spec{spec}, Options{Alerter: al, RouterID: "LVS_DEVEL"})
	const vs, rss = "vs", "10.0.0.7:80"

	w.quiet(vs, rss, 2) // exit 0: up, nothing to say

	setState(t, state, "1")
	w.expect(vs, rss, false, "failed with exit status 1")
	waitFile(t, filepath.Join(dir, "notified"), "down 10.0.0.7")
	w.quiet(vs, rss, 2)

	setState(t, state, "12")
	if tr := w.expect(vs, rss, true, "exited 12: weight 10"); tr.Weight != 10 {
		t.Fatalf("weight %d", tr.Weight)
	}
	waitFile(t, filepath.Join(dir, "notified"), "up 10.0.0.7")
	w.quiet(vs, rss, 2)

	setState(t, state, "255")
	if tr := w.expect(vs, rss, true, "weight 253"); tr.Weight != 253 {
		t.Fatalf("weight %d", tr.Weight)
	}
	setState(t, state, "0")
	w.quiet(vs, rss, 2) // exit 0 keeps the weight
	if s := w.m.State()[0]; s.Weight != 253 || !s.Up {
		t.Fatalf("%+v", s)
	}
	msgs := al.all()
	if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "[LVS_DEVEL] Realserver [10.0.0.7]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN|=> MISC CHECK failed on service <=") ||
		!strings.Contains(msgs[1], " - UP|=> MISC CHECK succeed on service <=") {
		t.Fatalf("alerts %q", msgs)
	}
}

func TestMiscCheckStaticExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		code    int
		dynamic bool
		ok      bool
		weight  int
	}{
		{0, false, true, -1}, {1, false, false, -1}, {2, false, false, -1}, {7, false, false, -1},
		{0, true, true, -1}, {1, true, false, -1}, {2, true, true, 0}, {7, true, true, 5},
	} {
		s := filepath.Join(dir, "c"+strconv.Itoa(tc.code)+".sh")
		writeScript(t, s, "exit "+strconv.Itoa(tc.code)+"\n")
		p, err := NewProber(Checker{Kind: KindMisc, DelayLoop: time.Second, Misc: MiscOptions{Path: s, Dynamic: tc.dynamic}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := p.Probe(context.Background())
		if r.OK != tc.ok || r.Weight != tc.weight {
			t.Fatalf("exit %d dynamic %v: %+v", tc.code, tc.dynamic, r)
		}
	}
	p, _ := NewProber(Checker{Kind: KindMisc, DelayLoop: time.Second, Misc: MiscOptions{Path: filepath.Join(dir, "missing")}}, nil)
	if r := p.Probe(context.Background()); r.OK || !strings.Contains(r.Reason, "did not run") {
		t.Fatalf("%+v", r)
	}
}

func TestMiscCheckTimeoutKillsScript(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	s := filepath.Join(dir, "hang.sh")
	// The grandchild must die too: the whole process group is killed.
	writeScript(t, s, "sleep 30 &\necho $! > "+pidFile+"\nwait\n")
	rs := netip.MustParseAddrPort("10.0.0.8:80")
	c := Checker{Kind: KindMisc, Connect: rs, DelayLoop: 100 * time.Millisecond,
		Misc: MiscOptions{Path: s, Timeout: 300 * time.Millisecond}}
	w := newRealWorld(t, []Spec{{VirtualServer: "vs", RealServer: rs, Checkers: []Checker{c}}},
		Options{})
	w.expect("vs", rs.String(), false, "timed out after 300ms (killed)")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.quiet("vs", rs.String(), 1)
}

func TestOmegaNotifiesDownOnStop(t *testing.T) {
	dir := t.TempDir()
	notify := filepath.Join(dir, "notify.sh")
	writeScript(t, notify, "echo \"$@\" >> "+filepath.Join(dir, "notified")+"\n")
	mk := func(rs string, omega bool) Spec {
		s := tcpSpec("vs", rs, 0)
		s.Checkers[0].Kind = KindMisc
		s.Checkers[0].Misc.Path = "/bin/true"
		s.NotifyDown, s.Omega = notify+" down "+rs, omega
		return s
	}
	m := New(Options{})
	if err := m.Start([]Spec{mk("10.0.0.20:80", true), mk("10.0.0.21:80", false)}); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	b, _ := os.ReadFile(filepath.Join(dir, "notified"))
	if strings.TrimSpace(string(b)) != "down 10.0.0.20:80" {
		t.Fatalf("omega notified %q", b)
	}
}
