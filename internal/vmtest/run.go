package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Binary is one executable to run in the guest, in order.
type Binary struct {
	Name string   // shown in results, e.g. the package's import path
	Path string   // host path; static (CGO_ENABLED=0) or with host libs
	Dir  string   // optional host directory copied to the same guest path and used as cwd
	Args []string // arguments
}

// Options configure one boot.
type Options struct {
	CacheDir  string        // kernel and base initramfs cache; default DefaultCacheDir()
	Timeout   time.Duration // whole boot; default 10 minutes
	MemMiB    int           // default 2048
	CPUs      int           // default 2
	Accel     string        // "auto" (default), "tcg" or "kvm"
	ExtraBins []string      // host executables copied in at the same paths with their libraries
	PathBins  []string      // host executables copied into the guest's /usr/local/bin under their base names
	Env       []string      // KEY=VALUE pairs exported in the guest
	Out       io.Writer     // guest output (the binaries' stdout+stderr), streamed
	Log       io.Writer     // harness messages
	Verbose   bool          // copy the guest console to Log
	Refresh   bool          // re-resolve the kernel package
}

// Result is one binary's outcome.
type Result struct {
	Name    string
	Status  int // exit status; -1 when it did not finish (timeout, guest crash)
	Elapsed time.Duration
}

// DefaultCacheDir is $HAKEEP_VM_CACHE, else $XDG_CACHE_HOME/hakeep-vmtest,
// else ~/.cache/hakeep-vmtest.
func DefaultCacheDir() string {
	if d := os.Getenv("HAKEEP_VM_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "hakeep-vmtest")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "hakeep-vmtest")
}

// Accel picks the qemu accelerator. KVM helps only with hardware
// virtualization: some sandboxes have a /dev/kvm without vmx/svm, where a
// stock kernel hangs or dies, while TCG boots in seconds.
func Accel(want string) (accel, cpu string) {
	if want == "" || want == "auto" {
		want = "tcg"
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
			f.Close()
			if b, err := os.ReadFile("/proc/cpuinfo"); err == nil && regexp.MustCompile(`\b(vmx|svm)\b`).Match(b) {
				want = "kvm"
			}
		}
	}
	if want == "kvm" {
		return "kvm", "host"
	}
	return "tcg,thread=multi", "max"
}

// shQuote quotes s for POSIX sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

const (
	markBegin = "VMTEST-BEGIN "
	markEnd   = "VMTEST-END "
	markState = "VMTEST-STATUS="
)

// Run boots the guest once and runs the binaries one after another in it.
// It returns each binary's status; err is for the harness itself (setup,
// boot, timeout), not for failing binaries.
func Run(ctx context.Context, opt Options, bins []Binary) ([]Result, error) {
	if opt.CacheDir == "" {
		opt.CacheDir = DefaultCacheDir()
	}
	if opt.Timeout == 0 {
		opt.Timeout = 10 * time.Minute
	}
	if opt.MemMiB == 0 {
		opt.MemMiB = 2048
	}
	if opt.CPUs == 0 {
		opt.CPUs = 2
	}
	if opt.Out == nil {
		opt.Out = os.Stdout
	}
	if opt.Log == nil {
		opt.Log = os.Stderr
	}
	if err := EnsureHostPackages(ctx, opt.Log); err != nil {
		return nil, err
	}
	unlock, err := lockCache(opt.CacheDir)
	if err != nil {
		return nil, err
	}
	k, err := EnsureKernel(ctx, opt.CacheDir, opt.Refresh, opt.Log)
	if err != nil {
		unlock()
		return nil, err
	}
	base, err := EnsureBase(ctx, opt.CacheDir, k)
	unlock()
	if err != nil {
		return nil, err
	}

	work, err := os.MkdirTemp("", "vmtest.")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	defer os.RemoveAll(work)
	initrd, err := buildInitrd(ctx, work, base, opt, bins)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	accel, cpu := Accel(opt.Accel)
	outFifo := filepath.Join(work, "out")
	if err := syscall.Mkfifo(outFifo, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	console := filepath.Join(work, "console")
	kargs := "console=ttyS0 rdinit=/init panic=-1 mitigations=off quiet loglevel=4"
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-accel", accel, "-cpu", cpu, "-smp", strconv.Itoa(opt.CPUs), "-m", strconv.Itoa(opt.MemMiB),
		"-kernel", k.Vmlinuz(), "-initrd", initrd, "-append", kargs,
		"-serial", "file:"+console,
		"-device", "virtio-serial-pci,id=vs",
		"-chardev", "file,id=out,path="+outFifo,
		"-device", "virtserialport,bus=vs.0,chardev=out,name=out",
	)
	qlog, err := os.Create(filepath.Join(work, "qemu.log"))
	if err != nil {
		return nil, fmt.Errorf("create qemu log: %w", err)
	}
	defer qlog.Close()
	qemu.Stdout, qemu.Stderr = qlog, qlog
	qemu.WaitDelay = 5 * time.Second

	results := make([]Result, len(bins))
	for i, b := range bins {
		results[i] = Result{Name: b.Name, Status: -1}
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		f, err := os.Open(outFifo) // blocks until qemu opens its end
		if err != nil {
			fmt.Fprintf(opt.Log, "vmtest: open guest output: %v\n", err)
			return
		}
		defer f.Close()
		streamOutput(f, opt.Out, results)
	}()
	fmt.Fprintf(opt.Log, "vmtest: booting %s (accel %s, %d vCPUs, %d MiB) for %d binaries\n", k.Version, accel, opt.CPUs, opt.MemMiB, len(bins))
	start := time.Now()
	qerr := qemu.Run()
	// If qemu died before opening the fifo, the reader still blocks in
	// open(): a transient read-write open releases it.
	if f, err := os.OpenFile(outFifo, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
	<-readDone
	cons, _ := os.ReadFile(console)
	if opt.Verbose {
		opt.Log.Write(cons)
	}
	status := -1
	if m := regexp.MustCompile(markState+`(\d+)`).FindAllSubmatch(cons, -1); len(m) > 0 {
		status, _ = strconv.Atoi(string(m[len(m)-1][1]))
	}
	if status < 0 {
		ql, _ := os.ReadFile(qlog.Name())
		tail := string(cons)
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		if ctx.Err() != nil {
			return results, fmt.Errorf("guest timed out after %s (qemu: %v); console tail:\n%s", opt.Timeout, qerr, tail)
		}
		return results, fmt.Errorf("no exit status from guest after %s (qemu: %v): %s\nconsole tail:\n%s", time.Since(start).Round(time.Millisecond), qerr, ql, tail)
	}
	return results, nil
}

// streamOutput copies the guest output to out, taking the marker lines
// out and filling in results.
func streamOutput(r io.Reader, out io.Writer, results []Result) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	var began time.Time
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, markBegin); i >= 0 {
			if i > 0 {
				fmt.Fprintln(out, line[:i])
			}
			began = time.Now()
			continue
		}
		if i := strings.Index(line, markEnd); i >= 0 {
			if i > 0 {
				fmt.Fprintln(out, line[:i])
			}
			f := strings.Fields(line[i+len(markEnd):])
			if len(f) == 2 {
				idx, err1 := strconv.Atoi(f[0])
				st, err2 := strconv.Atoi(f[1])
				if err1 == nil && err2 == nil && idx >= 0 && idx < len(results) {
					results[idx].Status = st
					results[idx].Elapsed = time.Since(began)
				}
			}
			continue
		}
		fmt.Fprintln(out, line)
	}
}

