package config

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

func defaultGARP() GARPSettings {
	return GARPSettings{
		MasterDelay:         5 * time.Second,
		MasterRepeat:        5,
		MasterRefreshRepeat: 1,
		LowerPrioDelay:      5 * time.Second,
		LowerPrioRepeat:     5,
	}
}

func defaultGlobal() GlobalDefs {
	return GlobalDefs{
		SMTPConnectTimeout: 30 * time.Second,
		VRRPMcastGroup4:    netip.MustParseAddr("224.0.0.18"),
		VRRPMcastGroup6:    netip.MustParseAddr("ff02::12"),
		GARP:               defaultGARP(),
		VRRPVersion:        2,
	}
}

// garpOverride records the garp_* keywords set in an instance (nil: not
// set, inherit global_defs).
type garpOverride struct {
	masterDelay, masterRefresh, interval, gnaInterval, lowerPrioDelay *time.Duration
	masterRepeat, masterRefreshRepeat, lowerPrioRepeat                *int
}

// --- global_defs -------------------------------------------------------------

var globalTable table[*GlobalDefs]

// globalAccepted are global_defs keywords keepalived has that hakeep
// accepts without a model field (kept in GlobalDefs.Other).
var globalAccepted = []string{
	"vrrp_garp_master_refresh_repeat_x", "snmp_socket", "enable_snmp_vrrp", "enable_snmp_checker",
	"enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_keepalived",
	"vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier",
	"vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs", "lvs_netlink_cmd_rcv_bufs",
	"lvs_netlink_monitor_rcv_bufs", "process_monitor_rcv_bufs", "vrrp_ipsets", "vrrp_higher_prio_send_advert",
	"vrrp_min_garp", "vrrp_lower_prio_no_advert", "vrrp_rlimit_rttime", "checker_rlimit_rttime",
	"bfd_rlimit_rttime", "vrrp_rt_priority", "checker_rt_priority", "bfd_rt_priority", "bfd_priority",
	"bfd_no_swap",
	"vrrp_notify_priority_changes",
	"nftables", "nftables_priority", "nftables_ifindex", "nftables_counters", "vrrp_iptables",
	"script_user", "linkbeat_use_polling", "vrrp_version", "local_name", "instance", "net_namespace",
	"namespace_with_ipsets", "use_pid_dir", "child_wait_time", "umask",
	"vrrp_no_swap",
	"checker_no_swap", "vrrp_dont_track_primary_v6", "random_seed", "reload_check_config",
	"reload_time_file", "reload_repeat", "reload_file", "data_use_instance", "tmp_config_directory",
	"config_save_dir", "vrrp_socket_priority",
	"bfd_cpu_affinity", "bfd_process_name", "checker_cpu_affinity", "checker_log_all_failures", "checker_process_name",
	"dbus_service_name", "disable_local_igmp", "enable_dbus", "fifo_write_vrrp_states_on_reload",
	"lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_monitor_rcv_bufs_force", "net_namespace_ipvs", "nftables_ipvs",
	"nftables_ipvs_priority", "nftables_ipvs_start_fwmark", "no_checker_emails", "process_monitor_rcv_bufs_force",
	"rs_init_notifies", "smtp_alert_checker", "smtp_alert_vrrp", "snmp_name", "vrrp_cpu_affinity", "vrrp_down_timer_adverts",
	"vrrp_garp_extra_if", "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs_force", "vrrp_process_name",
	"log_unknown_vrids", "vmac_prefix", "vmac_addr_prefix", "process_names", "enable_snmp_checker_rfc",
	"process_name", "lvs_process_name", "min_auto_priority_delay", "vrrp_vmac_garp_intvl", "vrrp_rlimit_rtime",
	"checker_rlimit_rtime", "bfd_rlimit_rtime", "include_check",
}

