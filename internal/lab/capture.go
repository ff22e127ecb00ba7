package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultFilter is what a capture keeps: VRRP over IPv4/IPv6, ARP and
// ICMPv6 neighbour advertisements.
const DefaultFilter = "ip proto 112 or ip6 proto 112 or arp or (icmp6 and ip6[40] == 136)"

// Capture is tcpdump writing a pcap of the bridge (every port) in the
// switch namespace.
type Capture struct {
	File string
	proc *Process
}

// StartCapture starts tcpdump on the bridge with filter (DefaultFilter if
// empty) into Dir/name.pcap and returns once it is listening.
func (l *Lab) StartCapture(name, filter string) (*Capture, error) {
	if filter == "" {
		filter = DefaultFilter
	}
	file := filepath.Join(l.Dir, name+".pcap")
	os.Remove(file)
	// --immediate-mode: or libpcap buffers and the last second is lost at
	// stop; -U flushes per packet; -Z root keeps write access to Dir.
	p := &Process{Name: "tcpdump-" + name + "@sw", Host: l.Switch, Log: filepath.Join(l.Dir, name+".tcpdump.log"),
		argv: []string{"tcpdump", "-i", Bridge, "-n", "--immediate-mode", "-U", "-Z", "root", "-w", file, filter}}
	if err := p.start(); err != nil {
		return nil, err
	}
	c := &Capture{File: file, proc: p}
	l.mu.Lock()
	l.captures = append(l.captures, c)
	l.mu.Unlock()
	if err := p.WaitLog("listening on", 10*time.Second); err != nil {
		p.Kill()
		return nil, fmt.Errorf("lab: capture %s: %w", name, err)
	}
	return c, nil
}

// Stop ends the capture (SIGINT, so tcpdump flushes) and waits for it.
func (c *Capture) Stop() {
	if !c.proc.Running() {
		return
	}
	_ = c.proc.Signal(syscall.SIGINT)
	select {
	case <-c.proc.Exited():
	case <-time.After(5 * time.Second):
		c.proc.Kill()
	}
}

// Packets stops the capture and decodes the pcap.
func (c *Capture) Packets() (*Packets, error) {
	c.Stop()
	f, err := os.Open(c.File)
	if err != nil {
		return nil, fmt.Errorf("lab: open capture: %w", err)
	}
	defer f.Close()
	return ReadPcap(f)
}
