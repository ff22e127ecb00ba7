package dataplane

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hakeep/checks"
	"hakeep/internal/notifyfifo"
	"hakeep/lvs"
)

func TestFifoFormats(t *testing.T) {
	rs := netip.MustParseAddrPort("10.0.1.1:8080")
	for _, tc := range []struct{ got, want string }{
		{vsFifoLine(lvs.QuorumEvent{VS: "10.0.0.100:80/TCP", Up: true}), "VS [10.0.0.100]:tcp:80 UP\n"},
		{vsFifoLine(lvs.QuorumEvent{VS: "[fd00::1]:53/UDP"}), "VS [fd00::1]:udp:53 DOWN\n"},
		{vsFifoLine(lvs.QuorumEvent{VS: "fwmark:7/TCP", Up: true}), "VS FWM 7 UP\n"},
		{vsFifoLine(lvs.QuorumEvent{VS: "group:WEB/TCP"}), "VS [WEB]:0 DOWN\n"},
		{rsFifoLine(checks.Transition{VirtualServer: "10.0.0.100:80/TCP", RealServer: rs}), "RS [10.0.1.1]:tcp:8080 [10.0.0.100]:tcp:80 DOWN\n"},
		{rsFifoLine(checks.Transition{VirtualServer: "fwmark:7/SCTP", RealServer: rs, Up: true}), "RS [10.0.1.1]:sctp:8080 FWM 7 UP\n"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

const fifoServer = `global_defs {
 router_id t
}
virtual_server 10.0.0.100 80 {
 lb_algo rr
 lb_kind NAT
 protocol TCP
 real_server 127.0.0.1 %d {
  weight 1
  TCP_CHECK {
   connect_timeout 1
   delay_loop 1
   retry 0
   warmup 0
  }
 }
}
`

// TestLVSNotifyFifo: a real server that stops answering and comes back
// writes keepalived's RS and VS lines to a real fifo.
func TestLVSNotifyFifo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "lvs.fifo")
	f, err := notifyfifo.Open(notifyfifo.Options{Path: path, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(want string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		var seen []string
		for {
			select {
			case l := <-lines:
				if l == want {
					return
				}
				seen = append(seen, l)
			case <-deadline:
				t.Fatalf("no line %q; got %q", want, seen)
			}
		}
	}

	mem := lvs.NewMemory()
	p := New(parse(t, fmt.Sprintf(fifoServer, port)), Options{Log: quiet(), OpenIPVS: func() (lvs.Client, error) { return mem, nil },
		Fifos: []LineWriter{f}})
	_, stop := runPlane(t, p)
	defer stop()
	vs := "[10.0.0.100]:tcp:80"
	rs := fmt.Sprintf("[127.0.0.1]:tcp:%d", port)
	ln.Close()
	expect("RS " + rs + " " + vs + " DOWN")
	expect("VS " + vs + " DOWN")
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	expect("RS " + rs + " " + vs + " UP")
	expect("VS " + vs + " UP")
}

// runPlane runs p until the returned stop.
func runPlane(t *testing.T, p *Plane) (*Plane, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return p, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}
