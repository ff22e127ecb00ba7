// Package deb tests the Debian package that `make deb` builds, the way an
// operator meets it: its contents, man pages, completions and units on the
// host, then `dpkg -i` in the qemu VM (Debian's kernel, a clean root with
// Debian's own dpkg), the daemon started from the installed files in a
// network namespace and read back with the installed hactl, and `dpkg -r`
// and `dpkg -P` removing it cleanly.
//
//	make deb && HAKEEP_DEB=$(ls bin/hakeep_*.deb) go test -v ./test/deb
//
// Without HAKEEP_DEB the package tests skip (make test-deb sets it); the
// unit-file test always runs.
package deb

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hakeep/internal/vmtest"
)

// debPath is the package under test, from $HAKEEP_DEB.
func debPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("HAKEEP_DEB")
	if p == "" {
		t.Skip("no package: set HAKEEP_DEB to the .deb (make test-deb does)")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("HAKEEP_DEB: %v", err)
	}
	return abs
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// extract unpacks the package's files into a new directory.
func extract(t *testing.T, deb string) string {
	t.Helper()
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	return root
}

// The files an operator expects, where Debian expects them.
var wantFiles = []string{
	"usr/sbin/hakeepd",
	"usr/bin/hactl",
	"lib/systemd/system/hakeepd.service",
	"etc/default/hakeepd",
	"usr/share/man/man8/hakeepd.8.gz",
	"usr/share/man/man8/hactl.8.gz",
	"usr/share/man/man5/hakeep.conf.5.gz",
	"usr/share/bash-completion/completions/hactl",
	"usr/share/zsh/vendor-completions/_hactl",
	"usr/share/doc/hakeep/examples/keepalived.conf",
	"usr/share/doc/hakeep/examples/cluster-3.conf",
	"usr/share/doc/hakeep/examples/hakeepd-hardened.conf",
}

func TestDebContents(t *testing.T) {
	deb := debPath(t)
	root := extract(t, deb)
	for _, f := range wantFiles {
		st, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Errorf("package lacks /%s", f)
			continue
		}
		exe := strings.Contains(f, "bin/")
		if exe != (st.Mode()&0o111 != 0) {
			t.Errorf("/%s mode %v", f, st.Mode())
		}
	}
	// The configuration is the operator's: never shipped, never replaced.
	if _, err := os.Stat(filepath.Join(root, "etc/keepalived/keepalived.conf")); err == nil {
		t.Error("package ships /etc/keepalived/keepalived.conf")
	}
	if got := run(t, "dpkg-deb", "-f", deb, "Package"); strings.TrimSpace(got) != "hakeep" {
		t.Errorf("Package: %q", got)
	}
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctl)
	conffiles, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if strings.TrimSpace(string(conffiles)) != "/etc/default/hakeepd" {
		t.Errorf("conffiles: %q", conffiles)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		run(t, "sh", "-n", filepath.Join(ctl, s))
	}
	// Both binaries carry the package's version.
	version := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, "Version"))
	out := run(t, filepath.Join(root, "usr/sbin/hakeepd"), "--version")
	if !strings.HasPrefix(out, "hakeepd ") || strings.Contains(out, "dev") && !strings.Contains(version, "dev") {
		t.Errorf("hakeepd --version: %q (package %s)", out, version)
	}
	if want := wantBinaryVersion(); want != "" && strings.TrimSpace(out) != "hakeepd "+want {
		t.Errorf("hakeepd --version: %q, want %q", out, want)
	}
	out2 := run(t, filepath.Join(root, "usr/bin/hactl"), "version")
	if strings.TrimPrefix(out2, "hactl ") != strings.TrimPrefix(out, "hakeepd ") {
		t.Errorf("hactl version %q, hakeepd %q", out2, out)
	}
}

// wantBinaryVersion is the version make stamped ($HAKEEP_VERSION), if told.
func wantBinaryVersion() string { return os.Getenv("HAKEEP_VERSION") }

// The man pages render without a groff warning, and man(1) shows them.
func TestDebManPages(t *testing.T) {
	root := extract(t, debPath(t))
	for _, p := range []string{"usr/share/man/man8/hakeepd.8.gz", "usr/share/man/man8/hactl.8.gz", "usr/share/man/man5/hakeep.conf.5.gz"} {
		f, err := os.Open(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		src, _ := io.ReadAll(zr)
		f.Close()
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(src)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s: groff: %v\n%s", p, err, out)
		}
		if _, err := exec.LookPath("man"); err == nil {
			cmd := exec.Command("man", "--warnings", "-l", filepath.Join(root, p))
			cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			name := strings.ToUpper(strings.SplitN(filepath.Base(p), ".", 2)[0])
			if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "NAME") || !strings.Contains(string(out), name) {
				t.Errorf("man -l %s: %v\n%s\n%.400s", p, err, stderr.String(), out)
			}
		}
	}
	// bash and zsh read the completions.
	run(t, "bash", "-n", filepath.Join(root, "usr/share/bash-completion/completions/hactl"))
	if _, err := exec.LookPath("zsh"); err == nil {
		run(t, "zsh", "-n", filepath.Join(root, "usr/share/zsh/vendor-completions/_hactl"))
	}
}

