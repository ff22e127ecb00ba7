package config

// notImplemented lists, per block, the keywords hakeepd reads (they are
// keepalived's, so a keepalived.conf loads unchanged) but does not act on.
// Each use is a warning with its position, so `hakeepd -t` exits 5 and an
// operator learns before production, not after. docs/keywords.md lists
// them as "ignored"; keywords_doc_test.go keeps the two in step.
//
// Block names are the ones dispatch uses for "where" ("the top level",
// "global_defs", ...); every checker kind shares "checker".
var notImplemented = map[string]map[string]bool{
	"the top level": set("bfd_instance", "linkbeat_interfaces", "garp_group", "vrrp_track_process",
		"net_namespace", "instance", "track_group", "linkbeat_use_polling", "use_pid_dir", "child_wait_time",
		"namespace_with_ipsets", "net_namespace_ipvs", "interface_up_down_delays"),
	"global_defs": set(
		// Process, scheduling and memory knobs of keepalived's three processes.
		"vrrp_no_swap", "checker_no_swap", "bfd_no_swap", "vrrp_priority", "checker_priority", "bfd_priority",
		"vrrp_rt_priority", "checker_rt_priority", "bfd_rt_priority", "vrrp_rlimit_rttime", "checker_rlimit_rttime",
		"bfd_rlimit_rttime", "vrrp_cpu_affinity", "checker_cpu_affinity", "bfd_cpu_affinity", "process_names",
		"vrrp_process_name", "checker_process_name", "bfd_process_name", "umask", "child_wait_time", "use_pid_dir",
		"random_seed",
		// Socket and netlink buffer sizing.
		"vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier", "vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force",
		"vrrp_netlink_monitor_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs_force", "lvs_netlink_cmd_rcv_bufs",
		"lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_monitor_rcv_bufs", "lvs_netlink_monitor_rcv_bufs_force",
		"process_monitor_rcv_bufs", "process_monitor_rcv_bufs_force", "vrrp_socket_priority",
		// SNMP, D-Bus.
		"snmp_socket", "enable_traps", "enable_snmp_vrrp", "enable_snmp_checker", "enable_snmp_rfc", "enable_snmp_rfcv2",
		"enable_snmp_rfcv3", "enable_snmp_keepalived", "enable_snmp_checker_rfc", "snmp_name", "enable_dbus",
		"dbus_service_name",
		// Firewall integration (hakeepd manages no firewall rules).
		"vrrp_iptables", "vrrp_ipsets", "nftables", "nftables_priority", "nftables_ifindex", "nftables_counters",
		"nftables_ipvs", "nftables_ipvs_priority", "nftables_ipvs_start_fwmark", "namespace_with_ipsets",
		// VRRP behaviour not implemented.
		"vrrp_garp_master_refresh_repeat_x", "vrrp_higher_prio_send_advert", "vrrp_min_garp", "vrrp_lower_prio_no_advert",
		"vrrp_notify_priority_changes", "vrrp_dont_track_primary_v6", "vrrp_down_timer_adverts", "vrrp_garp_extra_if",
		"log_unknown_vrids", "vmac_prefix", "vmac_addr_prefix", "linkbeat_use_polling", "disable_local_igmp",
		"fifo_write_vrrp_states_on_reload", "dynamic_interfaces", "max_auto_priority",
		// Namespaces and instances.
		"local_name", "instance", "net_namespace", "net_namespace_ipvs", "data_use_instance",
		// keepalived's own reload machinery (hakeepd: SIGHUP, hactl).
		"reload_check_config", "reload_time_file", "reload_repeat", "reload_file", "tmp_config_directory",
		"config_save_dir",
		// Mail and notification details.
		"no_email_faults", "smtp_alert_vrrp", "no_checker_emails", "rs_init_notifies", "checker_log_all_failures",
		"ssl_password", "process_name", "lvs_process_name", "min_auto_priority_delay", "vrrp_vmac_garp_intvl",
		"vrrp_rlimit_rtime", "checker_rlimit_rtime", "bfd_rlimit_rtime", "include_check", "enable_snmp_checker_rfc",
		"vrrp_socket_priority",
	),
	"vrrp_instance": set("native_ipv6", "unicast_fault_no_peer", "check_unicast_src", "kernel_rx_buf_size",
		"higher_prio_send_advert", "skip_check_adv_addr", "track_process", "track_bfd", "notify_priority_changes",
		"no_accept_vmac", "old_unicast_checksum", "vmac_xmit_base_v6", "linkbeat_use_polling", "promote_secondaries",
		"mcast_ttl", "down_timer_adverts", "garp_extra_if", "lower_prio_no_advert", "use_ipvlan", "use_vmac_addr",
		"track_src_ip", "mcast_dst_ip", "interface_up_down_delays", "unicast_ttl", "dont_track_primary",
		"debug", "strict_mode", "notify_deleted", "notify_master_rx_lower_pri", "vrf",
		"vmac_garp_intvl"),
	"vrrp_sync_group": set("global_tracking", "notify_deleted", "notify_master_rx_lower_pri", "notify_priority_changes",
		"track_bfd", "track_process"),
	"vrrp_track_file": set("init_file"),
	"virtual_server": set("ip_family", "lb_kind_mh_port", "lvs_timeouts", "quorum_max", "persistence_engine", "nat_mask",
		"hashed", "snmp_name", "weight"),
	"real_server": set("alpha", "omega", "bfd_weight", "rs_mh_port", "uthreshold", "lthreshold", "snmp_name",
		CheckBFD, CheckFile),
	"checker": set("nb_sock_retry", "ip_family", "log_all_failures", "weight", "tls_compliant", "fast_recovery"),
	"url":     set("regex_options", "regex_stop", "regex_min_offset", "regex_max_offset", "regex_stack"),
	"SSL":     set("password"),
}

// The per-line lookups of the blocks a large file repeats.
var (
	notImplChecker = notImplemented["checker"]
	notImplURL     = notImplemented["url"]
)

// vipOptionsIgnored are the options of a virtual_ipaddress (or
// static_ipaddress) line that the address manager does not apply.
var vipOptionsIgnored = set("peer", "track_group", "preferred_lft", "home", "noprefixroute", "autojoin")

func set(ks ...string) map[string]bool {
	m := make(map[string]bool, len(ks))
	for _, k := range ks {
		m[k] = true
	}
	return m
}

// notImplBlock maps dispatch's "where" to a notImplemented block: every
// checker kind is "checker".
func notImplBlock(where string) string {
	switch where {
	case CheckTCP, CheckHTTP, CheckSSL, CheckMisc, CheckSMTP, CheckDNS, CheckUDP, CheckPing, CheckBFD, CheckFile, "host":
		return "checker"
	}
	return where
}

// warnNotImpl warns when n's keyword is accepted but not acted on in block.
func (p *parser) warnNotImpl(block string, n *node) {
	if len(n.words) > 0 && notImplemented[notImplBlock(block)][n.kw()] {
		p.warnf(n.pos(), "%s: accepted, not implemented in hakeepd", n.kw())
	}
}
