// Package config reads the keepalived.conf language (plus hakeep's own
// cluster { } block) into a typed model with source positions, and validates
// it with keepalived's semantics. It does not touch the network or the kernel.
//
// Defaults: the parser fills in keepalived's defaults, so every field of the
// model holds the value that is in effect (each default is documented on its
// field). Where "not configured" must stay distinguishable, the field is a
// pointer or has an explicit Set flag.
package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Pos is a place in a configuration file.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// String returns "file:line".
func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Config is a whole parsed configuration.
type Config struct {
	Global          GlobalDefs            `json:"global"`
	Scripts         []*VRRPScript         `json:"vrrp_scripts,omitempty"`
	TrackFileDefs   []*TrackFileDef       `json:"vrrp_track_files,omitempty"`
	Instances       []*VRRPInstance       `json:"vrrp_instances,omitempty"`
	SyncGroups      []*SyncGroup          `json:"vrrp_sync_groups,omitempty"`
	VirtualServers  []*VirtualServer      `json:"virtual_servers,omitempty"`
	VSGroups        []*VirtualServerGroup `json:"virtual_server_groups,omitempty"`
	StaticAddresses []*VIP                `json:"static_ipaddress,omitempty"`
	StaticRoutes    []*Route              `json:"static_routes,omitempty"`
	StaticRules     []*Rule               `json:"static_rules,omitempty"`
	// Cluster is hakeep's own block; nil when the file has none (plain
	// keepalived mode).
	Cluster *Cluster `json:"cluster,omitempty"`
	// Files lists every file read (the main file first, then includes).
	Files []string `json:"files,omitempty"`
	// inc is what this load recorded for a later one (Options.Reuse).
	inc *incCache
}

// SMTPServer is global_defs' smtp_server.
type SMTPServer struct {
	// Host is an IP address or a name as written.
	Host string `json:"host"`
	// Port defaults to 25.
	Port uint16 `json:"port"`
}

// GlobalDefs is the global_defs block.
type GlobalDefs struct {
	Pos                   Pos         `json:"pos"`
	RouterID              string      `json:"router_id,omitempty"` // default: the caller's hostname (left empty here)
	NotificationEmail     []string    `json:"notification_email,omitempty"`
	NotificationEmailFrom string      `json:"notification_email_from,omitempty"` // keepalived default keepalived@<hostname> (left empty here)
	SMTPServer            *SMTPServer `json:"smtp_server,omitempty"`
	SMTPHeloName          string      `json:"smtp_helo_name,omitempty"`
	// SMTPConnectTimeout defaults to 30 s.
	SMTPConnectTimeout time.Duration `json:"smtp_connect_timeout"`
	// VRRPMcastGroup4 defaults to 224.0.0.18, VRRPMcastGroup6 to ff02::12.
	VRRPMcastGroup4 netip.Addr `json:"vrrp_mcast_group4"`
	VRRPMcastGroup6 netip.Addr `json:"vrrp_mcast_group6"`
	// ScriptUser/ScriptGroup: script_user USER [GROUP]; empty means
	// keepalived's default (keepalived_script, else root).
	ScriptUser           string `json:"script_user,omitempty"`
	ScriptGroup          string `json:"script_group,omitempty"`
	EnableScriptSecurity bool   `json:"enable_script_security,omitempty"`

	// Gratuitous ARP / NA defaults (keepalived): master_delay 5 s,
	// master_repeat 5, master_refresh 0 (off), master_refresh_repeat 1,
	// garp_interval 0, gna_interval 0, lower_prio_delay = master_delay,
	// lower_prio_repeat = master_repeat (unless written). An instance
	// starts from these and applies its own garp_* lines; its
	// lower-priority settings do not follow its master ones, and under
	// vrrp_strict they are 0 (all as keepalived).
	GARP GARPSettings `json:"garp"`

	// VRRPVersion defaults to 2.
	VRRPVersion          int  `json:"vrrp_version"`
	VRRPStrict           bool `json:"vrrp_strict,omitempty"`
	VRRPSkipCheckAdvAddr bool `json:"vrrp_skip_check_adv_addr,omitempty"`
	VRRPCheckUnicastSrc  bool `json:"vrrp_check_unicast_src,omitempty"`
	VRRPIPTables         bool `json:"vrrp_iptables,omitempty"` // accepted; hakeep manages no firewall rules
	VRRPNoSwap           bool `json:"vrrp_no_swap,omitempty"`
	CheckerNoSwap        bool `json:"checker_no_swap,omitempty"`
	VRRPPriority         *int `json:"vrrp_priority,omitempty"`    // accepted (process nice)
	CheckerPriority      *int `json:"checker_priority,omitempty"` // accepted (process nice)
	LVSFlush             bool `json:"lvs_flush,omitempty"`
	LVSFlushOnStop       bool `json:"lvs_flush_on_stop,omitempty"`
	// LVSFlushOnStopMode: "ALL" (bare lvs_flush_on_stop: the whole IPVS
	// table, foreign services included) or "VS" (only our virtual servers).
	LVSFlushOnStopMode string `json:"lvs_flush_on_stop_mode,omitempty"`
	EnableTraps        bool   `json:"enable_traps,omitempty"` // accepted, no SNMP
	DynamicInterfaces  bool   `json:"dynamic_interfaces,omitempty"`
	NoEmailFaults      bool   `json:"no_email_faults,omitempty"`
	MaxAutoPriority    *int   `json:"max_auto_priority,omitempty"`
	DefaultInterface   string `json:"default_interface,omitempty"`
	// MetricsListen (hakeep's own): HOST:PORT of the plain-HTTP listener
	// serving GET /metrics only; empty (the default) means none.
	MetricsListen string `json:"metrics_listen,omitempty"`

	// Issue 14's operator keywords (operator.go). The fifos are nil when
	// not set; the script timeouts default to 10 s when a script is set.
	NotifyFifo            *NotifyFifo    `json:"notify_fifo,omitempty"`
	VRRPNotifyFifo        *NotifyFifo    `json:"vrrp_notify_fifo,omitempty"`
	LVSNotifyFifo         *NotifyFifo    `json:"lvs_notify_fifo,omitempty"`
	StartupScript         string         `json:"startup_script,omitempty"`
	StartupScriptTimeout  time.Duration  `json:"startup_script_timeout,omitempty"`
	ShutdownScript        string         `json:"shutdown_script,omitempty"`
	ShutdownScriptTimeout time.Duration  `json:"shutdown_script_timeout,omitempty"`
	VRRPStartupDelay      time.Duration  `json:"vrrp_startup_delay,omitempty"`
	LVSTimeouts           *LVSTimeouts   `json:"lvs_timeouts,omitempty"`
	LVSSyncDaemon         *LVSSyncDaemon `json:"lvs_sync_daemon,omitempty"`

	// SSL settings for SSL_GET checkers.
	SSLCA          string `json:"ssl_ca,omitempty"`
	SSLCertificate string `json:"ssl_certificate,omitempty"`
	SSLKey         string `json:"ssl_key,omitempty"`
	SSLPassword    string `json:"ssl_password,omitempty"`

	// Other holds accepted keywords the model has no field for (keyword ->
	// arguments as written), so -d shows them.
	Other map[string]string `json:"other,omitempty"`
}

