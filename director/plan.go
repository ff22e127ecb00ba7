package director

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"hakeep/api"
	"hakeep/config"
	"hakeep/lvs"
	"hakeep/vrrp"
)

// The dry run (`hactl config push --dry-run`): what this director would
// change if a text were applied, against what it runs now. It reads the
// published view only, never waits for the director's loop or a
// subsystem, and changes nothing.

// planInputs is what a plan depends on besides the two configurations.
type planInputs struct {
	// vrrp, ipvs: this director runs that half (-P, -C turn one off), so
	// only its changes are reported.
	vrrp, ipvs bool
	// masters are the instances MASTER here (ha_suspend services).
	masters map[string]bool
	// health is the real servers' health as the last IPVS plan used it;
	// both tables are computed with it, so only the file's changes show.
	health *lvs.HealthTable
}

// PlanLocal answers a dry run for this director alone (no cluster): a
// text that does not parse here is refused with its file:line errors.
func (l localView) PlanLocal(ctx context.Context, req api.PlanRequest) (api.DirectorPlan, error) {
	p := l.d.plan(req.Name, []byte(req.Text))
	if len(p.Diagnostics) > 0 {
		return api.DirectorPlan{}, &api.Error{Code: api.CodeInvalid, Message: "configuration refused: " + p.Error, Diagnostics: p.Diagnostics}
	}
	return p, nil
}

// plan computes this director's plan for text (the consensus node calls it
// for the cluster's fan-out). Errors are in the plan, not returned.
func (d *Director) plan(name string, text []byte) api.DirectorPlan {
	v := d.current()
	out := api.DirectorPlan{Director: d.planName(v), RunningVersion: v.version, Changes: []api.PlanChange{}}
	// Parsed as a committed version is: this director's @id lines, no
	// includes, its own cluster block.
	cfg, diags := config.Parse(name, text, config.Options{ConfigID: d.opts.ConfigID, NoInclude: true})
	if diags.HasErrors() || cfg == nil {
		out.Error = "the configuration does not parse for this director"
		out.Diagnostics = diags.Errors().Strings()
		return out
	}
	cfg.Cluster = v.cfg.Cluster
	in := planInputs{vrrp: d.opts.VRRP, ipvs: d.opts.Checks, masters: map[string]bool{}}
	if m := v.vrrp; m != nil {
		for _, st := range m.Status() { // a published snapshot: no wait
			if st.State == "MASTER" {
				in.masters[st.Name] = true
			}
		}
	}
	if v.plane != nil {
		in.health = v.plane.Snapshot().Health
	}
	changes, err := planDiff(v.cfg, cfg, in)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Changes = changes
	return out
}

// planName is the name this director answers under: its cluster node
// name, else its config id, else its host name.
func (d *Director) planName(v *view) string {
	if v.node != nil {
		return v.node.Name()
	}
	if d.opts.ConfigID != "" {
		return d.opts.ConfigID
	}
	h, _ := os.Hostname()
	return h
}

