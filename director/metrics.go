package director

import (
	"hakeep/checks"
	"hakeep/lvs"
	"hakeep/metrics"
	"hakeep/vrrp"
)

// metricsSources reads the running subsystems for the Prometheus metrics
// at scrape time; a subsystem that is not running reports nothing.
func (d *Director) metricsSources() metrics.Sources {
	return metrics.Sources{
		VRRP: func() []vrrp.InstanceStatus {
			d.mu.Lock()
			m := d.vrrp
			d.mu.Unlock()
			if m == nil {
				return nil
			}
			return m.Status()
		},
		Checks: func() ([]checks.RealServerState, bool) {
			if m := d.checksManager(); m != nil {
				return m.State(), true
			}
			return nil, false
		},
		CheckStats: func() (checks.Stats, bool) {
			if m := d.checksManager(); m != nil {
				return m.Stats(), true
			}
			return checks.Stats{}, false
		},
		IPVS: func() (lvs.Status, bool) {
			p := d.data
			if p == nil {
				return lvs.Status{}, false
			}
			rec := p.reconciler()
			if rec == nil {
				return lvs.Status{}, false
			}
			return rec.Status(), true
		},
		Cluster: func() (metrics.Cluster, bool) {
			node := d.clusterNode()
			if node == nil {
				return metrics.Cluster{}, false
			}
			return metrics.Cluster{Status: node.Status(), AppliedIndex: node.AppliedIndex()}, true
		},
		Config: func() (uint64, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.version, d.applyErr
		},
	}
}

// checksManager is the running checks manager, nil with -P or before the
// data plane started.
func (d *Director) checksManager() *checks.Manager {
	p := d.data
	if p == nil {
		return nil
	}
	return p.checksMgr()
}
