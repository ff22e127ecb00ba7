package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
)

// options are hakeepd's command-line settings. The names and letters are
// keepalived's where keepalived has the same setting, so existing unit
// files and scripts keep working.
type options struct {
	configFile  string // -f, --use-file
	configTest  bool   // -t, --config-test
	configID    string // -i, --config-id
	dontFork    bool   // -n, --dont-fork (we never fork; accepted)
	logConsole  bool   // -l, --log-console
	logDetail   bool   // -D, --log-detail
	logFacility int    // -S, --log-facility (0-7 = LOG_LOCAL0-7)
	noSyslog    bool   // -G, --no-syslog
	pidFile     string // -p, --pid
	vrrpOnly    bool   // -P, --vrrp
	checkOnly   bool   // -C, --check
	dumpConf    bool   // -d, --dump-conf
	apiSocket   string // --api
	stateDir    string // --state-dir
	version     bool   // -v, --version
	debug       bool   // --debug: debug-level logs
	logJSON     bool   // --log-json: JSON lines instead of key=value text
	// logFacilitySet: -S was given (LOG_LOCALn); else LOG_DAEMON, as keepalived.
	logFacilitySet bool
	// logFacilityUser: -S user (LOG_USER).
	logFacilityUser bool

	help           bool     // -h, --help
	configTestFile string   // -t=FILE: the diagnostics go to FILE
	umask          int      // -u, --umask; -1: leave it
	coreDump       bool     // -m, -M: core dumps on a crash
	namespace      string   // -s, --namespace: run inside this named netns
	allConfig      bool     // -e: a missing include is an error
	signum         string   // --signum=SIGFUNC: print its signal number and exit
	genhash        bool     // -T first: keepalived's genhash (hactl genhash)
	genhashArgs    []string // what follows -T
}

// argMode is whether an option takes a value, as getopt_long's has_arg.
type argMode int

const (
	noArg       argMode = iota
	requiredArg         // -f FILE, -fFILE, --use-file FILE, --use-file=FILE
	optionalArg         // only attached: -tFILE, --config-test=FILE
)

// flagSpec is one option. keepalived 2.2's letter and long name where it
// has one; noEffect says why an option is accepted but changes nothing
// here (printed on stderr when given), so a keepalived unit file or wrapper
// that passes it keeps working and the operator still learns of it.
type flagSpec struct {
	short    byte // 0: long only
	long     string
	arg      argMode
	meta     string // the value's name in --help
	help     string
	noEffect string
	set      func(o *options, val string) error
}

func setBool(p func(o *options) *bool) func(*options, string) error {
	return func(o *options, _ string) error { *p(o) = true; return nil }
}

func setStr(p func(o *options) *string) func(*options, string) error {
	return func(o *options, v string) error { *p(o) = v; return nil }
}

