package director

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"hakeep/api"
	"hakeep/metrics"
)

// serveAPI serves the API on the root-only unix socket (and, with
// api_listen, on TCP with mTLS) until ctx is done.
func (d *Director) serveAPI(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(d.opts.APISocket), 0o755); err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	v := d.current()
	cl := api.Standalone(d.opts.ConfigID)
	if v.node != nil {
		cl = v.node.API()
	}
	srv := api.NewServer(api.Compose(localView{d}, cl), d.log.With("subsystem", "api"))
	if err := srv.Handle("GET /metrics", metrics.Handler(metrics.NewRegistry(d.metricsSources()), d.log.With("subsystem", "metrics"))); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if err := srv.ServeUnix(d.opts.APISocket); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	defer srv.Close()
	if c := v.cfg.Cluster; c != nil && c.APIListen != "" {
		// The node's TLS follows SIGHUP's certificate rotation.
		conf := v.node.APIServerTLS()
		if conf == nil {
			return fmt.Errorf("api_listen %s: the cluster has no TLS (tls_cert, tls_key, tls_ca)", c.APIListen)
		}
		if _, err := srv.ServeTLS(c.APIListen, conf); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}
