package vrrp

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Frames captured from Debian's keepalived 2.2.7 (see doc/testing notes in
// the package's testdata/keepalived-captures.txt); checksums verified.
const (
	capV2Pass = "0100 5e00 0012 0200 0000 000b 0800 45c0 0028 0002 0000 ff70 d023 0a63 000b e000 " +
		"0012 2133 9601 0101 00e9 0a63 0064 7333 6372 6574 0000"
	capV2Prio0 = "2133 0001 0101 96e9 0a63 0064 7333 6372 6574 0000"
	capV3      = "0100 5e00 0012 0200 0000 000b 0800 45c0 0020 0001 0000 ff70 d02c 0a63 000b e000 " +
		"0012 3133 9601 0064 42a3 0a63 0064"
	capV3Unicast13 = "3133 9601 0064 1846 0a63 0064"
	capV3Int100ms  = "3133 9601 000a 42fd 0a63 0064"
	capV3Prio100   = "3133 6401 0064 74a2 0a63 0064"
	capV3IPv6      = "3333 0000 0012 0200 0000 000b 86dd 6c0c c693 0018 70ff fe80 0000 0000 0000 0000 00ff fe00 000b " +
		"ff02 0000 0000 0000 0000 0000 0000 0012 3134 9601 0064 3ca3 fd00 0099 0000 0000 0000 0000 0000 0100"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

var (
	src11 = netip.MustParseAddr("10.99.0.11")
	dst13 = netip.MustParseAddr("10.99.0.13")
	vip4  = netip.MustParseAddr("10.99.0.100")
	ll6   = netip.MustParseAddr("fe80::ff:fe00:b")
	vip6  = netip.MustParseAddr("fd00:99::100")
)

func TestEncodeGolden(t *testing.T) {
	tests := []struct {
		name     string
		adv      Advert
		src, dst netip.Addr
		opt      EncodeOptions
		want     string
	}{
		{"v2 PASS", Advert{Version: 2, VRID: 51, Priority: 150, Interval: time.Second, AuthType: AuthPass, AuthData: PassAuth("s3cret"), Addrs: []netip.Addr{vip4}},
			src11, DefaultGroup4, EncodeOptions{}, capV2Pass[len(capV2Pass)-49:]},
		{"v2 priority 0", Advert{Version: 2, VRID: 51, Priority: 0, Interval: time.Second, AuthType: AuthPass, AuthData: PassAuth("s3cret"), Addrs: []netip.Addr{vip4}},
			src11, DefaultGroup4, EncodeOptions{}, capV2Prio0},
		{"v3", Advert{Version: 3, VRID: 51, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip4}},
			src11, DefaultGroup4, EncodeOptions{}, capV3[len(capV3)-29:]},
		{"v3 unicast", Advert{Version: 3, VRID: 51, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip4}},
			src11, dst13, EncodeOptions{}, capV3Unicast13},
		{"v3 100ms", Advert{Version: 3, VRID: 51, Priority: 150, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip4}},
			src11, DefaultGroup4, EncodeOptions{}, capV3Int100ms},
		// The priority-100 capture came from the backup at 10.99.0.12.
		{"v3 prio 100", Advert{Version: 3, VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip4}},
			netip.MustParseAddr("10.99.0.12"), DefaultGroup4, EncodeOptions{}, capV3Prio100},
		{"v3 IPv6", Advert{Version: 3, VRID: 52, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip6}},
			ll6, DefaultGroup6, EncodeOptions{}, capV3IPv6[len(capV3IPv6)-59:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Encode(&tt.adv, tt.src, tt.dst, tt.opt)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			want := unhex(t, tt.want)
			if hex.EncodeToString(got) != hex.EncodeToString(want) {
				t.Fatalf("Encode\n got %x\nwant %x", got, want)
			}
			back, err := Decode(got, tt.src, tt.dst)
			if err != nil {
				t.Fatalf("Decode own bytes: %v", err)
			}
			if back.VRID != tt.adv.VRID || back.Priority != tt.adv.Priority || back.Interval != tt.adv.Interval ||
				back.AuthData != tt.adv.AuthData || len(back.Addrs) != len(tt.adv.Addrs) || back.Addrs[0] != tt.adv.Addrs[0] {
				t.Fatalf("round trip: got %+v want %+v", back, tt.adv)
			}
		})
	}
}

func TestIPv4HeaderGolden(t *testing.T) {
	tests := []struct {
		name  string
		frame string
	}{{"v2", capV2Pass}, {"v3", capV3}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := unhex(t, tt.frame)
			ip := f[14:34]
			vr := f[34:]
			id := uint16(ip[4])<<8 | uint16(ip[5])
			got := IPv4Header(src11, DefaultGroup4, id, len(vr))
			if hex.EncodeToString(got) != hex.EncodeToString(ip) {
				t.Fatalf("IPv4 header\n got %x\nwant %x", got, ip)
			}
			if ip[1] != TOS || ip[8] != TTL || ip[9] != Protocol || ip[6]&0x40 != 0 {
				t.Fatalf("capture fields: tos %#x ttl %d proto %d flags %#x", ip[1], ip[8], ip[9], ip[6])
			}
			if _, err := Decode(vr, src11, DefaultGroup4); err != nil {
				t.Fatalf("Decode keepalived's advert: %v", err)
			}
		})
	}
}

