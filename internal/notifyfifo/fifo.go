// Package notifyfifo writes keepalived's notify_fifo lines: a named pipe
// that a reader (often notify_fifo_script) follows. As keepalived does
// (lib/notify.c fifo_open), the fifo is created when missing, opened
// read-write and non-blocking, so opening never waits for a reader and a
// write never waits for one either: a line that does not fit in the pipe
// is dropped and counted.
package notifyfifo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"hakeep/script"
)

// Fifo is one open notify fifo. Its methods are safe for concurrent use
// and never block on the reader.
type Fifo struct {
	path    string
	created bool
	log     *slog.Logger

	mu sync.Mutex
	fd int // -1 when closed

	dropped atomic.Uint64
	written atomic.Uint64

	stopScript context.CancelFunc
	scriptDone chan struct{}
}

// Options open one fifo.
type Options struct {
	Path string
	// User/Group own a fifo created here (keepalived's notify_fifo PATH
	// USER GROUP); empty: not changed.
	User, Group string
	// Script, when set, is started once the fifo exists, with its path as
	// the last argument (notify_fifo_script), and runs until Close.
	Script string
	Runner *script.Runner
	Log    *slog.Logger
}

// Open creates (mkfifo, mode 0644 as keepalived) the fifo when it does not
// exist, starts its script and opens it.
func Open(o Options) (*Fifo, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	f := &Fifo{path: o.Path, fd: -1, log: o.Log}
	err := syscall.Mkfifo(o.Path, 0o644)
	switch {
	case err == nil:
		f.created = true
		if err := chown(o.Path, o.User, o.Group); err != nil {
			o.Log.Warn("notify fifo owner not set", "fifo", o.Path, "err", err)
		}
	case errors.Is(err, syscall.EEXIST):
		// Refused before its script starts: a regular file (or a link to
		// one) is never written to.
		var st syscall.Stat_t
		if err := syscall.Lstat(o.Path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			return nil, fmt.Errorf("notify fifo %s: not a fifo", o.Path)
		}
	default:
		return nil, fmt.Errorf("create notify fifo %s: %w", o.Path, err)
	}
	if o.Script != "" && o.Runner != nil {
		// keepalived starts the script before opening: the script may
		// open the fifo for reading first.
		ctx, cancel := context.WithCancel(context.Background())
		f.stopScript, f.scriptDone = cancel, make(chan struct{})
		go func() {
			defer close(f.scriptDone)
			res := o.Runner.Run(ctx, o.Script, []string{o.Path}, 0)
			if ctx.Err() == nil {
				o.Log.Warn("notify fifo script exited", "fifo", o.Path, "script", o.Script, "exit", res.ExitCode, "err", res.Err)
			}
		}()
	}
	// O_RDWR: a fifo opened for writing only would fail (ENXIO) without a
	// reader; read-write never does. O_NONBLOCK: a full pipe is EAGAIN,
	// never a wait. A raw descriptor, not an *os.File, so Go's poller
	// never parks a write until the pipe drains.
	fd, err := syscall.Open(o.Path, syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open notify fifo %s: %w", o.Path, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		syscall.Close(fd)
		f.Close()
		return nil, fmt.Errorf("notify fifo %s: not a fifo", o.Path)
	}
	f.fd = fd
	return f, nil
}

func chown(path, usr, grp string) error {
	if usr == "" && grp == "" {
		return nil
	}
	uid, gid := -1, -1
	if usr != "" {
		u, err := user.Lookup(usr)
		if err != nil {
			return err
		}
		uid, _ = strconv.Atoi(u.Uid)
		if grp == "" {
			gid, _ = strconv.Atoi(u.Gid)
		}
	}
	if grp != "" {
		g, err := user.LookupGroup(grp)
		if err != nil {
			return err
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return syscall.Chown(path, uid, gid)
}

// Path is the fifo's path.
func (f *Fifo) Path() string { return f.path }

// WriteLine writes line (which ends in "\n") without waiting: a line that
// does not fit in the pipe now is dropped and counted. Lines are shorter
// than PIPE_BUF, so the kernel writes each whole or not at all.
func (f *Fifo) WriteLine(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		f.dropped.Add(1)
		return
	}
	for {
		_, err := syscall.Write(f.fd, []byte(line))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			// The first drop, and every error other than a full pipe.
			if n := f.dropped.Add(1); n == 1 || !errors.Is(err, syscall.EAGAIN) {
				f.log.Warn("notify fifo line dropped", "fifo", f.path, "err", err)
			}
			return
		}
		f.written.Add(1)
		return
	}
}

// Dropped counts lines not written (full pipe, closed fifo).
func (f *Fifo) Dropped() uint64 { return f.dropped.Load() }

// Written counts lines written.
func (f *Fifo) Written() uint64 { return f.written.Load() }

// Close stops the script, removes a fifo created here (first, as
// keepalived does, so a reader looping on re-opening it cannot find it)
// and closes it.
func (f *Fifo) Close() {
	if f.created {
		syscall.Unlink(f.path)
		f.created = false
	}
	f.mu.Lock()
	if f.fd >= 0 {
		syscall.Close(f.fd)
		f.fd = -1
	}
	f.mu.Unlock()
	if f.stopScript != nil {
		f.stopScript()
		<-f.scriptDone
		f.stopScript = nil
	}
}
