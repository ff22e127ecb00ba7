package config

import (
	"fmt"
	"math"
	"time"
)

// finalize applies inheritance and defaults that depend on more than one
// block (global_defs may come after the instances that inherit from it).
func (p *parser) finalize() {
	g := &p.cfg.Global
	// global_defs: the lower-priority GARP settings follow the master ones
	// unless set themselves.
	if !p.globalLowerDelay {
		g.GARP.LowerPrioDelay = g.GARP.MasterDelay
	}
	if !p.globalLowerRepeat {
		g.GARP.LowerPrioRepeat = g.GARP.MasterRepeat
	}
	for _, i := range p.cfg.Instances {
		if !p.instVersion[i] {
			i.Version = g.VRRPVersion
		}
		if !p.instAccept[i] && g.VRRPStrict {
			i.Accept = false
		}
		i.GARP = g.GARP
		if g.VRRPStrict {
			// Strict RFC behaviour: no gratuitous ARP on a lower-priority
			// advert (keepalived zeroes these under vrrp_strict).
			i.GARP.LowerPrioDelay, i.GARP.LowerPrioRepeat = 0, 0
		}
		if o := p.instGARP[i]; o != nil {
			// In an instance the lower-priority settings do not follow the
			// master ones (they come from global_defs), as in keepalived.
			setDur(&i.GARP.MasterDelay, o.masterDelay)
			setInt(&i.GARP.MasterRepeat, o.masterRepeat)
			setDur(&i.GARP.MasterRefresh, o.masterRefresh)
			setInt(&i.GARP.MasterRefreshRepeat, o.masterRefreshRepeat)
			setDur(&i.GARP.Interval, o.interval)
			setDur(&i.GARP.GNAInterval, o.gnaInterval)
			setDur(&i.GARP.LowerPrioDelay, o.lowerPrioDelay)
			setInt(&i.GARP.LowerPrioRepeat, o.lowerPrioRepeat)
		}
		// keepalived: state MASTER without a priority means the address
		// owner (255), and the address owner always starts as MASTER.
		if i.State == StateMaster && !p.instPrio[i] {
			i.Priority = 255
		}
		if i.Priority == 255 {
			i.State = StateMaster
		}
		p.finalizeFamily(i)
		if i.Family == 6 {
			// VRRPv2 has no IPv6: keepalived runs IPv6 instances as
			// VRRPv3, silently, whatever version says.
			i.Version = 3
		}
		p.finalizeAdvert(i)
		if i.Interface == "" {
			def := g.DefaultInterface
			if def == "" {
				def = "eth0"
			}
			if len(i.UnicastPeers) == 0 {
				p.warnf(i.Pos, "vrrp_instance %s has no interface; using %s (keepalived's default_interface)", i.Name, def)
			}
			i.Interface = def
		}
		if !i.Preempt && i.Priority == 255 {
			p.warnf(i.Pos, "vrrp_instance %s: nopreempt does not work with priority 255 (the address owner always preempts); ignored (as keepalived does)", i.Name)
			i.Preempt = true
		}
		if g.VRRPStrict {
			// RFC 5798 strictly: only the address owner starts as MASTER.
			if owner := i.Priority == 255; owner != (i.State == StateMaster) {
				want := StateBackup
				if owner {
					want = StateMaster
				}
				p.warnf(i.Pos, "vrrp_instance %s: with vrrp_strict, state MASTER goes with priority 255 (address owner) and only with it; starting as %s (as keepalived does)", i.Name, want)
				i.State = want
			}
			if i.Auth != nil {
				p.warnf(i.Auth.Pos, "vrrp_instance %s: vrrp_strict does not allow authentication; ignored (as keepalived does)", i.Name)
				i.Auth = nil
			}
		}
		if i.Auth != nil && i.Auth.Type == "AH" && i.State == StateMaster {
			// keepalived: "Initial state master is incompatible with AH
			// authentication - clearing".
			p.warnf(i.Pos, "vrrp_instance %s: state MASTER does not work with AH authentication; starting as BACKUP (as keepalived does)", i.Name)
			i.State = StateBackup
		}
		if i.Auth != nil && i.Version == 3 {
			p.warnf(i.Auth.Pos, "vrrp_instance %s: authentication is not part of VRRPv3; ignored (as keepalived does)", i.Name)
			i.Auth = nil
		}
		for _, t := range i.TrackScripts {
			fixWeight(&t.Weight)
		}
		for _, t := range i.TrackFiles {
			fixWeight(&t.Weight)
		}
	}
	for _, v := range p.cfg.VirtualServers {
		v.cacheKey()
		for _, r := range v.RealServers {
			for _, c := range r.Checkers {
				if c.Kind == CheckSMTP && c.OtherFields().HeloName == "" {
					c.otherFields().HeloName = g.SMTPHeloName // empty: the host name, at run time
				}
			}
		}
	}
	for _, sg := range p.cfg.SyncGroups {
		for _, t := range sg.TrackScripts {
			fixWeight(&t.Weight)
		}
		for _, t := range sg.TrackFiles {
			fixWeight(&t.Weight)
		}
	}
}

