package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
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
}

// parseFlags reads args (without the program name). Every keepalived flag is
// registered under both its letter and its long name.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("hakeepd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, short, long, def, usage string) {
		fs.StringVar(p, short, def, usage)
		fs.StringVar(p, long, def, usage)
	}
	boolean := func(p *bool, short, long, usage string) {
		fs.BoolVar(p, short, false, usage)
		fs.BoolVar(p, long, false, usage)
	}
	str(&o.configFile, "f", "use-file", "/etc/keepalived/keepalived.conf", "configuration file")
	boolean(&o.configTest, "t", "config-test", "check the configuration and exit (0 clean, 5 warnings, 1 errors)")
	str(&o.configID, "i", "config-id", "", "config id selecting @id lines (default: hostname)")
	boolean(&o.dontFork, "n", "dont-fork", "stay in the foreground (hakeepd never forks)")
	boolean(&o.logConsole, "l", "log-console", "log to stderr")
	boolean(&o.logDetail, "D", "log-detail", "detailed logs (debug level)")
	fs.IntVar(&o.logFacility, "S", 0, "syslog facility LOG_LOCAL0-7 (0-7)")
	fs.IntVar(&o.logFacility, "log-facility", 0, "syslog facility LOG_LOCAL0-7 (0-7)")
	boolean(&o.noSyslog, "G", "no-syslog", "do not log to syslog")
	str(&o.pidFile, "p", "pid", "/run/hakeepd.pid", "pid file")
	boolean(&o.vrrpOnly, "P", "vrrp", "run only the VRRP subsystem")
	boolean(&o.checkOnly, "C", "check", "run only the health-check and IPVS subsystems")
	boolean(&o.dumpConf, "d", "dump-conf", "print the parsed configuration as JSON and exit")
	fs.StringVar(&o.apiSocket, "api", "/run/hakeep/hakeepd.sock", "API unix socket (root only)")
	// /run by default: the record must never outlive the table it
	// describes, or a later run would delete a service it did not make.
	fs.StringVar(&o.stateDir, "state-dir", "/run/hakeepd",
		"directory for what must survive a restart but not a reboot: the IPVS services hakeepd programmed, "+
			"so that a restart deletes those no longer configured. Keep it on a filesystem cleared at boot "+
			"(/run is), exactly like the kernel's IPVS table, so the record never outlives the table it describes "+
			"(\"\": keep none; services of a previous run are then left alone)")
	boolean(&o.version, "v", "version", "print the version and exit")
	fs.BoolVar(&o.debug, "debug", false, "debug-level logs (same as -D)")
	// keepalived's per-child pid files: accepted so its unit files work.
	var ignored string
	for _, n := range []string{"r", "vrrp_pid", "c", "checkers_pid", "b", "bfd_pid"} {
		fs.StringVar(&ignored, n, "", "accepted for keepalived compatibility (hakeepd is one process)")
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.logFacility < 0 || o.logFacility > 7 {
		return o, fmt.Errorf("-S %d: facility must be 0-7 (LOG_LOCAL0-7)", o.logFacility)
	}
	if o.vrrpOnly && o.checkOnly {
		return o, fmt.Errorf("-P and -C together: give at most one")
	}
	return o, nil
}
