package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// Advert is one VRRP advertisement seen on the wire.
type Advert struct {
	Time     time.Time
	SrcMAC   net.HardwareAddr
	Src      netip.Addr
	Dst      netip.Addr
	TTL      uint8 // IPv4 TTL or IPv6 hop limit
	Version  int
	VRID     uint8
	Prio     uint8
	Interval time.Duration // v2: seconds; v3: centiseconds
	Addrs    []netip.Addr
}

// ARP is one ARP packet seen on the wire.
type ARP struct {
	Time      time.Time
	Op        uint16 // 1 request, 2 reply
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetMAC net.HardwareAddr
	TargetIP  netip.Addr
}

// Gratuitous reports keepalived's gratuitous ARP form: sender IP = target IP.
func (a ARP) Gratuitous() bool { return a.SenderIP == a.TargetIP }

// NA is one ICMPv6 neighbour advertisement seen on the wire.
type NA struct {
	Time      time.Time
	SrcMAC    net.HardwareAddr
	Src, Dst  netip.Addr
	HopLimit  uint8
	Target    netip.Addr
	Router    bool
	Solicited bool
	Override  bool
}

// Packets is what ReadPcap found; other frames are counted and skipped.
type Packets struct {
	Adverts []Advert
	ARPs    []ARP
	NAs     []NA
	Other   int
}

// ErrPcap is wrapped by every ReadPcap error.
var ErrPcap = errors.New("bad pcap")

// ReadPcap decodes a classic pcap file (microsecond or nanosecond,
// either byte order) of Ethernet frames.
func ReadPcap(r io.Reader) (*Packets, error) {
	out := &Packets{}
	if err := EachPcapRecord(r, func(ts time.Time, f []byte) { decodeFrame(out, ts, f) }); err != nil {
		return out, err
	}
	return out, nil
}

// EachPcapRecord calls fn with each frame of a classic pcap stream of
// Ethernet frames and its time. The frame is only valid during the call.
// A torn last record (tcpdump killed mid-write) ends the stream quietly;
// every other error wraps ErrPcap.
func EachPcapRecord(r io.Reader, fn func(ts time.Time, frame []byte)) error {
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return fmt.Errorf("%w: global header: %v", ErrPcap, err)
	}
	var bo binary.ByteOrder
	nano := false
	switch magic := binary.LittleEndian.Uint32(gh[:4]); magic {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nano = binary.BigEndian, true
	default:
		return fmt.Errorf("%w: magic %#x", ErrPcap, magic)
	}
	if lt := bo.Uint32(gh[20:24]); lt != 1 {
		return fmt.Errorf("%w: link type %d, want Ethernet (1)", ErrPcap, lt)
	}
	snap := bo.Uint32(gh[16:20])
	if snap == 0 || snap > 1<<20 {
		snap = 1 << 18
	}
	var rh [16]byte
	var buf []byte
	for {
		_, err := io.ReadFull(r, rh[:])
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: record header: %v", ErrPcap, err)
		}
		sec, frac := bo.Uint32(rh[0:4]), bo.Uint32(rh[4:8])
		incl := bo.Uint32(rh[8:12])
		if incl > snap {
			return fmt.Errorf("%w: record of %d bytes exceeds snaplen %d", ErrPcap, incl, snap)
		}
		if cap(buf) < int(incl) {
			buf = make([]byte, incl)
		}
		data := buf[:incl]
		if _, err := io.ReadFull(r, data); err != nil {
			return nil
		}
		if !nano {
			frac *= 1000
		}
		fn(time.Unix(int64(sec), int64(frac)), data)
	}
}