// GARPSettings are the gratuitous ARP / unsolicited NA knobs, shared by
// global_defs (vrrp_garp_*) and vrrp_instance (garp_*).
type GARPSettings struct {
	MasterDelay         time.Duration `json:"master_delay"`
	MasterRepeat        int           `json:"master_repeat"`
	MasterRefresh       time.Duration `json:"master_refresh"`
	MasterRefreshRepeat int           `json:"master_refresh_repeat"`
	Interval            time.Duration `json:"interval"`     // between ARPs in a burst
	GNAInterval         time.Duration `json:"gna_interval"` // between NAs in a burst
	LowerPrioDelay      time.Duration `json:"lower_prio_delay"`
	LowerPrioRepeat     int           `json:"lower_prio_repeat"`
}

// VRRPScript is a vrrp_script block.
type VRRPScript struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// Script is the command line as written (unquoted).
	Script string `json:"script"`
	// Interval defaults to 1 s.
	Interval time.Duration `json:"interval"`
	// Timeout 0 means keepalived's default (the interval).
	Timeout time.Duration `json:"timeout"`
	// Weight defaults to 0 (the script sets FAULT on failure); -253..253.
	Weight int `json:"weight"`
	// WeightReverse: "weight N reverse" (success lowers the priority).
	WeightReverse bool `json:"weight_reverse,omitempty"`
	// Rise and Fall default to 1.
	Rise     int    `json:"rise"`
	Fall     int    `json:"fall"`
	User     string `json:"user,omitempty"`
	Group    string `json:"group,omitempty"`
	InitFail bool   `json:"init_fail,omitempty"`
}

// VIP is one line of virtual_ipaddress / virtual_ipaddress_excluded /
// static_ipaddress: "ADDR[/LEN] [brd ADDR] [dev IF] [scope S] [label L] ...".
type VIP struct {
	Pos    Pos          `json:"pos"`
	Prefix netip.Prefix `json:"prefix"` // /32 or /128 when no length was written
	Brd    netip.Addr   `json:"brd,omitzero"`
	// BrdAuto: "brd +" / "brd -" sets the broadcast from the prefix.
	BrdAuto string     `json:"brd_auto,omitempty"`
	Peer    netip.Addr `json:"peer,omitzero"`
	Dev     string     `json:"dev,omitempty"` // empty: the instance's interface
	Label   string     `json:"label,omitempty"`
	// Scope: global (default), site, link, host, nowhere, or a number.
	Scope         string `json:"scope,omitempty"`
	NoDAD         bool   `json:"nodad,omitempty"`
	HomeAddress   bool   `json:"home,omitempty"`
	NoPrefixRoute bool   `json:"noprefixroute,omitempty"`
	AutoJoin      bool   `json:"autojoin,omitempty"`
	Preferred     *bool  `json:"preferred_lft_zero,omitempty"` // "-preferred_lft 0" style; as written
	TrackGroup    string `json:"track_group,omitempty"`
	NoTrack       bool   `json:"no_track,omitempty"`
	// Excluded: from virtual_ipaddress_excluded.
	Excluded bool `json:"excluded,omitempty"`
}

