package config

import (
	"encoding/base64"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Cluster defaults.
const (
	DefaultRaftPort   = 7301
	DefaultGossipPort = 7401
	DefaultDataDir    = "/var/lib/hakeep"
	DefaultLease      = time.Second
	DefaultClockDrift = 0.01
)

var clusterKeywords = []string{"node_name", "bind_addr", "advertise_addr", "raft_port", "gossip_port", "join",
	"bootstrap_expect", "data_dir", "tls_cert", "tls_key", "tls_ca", "gossip_key", "api_listen", "health_mode",
	"lease", "renew", "clock_drift", "insecure_open_cluster"}

func (p *parser) cluster(n *node) {
	if !p.needBlock(n) {
		return
	}
	if p.cfg.Cluster != nil {
		p.errorf(n.pos(), "cluster block is already defined at %s", p.cfg.Cluster.Pos)
		return
	}
	c := &Cluster{Pos: n.pos(), RaftPort: DefaultRaftPort, GossipPort: DefaultGossipPort, DataDir: DefaultDataDir,
		HealthMode: HealthLocal, Lease: DefaultLease, ClockDrift: DefaultClockDrift}
	renewSet := false
	type joinWord struct {
		pos  Pos
		text string
	}
	var joins []joinWord
	for _, m := range n.block {
		switch m.kw() {
		case "node_name":
			if s, ok := p.arg(m, 1); ok {
				c.NodeName = s
			}
		case "bind_addr":
			if a, ok := p.addrArg(m, 1); ok {
				c.BindAddr = a
			}
		case "advertise_addr":
			if a, ok := p.addrArg(m, 1); ok {
				c.AdvertiseAddr = a
			}
		case "raft_port":
			if v, ok := p.intArg(m, 1, 65535); ok {
				c.RaftPort = uint16(v)
			}
		case "gossip_port":
			if v, ok := p.intArg(m, 1, 65535); ok {
				c.GossipPort = uint16(v)
			}
		case "join":
			// "join { a b c }" or "join a b c".
			n0 := len(joins)
			for _, w := range m.words[1:] {
				joins = append(joins, joinWord{m.pos(), w})
			}
			for _, x := range m.block {
				for _, w := range x.words {
					joins = append(joins, joinWord{x.pos(), w})
				}
			}
			if len(joins) == n0 {
				p.errorf(m.pos(), "join: no peer addresses")
			}
		case "bootstrap_expect":
			if v, ok := p.intArg(m, 1, 99); ok {
				c.BootstrapExpect = v
			}
		case "data_dir":
			if s, ok := p.arg(m, 1); ok {
				c.DataDir = s
			}
		case "tls_cert":
			if s, ok := p.arg(m, 1); ok {
				c.TLSCert = s
			}
		case "tls_key":
			if s, ok := p.arg(m, 1); ok {
				c.TLSKey = s
			}
		case "tls_ca":
			if s, ok := p.arg(m, 1); ok {
				c.TLSCA = s
			}
		case "gossip_key":
			s, ok := p.arg(m, 1)
			if !ok {
				continue
			}
			c.GossipKey = s
			if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") {
				c.GossipKeyFile = true
				continue
			}
			k, err := base64.StdEncoding.DecodeString(s)
			if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
				p.errorf(m.pos(), "gossip_key: want a file path or a base64 key of 16, 24 or 32 bytes")
				c.GossipKey = ""
			}
		case "api_listen":
			s, ok := p.arg(m, 1)
			if !ok {
				continue
			}
			if _, _, err := net.SplitHostPort(s); err != nil {
				p.errorf(m.pos(), "api_listen: want HOST:PORT, got '%s'", s)
				continue
			}
			c.APIListen = s
		case "health_mode":
			s, ok := p.arg(m, 1)
			if !ok {
				continue
			}
			switch s {
			case HealthLocal, HealthMaster, HealthQuorum:
				c.HealthMode = s
			default:
				p.errorf(m.pos(), "health_mode: want local, master or quorum, got '%s'", s)
			}
		case "lease":
			if d, ok := p.secondsArg(m, 0.1, 3600); ok {
				c.Lease = d
			}
		case "renew":
			if d, ok := p.secondsArg(m, 0.01, 3600); ok {
				c.Renew = d
				renewSet = true
			}
		case "insecure_open_cluster":
			// No value on purpose: the name alone says what it does, and
			// "insecure_open_cluster off" would read as the opposite.
			p.noBlock(m)
			if len(m.words) > 1 {
				p.errorf(m.pos(), "insecure_open_cluster takes no value (delete the line to close the cluster)")
				continue
			}
			c.InsecureOpen = true
		case "clock_drift":
			s, ok := p.arg(m, 1)
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || f < 0 || f > 0.5 {
				p.errorf(m.pos(), "clock_drift: want a fraction in [0, 0.5], got '%s'", s)
				continue
			}
			c.ClockDrift = f
		default:
			p.unknown(m, clusterKeywords, "cluster")
		}
	}
	for _, w := range joins {
		if addr, ok := p.joinAddr(w.pos, w.text, c.GossipPort); ok {
			c.Join = append(c.Join, addr)
		}
	}
	if !renewSet {
		c.Renew = c.Lease / 4
	}
	if c.Renew >= c.Lease {
		p.errorf(n.pos(), "cluster: renew (%s) must be shorter than lease (%s)", c.Renew, c.Lease)
	}
	if c.NodeName == "" {
		c.NodeName = p.opts.ConfigID
		if c.NodeName == "" {
			c.NodeName = hostnameDefault()
		}
	}
	if !c.BindAddr.IsValid() {
		p.errorf(n.pos(), "cluster: bind_addr is required")
	}
	if !c.AdvertiseAddr.IsValid() {
		c.AdvertiseAddr = c.BindAddr
	}
	if c.RaftPort == c.GossipPort {
		p.errorf(n.pos(), "cluster: raft_port and gossip_port are both %d", c.RaftPort)
	}
	p.clusterSecurity(n, c)
	if c.APIListen != "" && (c.TLSCert == "" || c.TLSCA == "") {
		p.errorf(n.pos(), "cluster: api_listen needs tls_cert, tls_key and tls_ca (the TCP API is mTLS only)")
	}
	if c.BootstrapExpect > 0 && c.BootstrapExpect%2 == 0 {
		p.warnf(n.pos(), "cluster: bootstrap_expect %d is even; an odd number of voters tolerates the same failures with fewer nodes", c.BootstrapExpect)
	}
	p.cfg.Cluster = c
}