func init() {
	g := table[*GlobalDefs]{
		"router_id": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.RouterID = s
			}
		},
		"metrics_listen": func(p *parser, n *node, g *GlobalDefs) { p.metricsListen(n, g) },
		"notification_email": func(p *parser, n *node, g *GlobalDefs) {
			if !p.needBlock(n) {
				return
			}
			for _, m := range n.block {
				g.NotificationEmail = append(g.NotificationEmail, m.args0()...)
			}
		},
		"notification_email_from": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.NotificationEmailFrom = s
			}
		},
		"smtp_server": func(p *parser, n *node, g *GlobalDefs) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			srv := &SMTPServer{Host: s, Port: 25}
			if a, err := netip.ParseAddrPort(s); err == nil {
				srv.Host, srv.Port = a.Addr().String(), a.Port()
			}
			if len(n.words) > 2 {
				port, ok := p.portArg(n.pos(), "smtp_server port", n.words[2])
				if !ok {
					return
				}
				srv.Port = port
			}
			g.SMTPServer = srv
		},
		"smtp_helo_name": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.SMTPHeloName = s
			}
		},
		"smtp_connect_timeout": func(p *parser, n *node, g *GlobalDefs) {
			if d, ok := p.secondsArg(n, 1, 3600); ok {
				g.SMTPConnectTimeout = d
			}
		},
		"vrrp_mcast_group4": func(p *parser, n *node, g *GlobalDefs) {
			if a, ok := p.addrArg(n, 1); ok {
				if !a.Is4() || !a.IsMulticast() {
					p.errorf(n.pos(), "vrrp_mcast_group4: %s is not an IPv4 multicast address", a)
					return
				}
				g.VRRPMcastGroup4 = a
			}
		},
		"vrrp_mcast_group6": func(p *parser, n *node, g *GlobalDefs) {
			if a, ok := p.addrArg(n, 1); ok {
				if !a.Is6() || !a.IsMulticast() {
					p.errorf(n.pos(), "vrrp_mcast_group6: %s is not an IPv6 multicast address", a)
					return
				}
				g.VRRPMcastGroup6 = a
			}
		},
		"script_user": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.ScriptUser = s
				if len(n.words) > 2 {
					g.ScriptGroup = n.words[2]
				}
			}
		},
		"enable_script_security": func(p *parser, n *node, g *GlobalDefs) { g.EnableScriptSecurity = p.flag(n) },
		"vrrp_garp_master_delay": func(p *parser, n *node, g *GlobalDefs) {
			if d, ok := p.secondsArg(n, 0, 3600); ok {
				g.GARP.MasterDelay = d
			}
		},
		"vrrp_garp_master_repeat": func(p *parser, n *node, g *GlobalDefs) {
			if v, ok := p.intArg(n, 0, 1000); ok {
				g.GARP.MasterRepeat = v
			}
		},
		"vrrp_garp_master_refresh": func(p *parser, n *node, g *GlobalDefs) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				g.GARP.MasterRefresh = d
			}
		},
		"vrrp_garp_master_refresh_repeat": func(p *parser, n *node, g *GlobalDefs) {
			if v, ok := p.intArg(n, 0, 1000); ok {
				g.GARP.MasterRefreshRepeat = v
			}
		},
		"vrrp_garp_interval": func(p *parser, n *node, g *GlobalDefs) {
			if d, ok := p.secondsArg(n, 0, 1); ok {
				if d == 0 {
					// keepalived 2.2 refuses 0 with a warning and keeps
					// its default, which is also 0: same effect.
					p.warnf(n.pos(), "vrrp_garp_interval 0: keepalived warns that 0 is out of range; it is the default anyway, so the line can go")
				}
				g.GARP.Interval = d
			}
		},
		"vrrp_gna_interval": func(p *parser, n *node, g *GlobalDefs) {
			if d, ok := p.secondsArg(n, 0, 1); ok {
				if d == 0 {
					// keepalived 2.2 refuses 0 with a warning and keeps
					// its default, which is also 0: same effect.
					p.warnf(n.pos(), "vrrp_gna_interval 0: keepalived warns that 0 is out of range; it is the default anyway, so the line can go")
				}
				g.GARP.GNAInterval = d
			}
		},
		"vrrp_garp_lower_prio_delay": func(p *parser, n *node, g *GlobalDefs) {
			if d, ok := p.secondsArg(n, 0, 3600); ok {
				g.GARP.LowerPrioDelay = d
				p.globalLowerDelay = true
			}
		},
		"vrrp_garp_lower_prio_repeat": func(p *parser, n *node, g *GlobalDefs) {
			if v, ok := p.intArg(n, 0, 1000); ok {
				g.GARP.LowerPrioRepeat = v
				p.globalLowerRepeat = true
			}
		},
		"vrrp_version": func(p *parser, n *node, g *GlobalDefs) {
			if v, ok := p.intArg(n, 2, 3); ok {
				g.VRRPVersion = v
			}
		},
		"vrrp_strict":              func(p *parser, n *node, g *GlobalDefs) { g.VRRPStrict = p.flag(n) },
		"vrrp_skip_check_adv_addr": func(p *parser, n *node, g *GlobalDefs) { g.VRRPSkipCheckAdvAddr = p.flag(n) },
		"vrrp_check_unicast_src":   func(p *parser, n *node, g *GlobalDefs) { g.VRRPCheckUnicastSrc = p.flag(n) },
		"vrrp_iptables":            func(p *parser, n *node, g *GlobalDefs) { g.VRRPIPTables = true },
		"vrrp_no_swap":             func(p *parser, n *node, g *GlobalDefs) { g.VRRPNoSwap = p.flag(n) },
		"checker_no_swap":          func(p *parser, n *node, g *GlobalDefs) { g.CheckerNoSwap = p.flag(n) },
		"vrrp_priority": func(p *parser, n *node, g *GlobalDefs) {
			if v, ok := p.intArg(n, -20, 19); ok {
				g.VRRPPriority = &v
			}
		},
		"checker_priority": func(p *parser, n *node, g *GlobalDefs) {
			if v, ok := p.intArg(n, -20, 19); ok {
				g.CheckerPriority = &v
			}
		},
		"lvs_flush": func(p *parser, n *node, g *GlobalDefs) { g.LVSFlush = p.flag(n) },
		"lvs_flush_on_stop": func(p *parser, n *node, g *GlobalDefs) {
			// keepalived: bare = flush the whole IPVS table at stop; "VS" =
			// delete only the virtual servers it manages.
			p.noBlock(n)
			switch {
			case len(n.words) == 1:
				g.LVSFlushOnStop, g.LVSFlushOnStopMode = true, "ALL"
			case n.words[1] == "VS":
				g.LVSFlushOnStop, g.LVSFlushOnStopMode = true, "VS"
			default: // keepalived: "Unknown lvs_flush_on_stop type", setting left off
				p.warnf(n.pos(), "lvs_flush_on_stop: unknown type '%s' (want nothing: flush everything, or VS: our virtual servers); ignored", n.words[1])
			}
		},
		"enable_traps":       func(p *parser, n *node, g *GlobalDefs) { g.EnableTraps = p.flag(n) },
		"dynamic_interfaces": func(p *parser, n *node, g *GlobalDefs) { g.DynamicInterfaces = true },
		"no_email_faults":    func(p *parser, n *node, g *GlobalDefs) { g.NoEmailFaults = p.flag(n) },
		"max_auto_priority": func(p *parser, n *node, g *GlobalDefs) {
			v := 0
			if len(n.words) > 1 {
				var ok bool
				if v, ok = p.intArg(n, -1, 99); !ok {
					return
				}
			}
			g.MaxAutoPriority = &v
		},
		"default_interface": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.DefaultInterface = s
			}
		},
		"ssl_ca": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.SSLCA = s
			}
		},
		"ssl_certificate": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.SSLCertificate = s
			}
		},
		"ssl_key": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.SSLKey = s
			}
		},
		"ssl_password": func(p *parser, n *node, g *GlobalDefs) {
			if s, ok := p.arg(n, 1); ok {
				g.SSLPassword = s
			}
		},
		"ssl": func(p *parser, n *node, g *GlobalDefs) {
			// keepalived's older form: SSL { ca / certificate / key / password }.
			if !p.needBlock(n) {
				return
			}
			for _, m := range n.block {
				if len(m.words) < 2 {
					continue
				}
				p.warnNotImpl("SSL", m)
				switch m.kw() {
				case "ca":
					g.SSLCA = m.words[1]
				case "certificate":
					g.SSLCertificate = m.words[1]
				case "key":
					g.SSLKey = m.words[1]
				case "password":
					g.SSLPassword = m.words[1]
				default:
					p.unknown(m, []string{"ca", "certificate", "key", "password"}, "SSL")
				}
			}
		},
	}
	g["SSL"] = g["ssl"]
	g["lvs_flush_onstop"] = g["lvs_flush_on_stop"] // keepalived's alias
	g["smtp_alert"] = func(p *parser, n *node, g *GlobalDefs) {
		// checks/ reads it from Other; VRRP does not.
		p.warnf(n.pos(), "smtp_alert in global_defs: hakeepd applies it to checkers only; set smtp_alert in each vrrp_instance or vrrp_sync_group")
		other(&g.Other, n)
	}
	operatorKeywords(g)
	for _, k := range globalAccepted {
		if _, ok := g[k]; !ok {
			g[k] = func(p *parser, n *node, g *GlobalDefs) { other(&g.Other, n) }
		}
	}
	globalTable = g
}

