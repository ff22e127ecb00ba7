package director

import (
	"context"

	"hakeep/api"
	"hakeep/fence"
	"hakeep/lvs"
	"hakeep/vrrp"
)

// localView is the director's own side of the API: what this node runs.
type localView struct{ d *Director }

func (l localView) Instances(ctx context.Context) ([]api.Instance, error) {
	return l.d.instances(), nil
}

func (d *Director) instances() []api.Instance {
	m := d.current().vrrp
	out := []api.Instance{}
	if m == nil {
		return out
	}
	for _, st := range m.Status() {
		in := api.Instance{Name: st.Name, VRID: int(st.VRID), State: st.State, Priority: int(st.Priority), Interface: st.Interface, VIPs: []string{}}
		for _, v := range st.VIPs {
			in.VIPs = append(in.VIPs, v.String())
		}
		if st.Master.IsValid() {
			in.MasterAddr = st.Master.String()
		}
		if f := d.fence; f != nil {
			if fs, ok := f.Status(fence.Key{VRID: st.VRID, Interface: st.Interface, IPv6: isV6(st)}); ok {
				in.Fenced = fs.Fenced || st.State == "FENCED"
				in.Fence = &api.InstanceFence{Reason: fs.Reason, Detail: fs.Detail, Owner: fs.Owner, Epoch: fs.Epoch, LeaseLeftMS: fs.LeaseLeft.Milliseconds()}
			}
		}
		out = append(out, in)
	}
	return out
}

func (l localView) VirtualServers(ctx context.Context) ([]api.VirtualServer, error) {
	return l.d.virtualServers(), nil
}

// virtualServers lists the desired IPVS table with each real server's
// health (kernel counters when the reconciler runs).
func (d *Director) virtualServers() []api.VirtualServer {
	out := []api.VirtualServer{}
	v := d.current()
	if v.plane == nil {
		return out
	}
	snap := v.plane.Snapshot()
	cfg, health, node := snap.Config, snap.Health, v.node
	if cfg == nil {
		return out
	}
	for _, vs := range cfg.VirtualServers {
		av := api.VirtualServer{Key: vs.Key(), Protocol: vs.Protocol, Scheduler: vs.LBAlgo, FWMark: vs.FWMark, Persistence: int(vs.PersistenceTimeout.Seconds()), RealServers: []api.RealServer{}}
		if vs.Addr.IsValid() {
			av.Address, av.Port = vs.Addr.Addr().String(), vs.Addr.Port()
		}
		for _, rs := range vs.RealServers {
			ar := api.RealServer{Address: rs.Addr.Addr().String(), Port: rs.Addr.Port(), Weight: rs.Weight, Forward: forward(vs.LBKind, rs.Options().LVSMethod), Healthy: true, HealthSource: "local"}
			key := lvs.HealthKey{VS: vs.Key(), RS: rs.Addr}
			if h, ok := health.Get(key); ok {
				ar.Healthy = h.Up
				if h.Weight >= 0 {
					ar.Weight = h.Weight
				}
			} else if len(rs.Checkers) > 0 && vs.Alpha {
				ar.Healthy = false // alpha: down until a first success
			}
			if node != nil {
				e := node.Healthy(vs.Key(), rs.Addr.String())
				if e.Known {
					ar.HealthSource, ar.Views = e.Source, e.Views
				}
			}
			av.RealServers = append(av.RealServers, ar)
		}
		out = append(out, av)
	}
	return out
}

func forward(vsKind, rsMethod string) string {
	if rsMethod != "" {
		return rsMethod
	}
	if vsKind == "" {
		return "NAT"
	}
	return vsKind
}

func (l localView) Checks(ctx context.Context) ([]api.Check, error) {
	out := []api.Check{}
	mgr := l.d.checksManager()
	if mgr == nil {
		return out, nil
	}
	for _, rs := range mgr.State() {
		kind := ""
		if len(rs.Checkers) > 0 {
			kind = string(rs.Checkers[0].Kind)
		}
		c := api.Check{VirtualServer: rs.VirtualServer, RealServer: rs.RealServer, Kind: kind, Up: rs.Up, LastChange: rs.Since}
		if !rs.Up {
			c.LastError = rs.Reason
		}
		out = append(out, c)
	}
	return out, nil
}

func (l localView) Running(ctx context.Context) (uint64, error) {
	v := l.d.current()
	return v.version, v.applyErr
}

func (l localView) LastReload(ctx context.Context) *api.Reload {
	return apiReload(l.d.current().reload)
}

func apiReload(r ReloadOutcome) *api.Reload {
	out := &api.Reload{Source: r.Source, At: r.At, OK: r.Err == nil, LastSuccess: r.LastSuccess}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}

// LastReload is the outcome of the last reload (systemd STATUS=, tests).
func (d *Director) LastReload() ReloadOutcome { return d.current().reload }

// Status is the whole local snapshot (SIGUSR1/SIGUSR2 dumps).
func (d *Director) Status() api.Status {
	ctx := context.Background()
	st := api.Status{Node: d.opts.ConfigID, Instances: d.instances(), VirtualServers: d.virtualServers()}
	v := d.current()
	if v.node != nil {
		if cs, err := v.node.API().ClusterStatus(ctx); err == nil {
			st.Node, st.Raft, st.Config, st.Members, st.Health = cs.Node, cs.Raft, cs.Config, cs.Members, cs.Health
		}
	}
	st.Config.Running = v.version
	if v.applyErr != nil {
		st.Config.LocalError = v.applyErr.Error()
	}
	st.Config.LastReload = apiReload(v.reload)
	return st
}

// isV6 tells an IPv6 instance from its status (its source, else its VIPs).
func isV6(st vrrp.InstanceStatus) bool {
	if st.Source.IsValid() {
		return st.Source.Is6() && !st.Source.Is4In6()
	}
	return len(st.VIPs) > 0 && st.VIPs[0].Is6()
}
