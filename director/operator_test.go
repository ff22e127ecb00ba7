package director

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hakeep/lvs"
)

// TestStartupShutdownScripts: startup_script has finished before any
// subsystem programs anything (a slow one is cut at its timeout and the
// daemon goes on); shutdown_script runs once everything has stopped.
func TestStartupShutdownScripts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		startup   string // the startup script's body after the marker line
		timeout   int
		wantStart string
	}{
		{"quick", "", 0, "start\n"},
		// Killed at the timeout: the marker it wrote first stays, the
		// line after the sleep never comes.
		{"cut at its timeout", "sleep 30; echo late >> $OUT\n", 1, "start\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			start := filepath.Join(dir, "start.sh")
			stop := filepath.Join(dir, "stop.sh")
			write := func(p, body string) {
				if err := os.WriteFile(p, []byte("#!/bin/sh\nOUT="+out+"\n"+body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			write(start, "echo start >> $OUT\n"+tc.startup)
			write(stop, "echo stop >> $OUT\n")
			text := fmt.Sprintf("global_defs {\n script_user root\n startup_script %s\n shutdown_script %s\n", start, stop)
			if tc.timeout > 0 {
				text += fmt.Sprintf(" startup_script_timeout %d\n", tc.timeout)
			}
			text += "}\n" + withServer
			mem := lvs.NewMemory()
			d, err := New(Options{ConfigID: "t", Checks: true, Log: quietLog(), OpenIPVS: func() (lvs.Client, error) { return mem, nil }}, parseConf(t, text))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			began := time.Now()
			go func() { done <- d.Run(ctx) }()
			waitService(t, mem, "10.0.0.100", true)
			if b, _ := os.ReadFile(out); string(b) != tc.wantStart {
				t.Fatalf("when the service appeared the scripts had written %q, want %q", b, tc.wantStart)
			}
			if tc.timeout > 0 && time.Since(began) > 10*time.Second {
				t.Fatalf("startup_script_timeout %d s not enforced: %v", tc.timeout, time.Since(began))
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
			if b, _ := os.ReadFile(out); string(b) != tc.wantStart+"stop\n" {
				t.Fatalf("after stop the scripts had written %q, want %q", b, tc.wantStart+"stop\n")
			}
		})
	}
}

// TestDirectorLVSNotifyFifo: the director opens notify_fifo and
// lvs_notify_fifo from global_defs (creating them) and the checks' lines
// reach both; Run removes the fifos it created when it returns.
func TestDirectorLVSNotifyFifo(t *testing.T) {
	dir := t.TempDir()
	all, lvsPath := filepath.Join(dir, "all.fifo"), filepath.Join(dir, "lvs.fifo")
	// A port nothing listens on: the checker goes down at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	text := fmt.Sprintf("global_defs {\n notify_fifo %s\n lvs_notify_fifo %s\n}\n", all, lvsPath) +
		strings.Replace(withServer, "  weight 1\n", fmt.Sprintf("  weight 1\n  TCP_CHECK {\n   connect_ip 127.0.0.1\n   connect_port %d\n   connect_timeout 1\n   delay_loop 1\n   retry 0\n   warmup 0\n  }\n", port), 1)
	mem := lvs.NewMemory()
	d, err := New(Options{ConfigID: "t", Checks: true, Log: quietLog(), OpenIPVS: func() (lvs.Client, error) { return mem, nil }}, parseConf(t, text))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		for _, p := range []string{all, lvsPath} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s left behind", p)
			}
		}
	}()
	for _, p := range []string{all, lvsPath} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not created", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, p := range []string{all, lvsPath} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		deadline := time.After(15 * time.Second)
		var seen []string
	read:
		for {
			select {
			case l := <-lines:
				seen = append(seen, l)
				if len(seen) == 1 && l != "RS [10.0.1.1]:tcp:80 [10.0.0.100]:tcp:80 DOWN" {
					t.Fatalf("%s: first line %q", p, l)
				}
				if l == "VS [10.0.0.100]:tcp:80 DOWN" {
					break read
				}
			case <-deadline:
				t.Fatalf("%s: lines %q, want VS ... DOWN", p, seen)
			}
		}
	}
}
