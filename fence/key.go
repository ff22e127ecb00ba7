package fence

import (
	"fmt"
	"strconv"
	"strings"

	"hakeep/vrrp"
)

// Key identifies a fenced instance in the ownership records: VRID,
// interface and address family. That is what VRRP itself competes on (a
// VRID on one segment, per family), so it stays the same when an instance
// is renamed by a reload; keyed by name, a renamed instance on one
// director and the old name on another would be two records for the same
// VIPs. One file may use VRID 51 on two interfaces, and a v4 and a v6
// instance may share a VRID: both are distinct keys. Directors competing
// for an instance must name its interface the same (a pushed cluster
// configuration does).
type Key struct {
	VRID      uint8
	Interface string
	IPv6      bool
}

// KeyOf is the key of a VRRP claim.
func KeyOf(c vrrp.Claim) Key { return Key{VRID: c.VRID, Interface: c.Interface, IPv6: c.IPv6} }

// String is the record's key in the replicated state: "51/eth0/ipv4".
func (k Key) String() string {
	fam := "ipv4"
	if k.IPv6 {
		fam = "ipv6"
	}
	return strconv.Itoa(int(k.VRID)) + "/" + k.Interface + "/" + fam
}

// ParseKey reads String's form back.
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[1] == "" {
		return Key{}, fmt.Errorf("fence key %q: want VRID/interface/ipv4|ipv6", s)
	}
	v, err := strconv.Atoi(parts[0])
	if err != nil || v < 1 || v > 255 {
		return Key{}, fmt.Errorf("fence key %q: VRID must be 1..255", s)
	}
	k := Key{VRID: uint8(v), Interface: parts[1]}
	switch parts[2] {
	case "ipv4":
	case "ipv6":
		k.IPv6 = true
	default:
		return Key{}, fmt.Errorf("fence key %q: family must be ipv4 or ipv6", s)
	}
	return k, nil
}
