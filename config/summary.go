package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
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
	// The virtual servers are most of a large file (40,000 real server
	// lines): appended without fmt, durations formatted once per value.
	var buf []byte
	durs := map[time.Duration]string{}
	rs := 0
	for _, v := range c.VirtualServers {
		rs += len(v.RealServers)
	}
	b.Grow(b.Len() + 80*len(c.VirtualServers) + 110*rs) // a real server's line is ~100 bytes
	for _, v := range c.VirtualServers {
		buf = appendVirtualServer(buf[:0], v, durs)
		b.Write(buf)
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

// appendVirtualServer appends a virtual server's summary lines: the
// server, then one line per real server with its checkers.
func appendVirtualServer(b []byte, v *VirtualServer, durs map[time.Duration]string) []byte {
	b = append(b, "virtual_server "...)
	b = append(b, v.Key()...)
	b = append(b, ": "...)
	b = append(b, v.LBAlgo...)
	b = append(b, ' ')
	b = append(b, v.LBKind...)
	b = append(b, ", delay_loop "...)
	b = appendDuration(b, v.DelayLoop, durs)
	if v.PersistenceTimeout > 0 {
		b = append(b, ", persistence "...)
		b = appendDuration(b, v.PersistenceTimeout, durs)
	}
	if v.SorryServer != nil {
		b = append(b, ", sorry_server "...)
		b = v.SorryServer.Addr.AppendTo(b)
	}
	b = append(b, ", "...)
	b = strconv.AppendInt(b, int64(len(v.RealServers)), 10)
	b = append(b, " real servers\n"...)
	for _, r := range v.RealServers {
		b = append(b, "  real_server "...)
		b = r.Addr.AppendTo(b)
		b = append(b, " weight "...)
		b = strconv.AppendInt(b, int64(r.Weight), 10)
		for _, ch := range r.Checkers {
			b = append(b, "; "...)
			b = appendChecker(b, ch, r, durs)
		}
		b = append(b, '\n')
	}
	return b
}

func appendDuration(b []byte, d time.Duration, durs map[time.Duration]string) []byte {
	s, ok := durs[d]
	if !ok {
		s = d.String()
		durs[d] = s
	}
	return append(b, s...)
}

func appendChecker(b []byte, c *Checker, rs *RealServer, durs map[time.Duration]string) []byte {
	b = append(b, c.Kind...)
	b = append(b, ' ')
	to := c.ConnectAddr(rs)
	switch {
	case !to.Addr().IsValid():
	case to.Addr().Is6():
		b = append(b, '[')
		b = to.Addr().AppendTo(b)
		b = append(b, ']')
	default:
		b = to.Addr().AppendTo(b)
	}
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(to.Port()), 10)
	b = append(b, " timeout "...)
	b = appendDuration(b, c.ConnectTimeout, durs)
	b = append(b, " retry "...)
	b = strconv.AppendInt(b, int64(c.Retry), 10)
	for _, u := range c.HTTPFields().URLs {
		b = append(b, " url "...)
		b = append(b, u.Path...)
		for _, r := range u.StatusCodes {
			b = append(b, " ="...)
			b = strconv.AppendInt(b, int64(r.Lo), 10)
			if r.Lo != r.Hi {
				b = append(b, '-')
				b = strconv.AppendInt(b, int64(r.Hi), 10)
			}
		}
		if u.Digest != "" {
			b = append(b, " md5 "...)
			b = append(b, u.Digest...)
		}
	}
	if c.OtherFields().MiscPath != "" {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, c.OtherFields().MiscPath)
	}
	return b
}
