package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
		check   func(o options) bool
	}{
		{[]string{}, false, func(o options) bool {
			return o.configFile == "/etc/keepalived/keepalived.conf" && o.pidFile == "/run/hakeepd.pid" &&
				o.stateDir == "/run/hakeep" && o.apiSocket == "/run/hakeep/hakeepd.sock" && o.umask == -1 && !o.logFacilitySet
		}},
		{[]string{"-f", "x.conf", "-t"}, false, func(o options) bool { return o.configFile == "x.conf" && o.configTest && o.configTestFile == "" }},
		{[]string{"--use-file", "y.conf", "--config-test"}, false, func(o options) bool { return o.configFile == "y.conf" && o.configTest }},
		{[]string{"--use-file=z.conf", "--config-test=/tmp/out"}, false, func(o options) bool {
			return o.configFile == "z.conf" && o.configTest && o.configTestFile == "/tmp/out"
		}},
		{[]string{"-t/tmp/out"}, false, func(o options) bool { return o.configTest && o.configTestFile == "/tmp/out" }},
		{[]string{"-n", "-l", "-D", "-p", "/tmp/p", "-i", "d1"}, false, func(o options) bool {
			return o.dontFork && o.logConsole && o.logDetail && o.pidFile == "/tmp/p" && o.configID == "d1"
		}},
		// Bundled short options, as getopt: a value ends the bundle.
		{[]string{"-DnP"}, false, func(o options) bool { return o.logDetail && o.dontFork && o.vrrpOnly }},
		{[]string{"-lnD"}, false, func(o options) bool { return o.logConsole && o.dontFork && o.logDetail }},
		{[]string{"-lnf", "a.conf"}, false, func(o options) bool { return o.logConsole && o.dontFork && o.configFile == "a.conf" }},
		{[]string{"-lnfa.conf"}, false, func(o options) bool { return o.logConsole && o.configFile == "a.conf" }},
		{[]string{"-S3", "-P"}, false, func(o options) bool { return o.logFacility == 3 && o.logFacilitySet && o.vrrpOnly }},
		{[]string{"-S", "3"}, false, func(o options) bool { return o.logFacility == 3 && o.logFacilitySet }},
		{[]string{"-S", "local5"}, false, func(o options) bool { return o.logFacility == 5 && o.logFacilitySet }},
		{[]string{"--log-facility=daemon"}, false, func(o options) bool { return !o.logFacilitySet && !o.logFacilityUser }},
		{[]string{"-S", "user"}, false, func(o options) bool { return !o.logFacilitySet && o.logFacilityUser }},
		{[]string{"-r", "/x", "-c", "/y", "-b", "/z", "-G"}, false, func(o options) bool { return o.noSyslog }},
		{[]string{"--state-dir", "/tmp/lab/d1"}, false, func(o options) bool { return o.stateDir == "/tmp/lab/d1" }},
		// hakeepd's own long options after one dash, as with Go's flag package.
		{[]string{"-state-dir=/x"}, false, func(o options) bool { return o.stateDir == "/x" }},
		{[]string{"-api", "/s"}, false, func(o options) bool { return o.apiSocket == "/s" }},
		{[]string{"--state-dir", ""}, false, func(o options) bool { return o.stateDir == "" }},
		{[]string{"--vers"}, false, func(o options) bool { return o.version }}, // a unique prefix
		{[]string{"-u", "027"}, false, func(o options) bool { return o.umask == 0o027 }},
		{[]string{"-u0x12"}, false, func(o options) bool { return o.umask == 0x12 }},
		{[]string{"-m"}, false, func(o options) bool { return o.coreDump }},
		{[]string{"-Mcore.%p"}, false, func(o options) bool { return o.coreDump }},
		{[]string{"-s", "ns1"}, false, func(o options) bool { return o.namespace == "ns1" }},
		{[]string{"-e"}, false, func(o options) bool { return o.allConfig }},
		{[]string{"--signum=RELOAD"}, false, func(o options) bool { return o.signum == "RELOAD" }},
		{[]string{"--debug"}, false, func(o options) bool { return o.debug }},
		{[]string{"--debug=DV"}, false, func(o options) bool { return o.debug }},
		{[]string{"-h"}, false, func(o options) bool { return o.help }},
		{[]string{"-T", "-s", "h", "-p", "80"}, false, func(o options) bool {
			return o.genhash && strings.Join(o.genhashArgs, " ") == "-s h -p 80"
		}},
		{[]string{"-VIXRBxa", "--all", "-A", "/s", "-g/l", "--perf", "--no-mem-check", "-L", "--flush-log-file"}, false,
			func(o options) bool { return reflect.DeepEqual(o, defaults()) }},
		{[]string{"--", "x"}, true, nil},
		{[]string{"-n", "-T"}, true, nil}, // -T only first
		{[]string{"--state-dir"}, true, nil},
		{[]string{"-f"}, true, nil},
		{[]string{"-S", "9"}, true, nil},
		{[]string{"-S", "kern"}, true, nil},
		{[]string{"-u", "999"}, true, nil},
		{[]string{"-P", "-C"}, true, nil},
		{[]string{"-nZ"}, true, nil},
		{[]string{"--version=1"}, true, nil},
		{[]string{"--d"}, true, nil}, // ambiguous: --dont-fork, --dump-conf, ...
		{[]string{"stray"}, true, nil},
		{[]string{"--bogus"}, true, nil},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, io.Discard)
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: err = %v, wantErr %v", tt.args, err, tt.wantErr)
			continue
		}
		if err == nil && !tt.check(o) {
			t.Errorf("%v: unexpected options %+v", tt.args, o)
		}
	}
}

