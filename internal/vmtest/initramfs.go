package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// baseVersion changes whenever the base layout or /init changes, so a
// cached base initramfs of an older harness is never reused.
const baseVersion = "hakeep-vmtest-3"

// preloadModules are loaded at boot (with their dependencies): IPVS with
// every scheduler, the virtio console that carries output out, and what the
// traffic tests need. Loading everything up front keeps the guest free of
// module autoload surprises.
var preloadModules = []string{
	"virtio_pci", "virtio_console",
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
	"ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_mh", "ip_vs_fo", "ip_vs_ovf",
	"veth", "bridge", "macvlan", "ipip", "ip6_tunnel", "nf_nat", "nf_conntrack",
}

// guestTools are host executables copied into the guest's /usr/sbin with
// their shared libraries; busybox provides everything else. dash is /bin/sh
// because busybox ash prefers its own (limited) applets such as `ip`.
var guestTools = []string{"ipvsadm", "ip", "ss", "dash"}

// initScript is the guest's PID 1: mount, load modules, run /vmtest/cmd
// with its output on the virtio port "out", report the status on ttyS0 and
// power off.
const initScript = `#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run; mkdir -p /run/netns; chmod 1777 /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
hostname vmtest
while read -r mod args; do
  insmod "/lib/modules/$(uname -r)/$mod" $args 2>/dev/null || echo "vmtest: insmod $mod failed" >/dev/ttyS0
done < /vmtest/modules
ip link set lo up
out=; i=0
while [ $i -lt 1000 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] || continue
    [ "$(cat "$p/name")" = out ] && out=/dev/${p##*/}
  done
  [ -c "$out" ] && break
  i=$((i+1)); sleep 0.01
done
[ -c "$out" ] || { echo "vmtest: no virtio port, output on console"; out=/dev/ttyS0; }
sh /vmtest/cmd </dev/null >"$out" 2>&1
rc=$?
sync
printf '\nVMTEST-STATUS=%d\n' "$rc" >/dev/ttyS0
poweroff -f
`

