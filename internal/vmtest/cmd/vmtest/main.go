// Command vmtest compiles the tests of the given packages (CGO_ENABLED=0
// go test -c) and runs all of them in one boot of a qemu VM with Debian's
// cloud kernel, which has IPVS. It prints the binaries' -test.v output
// followed by go test's "ok"/"FAIL" lines and exits non-zero when any failed.
//
//	go run ./internal/vmtest/cmd/vmtest ./lvs ./test/ipvs
//	go run ./internal/vmtest/cmd/vmtest -run 'Reconcile' -bench . ./lvs
//	go run ./internal/vmtest/cmd/vmtest -build ./cmd/hakeepd ./test/ipvs
//
// -build PKG compiles a command (CGO_ENABLED=0 go build) and puts it on the
// guest's PATH in /usr/local/bin, so tests can run the real binary.
//
// When not root, it prints a SKIP line and exits 0.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hakeep/internal/vmtest"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() { os.Exit(run()) }

func run() int {
	var (
		runRe     = flag.String("run", "", "go test -run pattern")
		bench     = flag.String("bench", "", "go test -bench pattern (benchmarks run only when set)")
		benchtime = flag.String("benchtime", "", "go test -benchtime")
		count     = flag.Int("count", 1, "go test -count")
		short     = flag.Bool("short", false, "go test -short")
		ttimeout  = flag.Duration("timeout", 8*time.Minute, "per test binary timeout (go test -timeout)")
		vmTimeout = flag.Duration("vm-timeout", 0, "whole VM run timeout (default: sum of -timeout, at most 30m)")
		mem       = flag.Int("mem", 2048, "guest memory in MiB")
		cpus      = flag.Int("cpus", 2, "guest vCPUs")
		accel     = flag.String("accel", "auto", "auto, tcg or kvm (kvm only helps with vmx/svm)")
		verbose   = flag.Bool("vmverbose", false, "print the guest console")
		refresh   = flag.Bool("refresh", false, "re-resolve the kernel package")
		bins      multi
		builds    multi
		env       multi
	)
	flag.Var(&bins, "bin", "host executable to copy into the guest at the same path (repeatable), e.g. /usr/sbin/keepalived")
	flag.Var(&builds, "build", "command package to build (CGO_ENABLED=0) into the guest's /usr/local/bin (repeatable), e.g. ./cmd/hakeepd")
	flag.Var(&env, "env", "KEY=VALUE for the guest (repeatable)")
	flag.Parse()
	pkgs := flag.Args()
	if len(pkgs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: vmtest [flags] PACKAGE...")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Printf("--- SKIP: kernel IPVS tests (%s): needs root to boot the qemu VM\n", strings.Join(pkgs, " "))
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := vmtest.EnsureHostPackages(ctx, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		fmt.Printf("--- SKIP: kernel IPVS tests (%s): no qemu-system-x86_64 (package qemu-system-x86)\n", strings.Join(pkgs, " "))
		return 0
	}

	work, err := os.MkdirTemp("", "vmtest-bin.")
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		return 1
	}
	defer os.RemoveAll(work)

	args := []string{"-test.v", fmt.Sprintf("-test.count=%d", *count), "-test.timeout=" + ttimeout.String()}
	if *runRe != "" {
		args = append(args, "-test.run="+*runRe)
	}
	if *bench != "" {
		args = append(args, "-test.bench="+*bench)
	}
	if *benchtime != "" {
		args = append(args, "-test.benchtime="+*benchtime)
	}
	if *short {
		args = append(args, "-test.short")
	}
	var pathBins []string
	for _, pkg := range builds {
		_, ipath, err := listPackage(ctx, pkg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
			return 1
		}
		out := filepath.Join(work, "build", filepath.Base(ipath))
		c := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			fmt.Printf("FAIL\t%s [build failed]\n", ipath)
			return 1
		}
		pathBins = append(pathBins, out)
	}
	var list []vmtest.Binary
	for _, pkg := range pkgs {
		dir, ipath, err := listPackage(ctx, pkg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
			return 1
		}
		out := filepath.Join(work, fmt.Sprintf("%d-%s.test", len(list), filepath.Base(ipath)))
		c := exec.CommandContext(ctx, "go", "test", "-c", "-o", out, pkg)
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			fmt.Printf("FAIL\t%s [build failed]\n", ipath)
			return 1
		}
		if _, err := os.Stat(out); err != nil {
			fmt.Printf("?   \t%s\t[no test files]\n", ipath)
			continue
		}
		list = append(list, vmtest.Binary{Name: ipath, Path: out, Dir: dir, Args: args})
	}
	if len(list) == 0 {
		return 0
	}
	to := *vmTimeout
	if to == 0 {
		to = min(time.Duration(len(list))*(*ttimeout)+2*time.Minute, 30*time.Minute)
	}
	results, err := vmtest.Run(ctx, vmtest.Options{
		Timeout: to, MemMiB: *mem, CPUs: *cpus, Accel: *accel,
		ExtraBins: bins, PathBins: pathBins, Env: env, Out: os.Stdout, Log: os.Stderr,
		Verbose: *verbose, Refresh: *refresh,
	}, list)
	rc := 0
	for _, r := range results {
		switch {
		case r.Status == 0:
			fmt.Printf("ok  \t%s\t%.3fs\n", r.Name, r.Elapsed.Seconds())
		case r.Status < 0:
			fmt.Printf("FAIL\t%s\t[did not finish in the VM]\n", r.Name)
			rc = 1
		default:
			fmt.Printf("FAIL\t%s\t%.3fs\n", r.Name, r.Elapsed.Seconds())
			rc = 1
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		rc = 1
	}
	return rc
}

// listPackage resolves a package pattern to its directory and import path.
func listPackage(ctx context.Context, pkg string) (dir, ipath string, err error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}\t{{.ImportPath}}", pkg).Output()
	if err != nil {
		return "", "", fmt.Errorf("go list %s: %w", pkg, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		return "", "", fmt.Errorf("go list %s: want one package, got %d (list them one by one)", pkg, len(lines))
	}
	d, ip, ok := bytes.Cut([]byte(lines[0]), []byte("\t"))
	if !ok {
		return "", "", fmt.Errorf("go list %s: unexpected output %q", pkg, lines[0])
	}
	return string(d), string(ip), nil
}
