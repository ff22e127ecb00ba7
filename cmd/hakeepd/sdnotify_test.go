package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
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
