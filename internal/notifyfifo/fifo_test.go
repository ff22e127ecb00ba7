package notifyfifo

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hakeep/script"
)

// TestNoReaderNeverBlocks: with nobody reading, open and writes return at
// once; once the pipe is full, lines are dropped and counted.
func TestNoReaderNeverBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.fifo")
	f, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := strings.Repeat("x", 99) + "\n"
	start := time.Now()
	const n = 2000 // 200 KB: more than a pipe holds (64 KiB by default)
	for range n {
		f.WriteLine(line)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("writes took %v", d)
	}
	if f.Dropped() == 0 || f.Written()+f.Dropped() != n {
		t.Fatalf("written %d dropped %d of %d", f.Written(), f.Dropped(), n)
	}
	// The pipe holds whole lines only (each write is atomic).
	if f.Written()*uint64(len(line)) > 1<<20 {
		t.Fatalf("written %d lines: more than a pipe holds", f.Written())
	}
}

// TestCreateReadUnlink: a missing fifo is created (0644), a reader gets the
// lines in order, Close removes it; an existing fifo is kept.
func TestCreateReadUnlink(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		existing bool
	}{{"created", false}, {"existing", true}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".fifo")
			if tc.existing {
				if err := syscall.Mkfifo(path, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Open(Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
				t.Fatalf("not a fifo: %v %v", st, err)
			}
			// keepalived's mode 0644, less the umask: never writable by others.
			if !tc.existing && (st.Mode().Perm()&0o600 != 0o600 || st.Mode().Perm()&0o022 != 0) {
				t.Fatalf("created with mode %v", st.Mode())
			}
			r, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			f.WriteLine("INSTANCE \"VI_1\" MASTER 100\n")
			f.WriteLine("GROUP \"G1\" BACKUP 0\n")
			sc := bufio.NewScanner(r)
			var got []string
			for len(got) < 2 && sc.Scan() {
				got = append(got, sc.Text())
			}
			if strings.Join(got, "|") != `INSTANCE "VI_1" MASTER 100|GROUP "G1" BACKUP 0` {
				t.Fatalf("read %q", got)
			}
			f.Close()
			_, err = os.Stat(path)
			if tc.existing != (err == nil) {
				t.Fatalf("after Close: existing=%v stat err %v", tc.existing, err)
			}
			f.WriteLine("late\n") // after Close: dropped, no panic
			if f.Dropped() != 1 {
				t.Fatalf("dropped %d", f.Dropped())
			}
		})
	}
}

// TestNotAFifo: a regular file at the path is refused, not written to.
func TestNotAFifo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Path: path}); err == nil || !strings.Contains(err.Error(), "not a fifo") {
		t.Fatalf("err %v", err)
	}
}

// TestScriptGetsPath: notify_fifo_script runs with the fifo's path as its
// argument and reads the lines; Close stops it.
func TestScriptGetsPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.fifo")
	out := filepath.Join(dir, "out")
	sh := filepath.Join(dir, "reader.sh")
	// The reader copies what it reads to out, then waits to be stopped.
	if err := os.WriteFile(sh, []byte("#!/bin/sh\necho \"$1\" > "+out+".arg\nwhile read -r l; do echo \"$l\" >> "+out+"; done < \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Open(Options{Path: path, Script: sh, Runner: &script.Runner{}})
	if err != nil {
		t.Fatal(err)
	}
	f.WriteLine("VS [10.0.0.1]:tcp:80 UP\n")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		a, _ := os.ReadFile(out + ".arg")
		if string(b) == "VS [10.0.0.1]:tcp:80 UP\n" && string(a) == path+"\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("script read %q with arg %q", b, a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { f.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the script")
	}
}