// buildInitrd concatenates the cached base with a per-run cpio holding the
// binaries, their directories and the command script. The kernel unpacks
// concatenated archives in order, so per-run files win on a clash.
func buildInitrd(ctx context.Context, work, base string, opt Options, bins []Binary) (string, error) {
	p := filepath.Join(work, "payload")
	var cmd strings.Builder
	cmd.WriteString("export HOME=/root TMPDIR=/tmp " + EnvInVM + "=1\n")
	for _, kv := range opt.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(k) {
			return "", fmt.Errorf("guest env %q: want KEY=VALUE", kv)
		}
		fmt.Fprintf(&cmd, "export %s=%s\n", k, shQuote(v))
	}
	cmd.WriteString("rc=0\n")
	for i, b := range bins {
		gb := fmt.Sprintf("/vmtest/bin/%d-%s", i, filepath.Base(b.Path))
		if err := copyExe(p, b.Path, gb); err != nil {
			return "", err
		}
		cwd := "/tmp"
		if b.Dir != "" {
			abs, err := filepath.Abs(b.Dir)
			if err != nil {
				return "", fmt.Errorf("dir of %s: %w", b.Name, err)
			}
			if err := copyTree(abs, filepath.Join(p, abs)); err != nil {
				return "", err
			}
			cwd = abs
		}
		fmt.Fprintf(&cmd, "cd %s || exit 125\nprintf '\\n%s%d\\n'\n%s", shQuote(cwd), markBegin, i, shQuote(gb))
		for _, a := range b.Args {
			cmd.WriteString(" " + shQuote(a))
		}
		fmt.Fprintf(&cmd, "\nst=$?\nprintf '\\n%s%d %%d\\n' $st\n[ $st = 0 ] || rc=1\n", markEnd, i)
	}
	cmd.WriteString("exit $rc\n")
	for _, b := range opt.ExtraBins {
		path, err := exec.LookPath(b)
		if err != nil {
			return "", fmt.Errorf("extra guest binary %s: %w", b, err)
		}
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", fmt.Errorf("extra guest binary %s: %w", b, err)
		}
		if err := copyExe(p, real, path); err != nil {
			return "", err
		}
	}
	for _, b := range opt.PathBins {
		if err := copyExe(p, b, filepath.Join("/usr/local/bin", filepath.Base(b))); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Join(p, "vmtest"), 0o755); err != nil {
		return "", fmt.Errorf("build payload: %w", err)
	}
	if err := os.WriteFile(filepath.Join(p, "vmtest", "cmd"), []byte(cmd.String()), 0o755); err != nil {
		return "", fmt.Errorf("build payload: %w", err)
	}
	initrd := filepath.Join(work, "initrd")
	f, err := os.Create(initrd)
	if err != nil {
		return "", fmt.Errorf("build initrd: %w", err)
	}
	defer f.Close()
	bf, err := os.Open(base)
	if err != nil {
		return "", fmt.Errorf("open base initramfs: %w", err)
	}
	_, err = io.Copy(f, bf)
	bf.Close()
	if err != nil {
		return "", fmt.Errorf("build initrd: %w", err)
	}
	if err := writeCpio(ctx, p, f); err != nil {
		return "", err
	}
	return initrd, errors.Join(f.Sync())
}
