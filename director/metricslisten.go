package director

import (
	"context"

	"hakeep/metrics"
)

// serveMetrics runs global_defs' metrics_listen, the optional plain-HTTP
// listener serving GET /metrics only (metrics.PlainHandler: no API route
// is reachable there). It follows the running configuration: the address
// added, changed or removed by a reload is bound, moved or closed. A bind
// failure is returned, so the supervisor logs it and retries with backoff
// (the port may be free later) while the rest of the director runs on.
// It wakes only when the loop publishes another configuration.
func (d *Director) serveMetrics(ctx context.Context) error {
	log := d.log.With("subsystem", "metrics_listen")
	h := metrics.Handler(metrics.NewRegistry(d.metricsSources()), log)
	var (
		ln   *metrics.Listener
		addr string
	)
	defer func() {
		if ln != nil {
			ln.Close()
		}
	}()
	for {
		changed := d.cfgChanged.wait()
		if want := d.current().cfg.Global.MetricsListen; want != addr {
			if ln != nil {
				ln.Close()
				log.Info("metrics listener closed", "addr", addr)
				ln, addr = nil, ""
			}
			if want != "" {
				l, err := metrics.Listen(want, h, log)
				if err != nil {
					return err
				}
				ln, addr = l, want
				log.Info("serving GET /metrics over plain HTTP", "addr", l.Addr().String())
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