// Options with no effect say so on stderr, one line each; those with an
// effect say nothing.
func TestNoEffectIsSaid(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings, one line each
	}{
		{[]string{"-B"}, []string{"-B/--no_bfd accepted, no effect in hakeepd: hakeepd has no BFD subsystem"}},
		{[]string{"-VI"}, []string{"-V/--dont-release-vrrp accepted, no effect in hakeepd", "-I/--dont-release-ipvs accepted, no effect in hakeepd"}},
		{[]string{"--all"}, []string{"--all accepted, no effect in hakeepd"}},
		{[]string{"--core-dump-pattern=core"}, []string{"--core-dump-pattern accepted, the pattern: hakeepd does not change kernel.core_pattern"}},
		{[]string{"-r", "/x"}, []string{"-r/--vrrp_pid accepted, no effect in hakeepd"}},
		{[]string{"-DnP", "-f", "x", "-m", "-u", "022", "-S", "local1"}, nil},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if _, err := parseFlags(tt.args, &stderr); err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if stderr.Len() == 0 {
			lines = nil
		}
		if len(lines) != len(tt.want) {
			t.Errorf("%v: stderr %q, want %d lines", tt.args, stderr.String(), len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("%v: line %q lacks %q", tt.args, lines[i], w)
			}
		}
	}
}

// keepaliveHelpOption is one line of keepalived --help: "-f, --use-file=FILE",
// "    --all", "-t, --config-test[=LOG_FILE]", "-i, --config-id id".
var keepalivedHelpOption = regexp.MustCompile(`^\s+(?:-([A-Za-z]), )?--([A-Za-z_-]+)(\[=[^\]]+\]|=\S+| [a-z]\S*)?\s`)

type helpOption struct {
	short    string
	long     string
	arg      argMode
	argument string
}

// parseKeepalivedHelp reads keepalived --help's option lines.
func parseKeepalivedHelp(text string) []helpOption {
	var out []helpOption
	for _, line := range strings.Split(text, "\n") {
		m := keepalivedHelpOption.FindStringSubmatch(line + " ")
		if m == nil {
			continue
		}
		h := helpOption{short: m[1], long: m[2]}
		switch a := m[3]; {
		case strings.HasPrefix(a, "[="):
			h.arg, h.argument = optionalArg, strings.Trim(a, "[=]")
		case a != "":
			h.arg, h.argument = requiredArg, strings.TrimLeft(a, "= ")
		}
		out = append(out, h)
	}
	return out
}

