package lvs

import (
	"hakeep/config"
)

// Plan reuse on reload (issue 13): a reload's configuration keeps, as the
// same objects, the virtual servers whose blocks did not change
// (config.Options.Reuse). Their services are the last plan's, provided
// nothing else they depend on changed: their health (the same per-virtual
// server map in the health table), their group (not reused: it is another
// block), VRRP mastership (ha_suspend: not reused) and their quorum state
// (which a plan with unchanged inputs leaves as it is whenever quorum +
// hysteresis > 0). The reconciler then skips them: they are the same
// *Service as in the table it has.

// reusable reports whether vs of cfg may keep the last plan's services.
func (p *Planner) reusable(cfg *config.Config, vs *config.VirtualServer, in Inputs) bool {
	k := vs.Key()
	old := p.byKey[k]
	if old == nil || (old != vs && cfg.ReusedFrom(vs) != old) {
		return false
	}
	if vs.Group != "" || vs.HASuspend || vs.Quorum+vs.Hysteresis <= 0 {
		return false
	}
	if _, seen := in.Quorum[k]; !seen {
		return false
	}
	if _, planned := p.keysOf[k]; !planned {
		return false
	}
	for _, rs := range vs.RealServers {
		if len(rs.Checkers) > 0 {
			// Health matters: only the very same health of this virtual
			// server (the table shares the VSHealth of those it did not
			// rebuild) is the same input.
			if in.HealthTable == nil || p.lastHealth == nil {
				return false
			}
			return in.HealthTable.VS(k) == p.lastHealth.VS(k)
		}
	}
	return true
}

// planReusing plans cfg, a configuration other than the last planned one,
// keeping the services of the virtual servers that may be (reusable). It
// returns ok false when it reused nothing or met an error: the caller
// plans everything then, which reports errors as ever.
func (p *Planner) planReusing(cfg *config.Config, in Inputs) (d Desired, keysOf map[string][]ServiceKey, ok bool) {
	if p.lastCfg == nil || cfg == nil {
		return Desired{}, nil, false
	}
	if p.byKey == nil {
		p.indexLast()
	}
	d = Desired{Table: make(Table, len(p.last)), Quorum: make(map[string]bool, len(cfg.VirtualServers))}
	keysOf = make(map[string][]ServiceKey, len(cfg.VirtualServers))
	reused := 0
	for _, vs := range cfg.VirtualServers {
		if p.reusable(cfg, vs, in) {
			k := vs.Key()
			keys := p.keysOf[k]
			for _, sk := range keys {
				if _, dup := d.Table[sk]; dup {
					return Desired{}, nil, false
				}
				d.Table[sk] = p.last[sk]
			}
			d.Quorum[k] = in.Quorum[k]
			keysOf[k] = keys
			reused++
			continue
		}
		keys, err := addVirtualServer(&d, cfg, vs, in)
		if err != nil {
			return Desired{}, nil, false
		}
		keysOf[d.lastKey] = keys
	}
	return d, keysOf, reused > 0
}

// indexLast indexes the last planned configuration's virtual servers.
func (p *Planner) indexLast() {
	p.byKey = make(map[string]*config.VirtualServer, len(p.lastCfg.VirtualServers))
	p.order = make(map[*config.VirtualServer]int, len(p.lastCfg.VirtualServers))
	for i, vs := range p.lastCfg.VirtualServers {
		p.byKey[vs.Key()] = vs
		p.order[vs] = i
	}
}