// Route is one line of virtual_routes / static_routes, kept as iproute2
// syntax with the common fields decoded.
type Route struct {
	Pos  Pos          `json:"pos"`
	Type string       `json:"type,omitempty"` // unicast (default), blackhole, unreachable, prohibit, ...
	Dst  netip.Prefix `json:"dst"`
	Src  netip.Addr   `json:"src,omitzero"`
	Via  netip.Addr   `json:"via,omitzero"`
	// NextHops: a multipath route ("nexthop via A nexthop via B", or the
	// older "via A or B"); Via is then the first of them.
	NextHops []netip.Addr `json:"nexthops,omitempty"`
	Dev      string       `json:"dev,omitempty"`
	Table    string       `json:"table,omitempty"`
	Metric   int          `json:"metric,omitempty"`
	Scope    string       `json:"scope,omitempty"`
	Protocol string       `json:"protocol,omitempty"`
	OnLink   bool         `json:"onlink,omitempty"`
	NoTrack  bool         `json:"no_track,omitempty"`
	// Args are the words as written, for keywords not decoded above.
	Args []string `json:"args"`
}

// Rule is one line of virtual_rules / static_rules.
type Rule struct {
	Pos Pos `json:"pos"`
	// From is 0.0.0.0/0 (or ::/0) for "from all"; unset when not written.
	From     netip.Prefix `json:"from,omitzero"`
	To       netip.Prefix `json:"to,omitzero"`
	Table    string       `json:"table,omitempty"`
	Priority int          `json:"priority,omitempty"`
	FWMark   string       `json:"fwmark,omitempty"`
	IIF      string       `json:"iif,omitempty"`
	OIF      string       `json:"oif,omitempty"`
	NoTrack  bool         `json:"no_track,omitempty"`
	Args     []string     `json:"args"`
}

// TrackInterface is one line of track_interface: "IF [weight N]".
type TrackInterface struct {
	Pos     Pos    `json:"pos"`
	Name    string `json:"name"`
	Weight  int    `json:"weight"` // 0: interface down means FAULT
	Reverse bool   `json:"reverse,omitempty"`
}

// TrackScript is one line of track_script: "NAME [weight N [reverse]]".
type TrackScript struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// Weight overrides the vrrp_script's weight when non-nil.
	Weight  *int `json:"weight,omitempty"`
	Reverse bool `json:"reverse,omitempty"`
}

// TrackFile is one line of track_file: "NAME [weight N [reverse]]"; NAME
// refers to a vrrp_track_file block, kept here with its path when known.
type TrackFile struct {
	Pos     Pos    `json:"pos"`
	Name    string `json:"name"`
	Weight  *int   `json:"weight,omitempty"`
	Reverse bool   `json:"reverse,omitempty"`
}

// TrackFileDef is a vrrp_track_file block.
type TrackFileDef struct {
	Pos      Pos    `json:"pos"`
	Name     string `json:"name"`
	File     string `json:"file"`
	Weight   int    `json:"weight"`
	Reverse  bool   `json:"reverse,omitempty"`
	InitFile bool   `json:"init_file,omitempty"`
}

// Auth is an instance's authentication block.
type Auth struct {
	Pos  Pos    `json:"pos"`
	Type string `json:"auth_type"` // "PASS" or "AH"
	// Pass is at most 8 characters (longer values are truncated with a
	// warning, as keepalived does).
	Pass string `json:"auth_pass,omitempty"`
}

// Notify holds the notify_* scripts of an instance or sync group.
type Notify struct {
	Master  string `json:"notify_master,omitempty"`
	Backup  string `json:"notify_backup,omitempty"`
	Fault   string `json:"notify_fault,omitempty"`
	Stop    string `json:"notify_stop,omitempty"`
	Deleted string `json:"notify_deleted,omitempty"`
	Any     string `json:"notify,omitempty"`
	// MasterRxLowerPri: notify_master_rx_lower_pri.
	MasterRxLowerPri string `json:"notify_master_rx_lower_pri,omitempty"`
	// Fenced is hakeep's notify_fenced: run instead of notify_fault when
	// the cluster's quorum gate refuses or revokes MASTER.
	Fenced string `json:"notify_fenced,omitempty"`
}

// State values for VRRPInstance.State.
const (
	StateBackup = "BACKUP"
	StateMaster = "MASTER"
)