// joinAddr checks "host[:port]" and adds the default gossip port.
func (p *parser) joinAddr(pos Pos, s string, defPort uint16) (string, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, defPort).String(), true
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, strconv.Itoa(int(defPort))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" || strings.ContainsAny(host, "/ ") {
		p.errorf(pos, "join: bad peer address '%s' (want HOST[:PORT])", s)
		return "", false
	}
	return net.JoinHostPort(host, port), true
}

// clusterSecurity refuses a cluster that strangers on the LAN could
// command: the Raft port takes configurations whose scripts every director
// runs as root, so it needs mutual TLS, and gossip (which feeds the
// bootstrap its addresses) needs a key. Only insecure_open_cluster, written
// by name, lets a lab run without them.
func (p *parser) clusterSecurity(n *node, c *Cluster) {
	set := 0
	for _, f := range []string{c.TLSCert, c.TLSKey, c.TLSCA} {
		if f != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		p.errorf(n.pos(), "cluster: tls_cert, tls_key and tls_ca go together (mutual TLS: this director's certificate, its key, and the CA that signs every director's)")
		return
	}
	hasTLS, hasKey := set == 3, c.GossipKey != ""
	if c.InsecureOpen {
		if hasTLS && hasKey {
			p.warnf(n.pos(), "cluster: insecure_open_cluster does nothing here: tls_* and gossip_key are set (delete the line)")
		}
		return
	}
	name := c.NodeName
	if name == "" {
		name = "NODE"
	}
	const optOut = " (or, in a lab only, write insecure_open_cluster in the block to run open)"
	switch {
	case !hasTLS && !hasKey:
		p.errorf(n.pos(), "cluster: no tls_cert/tls_key/tls_ca and no gossip_key: anyone who reaches ports %d and %d could commit a configuration whose scripts every director runs as root; fix: run `hactl tls init %s OTHER-DIRECTORS...` once (a CA, a certificate per director, a gossip key) and add the lines it prints for %s to this block%s",
			c.RaftPort, c.GossipPort, name, name, optOut)
	case !hasTLS:
		p.errorf(n.pos(), "cluster: no tls_cert/tls_key/tls_ca: anyone who reaches the Raft port %d could commit a configuration whose scripts every director runs as root; fix: run `hactl tls cert create %s` where the cluster's CA is and add the three lines it prints to this block%s",
			c.RaftPort, name, optOut)
	case !hasKey:
		p.errorf(n.pos(), "cluster: no gossip_key: anyone who reaches the gossip port %d can join the membership and hand the bootstrap false addresses; fix: run `hactl keygen -o /etc/hakeep/gossip.key`, copy the file to every director and add `gossip_key /etc/hakeep/gossip.key` to this block%s",
			c.GossipPort, optOut)
	}
}