// planDiff lists what moving from cur to next changes: VRRP instances,
// their VIPs, then IPVS services and real servers, each in a stable order.
func planDiff(cur, next *config.Config, in planInputs) ([]api.PlanChange, error) {
	out := []api.PlanChange{}
	if in.vrrp {
		rows, err := planVRRP(cur, next)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		out = append(out, planVIPs(cur, next)...)
	}
	if in.ipvs {
		rows, err := planIPVS(cur, next, in)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// planVRRP compares the instances by name. A changed one says what
// changed and whether the reload keeps it running (VRRP's own rule) or
// restarts it. VIP lists are left to planVIPs.
func planVRRP(cur, next *config.Config) ([]api.PlanChange, error) {
	curSet, err := vrrp.FromConfig(cur)
	if err != nil {
		return nil, fmt.Errorf("running configuration: %w", err)
	}
	nextSet, err := vrrp.FromConfig(next)
	if err != nil {
		return nil, err
	}
	specs := func(s *vrrp.Set) map[string]*vrrp.InstanceSpec {
		m := map[string]*vrrp.InstanceSpec{}
		for _, i := range s.Instances {
			m[i.Name] = i
		}
		return m
	}
	curSpecs, nextSpecs := specs(curSet), specs(nextSet)
	curInst := map[string]*config.VRRPInstance{}
	for _, i := range cur.Instances {
		curInst[i.Name] = i
	}
	var out []api.PlanChange
	seen := map[string]bool{}
	for _, n := range next.Instances {
		seen[n.Name] = true
		c, ok := curInst[n.Name]
		if !ok {
			out = append(out, api.PlanChange{Kind: api.PlanInstance, Object: n.Name, Change: api.PlanAdded,
				Detail: fmt.Sprintf("vrid %d on %s, priority %d", n.VRID, n.Interface, n.Priority)})
			continue
		}
		fields := instanceFields(c, n)
		restarts := !vrrp.SameRun(curSpecs[c.Name], nextSpecs[n.Name])
		if len(fields) == 0 && !restarts {
			continue
		}
		detail := strings.Join(fields, "; ")
		switch {
		case restarts && detail == "":
			detail = "VIPs changed; restarts (VRRP state reset)"
		case restarts:
			detail += "; restarts (VRRP state reset)"
		default:
			detail += " (in place)"
		}
		out = append(out, api.PlanChange{Kind: api.PlanInstance, Object: n.Name, Change: api.PlanChanged, Detail: detail})
	}
	for _, c := range cur.Instances {
		if !seen[c.Name] {
			out = append(out, api.PlanChange{Kind: api.PlanInstance, Object: c.Name, Change: api.PlanRemoved,
				Detail: fmt.Sprintf("vrid %d on %s", c.VRID, c.Interface)})
		}
	}
	return out, nil
}

// instanceFields names each setting of an instance that differs (source
// positions ignored, so moving lines changes nothing), with old -> new for
// the plain values. The VIP lists are compared address by address
// elsewhere.
func instanceFields(a, b *config.VRRPInstance) []string {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		switch f.Name {
		case "Pos", "Name", "VIPs", "ExcludedVIPs":
			continue
		}
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if config.SameIgnoringPos(x, y) {
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			name = f.Name
		}
		switch va.Field(i).Kind() {
		case reflect.String, reflect.Int, reflect.Int64, reflect.Bool, reflect.Uint32:
			out = append(out, fmt.Sprintf("%s %s -> %s", name, plainValue(x), plainValue(y)))
		default:
			out = append(out, name+" changed")
		}
	}
	return out
}

func plainValue(v any) string {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case string:
		if x == "" {
			return `""`
		}
	}
	return fmt.Sprint(v)
}

// vipOwner is where a VIP is configured.
type vipOwner struct {
	instance string
	vip      *config.VIP
}

// vipOwners maps each VIP address to the first instance listing it
// (virtual_ipaddress and virtual_ipaddress_excluded alike: both are
// addresses the director adds).
func vipOwners(c *config.Config) map[string]vipOwner {
	m := map[string]vipOwner{}
	for _, i := range c.Instances {
		for _, v := range slices.Concat(i.VIPs, i.ExcludedVIPs) {
			k := v.Prefix.Addr().Unmap().String()
			if _, ok := m[k]; !ok {
				m[k] = vipOwner{i.Name, v}
			}
		}
	}
	return m
}

// planVIPs compares VIPs by address: added, removed, moved to another
// instance, or changed in place (prefix, device, label...).
func planVIPs(cur, next *config.Config) []api.PlanChange {
	co, no := vipOwners(cur), vipOwners(next)
	all := map[string]bool{}
	for k := range co {
		all[k] = true
	}
	for k := range no {
		all[k] = true
	}
	keys := slices.SortedFunc(maps.Keys(all), compareAddr)
	var out []api.PlanChange
	for _, k := range keys {
		c, inCur := co[k]
		n, inNext := no[k]
		switch {
		case !inCur:
			out = append(out, api.PlanChange{Kind: api.PlanVIP, Object: n.vip.Prefix.String(), Change: api.PlanAdded, Detail: n.instance})
		case !inNext:
			out = append(out, api.PlanChange{Kind: api.PlanVIP, Object: c.vip.Prefix.String(), Change: api.PlanRemoved, Detail: c.instance})
		case c.instance != n.instance:
			out = append(out, api.PlanChange{Kind: api.PlanVIP, Object: n.vip.Prefix.String(), Change: api.PlanMoved, Detail: c.instance + " -> " + n.instance})
		case !config.SameIgnoringPos(c.vip, n.vip):
			detail := n.instance + ": "
			if c.vip.Prefix != n.vip.Prefix {
				detail += c.vip.Prefix.String() + " -> " + n.vip.Prefix.String()
			} else {
				detail += "attributes (dev, label, scope...)"
			}
			out = append(out, api.PlanChange{Kind: api.PlanVIP, Object: n.vip.Prefix.String(), Change: api.PlanChanged, Detail: detail})
		}
	}
	return out
}