func setDur(dst *time.Duration, src *time.Duration) {
	if src != nil {
		*dst = *src
	}
}

func setInt(dst *int, src *int) {
	if src != nil {
		*dst = *src
	}
}

func fixWeight(w **int) {
	if *w != nil && **w == unsetWeight {
		*w = nil
	}
}

// finalizeAdvert applies keepalived's advert_int rules: whole seconds in
// VRRPv2 (other values are rounded, with a warning), centiseconds up to
// 40.95 s in VRRPv3.
func (p *parser) finalizeAdvert(i *VRRPInstance) {
	f, ok := p.advertRaw[i]
	if !ok {
		return
	}
	if i.Version == 2 {
		r := math.Round(f)
		if r < 1 {
			r = 1
		}
		if r != f {
			p.warnf(i.Pos, "vrrp_instance %s: VRRPv2 advert_int %gs must be whole seconds; rounded to %gs (as keepalived does)", i.Name, f, r)
		}
		i.AdvertInt = time.Duration(r) * time.Second
		return
	}
	cs := math.Round(f * 100)
	if cs < 1 || cs > 4095 {
		p.errorf(i.Pos, "vrrp_instance %s: VRRPv3 advert_int %gs is out of range [0.01, 40.95]", i.Name, f)
		return
	}
	if math.Abs(cs-f*100) > 1e-6 {
		p.warnf(i.Pos, "vrrp_instance %s: VRRPv3 advert_int %gs rounded to %gs (centisecond steps)", i.Name, f, cs/100)
	}
	i.AdvertInt = time.Duration(cs) * 10 * time.Millisecond
}

// finalizeFamily sets the instance's address family from its first VIP and
// drops VIPs of the other family, as keepalived 2.2 does.
func (p *parser) finalizeFamily(i *VRRPInstance) {
	i.Family = 4
	if len(i.VIPs) > 0 && i.VIPs[0].Prefix.Addr().Is6() {
		i.Family = 6
	} else if len(i.VIPs) == 0 && len(i.ExcludedVIPs) == 0 {
		for _, a := range []bool{i.UnicastSrcIP.Is6(), i.McastSrcIP.Is6()} {
			if a {
				i.Family = 6
			}
		}
	}
	kept := i.VIPs[:0]
	for _, v := range i.VIPs {
		if family(v.Prefix.Addr().Is6()) != i.Family {
			// keepalived 2.2: "address family must match VRRP instance
			// - ignoring" (older versions moved it to the excluded list).
			p.warnf(v.Pos, "vrrp_instance %s: %s is not IPv%d like the instance's first address; ignored (as keepalived does; put it in virtual_ipaddress_excluded or its own instance)", i.Name, v.Prefix, i.Family)
			continue
		}
		kept = append(kept, v)
	}
	i.VIPs = kept
}

func family(is6 bool) int {
	if is6 {
		return 6
	}
	return 4
}