// systemd-analyze verify finds nothing to say about the unit, alone and
// with the hardening drop-in (systemd 252 exits 0 on an unknown setting,
// so any output fails the test). The binaries named by ExecStart= and
// ExecReload= must exist: they are built here and the paths rewritten.
func TestUnitFilesVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("no systemd-analyze (package systemd)")
	}
	dir := t.TempDir()
	for _, c := range []string{"hakeepd", "hactl"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../../cmd/"+c).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	unit, err := os.ReadFile("../../deploy/hakeepd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Documentation=man:hakeepd(8)", "RuntimeDirectory=hakeep", "StateDirectory=hakeep",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW", "ExecReload=/usr/bin/hactl reload --pid $MAINPID", "Type=notify\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	text := strings.NewReplacer("/usr/sbin/hakeepd", filepath.Join(dir, "hakeepd"), "/usr/bin/hactl", filepath.Join(dir, "hactl")).Replace(string(unit))
	hardened, err := os.ReadFile("../../deploy/hakeepd-hardened.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		dropin string
	}{{"unit", ""}, {"with the hardening drop-in", string(hardened)}, {"a broken drop-in is seen", "[Service]\nProtectSystem=sometimes\n"}} {
		t.Run(tc.name, func(t *testing.T) {
			ud := t.TempDir()
			p := filepath.Join(ud, "hakeepd.service")
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.dropin != "" {
				os.MkdirAll(filepath.Join(ud, "hakeepd.service.d"), 0o755)
				if err := os.WriteFile(filepath.Join(ud, "hakeepd.service.d", "x.conf"), []byte(tc.dropin), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// --man=no: the pages are checked in the package (TestDebManPages).
			out, err := exec.Command("systemd-analyze", "verify", "--man=no", p).CombinedOutput()
			broken := strings.HasPrefix(tc.name, "a broken")
			if bad := err != nil || len(bytes.TrimSpace(out)) > 0; bad != broken {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}

// guestDeb is where the package is in the VM (set by TestDebInVM).
const envGuestDeb = "HAKEEP_DEB_GUEST"

// TestDebInVM boots the qemu VM with Debian's kernel and runs
// TestDebGuest in it: dpkg and its helpers are copied in from the host
// with their libraries, into a root that has never had hakeep.
func TestDebInVM(t *testing.T) {
	deb := debPath(t)
	if vmtest.InVM() {
		t.Skip("in the VM: TestDebGuest does the work")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to boot the qemu VM")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("no qemu-system-x86_64 (package qemu-system-x86)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	guestDeb := filepath.Join(dir, "hakeep.deb")
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(guestDeb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	var out bytes.Buffer
	env := []string{envGuestDeb + "=" + guestDeb}
	if v := wantBinaryVersion(); v != "" {
		env = append(env, "HAKEEP_VERSION="+v)
	}
	res, err := vmtest.Run(ctx, vmtest.Options{
		Timeout:   12 * time.Minute,
		ExtraBins: []string{"dpkg", "dpkg-deb", "dpkg-query", "dpkg-split", "dpkg-trigger", "tar", "ldconfig", "start-stop-daemon"},
		Env:       env,
		Out:       &out,
		Log:       io.Discard,
	}, []vmtest.Binary{{Name: "test/deb in the VM", Path: self, Dir: dir, Args: []string{"-test.v", "-test.run=^TestDebGuest$", "-test.timeout=10m"}}})
	t.Logf("guest output:\n%s", out.String())
	if err != nil {
		t.Fatalf("vm: %v", err)
	}
	if len(res) != 1 || res[0].Status != 0 {
		t.Fatalf("TestDebGuest in the VM: %+v", res)
	}
	if !strings.Contains(out.String(), "--- PASS: TestDebGuest") {
		t.Fatal("TestDebGuest did not pass in the VM")
	}
}

// TestDebGuest runs inside the VM only.
func TestDebGuest(t *testing.T) {
	deb := os.Getenv(envGuestDeb)
	if !vmtest.InVM() || deb == "" {
		t.Skip("runs in the VM (TestDebInVM)")
	}
	sh := func(cmd string) (string, error) {
		out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
		return string(out), err
	}
	must := func(cmd string) string {
		t.Helper()
		out, err := sh(cmd)
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		return out
	}
	// A dpkg database that has never seen hakeep.
	must("mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates /var/lib/dpkg/triggers /var/log /etc/dpkg && touch /var/lib/dpkg/status /var/lib/dpkg/available")
	if _, err := os.Stat("/usr/sbin/hakeepd"); err == nil {
		t.Fatal("/usr/sbin/hakeepd exists before dpkg -i")
	}
	out := must("dpkg -i " + deb)
	t.Logf("dpkg -i:\n%s", out)
	if st := must("dpkg-query -W -f='${Status} ${Version}' hakeep"); !strings.HasPrefix(st, "install ok installed") {
		t.Fatalf("after dpkg -i: %q", st)
	}
	for _, f := range wantFiles {
		if _, err := os.Stat("/" + f); err != nil {
			t.Errorf("installed: %v", err)
		}
	}

	ver := must("/usr/sbin/hakeepd --version")
	if !strings.HasPrefix(ver, "hakeepd ") {
		t.Fatalf("hakeepd --version: %q", ver)
	}
	if want := wantBinaryVersion(); want != "" && strings.TrimSpace(ver) != "hakeepd "+want {
		t.Errorf("hakeepd --version: %q, want %q", ver, want)
	}
	// keepalived -T is genhash: the installed hactl's.
	if out, err := sh("/usr/sbin/hakeepd -T --help"); err != nil || !strings.Contains(out, "genhash") {
		t.Errorf("hakeepd -T --help: %v\n%s", err, out)
	}
	if out, err := sh("/usr/sbin/hakeepd -t -i lb1 -f /usr/share/doc/hakeep/examples/keepalived.conf"); err != nil {
		t.Errorf("hakeepd -t on the shipped example: %v\n%s", err, out)
	}

	// The daemon from the package, in a namespace (keepalived's -s), with
	// a VRRP instance on a veth: it becomes MASTER and adds the VIP.
	must("ip netns add debt && ip link add debt0 type veth peer name debt1 && ip link set debt1 netns debt && ip link set debt0 up && ip -n debt link set lo up && ip -n debt link set debt1 up && ip -n debt addr add 10.77.0.1/24 dev debt1")
	conf := `global_defs {
    router_id debt
    vrrp_version 3
}
vrrp_instance VI_DEB {
    state BACKUP
    interface debt1
    virtual_router_id 77
    priority 150
    advert_int 0.1
    virtual_ipaddress {
        10.77.0.100/24
    }
}
`
	if err := os.WriteFile("/etc/keepalived/keepalived.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := exec.Command("/usr/sbin/hakeepd", "-n", "-l", "-s", "debt")
	var logs bytes.Buffer
	d.Stdout, d.Stderr = &logs, &logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Process.Kill()
		d.Wait()
	}()
	var status string
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, _ = sh("/usr/bin/hactl status")
		if regexp.MustCompile(`VI_DEB\s+77\s+MASTER`).MatchString(status) {
			break
		}
		if time.Now().After(deadline) {
			d.Process.Kill()
			d.Wait() // the log is complete, and no longer written
			t.Fatalf("no MASTER in hactl status:\n%s\nhakeepd:\n%s", status, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("hactl status:\n%s", status)
	if a := must("ip -n debt -o addr show dev debt1"); !strings.Contains(a, "10.77.0.100/24") {
		t.Errorf("VIP not in the namespace:\n%s", a)
	}
	// systemctl reload's path: hactl reload (ExecReload=) on a good file.
	if out := must(fmt.Sprintf("/usr/bin/hactl reload --pid %d", d.Process.Pid)); !strings.Contains(out, "reload applied") {
		t.Errorf("hactl reload: %q", out)
	}
	if out, err := sh("/usr/bin/hactl --help"); err != nil || !strings.Contains(out, "usage: hactl") {
		t.Errorf("hactl --help: %v %q", err, out)
	}
	d.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- d.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("hakeepd stop: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		d.Process.Kill()
		<-done
		t.Errorf("hakeepd did not stop\n%s", logs.String())
	}
	if a := must("ip -n debt -o addr show dev debt1"); strings.Contains(a, "10.77.0.100") {
		t.Errorf("VIP left after stop:\n%s", a)
	}
	os.Remove("/etc/keepalived/keepalived.conf")

	// Remove: the files go, the conffile stays; purge: it goes too.
	must("dpkg -r hakeep")
	for _, f := range []string{"/usr/sbin/hakeepd", "/usr/bin/hactl", "/lib/systemd/system/hakeepd.service", "/usr/share/man/man8/hakeepd.8.gz"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left after dpkg -r", f)
		}
	}
	if _, err := os.Stat("/etc/default/hakeepd"); err != nil {
		t.Errorf("conffile gone after dpkg -r (only purge removes it): %v", err)
	}
	if st := must("dpkg-query -W -f='${Status}' hakeep"); st != "deinstall ok config-files" {
		t.Errorf("after dpkg -r: %q", st)
	}
	must("dpkg -P hakeep")
	if _, err := os.Stat("/etc/default/hakeepd"); err == nil {
		t.Error("/etc/default/hakeepd left after dpkg -P")
	}
	if _, err := sh("dpkg-query -W hakeep"); err == nil {
		t.Error("dpkg still knows hakeep after dpkg -P")
	}
	if _, err := os.Stat("/etc/keepalived"); err != nil {
		t.Log("/etc/keepalived removed with the package (it was empty)")
	}
}
