package outage_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"time"

	"hakeep/internal/lab"
)

// synsPerTarget counts, per destination ip:port, the connection attempts
// captured in the pcap file between from and to: distinct source ports
// (a retransmitted SYN has the same one; a reused port a while later is
// a new attempt). Only Ethernet + IPv4 + TCP.
func synsPerTarget(path string, from, to time.Time) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readSyns(bufio.NewReaderSize(f, 1<<20), from, to)
}

func readSyns(r io.Reader, from, to time.Time) (map[string]int, error) {
	type attempt struct {
		dst   netip.AddrPort
		sport uint16
	}
	// A retransmission comes within connect_timeout; the same source
	// port to the same server much later is a new attempt.
	const same = 4 * time.Second
	seen := map[attempt]time.Time{}
	out := map[string]int{}
	err := lab.EachPcapRecord(r, func(ts time.Time, p []byte) {
		if ts.Before(from) || ts.After(to) {
			return
		}
		if len(p) < 14+20 || binary.BigEndian.Uint16(p[12:]) != 0x0800 {
			return
		}
		ip := p[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 6 || len(ip) < ihl+14 {
			return
		}
		tcp := ip[ihl:]
		if tcp[13]&0x12 != 0x02 { // SYN without ACK
			return
		}
		a := attempt{netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(tcp[2:])),
			binary.BigEndian.Uint16(tcp[0:])}
		last, ok := seen[a]
		seen[a] = ts
		if ok && ts.Sub(last) < same {
			return
		}
		out[a.dst.String()]++
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// advertTimes are the times of the VRRP adverts (IPv4 protocol 112)
// captured in the pcap file between from and to.
func advertTimes(path string, from, to time.Time) ([]time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []time.Time
	err = lab.EachPcapRecord(bufio.NewReader(f), func(ts time.Time, p []byte) {
		if ts.Before(from) || ts.After(to) || len(p) < 14+20 || binary.BigEndian.Uint16(p[12:]) != 0x0800 || p[14+9] != 112 {
			return
		}
		out = append(out, ts)
	})
	return out, err
}
