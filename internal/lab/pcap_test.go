package lab

import (
	"bytes"
	"fmt"
	"os"

	"encoding/binary"
	"encoding/hex"
	"errors"
	"github.com/vishvananda/netlink"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keepalived's frames from testing.md.
const (
	v2Frame  = "0100 5e00 0012 0200 0000 000b 0800 45c0 0028 0002 0000 ff70 d023 0a63 000b e000 0012 2133 9601 0101 00e9 0a63 0064 7333 6372 6574 0000"
	v3Frame  = "0100 5e00 0012 0200 0000 000b 0800 45c0 0020 0001 0000 ff70 d02c 0a63 000b e000 0012 3133 9601 000a 42fd 0a63 0064"
	v6Frame  = "3333 0000 0012 0200 0000 000b 86dd 6c0c c693 0018 70ff fe80 0000 0000 0000 0000 00ff fe00 000b ff02 0000 0000 0000 0000 0000 0000 0012 3134 9601 0064 3ca3 fd00 0099 0000 0000 0000 0000 0000 0100"
	arpFrame = "ffff ffff ffff 0200 0000 000b 0806 0001 0800 0604 0001 0200 0000 000b 0a63 0064 ffff ffff ffff 0a63 0064"
)

// pcapOf builds a little-endian microsecond pcap of frames 100 ms apart.
func pcapOf(t testing.TB, nano bool, frames ...[]byte) []byte {
	var b bytes.Buffer
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	hdr := []uint32{magic, 0x00040002, 0, 0, 262144, 1}
	binary.Write(&b, binary.LittleEndian, hdr[0])
	binary.Write(&b, binary.LittleEndian, uint16(2))
	binary.Write(&b, binary.LittleEndian, uint16(4))
	for _, v := range hdr[2:] {
		binary.Write(&b, binary.LittleEndian, v)
	}
	for i, f := range frames {
		frac := uint32(i * 100000)
		if nano {
			frac *= 1000
		}
		for _, v := range []uint32{1700000000, frac, uint32(len(f)), uint32(len(f))} {
			binary.Write(&b, binary.LittleEndian, v)
		}
		b.Write(f)
	}
	return b.Bytes()
}

func TestReadPcapKeepalivedFrames(t *testing.T) {
	for _, nano := range []bool{false, true} {
		data := pcapOf(t, nano, hexBytes(t, v2Frame), hexBytes(t, v3Frame), hexBytes(t, v6Frame), hexBytes(t, arpFrame), []byte{1, 2, 3})
		p, err := ReadPcap(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Adverts) != 3 || len(p.ARPs) != 1 || p.Other != 1 {
			t.Fatalf("nano=%v: %d adverts, %d ARPs, %d other", nano, len(p.Adverts), len(p.ARPs), p.Other)
		}
		want := []struct {
			ver      int
			vrid     uint8
			prio     uint8
			interval time.Duration
			src      string
			vip      string
		}{
			{2, 51, 150, time.Second, "10.99.0.11", "10.99.0.100"},
			{3, 51, 150, 100 * time.Millisecond, "10.99.0.11", "10.99.0.100"},
			{3, 52, 150, time.Second, "fe80::ff:fe00:b", "fd00:99::100"},
		}
		for i, w := range want {
			a := p.Adverts[i]
			if a.Version != w.ver || a.VRID != w.vrid || a.Prio != w.prio || a.Interval != w.interval || a.TTL != 255 ||
				a.Src != netip.MustParseAddr(w.src) || len(a.Addrs) != 1 || a.Addrs[0] != netip.MustParseAddr(w.vip) {
				t.Errorf("advert %d = %+v, want %+v", i, a, w)
			}
		}
		if d := p.Adverts[1].Time.Sub(p.Adverts[0].Time); d != 100*time.Millisecond {
			t.Errorf("timestamps 100 ms apart, got %s", d)
		}
		arp := p.ARPs[0]
		if !arp.Gratuitous() || arp.Op != 1 || arp.SenderIP != netip.MustParseAddr("10.99.0.100") || arp.SenderMAC.String() != "02:00:00:00:00:0b" {
			t.Errorf("ARP = %+v", arp)
		}
	}
}

func TestReadPcapNA(t *testing.T) {
	// An unsolicited NA for fd00:99::100 from it, to ff02::1, override set.
	na := hexBytes(t, "3333 0000 0001 0200 0000 000b 86dd 6000 0000 0020 3aff"+
		" fd00 0099 0000 0000 0000 0000 0000 0100 ff02 0000 0000 0000 0000 0000 0000 0001"+
		" 8800 0000 2000 0000 fd00 0099 0000 0000 0000 0000 0000 0100 0201 0200 0000 000b")
	p, err := ReadPcap(bytes.NewReader(pcapOf(t, false, na)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.NAs) != 1 {
		t.Fatalf("%d NAs, %d other", len(p.NAs), p.Other)
	}
	n := p.NAs[0]
	vip := netip.MustParseAddr("fd00:99::100")
	if n.Target != vip || n.Src != vip || n.Dst != netip.MustParseAddr("ff02::1") || !n.Override || n.Solicited || n.HopLimit != 255 {
		t.Errorf("NA = %+v", n)
	}
}

func TestReadPcapErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", make([]byte, 24)},
		{"not ethernet", func() []byte { b := pcapOf(t, false); b[20] = 113; return b }()},
		{"huge record", append(pcapOf(t, false), 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0)},
	} {
		if _, err := ReadPcap(bytes.NewReader(tc.data)); !errors.Is(err, ErrPcap) {
			t.Errorf("%s: err = %v, want ErrPcap", tc.name, err)
		}
	}
	// A torn last record (tcpdump killed) keeps what came before.
	b := pcapOf(t, false, hexBytes(t, v3Frame))
	b = append(b, 1, 2, 3)
	if p, err := ReadPcap(bytes.NewReader(b)); err != nil || len(p.Adverts) != 1 {
		t.Errorf("torn record: %v, %v", p, err)
	}
}