// VRRPInstance is a vrrp_instance block.
type VRRPInstance struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// State is the initial state: "BACKUP" (default) or "MASTER".
	State     string `json:"state"`
	Interface string `json:"interface"`
	// VRID: virtual_router_id, 1..255 (required).
	VRID int `json:"virtual_router_id"`
	// Priority defaults to 100, or to 255 with state MASTER (keepalived);
	// 255 means address owner, which always starts as MASTER.
	Priority int `json:"priority"`
	// AdvertInt defaults to 1 s.
	AdvertInt time.Duration `json:"advert_int"`
	// Version: 2 or 3; defaults to global vrrp_version; always 3 for IPv6
	// instances (as keepalived).
	Version int `json:"version"`
	// Family is 4 or 6, from the first VIP (4 when there are none).
	Family int `json:"family"`
	// Preempt is true unless nopreempt is set.
	Preempt      bool          `json:"preempt"`
	PreemptDelay time.Duration `json:"preempt_delay,omitempty"`
	// Accept: accept packets to the VIPs when master. keepalived's default
	// is accept, except under vrrp_strict (no_accept).
	Accept          bool              `json:"accept"`
	Auth            *Auth             `json:"authentication,omitempty"`
	GARP            GARPSettings      `json:"garp"`
	VIPs            []*VIP            `json:"virtual_ipaddress,omitempty"`
	ExcludedVIPs    []*VIP            `json:"virtual_ipaddress_excluded,omitempty"`
	Routes          []*Route          `json:"virtual_routes,omitempty"`
	Rules           []*Rule           `json:"virtual_rules,omitempty"`
	TrackInterfaces []*TrackInterface `json:"track_interface,omitempty"`
	TrackScripts    []*TrackScript    `json:"track_script,omitempty"`
	TrackFiles      []*TrackFile      `json:"track_file,omitempty"`
	McastSrcIP      netip.Addr        `json:"mcast_src_ip,omitzero"`
	UnicastSrcIP    netip.Addr        `json:"unicast_src_ip,omitzero"`
	UnicastPeers    []*UnicastPeer    `json:"unicast_peer,omitempty"`
	UnicastTTL      int               `json:"unicast_ttl,omitempty"`
	// UseVMAC: use_vmac [NAME]; VMACName empty means keepalived's
	// vrrp.<VRID> naming.
	UseVMAC                bool   `json:"use_vmac,omitempty"`
	VMACName               string `json:"vmac_name,omitempty"`
	VMACXmitBase           bool   `json:"vmac_xmit_base,omitempty"`
	DontTrackPrimary       bool   `json:"dont_track_primary,omitempty"`
	Notify                 Notify `json:"notify"`
	SMTPAlert              bool   `json:"smtp_alert,omitempty"`
	LVSSyncDaemonInterface string `json:"lvs_sync_daemon_interface,omitempty"` // accepted
	Debug                  int    `json:"debug,omitempty"`
	StrictMode             bool   `json:"strict_mode,omitempty"`
	// Fence is hakeep's "fence on|off": nil means the default (on when a
	// cluster block is present, see fencing.md).
	Fence *bool `json:"fence,omitempty"`
	// SyncGroup is the name of the vrrp_sync_group this instance is in.
	SyncGroup string            `json:"sync_group,omitempty"`
	Other     map[string]string `json:"other,omitempty"`
}

// Fenced reports whether the instance's VIPs are guarded by the cluster
// quorum: "fence off" opts out; otherwise on when a cluster is configured.
func (i *VRRPInstance) Fenced(c *Config) bool {
	if i.Fence != nil {
		return *i.Fence && c.Cluster != nil
	}
	return c.Cluster != nil
}

// UnicastPeer is one line of unicast_peer: "ADDR [min_ttl N] [max_ttl N]".
type UnicastPeer struct {
	Pos    Pos        `json:"pos"`
	Addr   netip.Addr `json:"addr"`
	MinTTL int        `json:"min_ttl,omitempty"`
	MaxTTL int        `json:"max_ttl,omitempty"`
}

// SyncGroup is a vrrp_sync_group block.
type SyncGroup struct {
	Pos                     Pos               `json:"pos"`
	Name                    string            `json:"name"`
	Group                   []string          `json:"group"`
	Notify                  Notify            `json:"notify"`
	SMTPAlert               bool              `json:"smtp_alert,omitempty"`
	TrackInterfaces         []*TrackInterface `json:"track_interface,omitempty"`
	TrackScripts            []*TrackScript    `json:"track_script,omitempty"`
	TrackFiles              []*TrackFile      `json:"track_file,omitempty"`
	GlobalTracking          bool              `json:"global_tracking,omitempty"`
	SyncGroupTrackingWeight bool              `json:"sync_group_tracking_weight,omitempty"`
}

// Protocol values for VirtualServer.Protocol.
const (
	ProtoTCP  = "TCP"
	ProtoUDP  = "UDP"
	ProtoSCTP = "SCTP"
)

