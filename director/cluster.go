package director

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"hakeep/api"
	"hakeep/config"
	"hakeep/consensus"
)

// startCluster starts the consensus node; plan answers the cluster's dry
// runs for this director.
func startCluster(configID string, cfg *config.Config, log *slog.Logger, plan func(name string, text []byte) api.DirectorPlan) (*consensus.Node, error) {
	name := configID
	if name == "" {
		name, _ = os.Hostname()
	}
	cc, err := consensus.ConfigFromCluster(cfg.Cluster, name, log.With("subsystem", "cluster"))
	if err != nil {
		return nil, fmt.Errorf("%s: cluster: %w", cfg.Cluster.Pos, err)
	}
	cc.Plan = plan
	node, err := consensus.New(cc)
	if err != nil {
		return nil, fmt.Errorf("start cluster node %s: %w", cc.NodeName, err)
	}
	return node, nil
}

// followCluster applies every committed configuration version, through the
// same loop as SIGHUP, and reports the outcome to the cluster so `hactl
// config push` can say who applied it. A version that cannot be applied
// leaves the last good one running.
func (d *Director) followCluster(ctx context.Context) error {
	node := d.current().node
	versions, cancel := node.Subscribe()
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case cv, ok := <-versions:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("cluster subscription closed")
			}
			v := d.current()
			if cv.Version == v.version {
				continue
			}
			// Parse here, off the director's loop: a large file takes a
			// while and the loop must keep answering.
			cfg, perr := d.parseCommitted(cv, v.cfg.Cluster)
			err := d.submit(ctx, change{source: fmt.Sprintf("version %d", cv.Version), cfg: cfg, parseErr: perr, version: cv.Version, committed: true})
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				d.log.Error("cannot apply committed configuration, keeping the running one", "version", cv.Version, "err", err)
			} else {
				d.log.Info("applied committed configuration", "version", cv.Version, "sha256", cv.SHA256, "pushed_by", cv.PushedBy)
			}
			node.ReportApplied(cv.Version, err)
		}
	}
}

// parseCommitted parses a committed text with this director's config id
// (its @node lines) and keeps the node-local cluster block.
func (d *Director) parseCommitted(cv consensus.ConfigVersion, local *config.Cluster) (*config.Config, error) {
	name := cv.Source
	if name == "" {
		name = fmt.Sprintf("cluster-v%d", cv.Version)
	}
	cfg, diags := config.Parse(name, []byte(cv.Text), config.Options{ConfigID: d.opts.ConfigID, NoInclude: true})
	if err := diags.Err(); err != nil {
		return nil, err
	}
	if local == nil {
		local = d.current().cfg.Cluster
	}
	cfg.Cluster = local
	return cfg, nil
}
