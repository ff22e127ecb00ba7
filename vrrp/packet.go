package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// IP protocol number of VRRP, and the TTL / hop limit it must carry.
const (
	Protocol = 112
	TTL      = 255
	// TOS is the IPv4 TOS / IPv6 traffic class keepalived sends (CS6).
	TOS = 0xc0
)

// Default multicast groups (RFC 5798 section 5.1.1.2 / 5.1.2.2).
var (
	DefaultGroup4 = netip.MustParseAddr("224.0.0.18")
	DefaultGroup6 = netip.MustParseAddr("ff02::12")
)

// Authentication types of VRRPv2 (RFC 3768 section 5.3.6). AH is obsolete and
// refused.
const (
	AuthNone = 0
	AuthPass = 1
	AuthAH   = 2
)

const (
	typeAdvert   = 1
	headerLen    = 8
	authDataLen  = 8
	maxV3Centis  = 0x0fff
	maxAddrCount = 255
)

// Advert is one decoded VRRP advertisement.
type Advert struct {
	Version  int // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds in v2,
	// centiseconds in v3.
	Interval time.Duration
	AuthType uint8   // v2 only
	AuthData [8]byte // v2 only, zero padded
	Addrs    []netip.Addr
}

// PassAuth returns the 8-byte v2 PASS auth data for a password, truncated
// and zero padded as keepalived does.
func PassAuth(pass string) [8]byte {
	var a [8]byte
	copy(a[:], pass)
	return a
}

// EncodeOptions select the checksum form.
type EncodeOptions struct {
	// ChecksumAsV2 computes the v3 IPv4 checksum over the VRRP message only,
	// without the pseudo-header (keepalived's v3_checksum_as_v2).
	ChecksumAsV2 bool
}

// Encode builds the VRRP message (no IP header) for an advert sent from src to
// dst; src and dst feed the v3 pseudo-header checksum, so unicast adverts have
// a checksum per destination.
func Encode(a *Advert, src, dst netip.Addr, opt EncodeOptions) ([]byte, error) {
	if a.Version != 2 && a.Version != 3 {
		return nil, fmt.Errorf("encode VRRP advert: version %d not 2 or 3", a.Version)
	}
	if len(a.Addrs) > maxAddrCount {
		return nil, fmt.Errorf("encode VRRP advert: %d addresses, at most %d", len(a.Addrs), maxAddrCount)
	}
	is6 := src.Is6() && !src.Is4In6()
	if a.Version == 2 && is6 {
		return nil, fmt.Errorf("encode VRRP advert: VRRPv2 has no IPv6")
	}
	alen := 4
	if is6 {
		alen = 16
	}
	n := headerLen + alen*len(a.Addrs)
	if a.Version == 2 {
		n += authDataLen
	}
	b := make([]byte, n)
	b[0] = byte(a.Version)<<4 | typeAdvert
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = byte(len(a.Addrs))
	if a.Version == 2 {
		secs := a.Interval / time.Second
		if secs < 1 || secs > 255 || a.Interval%time.Second != 0 {
			return nil, fmt.Errorf("encode VRRPv2 advert: interval %v is not 1..255 whole seconds", a.Interval)
		}
		b[4] = a.AuthType
		b[5] = byte(secs)
	} else {
		c := a.Interval / (10 * time.Millisecond)
		if c < 1 || c > maxV3Centis || a.Interval%(10*time.Millisecond) != 0 {
			return nil, fmt.Errorf("encode VRRPv3 advert: interval %v is not 0.01..40.95 s in 0.01 s steps", a.Interval)
		}
		binary.BigEndian.PutUint16(b[4:], uint16(c))
	}
	off := headerLen
	for _, ip := range a.Addrs {
		ip = ip.Unmap()
		if ip.Is6() != is6 {
			return nil, fmt.Errorf("encode VRRP advert: address %s is not of the sender's family", ip)
		}
		s := ip.AsSlice()
		copy(b[off:], s)
		off += len(s)
	}
	if a.Version == 2 {
		copy(b[off:], a.AuthData[:])
	}
	var sum uint16
	if a.Version == 3 && (is6 || !opt.ChecksumAsV2) {
		sum = checksum(b, pseudoSum(src, dst, len(b)))
	} else {
		sum = checksum(b, 0)
	}
	binary.BigEndian.PutUint16(b[6:], sum)
	return b, nil
}

