// Package lvs computes the IPVS table a director should hold (from the
// configuration model and the real servers' health) and reconciles the
// kernel's IPVS table to it through github.com/moby/ipvs, changing only
// what differs. It runs no health checks and no VRRP itself: it is told
// the health results and which VIPs this director is MASTER of.
package lvs

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Address families and protocols as the kernel numbers them.
const (
	AFInet  = syscall.AF_INET
	AFInet6 = syscall.AF_INET6

	ProtoTCP  = syscall.IPPROTO_TCP
	ProtoUDP  = syscall.IPPROTO_UDP
	ProtoSCTP = 132
)

// Service flags (IP_VS_SVC_F_*).
const (
	FlagPersistent = 0x0001
	FlagHashed     = 0x0002 // set by the kernel; never compared
	FlagOnePacket  = 0x0004
	FlagSched1     = 0x0008 // sh-fallback, mh-fallback
	FlagSched2     = 0x0010 // sh-port, mh-port
	FlagSched3     = 0x0020

	// flagsCompared are the flags the configuration controls.
	flagsCompared = FlagPersistent | FlagOnePacket | FlagSched1 | FlagSched2 | FlagSched3
)

// Method is a destination's forwarding method (IP_VS_CONN_F_* & FWD_MASK).
type Method uint32

// Forwarding methods.
const (
	NAT Method = 0 // masquerading
	TUN Method = 2 // IP-in-IP tunnel
	DR  Method = 3 // direct routing
)

// String returns ipvsadm's name: Masq, Tunnel, Route.
func (m Method) String() string {
	switch m {
	case NAT:
		return "Masq"
	case TUN:
		return "Tunnel"
	case DR:
		return "Route"
	case 1:
		return "Local"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// ParseMethod reads keepalived's lb_kind / lvs_method (NAT, DR, TUN).
func ParseMethod(s string) (Method, error) {
	switch strings.ToUpper(s) {
	case "", "NAT":
		return NAT, nil
	case "DR":
		return DR, nil
	case "TUN":
		return TUN, nil
	}
	return 0, fmt.Errorf("unknown lb_kind %q (want NAT, DR or TUN)", s)
}

// ServiceKey identifies a virtual service: address, port and protocol, or
// a firewall mark (then Addr is zero, Port and Proto are 0).
type ServiceKey struct {
	Family uint16
	Proto  uint16
	Addr   netip.Addr
	Port   uint16
	FWMark uint32
}

// String formats like ipvsadm: "TCP 10.0.0.1:80", "UDP [fd00::1]:53",
// "FWM 7" (IPv6 fwmark services: "FWM 7 IPv6").
func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		if k.Family == AFInet6 {
			return fmt.Sprintf("FWM %d IPv6", k.FWMark)
		}
		return fmt.Sprintf("FWM %d", k.FWMark)
	}
	return protoName(k.Proto) + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

func protoName(p uint16) string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoSCTP:
		return "SCTP"
	}
	return "PROTO" + strconv.Itoa(int(p))
}

// compare orders keys: address services by family, address, protocol,
// port; then fwmark services.
func (k ServiceKey) compare(o ServiceKey) int {
	return cmp.Or(
		cmp.Compare(k.FWMark, o.FWMark),
		cmp.Compare(k.Family, o.Family),
		k.Addr.Compare(o.Addr),
		cmp.Compare(k.Proto, o.Proto),
		cmp.Compare(k.Port, o.Port),
	)
}

// DestKey identifies a destination within a service.
type DestKey struct {
	Addr netip.Addr
	Port uint16
}

// compare orders destination keys by address, then port.
func (k DestKey) compare(o DestKey) int {
	return cmp.Or(k.Addr.Compare(o.Addr), cmp.Compare(k.Port, o.Port))
}

// String is "addr:port".
func (k DestKey) String() string { return netip.AddrPortFrom(k.Addr, k.Port).String() }

// Dest is one destination (real server) of a service.
type Dest struct {
	Addr   netip.Addr
	Port   uint16
	Weight int
	Method Method
	Upper  uint32 // connection thresholds; 0: none
	Lower  uint32

	// Not compared, not written: what the desired state knows about it
	// ("up", "down", "sorry"...) and what the kernel reports.
	Health      string
	ActiveConns int
	InactConns  int
}

// Key returns the destination's identity.
func (d Dest) Key() DestKey { return DestKey{d.Addr, d.Port} }

// sameKernel reports whether two destinations hold the same kernel state.
func (d Dest) sameKernel(o Dest) bool {
	return d.Weight == o.Weight && d.Method == o.Method && d.Upper == o.Upper && d.Lower == o.Lower
}

// Service is one virtual service and its destinations. Tables handed to
// the reconciler are not modified afterwards.
type Service struct {
	Key       ServiceKey
	Scheduler string
	Flags     uint32
	Timeout   uint32 // persistence timeout in seconds
	// Netmask is the persistence granularity as the kernel holds it: for
	// IPv4 the mask in network byte order read as a native uint32 (what
	// ipvsadm sends), for IPv6 a prefix length.
	Netmask uint32
	Dests   Dests

	// Not written to the kernel: the virtual server in the configuration
	// ("10.0.0.1:80/TCP", "group:NAME/TCP") and its quorum state.
	Origin   string
	QuorumUp bool

	// frozen: built by FromConfig, never modified (its Dests map may be
	// shared with the other services of a virtual_server_group). The
	// reconciler's picture of the kernel points at frozen services once
	// they are programmed, instead of holding a copy, and copies one
	// before changing it.
	frozen bool
}

