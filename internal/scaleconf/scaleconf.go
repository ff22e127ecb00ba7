// Package scaleconf writes the large keepalived.conf of the daemon
// benchmarks and their host counterparts (test/ipvs TestDaemonSideBySide,
// the config, lvs and dataplane reload benchmarks): one home, so that all
// of them measure the same file.
package scaleconf

import (
	"fmt"
	"strings"
)

// Text is keepalived.conf with n TCP NAT virtual servers (10.100.x.y:80)
// of d real servers each (no checkers) and one vrrp_instance on v0. With
// shift, 1% is changed, as the issue 13 reload measures: the first n/100
// services replaced by others, and every 100th service's real servers
// weigh 2.
func Text(n, d int, shift bool) string { return TextChecked(n, d, shift, "") }

// TextChecked is Text with checker (keepalived.conf lines, e.g. a
// TCP_CHECK block) in every real server.
func TextChecked(n, d int, shift bool, checker string) string {
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id bench\n}\nvrrp_instance VI_1 {\n  state MASTER\n  interface v0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  virtual_ipaddress {\n    10.255.1.1/32\n  }\n}\n")
	for i := range n {
		si := i
		if shift && i < n/100 {
			si = n + i
		}
		fmt.Fprintf(&b, "virtual_server 10.100.%d.%d 80 {\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n", byte(si>>8), byte(si))
		for j := range d {
			w := 1
			if shift && i%100 == 50 {
				w = 2
			}
			fmt.Fprintf(&b, "  real_server 10.200.%d.%d 80 {\n    weight %d\n%s  }\n", j, i%250, w, checker)
		}
		b.WriteString("}\n")
	}
	return b.String()
}
