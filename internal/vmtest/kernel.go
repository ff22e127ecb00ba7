package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// HostPackages are the Debian packages the harness needs on the host:
// the VM, the guest userland, and the tools copied into the guest.
var HostPackages = []string{"qemu-system-x86", "busybox-static", "cpio", "kmod", "ipvsadm", "iproute2"}

// metaKernelPackage depends on the current cloud kernel image package.
const metaKernelPackage = "linux-image-cloud-amd64"

// Kernel is an extracted Debian kernel package: vmlinuz and its modules
// from the same .deb (their vermagic must match).
type Kernel struct {
	Dir     string // extracted package root
	Version string // uname -r, e.g. 6.1.0-56-cloud-amd64
}

// Vmlinuz is the path of the kernel image.
func (k Kernel) Vmlinuz() string { return filepath.Join(k.Dir, "boot", "vmlinuz-"+k.Version) }

// ModulesDir is lib/modules/VERSION inside the package.
func (k Kernel) ModulesDir() string { return filepath.Join(k.Dir, "lib", "modules", k.Version) }

// aptGet runs apt-get as the harness needs it: waiting for the dpkg lock
// rather than failing while another engineer's install runs.
func aptGet(ctx context.Context, log io.Writer, args ...string) error {
	a := append([]string{"-o", "DPkg::Lock::Timeout=600", "-o", "APT::Sandbox::User=root"}, args...)
	cmd := exec.CommandContext(ctx, "apt-get", a...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// EnsureHostPackages installs the missing ones of HostPackages.
func EnsureHostPackages(ctx context.Context, log io.Writer) error {
	var missing []string
	for _, p := range HostPackages {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !bytes.Contains(out, []byte("ok installed")) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(log, "vmtest: installing %s\n", strings.Join(missing, " "))
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	if err := aptGet(ctx, log, args...); err != nil {
		if uerr := aptGet(ctx, log, "update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return aptGet(ctx, log, args...)
	}
	return nil
}

// resolveKernelPackage asks apt which cloud kernel image package and
// version are current.
func resolveKernelPackage(ctx context.Context) (pkg, version string, err error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", metaKernelPackage).Output()
	if err != nil {
		return "", "", fmt.Errorf("apt-cache depends %s: %w", metaKernelPackage, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			pkg = f[1]
			break
		}
	}
	if pkg == "" {
		return "", "", fmt.Errorf("apt-cache depends %s: no linux-image dependency (apt lists missing?)", metaKernelPackage)
	}
	out, err = exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil {
		return "", "", fmt.Errorf("apt-cache show %s: %w", pkg, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			return pkg, strings.TrimSpace(v), nil
		}
	}
	return "", "", fmt.Errorf("apt-cache show %s: no Version", pkg)
}

// lockCache serializes cache setup between parallel harness runs.
func lockCache(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock cache: %w", err)
	}
	return func() { f.Close() }, nil
}

// EnsureKernel returns the cached kernel, downloading and extracting the
// current cloud kernel package once. With refresh it re-resolves the
// package (and downloads it if the version changed).
func EnsureKernel(ctx context.Context, cacheDir string, refresh bool, log io.Writer) (Kernel, error) {
	kroot := filepath.Join(cacheDir, "kernel")
	if err := os.MkdirAll(kroot, 0o755); err != nil {
		return Kernel{}, fmt.Errorf("create kernel cache: %w", err)
	}
	current := filepath.Join(kroot, "current")
	if !refresh {
		if dir, err := filepath.EvalSymlinks(current); err == nil {
			if k, err := openKernel(dir); err == nil {
				return k, nil
			}
		}
	}
	pkg, ver, err := resolveKernelPackage(ctx)
	if err != nil {
		// Stale or missing apt lists: update once and retry.
		if uerr := aptGet(ctx, log, "update"); uerr != nil {
			return Kernel{}, errors.Join(err, uerr)
		}
		if pkg, ver, err = resolveKernelPackage(ctx); err != nil {
			return Kernel{}, err
		}
	}
	dir := filepath.Join(kroot, pkg+"_"+ver)
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(log, "vmtest: fetching %s %s\n", pkg, ver)
		if err := fetchKernel(ctx, kroot, pkg, ver, dir, log); err != nil {
			return Kernel{}, err
		}
	}
	k, err := openKernel(dir)
	if err != nil {
		return Kernel{}, err
	}
	// Keep only this kernel (about 110 MB each).
	if ents, err := os.ReadDir(kroot); err == nil {
		for _, e := range ents {
			if e.IsDir() && e.Name() != filepath.Base(dir) && !strings.HasPrefix(e.Name(), "dl.") {
				os.RemoveAll(filepath.Join(kroot, e.Name()))
			}
		}
	}
	os.Remove(current)
	if err := os.Symlink(filepath.Base(dir), current); err != nil {
		return Kernel{}, fmt.Errorf("link current kernel: %w", err)
	}
	return k, nil
}

func fetchKernel(ctx context.Context, kroot, pkg, ver, dest string, log io.Writer) error {
	dl, err := os.MkdirTemp(kroot, "dl.")
	if err != nil {
		return fmt.Errorf("fetch kernel: %w", err)
	}
	defer os.RemoveAll(dl)
	cmd := exec.CommandContext(ctx, "apt-get", "-o", "APT::Sandbox::User=root", "download", pkg+"="+ver)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dl, log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get download %s=%s: %w", pkg, ver, err)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: expected one .deb, found %d", pkg, len(debs))
	}
	x := filepath.Join(dl, "x")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w: %s", debs[0], err, out)
	}
	k, err := openKernel(x)
	if err != nil {
		return err
	}
	// The .deb ships no modules.dep.
	if out, err := exec.CommandContext(ctx, "depmod", "-b", x, k.Version).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod %s: %w: %s", k.Version, err, out)
	}
	if err := os.Rename(x, dest); err != nil {
		return fmt.Errorf("install kernel into cache: %w", err)
	}
	return nil
}

func openKernel(dir string) (Kernel, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "lib", "modules"))
	if err != nil || len(ents) != 1 {
		return Kernel{}, fmt.Errorf("kernel package at %s: want exactly one lib/modules/VERSION (err %v)", dir, err)
	}
	k := Kernel{Dir: dir, Version: ents[0].Name()}
	if _, err := os.Stat(k.Vmlinuz()); err != nil {
		return Kernel{}, fmt.Errorf("kernel package at %s: %w", dir, err)
	}
	return k, nil
}
