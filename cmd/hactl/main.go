// Command hactl is the operator's command line for hakeepd: it talks to the
// local daemon's API (a root-only unix socket, or TCP with mutual TLS) and
// prints human tables or, with --json, the API's JSON.
//
// Exit codes: 0 ok, 1 the operation failed (the message says why), 2 usage.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"hakeep/api"
	"hakeep/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: hactl [--api PATH] [--json] COMMAND [ARGS]

commands:
  status                        node, raft role, members, instances, virtual servers
  vrrp                          VRRP instances on this director
  ipvs                          the IPVS table with real-server health (like ipvsadm -Ln)
  checks                        health checkers on this director
  config validate FILE          check a file locally (file:line errors; nothing sent)
  config push FILE [--wait] [--timeout D]
                                validate, then commit FILE to the cluster
  config push --dry-run FILE    what each director would change (instances, VIPs,
                                IPVS services, real servers); nothing is committed
  config show                   the committed configuration text
  config history                committed versions and directors added or removed,
                                with who asked (the audit trail)
  config rollback VERSION       re-commit an older version as a new one
  cluster init                  bootstrap a one-director cluster here
  cluster join ADDR             join the cluster of the director at gossip ADDR
  cluster members               directors with gossip and raft state
  cluster remove NODE           take a director out of the raft cluster
  genhash URL | -s SERVER -p PORT -u PATH [-S]
                                MD5 digest of a page, for a url block's digest
                                (keepalived's genhash; runs locally, no daemon)
  tls init [--dir D] NODE...    a cluster CA, a certificate per director and a
                                gossip key, with the cluster { } lines using them
  tls ca create | tls cert create [--client] NAME | keygen [-o FILE]
                                each of those alone (runs locally; hactl tls help)
  reload [--pid PID]            SIGHUP the daemon and wait for its outcome: exit 1
                                if the file was refused (the unit's ExecReload=)
  version                       hactl's version (also --version)
  help [COMMAND]                this text, or one command's (also COMMAND --help)

global flags (accepted before or after the command):
  --api PATH      the daemon's unix socket (default $HAKEEP_API, else ` + api.DefaultSocket + `),
                  or HOST:PORT with --tls-cert/--tls-key/--tls-ca for the TCP API
  --json          print JSON
  --timeout D     how long to wait for the daemon (default 30s)
`

// exit codes
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// env is one invocation's settings and outputs.
type env struct {
	apiPath string
	tlsCert string
	tlsKey  string
	tlsCA   string
	json    bool
	timeout time.Duration
	wait    bool
	dryRun  bool
	id      string
	pid     int
	out     io.Writer
	errw    io.Writer
	client  *api.Client
}

func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.apiPath, "api", e.apiPath, "daemon API socket path or HOST:PORT")
	fs.StringVar(&e.tlsCert, "tls-cert", e.tlsCert, "client certificate for the TCP API")
	fs.StringVar(&e.tlsKey, "tls-key", e.tlsKey, "client key for the TCP API")
	fs.StringVar(&e.tlsCA, "tls-ca", e.tlsCA, "CA of the TCP API's server certificate")
	fs.BoolVar(&e.json, "json", e.json, "print JSON")
	fs.DurationVar(&e.timeout, "timeout", e.timeout, "how long to wait")
	fs.BoolVar(&e.wait, "wait", e.wait, "config push/rollback: wait until every director applied it")
	fs.BoolVar(&e.dryRun, "dry-run", e.dryRun, "config push: show what each director would change; commit nothing")
	fs.StringVar(&e.id, "i", e.id, "config validate: config id selecting @id lines")
	fs.IntVar(&e.pid, "pid", e.pid, "reload: the daemon's pid (default: from its pid file)")
	return fs
}

// parse parses flags anywhere among args and returns the positional ones.
func (e *env) parse(args []string) ([]string, error) {
	var pos []string
	fs := e.flags("hactl")
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) { // -h, -help, --help anywhere
				return nil, helpRequest(pos)
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	// genhash has keepalived genhash's own flags (-s -p -u -S -V), which
	// would collide with hactl's: it is dispatched before they are parsed.
	if len(args) > 0 && args[0] == "genhash" {
		return runGenhash(args[1:], stdout, stderr)
	}
	// So do the local secret makers (their --dir, --days, -o).
	if len(args) > 0 && (args[0] == "tls" || args[0] == "keygen") {
		return runSecrets(args, stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintf(stdout, "hactl %s\n", version.String())
		return exitOK
	}
	e := &env{apiPath: api.DefaultSocket, timeout: 30 * time.Second, out: stdout, errw: stderr}
	if p := os.Getenv("HAKEEP_API"); p != "" {
		e.apiPath = p
	}
	pos, err := e.parse(args)
	if err == nil && len(pos) == 0 {
		err = usagef("no command given")
	}
	if err == nil {
		err = e.dispatch(pos)
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "hactl: %s\n\n%s", ue.msg, usage)
		return exitUsage
	case errors.Is(err, errHelp):
		var h helpError
		errors.As(err, &h)
		fmt.Fprint(stdout, commandUsage(h.command))
		return exitOK
	default:
		fmt.Fprintf(stderr, "hactl: %v\n", err)
		return exitFail
	}
}

var errHelp = errors.New("help")

func (e *env) connect() error {
	if e.client != nil {
		return nil
	}
	if strings.HasPrefix(e.apiPath, "/") || strings.HasPrefix(e.apiPath, ".") || !strings.Contains(e.apiPath, ":") {
		e.client = api.NewClient(e.apiPath)
		return nil
	}
	if e.tlsCert == "" || e.tlsKey == "" || e.tlsCA == "" {
		return usagef("the TCP API %s needs --tls-cert, --tls-key and --tls-ca (mutual TLS only)", e.apiPath)
	}
	conf, err := clientTLS(e.tlsCert, e.tlsKey, e.tlsCA)
	if err != nil {
		return err
	}
	e.client = api.NewTLSClient(e.apiPath, conf)
	return nil
}

func (e *env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.timeout)
}

func need(pos []string, n int, what string) error {
	if len(pos) != n {
		return usagef("%s", what)
	}
	return nil
}

func (e *env) dispatch(pos []string) error {
	cmd := pos[0]
	switch cmd {
	case "help", "-h", "--help":
		return helpRequest(pos[1:])
	case "reload":
		if err := need(pos, 1, "usage: hactl reload [--pid PID]"); err != nil {
			return err
		}
		return e.reload()
	case "status":
		if err := need(pos, 1, "usage: hactl status"); err != nil {
			return err
		}
		return e.status()
	case "vrrp", "ipvs", "checks":
		if err := need(pos, 1, "usage: hactl "+cmd); err != nil {
			return err
		}
		return e.view(cmd)
	case "config":
		if len(pos) < 2 {
			return usagef("usage: hactl config validate|push|show|history|rollback ...")
		}
		switch pos[1] {
		case "validate":
			if err := need(pos, 3, "usage: hactl config validate FILE"); err != nil {
				return err
			}
			return e.configValidate(pos[2])
		case "push":
			if err := need(pos, 3, "usage: hactl config push FILE [--wait] [--timeout D] | config push --dry-run FILE"); err != nil {
				return err
			}
			return e.configPush(pos[2])
		case "show":
			if err := need(pos, 2, "usage: hactl config show"); err != nil {
				return err
			}
			return e.configShow()
		case "history":
			if err := need(pos, 2, "usage: hactl config history"); err != nil {
				return err
			}
			return e.configHistory()
		case "rollback":
			if err := need(pos, 3, "usage: hactl config rollback VERSION"); err != nil {
				return err
			}
			return e.configRollback(pos[2])
		}
		return usagef("unknown config command %q", pos[1])
	case "cluster":
		if len(pos) < 2 {
			return usagef("usage: hactl cluster init|join ADDR|members|remove NODE")
		}
		switch pos[1] {
		case "init":
			if err := need(pos, 2, "usage: hactl cluster init"); err != nil {
				return err
			}
			return e.clusterInit()
		case "join":
			if err := need(pos, 3, "usage: hactl cluster join ADDR"); err != nil {
				return err
			}
			return e.clusterJoin(pos[2])
		case "members":
			if err := need(pos, 2, "usage: hactl cluster members"); err != nil {
				return err
			}
			return e.clusterMembers()
		case "remove":
			if err := need(pos, 3, "usage: hactl cluster remove NODE"); err != nil {
				return err
			}
			return e.clusterRemove(pos[2])
		}
		return usagef("unknown cluster command %q", pos[1])
	case "version":
		fmt.Fprintf(e.out, "hactl %s\n", version.String())
		return nil
	case "tls", "keygen", "genhash":
		// Reached only after global flags: these run locally, first.
		return usagef("%s takes no global flags: hactl %s ... (hactl %s --help)", cmd, cmd, cmd)
	}
	return usagef("unknown command %q", cmd)
}

// printJSON writes v indented.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func clientTLS(cert, key, ca string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	pool, err := loadPool(ca)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
