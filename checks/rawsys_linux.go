package checks

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The connector's socket work as raw system calls. None of these waits:
// the sockets are non-blocking, and closing one does not linger (ours
// reset, or have not connected). A plain system call enters the
// scheduler's syscall state, and when it lasts over sysmon's tick (20 µs)
// sysmon hands the goroutine's P to another thread, which the returning
// call must then win back: futex wakes and thread switches per call. On
// hardware a connect is a few microseconds and that rarely happens; in
// the qemu VM's emulated CPU a connect takes 1-2 ms, and perf showed
// hakeepd's checker with 22% of its CPU in finish_task_switch (keepalived,
// one thread: 5%) and its sysmon thread making 600 sleeps a second with a
// clock read each (BENCHMARKS.md, "## checks", fifth session).
// A raw call keeps the P: the connector's goroutine is simply running,
// and it yields when it has run for yieldAfter (connect_linux.go).

func rawSocket(family int) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family),
		uintptr(unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC), uintptr(unix.IPPROTO_TCP))
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// rawConnect starts a non-blocking connect to sa (an IPv4 or IPv6
// address; rawSockaddr makes only those).
func rawConnect(fd int, sa unix.Sockaddr) error {
	var e unix.Errno
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		raw := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Addr}
		putPort(&raw.Port, a.Port)
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&raw)), unsafe.Sizeof(raw))
	case *unix.SockaddrInet6:
		raw := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.Addr, Scope_id: a.ZoneId}
		putPort(&raw.Port, a.Port)
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&raw)), unsafe.Sizeof(raw))
	default:
		return unix.Connect(fd, sa)
	}
	if e != 0 {
		return e
	}
	return nil
}

// putPort writes port in network byte order.
func putPort(p *uint16, port int) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func rawEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// rawSoError is the socket's pending error (SO_ERROR): how its connect
// ended.
func rawSoError(fd int) (int, error) {
	var v int32
	l := uint32(unsafe.Sizeof(v))
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR,
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}

// rawResetClose closes a connected socket with a reset rather than a FIN
// (SO_LINGER 0): no TIME_WAIT pile-up at thousands of checks a second.
func rawResetClose(fd int) {
	lg := unix.Linger{Onoff: 1, Linger: 0}
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&lg)), unsafe.Sizeof(lg), 0)
	rawClose(fd)
}

func rawClose(fd int) { unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) }
