package lab

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// Iptables runs iptables with args inside host (faults: drops by protocol
// or port, one direction or both).
func (l *Lab) Iptables(host string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := l.Exec(ctx, host, "iptables", append([]string{"-w"}, args...)...)
	return err
}

// DropVRRP makes host drop incoming VRRP (IP protocol 112) when on, and
// removes that rule when off: the host stops hearing its peers while they
// still hear it (one direction).
func (l *Lab) DropVRRP(host string, on bool) error {
	op := "-A"
	if !on {
		op = "-D"
	}
	return l.Iptables(host, op, "INPUT", "-p", "112", "-j", "DROP")
}

// Pause stops the process group with SIGSTOP (a hung daemon: it neither
// adverts nor removes its VIPs); Resume continues it.
func (p *Process) Pause() error { return p.signalGroup(syscall.SIGSTOP) }

// Resume continues a paused process group.
func (p *Process) Resume() error { return p.signalGroup(syscall.SIGCONT) }

func (p *Process) signalGroup(sig syscall.Signal) error {
	pid := p.PID()
	if pid == 0 {
		return fmt.Errorf("lab: %s not started", p.Name)
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("lab: signal %s group %v: %w", p.Name, sig, err)
	}
	return nil
}