// Decode parses a VRRP message (no IP header) received from src for dst. It
// checks what the message alone can tell: length, version, type, address
// count and checksum (for v3 over IPv4 both the pseudo-header form and the v2
// form are accepted). It returns a *DropError and never panics.
func Decode(b []byte, src, dst netip.Addr) (*Advert, error) {
	if len(b) < headerLen {
		return nil, dropf(DropTooShort, "%d bytes, header is %d", len(b), headerLen)
	}
	is6 := src.Is6() && !src.Is4In6()
	a := &Advert{Version: int(b[0] >> 4), VRID: b[1], Priority: b[2]}
	if a.Version != 2 && a.Version != 3 {
		return nil, dropf(DropVersion, "version %d", a.Version)
	}
	if a.Version == 2 && is6 {
		return nil, dropf(DropVersion, "VRRPv2 over IPv6")
	}
	if t := b[0] & 0x0f; t != typeAdvert {
		return nil, dropf(DropType, "type %d", t)
	}
	count := int(b[3])
	alen := 4
	if is6 {
		alen = 16
	}
	need := headerLen + count*alen
	if a.Version == 2 {
		need += authDataLen
	}
	if len(b) < need {
		return nil, dropf(DropTooShort, "%d bytes for %d addresses, need %d", len(b), count, need)
	}
	// Trailing bytes beyond the message are ignored but excluded from the checksum.
	b = b[:need]
	if a.Version == 2 {
		a.AuthType = b[4]
		a.Interval = time.Duration(b[5]) * time.Second
		if checksum(b, 0) != 0 {
			return nil, dropf(DropChecksum, "v2 checksum %#04x", binary.BigEndian.Uint16(b[6:]))
		}
	} else {
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&maxV3Centis) * 10 * time.Millisecond
		ok := checksum(b, pseudoSum(src, dst, len(b))) == 0
		if !ok && !is6 {
			ok = checksum(b, 0) == 0 // v3_checksum_as_v2 senders
		}
		if !ok {
			return nil, dropf(DropChecksum, "v3 checksum %#04x", binary.BigEndian.Uint16(b[6:]))
		}
	}
	a.Addrs = make([]netip.Addr, 0, count)
	off := headerLen
	for i := 0; i < count; i++ {
		ip, _ := netip.AddrFromSlice(b[off : off+alen])
		a.Addrs = append(a.Addrs, ip)
		off += alen
	}
	if a.Version == 2 {
		copy(a.AuthData[:], b[off:off+authDataLen])
	}
	return a, nil
}

// pseudoSum is the unfolded one's complement sum of the IPv4 or IPv6
// pseudo-header for a VRRP message of length n.
func pseudoSum(src, dst netip.Addr, n int) uint32 {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	add(src.Unmap().AsSlice())
	add(dst.Unmap().AsSlice())
	if src.Unmap().Is4() {
		s += Protocol + uint32(n)
	} else {
		s += uint32(n>>16) + uint32(n&0xffff) + Protocol
	}
	return s
}

// checksum is the Internet checksum (RFC 1071) of b, starting from an
// unfolded initial sum.
func checksum(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// IPv4Header builds the 20-byte IPv4 header keepalived sends in front of an
// advert: TOS 0xc0, TTL 255, protocol 112, no DF, the given ID, with its
// header checksum.
func IPv4Header(src, dst netip.Addr, id uint16, payloadLen int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	h[1] = TOS
	binary.BigEndian.PutUint16(h[2:], uint16(20+payloadLen))
	binary.BigEndian.PutUint16(h[4:], id)
	h[8] = TTL
	h[9] = Protocol
	s4, d4 := src.As4(), dst.As4()
	copy(h[12:], s4[:])
	copy(h[16:], d4[:])
	binary.BigEndian.PutUint16(h[10:], checksum(h, 0))
	return h
}

// IPv6Header is the 40-byte IPv6 header keepalived puts on an advert:
// traffic class 0xc0, no flow label, next header 112, hop limit 255.
func IPv6Header(src, dst netip.Addr, payloadLen int) []byte {
	h := make([]byte, 40, 40+payloadLen)
	binary.BigEndian.PutUint32(h[0:], 6<<28|TOS<<20)
	binary.BigEndian.PutUint16(h[4:], uint16(payloadLen))
	h[6] = Protocol
	h[7] = TTL
	s16, d16 := src.As16(), dst.As16()
	copy(h[8:], s16[:])
	copy(h[24:], d16[:])
	return h
}

// DropReason says why a received packet was not accepted.
type DropReason uint8

// Drop reasons, counted per instance or per socket.
const (
	DropTooShort DropReason = iota + 1
	DropVersion
	DropType
	DropChecksum
	DropTTL
	DropAuth
	DropInterval
	DropAddrList
	DropVRID
	DropFamily
	numDropReasons
)

var dropNames = [...]string{
	DropTooShort: "too_short",
	DropVersion:  "version",
	DropType:     "type",
	DropChecksum: "checksum",
	DropTTL:      "ttl",
	DropAuth:     "auth",
	DropInterval: "interval",
	DropAddrList: "addr_list",
	DropVRID:     "vrid",
	DropFamily:   "family",
}

func (r DropReason) String() string {
	if r > 0 && r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// DropError is the error for a packet that was dropped; errors.Is matches it
// against the Err* sentinels by reason.
type DropError struct {
	Reason DropReason
	Detail string
}

func (e *DropError) Error() string {
	if e.Detail == "" {
		return "VRRP packet dropped: " + e.Reason.String()
	}
	return "VRRP packet dropped: " + e.Reason.String() + ": " + e.Detail
}

// Is reports whether target is a DropError with the same reason.
func (e *DropError) Is(target error) bool {
	t, ok := target.(*DropError)
	return ok && t.Reason == e.Reason
}

func dropf(r DropReason, format string, args ...any) *DropError {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is.
var (
	ErrTooShort = &DropError{Reason: DropTooShort}
	ErrVersion  = &DropError{Reason: DropVersion}
	ErrType     = &DropError{Reason: DropType}
	ErrChecksum = &DropError{Reason: DropChecksum}
	ErrTTL      = &DropError{Reason: DropTTL}
	ErrAuth     = &DropError{Reason: DropAuth}
	ErrInterval = &DropError{Reason: DropInterval}
	ErrAddrList = &DropError{Reason: DropAddrList}
	ErrVRID     = &DropError{Reason: DropVRID}
	ErrFamily   = &DropError{Reason: DropFamily}
)