// validate checks what spans blocks: required values, references and
// duplicates.
func (p *parser) validate() {
	c := p.cfg
	p.validateOperator()
	names := map[string]*VRRPInstance{}
	type vridKey struct {
		iface  string
		family int
		vrid   int
	}
	vrids := map[vridKey]*VRRPInstance{}
	scriptNames := map[string]bool{}
	for _, s := range c.Scripts {
		scriptNames[s.Name] = true
	}
	trackFiles := map[string]bool{}
	for _, t := range c.TrackFileDefs {
		trackFiles[t.Name] = true
	}
	checkTracks := func(owner string, ts []*TrackScript, tf []*TrackFile) {
		for _, t := range ts {
			if scriptNames[t.Name] {
				continue
			}
			if p.removedScript[t.Name] {
				p.warnf(t.Pos, "%s: track_script %s refers to a vrrp_script without a script; ignored", owner, t.Name)
				continue
			}
			msg := fmt.Sprintf("%s: track_script %s: no vrrp_script of that name", owner, t.Name)
			if s := nearest(t.Name, keysOfBool(scriptNames)); s != "" {
				msg += fmt.Sprintf(" (did you mean '%s'?)", s)
			}
			p.errorf(t.Pos, "%s", msg)
		}
		for _, t := range tf {
			if !trackFiles[t.Name] {
				p.errorf(t.Pos, "%s: track_file %s: no vrrp_track_file of that name", owner, t.Name)
			}
		}
	}
	for _, i := range c.Instances {
		owner := "vrrp_instance " + i.Name
		if old := names[i.Name]; old != nil {
			p.errorf(i.Pos, "vrrp_instance %s is already defined at %s", i.Name, old.Pos)
			continue
		}
		names[i.Name] = i
		if i.VRID == 0 {
			p.errorf(i.Pos, "vrrp_instance %s: virtual_router_id is missing", i.Name)
		} else {
			k := vridKey{i.Interface, i.Family, i.VRID}
			if old := vrids[k]; old != nil {
				p.errorf(i.Pos, "vrrp_instance %s: virtual_router_id %d is already used on %s (IPv%d) by vrrp_instance %s at %s",
					i.Name, i.VRID, i.Interface, i.Family, old.Name, old.Pos)
			} else {
				vrids[k] = i
			}
		}
		if len(i.VIPs) == 0 {
			p.warnf(i.Pos, "vrrp_instance %s has no virtual_ipaddress; at least one is sensible", i.Name)
		}
		if !i.Preempt && i.PreemptDelay > 0 {
			p.warnf(i.Pos, "vrrp_instance %s: preempt_delay does nothing with nopreempt; ignored (as keepalived does)", i.Name)
			i.PreemptDelay = 0
		}
		kept := i.TrackInterfaces[:0]
		for _, ti := range i.TrackInterfaces {
			if ti.Name == i.Interface {
				p.warnf(ti.Pos, "vrrp_instance %s: track_interface %s is the instance's own interface, which is always tracked; ignored", i.Name, ti.Name)
				continue
			}
			kept = append(kept, ti)
		}
		i.TrackInterfaces = kept
		if !i.Preempt && i.State == StateMaster {
			p.warnf(i.Pos, "vrrp_instance %s: nopreempt does not work with state MASTER; ignored (as keepalived does): use state BACKUP on every node", i.Name)
			i.Preempt = true
		}
		for _, u := range i.UnicastPeers {
			if family(u.Addr.Is6()) != i.Family {
				p.errorf(u.Pos, "%s: unicast_peer %s is not IPv%d like the instance", owner, u.Addr, i.Family)
			}
		}
		if i.UnicastSrcIP.IsValid() && family(i.UnicastSrcIP.Is6()) != i.Family {
			p.errorf(i.Pos, "%s: unicast_src_ip %s is not IPv%d like the instance", owner, i.UnicastSrcIP, i.Family)
		}
		checkTracks(owner, i.TrackScripts, i.TrackFiles)
	}
	inGroup := map[string]*SyncGroup{}
	sgNames := map[string]*SyncGroup{}
	groups := c.SyncGroups[:0]
	for _, g := range c.SyncGroups {
		if old := sgNames[g.Name]; old != nil {
			p.errorf(g.Pos, "vrrp_sync_group %s is already defined at %s", g.Name, old.Pos)
			continue
		}
		sgNames[g.Name] = g
		if len(g.Group) == 0 {
			p.warnf(g.Pos, "vrrp_sync_group %s has no group { } members; ignored", g.Name)
			continue
		}
		groups = append(groups, g)
		if len(g.Group) == 1 {
			p.warnf(g.Pos, "vrrp_sync_group %s has only one member; this is probably not what you want", g.Name)
		}
		for _, m := range g.Group {
			inst := names[m]
			if inst == nil {
				msg := fmt.Sprintf("vrrp_sync_group %s: member %s: no vrrp_instance of that name", g.Name, m)
				if s := nearest(m, instanceNames(c)); s != "" {
					msg += fmt.Sprintf(" (did you mean '%s'?)", s)
				}
				p.errorf(g.Pos, "%s", msg)
				continue
			}
			if old := inGroup[m]; old != nil {
				p.errorf(g.Pos, "vrrp_sync_group %s: vrrp_instance %s is already in vrrp_sync_group %s", g.Name, m, old.Name)
				continue
			}
			inGroup[m] = g
			inst.SyncGroup = g.Name
			if !g.SyncGroupTrackingWeight {
				p.dropWeightedTracking(inst)
			}
		}
		checkTracks("vrrp_sync_group "+g.Name, g.TrackScripts, g.TrackFiles)
	}
	c.SyncGroups = groups
	vsKeys := map[string]*VirtualServer{}
	for _, v := range c.VirtualServers {
		if v.Group != "" && c.VSGroup(v.Group) == nil {
			p.errorf(v.Pos, "virtual_server group %s: no virtual_server_group of that name", v.Group)
		}
		if old := vsKeys[v.Key()]; old != nil {
			p.errorf(v.Pos, "virtual_server %s is already defined at %s", v.Key(), old.Pos)
			continue
		}
		vsKeys[v.Key()] = v
		if v.Hysteresis >= v.Quorum && v.Hysteresis > 0 {
			p.warnf(v.Pos, "virtual_server %s: hysteresis %d is not below quorum %d", v.Key(), v.Hysteresis, v.Quorum)
		}
	}
	if cl := c.Cluster; cl != nil {
		for _, i := range c.Instances {
			if i.Fenced(c) && cl.Lease >= 3*i.AdvertInt {
				p.warnf(cl.Pos, "cluster: lease %s is not well below vrrp_instance %s's Master_Down_Interval (3 x advert_int %s); failover will wait for the lease",
					cl.Lease, i.Name, i.AdvertInt)
			}
		}
	}
}

