package checks

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ScriptRunner runs a user's command line (MISC_CHECK, notify_up,
// notify_down). The lead wires the script package's runner here; ExecRunner
// is the plain implementation.
type ScriptRunner interface {
	RunScript(ctx context.Context, cmdline, user, group string, timeout time.Duration) ScriptResult
}

// ScriptResult is how a script ended.
type ScriptResult struct {
	ExitCode int // -1 when it did not exit normally
	TimedOut bool
	Err      error
}

// ExecRunner runs scripts directly (no shell, keepalived's word splitting)
// in their own process group, killed (SIGTERM, then SIGKILL) on timeout.
type ExecRunner struct {
	// KillGrace is the time between SIGTERM and SIGKILL (default 1 s).
	KillGrace time.Duration
}

// RunScript runs cmdline as user/group (empty: as we are).
func (r ExecRunner) RunScript(ctx context.Context, cmdline, userName, group string, timeout time.Duration) ScriptResult {
	args, err := SplitCommandLine(cmdline)
	if err != nil {
		return ScriptResult{ExitCode: -1, Err: err}
	}
	if len(args) == 0 {
		return ScriptResult{ExitCode: -1, Err: errors.New("empty command line")}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if userName != "" {
		cred, err := credential(userName, group)
		if err != nil {
			return ScriptResult{ExitCode: -1, Err: err}
		}
		cmd.SysProcAttr.Credential = cred
	}
	if err := cmd.Start(); err != nil {
		return ScriptResult{ExitCode: -1, Err: fmt.Errorf("start %s: %w", args[0], err)}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	grace := r.KillGrace
	if grace <= 0 {
		grace = time.Second
	}
	pgid := cmd.Process.Pid
	select {
	case err := <-done:
		return exitResult(err)
	case <-tc:
	case <-ctx.Done():
	}
	// Too slow (or we are stopping): the whole group goes.
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	return ScriptResult{ExitCode: -1, TimedOut: true, Err: fmt.Errorf("%s: timed out after %s", args[0], timeout)}
}

func exitResult(err error) ScriptResult {
	if err == nil {
		return ScriptResult{}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ScriptResult{ExitCode: ee.ExitCode(), Err: err}
	}
	return ScriptResult{ExitCode: -1, Err: err}
}

func credential(userName, group string) (*syscall.Credential, error) {
	u, err := user.Lookup(userName)
	if err != nil {
		return nil, fmt.Errorf("script user %s: %w", userName, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("script group %s: %w", group, err)
		}
		gid, _ = strconv.ParseUint(g.Gid, 10, 32)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// SplitCommandLine splits like keepalived: words separated by blanks,
// single or double quotes group, backslash escapes the next character.
func SplitCommandLine(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
		quote rune
		esc   bool
	)
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, inArg = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inArg = r, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("command line %q: unterminated quote", s)
	}
	if esc {
		return nil, fmt.Errorf("command line %q: trailing backslash", s)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
