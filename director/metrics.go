package director

import (
	"hakeep/checks"
	"hakeep/fence"
	"hakeep/lvs"
	"hakeep/metrics"
	"hakeep/vrrp"
)

// metricsSources reads the running subsystems for the Prometheus metrics
// at scrape time; a subsystem that is not running reports nothing.
func (d *Director) metricsSources() metrics.Sources {
	return metrics.Sources{
		VRRP: func() []vrrp.InstanceStatus {
			m := d.current().vrrp
			if m == nil {
				return nil
			}
			return m.Status()
		},
		Scripts: func() []vrrp.ScriptStatus {
			if m := d.current().vrrp; m != nil {
				return m.Scripts()
			}
			return nil
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
			p := d.current().plane
			if p == nil {
				return lvs.Status{}, false
			}
			rec := p.Snapshot().IPVS
			if rec == nil {
				return lvs.Status{}, false
			}
			return rec.Status(), true
		},
		Cluster: func() (metrics.Cluster, bool) {
			node := d.current().node
			if node == nil {
				return metrics.Cluster{}, false
			}
			return metrics.Cluster{Status: node.Status(), AppliedIndex: node.AppliedIndex()}, true
		},
		Config: func() (uint64, error) {
			v := d.current()
			return v.version, v.applyErr
		},
		Fence: d.fenceMetrics,
		Reload: func() (metrics.Reload, bool) {
			r := d.current().reload
			return metrics.Reload{OK: r.Err == nil, LastSuccess: r.LastSuccess}, true
		},
		NotifyFifoDropped: func() (uint64, bool) { return d.fifos.dropped(), d.fifos.any() },
	}
}

// checksManager is the running checks manager, nil with -P or before the
// data plane started.
func (d *Director) checksManager() *checks.Manager {
	p := d.current().plane
	if p == nil {
		return nil
	}
	return p.Snapshot().Checks
}

// fenceMetrics reads the fence for the running VRRP instances it guards
// (none without a cluster block; an instance the fence never saw is left
// out).
func (d *Director) fenceMetrics() (metrics.Fence, bool) {
	f := d.fence
	if f == nil {
		return metrics.Fence{}, false
	}
	out := metrics.Fence{Renewals: f.Renewals()}
	if m := d.current().vrrp; m != nil {
		for _, st := range m.Status() {
			fs, ok := f.Status(fence.Key{VRID: st.VRID, Interface: st.Interface, IPv6: isV6(st)})
			if !ok {
				continue
			}
			out.Instances = append(out.Instances, metrics.FenceInstance{Instance: st.Name, VRID: st.VRID, Interface: st.Interface,
				Fenced: fs.Fenced, Reason: fs.Reason, Claims: fs.Claims, Refusals: fs.Refusals, Revocations: fs.Revokes, LeaseLeft: fs.LeaseLeft})
		}
	}
	return out, true
}
