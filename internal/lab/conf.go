package lab

import (
	"fmt"
	"strings"
)

// Conf is a keepalived.conf for one lab host, written the way the seed
// documents write them; the same text configures keepalived and hakeepd.
type Conf struct {
	RouterID   string
	Version    int    // vrrp_version (2 or 3); 0: leave keepalived's default (2)
	Extra      string // raw global_defs lines
	Scripts    []Script
	Instances  []Instance
	SyncGroups []SyncGroup
}

// Script is a vrrp_script block.
type Script struct {
	Name     string
	Command  string
	Interval float64
	Weight   int
	Rise     int
	Fall     int
}

// SyncGroup is a vrrp_sync_group block.
type SyncGroup struct {
	Name    string
	Members []string
	Notify  string
}

// Instance is a vrrp_instance block.
type Instance struct {
	Name         string
	State        string // MASTER or BACKUP
	Interface    string // default eth0
	VRID         int
	Priority     int
	AdvertInt    float64 // seconds; 0: 1
	AuthPass     string  // v2 PASS auth when set
	VIPs         []string
	Nopreempt    bool
	PreemptDelay int
	UnicastSrc   string
	UnicastPeers []string
	TrackScripts []string
	TrackIfaces  []string
	Notify       string // notify script (keepalived's argument convention)
	NotifyMaster string
	NotifyBackup string
	NotifyFault  string
	NotifyStop   string
	GARPDelay    int // vrrp_garp_master_delay in the instance (garp_master_delay)
	Extra        string
}

// String renders the configuration.
func (c Conf) String() string {
	var b strings.Builder
	b.WriteString("global_defs {\n")
	if c.RouterID != "" {
		fmt.Fprintf(&b, "    router_id %s\n", c.RouterID)
	}
	b.WriteString("    script_user root\n    enable_script_security\n")
	if c.Version != 0 {
		fmt.Fprintf(&b, "    vrrp_version %d\n", c.Version)
	}
	b.WriteString(c.Extra)
	b.WriteString("}\n")
	for _, s := range c.Scripts {
		fmt.Fprintf(&b, "vrrp_script %s {\n    script %q\n    interval %g\n", s.Name, s.Command, orOne(s.Interval))
		if s.Weight != 0 {
			fmt.Fprintf(&b, "    weight %d\n", s.Weight)
		}
		if s.Rise != 0 {
			fmt.Fprintf(&b, "    rise %d\n", s.Rise)
		}
		if s.Fall != 0 {
			fmt.Fprintf(&b, "    fall %d\n", s.Fall)
		}
		b.WriteString("}\n")
	}
	for _, in := range c.Instances {
		iface := in.Interface
		if iface == "" {
			iface = "eth0"
		}
		fmt.Fprintf(&b, "vrrp_instance %s {\n    state %s\n    interface %s\n    virtual_router_id %d\n    priority %d\n    advert_int %g\n",
			in.Name, in.State, iface, in.VRID, in.Priority, orOne(in.AdvertInt))
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "    authentication {\n        auth_type PASS\n        auth_pass %s\n    }\n", in.AuthPass)
		}
		if in.Nopreempt {
			b.WriteString("    nopreempt\n")
		}
		if in.PreemptDelay > 0 {
			fmt.Fprintf(&b, "    preempt_delay %d\n", in.PreemptDelay)
		}
		if in.UnicastSrc != "" {
			fmt.Fprintf(&b, "    unicast_src_ip %s\n", in.UnicastSrc)
		}
		if len(in.UnicastPeers) > 0 {
			fmt.Fprintf(&b, "    unicast_peer {\n        %s\n    }\n", strings.Join(in.UnicastPeers, "\n        "))
		}
		if len(in.TrackScripts) > 0 {
			fmt.Fprintf(&b, "    track_script {\n        %s\n    }\n", strings.Join(in.TrackScripts, "\n        "))
		}
		if len(in.TrackIfaces) > 0 {
			fmt.Fprintf(&b, "    track_interface {\n        %s\n    }\n", strings.Join(in.TrackIfaces, "\n        "))
		}
		for _, kv := range [][2]string{{"notify", in.Notify}, {"notify_master", in.NotifyMaster},
			{"notify_backup", in.NotifyBackup}, {"notify_fault", in.NotifyFault}, {"notify_stop", in.NotifyStop}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "    %s %q\n", kv[0], kv[1])
			}
		}
		if in.GARPDelay > 0 {
			fmt.Fprintf(&b, "    garp_master_delay %d\n", in.GARPDelay)
		}
		b.WriteString(in.Extra)
		fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s\n    }\n}\n", strings.Join(in.VIPs, "\n        "))
	}
	for _, g := range c.SyncGroups {
		fmt.Fprintf(&b, "vrrp_sync_group %s {\n    group {\n        %s\n    }\n", g.Name, strings.Join(g.Members, "\n        "))
		if g.Notify != "" {
			fmt.Fprintf(&b, "    notify %q\n", g.Notify)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func orOne(f float64) float64 {
	if f == 0 {
		return 1
	}
	return f
}
