// Package labtest adapts the lab harness to Go tests: it skips without
// root or without the needed programs, names labs uniquely, closes them at
// cleanup and prints the daemons' logs when a test fails.
package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"hakeep/internal/lab"
)

var seq atomic.Int32

// New builds a lab for t (skipping when not root or when a program in need
// is missing) and removes it at cleanup. On failure the tail of every log
// in the lab is printed.
func New(t testing.TB, hosts int, opts lab.Options, need ...string) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	for _, prog := range append([]string{"ip"}, need...) {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("needs %s (Debian package; see deploy/test-deps.txt): %v", prog, err)
		}
	}
	// Labs of test processes killed before their cleanup ran go first.
	if err := lab.RemoveOrphans("hkt"); err != nil {
		t.Logf("remove orphaned labs: %v", err)
	}
	prefix := fmt.Sprintf("hkt%d-%d-", os.Getpid(), seq.Add(1))
	l, err := lab.New(prefix, hosts, opts)
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, l.Dir)
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}

func dumpLogs(t testing.TB, dir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s (last %d lines)\n%s", strings.TrimPrefix(f, dir+"/"), len(lines), strings.Join(lines, "\n"))
	}
}
