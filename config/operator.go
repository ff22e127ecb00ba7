package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// NotifyFifo is notify_fifo, vrrp_notify_fifo or lvs_notify_fifo
// "PATH [USER [GROUP]]" with its *_script companion (keepalived's
// global_parser.c notify_fifo()).
type NotifyFifo struct {
	Pos  Pos    `json:"pos"`
	Path string `json:"path"`
	// User/Group own a fifo hakeepd creates; empty: left as created.
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// Script (notify_fifo_script ...) is started once when the fifo is
	// opened, with the fifo's path as its last argument.
	Script string `json:"script,omitempty"`
}

// LVSTimeouts is "lvs_timeouts [tcp N] [tcpfin N] [udp N]": IPVS's
// connection timeouts; 0 leaves the kernel's value unchanged (as the
// IPVS_CMD_SET_CONFIG it becomes does).
type LVSTimeouts struct {
	Pos    Pos           `json:"pos"`
	TCP    time.Duration `json:"tcp,omitempty"`
	TCPFin time.Duration `json:"tcpfin,omitempty"`
	UDP    time.Duration `json:"udp,omitempty"`
}

// LVSSyncDaemon is "lvs_sync_daemon IFACE [inst] INSTANCE [id N]
// [maxlen N] [port N] [ttl N] [group IP]": the kernel's IPVS connection
// sync daemon follows the VRRP instance (master daemon while it is MASTER,
// backup daemon otherwise).
type LVSSyncDaemon struct {
	Pos       Pos    `json:"pos"`
	Interface string `json:"interface"`
	Instance  string `json:"instance"`
	// SyncID defaults to the instance's virtual_router_id (keepalived).
	SyncID int `json:"id"`
	// MaxLen, Port, TTL: 0 means the kernel's default.
	MaxLen    int        `json:"maxlen,omitempty"`
	Port      int        `json:"port,omitempty"`
	TTL       int        `json:"ttl,omitempty"`
	Group     netip.Addr `json:"group,omitzero"`
	syncIDSet bool
}

// lvsMaxTimeout is keepalived's LVS_MAX_TIMEOUT (86400 * 31 seconds).
const lvsMaxTimeout = 86400 * 31

// operatorKeywords are the global_defs keywords of issue 14: fifos,
// startup/shutdown scripts, vrrp_startup_delay, lvs_timeouts and
// lvs_sync_daemon.
func operatorKeywords(g table[*GlobalDefs]) {
	fifo := func(get func(*GlobalDefs) **NotifyFifo) handler[*GlobalDefs] {
		return func(p *parser, n *node, gd *GlobalDefs) {
			s, ok := p.arg(n, 1)
			if !ok {
				return
			}
			f := get(gd)
			if *f != nil && (*f).Path != "" {
				p.errorf(n.pos(), "%s: already set to %s at %s", n.kw(), (*f).Path, (*f).Pos)
				return
			}
			if *f == nil {
				*f = &NotifyFifo{}
			}
			(*f).Pos, (*f).Path = n.pos(), s
			if len(n.words) > 2 {
				(*f).User = n.words[2]
			}
			if len(n.words) > 3 {
				(*f).Group = n.words[3]
			}
			if len(n.words) > 4 {
				p.errorf(n.pos(), "%s: unexpected '%s' (PATH [USER [GROUP]])", n.kw(), n.words[4])
			}
		}
	}
	fifoScript := func(get func(*GlobalDefs) **NotifyFifo) handler[*GlobalDefs] {
		return func(p *parser, n *node, gd *GlobalDefs) {
			s, ok := p.rest(n)
			if !ok {
				return
			}
			f := get(gd)
			if *f == nil {
				*f = &NotifyFifo{Pos: n.pos()}
			}
			(*f).Script = s
		}
	}
	all := func(gd *GlobalDefs) **NotifyFifo { return &gd.NotifyFifo }
	vrrp := func(gd *GlobalDefs) **NotifyFifo { return &gd.VRRPNotifyFifo }
	lvs := func(gd *GlobalDefs) **NotifyFifo { return &gd.LVSNotifyFifo }
	g["notify_fifo"], g["notify_fifo_script"] = fifo(all), fifoScript(all)
	g["vrrp_notify_fifo"], g["vrrp_notify_fifo_script"] = fifo(vrrp), fifoScript(vrrp)
	g["lvs_notify_fifo"], g["lvs_notify_fifo_script"] = fifo(lvs), fifoScript(lvs)

	g["startup_script"] = func(p *parser, n *node, gd *GlobalDefs) {
		if s, ok := p.rest(n); ok {
			gd.StartupScript = s
		}
	}
	g["shutdown_script"] = func(p *parser, n *node, gd *GlobalDefs) {
		if s, ok := p.rest(n); ok {
			gd.ShutdownScript = s
		}
	}
	// keepalived: whole seconds in [1, 1000], default 10.
	g["startup_script_timeout"] = func(p *parser, n *node, gd *GlobalDefs) {
		if v, ok := p.intArg(n, 1, 1000); ok {
			gd.StartupScriptTimeout = time.Duration(v) * time.Second
		}
	}
	g["shutdown_script_timeout"] = func(p *parser, n *node, gd *GlobalDefs) {
		if v, ok := p.intArg(n, 1, 1000); ok {
			gd.ShutdownScriptTimeout = time.Duration(v) * time.Second
		}
	}
	g["vrrp_startup_delay"] = func(p *parser, n *node, gd *GlobalDefs) {
		// keepalived: decimal seconds, at least 1 ms.
		if d, ok := p.secondsArg(n, 0.001, 86400); ok {
			gd.VRRPStartupDelay = d
		}
	}
	g["lvs_timeouts"] = func(p *parser, n *node, gd *GlobalDefs) {
		p.noBlock(n)
		w := n.words
		if len(w) < 3 {
			p.errorf(n.pos(), "lvs_timeouts needs at least one of tcp N, tcpfin N, udp N")
			return
		}
		t := &LVSTimeouts{Pos: n.pos()}
		for k := 1; k < len(w); k += 2 {
			var dst *time.Duration
			switch w[k] {
			case "tcp":
				dst = &t.TCP
			case "tcpfin":
				dst = &t.TCPFin
			case "udp":
				dst = &t.UDP
			default:
				p.errorf(n.pos(), "lvs_timeouts: unknown option '%s' (want tcp, tcpfin or udp)", w[k])
				return
			}
			if k+1 >= len(w) {
				p.errorf(n.pos(), "lvs_timeouts: %s is missing its value", w[k])
				return
			}
			v, ok := p.parseInt(n.pos(), "lvs_timeouts "+w[k], w[k+1], 0, lvsMaxTimeout)
			if !ok {
				return
			}
			*dst = time.Duration(v) * time.Second
		}
		gd.LVSTimeouts = t
	}
	g["lvs_sync_daemon"] = func(p *parser, n *node, gd *GlobalDefs) { p.lvsSyncDaemon(n, gd) }
}

