package vrrp

import (
	"fmt"
	"net/netip"

	"hakeep/config"
)

// FromConfig maps a parsed configuration to a Set, applying keepalived's
// defaults the config model leaves to the VRRP side: IPv6 instances speak
// v3, the multicast group comes from vrrp_mcast_group4/6, sync-group
// tracking applies to every member (weights ignored, as keepalived does
// without sync_group_tracking_weight). Each spec's Source is its
// *config.VRRPInstance, for the address factory.
func FromConfig(c *config.Config) (*Set, error) {
	set := &Set{}
	g := &c.Global
	groupOf := map[string]*config.SyncGroup{}
	for _, sg := range c.SyncGroups {
		for _, m := range sg.Group {
			groupOf[m] = sg
		}
		set.Groups = append(set.Groups, &SyncGroupSpec{Name: sg.Name, Members: sg.Group, Notify: notifySpec(sg.Notify), SMTPAlert: sg.SMTPAlert})
	}
	for _, i := range c.Instances {
		s := &InstanceSpec{
			Name: i.Name, Interface: i.Interface, Version: i.Version, Interval: i.AdvertInt,
			IPv6: i.Family == 6, Preempt: i.Preempt, PreemptDelay: i.PreemptDelay,
			SkipCheckAdvAddr: g.VRRPSkipCheckAdvAddr, CheckUnicastSrc: g.VRRPCheckUnicastSrc,
			Notify: notifySpec(i.Notify), SMTPAlert: i.SMTPAlert, SyncGroup: i.SyncGroup, Source: i,
		}
		if i.VRID < 1 || i.VRID > 255 {
			return nil, fmt.Errorf("%s: vrrp_instance %s: virtual_router_id %d not 1..255", i.Pos, i.Name, i.VRID)
		}
		if i.Priority < 1 || i.Priority > 255 {
			return nil, fmt.Errorf("%s: vrrp_instance %s: priority %d not 1..255", i.Pos, i.Name, i.Priority)
		}
		s.VRID, s.Priority = uint8(i.VRID), uint8(i.Priority)
		if s.IPv6 && s.Version == 2 {
			s.Version = 3 // keepalived: IPv6 needs VRRPv3
		}
		if s.Version == 3 && s.Interval < 10e6 {
			s.Interval = 10e6
		}
		if a := i.Auth; a != nil && s.Version == 2 {
			switch a.Type {
			case "PASS":
				s.AuthType, s.AuthPass = AuthPass, a.Pass
			case "AH":
				return nil, fmt.Errorf("%s: vrrp_instance %s: auth_type AH is not supported (obsolete; use PASS or none)", a.Pos, i.Name)
			}
		}
		for _, v := range i.VIPs {
			if !v.Excluded {
				s.VIPs = append(s.VIPs, v.Prefix.Addr())
			}
		}
		for _, p := range i.UnicastPeers {
			s.Peers = append(s.Peers, p.Addr)
		}
		switch {
		case len(s.Peers) > 0 && i.UnicastSrcIP.IsValid():
			s.SrcIP = i.UnicastSrcIP
		case i.McastSrcIP.IsValid():
			s.SrcIP = i.McastSrcIP
		case i.UnicastSrcIP.IsValid():
			s.SrcIP = i.UnicastSrcIP
		}
		s.Group = g.VRRPMcastGroup4
		if s.IPv6 {
			s.Group = g.VRRPMcastGroup6
		}
		if !s.Group.IsValid() {
			s.Group = map[bool]netip.Addr{false: DefaultGroup4, true: DefaultGroup6}[s.IPv6]
		}
		_, s.ChecksumAsV2 = i.Other["v3_checksum_as_v2"]
		if _, ok := g.Other["v3_checksum_as_v2"]; ok {
			s.ChecksumAsV2 = true
		}
		for _, t := range i.TrackInterfaces {
			s.TrackInterfaces = append(s.TrackInterfaces, TrackInterface{Name: t.Name, Weight: t.Weight, Reverse: t.Reverse})
		}
		var err error
		if s.TrackScripts, err = trackScripts(c, i.Name, i.TrackScripts, true); err != nil {
			return nil, err
		}
		if s.TrackFiles, err = trackFiles(c, i.Name, i.TrackFiles, true); err != nil {
			return nil, err
		}
		if sg := groupOf[i.Name]; sg != nil {
			s.SyncGroup = sg.Name
			for _, t := range sg.TrackInterfaces {
				s.TrackInterfaces = append(s.TrackInterfaces, TrackInterface{Name: t.Name, Reverse: t.Reverse})
			}
			ts, err := trackScripts(c, sg.Name, sg.TrackScripts, sg.SyncGroupTrackingWeight)
			if err != nil {
				return nil, err
			}
			s.TrackScripts = append(s.TrackScripts, ts...)
			tf, err := trackFiles(c, sg.Name, sg.TrackFiles, sg.SyncGroupTrackingWeight)
			if err != nil {
				return nil, err
			}
			s.TrackFiles = append(s.TrackFiles, tf...)
		}
		set.Instances = append(set.Instances, s)
	}
	if err := set.Validate(); err != nil {
		return nil, err
	}
	return set, nil
}

func notifySpec(n config.Notify) NotifySpec {
	return NotifySpec{Master: n.Master, Backup: n.Backup, Fault: n.Fault, Stop: n.Stop, Any: n.Any, Fenced: n.Fenced}
}

func trackScripts(c *config.Config, owner string, refs []*config.TrackScript, weights bool) ([]TrackScript, error) {
	var out []TrackScript
	for _, r := range refs {
		sc := c.Script(r.Name)
		if sc == nil {
			return nil, fmt.Errorf("%s: %s: track_script %s: no vrrp_script of that name", r.Pos, owner, r.Name)
		}
		t := TrackScript{Name: sc.Name, Script: sc.Script, Interval: sc.Interval, Timeout: sc.Timeout, Weight: sc.Weight,
			Reverse: sc.WeightReverse, Rise: sc.Rise, Fall: sc.Fall, User: sc.User, Group: sc.Group, InitFail: sc.InitFail}
		if r.Weight != nil {
			t.Weight, t.Reverse = *r.Weight, r.Reverse
		}
		if !weights {
			t.Weight = 0
		}
		out = append(out, t)
	}
	return out, nil
}

func trackFiles(c *config.Config, owner string, refs []*config.TrackFile, weights bool) ([]TrackFile, error) {
	var out []TrackFile
	for _, r := range refs {
		var def *config.TrackFileDef
		for _, d := range c.TrackFileDefs {
			if d.Name == r.Name {
				def = d
			}
		}
		if def == nil {
			return nil, fmt.Errorf("%s: %s: track_file %s: no vrrp_track_file of that name", r.Pos, owner, r.Name)
		}
		t := TrackFile{Name: def.Name, Path: def.File, Weight: def.Weight, Reverse: def.Reverse}
		if r.Weight != nil {
			t.Weight, t.Reverse = *r.Weight, r.Reverse
		}
		if !weights {
			t.Weight = 0
		}
		out = append(out, t)
	}
	return out, nil
}