// flagSpecs is every option hakeepd accepts: each of keepalived 2.2.7's
// (keepalived --help, plus its undocumented --perf, --debug,
// --no-mem-check, -L, -g and --flush-log-file) and hakeepd's own.
func flagSpecs() []flagSpec {
	return []flagSpec{
		{short: 'f', long: "use-file", arg: requiredArg, meta: "FILE", help: "configuration file (default /etc/keepalived/keepalived.conf)",
			set: setStr(func(o *options) *string { return &o.configFile })},
		{short: 'P', long: "vrrp", help: "run only the VRRP subsystem", set: setBool(func(o *options) *bool { return &o.vrrpOnly })},
		{short: 'C', long: "check", help: "run only the health-check and IPVS subsystems", set: setBool(func(o *options) *bool { return &o.checkOnly })},
		{short: 'B', long: "no_bfd", help: "do not run BFD", noEffect: "hakeepd has no BFD subsystem"},
		{long: "all", help: "run every subsystem even without configuration", noEffect: "hakeepd is one process; what is configured runs"},
		{short: 'l', long: "log-console", help: "log to stderr", set: setBool(func(o *options) *bool { return &o.logConsole })},
		{short: 'D', long: "log-detail", help: "detailed logs (debug level)", set: setBool(func(o *options) *bool { return &o.logDetail })},
		{short: 'S', long: "log-facility", arg: requiredArg, meta: "FACILITY", help: "syslog facility: 0-7 or local0-7 (LOG_LOCALn), user, daemon (default)", set: setFacility},
		{short: 'g', long: "log-file", arg: optionalArg, meta: "FILE", help: "log to a file", noEffect: "hakeepd writes no log file: use -l (stderr, which systemd sends to the journal) or syslog"},
		{long: "flush-log-file", help: "flush the log file after each line", noEffect: "hakeepd writes no log file"},
		{short: 'G', long: "no-syslog", help: "do not log to syslog", set: setBool(func(o *options) *bool { return &o.noSyslog })},
		{short: 'u', long: "umask", arg: requiredArg, meta: "MASK", help: "umask for the files hakeepd creates (numeric, e.g. 022 or 0x12)", set: setUmask},
		{short: 'X', long: "release-vips", help: "drop the VIPs on a transition caused by a signal", noEffect: "hakeepd's transitions do not depend on how they were caused"},
		{short: 'V', long: "dont-release-vrrp", help: "keep the VRRP VIPs and routes on stop", noEffect: "on stop hakeepd always hands mastership over (priority 0) and removes its VIPs"},
		{short: 'I', long: "dont-release-ipvs", help: "keep the IPVS table on stop", noEffect: "hakeepd leaves the IPVS table in place on stop already (unless lvs_flush_on_stop)"},
		{short: 'R', long: "dont-respawn", help: "do not respawn child processes", noEffect: "hakeepd has no child processes to respawn"},
		{short: 'n', long: "dont-fork", help: "stay in the foreground (hakeepd never forks)", set: setBool(func(o *options) *bool { return &o.dontFork })},
		{short: 'd', long: "dump-conf", help: "print the parsed configuration as JSON and exit", set: setBool(func(o *options) *bool { return &o.dumpConf })},
		{short: 'p', long: "pid", arg: requiredArg, meta: "FILE", help: "pid file (default /run/hakeepd.pid)", set: setStr(func(o *options) *string { return &o.pidFile })},
		{short: 'r', long: "vrrp_pid", arg: requiredArg, meta: "FILE", help: "pid file of the VRRP child", noEffect: "hakeepd is one process with one pid file (-p)"},
		{short: 'T', long: "genhash", help: "keepalived's genhash: the rest of the line is hactl genhash's (must come first)", set: func(*options, string) error {
			return errors.New("-T/--genhash must be the first option")
		}},
		{short: 'c', long: "checkers_pid", arg: requiredArg, meta: "FILE", help: "pid file of the checkers child", noEffect: "hakeepd is one process with one pid file (-p)"},
		{short: 'a', long: "address-monitoring", help: "log every address added or deleted (netlink)", noEffect: "hakeepd does not log other programs' address changes"},
		{short: 'b', long: "bfd_pid", arg: requiredArg, meta: "FILE", help: "pid file of the BFD child", noEffect: "hakeepd has no BFD subsystem"},
		{short: 'x', long: "snmp", help: "enable the SNMP subsystem", noEffect: "hakeepd has no SNMP agent: scrape its Prometheus metrics instead"},
		{short: 'A', long: "snmp-agent-socket", arg: requiredArg, meta: "FILE", help: "socket of the SNMP master agent", noEffect: "hakeepd has no SNMP agent"},
		{short: 's', long: "namespace", arg: requiredArg, meta: "NAME", help: "run in the network namespace NAME (through ip netns exec)", set: setStr(func(o *options) *string { return &o.namespace })},
		{short: 'm', long: "core-dump", help: "dump core on a crash (RLIMIT_CORE unlimited, GOTRACEBACK=crash)", set: setBool(func(o *options) *bool { return &o.coreDump })},
		{short: 'M', long: "core-dump-pattern", arg: optionalArg, meta: "PATN", help: "as -m; keepalived also sets kernel.core_pattern to PATN",
			set: func(o *options, v string) error {
				o.coreDump = true
				if v != "" {
					return noEffectError("the pattern: hakeepd does not change kernel.core_pattern (set it with sysctl)")
				}
				return nil
			}},
		{short: 'e', long: "all-config", help: "an include that matches no file is an error", set: setBool(func(o *options) *bool { return &o.allConfig })},
		{short: 'i', long: "config-id", arg: requiredArg, meta: "ID", help: "config id selecting @ID lines (default: the host name)", set: setStr(func(o *options) *string { return &o.configID })},
		{long: "signum", arg: requiredArg, meta: "SIGFUNC", help: "print the signal number for STOP, RELOAD, DATA, STATS, STATS_CLEAR or JSON and exit", set: setStr(func(o *options) *string { return &o.signum })},
		{short: 't', long: "config-test", arg: optionalArg, meta: "FILE", help: "check the configuration and exit (0 clean, 5 warnings, 1 errors); diagnostics to FILE if given",
			set: func(o *options, v string) error { o.configTest, o.configTestFile = true, v; return nil }},
		{long: "perf", arg: optionalArg, meta: "WHAT", help: "perf profiling", noEffect: "hakeepd has no perf hooks"},
		{long: "debug", arg: optionalArg, meta: "WHAT", help: "debug-level logs (same as -D)", set: setBool(func(o *options) *bool { return &o.debug })},
		{long: "no-mem-check", help: "keepalived's memory checker off", noEffect: "hakeepd has no memory checker"},
		{short: 'L', long: "mem-check-log", help: "keepalived's memory checker log", noEffect: "hakeepd has no memory checker"},
		{short: 'v', long: "version", help: "print the version and exit", set: setBool(func(o *options) *bool { return &o.version })},
		{short: 'h', long: "help", help: "print this help and exit", set: setBool(func(o *options) *bool { return &o.help })},
		// hakeepd's own.
		{long: "api", arg: requiredArg, meta: "PATH", help: "API unix socket, root only (default /run/hakeep/hakeepd.sock)", set: setStr(func(o *options) *string { return &o.apiSocket })},
		// /run by default: the record must never outlive the table it
		// describes, or a later run would delete a service it did not make.
		{long: "state-dir", arg: requiredArg, meta: "DIR",
			help: "what must survive a restart but not a reboot: the IPVS services hakeepd programmed, so that a restart " +
				"deletes those no longer configured; keep it on a filesystem cleared at boot like /run " +
				"(default /run/hakeep; \"\": keep none, a previous run's services are then left alone)",
			set: setStr(func(o *options) *string { return &o.stateDir })},
		{long: "log-json", help: "write logs as JSON objects (stderr and syslog)", set: setBool(func(o *options) *bool { return &o.logJSON })},
	}
}

