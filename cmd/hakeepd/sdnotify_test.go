package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
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
