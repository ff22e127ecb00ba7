package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"hakeep/config"
	"hakeep/internal/version"
)

// envNetns marks a hakeepd that -s already moved into its namespace, so
// the re-executed one does not do it again.
const envNetns = "HAKEEP_NETNS"

// preRun carries out the options that act before any configuration is
// read: it reports done with the exit code when hakeepd should stop here.
func preRun(o options, stdout, stderr io.Writer) (int, bool) {
	switch {
	case o.help:
		printUsage(stdout)
		return exitOK, true
	case o.version:
		fmt.Fprintf(stdout, "hakeepd %s\n", version.String())
		return exitOK, true
	case o.signum != "":
		sig, ok := signums[o.signum]
		if !ok {
			// keepalived's words and status.
			fmt.Fprintf(stderr, "Unknown sigfunc %s\n", o.signum)
			return exitError, true
		}
		fmt.Fprintln(stdout, int(sig))
		return exitOK, true
	case o.genhash:
		return execHactlGenhash(o.genhashArgs, stderr), true
	}
	if o.umask >= 0 {
		syscall.Umask(o.umask)
	}
	if o.coreDump {
		// A Go crash aborts (SIGABRT) instead of exiting 2, so the kernel
		// writes a core wherever kernel.core_pattern says.
		debug.SetTraceback("crash")
		lim := syscall.Rlimit{Cur: ^uint64(0), Max: ^uint64(0)}
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
			fmt.Fprintf(stderr, "hakeepd: -m: cannot lift the core size limit: %v\n", err)
		}
	}
	if o.namespace != "" && !o.configTest && !o.dumpConf && os.Getenv(envNetns) != o.namespace {
		return execInNetns(o.namespace, stderr), true
	}
	return 0, false
}

// execInNetns re-executes hakeepd through `ip netns exec NAME`, which
// enters the namespace for every thread and mounts its /sys, as keepalived
// -s does for itself. It returns only on failure.
func execInNetns(name string, stderr io.Writer) int {
	ip, err := exec.LookPath("ip")
	if err != nil {
		for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
			if _, serr := os.Stat(p); serr == nil {
				ip, err = p, nil
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "hakeepd: -s %s: needs ip(8) from iproute2: %v\n", name, err)
		return exitError
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "hakeepd: -s %s: %v\n", name, err)
		return exitError
	}
	argv := append([]string{"ip", "netns", "exec", name, self}, os.Args[1:]...)
	env := append(os.Environ(), envNetns+"="+name)
	err = syscall.Exec(ip, argv, env)
	fmt.Fprintf(stderr, "hakeepd: -s %s: %v\n", name, err)
	return exitError
}

// execHactlGenhash is keepalived -T: hactl genhash takes keepalived
// genhash's options. hactl is looked for beside hakeepd, then on PATH.
func execHactlGenhash(args []string, stderr io.Writer) int {
	var hactl string
	if self, err := os.Executable(); err == nil {
		for _, dir := range []string{filepath.Dir(self), "/usr/bin", "/usr/sbin"} {
			if st, err := os.Stat(filepath.Join(dir, "hactl")); err == nil && st.Mode()&0o111 != 0 {
				hactl = filepath.Join(dir, "hactl")
				break
			}
		}
	}
	if hactl == "" {
		p, err := exec.LookPath("hactl")
		if err != nil {
			fmt.Fprintln(stderr, "hakeepd: -T: genhash is hactl genhash, and hactl was not found")
			return exitError
		}
		hactl = p
	}
	err := syscall.Exec(hactl, append([]string{"hactl", "genhash"}, args...), os.Environ())
	fmt.Fprintf(stderr, "hakeepd: -T: %v\n", err)
	return exitError
}

// missingIncludesAreErrors is -e (keepalived's includet): an include that
// matches no file stops the configuration instead of being a warning.
func missingIncludesAreErrors(ds config.Diagnostics) config.Diagnostics {
	out := make(config.Diagnostics, len(ds))
	for i, d := range ds {
		if strings.HasPrefix(d.Msg, "include ") && strings.HasSuffix(d.Msg, ": no file matches") {
			d.Severity = config.Error
			d.Msg += " (-e: every include must exist)"
		}
		out[i] = d
	}
	return out
}

// configTestOutput is where -t writes its diagnostics: stderr, or the
// file of -t=FILE (keepalived's --config-test=LOG_FILE).
func configTestOutput(o options, stderr io.Writer) (io.Writer, func(), error) {
	if o.configTestFile == "" {
		return stderr, func() {}, nil
	}
	f, err := os.Create(o.configTestFile)
	if err != nil {
		return nil, nil, fmt.Errorf("-t: %w", err)
	}
	return f, func() { f.Close() }, nil
}
