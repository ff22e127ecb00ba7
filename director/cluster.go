package director

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"hakeep/api"
	"hakeep/config"
	"hakeep/consensus"
)

// clusterConfig maps the node-local cluster { } block to the consensus
// node's settings.
func clusterConfig(c *config.Cluster, configID string) (consensus.Config, error) {
	cc := consensus.Config{
		NodeName:        c.NodeName,
		BindAddr:        c.BindAddr,
		AdvertiseAddr:   c.AdvertiseAddr,
		RaftPort:        int(c.RaftPort),
		GossipPort:      int(c.GossipPort),
		Join:            c.Join,
		BootstrapExpect: c.BootstrapExpect,
		DataDir:         c.DataDir,
		HealthMode:      c.HealthMode,
		Timeouts:        consensus.LANTimeouts(),
		Validate:        consensus.ValidatePushed,
	}
	if cc.NodeName == "" {
		cc.NodeName = configID
	}
	if cc.NodeName == "" {
		cc.NodeName, _ = os.Hostname()
	}
	if c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "" {
		t, err := consensus.LoadTLS(c.TLSCert, c.TLSKey, c.TLSCA)
		if err != nil {
			return cc, fmt.Errorf("%s: cluster TLS: %w", c.Pos, err)
		}
		cc.TLS = t
	}
	if c.GossipKey != "" {
		key, err := gossipKey(c)
		if err != nil {
			return cc, fmt.Errorf("%s: gossip_key: %w", c.Pos, err)
		}
		cc.GossipKey = key
	}
	return cc, nil
}

// gossipKey reads the key from its file or decodes it as written (base64).
func gossipKey(c *config.Cluster) ([]byte, error) {
	text := c.GossipKey
	if c.GossipKeyFile {
		b, err := os.ReadFile(c.GossipKey)
		if err != nil {
			return nil, err
		}
		text = strings.TrimSpace(string(b))
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("key is %d bytes, want 16, 24 or 32", len(key))
}

func startCluster(d *Director, cfg *config.Config) (*consensus.Node, error) {
	cc, err := clusterConfig(cfg.Cluster, d.opts.ConfigID)
	if err != nil {
		return nil, err
	}
	cc.Logger = d.log.With("subsystem", "cluster")
	node, err := consensus.New(cc)
	if err != nil {
		return nil, fmt.Errorf("start cluster node %s: %w", cc.NodeName, err)
	}
	return node, nil
}

// followCluster applies every committed configuration version, through the
// same diff-based reload as SIGHUP, and reports the outcome to the cluster
// so `hactl config push` can say who applied it. A version that cannot be
// applied leaves the last good one running.
func (d *Director) followCluster(ctx context.Context) error {
	node := d.clusterNode()
	versions, cancel := node.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case v, ok := <-versions:
			if !ok {
				return fmt.Errorf("cluster subscription closed")
			}
			d.mu.Lock()
			local := d.cfg.Cluster
			running := d.version
			d.mu.Unlock()
			if v.Version == running {
				continue
			}
			err := d.applyText(v, local)
			d.mu.Lock()
			if err == nil {
				d.version, d.applyErr = v.Version, nil
			} else {
				d.applyErr = fmt.Errorf("version %d: %w", v.Version, err)
			}
			d.mu.Unlock()
			if err != nil {
				d.log.Error("cannot apply committed configuration, keeping the running one", "version", v.Version, "err", err)
			} else {
				d.log.Info("applied committed configuration", "version", v.Version, "sha256", v.SHA256, "pushed_by", v.PushedBy)
			}
			node.ReportApplied(v.Version, err)
		}
	}
}

// applyText parses a committed text with this director's config id (its
// @node lines), keeps the node-local cluster block, and applies it.
func (d *Director) applyText(v consensus.ConfigVersion, local *config.Cluster) error {
	name := v.Source
	if name == "" {
		name = fmt.Sprintf("cluster-v%d", v.Version)
	}
	cfg, diags := config.Parse(name, []byte(v.Text), config.Options{ConfigID: d.opts.ConfigID, NoInclude: true})
	if diags.HasErrors() {
		var msgs []string
		for _, dg := range diags {
			if dg.Severity == config.Error {
				msgs = append(msgs, dg.String())
			}
		}
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	cfg.Cluster = local
	return d.apply(cfg)
}

// applyCommitted re-applies the committed version (SIGHUP in cluster mode).
func (d *Director) applyCommitted(version uint64, local *config.Cluster) error {
	node := d.clusterNode()
	cur, ok := node.FSM().Current()
	if !ok || cur.Version != version {
		return fmt.Errorf("committed version %d is not known here", version)
	}
	if local == nil {
		d.mu.Lock()
		local = d.cfg.Cluster
		d.mu.Unlock()
	}
	return d.applyText(cur, local)
}

// standalone is the cluster half of the API when there is no cluster { }
// block: validation works, everything replicated says why it cannot.
type standalone struct{ d *Director }

var errNoCluster = api.Errorf(api.CodeUnavailable, "not in cluster mode: this director has no cluster { } block")

func (s standalone) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	return api.ClusterStatus{Node: s.d.opts.ConfigID, Raft: api.RaftStatus{State: "Standalone"}}, nil
}

func (s standalone) ConfigValidate(ctx context.Context, req api.ValidateRequest) (api.ValidateResult, error) {
	errs, warnings := consensus.CheckPushable(req.Name, []byte(req.Text))
	return api.ValidateResult{Valid: len(errs) == 0, Errors: errs, Warnings: warnings}, nil
}

func (s standalone) ConfigPush(context.Context, api.PushRequest) (api.PushResult, error) {
	return api.PushResult{}, errNoCluster
}
func (s standalone) ConfigShow(context.Context) (api.ConfigVersion, error) {
	return api.ConfigVersion{}, errNoCluster
}
func (s standalone) ConfigHistory(context.Context) ([]api.ConfigVersion, error) {
	return nil, errNoCluster
}
func (s standalone) ConfigRollback(context.Context, api.RollbackRequest) (api.PushResult, error) {
	return api.PushResult{}, errNoCluster
}
func (s standalone) ConfigApplied(context.Context, uint64) (api.PushResult, error) {
	return api.PushResult{}, errNoCluster
}
func (s standalone) ClusterInit(context.Context) error         { return errNoCluster }
func (s standalone) ClusterJoin(context.Context, string) error { return errNoCluster }
func (s standalone) ClusterMembers(context.Context) ([]api.Member, error) {
	return nil, errNoCluster
}
func (s standalone) ClusterRemove(context.Context, string) error { return errNoCluster }
