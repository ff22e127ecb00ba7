package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hakeep/api"
)

// pidFiles are where hakeepd writes its pid: the default -p, and the
// systemd unit's.
var pidFiles = []string{"/run/hakeepd.pid", "/run/hakeep/hakeepd.pid"}

// reload is `hactl reload`: SIGHUP the daemon, wait for the outcome of
// that reload through the API and fail when the file was refused. It is
// the unit's ExecReload=, because systemd cannot fail a reload on the
// daemon's word alone: any READY=1 ends one as a success.
func (e *env) reload() error {
	if err := e.connect(); err != nil {
		return err
	}
	pid := e.pid
	if pid == 0 {
		var err error
		if pid, err = readPidFile(pidFiles); err != nil {
			return err
		}
	}
	ctx, cancel := e.ctx()
	defer cancel()
	st, err := e.client.Status(ctx)
	if err != nil {
		return err
	}
	var before time.Time
	if r := st.Config.LastReload; r != nil {
		before = r.At
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal hakeepd (pid %d): %w", pid, err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("hakeepd (pid %d) reported no reload within %s", pid, e.timeout)
		case <-tick.C:
		}
		st, err := e.client.Status(ctx)
		if err != nil {
			if errors.Is(err, api.ErrUnreachable) {
				continue // it may be busy with the reload itself
			}
			return err
		}
		r := st.Config.LastReload
		if r == nil || r.Source != "SIGHUP" || !r.At.After(before) {
			continue
		}
		if e.json {
			return e.printJSON(r)
		}
		if !r.OK {
			return fmt.Errorf("reload refused, running configuration kept: %s", r.Error)
		}
		fmt.Fprintf(e.out, "reload applied (SIGHUP at %s)\n", r.At.Format(time.DateTime))
		return nil
	}
}

// readPidFile returns the pid in the first of files that exists.
func readPidFile(files []string) (int, error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("pid file %s: no pid in %q", f, b)
		}
		return pid, nil
	}
	return 0, fmt.Errorf("no hakeepd pid file (%s): give --pid", strings.Join(files, ", "))
}
