package checks

import (
	"context"
	"fmt"
	"time"

	"hakeep/script"
)

// ScriptRunner runs a user's command line (MISC_CHECK, notify_up,
// notify_down); Scripts is the real one, tests may use fakes.
type ScriptRunner interface {
	RunScript(ctx context.Context, cmdline, user, group string, timeout time.Duration) ScriptResult
}

// ScriptResult is how a script ended.
type ScriptResult struct {
	ExitCode int // -1 when it did not exit normally
	TimedOut bool
	Err      error
}

// Scripts runs checker scripts through the script package (keepalived's
// word splitting, script_user, enable_script_security, process-group kill
// on timeout). User/Group are the defaults (script_user) for scripts that
// name none.
type Scripts struct {
	User, Group string
	Secure      bool
}

// RunScript runs cmdline as user/group, or the defaults when user is empty.
func (s Scripts) RunScript(ctx context.Context, cmdline, user, group string, timeout time.Duration) ScriptResult {
	r := script.Runner{User: s.User, Group: s.Group, Secure: s.Secure}
	if user != "" {
		r.User, r.Group = user, group
	}
	res := r.Run(ctx, cmdline, nil, timeout)
	if res.TimedOut && res.Err == nil {
		res.Err = fmt.Errorf("timed out after %s", timeout)
	}
	return ScriptResult{ExitCode: res.ExitCode, TimedOut: res.TimedOut, Err: res.Err}
}
