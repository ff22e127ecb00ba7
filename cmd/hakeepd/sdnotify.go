package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
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
