package dataplane

import (
	"strconv"
	"strings"

	"hakeep/checks"
	"hakeep/lvs"
)

// LineWriter takes one notify fifo line without blocking
// (notifyfifo.Fifo).
type LineWriter interface {
	WriteLine(line string)
}

func writeLine(ws []LineWriter, line string) {
	for _, w := range ws {
		w.WriteLine(line)
	}
}

// vsFifoLine is keepalived's "VS <vs> UP|DOWN" (ipwrapper.c
// notify_fifo_vs) for a quorum change.
func vsFifoLine(e lvs.QuorumEvent) string {
	st := "DOWN"
	if e.Up {
		st = "UP"
	}
	return "VS " + fifoVS(e.VS) + " " + st + "\n"
}

// rsFifoLine is keepalived's "RS <rs> <vs> UP|DOWN" (notify_fifo_rs) for
// a checker transition.
func rsFifoLine(t checks.Transition) string {
	st := "DOWN"
	if t.Up {
		st = "UP"
	}
	_, proto := splitKey(t.VirtualServer)
	rs := "[" + t.RealServer.Addr().String() + "]:" + proto + ":" + strconv.Itoa(int(t.RealServer.Port()))
	return "RS " + rs + " " + fifoVS(t.VirtualServer) + " " + st + "\n"
}

// splitKey splits a config.VirtualServer Key ("IP:PORT/PROTO",
// "fwmark:N/PROTO", "group:NAME/PROTO") into its service and lower-case
// protocol.
func splitKey(key string) (string, string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return key, "none"
	}
	return key[:i], strings.ToLower(key[i+1:])
}

// fifoVS formats a virtual server as keepalived's format_vs does:
// "[IP]:proto:PORT", "FWM N", or "[GROUP]:0" for a virtual_server group.
func fifoVS(key string) string {
	svc, proto := splitKey(key)
	switch {
	case strings.HasPrefix(svc, "fwmark:"):
		return "FWM " + strings.TrimPrefix(svc, "fwmark:")
	case strings.HasPrefix(svc, "group:"):
		// keepalived prints the group's name and the port of the
		// virtual_server line, which is 0 for a group.
		return "[" + strings.TrimPrefix(svc, "group:") + "]:0"
	}
	i := strings.LastIndexByte(svc, ':')
	if i < 0 {
		return svc
	}
	host := strings.TrimSuffix(strings.TrimPrefix(svc[:i], "["), "]")
	return "[" + host + "]:" + proto + ":" + svc[i+1:]
}