// keepalived 2.2.7's --help (Debian bookworm), for hosts without it.
const keepalivedHelp227 = `Usage: /usr/sbin/keepalived [OPTION...]
  -f, --use-file=FILE          Use the specified configuration file
  -P, --vrrp                   Only run with VRRP subsystem
  -C, --check                  Only run with Health-checker subsystem
  -B, --no_bfd                 Don't run BFD subsystem
      --all                    Force all child processes to run, even if have no configuration
  -l, --log-console            Log messages to local console
  -D, --log-detail             Detailed log messages
  -S, --log-facility=([0-7]|local[0-7]|user|daemon)
  -G, --no-syslog              Don't log via syslog
  -u, --umask=MASK             umask for file creation (in numeric form)
  -X, --release-vips           Drop VIP on transition from signal.
  -V, --dont-release-vrrp      Don't remove VRRP VIPs and VROUTEs on daemon stop
  -I, --dont-release-ipvs      Don't remove IPVS topology on daemon stop
  -R, --dont-respawn           Don't respawn child processes
  -n, --dont-fork              Don't fork the daemon process
  -d, --dump-conf              Dump the configuration data
  -p, --pid=FILE               Use specified pidfile for parent process
  -r, --vrrp_pid=FILE          Use specified pidfile for VRRP child process
  -T, --genhash                Enter into genhash utility mode (this should be the first option used).
  -c, --checkers_pid=FILE      Use specified pidfile for checkers child process
  -a, --address-monitoring     Report all address additions/deletions notified via netlink
  -b, --bfd_pid=FILE           Use specified pidfile for BFD child process
  -x, --snmp                   Enable SNMP subsystem
  -A, --snmp-agent-socket=FILE Use the specified socket for master agent
  -s, --namespace=NAME         Run in network namespace NAME (overrides config)
  -m, --core-dump              Produce core dump if terminate abnormally
  -M, --core-dump-pattern=PATN Also set /proc/sys/kernel/core_pattern to PATN (default 'core')
  -e, --all-config             Error if any configuration file missing (same as includet)
  -i, --config-id id           Skip any configuration lines beginning '@' that don't match id
      --signum=SIGFUNC         Return signal number for STOP, RELOAD, DATA, STATS, STATS_CLEAR, JSON
  -t, --config-test[=LOG_FILE] Check the configuration for obvious errors, output to
  -v, --version                Display the version number
  -h, --help                   Display this help message
`

// Every option keepalived lists is hakeepd's under the same letter and
// long name, takes a value the same way, and parses. The real keepalived
// --help is read when keepalived is installed (make deps installs it), so
// a keepalived that grows an option fails this test.
func TestKeepalivedFlagsAccepted(t *testing.T) {
	help := keepalivedHelp227
	source := "keepalived 2.2.7's --help (built in)"
	if p, err := exec.LookPath("keepalived"); err == nil {
		out, _ := exec.Command(p, "--help").CombinedOutput()
		help, source = string(out), p+" --help"
	} else if _, err := os.Stat("/usr/sbin/keepalived"); err == nil {
		out, _ := exec.Command("/usr/sbin/keepalived", "--help").CombinedOutput()
		help, source = string(out), "/usr/sbin/keepalived --help"
	}
	opts := parseKeepalivedHelp(help)
	if len(opts) < 30 {
		t.Fatalf("%s: only %d options parsed:\n%s", source, len(opts), help)
	}
	t.Logf("%d options from %s", len(opts), source)
	specs := flagSpecs()
	for _, h := range opts {
		f := exactLong(specs, h.long)
		if f == nil {
			t.Errorf("keepalived's --%s is not a hakeepd option", h.long)
			continue
		}
		if h.short != "" && (f.short == 0 || string(f.short) != h.short) {
			t.Errorf("keepalived's --%s is -%s; hakeepd's is %q", h.long, h.short, string(f.short))
		}
		// keepalived's help writes an optional value as [=X]; a required
		// one as =X or " X" (and -M's, optional in its getopt, as =PATN).
		if h.arg == optionalArg && f.arg != optionalArg || h.arg == requiredArg && f.arg == noArg || h.arg == noArg && f.arg != noArg {
			t.Errorf("--%s: keepalived takes %q (mode %d), hakeepd mode %d", h.long, h.argument, h.arg, f.arg)
		}
		// And each parses, by letter and by name.
		for _, args := range invocations(h) {
			if _, err := parseFlags(args, io.Discard); err != nil {
				t.Errorf("keepalived accepts %q; hakeepd: %v", args, err)
			}
		}
	}
}

func invocations(h helpOption) [][]string {
	val := map[string]string{"FILE": "/tmp/x", "MASK": "022", "NAME": "ns1", "PATN": "core", "id": "d1", "SIGFUNC": "STOP", "LOG_FILE": "/tmp/x"}[h.argument]
	if h.long == "log-facility" {
		val = "local3"
	}
	if val == "" {
		val = "x"
	}
	arg := h.arg
	if h.long == "core-dump-pattern" {
		arg = optionalArg // its getopt has M::; "-M core" leaves "core" a stray argument there too
	}
	var out [][]string
	switch arg {
	case noArg:
		out = append(out, []string{"--" + h.long})
		if h.short != "" {
			out = append(out, []string{"-" + h.short})
		}
	case optionalArg:
		out = append(out, []string{"--" + h.long}, []string{"--" + h.long + "=" + val})
		if h.short != "" {
			out = append(out, []string{"-" + h.short}, []string{"-" + h.short + val})
		}
	default:
		out = append(out, []string{"--" + h.long, val}, []string{"--" + h.long + "=" + val})
		if h.short != "" {
			out = append(out, []string{"-" + h.short, val}, []string{"-" + h.short + val})
		}
	}
	return out
}