func (p *parser) lvsSyncDaemon(n *node, gd *GlobalDefs) {
	p.noBlock(n)
	if gd.LVSSyncDaemon != nil {
		p.errorf(n.pos(), "lvs_sync_daemon: already set at %s", gd.LVSSyncDaemon.Pos)
		return
	}
	w := n.words
	if len(w) < 2 {
		p.errorf(n.pos(), "lvs_sync_daemon needs an interface and a vrrp_instance")
		return
	}
	if len(w[1]) > 15 {
		p.errorf(n.pos(), "lvs_sync_daemon: interface name '%s' is longer than 15 characters", w[1])
		return
	}
	s := &LVSSyncDaemon{Pos: n.pos(), Interface: w[1]}
	num := func(k int, lo, hi int) (int, bool) {
		if k+1 >= len(w) {
			p.errorf(n.pos(), "lvs_sync_daemon: %s is missing its value", w[k])
			return 0, false
		}
		return p.parseInt(n.pos(), "lvs_sync_daemon "+w[k], w[k+1], lo, hi)
	}
	for k := 2; k < len(w); k++ {
		var ok bool
		switch w[k] {
		case "inst":
			if k+1 >= len(w) {
				p.errorf(n.pos(), "lvs_sync_daemon: inst is missing its value")
				return
			}
			s.Instance, ok = w[k+1], true
		case "id":
			s.SyncID, ok = num(k, 0, 255)
			s.syncIDSet = true
		case "maxlen":
			// keepalived: 1 .. 65535 - IP and UDP headers.
			s.MaxLen, ok = num(k, 1, 65535-20-8)
		case "port":
			s.Port, ok = num(k, 1, 65535)
		case "ttl":
			s.TTL, ok = num(k, 1, 255)
		case "group":
			if k+1 >= len(w) {
				p.errorf(n.pos(), "lvs_sync_daemon: group is missing its value")
				return
			}
			a, err := netip.ParseAddr(w[k+1])
			if err != nil || !a.IsMulticast() || a.Zone() != "" {
				p.errorf(n.pos(), "lvs_sync_daemon: group '%s' is not a multicast address", w[k+1])
				return
			}
			s.Group, ok = a, true
		default:
			// keepalived's older "IFACE INSTANCE [SYNCID]".
			if k == 2 && s.Instance == "" {
				s.Instance = w[k]
				continue
			}
			if k == 3 && !s.syncIDSet {
				if v, err := strconv.Atoi(w[k]); err == nil && v >= 0 && v <= 255 {
					p.warnf(n.pos(), "lvs_sync_daemon: write 'id %d' (as keepalived asks)", v)
					s.SyncID, s.syncIDSet = v, true
					continue
				}
			}
			p.errorf(n.pos(), "lvs_sync_daemon: unknown option '%s'", w[k])
			return
		}
		if !ok {
			return
		}
		k++
	}
	if s.Instance == "" {
		// keepalived runs the daemon without VRRP then; hakeepd has no
		// such mode, so say so rather than do nothing.
		p.errorf(n.pos(), "lvs_sync_daemon: no vrrp_instance named (hakeepd starts the sync daemon from an instance's state)")
		return
	}
	gd.LVSSyncDaemon = s
}