func decodeFrame(out *Packets, ts time.Time, f []byte) {
	if len(f) < 14 {
		out.Other++
		return
	}
	src := net.HardwareAddr(append([]byte(nil), f[6:12]...))
	et, p := binary.BigEndian.Uint16(f[12:14]), f[14:]
	switch et {
	case markerEtherType: // Capture.Stop's own, not the lab's traffic
		return
	case 0x0806:
		if len(p) < 28 || binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != 0x0800 || p[4] != 6 || p[5] != 4 {
			out.Other++
			return
		}
		out.ARPs = append(out.ARPs, ARP{
			Time: ts, Op: binary.BigEndian.Uint16(p[6:8]),
			SenderMAC: net.HardwareAddr(append([]byte(nil), p[8:14]...)), SenderIP: netip.AddrFrom4([4]byte(p[14:18])),
			TargetMAC: net.HardwareAddr(append([]byte(nil), p[18:24]...)), TargetIP: netip.AddrFrom4([4]byte(p[24:28])),
		})
	case 0x0800:
		if len(p) < 20 || p[0]>>4 != 4 {
			out.Other++
			return
		}
		ihl := int(p[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(p[2:4]))
		if ihl < 20 || total < ihl || total > len(p) || p[9] != 112 {
			out.Other++
			return
		}
		a, ok := decodeVRRP(p[ihl:total], false)
		if !ok {
			out.Other++
			return
		}
		a.Time, a.SrcMAC, a.TTL = ts, src, p[8]
		a.Src, a.Dst = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		out.Adverts = append(out.Adverts, a)
	case 0x86dd:
		if len(p) < 40 || (p[6] != 112 && p[6] != 58) {
			out.Other++
			return
		}
		plen := int(binary.BigEndian.Uint16(p[4:6]))
		if 40+plen > len(p) {
			out.Other++
			return
		}
		if p[6] == 58 {
			icmp := p[40 : 40+plen]
			if len(icmp) < 24 || icmp[0] != 136 {
				out.Other++
				return
			}
			out.NAs = append(out.NAs, NA{Time: ts, SrcMAC: src, HopLimit: p[7],
				Src: netip.AddrFrom16([16]byte(p[8:24])), Dst: netip.AddrFrom16([16]byte(p[24:40])),
				Router: icmp[4]&0x80 != 0, Solicited: icmp[4]&0x40 != 0, Override: icmp[4]&0x20 != 0,
				Target: netip.AddrFrom16([16]byte(icmp[8:24]))})
			return
		}
		a, ok := decodeVRRP(p[40:40+plen], true)
		if !ok {
			out.Other++
			return
		}
		a.Time, a.SrcMAC, a.TTL = ts, src, p[7]
		a.Src, a.Dst = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		out.Adverts = append(out.Adverts, a)
	default:
		out.Other++
	}
}

// decodeVRRP reads the fields the lab needs; checksums are the vrrp
// package's business.
func decodeVRRP(b []byte, v6 bool) (Advert, bool) {
	if len(b) < 8 {
		return Advert{}, false
	}
	a := Advert{Version: int(b[0] >> 4), VRID: b[1], Prio: b[2]}
	if b[0]&0x0f != 1 {
		return Advert{}, false
	}
	n := int(b[3])
	alen := 4
	if v6 {
		alen = 16
	}
	switch a.Version {
	case 2:
		a.Interval = time.Duration(b[5]) * time.Second
	case 3:
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&0x0fff) * 10 * time.Millisecond
	default:
		return Advert{}, false
	}
	if len(b) < 8+n*alen {
		return Advert{}, false
	}
	for i := 0; i < n; i++ {
		ab := b[8+i*alen : 8+(i+1)*alen]
		ip, _ := netip.AddrFromSlice(ab)
		a.Addrs = append(a.Addrs, ip)
	}
	return a, true
}

// From returns the adverts for vrid sent by src (any source when src is
// the zero Addr).
func (p *Packets) From(vrid uint8, src netip.Addr) []Advert {
	var out []Advert
	for _, a := range p.Adverts {
		if a.VRID == vrid && (!src.IsValid() || a.Src == src) {
			out = append(out, a)
		}
	}
	return out
}

// WireGap measures a takeover on the wire: from the last advert the old
// master (from) sent before the new master's (to) first one after since,
// to that first one. A priority-0 advert counts as the old master's last.
func (p *Packets) WireGap(vrid uint8, from, to netip.Addr, since time.Time) (time.Duration, error) {
	var first *Advert
	for i := range p.Adverts {
		a := &p.Adverts[i]
		if a.VRID == vrid && a.Src == to && !a.Time.Before(since) {
			first = a
			break
		}
	}
	if first == nil {
		return 0, fmt.Errorf("lab: no advert from %s for VRID %d after %s", to, vrid, since.Format(time.StampMicro))
	}
	var last *Advert
	for i := range p.Adverts {
		a := &p.Adverts[i]
		if a.VRID == vrid && a.Src == from && a.Time.Before(first.Time) {
			last = a
		}
	}
	if last == nil {
		return 0, fmt.Errorf("lab: no advert from %s for VRID %d before %s's first", from, vrid, to)
	}
	return first.Time.Sub(last.Time), nil
}