// args0 returns every word of a list-block line.
func (n *node) args0() []string { return n.words }

func (p *parser) globalDefs(n *node) {
	if !p.needBlock(n) {
		return
	}
	if !p.hasGlobal {
		p.cfg.Global.Pos = n.pos()
		p.hasGlobal = true
	}
	dispatch(p, n.block, globalTable, &p.cfg.Global, "global_defs")
}

// --- vrrp_script ---------------------------------------------------------------

var scriptTable table[*VRRPScript]

func init() {
	scriptTable = table[*VRRPScript]{
		"script": func(p *parser, n *node, s *VRRPScript) {
			if v, ok := p.rest(n); ok {
				s.Script = v
			}
		},
		// keepalived reads these as whole seconds.
		"interval": func(p *parser, n *node, s *VRRPScript) {
			if v, ok := p.intArg(n, 1, 4294); ok {
				s.Interval = time.Duration(v) * time.Second
			}
		},
		"timeout": func(p *parser, n *node, s *VRRPScript) {
			if v, ok := p.intArg(n, 1, 4294); ok {
				s.Timeout = time.Duration(v) * time.Second
			}
		},
		"weight": func(p *parser, n *node, s *VRRPScript) {
			if v, ok := p.intArg(n, -253, 253); ok {
				s.Weight = v
			}
			if len(n.words) > 2 {
				if n.words[2] == "reverse" {
					s.WeightReverse = true
				} else {
					p.errorf(n.pos(), "weight: unexpected '%s' (only 'reverse' may follow)", n.words[2])
				}
			}
		},
		"rise": func(p *parser, n *node, s *VRRPScript) {
			if v, ok := p.intArg(n, 1, 1000000); ok {
				s.Rise = v
			}
		},
		"fall": func(p *parser, n *node, s *VRRPScript) {
			if v, ok := p.intArg(n, 1, 1000000); ok {
				s.Fall = v
			}
		},
		"user": func(p *parser, n *node, s *VRRPScript) {
			if v, ok := p.arg(n, 1); ok {
				s.User = v
				if len(n.words) > 2 {
					s.Group = n.words[2]
				}
			}
		},
		"init_fail": func(p *parser, n *node, s *VRRPScript) { s.InitFail = p.flag(n) },
	}
}

func (p *parser) name(n *node) string {
	if len(n.words) < 2 {
		p.errorf(n.pos(), "'%s' needs a name", n.kw())
		return ""
	}
	return n.words[1]
}

func (p *parser) vrrpScript(n *node) {
	name := p.name(n)
	if !p.needBlock(n) || name == "" {
		return
	}
	s := &VRRPScript{Pos: n.pos(), Name: name, Interval: time.Second, Rise: 1, Fall: 1}
	dispatch(p, n.block, scriptTable, s, "vrrp_script")
	if s.Script == "" {
		// keepalived: "No script set for vrrp_script X - removing".
		p.warnf(n.pos(), "vrrp_script %s has no script; it is ignored", name)
		if p.removedScript == nil {
			p.removedScript = map[string]bool{}
		}
		p.removedScript[name] = true
		return
	}
	if old := p.cfg.Script(name); old != nil {
		p.errorf(n.pos(), "vrrp_script %s is already defined at %s", name, old.Pos)
		return
	}
	p.cfg.Scripts = append(p.cfg.Scripts, s)
}

func (p *parser) trackFileDef(n *node) {
	name := p.name(n)
	if !p.needBlock(n) || name == "" {
		return
	}
	t := &TrackFileDef{Pos: n.pos(), Name: name}
	for _, m := range n.block {
		p.warnNotImpl("vrrp_track_file", m)
		switch m.kw() {
		case "file":
			if s, ok := p.arg(m, 1); ok {
				t.File = s
			}
		case "weight":
			if v, ok := p.intArg(m, -254, 254); ok {
				t.Weight = v
			}
			t.Reverse = len(m.words) > 2 && m.words[2] == "reverse"
		case "init_file":
			t.InitFile = true
		default:
			p.unknown(m, []string{"file", "weight", "init_file"}, "vrrp_track_file")
		}
	}
	if t.File == "" {
		p.errorf(n.pos(), "vrrp_track_file %s has no file", name)
		return
	}
	p.cfg.TrackFileDefs = append(p.cfg.TrackFileDefs, t)
}

// --- vrrp_instance -------------------------------------------------------------

var instanceTable table[*VRRPInstance]

func (p *parser) garp(i *VRRPInstance) *garpOverride {
	if p.instGARP == nil {
		p.instGARP = map[*VRRPInstance]*garpOverride{}
	}
	g := p.instGARP[i]
	if g == nil {
		g = &garpOverride{}
		p.instGARP[i] = g
	}
	return g
}