// VirtualServer is a virtual_server block. Exactly one of Addr, FWMark,
// Group is set.
type VirtualServer struct {
	Pos Pos `json:"pos"`
	// Addr: "virtual_server IP PORT".
	Addr netip.AddrPort `json:"addr,omitzero"`
	// FWMark: "virtual_server fwmark N"; FWMarkFamily "inet"/"inet6" or "".
	FWMark       uint32 `json:"fwmark,omitempty"`
	FWMarkFamily string `json:"fwmark_family,omitempty"`
	// Group: "virtual_server group NAME".
	Group string `json:"group,omitempty"`
	// Protocol defaults to TCP, with a warning (keepalived 2.2 uses UDP).
	Protocol string `json:"protocol"`
	// DelayLoop defaults to 60 s.
	DelayLoop time.Duration `json:"delay_loop"`
	// LBAlgo (lb_algo / lvs_sched) defaults to "wlc" (keepalived's default).
	LBAlgo string `json:"lb_algo"`
	// LBKind (lb_kind / lvs_method): NAT (default), DR, TUN.
	LBKind string `json:"lb_kind"`
	// TunType for TUN: ipip (default), gue, gre; with TunPort for gue.
	TunType string `json:"tun_type,omitempty"`
	TunPort uint16 `json:"tun_port,omitempty"`
	TunCsum string `json:"tun_csum,omitempty"`
	// PersistenceTimeout: 0 means no persistence. keepalived's default when
	// "persistence_timeout" is written without a value is 360 s.
	PersistenceTimeout     time.Duration `json:"persistence_timeout,omitempty"`
	PersistenceGranularity netip.Addr    `json:"persistence_granularity,omitzero"`
	PersistenceEngine      string        `json:"persistence_engine,omitempty"`
	// NatMask is accepted (legacy keepalived, ignored by it too).
	NatMask            netip.Addr   `json:"nat_mask,omitzero"`
	SorryServer        *SorryServer `json:"sorry_server,omitempty"`
	SorryServerInhibit bool         `json:"sorry_server_inhibit,omitempty"`
	InhibitOnFailure   bool         `json:"inhibit_on_failure,omitempty"`
	// Quorum defaults to 1; Hysteresis to 0.
	Quorum      int    `json:"quorum"`
	Hysteresis  int    `json:"hysteresis"`
	QuorumUp    string `json:"quorum_up,omitempty"`
	QuorumDown  string `json:"quorum_down,omitempty"`
	Alpha       bool   `json:"alpha,omitempty"`
	Omega       bool   `json:"omega,omitempty"`
	HASuspend   bool   `json:"ha_suspend,omitempty"`
	Virtualhost string `json:"virtualhost,omitempty"`
	// Scheduler flags: sh-port, sh-fallback, mh-port, mh-fallback,
	// flag-1/2/3 as written.
	SchedFlags []string `json:"sched_flags,omitempty"`
	OnePacket  bool     `json:"ops,omitempty"`
	// Defaults for the checkers of this virtual server. ConnectTimeout 0
	// means unset; Retry, DelayBeforeRetry and Warmup may be written as 0,
	// so the *Set fields tell "retry 0" from no retry line.
	Retry               int               `json:"retry,omitempty"`
	RetrySet            bool              `json:"retry_set,omitempty"`
	DelayBeforeRetry    time.Duration     `json:"delay_before_retry,omitempty"`
	DelayBeforeRetrySet bool              `json:"delay_before_retry_set,omitempty"`
	ConnectTimeout      time.Duration     `json:"connect_timeout,omitempty"`
	Warmup              time.Duration     `json:"warmup,omitempty"`
	WarmupSet           bool              `json:"warmup_set,omitempty"`
	SMTPAlert           bool              `json:"smtp_alert,omitempty"`
	RealServers         []*RealServer     `json:"real_servers,omitempty"`
	Other               map[string]string `json:"other,omitempty"`
	// key is Key as the parse left it (a reload asks for 2,000 keys
	// several times over); used only while the fields it came from are
	// unchanged.
	key *vsKey
}

// vsKey is a computed Key and the fields it was computed from.
type vsKey struct {
	addr         netip.AddrPort
	fwmark       uint32
	group, proto string
	key          string
}

// Key returns a stable identity: "IP:PORT/PROTO", "fwmark:N/PROTO" or
// "group:NAME/PROTO".
func (v *VirtualServer) Key() string {
	if c := v.key; c != nil && c.addr == v.Addr && c.fwmark == v.FWMark && c.group == v.Group && c.proto == v.Protocol {
		return c.key
	}
	return v.computeKey()
}

// cacheKey stores Key for later calls. Only the parse calls it, before
// the configuration is shared; a reused block's cache is already right
// and is not written again (another goroutine may be reading it).
func (v *VirtualServer) cacheKey() {
	k := v.Key()
	if c := v.key; c != nil && c.key == k {
		return
	}
	v.key = &vsKey{addr: v.Addr, fwmark: v.FWMark, group: v.Group, proto: v.Protocol, key: k}
}

func (v *VirtualServer) computeKey() string {
	switch {
	case v.Group != "":
		return "group:" + v.Group + "/" + v.Protocol
	case v.FWMark != 0:
		return fmt.Sprintf("fwmark:%d/%s", v.FWMark, v.Protocol)
	default:
		return v.Addr.String() + "/" + v.Protocol
	}
}

// SorryServer is "sorry_server IP PORT" (+ sorry_server_lvs_method).
type SorryServer struct {
	Pos       Pos            `json:"pos"`
	Addr      netip.AddrPort `json:"addr"`
	LVSMethod string         `json:"lvs_method,omitempty"`
}