func instanceNames(c *Config) []string {
	out := make([]string, 0, len(c.Instances))
	for _, i := range c.Instances {
		out = append(out, i.Name)
	}
	return out
}

// dropWeightedTracking: in a sync group, keepalived ignores tracking with
// a weight (a member's priority change would not move the group) unless
// the group sets sync_group_tracking_weight. Those trackers are dropped
// here with the same warning.
func (p *parser) dropWeightedTracking(i *VRRPInstance) {
	scripts := i.TrackScripts[:0]
	for _, t := range i.TrackScripts {
		w := 0
		if t.Weight != nil {
			w = *t.Weight
		} else if s := p.cfg.Script(t.Name); s != nil {
			w = s.Weight
		}
		if w != 0 {
			p.warnf(t.Pos, "vrrp_instance %s: track_script %s with weight %d ignored because the instance is in vrrp_sync_group %s (as keepalived does; set sync_group_tracking_weight in the group to keep it)", i.Name, t.Name, w, i.SyncGroup)
			continue
		}
		scripts = append(scripts, t)
	}
	i.TrackScripts = scripts
	ifs := i.TrackInterfaces[:0]
	for _, t := range i.TrackInterfaces {
		if t.Weight != 0 {
			p.warnf(t.Pos, "vrrp_instance %s: track_interface %s with weight %d ignored because the instance is in vrrp_sync_group %s (as keepalived does; set sync_group_tracking_weight in the group to keep it)", i.Name, t.Name, t.Weight, i.SyncGroup)
			continue
		}
		ifs = append(ifs, t)
	}
	i.TrackInterfaces = ifs
	files := i.TrackFiles[:0]
	for _, t := range i.TrackFiles {
		w := 0
		if t.Weight != nil {
			w = *t.Weight
		} else {
			for _, d := range p.cfg.TrackFileDefs {
				if d.Name == t.Name {
					w = d.Weight
				}
			}
		}
		if w != 0 {
			p.warnf(t.Pos, "vrrp_instance %s: track_file %s with weight %d ignored because the instance is in vrrp_sync_group %s (as keepalived does; set sync_group_tracking_weight in the group to keep it)", i.Name, t.Name, w, i.SyncGroup)
			continue
		}
		files = append(files, t)
	}
	i.TrackFiles = files
}