// noEffectError from a set function: the option is accepted, but this
// part of it does nothing here.
type noEffectError string

func (e noEffectError) Error() string { return string(e) }

func setFacility(o *options, v string) error {
	s := strings.ToLower(v)
	switch {
	case s == "daemon":
		o.logFacilitySet, o.logFacilityUser, o.logFacility = false, false, 0
		return nil
	case s == "user":
		o.logFacilitySet, o.logFacilityUser, o.logFacility = false, true, 0
		return nil
	case strings.HasPrefix(s, "local"):
		s = s[len("local"):]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 7 {
		return fmt.Errorf("-S %s: facility must be 0-7, local0-7, user or daemon", v)
	}
	o.logFacilitySet, o.logFacilityUser, o.logFacility = true, false, n
	return nil
}

func setUmask(o *options, v string) error {
	// keepalived reads it with strtol(.., 0): 022 is octal, 0x12 hex.
	n, err := strconv.ParseInt(v, 0, 32)
	if err != nil || n < 0 || n > 0o777 {
		return fmt.Errorf("-u %s: umask must be a number from 0 to 0777", v)
	}
	o.umask = int(n)
	return nil
}

// defaults are the settings without any option.
func defaults() options {
	return options{
		configFile: "/etc/keepalived/keepalived.conf",
		pidFile:    "/run/hakeepd.pid",
		apiSocket:  "/run/hakeep/hakeepd.sock",
		stateDir:   "/run/hakeep",
		umask:      -1,
	}
}

// parseFlags reads args (without the program name) the way keepalived's
// getopt_long does: short options bundle (-DnP), a value may be attached
// (-S3, -ffile) or follow, long options take --name=value or --name value
// and may be shortened to a unique prefix. hakeepd also takes its long
// options after one dash (-api PATH), as it always has. Options that are
// accepted but have no effect here are named on stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := defaults()
	if len(args) > 0 && (args[0] == "-T" || args[0] == "--genhash") {
		o.genhash, o.genhashArgs = true, args[1:]
		return o, nil
	}
	specs := flagSpecs()
	byShort := map[byte]*flagSpec{}
	for i := range specs {
		if specs[i].short != 0 {
			byShort[specs[i].short] = &specs[i]
		}
	}
	apply := func(f *flagSpec, name, val string) error {
		if f.set != nil {
			err := f.set(&o, val)
			var ne noEffectError
			if !errors.As(err, &ne) {
				return err
			}
			fmt.Fprintf(stderr, "hakeepd: %s accepted, %s\n", name, ne)
			return nil
		}
		fmt.Fprintf(stderr, "hakeepd: %s accepted, no effect in hakeepd: %s\n", name, f.noEffect)
		return nil
	}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--") || (strings.HasPrefix(a, "-") && len(a) > 2 && exactLong(specs, a[1:]) != nil):
			name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
			f, err := findLong(specs, name)
			if err != nil {
				return o, err
			}
			label := "--" + f.long
			switch {
			case f.arg == noArg && hasVal:
				return o, fmt.Errorf("option %s takes no value", label)
			case f.arg == requiredArg && !hasVal:
				if i+1 >= len(args) {
					return o, fmt.Errorf("option %s needs a value (%s)", label, f.meta)
				}
				i++
				val = args[i]
			}
			if err := apply(f, label, val); err != nil {
				return o, err
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				f := byShort[a[j]]
				if f == nil {
					return o, fmt.Errorf("unknown option -%c (hakeepd --help lists them)", a[j])
				}
				label := "-" + string(a[j])
				if f.long != "" {
					label += "/--" + f.long
				}
				val := ""
				if f.arg != noArg {
					val = a[j+1:]
					if val == "" && f.arg == requiredArg {
						if i+1 >= len(args) {
							return o, fmt.Errorf("option -%c needs a value (%s)", a[j], f.meta)
						}
						i++
						val = args[i]
					}
					j = len(a)
				}
				if err := apply(f, label, val); err != nil {
					return o, err
				}
			}
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))
	}
	if o.vrrpOnly && o.checkOnly {
		return o, fmt.Errorf("-P and -C together: give at most one")
	}
	return o, nil
}