func notifyHandler(set func(*Notify, string)) func(p *parser, n *node, nt *Notify) {
	return func(p *parser, n *node, nt *Notify) {
		if s, ok := p.rest(n); ok {
			set(nt, s)
		}
	}
}

// notifyKeywords are shared by vrrp_instance and vrrp_sync_group.
var notifyKeywords = map[string]func(p *parser, n *node, nt *Notify){
	"notify_master":              notifyHandler(func(nt *Notify, s string) { nt.Master = s }),
	"notify_backup":              notifyHandler(func(nt *Notify, s string) { nt.Backup = s }),
	"notify_fault":               notifyHandler(func(nt *Notify, s string) { nt.Fault = s }),
	"notify_stop":                notifyHandler(func(nt *Notify, s string) { nt.Stop = s }),
	"notify_deleted":             notifyHandler(func(nt *Notify, s string) { nt.Deleted = s }),
	"notify":                     notifyHandler(func(nt *Notify, s string) { nt.Any = s }),
	"notify_master_rx_lower_pri": notifyHandler(func(nt *Notify, s string) { nt.MasterRxLowerPri = s }),
	// hakeep's: the script for FENCED (vrrp.ScriptNotifier).
	"notify_fenced": notifyHandler(func(nt *Notify, s string) { nt.Fenced = s }),
}