func TestWireGap(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	a, b := netip.MustParseAddr("10.99.0.11"), netip.MustParseAddr("10.99.0.12")
	p := &Packets{Adverts: []Advert{
		{Time: t0, Src: a, VRID: 51, Prio: 150},
		{Time: t0.Add(time.Second), Src: a, VRID: 51, Prio: 150},
		{Time: t0.Add(1500 * time.Millisecond), Src: a, VRID: 52, Prio: 150},
		{Time: t0.Add(4610 * time.Millisecond), Src: b, VRID: 51, Prio: 100},
	}}
	if g, err := p.WireGap(51, a, b, t0); err != nil || g != 3610*time.Millisecond {
		t.Errorf("WireGap = %s, %v; want 3.61s", g, err)
	}
	if _, err := p.WireGap(51, b, a, t0); err == nil {
		t.Error("WireGap with no takeover succeeded")
	}
	if n := len(p.From(51, a)); n != 2 {
		t.Errorf("From = %d adverts, want 2", n)
	}
}

func FuzzReadPcap(f *testing.F) {
	f.Add(pcapOf(f, false, hexBytes(f, v2Frame), hexBytes(f, arpFrame)))
	f.Add(pcapOf(f, true, hexBytes(f, v6Frame)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ReadPcap(bytes.NewReader(data))
		if err != nil && p != nil && len(p.Adverts) > len(data) {
			t.Fatal("more adverts than bytes")
		}
	})
}

func TestOverlapGrace(t *testing.T) {
	a := netip.MustParseAddr("10.99.0.100")
	var ov overlap
	if err := ov.check(a, []string{"h1"}); err != nil {
		t.Fatal(err)
	}
	if err := ov.check(a, []string{"h1", "h2"}); err != nil {
		t.Fatalf("first sight of an overlap: %v", err)
	}
	ov.since = ov.since.Add(-2 * HandoverGrace) // the overlap has lasted too long
	if err := ov.check(a, []string{"h1", "h2"}); err == nil || !strings.Contains(err.Error(), "split brain") {
		t.Fatalf("long overlap: %v", err)
	}
	if err := ov.check(a, []string{"h2"}); err != nil || !ov.since.IsZero() {
		t.Fatalf("overlap not reset: %v", err)
	}
}

// The monitor reports overlaps from its own samples in a real lab (no
// daemons: the test adds and removes the addresses itself).
func TestMonitorSeesDoubleOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	l, err := New(fmt.Sprintf("hkmon%d-", os.Getpid()), 2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := netip.MustParseAddr("10.99.0.100")
	add := func(host string) {
		h := l.Host(host)
		eth0, _ := h.nl.LinkByName("eth0")
		if err := h.nl.AddrAdd(eth0, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(a, 32))}); err != nil {
			t.Fatal(err)
		}
	}
	m := l.Monitor(a)
	add("h1")
	if _, err := l.WaitOwner(a, "h1", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	add("h2")
	deadline := time.Now().Add(2 * time.Second)
	for len(l.WhoHas(a)) < 2 && time.Now().Before(deadline) {
		time.Sleep(PollInterval)
	}
	time.Sleep(200 * time.Millisecond) // a real split brain: lasts
	r := m.Stop()
	if err := r.Check(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "[h1 h2]") {
		t.Fatalf("Check = %v, want a split brain of h1 and h2 (report %+v)", err, r)
	}
	if len(r.Changes) < 1 || r.Samples < 10 {
		t.Fatalf("report %+v", r)
	}
	m2 := l.Monitor(a)
	m2.Exclude("h2", true)
	time.Sleep(50 * time.Millisecond)
	if err := m2.Stop().Check(0); err != nil {
		t.Fatalf("excluded host still counted: %v", err)
	}
}
