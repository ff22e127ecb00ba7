package lab

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultFilter is what a capture keeps: VRRP over IPv4/IPv6, ARP and
// ICMPv6 neighbour advertisements.
const DefaultFilter = "ip proto 112 or ip6 proto 112 or arp or (icmp6 and ip6[40] == 136)"

// markerEtherType (IEEE local experimental) tags the frame Stop sends
// through the bridge so it knows tcpdump has written everything before it.
const markerEtherType = 0x88b5

// Capture is tcpdump writing a pcap of the bridge (every port) in the
// switch namespace.
type Capture struct {
	File string
	proc *Process
	ns   netns.NsHandle // the switch's, where the marker is sent
}

var markerSeq atomic.Uint64

// StartCapture starts tcpdump on the bridge with filter (DefaultFilter if
// empty) into Dir/name.pcap and returns once it is listening.
func (l *Lab) StartCapture(name, filter string) (*Capture, error) {
	if filter == "" {
		filter = DefaultFilter
	}
	filter = fmt.Sprintf("(%s) or ether proto %#x", filter, markerEtherType)
	file := filepath.Join(l.Dir, name+".pcap")
	os.Remove(file)
	// --immediate-mode: or libpcap buffers and the last second is lost at
	// stop; -U flushes per packet; -Z root keeps write access to Dir.
	p := &Process{Name: "tcpdump-" + name + "@sw", Host: l.Switch, Log: filepath.Join(l.Dir, name+".tcpdump.log"),
		argv: []string{"tcpdump", "-i", Bridge, "-n", "--immediate-mode", "-U", "-Z", "root", "-w", file, filter}}
	if err := p.start(); err != nil {
		return nil, err
	}
	c := &Capture{File: file, proc: p, ns: l.Switch.handle}
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
// First it sends a marker frame through the bridge and waits until the
// file holds it: tcpdump exits on SIGINT without reading what is still
// in its ring, so a frame a host has already acted on (a gratuitous ARP
// the client learned) could otherwise be missing from the file.
func (c *Capture) Stop() {
	if !c.proc.Running() {
		return
	}
	if nonce, err := c.sendMarker(); err == nil {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && c.proc.Running() && !c.holdsMarker(nonce) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	_ = c.proc.Signal(syscall.SIGINT)
	select {
	case <-c.proc.Exited():
	case <-time.After(5 * time.Second):
		c.proc.Kill()
	}
}

// markerFrame is a broadcast frame of markerEtherType carrying nonce.
func markerFrame(nonce uint64) []byte {
	f := make([]byte, 60) // the Ethernet minimum, padded
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0xff, 0xfe})
	binary.BigEndian.PutUint16(f[12:14], markerEtherType)
	binary.BigEndian.PutUint64(f[14:22], nonce)
	return f
}

// sendMarker sends one marker frame out of the bridge device in the
// switch namespace, where tcpdump's socket sees it as outgoing.
func (c *Capture) sendMarker() (uint64, error) {
	nonce := markerSeq.Add(1)
	err := inNS(c.ns, func() error {
		ifi, err := net.InterfaceByName(Bridge)
		if err != nil {
			return err
		}
		// Protocol 0: this socket only sends.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, markerFrame(nonce), 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6,
			Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
	})
	return nonce, err
}

// holdsMarker reports whether the pcap file already has the marker.
func (c *Capture) holdsMarker(nonce uint64) bool {
	f, err := os.Open(c.File)
	if err != nil {
		return false
	}
	defer f.Close()
	want := markerFrame(nonce)[12:22]
	found := false
	_ = EachPcapRecord(f, func(_ time.Time, frame []byte) {
		if len(frame) >= 22 && bytes.Equal(frame[12:22], want) {
			found = true
		}
	})
	return found
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