func init() {
	t := table[*VRRPInstance]{
		"state": func(p *parser, n *node, i *VRRPInstance) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			switch s {
			case StateMaster, StateBackup:
				i.State = s
			default:
				p.errorf(n.pos(), "state: want MASTER or BACKUP, got '%s'", s)
			}
		},
		"interface": func(p *parser, n *node, i *VRRPInstance) {
			if s, ok := p.arg(n, 1); ok {
				if len(s) > 15 {
					p.errorf(n.pos(), "interface: name '%s' is longer than 15 characters", s)
					return
				}
				i.Interface = s
			}
		},
		"virtual_router_id": func(p *parser, n *node, i *VRRPInstance) {
			if v, ok := p.intArg(n, 1, 255); ok {
				i.VRID = v
			}
		},
		"priority": func(p *parser, n *node, i *VRRPInstance) {
			if v, ok := p.intArg(n, 1, 255); ok {
				i.Priority = v
				if p.instPrio == nil {
					p.instPrio = map[*VRRPInstance]bool{}
				}
				p.instPrio[i] = true
			}
		},
		"advert_int": func(p *parser, n *node, i *VRRPInstance) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			f, ok := p.parseSeconds(n.pos(), "advert_int", s, 0.01, 255)
			if !ok {
				return
			}
			if p.advertRaw == nil {
				p.advertRaw = map[*VRRPInstance]float64{}
			}
			p.advertRaw[i] = f
		},
		"version": func(p *parser, n *node, i *VRRPInstance) {
			if v, ok := p.intArg(n, 2, 3); ok {
				i.Version = v
				if p.instVersion == nil {
					p.instVersion = map[*VRRPInstance]bool{}
				}
				p.instVersion[i] = true
			}
		},
		"nopreempt": func(p *parser, n *node, i *VRRPInstance) { p.noBlock(n); i.Preempt = false },
		// keepalived accepts "preempt" (the default) and ignores its
		// arguments, so "preempt delay 60" from the seeds is not an error.
		"preempt": func(p *parser, n *node, i *VRRPInstance) { p.noBlock(n); i.Preempt = true },
		"preempt_delay": func(p *parser, n *node, i *VRRPInstance) {
			if d, ok := p.secondsArg(n, 0, 1000); ok {
				i.PreemptDelay = d
			}
		},
		"accept":    func(p *parser, n *node, i *VRRPInstance) { p.noBlock(n); i.Accept = true; p.setAccept(i) },
		"no_accept": func(p *parser, n *node, i *VRRPInstance) { p.noBlock(n); i.Accept = false; p.setAccept(i) },
		"authentication": func(p *parser, n *node, i *VRRPInstance) {
			if !p.needBlock(n) {
				return
			}
			a := &Auth{Pos: n.pos()}
			for _, m := range n.block {
				switch m.kw() {
				case "auth_type":
					s, ok := p.arg(m, 1)
					if !ok {
						continue
					}
					switch s {
					case "PASS", "AH":
						a.Type = s
					default:
						p.errorf(m.pos(), "auth_type: want PASS or AH, got '%s'", s)
					}
				case "auth_pass":
					s, ok := p.arg(m, 1)
					if !ok {
						continue
					}
					if len(s) > 8 {
						p.warnf(m.pos(), "auth_pass is longer than 8 characters; truncated to '%s' (as keepalived does)", s[:8])
						s = s[:8]
					}
					a.Pass = s
				default:
					p.unknown(m, []string{"auth_type", "auth_pass"}, "authentication")
				}
			}
			if a.Type == "" {
				p.errorf(n.pos(), "authentication: auth_type is missing")
				return
			}
			if a.Type == "PASS" && a.Pass == "" {
				p.errorf(n.pos(), "authentication: auth_type PASS needs an auth_pass")
				return
			}
			i.Auth = a
		},
		"virtual_ipaddress": func(p *parser, n *node, i *VRRPInstance) {
			if p.needBlock(n) {
				i.VIPs = append(i.VIPs, p.vipList(n.block, "virtual_ipaddress")...)
			}
		},
		"virtual_ipaddress_excluded": func(p *parser, n *node, i *VRRPInstance) {
			if p.needBlock(n) {
				for _, v := range p.vipList(n.block, "virtual_ipaddress_excluded") {
					v.Excluded = true
					i.ExcludedVIPs = append(i.ExcludedVIPs, v)
				}
			}
		},
		"virtual_routes": func(p *parser, n *node, i *VRRPInstance) {
			if p.needBlock(n) {
				i.Routes = append(i.Routes, p.routeList(n.block)...)
			}
		},
		"virtual_rules": func(p *parser, n *node, i *VRRPInstance) {
			if p.needBlock(n) {
				i.Rules = append(i.Rules, p.ruleList(n.block)...)
			}
		},
		"track_interface": func(p *parser, n *node, i *VRRPInstance) {
			if p.needBlock(n) {
				i.TrackInterfaces = append(i.TrackInterfaces, p.trackInterfaces(n.block)...)
			}
		},
		"track_script": func(p *parser, n *node, i *VRRPInstance) {
			if p.needBlock(n) {
				i.TrackScripts = append(i.TrackScripts, p.trackScripts(n.block)...)
			}
		},
		"track_file": func(p *parser, n *node, i *VRRPInstance) {
			if p.needBlock(n) {
				i.TrackFiles = append(i.TrackFiles, p.trackFiles(n.block)...)
			}
		},
		"mcast_src_ip": func(p *parser, n *node, i *VRRPInstance) {
			if a, ok := p.addrArg(n, 1); ok {
				i.McastSrcIP = a
			}
		},
		"unicast_src_ip": func(p *parser, n *node, i *VRRPInstance) {
			if a, ok := p.addrArg(n, 1); ok {
				i.UnicastSrcIP = a
			}
		},
		"unicast_peer": func(p *parser, n *node, i *VRRPInstance) {
			if !p.needBlock(n) {
				return
			}
			for _, m := range n.block {
				peer := &UnicastPeer{Pos: m.pos()}
				a, ok := p.parseAddr(m.pos(), "unicast_peer", m.kw())
				if !ok {
					continue
				}
				peer.Addr = a
				for k := 1; k < len(m.words); k++ {
					w := m.words[k]
					if (w == "min_ttl" || w == "max_ttl") && k+1 < len(m.words) {
						v, ok := p.parseInt(m.pos(), w, m.words[k+1], 0, 255)
						if ok && w == "min_ttl" {
							peer.MinTTL = v
						} else if ok {
							peer.MaxTTL = v
						}
						k++
						continue
					}
					// Several peers on one line: each word an address.
					if a, err := netip.ParseAddr(w); err == nil {
						i.UnicastPeers = append(i.UnicastPeers, &UnicastPeer{Pos: m.pos(), Addr: a})
						continue
					}
					p.errorf(m.pos(), "unicast_peer: unexpected '%s'", w)
				}
				i.UnicastPeers = append(i.UnicastPeers, peer)
			}
		},
		"unicast_ttl": func(p *parser, n *node, i *VRRPInstance) {
			if v, ok := p.intArg(n, 1, 255); ok {
				i.UnicastTTL = v
			}
		},
		"use_vmac": func(p *parser, n *node, i *VRRPInstance) {
			p.noBlock(n)
			i.UseVMAC = true
			for _, w := range n.args() {
				if strings.Contains(w, ":") {
					// keepalived 2.2 reads "use_vmac [NAME] [MAC]"; a
					// custom MAC is not supported here.
					p.warnf(n.pos(), "use_vmac: custom MAC address '%s' ignored; the RFC VMAC 00:00:5e:00:01:VRID is used", w)
					continue
				}
				if len(w) > 15 {
					p.errorf(n.pos(), "use_vmac: interface name '%s' is longer than 15 characters", w)
					continue
				}
				i.VMACName = w
			}
		},
		"vmac_xmit_base":     func(p *parser, n *node, i *VRRPInstance) { i.VMACXmitBase = p.flag(n) },
		"dont_track_primary": func(p *parser, n *node, i *VRRPInstance) { i.DontTrackPrimary = p.flag(n) },
		"smtp_alert":         func(p *parser, n *node, i *VRRPInstance) { i.SMTPAlert = p.flag(n) },
		"lvs_sync_daemon_interface": func(p *parser, n *node, i *VRRPInstance) {
			if s, ok := p.arg(n, 1); ok {
				p.warnf(n.pos(), "lvs_sync_daemon_interface in a vrrp_instance is deprecated; use lvs_sync_daemon in global_defs (as keepalived says)")
				i.LVSSyncDaemonInterface = s
			}
		},
		"debug": func(p *parser, n *node, i *VRRPInstance) {
			i.Debug = 1
			if len(n.words) > 1 {
				if v, ok := p.intArg(n, 0, 4); ok {
					i.Debug = v
				}
			}
		},
		"strict_mode": func(p *parser, n *node, i *VRRPInstance) { i.StrictMode = p.flag(n) },
		"fence": func(p *parser, n *node, i *VRRPInstance) {
			v := p.flag(n)
			i.Fence = &v
		},
		"garp_master_delay": func(p *parser, n *node, i *VRRPInstance) {
			if d, ok := p.secondsArg(n, 0, 3600); ok {
				p.garp(i).masterDelay = &d
			}
		},
		"garp_master_repeat": func(p *parser, n *node, i *VRRPInstance) {
			if v, ok := p.intArg(n, 0, 1000); ok {
				p.garp(i).masterRepeat = &v
			}
		},
		"garp_master_refresh": func(p *parser, n *node, i *VRRPInstance) {
			if d, ok := p.secondsArg(n, 0, 86400); ok {
				p.garp(i).masterRefresh = &d
			}
		},
		"garp_master_refresh_repeat": func(p *parser, n *node, i *VRRPInstance) {
			if v, ok := p.intArg(n, 0, 1000); ok {
				p.garp(i).masterRefreshRepeat = &v
			}
		},
		"garp_interval": func(p *parser, n *node, i *VRRPInstance) {
			if d, ok := p.secondsArg(n, 0, 1); ok {
				p.garp(i).interval = &d
			}
		},
		"gna_interval": func(p *parser, n *node, i *VRRPInstance) {
			if d, ok := p.secondsArg(n, 0, 1); ok {
				p.garp(i).gnaInterval = &d
			}
		},
		"garp_lower_prio_delay": func(p *parser, n *node, i *VRRPInstance) {
			if d, ok := p.secondsArg(n, 0, 3600); ok {
				p.garp(i).lowerPrioDelay = &d
			}
		},
		"garp_lower_prio_repeat": func(p *parser, n *node, i *VRRPInstance) {
			if v, ok := p.intArg(n, 0, 1000); ok {
				p.garp(i).lowerPrioRepeat = &v
			}
		},
	}
	for _, k := range []string{"native_ipv6", "unicast_fault_no_peer", "check_unicast_src", "kernel_rx_buf_size",
		"higher_prio_send_advert", "skip_check_adv_addr", "track_process", "track_bfd", "notify_priority_changes",
		"no_accept_vmac", "old_unicast_checksum", "vmac_xmit_base_v6", "linkbeat_use_polling", "promote_secondaries",
		"mcast_ttl", "down_timer_adverts", "garp_extra_if", "lower_prio_no_advert", "use_ipvlan", "use_vmac_addr",
		"track_src_ip", "mcast_dst_ip", "interface_up_down_delays", "vrf", "vmac_garp_intvl"} {
		t[k] = func(p *parser, n *node, i *VRRPInstance) { other(&i.Other, n) }
	}
	for k, h := range notifyKeywords {
		t[k] = func(p *parser, n *node, i *VRRPInstance) { h(p, n, &i.Notify) }
	}
	instanceTable = t
}