func TestDecodeKeepalivedIPv6(t *testing.T) {
	f := unhex(t, capV3IPv6)
	ip6 := f[14:54]
	if ip6[0]>>4 != 6 || (ip6[0]&0x0f)<<4|ip6[1]>>4 != TOS || ip6[6] != Protocol || ip6[7] != TTL {
		t.Fatalf("capture header fields wrong: %x", ip6[:8])
	}
	a, err := Decode(f[54:], ll6, DefaultGroup6)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if a.Version != 3 || a.VRID != 52 || a.Priority != 150 || a.Interval != time.Second || a.Addrs[0] != vip6 {
		t.Fatalf("decoded %+v", a)
	}
}

func TestV3ChecksumAsV2(t *testing.T) {
	a := &Advert{Version: 3, VRID: 51, Priority: 150, Interval: time.Second, Addrs: []netip.Addr{vip4}}
	b, err := Encode(a, src11, DefaultGroup4, EncodeOptions{ChecksumAsV2: true})
	if err != nil {
		t.Fatal(err)
	}
	if checksum(b, 0) != 0 {
		t.Fatalf("v2-style checksum not valid over message alone: %x", b)
	}
	if _, err := Decode(b, src11, DefaultGroup4); err != nil {
		t.Fatalf("v2-style v3 checksum must be accepted: %v", err)
	}
	// The pseudo-header form for another destination must not pass.
	uni := unhex(t, capV3Unicast13)
	if _, err := Decode(uni, src11, DefaultGroup4); !errors.Is(err, ErrChecksum) {
		t.Fatalf("unicast checksum checked against the group: err %v, want checksum", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := unhex(t, capV2Prio0)
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	tests := []struct {
		name string
		b    []byte
		src  netip.Addr
		want error
	}{
		{"empty", nil, src11, ErrTooShort},
		{"short header", good[:7], src11, ErrTooShort},
		{"short addrs", good[:11], src11, ErrTooShort},
		{"no auth data", good[:12], src11, ErrTooShort},
		{"version 1", mod(func(b []byte) []byte { b[0] = 0x11; return b }), src11, ErrVersion},
		{"v2 over v6", good, ll6, ErrVersion},
		{"type 2", mod(func(b []byte) []byte { b[0] = 0x22; return b }), src11, ErrType},
		{"checksum", mod(func(b []byte) []byte { b[7] ^= 1; return b }), src11, ErrChecksum},
		{"count too big", mod(func(b []byte) []byte { b[3] = 2; return b }), src11, ErrTooShort},
		{"v3 bad checksum", mod(func(b []byte) []byte { b[0] = 0x31; return b }), src11, ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.b, tt.src, DefaultGroup4)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		a    Advert
		src  netip.Addr
	}{
		{"version", Advert{Version: 4, Interval: time.Second}, src11},
		{"v2 fraction", Advert{Version: 2, Interval: 1500 * time.Millisecond}, src11},
		{"v2 zero", Advert{Version: 2}, src11},
		{"v3 too long", Advert{Version: 3, Interval: 41 * time.Second}, src11},
		{"v3 sub-centisecond", Advert{Version: 3, Interval: 5 * time.Millisecond}, src11},
		{"v2 ipv6", Advert{Version: 2, Interval: time.Second}, ll6},
		{"mixed family", Advert{Version: 3, Interval: time.Second, Addrs: []netip.Addr{vip6}}, src11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encode(&tt.a, tt.src, DefaultGroup4, EncodeOptions{}); err == nil {
				t.Fatal("Encode accepted bad advert")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(unhex(f, capV2Prio0), false)
	f.Add(unhex(f, capV3Unicast13), false)
	f.Add(unhex(f, capV3IPv6)[54:], true)
	f.Add([]byte{0x31}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := src11, DefaultGroup4
		if v6 {
			src, dst = ll6, DefaultGroup6
		}
		a, err := Decode(b, src, dst)
		if err != nil {
			var de *DropError
			if !errors.As(err, &de) {
				t.Fatalf("error not a *DropError: %v", err)
			}
			return
		}
		// What decodes must re-encode to the same bytes (modulo trailing data
		// and the checksum form).
		if a.Version == 3 && a.Interval == 0 {
			return // interval 0 is decodable but not encodable
		}
		if a.Version == 2 && a.Interval == 0 {
			return
		}
		out, err := Encode(a, src, dst, EncodeOptions{})
		if err != nil {
			t.Fatalf("re-encode %+v: %v", a, err)
		}
		if _, err := Decode(out, src, dst); err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
	})
}
