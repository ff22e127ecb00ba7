package checks

import (
	"context"
	"fmt"
	"time"

	"hakeep/script"
)

// miscProber is MISC_CHECK: exit 0 up, 1 down; with misc_dynamic 2-255 up
// with weight = code-2; a script running past misc_timeout is killed and
// counts as a failure.
type miscProber struct {
	c      Checker
	runner ScriptRunner
}

func newMiscProber(c Checker, runner ScriptRunner) (*miscProber, error) {
	if _, err := script.Split(c.Misc.Path); err != nil {
		return nil, fmt.Errorf("MISC_CHECK: %w", err)
	}
	return &miscProber{c: c, runner: runner}, nil
}

func (p *miscProber) timeout() time.Duration {
	if p.c.Misc.Timeout > 0 {
		return p.c.Misc.Timeout
	}
	return p.c.DelayLoop
}

func (p *miscProber) Probe(ctx context.Context) Result {
	to := p.timeout()
	res := p.runner.RunScript(ctx, p.c.Misc.Path, p.c.Misc.User, p.c.Misc.Group, to)
	return miscResult(p.c.Misc.Path, p.c.Misc.Dynamic, to, res)
}

func miscResult(path string, dynamic bool, to time.Duration, res ScriptResult) Result {
	switch {
	case res.TimedOut:
		return failf("MISC_CHECK %q timed out after %s (killed)", path, to)
	case res.ExitCode < 0:
		return failf("MISC_CHECK %q did not run: %v", path, res.Err)
	case res.ExitCode == 0:
		return okResult(fmt.Sprintf("MISC_CHECK %q succeeded", path))
	case dynamic && res.ExitCode >= 2 && res.ExitCode <= 255:
		return Result{OK: true, Weight: res.ExitCode - 2,
			Reason: fmt.Sprintf("MISC_CHECK %q exited %d: weight %d", path, res.ExitCode, res.ExitCode-2)}
	default:
		return failf("MISC_CHECK %q failed with exit status %d", path, res.ExitCode)
	}
}