// validateOperator checks what operatorKeywords read against the rest of
// the file (run from validate).
func (p *parser) validateOperator() {
	g := &p.cfg.Global
	for _, f := range []*NotifyFifo{g.NotifyFifo, g.VRRPNotifyFifo, g.LVSNotifyFifo} {
		if f != nil && f.Path == "" {
			p.errorf(f.Pos, "notify fifo script '%s' without its notify_fifo path", f.Script)
		}
	}
	if g.NotifyFifo != nil && g.VRRPNotifyFifo != nil && g.NotifyFifo.Path == g.VRRPNotifyFifo.Path {
		// keepalived ignores the vrrp fifo then; one writer per fifo.
		p.warnf(g.VRRPNotifyFifo.Pos, "vrrp_notify_fifo %s is also notify_fifo; the vrrp one is ignored (as keepalived does)", g.VRRPNotifyFifo.Path)
		g.VRRPNotifyFifo = nil
	}
	if g.NotifyFifo != nil && g.LVSNotifyFifo != nil && g.NotifyFifo.Path == g.LVSNotifyFifo.Path {
		p.warnf(g.LVSNotifyFifo.Pos, "lvs_notify_fifo %s is also notify_fifo; the lvs one is ignored (as keepalived does)", g.LVSNotifyFifo.Path)
		g.LVSNotifyFifo = nil
	}
	if g.StartupScript != "" && g.StartupScriptTimeout == 0 {
		g.StartupScriptTimeout = 10 * time.Second
	}
	if g.ShutdownScript != "" && g.ShutdownScriptTimeout == 0 {
		g.ShutdownScriptTimeout = 10 * time.Second
	}
	// keepalived's older per-instance form, "lvs_sync_daemon_interface IF"
	// in a vrrp_instance: lvs_sync_daemon IF INSTANCE, unless set already.
	for _, i := range p.cfg.Instances {
		if i.LVSSyncDaemonInterface == "" {
			continue
		}
		if g.LVSSyncDaemon != nil {
			p.warnf(i.Pos, "vrrp_instance %s: lvs_sync_daemon_interface ignored: lvs_sync_daemon is already %s %s (as keepalived does)",
				i.Name, g.LVSSyncDaemon.Interface, g.LVSSyncDaemon.Instance)
			continue
		}
		g.LVSSyncDaemon = &LVSSyncDaemon{Pos: i.Pos, Interface: i.LVSSyncDaemonInterface, Instance: i.Name}
	}
	if s := g.LVSSyncDaemon; s != nil {
		i := p.cfg.Instance(s.Instance)
		if i == nil {
			p.errorf(s.Pos, "lvs_sync_daemon: no vrrp_instance named %s", s.Instance)
			return
		}
		if !s.syncIDSet {
			s.SyncID = i.VRID
		}
	}
}

// operatorSummary is the -t summary's lines for operatorKeywords.
func (g *GlobalDefs) operatorSummary() string {
	var b strings.Builder
	for _, f := range []struct {
		kw string
		f  *NotifyFifo
	}{{"notify_fifo", g.NotifyFifo}, {"vrrp_notify_fifo", g.VRRPNotifyFifo}, {"lvs_notify_fifo", g.LVSNotifyFifo}} {
		if f.f == nil {
			continue
		}
		fmt.Fprintf(&b, "%s %s", f.kw, f.f.Path)
		if f.f.Script != "" {
			fmt.Fprintf(&b, ", read by %q", f.f.Script)
		}
		b.WriteByte('\n')
	}
	if g.StartupScript != "" {
		fmt.Fprintf(&b, "startup_script %q (timeout %s) before VRRP starts\n", g.StartupScript, g.StartupScriptTimeout)
	}
	if g.ShutdownScript != "" {
		fmt.Fprintf(&b, "shutdown_script %q (timeout %s) after the VIPs are removed\n", g.ShutdownScript, g.ShutdownScriptTimeout)
	}
	if g.VRRPStartupDelay > 0 {
		fmt.Fprintf(&b, "vrrp_startup_delay %s\n", g.VRRPStartupDelay)
	}
	if t := g.LVSTimeouts; t != nil {
		fmt.Fprintf(&b, "lvs_timeouts tcp %s tcpfin %s udp %s (0: unchanged)\n", t.TCP, t.TCPFin, t.UDP)
	}
	if s := g.LVSSyncDaemon; s != nil {
		fmt.Fprintf(&b, "lvs_sync_daemon on %s following %s, syncid %d\n", s.Interface, s.Instance, s.SyncID)
	}
	return b.String()
}
