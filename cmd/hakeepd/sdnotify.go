package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sdNotify sends a state line to systemd when hakeepd runs as a
// Type=notify unit ($NOTIFY_SOCKET set); otherwise it does nothing.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract socket
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// watchdogInterval is half of systemd's WatchdogSec ($WATCHDOG_USEC), or 0
// when the unit has no watchdog (or it is meant for another process).
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// runWatchdog pets systemd's watchdog while alive() says the daemon's
// event loops answer, so a hung hakeepd is restarted by systemd.
func runWatchdog(ctx context.Context, alive func() bool) {
	every := watchdogInterval()
	if every == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				sdNotify("WATCHDOG=1")
			}
		}
	}
}

// errRefused marks a reload whose file has errors (nothing was applied).
var errRefused = errors.New("configuration refused")

// monotonicUsec is CLOCK_MONOTONIC in microseconds, systemd's clock for
// MONOTONIC_USEC=.
func monotonicUsec() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1_000_000 + uint64(ts.Nsec)/1_000
}

// notifiedReload runs one SIGHUP reload inside systemd's reload protocol
// (Type=notify-reload, and Type=notify's reload state): RELOADING=1 with
// MONOTONIC_USEC, which systemd needs to tell this reload from an older
// one, then READY=1 when it is over. systemd counts any READY=1 as a
// finished reload, so the outcome travels in STATUS= (systemctl status)
// and ERRNO= (EINVAL: the file was refused, EIO: it failed to apply, 0:
// applied, which clears an earlier error); `hactl reload`, the unit's
// ExecReload=, is what makes `systemctl reload` fail on a refused file.
func notifiedReload(notify func(string) error, apply func() error) error {
	notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading the configuration", monotonicUsec()))
	err := apply()
	notify(readyAfterReload(err, time.Now()))
	return err
}

// readyAfterReload is the READY=1 message that ends a reload.
func readyAfterReload(err error, at time.Time) string {
	when := at.Format(time.DateTime)
	if err == nil {
		return fmt.Sprintf("READY=1\nSTATUS=configuration applied (SIGHUP at %s)\nERRNO=0", when)
	}
	errno := syscall.EIO
	if errors.Is(err, errRefused) {
		errno = syscall.EINVAL
	}
	// STATUS= is one line.
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	return fmt.Sprintf("READY=1\nSTATUS=last reload (SIGHUP at %s) refused, running configuration kept: %s\nERRNO=%d", when, msg, int(errno))
}
