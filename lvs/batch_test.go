package lvs

import (
	"net/netip"
	"testing"
)

// encodeFor builds the attribute payload the kernel would send for s or d
// (the same layout as our requests), for the decoder tests.
func encodeService(s *Service) []byte {
	w := &batchWriter{}
	w.service(s, true)
	return w.buf
}

func encodeDest(d Dest) []byte {
	w := &batchWriter{}
	w.dest(d, true)
	// rename the nest type: answers carry the dest under attrCmdDest too
	return w.buf
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, s := range []*Service{
		{Key: ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: "wrr", Flags: FlagPersistent, Timeout: 300, Netmask: 0xffffff},
		{Key: ServiceKey{Family: AFInet6, Proto: ProtoUDP, Addr: netip.MustParseAddr("fd00::1"), Port: 53}, Scheduler: "sh", Flags: FlagSched1, Netmask: 64},
		{Key: ServiceKey{Family: AFInet, FWMark: 7}, Scheduler: "rr", Netmask: 0xffffffff},
	} {
		got, err := decodeService(encodeService(s))
		if err != nil {
			t.Fatal(err)
		}
		if got.Key != s.Key || !got.sameKernel(s) {
			t.Errorf("service round trip: got %+v want %+v", got, s)
		}
	}
	for _, d := range []Dest{
		{Addr: netip.MustParseAddr("10.1.0.1"), Port: 80, Weight: 3, Method: DR, Upper: 10, Lower: 2},
		{Addr: netip.MustParseAddr("fd00::10"), Port: 8080, Weight: 0, Method: TUN},
	} {
		got, err := decodeDest(encodeDest(d), AFInet)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key() != d.Key() || !got.sameKernel(d) {
			t.Errorf("dest round trip: got %+v want %+v", got, d)
		}
	}
}

// FuzzDecode: the decoders of kernel answers never panic on any input.
func FuzzDecode(f *testing.F) {
	f.Add(encodeService(&Service{Key: ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}, Scheduler: "wrr"}))
	f.Add(encodeDest(Dest{Addr: netip.MustParseAddr("fd00::10"), Port: 80, Weight: 1}))
	f.Add([]byte{4, 0, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeService(b)
		decodeDest(b, AFInet)
		decodeDest(b, AFInet6)
	})
}