func TestSignum(t *testing.T) {
	want := map[string]int{"STOP": 15, "RELOAD": 1, "DATA": 10, "STATS": 12, "STATS_CLEAR": 63, "JSON": 36}
	kl, kerr := exec.LookPath("keepalived")
	for name, n := range want {
		var out, errOut bytes.Buffer
		if code := run([]string{"--signum=" + name}, &out, &errOut); code != exitOK || strings.TrimSpace(out.String()) != itoa(n) {
			t.Errorf("--signum=%s: exit %d, %q %q; want %d", name, code, out.String(), errOut.String(), n)
		}
		if kerr == nil { // the real one agrees
			ko, err := exec.Command(kl, "--signum="+name).Output()
			if err != nil || strings.TrimSpace(string(ko)) != out.String()[:len(out.String())-1] {
				t.Errorf("keepalived --signum=%s = %q (%v), hakeepd %q", name, ko, err, out.String())
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"--signum", "FOO"}, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), "Unknown sigfunc FOO") {
		t.Errorf("--signum FOO: exit %d, %q", code, errOut.String())
	}
}

func itoa(n int) string {
	var b []byte
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// --help and --version print to stdout and exit 0.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-v"}, {"--version"}} {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		if code != exitOK || errOut.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
		if args[0] == "-h" || args[0] == "--help" {
			for _, f := range flagSpecs() {
				if !strings.Contains(out.String(), "--"+f.long) {
					t.Errorf("--help lacks --%s", f.long)
				}
			}
		} else if !strings.HasPrefix(out.String(), "hakeepd ") {
			t.Errorf("%v: %q", args, out.String())
		}
	}
}

// The man page documents every option, by letter and by long name.
func TestManPageHasEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../deploy/man/hakeepd.8")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, f := range flagSpecs() {
		// roff writes a dash as \- ; long names appear as \-\-name.
		long := `\-\-` + strings.ReplaceAll(f.long, "-", `\-`)
		if !strings.Contains(page, long) {
			t.Errorf("hakeepd.8 lacks %s", long)
		}
		if f.short != 0 && !strings.Contains(page, `\-`+string(f.short)) {
			t.Errorf("hakeepd.8 lacks \\-%c", f.short)
		}
	}
}

// The options that change what -t does: -e makes a missing include an
// error, -t=FILE writes the diagnostics there, -u sets the umask the file
// is created with (run as a child: the umask is the process's).
func TestCompatOptionEffects(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	text := "include " + filepath.Join(dir, "none-*.conf") + "\nglobal_defs {\n  router_id x\n}\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "diag.txt")
	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   string // substring ("" for none)
		file     string // substring of the -t=FILE output
		fileMode os.FileMode
	}{
		{"missing include warns", []string{"-t"}, exitWarnings, "no file matches", "", 0},
		{"-e makes it an error", []string{"-e", "-t"}, exitError, "no file matches (-e: every include must exist)", "", 0},
		{"-u 022 --config-test=FILE", []string{"-u", "022", "--config-test=" + out}, exitWarnings, "", "no file matches", 0o644},
		{"-u 077 -tFILE", []string{"-u", "077", "-t" + out}, exitWarnings, "", "no file matches", 0o600},
	}
	for _, tt := range tests {
		os.Remove(out)
		args, _ := json.Marshal(append([]string{"-f", conf}, tt.args...))
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "HAKEEPD_TEST_RUN="+string(args))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d (%v)\n%s", tt.name, code, tt.code, err, stderr.String())
		}
		if tt.stderr != "" && !strings.Contains(stderr.String(), tt.stderr) || tt.stderr == "" && stderr.Len() > 0 {
			t.Errorf("%s: stderr %q, want %q", tt.name, stderr.String(), tt.stderr)
		}
		if tt.file != "" {
			b, err := os.ReadFile(out)
			if err != nil || !strings.Contains(string(b), tt.file) {
				t.Errorf("%s: %s: %q %v", tt.name, out, b, err)
			} else if st, _ := os.Stat(out); st.Mode().Perm() != tt.fileMode {
				t.Errorf("%s: %s mode %v, want %v", tt.name, out, st.Mode().Perm(), tt.fileMode)
			}
		}
	}
}
