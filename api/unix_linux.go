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