// syncGroupKeywords lists what vrrp_sync_group accepts.
func syncGroupKeywords() []string {
	known := []string{"group", "smtp_alert", "track_interface", "track_script", "track_file", "global_tracking", "sync_group_tracking_weight",
		"notify_priority_changes", "track_bfd", "track_process"}
	for k := range notifyKeywords {
		known = append(known, k)
	}
	return known
}

func (p *parser) setAccept(i *VRRPInstance) {
	if p.instAccept == nil {
		p.instAccept = map[*VRRPInstance]bool{}
	}
	p.instAccept[i] = true
}

func (p *parser) vrrpInstance(n *node) {
	name := p.name(n)
	if !p.needBlock(n) || name == "" {
		return
	}
	i := &VRRPInstance{Pos: n.pos(), Name: name, State: StateBackup, Priority: 100,
		AdvertInt: time.Second, Preempt: true, Accept: true}
	dispatch(p, n.block, instanceTable, i, "vrrp_instance")
	p.cfg.Instances = append(p.cfg.Instances, i)
}

// trackInterfaces reads lines "IF [weight N [reverse]]"; several
// interfaces may share a line.
func (p *parser) trackInterfaces(nodes []*node) []*TrackInterface {
	var out []*TrackInterface
	for _, m := range nodes {
		var cur *TrackInterface
		for k := 0; k < len(m.words); k++ {
			w := m.words[k]
			switch {
			case w == "weight" && cur != nil:
				if k+1 >= len(m.words) {
					p.errorf(m.pos(), "track_interface: weight is missing its value")
					continue
				}
				if v, ok := p.parseInt(m.pos(), "track_interface weight", m.words[k+1], -254, 254); ok {
					cur.Weight = v
				}
				k++
			case w == "reverse" && cur != nil:
				cur.Reverse = true
			default:
				cur = &TrackInterface{Pos: m.pos(), Name: w}
				out = append(out, cur)
			}
		}
	}
	return out
}

// trackRefs reads lines "NAME [weight N [reverse]]" of track_script /
// track_file.
func (p *parser) trackRefs(nodes []*node, kw string, add func(pos Pos, name string) (*int, *bool)) {
	for _, m := range nodes {
		var w *int
		var rev *bool
		for k := 0; k < len(m.words); k++ {
			s := m.words[k]
			switch {
			case s == "weight" && w != nil:
				if k+1 >= len(m.words) {
					p.errorf(m.pos(), "%s: weight is missing its value", kw)
					continue
				}
				if v, ok := p.parseInt(m.pos(), kw+" weight", m.words[k+1], -254, 254); ok {
					*w = v
					*rev = false
				}
				k++
			case s == "reverse" && rev != nil:
				*rev = true
			default:
				w, rev = add(m.pos(), s)
			}
		}
	}
}

func (p *parser) trackScripts(nodes []*node) []*TrackScript {
	var out []*TrackScript
	p.trackRefs(nodes, "track_script", func(pos Pos, name string) (*int, *bool) {
		t := &TrackScript{Pos: pos, Name: name}
		out = append(out, t)
		return newWeight(&t.Weight), &t.Reverse
	})
	return out
}

func (p *parser) trackFiles(nodes []*node) []*TrackFile {
	var out []*TrackFile
	p.trackRefs(nodes, "track_file", func(pos Pos, name string) (*int, *bool) {
		t := &TrackFile{Pos: pos, Name: name}
		out = append(out, t)
		return newWeight(&t.Weight), &t.Reverse
	})
	return out
}

// newWeight returns a place for an optional weight: the pointer field is
// set only when a weight is written (a sentinel is used until then).
func newWeight(field **int) *int {
	v := new(int)
	*v = unsetWeight
	*field = v
	return v
}

const unsetWeight = -1 << 30

// --- VIPs, routes, rules -------------------------------------------------------------

func (p *parser) vipList(nodes []*node, kw string) []*VIP {
	var out []*VIP
	for _, m := range nodes {
		if v := p.vip(m, kw); v != nil {
			out = append(out, v)
		}
	}
	return out
}

// parsePrefixOrAddr reads "ADDR" or "ADDR/LEN".
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if pf.Addr().Zone() != "" {
			return netip.Prefix{}, errZone
		}
		return pf, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errZone
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

type zoneError struct{}

func (zoneError) Error() string { return "zones are not allowed" }

var errZone = zoneError{}

var scopes = map[string]bool{"global": true, "site": true, "link": true, "host": true, "nowhere": true}