// RealServer is a real_server block: "real_server IP PORT { ... }".
type RealServer struct {
	Pos  Pos            `json:"pos"`
	Addr netip.AddrPort `json:"addr"`
	// Weight defaults to 1.
	Weight int `json:"weight"`
	// InhibitOnFailure: set here or inherited from the virtual server.
	InhibitOnFailure bool `json:"inhibit_on_failure,omitempty"`
	// RealServerOptions holds the keywords few real servers write: nil when
	// none of them is (a large file has tens of thousands of real servers,
	// and these fields would double each one's size). Read them through
	// Options, which never returns nil; embedded, so the JSON is flat.
	*RealServerOptions
	Checkers []*Checker        `json:"checkers,omitempty"`
	Other    map[string]string `json:"other,omitempty"`
}

// RealServerOptions are a real server's less common keywords.
type RealServerOptions struct {
	NotifyUp   string `json:"notify_up,omitempty"`
	NotifyDown string `json:"notify_down,omitempty"`
	// LVSMethod overrides the virtual server's lb_kind when set.
	LVSMethod string `json:"lvs_method,omitempty"`
	// Alpha/omega, retry and timings inherited from the virtual server
	// unless set here (as written: ConnectTimeout and DelayLoop 0 mean
	// unset, the *Set fields say whether Retry, DelayBeforeRetry and Warmup
	// were written here).
	Retry               int           `json:"retry,omitempty"`
	RetrySet            bool          `json:"retry_set,omitempty"`
	DelayBeforeRetry    time.Duration `json:"delay_before_retry,omitempty"`
	DelayBeforeRetrySet bool          `json:"delay_before_retry_set,omitempty"`
	ConnectTimeout      time.Duration `json:"connect_timeout,omitempty"`
	Warmup              time.Duration `json:"warmup,omitempty"`
	WarmupSet           bool          `json:"warmup_set,omitempty"`
	DelayLoop           time.Duration `json:"delay_loop,omitempty"`
	SMTPAlert           bool          `json:"smtp_alert,omitempty"`
	// Virtualhost for this real server's HTTP checks (see Checker.URLs).
	Virtualhost string `json:"virtualhost,omitempty"`
}

// noRealServerOptions is what Options returns for a real server that
// writes none: all defaults. Never written.
var noRealServerOptions RealServerOptions

// Options returns the real server's less common keywords (their zero
// values when none was written). The result is shared: do not write it.
func (r *RealServer) Options() *RealServerOptions {
	if r.RealServerOptions == nil {
		return &noRealServerOptions
	}
	return r.RealServerOptions
}

// options is Options for the parser, which writes: it allocates them on
// the first keyword.
func (r *RealServer) options() *RealServerOptions {
	if r.RealServerOptions == nil {
		r.RealServerOptions = new(RealServerOptions)
	}
	return r.RealServerOptions
}

// Checker kinds.
const (
	CheckTCP  = "TCP_CHECK"
	CheckHTTP = "HTTP_GET"
	CheckSSL  = "SSL_GET"
	CheckMisc = "MISC_CHECK"
	CheckSMTP = "SMTP_CHECK"
	CheckDNS  = "DNS_CHECK"
	CheckUDP  = "UDP_CHECK"
	CheckPing = "PING_CHECK"
	CheckBFD  = "BFD_CHECK"
	CheckFile = "FILE_CHECK"
)

// Checker is one health-check block inside a real_server. The parser
// resolves inheritance as keepalived 2.2.7 does (checker, else real_server,
// else virtual_server, else the kind's default; see checkdefaults.go), so
// every timing field below holds the value in effect:
// ConnectIP/ConnectPort default to the real server's address and port;
// ConnectTimeout to 5 s; DelayLoop to the virtual server's delay_loop
// (60 s); Retry (nb_get_retry is an alias) to 1, 0 for MISC_CHECK, 3 for
// DNS_CHECK; DelayBeforeRetry to 1 s, 3 s for HTTP_GET/SSL_GET, DelayLoop
// for DNS_CHECK; Warmup to DelayLoop; MiscTimeout to the virtual server's
// delay_loop. The *Set fields say whether the value was written (on the
// checker, its real_server or virtual_server) or is keepalived's default,
// which matters where the default follows another value: an explicit
// "warmup 0" (no random start delay) is Warmup 0 with WarmupSet.
type Checker struct {
	Pos  Pos    `json:"pos"`
	Kind string `json:"kind"`

	// ConnectIP, ConnectPort: connect_ip, connect_port as written; unset
	// (invalid, 0) is the real server's, which ConnectAddr resolves. The
	// real servers of a virtual server share one Checker when theirs are
	// alike (keepCheckers), so a Checker does not hold its real server's
	// address.
	ConnectIP   netip.Addr `json:"connect_ip,omitzero"`
	ConnectPort uint16     `json:"connect_port,omitempty"`
	// CheckerBind: bindto, bind_port, bind_if (nil when none is written; read
	// through BindFields; embedded, so the JSON is flat).
	*CheckerBind
	ConnectTimeout   time.Duration `json:"connect_timeout"`
	Retry            int           `json:"retry"`
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	Warmup           time.Duration `json:"warmup,omitempty"`
	DelayLoop        time.Duration `json:"delay_loop"`
	// Whether retry, delay_before_retry, warmup were written (here, on the
	// real_server or the virtual_server) rather than left to the default.
	RetrySet            bool   `json:"retry_set,omitempty"`
	DelayBeforeRetrySet bool   `json:"delay_before_retry_set,omitempty"`
	WarmupSet           bool   `json:"warmup_set,omitempty"`
	Alpha               bool   `json:"alpha,omitempty"`
	Omega               bool   `json:"omega,omitempty"`
	FWMark              uint32 `json:"fwmark,omitempty"`

	// CheckerHTTP holds the fields of HTTP_GET and SSL_GET, CheckerOther those of
	// the other kinds: nil for a checker of another kind (and when none is
	// written), so that each of tens of thousands of checkers carries only
	// its own kind's fields. Read them through HTTPFields and OtherFields,
	// which never return nil; embedded, so the JSON is flat.
	*CheckerHTTP
	*CheckerOther

	Other map[string]string `json:"other,omitempty"`
}

