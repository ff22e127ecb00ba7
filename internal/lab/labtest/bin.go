package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// built is one command's build, done once per test process.
type built struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // command name -> *built

// binPrefix names the directories the builds go to; the pid follows, so
// directories of test processes that died are found and removed.
const binPrefix = "hakeep-bin-"

// Binary returns the path of the project's command name (hakeepd, hactl):
// built from this module (hakeep/cmd/NAME), once per test process, when a
// Go toolchain is at hand, so that a stale copy in PATH is never the one
// tested; else the one in PATH, which is how the vmtest guest gets it
// (vmtest -build ./cmd/NAME; the guest has no toolchain). It skips t when
// there is neither, and fails it when the build fails.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("no go toolchain to build %s and no %s in PATH (in the VM: vmtest -build ./cmd/%s)", name, name, name)
		}
		return p
	}
	v, _ := builds.LoadOrStore(name, &built{})
	b := v.(*built)
	b.once.Do(func() { b.path, b.err = build(name) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// build compiles hakeep/cmd/NAME into this process's binary directory.
func build(name string) (string, error) {
	removeOrphanBinDirs()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", binPrefix, os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	out := filepath.Join(dir, name)
	// The test's working directory is its package's, inside the module.
	if b, err := exec.Command("go", "build", "-o", out, "hakeep/cmd/"+name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, b)
	}
	return out, nil
}

// removeOrphanBinDirs removes the binary directories of test processes
// that no longer run (a test binary has no hook at exit to do it itself).
func removeOrphanBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), binPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}