func (p *parser) vip(m *node, kw string) *VIP {
	v := &VIP{Pos: m.pos()}
	pf, err := parsePrefixOrAddr(m.kw())
	if err != nil {
		p.errorf(m.pos(), "%s: bad address '%s'", kw, m.kw())
		return nil
	}
	v.Prefix = pf
	w := m.words
	val := func(k int) (string, bool) {
		if k+1 >= len(w) {
			p.errorf(m.pos(), "%s: '%s' is missing its value", kw, w[k])
			return "", false
		}
		return w[k+1], true
	}
	for k := 1; k < len(w); k++ {
		if vipOptionsIgnored[w[k]] {
			p.warnf(m.pos(), "%s: accepted, not implemented in hakeepd (an option of %s addresses)", w[k], kw)
		}
		switch opt := w[k]; opt {
		case "brd", "broadcast":
			s, ok := val(k)
			k++
			if !ok {
				continue
			}
			if s == "+" || s == "-" {
				v.BrdAuto = s
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil || a.Is4() != pf.Addr().Is4() {
				p.errorf(m.pos(), "%s: bad broadcast address '%s'", kw, s)
				continue
			}
			v.Brd = a
		case "dev":
			s, ok := val(k)
			k++
			if ok {
				if len(s) > 15 {
					p.errorf(m.pos(), "%s: interface name '%s' is longer than 15 characters", kw, s)
				}
				v.Dev = s
			}
		case "label":
			s, ok := val(k)
			k++
			if ok {
				if len(s) > 15 {
					p.errorf(m.pos(), "%s: label '%s' is longer than 15 characters", kw, s)
				}
				v.Label = s
			}
		case "scope":
			s, ok := val(k)
			k++
			if !ok {
				continue
			}
			if _, err := strconv.ParseUint(s, 10, 8); err != nil && !scopes[s] {
				p.errorf(m.pos(), "%s: unknown scope '%s' (want global, site, link, host or nowhere)", kw, s)
				continue
			}
			v.Scope = s
		case "peer":
			s, ok := val(k)
			k++
			if !ok {
				continue
			}
			pp, err := parsePrefixOrAddr(s)
			if err != nil {
				p.errorf(m.pos(), "%s: bad peer address '%s'", kw, s)
				continue
			}
			v.Peer = pp.Addr()
		case "track_group":
			s, ok := val(k)
			k++
			if ok {
				v.TrackGroup = s
			}
		case "preferred_lft":
			s, ok := val(k)
			k++
			if ok {
				if s != "0" {
					p.errorf(m.pos(), "%s: preferred_lft only accepts 0", kw)
					continue
				}
				b := true
				v.Preferred = &b
			}
		case "home":
			v.HomeAddress = true
		case "-nodad", "nodad":
			v.NoDAD = true
		case "noprefixroute":
			v.NoPrefixRoute = true
		case "autojoin":
			v.AutoJoin = true
		case "no_track":
			v.NoTrack = true
		default:
			msg := "%s: unknown option '%s' after the address"
			if s := nearest(opt, vipOptions); s != "" {
				msg += " (did you mean '" + s + "'?)"
			}
			p.warnf(m.pos(), msg, kw, opt)
		}
	}
	return v
}

var vipOptions = []string{"brd", "broadcast", "dev", "label", "scope", "peer", "track_group", "preferred_lft", "home", "nodad", "noprefixroute", "autojoin", "no_track"}

func (p *parser) routeList(nodes []*node) []*Route {
	var out []*Route
	for _, m := range nodes {
		if r := p.route(m); r != nil {
			out = append(out, r)
		}
	}
	return out
}

var routeTypes = map[string]bool{"unicast": true, "blackhole": true, "unreachable": true, "prohibit": true, "throw": true, "local": true, "broadcast": true, "anycast": true, "multicast": true, "nat": true}

func (p *parser) route(m *node) *Route {
	r := &Route{Pos: m.pos(), Args: slices.Clone(m.args0())}
	w := m.args0()
	val := func(k int) (string, bool) {
		if k+1 >= len(w) {
			p.errorf(m.pos(), "route: '%s' is missing its value", w[k])
			return "", false
		}
		return w[k+1], true
	}
	dstSet := false
	for k := 0; k < len(w); k++ {
		switch w[k] {
		case "src":
			if s, ok := val(k); ok {
				if a, ok := p.parseAddr(m.pos(), "route src", s); ok {
					r.Src = a
				}
			}
			k++
		case "via", "gw", "or":
			if w[k] != "via" {
				alt := map[string]string{"gw": "via", "or": "nexthop"}[w[k]]
				p.warnf(m.pos(), "route: '%s' is deprecated; use '%s' (as keepalived says)", w[k], alt)
			}
			if w[k] == "or" {
				// "via A or B": a multipath route.
				if s, ok := val(k); ok {
					if a, ok := p.parseAddr(m.pos(), "route via", s); ok {
						if len(r.NextHops) == 0 && r.Via.IsValid() {
							r.NextHops = append(r.NextHops, r.Via)
						}
						r.NextHops = append(r.NextHops, a)
					}
				}
				k++
				continue
			}
			if s, ok := val(k); ok {
				if k+2 < len(w) && (s == "inet" || s == "inet6") {
					k++
					s = w[k+1]
				}
				if a, ok := p.parseAddr(m.pos(), "route via", s); ok {
					r.Via = a
				}
			}
			k++
		case "dev", "oif":
			if s, ok := val(k); ok {
				r.Dev = s
			}
			k++
		case "table":
			if s, ok := val(k); ok {
				r.Table = s
			}
			k++
		case "metric", "priority", "preference":
			if s, ok := val(k); ok {
				if v, ok := p.parseInt(m.pos(), "route metric", s, 0, 1<<31-1); ok {
					r.Metric = v
				}
			}
			k++
		case "scope":
			if s, ok := val(k); ok {
				r.Scope = s
			}
			k++
		case "proto", "protocol":
			if s, ok := val(k); ok {
				r.Protocol = s
			}
			k++
		case "onlink":
			r.OnLink = true
		case "no_track":
			r.NoTrack = true
		case "to":
			// "src X to DST": the destination follows.
		case "mtu", "advmss", "rtt", "rttvar", "reordering", "window", "cwnd", "ssthresh", "realms",
			"rto_min", "initcwnd", "initrwnd", "features", "quickack", "congctl", "pref", "tos", "dsfield",
			"hoplimit", "nexthop", "fastopen_no_cookie", "ttl-propagate", "expires", "weight", "encap":
			k++ // accepted, kept in Args
		default:
			if routeTypes[w[k]] && !dstSet {
				r.Type = w[k]
				continue
			}
			if dstSet {
				// keepalived: "unknown route keyword X", and the route is
				// skipped.
				p.warnf(m.pos(), "route: unknown keyword '%s'; the route is ignored (as keepalived does)", w[k])
				return nil
			}
			s := w[k]
			if s == "default" {
				r.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
				dstSet = true
				continue
			}
			pf, err := parsePrefixOrAddr(s)
			if err != nil {
				p.errorf(m.pos(), "route: bad destination '%s'", s)
				return nil
			}
			r.Dst, dstSet = pf.Masked(), true
		}
	}
	if !dstSet {
		p.errorf(m.pos(), "route: no destination")
		return nil
	}
	if w := m.words[0]; w == "default" && r.Via.Is6() {
		r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	if r.Dev == "" && !r.NoTrack {
		// keepalived: "cannot track route X with no interface specified".
		p.warnf(m.pos(), "route %s: no dev given, so it is not tracked (as keepalived does); add dev or no_track", r.Dst)
		r.NoTrack = true
	}
	return r
}

var ruleOptions = []string{"from", "to", "table", "lookup", "priority", "preference", "fwmark", "iif", "dev", "oif",
	"tos", "dsfield", "realms", "goto", "suppress_prefixlength", "suppress_ifgroup", "uidrange", "ipproto", "sport",
	"dport", "l3mdev", "protocol", "no_track", "not"}

func (p *parser) ruleList(nodes []*node) []*Rule {
	var out []*Rule
	for _, m := range nodes {
		r := &Rule{Pos: m.pos(), Args: slices.Clone(m.args0())}
		w := r.Args
		ok := true
		for k := 0; k < len(w) && ok; k++ {
			if w[k] == "no_track" {
				r.NoTrack = true
				continue
			}
			if w[k] == "not" {
				continue
			}
			if k+1 >= len(w) {
				p.errorf(m.pos(), "rule: '%s' is missing its value", w[k])
				ok = false
				break
			}
			s := w[k+1]
			switch w[k] {
			case "from", "to":
				pf, err := parsePrefixOrAddr(s)
				if s == "all" {
					if w[k] == "from" {
						r.From = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
					}
					k++
					continue
				}
				if err != nil {
					p.errorf(m.pos(), "rule: bad %s address '%s'", w[k], s)
					ok = false
					continue
				}
				if w[k] == "from" {
					r.From = pf
				} else {
					r.To = pf
				}
			case "table", "lookup":
				r.Table = s
			case "priority", "preference":
				if v, good := p.parseInt(m.pos(), "rule priority", s, 0, 1<<32-1); good {
					r.Priority = v
				}
			case "fwmark":
				r.FWMark = s
			case "iif", "dev":
				r.IIF = s
			case "oif":
				r.OIF = s
			case "tos", "dsfield", "realms", "goto", "suppress_prefixlength", "suppress_ifgroup", "uidrange",
				"ipproto", "sport", "dport", "l3mdev", "protocol", "nat", "map-to":
				// kept in Args
			default:
				// keepalived: "Unknown rule option X" and the rule is dropped.
				msg := "rule: unknown option '%s'; the rule is ignored (as keepalived does)"
				if near := nearest(w[k], ruleOptions); near != "" {
					msg += " (did you mean '" + near + "'?)"
				}
				p.warnf(m.pos(), msg, w[k])
				ok = false
				continue
			}
			k++
		}
		if ok && r.Priority == 0 {
			// keepalived: "Rule has no preference specified - setting to
			// 16384. This is probably not what you want."
			// keepalived counts down from 16384 for each such rule.
			if p.nextRulePref == 0 {
				p.nextRulePref = 16384
			}
			p.warnf(m.pos(), "rule: no priority (preference) given; using %d, which is probably not what you want", p.nextRulePref)
			r.Priority = p.nextRulePref
			p.nextRulePref--
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

// --- vrrp_sync_group ---------------------------------------------------------------

func (p *parser) syncGroup(n *node) {
	name := p.name(n)
	if !p.needBlock(n) || name == "" {
		return
	}
	g := &SyncGroup{Pos: n.pos(), Name: name}
	for _, m := range n.block {
		p.warnNotImpl("vrrp_sync_group", m)
		if h, ok := notifyKeywords[m.kw()]; ok {
			h(p, m, &g.Notify)
			continue
		}
		switch m.kw() {
		case "group":
			if p.needBlock(m) {
				for _, x := range m.block {
					g.Group = append(g.Group, x.args0()...)
				}
			}
		case "smtp_alert":
			g.SMTPAlert = p.flag(m)
		case "track_interface":
			if p.needBlock(m) {
				g.TrackInterfaces = append(g.TrackInterfaces, p.trackInterfaces(m.block)...)
			}
		case "track_script":
			if p.needBlock(m) {
				g.TrackScripts = append(g.TrackScripts, p.trackScripts(m.block)...)
			}
		case "track_file":
			if p.needBlock(m) {
				g.TrackFiles = append(g.TrackFiles, p.trackFiles(m.block)...)
			}
		case "global_tracking":
			g.GlobalTracking = p.flag(m)
		case "sync_group_tracking_weight":
			g.SyncGroupTrackingWeight = p.flag(m)
		case "notify_priority_changes", "track_bfd", "track_process":
			// accepted (warned by warnNotImpl above)
		default:
			p.unknown(m, syncGroupKeywords(), "vrrp_sync_group")
		}
	}
	p.cfg.SyncGroups = append(p.cfg.SyncGroups, g)
}
