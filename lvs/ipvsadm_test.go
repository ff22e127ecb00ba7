package lvs

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"hakeep/internal/vmtest"
)

var nsSeq atomic.Int32

// newNS creates a network namespace of its own (IPVS tables are per
// namespace) and returns its name and path; it is deleted at cleanup.
func newNS(t testing.TB) (name, path string) {
	t.Helper()
	vmtest.RequireIPVS(t)
	name = fmt.Sprintf("lvs%d-%d", os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	// The kernel refuses destinations it has no unicast route to: give the
	// namespace a link and default routes.
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"},
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "link", "set", "v0", "up"},
		{"ip", "link", "set", "v1", "up"},
		{"ip", "addr", "add", "10.255.0.1/16", "dev", "v0"},
		{"ip", "-6", "addr", "add", "fd00:ff::1/64", "dev", "v0"},
		{"ip", "route", "add", "default", "dev", "v0"},
		{"ip", "-6", "route", "add", "default", "dev", "v0"},
	} {
		inNS(t, name, c...)
	}
	return name, "/run/netns/" + name
}

// inNS runs a command in the namespace and returns its output.
func inNS(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

// ipvsadmTable reads the namespace's table with ipvsadm -Ln and parses it.
func ipvsadmTable(t *testing.T, ns string) Table {
	t.Helper()
	tab, err := parseIPVSAdm(inNS(t, ns, "ipvsadm", "-Ln"))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// parseIPVSAdm parses ipvsadm -Ln output into a Table.
func parseIPVSAdm(out string) (Table, error) {
	t := Table{}
	var cur *Service
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if i < 3 || len(f) == 0 {
			continue
		}
		if f[0] == "->" {
			if cur == nil || len(f) < 6 {
				return nil, fmt.Errorf("ipvsadm line %d: %q", i+1, line)
			}
			a, err := netip.ParseAddrPort(f[1])
			if err != nil {
				return nil, fmt.Errorf("ipvsadm line %d: %w", i+1, err)
			}
			d := Dest{Addr: a.Addr(), Port: a.Port()}
			switch f[2] {
			case "Masq":
				d.Method = NAT
			case "Route":
				d.Method = DR
			case "Tunnel":
				d.Method = TUN
			default:
				return nil, fmt.Errorf("ipvsadm line %d: method %q", i+1, f[2])
			}
			d.Weight, _ = strconv.Atoi(f[3])
			d.ActiveConns, _ = strconv.Atoi(f[4])
			d.InactConns, _ = strconv.Atoi(f[5])
			cur.Dests.Set(d)
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("ipvsadm line %d: %q", i+1, line)
		}
		s := &Service{Dests: nil}
		rest := f[2:]
		switch f[0] {
		case "FWM":
			m, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, fmt.Errorf("ipvsadm line %d: %w", i+1, err)
			}
			s.Key = ServiceKey{Family: AFInet, FWMark: uint32(m)}
			if rest[0] == "IPv6" {
				s.Key.Family = AFInet6
				rest = rest[1:]
			}
		case "TCP", "UDP", "SCTP":
			a, err := netip.ParseAddrPort(f[1])
			if err != nil {
				return nil, fmt.Errorf("ipvsadm line %d: %w", i+1, err)
			}
			p, _ := ParseProto(f[0])
			s.Key = ServiceKey{Family: familyOf(a.Addr()), Proto: p, Addr: a.Addr(), Port: a.Port()}
		default:
			return nil, fmt.Errorf("ipvsadm line %d: %q", i+1, line)
		}
		s.Scheduler = rest[0]
		s.Netmask = DefaultNetmask(s.Key.Family)
		for j := 1; j < len(rest); j++ {
			switch tok := rest[j]; tok {
			case "persistent":
				j++
				n, _ := strconv.Atoi(rest[j])
				s.Flags |= FlagPersistent
				s.Timeout = uint32(n)
			case "mask":
				j++
				if s.Key.Family == AFInet6 {
					n, _ := strconv.Atoi(rest[j])
					s.Netmask = uint32(n)
				} else {
					m, err := NetmaskFromAddr(AFInet, netip.MustParseAddr(rest[j]))
					if err != nil {
						return nil, err
					}
					s.Netmask = m
				}
			case "ops":
				s.Flags |= FlagOnePacket
			default:
				for _, fl := range strings.Split(strings.Trim(tok, "()"), ",") {
					v, ok := schedFlags[fl]
					if !ok {
						return nil, fmt.Errorf("ipvsadm line %d: unknown token %q", i+1, tok)
					}
					s.Flags |= v
				}
			}
		}
		t[s.Key] = s
		cur = s
	}
	return t, nil
}

func TestParseIPVSAdm(t *testing.T) {
	out := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 wrr persistent 300 mask 255.255.255.0
  -> 10.1.0.1:80                  Masq    1      2          3
UDP  [fd00::1]:53 rr ops
FWM  7 IPv6 sh persistent 60 mask 64
  -> [fd00::10]:0                 Route   5      0          0
`
	tab, err := parseIPVSAdm(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab) != 3 {
		t.Fatalf("parsed %v", tab.Keys())
	}
	s := tab[ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}]
	if s == nil || s.Timeout != 300 || FormatNetmask(AFInet, s.Netmask) != "255.255.255.0" || get(s.Dests, DestKey{netip.MustParseAddr("10.1.0.1"), 80}).InactConns != 3 {
		t.Fatalf("TCP service: %+v", s)
	}
	if f := tab[ServiceKey{Family: AFInet6, FWMark: 7}]; f == nil || f.Netmask != 64 || get(f.Dests, DestKey{netip.MustParseAddr("fd00::10"), 0}).Method != DR {
		t.Fatalf("FWM service: %+v", f)
	}
	if _, err := parseIPVSAdm(out + "XYZ 1 2\n"); err == nil {
		t.Fatal("garbage accepted")
	}
}

// get is ds.Get without its ok (a zero Dest when absent).
func get(ds Dests, k DestKey) Dest {
	d, _ := ds.Get(k)
	return d
}
