// Package script runs user scripts for hakeep (vrrp track and notify
// scripts, and later MISC_CHECK and notify_up/down) the way keepalived does:
// keepalived's command-line quoting, as script_user, under
// enable_script_security's path rules, in their own process group which is
// killed on timeout. It does not schedule scripts; callers decide when.
package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Runner runs scripts as one user.
type Runner struct {
	// User and Group to run as (script_user USER [GROUP]); empty User means
	// the current user. Group empty means the user's primary group.
	User, Group string
	// Secure enforces enable_script_security: a script run as root must not
	// be writable, nor be in a directory writable, by anyone but root.
	Secure bool
}

// Result is the outcome of one run.
type Result struct {
	// ExitCode is the exit status; -1 when the process was killed by a
	// signal or did not start.
	ExitCode int
	TimedOut bool
	// Err is set when the script could not be started or was refused.
	Err error
}

// OK reports a clean exit with status 0.
func (r Result) OK() bool { return r.Err == nil && !r.TimedOut && r.ExitCode == 0 }

// ErrInsecure is wrapped by Check's refusals under enable_script_security.
var ErrInsecure = errors.New("insecure script")

// Split parses a command line with keepalived's rules: words separated by
// blanks; '...' is literal; "..." groups with backslash escapes; a
// backslash outside quotes escapes the next character.
func Split(cmdline string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(cmdline); i++ {
		c := cmdline[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			in = true
			j := strings.IndexByte(cmdline[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("split %q: unterminated single quote", cmdline)
			}
			cur.WriteString(cmdline[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			in = true
			i++
			for ; i < len(cmdline) && cmdline[i] != '"'; i++ {
				if cmdline[i] == '\\' && i+1 < len(cmdline) {
					i++
				}
				cur.WriteByte(cmdline[i])
			}
			if i >= len(cmdline) {
				return nil, fmt.Errorf("split %q: unterminated double quote", cmdline)
			}
		case c == '\\':
			in = true
			if i+1 < len(cmdline) {
				i++
				cur.WriteByte(cmdline[i])
			}
		default:
			in = true
			cur.WriteByte(c)
		}
	}
	if in {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("split %q: empty command line", cmdline)
	}
	return words, nil
}

// resolve finds the program of a command line.
func resolve(cmdline string) ([]string, string, error) {
	args, err := Split(cmdline)
	if err != nil {
		return nil, "", err
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return nil, "", fmt.Errorf("find script %q: %w", path, err)
		}
		path = p
	}
	return args, path, nil
}

// credential returns the uid/gid/groups to run as; nil means "as we are".
func (r *Runner) credential() (*syscall.Credential, error) {
	if r.User == "" {
		return nil, nil
	}
	u, err := user.Lookup(r.User)
	if err != nil {
		return nil, fmt.Errorf("look up script user %q: %w", r.User, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if r.Group != "" {
		g, err := user.LookupGroup(r.Group)
		if err != nil {
			return nil, fmt.Errorf("look up script group %q: %w", r.Group, err)
		}
		gid, _ = strconv.ParseUint(g.Gid, 10, 32)
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.ParseUint(id, 10, 32); err == nil {
				c.Groups = append(c.Groups, uint32(n))
			}
		}
	}
	return c, nil
}

// Check validates a command line: it parses, the program exists and is
// executable, and under Secure every component of its path (after
// following symlinks) is writable only by root when the script would run as
// root. It returns nil when the script may run.
func (r *Runner) Check(cmdline string) error {
	_, path, err := resolve(cmdline)
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check script %s: %w", path, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("check script %s: not an executable file (mode %v)", path, st.Mode())
	}
	if !r.Secure {
		return nil
	}
	cred, err := r.credential()
	if err != nil {
		return err
	}
	asRoot := os.Geteuid() == 0 && (cred == nil || cred.Uid == 0)
	if !asRoot {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("check script %s: %w", path, err)
	}
	for p := real; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check script %s: %w", path, err)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("check script %s: cannot read owner of %s", path, p)
		}
		m := st.Mode()
		sticky := st.IsDir() && m&os.ModeSticky != 0
		switch {
		case sys.Uid != 0:
			return fmt.Errorf("%w: %s runs as root but %s is owned by uid %d (enable_script_security: the script and every directory above it must be owned by root and writable only by root)", ErrInsecure, path, p, sys.Uid)
		case m&0o002 != 0 && !sticky:
			return fmt.Errorf("%w: %s runs as root but %s is writable by everyone (mode %v; enable_script_security)", ErrInsecure, path, p, m.Perm())
		case m&0o020 != 0 && sys.Gid != 0 && !sticky:
			return fmt.Errorf("%w: %s runs as root but %s is writable by group %d (mode %v; enable_script_security)", ErrInsecure, path, p, sys.Gid, m.Perm())
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// Run runs cmdline with extraArgs appended, as the Runner's user, in a new
// process group that is killed (SIGKILL) when timeout passes or ctx ends.
// timeout 0 means no limit beyond ctx.
func (r *Runner) Run(ctx context.Context, cmdline string, extraArgs []string, timeout time.Duration) Result {
	if err := r.Check(cmdline); err != nil {
		return Result{ExitCode: -1, Err: err}
	}
	args, path, err := resolve(cmdline)
	if err != nil {
		return Result{ExitCode: -1, Err: err}
	}
	cred, err := r.credential()
	if err != nil {
		return Result{ExitCode: -1, Err: err}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.Command(path, append(args[1:], extraArgs...)...)
	cmd.Args[0] = args[0]
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cred != nil && (os.Geteuid() == 0) {
		cmd.SysProcAttr.Credential = cred
	}
	if err := cmd.Start(); err != nil {
		return Result{ExitCode: -1, Err: fmt.Errorf("start script %s: %w", path, err)}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timedOut bool
	select {
	case err = <-done:
	case <-ctx.Done():
		timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		// The whole group: a shell script's children die too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
	}
	res := Result{ExitCode: -1, TimedOut: timedOut}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		res.Err = fmt.Errorf("run script %s: %w", path, err)
	}
	if !timedOut && ctx.Err() != nil {
		res.Err = fmt.Errorf("run script %s: %w", path, ctx.Err())
	}
	return res
}
