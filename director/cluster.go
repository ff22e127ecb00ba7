package director

import (
	"context"
	"fmt"
	"os"
	"strings"

	"hakeep/config"
	"hakeep/consensus"
)

func startCluster(d *Director, cfg *config.Config) (*consensus.Node, error) {
	name := d.opts.ConfigID
	if name == "" {
		name, _ = os.Hostname()
	}
	cc, err := consensus.ConfigFromCluster(cfg.Cluster, name, d.log.With("subsystem", "cluster"))
	if err != nil {
		return nil, fmt.Errorf("%s: cluster: %w", cfg.Cluster.Pos, err)
	}
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
				if ctx.Err() != nil {
					return nil
				}
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
