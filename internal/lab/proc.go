package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program running inside a lab host, in its own process
// group, with stdout and stderr appended to Log.
type Process struct {
	Name string // e.g. "keepalived@h1"
	Host *Host
	Log  string
	argv []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from Wait
}

// Start runs argv inside host (through `ip netns exec`), logging to
// host.Dir/name.log. The lab kills it at Close.
func (l *Lab) Start(host, name string, argv ...string) (*Process, error) {
	h := l.Host(host)
	if h == nil {
		return nil, fmt.Errorf("lab: no host %q", host)
	}
	if len(argv) == 0 {
		return nil, errors.New("lab: empty command")
	}
	p := &Process{Name: name + "@" + h.Name, Host: h, Log: filepath.Join(h.Dir, name+".log"), argv: argv}
	if err := p.start(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("lab: %s is already running", p.Name)
		}
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: log for %s: %w", p.Name, err)
	}
	fmt.Fprintf(logf, "=== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.Host.NS}, p.argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Kill takes the daemon and its children together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("lab: start %s: %w", p.Name, err)
	}
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	done := p.done
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// PID is the process id (of `ip netns exec`, which execs the program).
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the current run exits.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Err is the exit error of the last run (nil while running or on exit 0).
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to the main process only.
func (p *Process) Signal(sig syscall.Signal) error {
	pid := p.PID()
	if pid == 0 {
		return fmt.Errorf("lab: %s not started", p.Name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("lab: signal %s %v: %w", p.Name, sig, err)
	}
	return nil
}

// Stop sends SIGTERM (a graceful stop: VRRP sends priority 0) and waits up
// to timeout for the exit; then it kills the whole group.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.Exited():
		p.killGroup() // children that outlived the parent
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("lab: %s did not exit within %s of SIGTERM; killed", p.Name, timeout)
	}
}

// Kill sends SIGKILL to the whole process group (a crash: VIPs stay) and
// waits for the main process to be reaped.
func (p *Process) Kill() {
	if p.PID() == 0 {
		return
	}
	p.killGroup()
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
	}
}

func (p *Process) killGroup() {
	if pid := p.PID(); pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// Restart starts the same command again after the previous run exited.
func (p *Process) Restart() error {
	if p.Running() {
		return fmt.Errorf("lab: restart %s: still running", p.Name)
	}
	return p.start()
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitLog polls the log until it contains s (since the process started,
// counting earlier runs too) or timeout passes.
func (p *Process) WaitLog(s string, timeout time.Duration) error {
	return p.WaitLogCount(s, 1, timeout)
}

// LogCount is how many times s is in the process's log so far.
func (p *Process) LogCount(s string) int {
	b, _ := os.ReadFile(p.Log)
	return strings.Count(string(b), s)
}

// WaitLogCount waits until s is in the log at least n times: a line the
// log already holds (the first reload's "reload complete") does not
// satisfy the wait for the next one.
func (p *Process) WaitLogCount(s string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.LogCount(s) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			times := ""
			if n > 1 {
				times = fmt.Sprintf(" %d times", n)
			}
			return fmt.Errorf("lab: %q not%s in %s's log after %s; tail:\n%s", s, times, p.Name, timeout, p.Tail(15))
		}
		time.Sleep(PollInterval)
	}
}

// Daemon is a VRRP daemon (keepalived or hakeepd) in a lab host.
type Daemon struct {
	*Process
	Conf    string // path of its configuration file
	PIDFile string
}

// StartKeepalived writes conf to host.Dir/keepalived.conf and starts
// Debian's keepalived there, VRRP only, in the foreground, logging to the
// console, with its own pid files (a shared /run makes a second instance
// exit silently). extra is appended to the command line. It returns once
// the VRRP child has written its pid file.
func (l *Lab) StartKeepalived(host, conf string, extra ...string) (*Daemon, error) {
	h := l.Host(host)
	if h == nil {
		return nil, fmt.Errorf("lab: no host %q", host)
	}
	path := filepath.Join(h.Dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	pid := func(n string) string { return filepath.Join(h.Dir, n+".pid") }
	for _, n := range []string{"keepalived", "vrrp", "checkers", "bfd"} {
		os.Remove(pid(n))
	}
	argv := append([]string{"keepalived", "-n", "-l", "-D", "-G", "-P", "-f", path,
		"-p", pid("keepalived"), "-r", pid("vrrp"), "-c", pid("checkers"), "-b", pid("bfd")}, extra...)
	p, err := l.Start(host, "keepalived", argv...)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Process: p, Conf: path, PIDFile: pid("keepalived")}
	return d, d.waitFile(pid("vrrp"), 10*time.Second)
}

// StartHakeepd writes conf to host.Dir/hakeepd.conf and starts bin as
// `hakeepd -n -l -f CONF -p PIDFILE -api host.Dir/hakeepd.sock --state-dir host.Dir extra...`. It returns once the pid file
// exists (or, if the daemon writes none, after it stayed up 500 ms).
func (l *Lab) StartHakeepd(bin, host, conf string, extra ...string) (*Daemon, error) {
	h := l.Host(host)
	if h == nil {
		return nil, fmt.Errorf("lab: no host %q", host)
	}
	path := filepath.Join(h.Dir, "hakeepd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	pidFile := filepath.Join(h.Dir, "hakeepd.pid")
	os.Remove(pidFile)
	// The API socket and the state directory are per daemon too: several
	// run on one machine, and one must never delete another's services.
	argv := append([]string{bin, "-n", "-l", "-G", "-f", path, "-p", pidFile, "-api", filepath.Join(h.Dir, "hakeepd.sock"), "--state-dir", h.Dir}, extra...)
	p, err := l.Start(host, "hakeepd", argv...)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Process: p, Conf: path, PIDFile: pidFile}
	return d, d.waitFile(pidFile, 5*time.Second)
}

// Restart starts the daemon again with the same configuration and waits as
// its Start did.
func (d *Daemon) Restart() error {
	for _, n := range []string{"keepalived", "vrrp", "checkers", "bfd", "hakeepd"} {
		os.Remove(filepath.Join(d.Host.Dir, n+".pid"))
	}
	if err := d.Process.Restart(); err != nil {
		return err
	}
	if strings.HasSuffix(d.PIDFile, "keepalived.pid") {
		return d.waitFile(filepath.Join(d.Host.Dir, "vrrp.pid"), 10*time.Second)
	}
	return d.waitFile(d.PIDFile, 5*time.Second)
}

func (d *Daemon) waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return nil
		}
		if !d.Running() {
			return fmt.Errorf("lab: %s exited at start (%v); log tail:\n%s", d.Name, d.Err(), d.Tail(20))
		}
		if time.Now().After(deadline) {
			if !strings.HasSuffix(path, "vrrp.pid") {
				return nil // running, but writes no pid file: good enough
			}
			d.Kill()
			return fmt.Errorf("lab: %s wrote no %s within %s; log tail:\n%s", d.Name, filepath.Base(path), timeout, d.Tail(20))
		}
		time.Sleep(PollInterval)
	}
}
