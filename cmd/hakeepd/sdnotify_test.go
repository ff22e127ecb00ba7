package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestSdNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}

	t.Setenv("WATCHDOG_USEC", "20000") // 20 ms: pet every 10 ms
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go runWatchdog(ctx, func() bool { return true })
	n, err = conn.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "WATCHDOG=1") {
		t.Fatalf("watchdog: got %q, %v", buf[:n], err)
	}
}

// The pets stop while the daemon's loops do not answer (answers() asks
// director.Alive, which fails while the director's loop is wedged: see
// director.TestAliveSeesAWedgedLoop), and resume when they do: systemd
// restarts a wedged hakeepd.
func TestWatchdogStopsWhileNotAlive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000") // pet every 10 ms
	var alive atomic.Bool
	alive.Store(true)
	asked := make(chan struct{}, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go runWatchdog(ctx, func() bool { asked <- struct{}{}; return alive.Load() })
	buf := make([]byte, 64)
	read := func(d time.Duration) (string, error) {
		conn.SetReadDeadline(time.Now().Add(d))
		n, err := conn.Read(buf)
		return string(buf[:n]), err
	}
	if got, err := read(5 * time.Second); err != nil || got != "WATCHDOG=1" {
		t.Fatalf("while alive: got %q, %v", got, err)
	}
	alive.Store(false)
	// Drain what was sent before the switch: after the watchdog asked
	// twice more, nothing may arrive.
	for range 2 {
		<-asked
	}
	for len(asked) > 0 {
		<-asked
	}
	<-asked
	for {
		if _, err := read(0); err != nil {
			break
		}
	}
	for range 5 {
		<-asked
	}
	if got, err := read(50 * time.Millisecond); err == nil {
		t.Fatalf("pet %q sent while not alive", got)
	}
	alive.Store(true)
	if got, err := read(5 * time.Second); err != nil || got != "WATCHDOG=1" {
		t.Fatalf("after recovering: got %q, %v", got, err)
	}
}

func TestSdNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if watchdogInterval() != 0 {
		t.Fatal("watchdog without WATCHDOG_USEC")
	}
}

// TestMain lets a test run this package's main as a child process
// (HAKEEPD_TEST_RUN holds its arguments as JSON), so the daemon's signals
// and notifications are its own.
func TestMain(m *testing.M) {
	if a := os.Getenv("HAKEEPD_TEST_RUN"); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			panic(err)
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// A SIGHUP reload is RELOADING=1 with MONOTONIC_USEC, then READY=1 with
// the outcome: exactly two messages for an applied file and for a refused
// one, read from a fake systemd notify socket.
func TestReloadNotifySequence(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	good := "global_defs {\n  router_id t1\n}\n"
	if err := os.WriteFile(conf, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	args, _ := json.Marshal([]string{"-n", "-l", "-G", "-P", "-f", conf, "-p", filepath.Join(dir, "pid"),
		"--api", filepath.Join(dir, "api.sock"), "--state-dir", ""})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HAKEEPD_TEST_RUN="+string(args), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=")
	var logs lockedBuffer // read while the child writes
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon output:\n%s", logs.String())
		}
	}()
	buf := make([]byte, 4096)
	read := func(d time.Duration) (string, error) {
		conn.SetReadDeadline(time.Now().Add(d))
		n, err := conn.Read(buf)
		return string(buf[:n]), err
	}
	// Start: READY=1, perhaps a STATUS line; then nothing more.
	if got, err := read(20 * time.Second); err != nil || got != "READY=1" {
		t.Fatalf("start: %q, %v", got, err)
	}
	for {
		if _, err := read(300 * time.Millisecond); err != nil {
			break
		}
	}
	reloadOnce := func(text string) []string {
		t.Helper()
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		before := monotonicUsec()
		cmd.Process.Signal(syscall.SIGHUP)
		var msgs []string
		for len(msgs) < 2 {
			m, err := read(20 * time.Second)
			if err != nil {
				t.Fatalf("after SIGHUP: %v (got %q)", err, msgs)
			}
			msgs = append(msgs, m)
		}
		after := monotonicUsec()
		if m, err := read(300 * time.Millisecond); err == nil {
			t.Errorf("a third message after a reload: %q", m)
		}
		// MONOTONIC_USEC is systemd's clock, read when the reload began.
		var usec uint64
		if _, err := fmt.Sscanf(msgs[0], "RELOADING=1\nMONOTONIC_USEC=%d\n", &usec); err != nil || usec < before || usec > after {
			t.Errorf("RELOADING message %q: MONOTONIC_USEC %d not in [%d, %d] (%v)", msgs[0], usec, before, after, err)
		}
		return msgs
	}
	tests := []struct {
		name  string
		text  string
		ready *regexp.Regexp
	}{
		{"applied", good, regexp.MustCompile(`^READY=1\nSTATUS=configuration applied \(SIGHUP at [0-9: -]+\)\nERRNO=0$`)},
		{"refused", "global_defs {\n  router_id t1\n", // cut off: a block left open
			regexp.MustCompile(`^READY=1\nSTATUS=last reload \(SIGHUP at [0-9: -]+\) refused, running configuration kept: configuration refused: .*k\.conf:1: [^\n]*\nERRNO=22$`)},
		{"applied again clears the error", good, regexp.MustCompile(`^READY=1\nSTATUS=configuration applied .*\nERRNO=0$`)},
	}
	for _, tt := range tests {
		msgs := reloadOnce(tt.text)
		if !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading the configuration$`).MatchString(msgs[0]) {
			t.Errorf("%s: first message %q", tt.name, msgs[0])
		}
		if !tt.ready.MatchString(msgs[1]) {
			t.Errorf("%s: second message %q", tt.name, msgs[1])
		}
	}
	// keepalived's JSON and STATS_CLEAR signals (--signum) are handled,
	// not fatal as a realtime signal's default action would be.
	for _, sig := range []syscall.Signal{sigJSON, sigStatsClear} {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	// Still there: it answers one more reload (a dead one would not).
	if msgs := reloadOnce(good); !tests[0].ready.MatchString(msgs[1]) {
		t.Errorf("after signals 36 and 63: %q", msgs)
	}
	if !strings.Contains(logs.String(), "kind=state") || !strings.Contains(logs.String(), "STATS_CLEAR") {
		t.Errorf("no state dump or STATS_CLEAR line in the log:\n%s", logs.String())
	}
}

func TestReadyAfterReload(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		err  error
		want string
	}{
		{nil, "READY=1\nSTATUS=configuration applied (SIGHUP at 2026-12-02 10:00:00)\nERRNO=0"},
		{fmt.Errorf("%w: a.conf:3: x\na.conf:9: y", errRefused),
			"READY=1\nSTATUS=last reload (SIGHUP at 2026-12-02 10:00:00) refused, running configuration kept: configuration refused: a.conf:3: x; a.conf:9: y\nERRNO=22"},
		{errors.New("apply timed out"),
			"READY=1\nSTATUS=last reload (SIGHUP at 2026-12-02 10:00:00) refused, running configuration kept: apply timed out\nERRNO=5"},
	}
	for _, tt := range tests {
		if got := readyAfterReload(tt.err, at); got != tt.want {
			t.Errorf("%v:\n got %q\nwant %q", tt.err, got, tt.want)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe to read while exec's copier writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