// sameKernel reports whether two services' own attributes (not their
// destinations) are equal as the kernel holds them.
func (s *Service) sameKernel(o *Service) bool {
	return s.Scheduler == o.Scheduler && s.Flags&flagsCompared == o.Flags&flagsCompared &&
		s.Timeout == o.Timeout && s.Netmask == o.Netmask
}

// SortedDests returns the destinations ordered by address and port: the
// service's own (they are kept in that order), not to be modified.
func (s *Service) SortedDests() []Dest { return s.Dests }

// clone copies a service with its destinations.
func (s *Service) clone() *Service {
	c := *s
	c.frozen = false
	c.Dests = slices.Clone(s.Dests)
	return &c
}

// Dests are a service's destinations, sorted by address and port
// (DestKey), at most one per key. A slice rather than a map: a desired
// table of 40,000 destinations is half the size (issue 13's memory), and
// the diff walks two sorted lists. Build one with Set, or append and
// Sort.
type Dests []Dest

// search returns where k is or would be.
func (ds Dests) search(k DestKey) (int, bool) {
	return slices.BinarySearchFunc(ds, k, func(d Dest, k DestKey) int { return d.Key().compare(k) })
}

// Get returns the destination with key k.
func (ds Dests) Get(k DestKey) (Dest, bool) {
	if i, ok := ds.search(k); ok {
		return ds[i], true
	}
	return Dest{}, false
}

// Has reports whether a destination has key k.
func (ds Dests) Has(k DestKey) bool {
	_, ok := ds.search(k)
	return ok
}

// Set adds d, or replaces the destination with its key.
func (ds *Dests) Set(d Dest) {
	i, ok := ds.search(d.Key())
	if ok {
		(*ds)[i] = d
		return
	}
	*ds = slices.Insert(*ds, i, d)
}

// Delete removes the destination with key k, if any.
func (ds *Dests) Delete(k DestKey) {
	if i, ok := ds.search(k); ok {
		*ds = slices.Delete(*ds, i, i+1)
	}
}

// Sort orders destinations appended in any order (a kernel dump); of
// two with one key, the last appended stays, as a map would keep it.
func (ds *Dests) Sort() {
	s := *ds
	slices.SortStableFunc(s, func(a, b Dest) int { return a.Key().compare(b.Key()) })
	out := s[:0]
	for i, d := range s {
		if i+1 < len(s) && s[i+1].Key() == d.Key() {
			continue // a later one with this key wins
		}
		out = append(out, d)
	}
	*ds = out
}

// Table is a whole IPVS table, by service key.
type Table map[ServiceKey]*Service

// Keys returns the service keys in a stable order.
func (t Table) Keys() []ServiceKey {
	ks := slices.Collect(maps.Keys(t))
	slices.SortFunc(ks, ServiceKey.compare)
	return ks
}

// Clone copies the table deeply enough that the copy can be changed.
func (t Table) Clone() Table {
	c := make(Table, len(t))
	for k, s := range t {
		c[k] = s.clone()
	}
	return c
}

// DefaultNetmask is the kernel's granularity "one client address".
func DefaultNetmask(family uint16) uint32 {
	if family == AFInet6 {
		return 128
	}
	return 0xffffffff
}

// NetmaskFromAddr converts a persistence_granularity written as a mask
// (255.255.255.0, or an IPv6 mask) into the kernel's representation for the
// service's family.
func NetmaskFromAddr(family uint16, mask netip.Addr) (uint32, error) {
	if !mask.IsValid() {
		return DefaultNetmask(family), nil
	}
	b := mask.AsSlice()
	ones := 0
	for i, x := range b {
		for bit := 7; bit >= 0; bit-- {
			if x&(1<<bit) == 0 {
				// the rest must be zero: a mask is contiguous
				rest := x & (1<<bit - 1)
				if rest != 0 || slices.ContainsFunc(b[i+1:], func(y byte) bool { return y != 0 }) {
					return 0, fmt.Errorf("persistence_granularity %s is not a contiguous mask", mask)
				}
				goto done
			}
			ones++
		}
	}
done:
	if family == AFInet6 {
		if mask.Is4() {
			return 0, fmt.Errorf("persistence_granularity %s is an IPv4 mask on an IPv6 service", mask)
		}
		if ones == 0 {
			return 0, fmt.Errorf("persistence_granularity %s: an IPv6 granularity needs at least one bit", mask)
		}
		return uint32(ones), nil
	}
	if !mask.Is4() {
		return 0, fmt.Errorf("persistence_granularity %s is not an IPv4 mask", mask)
	}
	return binary.NativeEndian.Uint32(b), nil
}

// FormatNetmask renders the kernel netmask as ipvsadm does.
func FormatNetmask(family uint16, m uint32) string {
	if family == AFInet6 {
		return strconv.Itoa(int(m))
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], m)
	return netip.AddrFrom4(b).String()
}
