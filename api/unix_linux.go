package api

import (
	"fmt"
	"net"
	"syscall"
)

// listenUnixPrivate binds the socket under umask 077 so it is never
// reachable by other users, even before the chmod.
func listenUnixPrivate(path string) (net.Listener, error) {
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on API socket %s: %w", path, err)
	}
	return ln, nil
}

// peerCred returns the credentials the kernel recorded for the process
// at the other end of c when it connected (SO_PEERCRED): they cannot be
// forged by the client.
func peerCred(c *net.UnixConn) (uid, gid, pid int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, 0, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, 0, err
	}
	if serr != nil {
		return 0, 0, 0, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return int(cred.Uid), int(cred.Gid), int(cred.Pid), nil
}
