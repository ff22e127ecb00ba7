package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"hakeep/config"
)

// ConfigFromCluster turns the node-local cluster { } block into a Config:
// it loads the TLS files and the gossip key, fills default ports into join
// addresses, and sets ValidatePushed as the leader's validation. nodeName
// is used when the block has no node_name (the daemon passes its config id,
// else the hostname).
func ConfigFromCluster(c *config.Cluster, nodeName string, log *slog.Logger) (Config, error) {
	if c == nil {
		return Config{}, errors.New("no cluster block")
	}
	cfg := Config{
		NodeName: c.NodeName, BindAddr: c.BindAddr, AdvertiseAddr: c.AdvertiseAddr,
		RaftPort: int(c.RaftPort), GossipPort: int(c.GossipPort), BootstrapExpect: c.BootstrapExpect,
		DataDir: c.DataDir, HealthMode: c.HealthMode, Validate: ValidatePushed, Logger: log, InsecureOpen: c.InsecureOpen,
	}
	if cfg.NodeName == "" {
		cfg.NodeName = nodeName
	}
	if cfg.NodeName == "" {
		return Config{}, fmt.Errorf("%s: cluster block: no node_name and no config id or hostname to default to", c.Pos)
	}
	if cfg.RaftPort == 0 {
		cfg.RaftPort = 7301
	}
	if cfg.GossipPort == 0 {
		cfg.GossipPort = 7401
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/hakeep"
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			j = net.JoinHostPort(strings.Trim(j, "[]"), strconv.Itoa(cfg.GossipPort))
		}
		cfg.Join = append(cfg.Join, j)
	}
	set := 0
	for _, f := range []string{c.TLSCert, c.TLSKey, c.TLSCA} {
		if f != "" {
			set++
		}
	}
	switch set {
	case 0:
	case 3:
		t, err := LoadCredentials(c.TLSCert, c.TLSKey, c.TLSCA)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", c.Pos, err)
		}
		if err := t.bind(cfg.NodeName); err != nil {
			return Config{}, fmt.Errorf("%s: %w", c.Pos, err)
		}
		cfg.TLS = t
	default:
		return Config{}, fmt.Errorf("%s: cluster block: tls_cert, tls_key and tls_ca go together (mutual TLS)", c.Pos)
	}
	if c.GossipKey != "" {
		keys, err := gossipKeys(c.GossipKey, c.GossipKeyFile)
		if err != nil {
			return Config{}, fmt.Errorf("%s: cluster block: gossip_key: %w", c.Pos, err)
		}
		cfg.GossipKeys = keys
	}
	return cfg, nil
}