// compareAddr orders address strings by address (10.0.0.9 before
// 10.0.0.10), falling back to the text.
func compareAddr(a, b string) int {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	if errX == nil && errY == nil {
		return x.Compare(y)
	}
	return strings.Compare(a, b)
}

// planIPVS computes the desired IPVS table of both configurations with
// the same health and mastership, and reports lvs.Diff's operations: the
// very changes the reconciler would make.
func planIPVS(cur, next *config.Config, in planInputs) ([]api.PlanChange, error) {
	inputs := func(c *config.Config) lvs.Inputs {
		li := lvs.Inputs{HealthTable: in.health}
		if in.vrrp {
			li.Master = lvs.MasterOf(c, func(name string) bool { return in.masters[name] })
		}
		return li
	}
	curD, err := lvs.FromConfig(cur, inputs(cur))
	if err != nil {
		return nil, fmt.Errorf("running configuration: %w", err)
	}
	nextD, err := lvs.FromConfig(next, inputs(next))
	if err != nil {
		return nil, err
	}
	var out []api.PlanChange
	for _, op := range lvs.Diff(curD.Table, nextD.Table, func(lvs.ServiceKey) bool { return true }) {
		svc := op.Service.Key.String()
		rs := svc + " -> " + op.Dest.Key().String()
		switch op.Kind {
		case lvs.AddService:
			out = append(out, api.PlanChange{Kind: api.PlanService, Object: svc, Change: api.PlanAdded,
				Detail: fmt.Sprintf("scheduler %s, %d real server(s)", op.Service.Scheduler, len(op.Service.Dests))})
		case lvs.DelService:
			out = append(out, api.PlanChange{Kind: api.PlanService, Object: svc, Change: api.PlanRemoved,
				Detail: fmt.Sprintf("%d real server(s)", len(op.Service.Dests))})
		case lvs.UpdateService:
			out = append(out, api.PlanChange{Kind: api.PlanService, Object: svc, Change: api.PlanChanged, Detail: serviceChange(curD.Table[op.Service.Key], op.Service)})
		case lvs.AddDest:
			out = append(out, api.PlanChange{Kind: api.PlanRealServer, Object: rs, Change: api.PlanAdded,
				Detail: fmt.Sprintf("weight %d, %s", op.Dest.Weight, op.Dest.Method)})
		case lvs.DelDest:
			out = append(out, api.PlanChange{Kind: api.PlanRealServer, Object: rs, Change: api.PlanRemoved,
				Detail: fmt.Sprintf("weight %d", op.Dest.Weight)})
		case lvs.UpdateDest:
			old, _ := curD.Table[op.Service.Key].Dests.Get(op.Dest.Key())
			out = append(out, destChange(rs, old, op.Dest))
		}
	}
	return out, nil
}

// serviceChange says which kernel attributes of a service change.
func serviceChange(a, b *lvs.Service) string {
	var parts []string
	if a.Scheduler != b.Scheduler {
		parts = append(parts, fmt.Sprintf("scheduler %s -> %s", a.Scheduler, b.Scheduler))
	}
	if a.Timeout != b.Timeout {
		parts = append(parts, fmt.Sprintf("persistence %ds -> %ds", a.Timeout, b.Timeout))
	}
	if a.Netmask != b.Netmask {
		parts = append(parts, "persistence netmask")
	}
	if a.Flags != b.Flags {
		parts = append(parts, fmt.Sprintf("flags %#x -> %#x", a.Flags, b.Flags))
	}
	return strings.Join(parts, "; ")
}

// destChange is a changed real server: a new weight alone is a reweight.
func destChange(obj string, a, b lvs.Dest) api.PlanChange {
	var parts []string
	if a.Method != b.Method {
		parts = append(parts, fmt.Sprintf("forward %s -> %s", a.Method, b.Method))
	}
	if a.Upper != b.Upper || a.Lower != b.Lower {
		parts = append(parts, fmt.Sprintf("thresholds %d/%d -> %d/%d", a.Lower, a.Upper, b.Lower, b.Upper))
	}
	weight := fmt.Sprintf("weight %d -> %d", a.Weight, b.Weight)
	if len(parts) == 0 {
		return api.PlanChange{Kind: api.PlanRealServer, Object: obj, Change: api.PlanReweighted, Detail: weight}
	}
	if a.Weight != b.Weight {
		parts = append([]string{weight}, parts...)
	}
	return api.PlanChange{Kind: api.PlanRealServer, Object: obj, Change: api.PlanChanged, Detail: strings.Join(parts, "; ")}
}
