package config

import (
	"fmt"
	"strings"
)

// Summary returns a human summary of the configuration: instances with
// state, priority, VRID and VIPs; virtual servers with scheduler, kind,
// real servers and checkers; the cluster block.
func (c *Config) Summary() string {
	var b strings.Builder
	if c.Global.RouterID != "" {
		fmt.Fprintf(&b, "router_id %s\n", c.Global.RouterID)
	}
	if c.Global.MetricsListen != "" {
		fmt.Fprintf(&b, "metrics_listen %s: plain HTTP, GET /metrics only\n", c.Global.MetricsListen)
	}
	b.WriteString(c.Global.operatorSummary())
	if cl := c.Cluster; cl != nil {
		fmt.Fprintf(&b, "cluster: node %s at %s (raft %d, gossip %d), join %s, bootstrap_expect %d, data %s, lease %s\n",
			cl.NodeName, cl.BindAddr, cl.RaftPort, cl.GossipPort, strings.Join(cl.Join, ","), cl.BootstrapExpect, cl.DataDir, cl.Lease)
	}
	for _, s := range c.Scripts {
		fmt.Fprintf(&b, "vrrp_script %s: %q every %s, weight %d, rise %d, fall %d\n", s.Name, s.Script, s.Interval, s.Weight, s.Rise, s.Fall)
	}
	for _, i := range c.Instances {
		fmt.Fprintf(&b, "vrrp_instance %s: %s on %s, vrid %d, priority %d, advert %s, VRRPv%d IPv%d", i.Name, i.State, i.Interface, i.VRID, i.Priority, i.AdvertInt, i.Version, i.Family)
		if !i.Preempt {
			b.WriteString(", nopreempt")
		}
		if i.PreemptDelay > 0 {
			fmt.Fprintf(&b, ", preempt_delay %s", i.PreemptDelay)
		}
		if i.Auth != nil {
			fmt.Fprintf(&b, ", auth %s", i.Auth.Type)
		}
		if len(i.UnicastPeers) > 0 {
			peers := make([]string, 0, len(i.UnicastPeers))
			for _, u := range i.UnicastPeers {
				peers = append(peers, u.Addr.String())
			}
			fmt.Fprintf(&b, ", unicast to %s", strings.Join(peers, ","))
		}
		if i.SyncGroup != "" {
			fmt.Fprintf(&b, ", sync group %s", i.SyncGroup)
		}
		if c.Cluster != nil {
			if i.Fenced(c) {
				b.WriteString(", fenced")
			} else {
				b.WriteString(", not fenced")
			}
		}
		b.WriteByte('\n')
		for _, v := range i.VIPs {
			fmt.Fprintf(&b, "  VIP %s\n", vipString(v, i.Interface))
		}
		for _, v := range i.ExcludedVIPs {
			fmt.Fprintf(&b, "  excluded VIP %s\n", vipString(v, i.Interface))
		}
		for _, t := range i.TrackScripts {
			w := ""
			if t.Weight != nil {
				w = fmt.Sprintf(" weight %d", *t.Weight)
			}
			fmt.Fprintf(&b, "  track_script %s%s\n", t.Name, w)
		}
		for _, t := range i.TrackInterfaces {
			fmt.Fprintf(&b, "  track_interface %s weight %d\n", t.Name, t.Weight)
		}
	}
	for _, g := range c.SyncGroups {
		fmt.Fprintf(&b, "vrrp_sync_group %s: %s\n", g.Name, strings.Join(g.Group, ", "))
	}
	for _, v := range c.VirtualServers {
		fmt.Fprintf(&b, "virtual_server %s: %s %s, delay_loop %s", v.Key(), v.LBAlgo, v.LBKind, v.DelayLoop)
		if v.PersistenceTimeout > 0 {
			fmt.Fprintf(&b, ", persistence %s", v.PersistenceTimeout)
		}
		if v.SorryServer != nil {
			fmt.Fprintf(&b, ", sorry_server %s", v.SorryServer.Addr)
		}
		fmt.Fprintf(&b, ", %d real servers\n", len(v.RealServers))
		for _, r := range v.RealServers {
			fmt.Fprintf(&b, "  real_server %s weight %d", r.Addr, r.Weight)
			for _, ch := range r.Checkers {
				fmt.Fprintf(&b, "; %s", checkerString(ch))
			}
			b.WriteByte('\n')
		}
	}
	for _, g := range c.VSGroups {
		fmt.Fprintf(&b, "virtual_server_group %s: %d members\n", g.Name, len(g.Members))
	}
	if n := len(c.StaticAddresses); n > 0 {
		fmt.Fprintf(&b, "static_ipaddress: %d\n", n)
	}
	if n := len(c.StaticRoutes); n > 0 {
		fmt.Fprintf(&b, "static_routes: %d\n", n)
	}
	return b.String()
}

func vipString(v *VIP, iface string) string {
	s := v.Prefix.String()
	dev := v.Dev
	if dev == "" {
		dev = iface
	}
	s += " dev " + dev
	if v.Brd.IsValid() {
		s += " brd " + v.Brd.String()
	}
	if v.Label != "" {
		s += " label " + v.Label
	}
	if v.Scope != "" {
		s += " scope " + v.Scope
	}
	return s
}

func checkerString(c *Checker) string {
	s := fmt.Sprintf("%s %s timeout %s retry %d", c.Kind, netipJoin(c), c.ConnectTimeout, c.Retry)
	for _, u := range c.URLs {
		s += " url " + u.Path
		for _, r := range u.StatusCodes {
			if r.Lo == r.Hi {
				s += fmt.Sprintf(" =%d", r.Lo)
			} else {
				s += fmt.Sprintf(" =%d-%d", r.Lo, r.Hi)
			}
		}
		if u.Digest != "" {
			s += " md5 " + u.Digest
		}
	}
	if c.MiscPath != "" {
		s += fmt.Sprintf(" %q", c.MiscPath)
	}
	return s
}

func netipJoin(c *Checker) string {
	if !c.ConnectIP.IsValid() {
		return fmt.Sprintf(":%d", c.ConnectPort)
	}
	if c.ConnectIP.Is6() {
		return fmt.Sprintf("[%s]:%d", c.ConnectIP, c.ConnectPort)
	}
	return fmt.Sprintf("%s:%d", c.ConnectIP, c.ConnectPort)
}