// ConnectAddr is where the checker of rs connects: connect_ip and
// connect_port, else rs's address and port.
func (c *Checker) ConnectAddr(rs *RealServer) netip.AddrPort {
	ip, port := c.ConnectIP, c.ConnectPort
	if !ip.IsValid() {
		ip = rs.Addr.Addr()
	}
	if port == 0 {
		port = rs.Addr.Port()
	}
	return netip.AddrPortFrom(ip, port)
}

// CheckerBind is where a checker connects from.
type CheckerBind struct {
	BindTo   netip.Addr `json:"bindto,omitzero"`
	BindPort uint16     `json:"bind_port,omitempty"`
	BindIf   string     `json:"bind_if,omitempty"`
}

// CheckerHTTP are HTTP_GET's and SSL_GET's fields.
type CheckerHTTP struct {
	// URLs: each url's Virtualhost is resolved (url, else checker, else
	// real server, else virtual server virtualhost; empty: the address).
	URLs         []*URL `json:"urls,omitempty"`
	HTTPProtocol string `json:"http_protocol,omitempty"` // "1.0" (default), "1.0C", "1.1", "1.0K"
	Virtualhost  string `json:"virtualhost,omitempty"`
	EnableSNI    bool   `json:"enable_sni,omitempty"`
	TLSCompliant bool   `json:"tls_compliant,omitempty"`
	FastRecovery bool   `json:"fast_recovery,omitempty"`
}

// CheckerOther are the fields of MISC_CHECK, SMTP_CHECK, DNS_CHECK,
// UDP_CHECK, BFD_CHECK and FILE_CHECK.
type CheckerOther struct {
	// MISC_CHECK.
	MiscPath string `json:"misc_path,omitempty"`
	// MiscTimeout: misc_timeout, else (unset or 0) the virtual server's
	// delay_loop, as keepalived's misc_check_thread does.
	MiscTimeout    time.Duration `json:"misc_timeout,omitempty"`
	MiscTimeoutSet bool          `json:"misc_timeout_set,omitempty"`
	MiscDynamic    bool          `json:"misc_dynamic,omitempty"`
	User           string        `json:"user,omitempty"`
	Group          string        `json:"group,omitempty"`

	// SMTP_CHECK: helo_name (default: global smtp_helo_name or hostname);
	// Hosts are legacy host { } blocks, each a connection target.
	HeloName string     `json:"helo_name,omitempty"`
	Hosts    []*Checker `json:"hosts,omitempty"`

	// DNS_CHECK: type (default SOA), name (default ".").
	DNSType string `json:"dns_type,omitempty"`
	DNSName string `json:"dns_name,omitempty"`

	// UDP_CHECK: payload hex bytes, require_reply (with optional expected
	// hex bytes), min/max reply length.
	Payload        []byte `json:"payload,omitempty"`
	RequireReply   bool   `json:"require_reply,omitempty"`
	ReplyData      []byte `json:"reply_data,omitempty"`
	MinReplyLength int    `json:"min_reply_length,omitempty"`
	MaxReplyLength int    `json:"max_reply_length,omitempty"`

	// BFD_CHECK / FILE_CHECK: the name of the tracked object.
	Name string `json:"name,omitempty"`
}

// noCheckerBind, noCheckerHTTP and noCheckerOther are what BindFields,
// HTTPFields and OtherFields return for a checker without them: all
// zero. Never written.
var (
	noCheckerBind  CheckerBind
	noCheckerHTTP  CheckerHTTP
	noCheckerOther CheckerOther
)

// BindFields returns the checker's bindto, bind_port and bind_if (zero
// when none is written). The result may be shared: do not write it.
func (c *Checker) BindFields() *CheckerBind {
	if c.CheckerBind == nil {
		return &noCheckerBind
	}
	return c.CheckerBind
}

// HTTPFields returns the checker's HTTP_GET / SSL_GET fields (zero for
// another kind). The result may be shared: do not write it.
func (c *Checker) HTTPFields() *CheckerHTTP {
	if c.CheckerHTTP == nil {
		return &noCheckerHTTP
	}
	return c.CheckerHTTP
}

// OtherFields returns the checker's fields of the other kinds (zero when
// none is set). The result may be shared: do not write it.
func (c *Checker) OtherFields() *CheckerOther {
	if c.CheckerOther == nil {
		return &noCheckerOther
	}
	return c.CheckerOther
}