// lookPath finds an executable in the usual system directories.
func lookPath(name string) (string, error) {
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

var lddPath = regexp.MustCompile(`(/[^ ]+)`)

// copyExe copies an executable to root+dest and, if it is dynamic, its
// shared libraries and ELF interpreter at their own paths.
func copyExe(root, src, dest string) error {
	if err := copyFile(src, filepath.Join(root, dest), 0o755); err != nil {
		return err
	}
	out, _ := exec.Command("ldd", src).Output() // static: ldd fails, nothing to copy
	for _, line := range strings.Split(string(out), "\n") {
		for _, m := range lddPath.FindAllString(line, -1) {
			target := filepath.Join(root, m)
			if _, err := os.Stat(target); err == nil {
				continue
			}
			if err := copyFile(m, target, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// copyTree copies a directory tree (regular files and dirs; symlinks are
// followed).
func copyTree(src, dst string) error {
	if real, err := filepath.EvalSymlinks(src); err == nil {
		src = real
	}
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(t, 0o755)
		}
		return copyFile(p, t, info.Mode().Perm())
	})
}

// moduleClosure returns "relative/path.ko args" lines in load order for the
// modules and their dependencies, resolved by kmod from the package's own
// modules.dep and softdeps.
func moduleClosure(ctx context.Context, k Kernel, mods []string) ([]string, error) {
	seen := map[string]bool{}
	var lines []string
	for _, m := range mods {
		out, err := exec.CommandContext(ctx, "modprobe", "-d", k.Dir, "-S", k.Version, "--show-depends", m).Output()
		if err != nil {
			return nil, fmt.Errorf("resolve module %s in %s: %w", m, k.Version, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "insmod" || seen[f[1]] {
				continue // "builtin X" lines need nothing
			}
			seen[f[1]] = true
			rel, err := filepath.Rel(k.ModulesDir(), f[1])
			if err != nil {
				return nil, fmt.Errorf("module path %s: %w", f[1], err)
			}
			lines = append(lines, strings.TrimSpace(rel+" "+strings.Join(f[2:], " ")))
		}
	}
	return lines, nil
}

// writeCpio archives dir as a newc cpio stream (what the kernel unpacks
// as an initramfs).
func writeCpio(ctx context.Context, dir string, w io.Writer) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet")
	cmd.Dir, cmd.Stdout = dir, w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio of %s: %w: %s", dir, err, stderr.String())
	}
	return nil
}

// EnsureBase returns the path of the cached base initramfs for kernel k:
// busybox, dash, ip, ipvsadm, the modules and /init. It is rebuilt when
// the kernel, the module list, the host tools or the layout change.
func EnsureBase(ctx context.Context, cacheDir string, k Kernel) (string, error) {
	busybox, err := lookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("find busybox (package busybox-static): %w", err)
	}
	var tools []string
	h := sha256.New()
	fmt.Fprint(h, baseVersion, k.Dir, strings.Join(preloadModules, " "), initScript)
	for _, t := range append([]string{"busybox"}, guestTools...) {
		p, err := lookPath(t)
		if err != nil {
			return "", fmt.Errorf("find %s for the guest: %w", t, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("stat %s: %w", p, err)
		}
		fmt.Fprintln(h, p, st.Size(), st.ModTime().UnixNano())
		if t != "busybox" {
			tools = append(tools, p)
		}
	}
	base := filepath.Join(cacheDir, "base-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	if _, err := os.Stat(base); err == nil {
		now := time.Now()
		os.Chtimes(base, now, now) // mark as in use for the stale sweep
		return base, nil
	}
	root, err := os.MkdirTemp(cacheDir, "base.")
	if err != nil {
		return "", fmt.Errorf("build base initramfs: %w", err)
	}
	defer os.RemoveAll(root)
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "root", "vmtest"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", fmt.Errorf("build base initramfs: %w", err)
		}
	}
	for _, t := range tools {
		dest := "/usr/sbin/" + filepath.Base(t)
		if filepath.Base(t) == "dash" {
			dest = "/bin/sh"
		}
		if err := copyExe(root, t, dest); err != nil {
			return "", err
		}
	}
	if err := copyFile(busybox, filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return "", err
	}
	mods, err := moduleClosure(ctx, k, preloadModules)
	if err != nil {
		return "", err
	}
	gm := filepath.Join(root, "lib/modules", k.Version)
	for _, line := range mods {
		rel := strings.Fields(line)[0]
		if err := copyFile(filepath.Join(k.ModulesDir(), rel), filepath.Join(gm, rel), 0o644); err != nil {
			return "", err
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := copyFile(filepath.Join(k.ModulesDir(), f), filepath.Join(gm, f), 0o644); err != nil {
			return "", err
		}
	}
	if out, err := exec.CommandContext(ctx, "depmod", "-b", root, k.Version).CombinedOutput(); err != nil {
		return "", fmt.Errorf("depmod for the guest: %w: %s", err, out)
	}
	files := map[string]string{
		"vmtest/modules": strings.Join(mods, "\n") + "\n",
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":      "root:x:0:\n",
		"etc/hosts":      "127.0.0.1 localhost\n::1 localhost ip6-localhost\n",
		"init":           initScript,
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if name == "init" {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), mode); err != nil {
			return "", fmt.Errorf("build base initramfs: %w", err)
		}
	}
	tmp := base + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("build base initramfs: %w", err)
	}
	if err := writeCpio(ctx, root, f); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("build base initramfs: %w", err)
	}
	if err := os.Rename(tmp, base); err != nil {
		return "", fmt.Errorf("build base initramfs: %w", err)
	}
	// Drop bases not used for a week (older kernels or tool versions).
	old, _ := filepath.Glob(filepath.Join(cacheDir, "base-*.cpio"))
	for _, o := range old {
		if st, err := os.Stat(o); err == nil && o != base && time.Since(st.ModTime()) > 7*24*time.Hour {
			os.Remove(o)
		}
	}
	return base, nil
}
