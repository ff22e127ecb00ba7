package vrrp

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSendFirst: an advert is tried even when its deadline passed before
// the write (issue 10: the runtime refused such writes without a try, so
// a held-up loop lost adverts on an idle socket); the deadline only
// bounds waiting for room in a full buffer.
func TestSendFirst(t *testing.T) {
	for _, tc := range []struct {
		name     string
		full     bool          // fill the socket's buffer first
		deadline time.Duration // from now
		wantErr  error
	}{
		{name: "deadline long past, room in the buffer", deadline: -time.Hour},
		{name: "deadline ahead, room in the buffer", deadline: time.Hour},
		{name: "deadline long past, buffer full", full: true, deadline: -time.Hour, wantErr: os.ErrDeadlineExceeded},
		{name: "deadline soon, buffer full", full: true, deadline: 10 * time.Millisecond, wantErr: os.ErrDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			fa, fb := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
			a, err := net.FileConn(fa)
			if err != nil {
				t.Fatal(err)
			}
			b, err := net.FileConn(fb)
			if err != nil {
				t.Fatal(err)
			}
			fa.Close()
			fb.Close()
			defer a.Close()
			defer b.Close()
			rc, err := a.(*net.UnixConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			send := func(fd int) error { return unix.Send(fd, []byte("advert"), 0) }
			if tc.full {
				for {
					var serr error
					rc.Control(func(fd uintptr) { serr = send(int(fd)) })
					if errors.Is(serr, unix.EAGAIN) {
						break
					}
					if serr != nil {
						t.Fatal(serr)
					}
				}
			}
			err = sendFirst(rc, a.SetWriteDeadline, time.Now().Add(tc.deadline), send)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("sendFirst: %v, want %v", err, tc.wantErr)
			}
			// The same for a socket outside the netpoller (linkSender's).
			rc.Control(func(fd uintptr) { err = sendFirstFD(int(fd), time.Now().Add(tc.deadline), send) })
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("sendFirstFD: %v, want %v", err, tc.wantErr)
			}
			if tc.full {
				return
			}
			for range 2 {
				buf := make([]byte, 16)
				n, err := b.Read(buf)
				if err != nil || string(buf[:n]) != "advert" {
					t.Fatalf("peer read %q, %v; want the advert", buf[:n], err)
				}
			}
		})
	}
}