// bindFields, httpFields and otherFields are BindFields, HTTPFields and
// OtherFields for the parser, which writes: they allocate on the first
// keyword.
func (c *Checker) bindFields() *CheckerBind {
	if c.CheckerBind == nil {
		c.CheckerBind = new(CheckerBind)
	}
	return c.CheckerBind
}

func (c *Checker) httpFields() *CheckerHTTP {
	if c.CheckerHTTP == nil {
		c.CheckerHTTP = new(CheckerHTTP)
	}
	return c.CheckerHTTP
}

func (c *Checker) otherFields() *CheckerOther {
	if c.CheckerOther == nil {
		c.CheckerOther = new(CheckerOther)
	}
	return c.CheckerOther
}

// URL is one url { } block of HTTP_GET / SSL_GET.
type URL struct {
	Pos  Pos    `json:"pos"`
	Path string `json:"path"`
	// Digest is the expected MD5 of the body, lower-case hex (empty: none).
	Digest string `json:"digest,omitempty"`
	// StatusCodes: accepted status ranges; empty means 200-299
	// (keepalived's default when neither digest nor status_code is set).
	StatusCodes  []StatusRange `json:"status_code,omitempty"`
	Virtualhost  string        `json:"virtualhost,omitempty"`
	Regex        string        `json:"regex,omitempty"`
	RegexNoMatch bool          `json:"regex_no_match,omitempty"`
	RegexOptions string        `json:"regex_options,omitempty"`
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// Contains reports whether code is in the range.
func (r StatusRange) Contains(code int) bool { return code >= r.Lo && code <= r.Hi }

// VirtualServerGroup is a virtual_server_group block.
type VirtualServerGroup struct {
	Pos     Pos          `json:"pos"`
	Name    string       `json:"name"`
	Members []*VSGMember `json:"members"`
}

// VSGMember is one line of a virtual_server_group: "IP PORT",
// "IP-LAST PORT" (a range of the last byte/hextet), or "fwmark N".
type VSGMember struct {
	Pos Pos `json:"pos"`
	// Addr is the first address; LastAddr the last of a range (equal to Addr
	// when it is no range).
	Addr     netip.Addr `json:"addr,omitzero"`
	LastAddr netip.Addr `json:"last_addr,omitzero"`
	Port     uint16     `json:"port,omitempty"`
	FWMark   uint32     `json:"fwmark,omitempty"`
}

// Health modes for Cluster.HealthMode.
const (
	HealthLocal  = "local"
	HealthMaster = "master"
	HealthQuorum = "quorum"
)

// Cluster is hakeep's cluster { } block (node-local settings).
type Cluster struct {
	Pos      Pos        `json:"pos"`
	NodeName string     `json:"node_name"`
	BindAddr netip.Addr `json:"bind_addr"`
	// RaftPort defaults to 7301, GossipPort to 7401.
	RaftPort   uint16 `json:"raft_port"`
	GossipPort uint16 `json:"gossip_port"`
	// AdvertiseAddr defaults to BindAddr.
	AdvertiseAddr netip.Addr `json:"advertise_addr,omitzero"`
	// Join lists gossip addresses of peers ("host:port"; port defaults to
	// GossipPort).
	Join            []string `json:"join,omitempty"`
	BootstrapExpect int      `json:"bootstrap_expect,omitempty"`
	// DataDir defaults to /var/lib/hakeep.
	DataDir string `json:"data_dir"`
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	TLSCA   string `json:"tls_ca,omitempty"`
	// GossipKey: a file path or a base64 key (16, 24 or 32 bytes), as
	// written; GossipKeyFile reports which.
	GossipKey     string `json:"gossip_key,omitempty"`
	GossipKeyFile bool   `json:"gossip_key_file,omitempty"`
	// APIListen is an optional TCP listen address (mTLS only).
	APIListen string `json:"api_listen,omitempty"`
	// InsecureOpen (insecure_open_cluster) lets the cluster run without
	// TLS or a gossip key: a lab's explicit, logged opt-out.
	InsecureOpen bool `json:"insecure_open_cluster,omitempty"`
	// HealthMode: local (default), master, quorum.
	HealthMode string `json:"health_mode"`
	// Lease defaults to 1 s; Renew to Lease/4 (fencing.md).
	Lease time.Duration `json:"lease"`
	Renew time.Duration `json:"renew"`
	// ClockDrift (rho) defaults to 0.01.
	ClockDrift float64 `json:"clock_drift"`
}

// Script returns the vrrp_script named name, or nil.
func (c *Config) Script(name string) *VRRPScript {
	for _, s := range c.Scripts {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Instance returns the vrrp_instance named name, or nil.
func (c *Config) Instance(name string) *VRRPInstance {
	for _, i := range c.Instances {
		if i.Name == name {
			return i
		}
	}
	return nil
}

// VSGroup returns the virtual_server_group named name, or nil.
func (c *Config) VSGroup(name string) *VirtualServerGroup {
	for _, g := range c.VSGroups {
		if g.Name == name {
			return g
		}
	}
	return nil
}
