package lab

import "syscall"

// Signal lets the tests pause tcpdump (SIGSTOP) to fill its ring.
func (c *Capture) Signal(sig syscall.Signal) error { return c.proc.Signal(sig) }
