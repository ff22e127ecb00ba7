package director

import (
	"context"
	"time"

	"hakeep/metrics"
)

// metricsFollowEvery is how often the plain metrics listener compares its
// address with the running configuration's (an atomic load): a reload or
// committed version that changes metrics_listen takes effect within it.
const metricsFollowEvery = time.Second

// serveMetrics runs global_defs' metrics_listen, the optional plain-HTTP
// listener serving GET /metrics only (metrics.PlainHandler: no API route
// is reachable there). It follows the running configuration: the address
// added, changed or removed by a reload is bound, moved or closed. A bind
// failure is returned, so the supervisor logs it and retries with backoff
// (the port may be free later) while the rest of the director runs on.
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
	tick := time.NewTicker(metricsFollowEvery)
	defer tick.Stop()
	for {
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
		case <-tick.C:
		}
	}
}
