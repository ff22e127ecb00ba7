package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// linkSender sends multicast adverts as link-layer frames through an
// AF_PACKET datagram socket: the kernel adds the Ethernet header (the
// device's own address as source, the group's multicast MAC as
// destination) and queues the frame on the device, as for any IP packet.
//
// Why not the raw IP socket alone: an IP packet to 224.0.0.18 needs an
// entry in the kernel's neighbour table for the group, and that table is
// one per host (every namespace shares gc_thresh3, 1,024 entries by
// default). Health checks to thousands of unreachable on-link real
// servers fill it with unresolved entries; the group's entry, which holds
// no reference, is then evicted and cannot be created again, and the
// kernel drops the advert without telling the sender (raw sockets report
// no ENOBUFS). In the issue 10 lab that silenced the master for up to 15 s
// while the event loop sent every advert on time. A frame sent here never
// touches the neighbour table.
//
// The frame bypasses netfilter's OUTPUT chain (iptables rules meant to
// drop a host's own adverts do not apply); INPUT on the receivers does.
//
// The socket is not in the runtime's netpoller: every advert sent through
// a socket there wakes the poller's thread once the frame has left (an
// edge-triggered "writable"), a wakeup per advert for nothing. Its
// sendto(2) is made without telling the scheduler (RawSyscall): on a
// non-blocking socket it cannot block, and a call the scheduler is told
// of wakes the runtime's monitor thread, which then polls for up to 10 ms
// (with the timerfd's, most of an idle daemon's wakeups: issue 13).
type linkSender struct {
	mu sync.Mutex // send and close: the fd is not reused under a send
	fd int        // -1 once closed
	sa unix.RawSockaddrLinklayer
}

func newLinkSender(ifi *net.Interface, group netip.Addr) (*linkSender, error) {
	mac, proto := multicastMAC(group)
	if mac == nil {
		return nil, fmt.Errorf("%s is not a multicast group", group)
	}
	// Protocol 0: the socket receives nothing, it only sends.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	l := &linkSender{fd: fd}
	l.sa = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(proto), Ifindex: int32(ifi.Index), Halen: uint8(len(mac))}
	copy(l.sa.Addr[:], mac)
	return l, nil
}

// send writes one IP packet (header included) as a frame; it gives up at
// deadline if the device's queue stays full.
func (l *linkSender) send(pkt []byte, deadline time.Time) error {
	if len(pkt) == 0 {
		return errors.New("empty advert")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return net.ErrClosed
	}
	return sendFirstFD(l.fd, deadline, func(fd int) error {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&pkt[0])), uintptr(len(pkt)), 0,
			uintptr(unsafe.Pointer(&l.sa)), unix.SizeofSockaddrLinklayer)
		if e != 0 {
			return e
		}
		return nil
	})
}

// sendFirstFD is sendFirst for a non-blocking socket outside the
// netpoller: one attempt at once, whatever the time; only on a full buffer
// it waits in poll(2) for room until deadline.
func sendFirstFD(fd int, deadline time.Time, send func(fd int) error) error {
	for {
		err := send(fd)
		if !errors.Is(err, unix.EAGAIN) {
			return err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(pfd, int((wait+time.Millisecond-1)/time.Millisecond)); err != nil && err != unix.EINTR {
			return err
		}
	}
}

// sendFirst makes one attempt to send at once, whatever the time, and
// only if the socket's buffer is full waits for room until deadline.
//
// Why not a write with a deadline (issue 10): the runtime checks the
// deadline before it tries the syscall, so an advert whose goroutine was
// held up past its deadline (a GC assist, a busy machine: an API flood
// showed it) was dropped with "i/o timeout" without a try, on a socket
// with room to spare, and the master went silent for an advert interval.
func sendFirst(c syscall.RawConn, setDeadline func(time.Time) error, deadline time.Time, send func(fd int) error) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = send(int(fd)) }); err != nil {
		return err
	}
	if !errors.Is(serr, unix.EAGAIN) {
		return serr
	}
	if err := setDeadline(deadline); err != nil {
		return err
	}
	err := c.Write(func(fd uintptr) bool {
		serr = send(int(fd))
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}

func (l *linkSender) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd >= 0 {
		unix.Close(l.fd)
		l.fd = -1
	}
}

// multicastMAC maps an IPv4 or IPv6 multicast group to its Ethernet
// address (RFC 1112: 01:00:5e + the low 23 bits; RFC 2464: 33:33 + the low
// 32 bits) and the EtherType of its packets.
func multicastMAC(group netip.Addr) (net.HardwareAddr, uint16) {
	switch {
	case group.Is4() && group.IsMulticast():
		g := group.As4()
		return net.HardwareAddr{0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]}, unix.ETH_P_IP
	case group.Is6() && group.IsMulticast():
		g := group.As16()
		return net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}, unix.ETH_P_IPV6
	}
	return nil, 0
}

// htons is v in network byte order, as sockaddr_ll's protocol wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
