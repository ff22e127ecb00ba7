package vrrp

import (
	"fmt"
	"net/netip"
	"reflect"
	"time"
)

// InstanceSpec is one vrrp_instance with keepalived's defaults applied.
type InstanceSpec struct {
	Name      string
	Interface string
	VRID      uint8
	Version   int   // 2 or 3
	Priority  uint8 // base priority; 255 is the address owner
	Interval  time.Duration
	// IPv6 instances speak v3 over IPv6 with a link-local source.
	IPv6     bool
	AuthType uint8 // AuthNone or AuthPass (v2)
	AuthPass string
	Preempt  bool
	// PreemptDelay: wait this long after first seeing a lower-priority
	// master before preempting it.
	PreemptDelay time.Duration
	// VIPs are the advertised addresses (virtual_ipaddress of the
	// instance's family; excluded ones are not advertised).
	VIPs []netip.Addr
	// SrcIP is mcast_src_ip / unicast_src_ip, or the interface's primary
	// address (filled by the socket when zero).
	SrcIP netip.Addr
	// Group is the multicast group (vrrp_mcast_group4/6 or the default).
	Group netip.Addr
	// Peers are unicast_peer addresses: when set, adverts go to each peer
	// instead of the group.
	Peers []netip.Addr
	// ChecksumAsV2 sends v3 IPv4 checksums without the pseudo-header.
	ChecksumAsV2     bool
	SkipCheckAdvAddr bool
	// CheckUnicastSrc drops unicast adverts from addresses not in Peers.
	CheckUnicastSrc bool

	TrackInterfaces []TrackInterface
	TrackScripts    []TrackScript
	TrackFiles      []TrackFile
	Notify          NotifySpec
	SMTPAlert       bool
	// SyncGroup is the name of the sync group this instance belongs to.
	SyncGroup string
	// Source is the configuration this spec came from (for the address
	// factory); it is not compared on reload.
	Source any
}

// TrackInterface is a track_interface line; Weight 0 means FAULT on down.
type TrackInterface struct {
	Name    string
	Weight  int
	Reverse bool
}

// TrackScript is a track_script line resolved against its vrrp_script.
type TrackScript struct {
	Name     string
	Script   string
	Interval time.Duration
	Timeout  time.Duration
	Weight   int
	Reverse  bool
	Rise     int
	Fall     int
	User     string
	Group    string
	InitFail bool
}

// TrackFile is a track_file line resolved against its vrrp_track_file.
type TrackFile struct {
	Name    string
	Path    string
	Weight  int
	Reverse bool
}

// NotifySpec holds notify scripts (command lines as written). Fenced is
// hakeep's notify_fenced; when empty, FENCED runs Fault.
type NotifySpec struct {
	Master, Backup, Fault, Stop, Any string
	Fenced                           string
}

// SyncGroupSpec is a vrrp_sync_group.
type SyncGroupSpec struct {
	Name      string
	Members   []string
	Notify    NotifySpec
	SMTPAlert bool
}

// Validate checks what the state machine and the codec rely on.
func (s *InstanceSpec) Validate() error {
	if s.Name == "" {
		return fmt.Errorf("vrrp_instance without a name")
	}
	if s.VRID == 0 {
		return fmt.Errorf("vrrp_instance %s: virtual_router_id must be 1..255", s.Name)
	}
	if s.Priority == 0 {
		return fmt.Errorf("vrrp_instance %s: priority must be 1..255", s.Name)
	}
	switch s.Version {
	case 2:
		if s.IPv6 {
			return fmt.Errorf("vrrp_instance %s: VRRPv2 has no IPv6", s.Name)
		}
		if s.Interval < time.Second || s.Interval%time.Second != 0 || s.Interval > 255*time.Second {
			return fmt.Errorf("vrrp_instance %s: v2 advert_int %v must be 1..255 whole seconds", s.Name, s.Interval)
		}
	case 3:
		if s.Interval < 10*time.Millisecond || s.Interval%(10*time.Millisecond) != 0 || s.Interval > 40950*time.Millisecond {
			return fmt.Errorf("vrrp_instance %s: v3 advert_int %v must be 0.01..40.95 s in 0.01 s steps", s.Name, s.Interval)
		}
	default:
		return fmt.Errorf("vrrp_instance %s: version %d must be 2 or 3", s.Name, s.Version)
	}
	if s.Interface == "" {
		return fmt.Errorf("vrrp_instance %s: no interface", s.Name)
	}
	for _, a := range s.VIPs {
		if a.Is6() != s.IPv6 {
			return fmt.Errorf("vrrp_instance %s: VIP %s is not of the instance's family", s.Name, a)
		}
	}
	return nil
}

// sameRun reports whether a running instance started from a can take b
// without a restart: what the socket and the wire identity depend on is
// equal. Priority (except to or from 255), preemption, tracking, notify
// and the address configuration (Source) are applied in place.
func sameRun(a, b *InstanceSpec) bool {
	x, y := *a, *b
	for _, s := range []*InstanceSpec{&x, &y} {
		s.Source = nil
		s.Priority = 0
		s.Preempt, s.PreemptDelay = false, 0
		s.TrackInterfaces, s.TrackScripts, s.TrackFiles = nil, nil, nil
		s.Notify, s.SMTPAlert, s.SyncGroup = NotifySpec{}, false, ""
		s.SkipCheckAdvAddr = false
	}
	return reflect.DeepEqual(x, y) && (a.Priority == 255) == (b.Priority == 255)
}