func exactLong(specs []flagSpec, arg string) *flagSpec {
	name, _, _ := strings.Cut(arg, "=")
	for i := range specs {
		if specs[i].long == name {
			return &specs[i]
		}
	}
	return nil
}

// findLong finds a long option by its name or a unique prefix of it.
func findLong(specs []flagSpec, name string) (*flagSpec, error) {
	if f := exactLong(specs, name); f != nil {
		return f, nil
	}
	var found []*flagSpec
	for i := range specs {
		if name != "" && strings.HasPrefix(specs[i].long, name) {
			found = append(found, &specs[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("unknown option --%s (hakeepd --help lists them)", name)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, f := range found {
		names = append(names, "--"+f.long)
	}
	return nil, fmt.Errorf("option --%s is ambiguous: %s", name, strings.Join(names, ", "))
}

// printUsage writes --help: keepalived's layout, one option a line.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: hakeepd [OPTION...]")
	for _, f := range flagSpecs() {
		left := "    "
		if f.short != 0 {
			left = "-" + string(f.short) + ", "
		}
		left += "--" + f.long
		switch f.arg {
		case requiredArg:
			left += "=" + f.meta
		case optionalArg:
			left += "[=" + f.meta + "]"
		}
		help := f.help
		if f.noEffect != "" {
			help += " (accepted, no effect in hakeepd)"
		}
		fmt.Fprintf(w, "  %-30s %s\n", left, help)
	}
}

// keepalived's --signum names and their signals. STATS_CLEAR and JSON are
// realtime signals in keepalived 2.2 (SIGRTMIN+2 and SIGRTMAX-1 as
// glibc numbers them); hakeepd handles both so a script that sends them
// does not kill it.
var signums = map[string]syscall.Signal{
	"STOP":        syscall.SIGTERM,
	"RELOAD":      syscall.SIGHUP,
	"DATA":        syscall.SIGUSR1,
	"STATS":       syscall.SIGUSR2,
	"STATS_CLEAR": sigStatsClear,
	"JSON":        sigJSON,
}

const (
	sigJSON       = syscall.Signal(36)
	sigStatsClear = syscall.Signal(63)
)
