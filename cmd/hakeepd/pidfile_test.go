package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestPidFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "hakeepd.pid")
	if err := writePidFile(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("pid file holds %q", data)
	}
	removePidFile(path)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("pid file not removed: %v", err)
	}

	// A live process (our parent) holds it: refuse.
	os.WriteFile(path, []byte(strconv.Itoa(os.Getppid())), 0o644)
	if err := writePidFile(path); !errors.Is(err, errAlreadyRunning) {
		t.Fatalf("err = %v, want errAlreadyRunning", err)
	}
	// A dead process left it: replace.
	os.WriteFile(path, []byte("999999999"), 0o644)
	if err := writePidFile(path); err != nil {
		t.Fatalf("stale pid file not replaced: %v", err)
	}
}
