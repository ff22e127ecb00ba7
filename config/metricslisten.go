package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// metricsListen parses global_defs' metrics_listen HOST:PORT, hakeep's
// optional plain-HTTP GET /metrics listener. It is in global_defs, not in
// the cluster block, because a single director without a cluster needs
// it as much; a director-specific address can use keepalived's @node line
// prefix. The host must be an IP literal (or empty: every address) so the
// bound address never depends on name resolution at start.
func (p *parser) metricsListen(n *node, g *GlobalDefs) {
	s, ok := p.arg(n, 1)
	if !ok {
		return
	}
	if len(n.words) > 2 {
		p.errorf(n.pos(), "metrics_listen: one HOST:PORT expected, got also '%s'", strings.Join(n.words[2:], " "))
		return
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.errorf(n.pos(), "metrics_listen: want HOST:PORT (e.g. 0.0.0.0:9650, [::1]:9650, :9650), got '%s'", s)
		return
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			p.errorf(n.pos(), "metrics_listen: host '%s' is not an IP address (names are not resolved here)", host)
			return
		}
	}
	v, err := strconv.Atoi(port)
	if err != nil || v < 1 || v > 65535 {
		p.errorf(n.pos(), "metrics_listen: port '%s' is not 1-65535", port)
		return
	}
	g.MetricsListen = s
}
