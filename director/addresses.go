package director

import (
	"fmt"
	"log/slog"

	"hakeep/config"
	"hakeep/fence"
	"hakeep/vip"
	"hakeep/vrrp"
)

// addressFactory builds the vrrp manager's address sets: one vip.Set per
// instance, from the instance's configuration carried in spec.Source.
// With a fence (cfg has a cluster block), a fenced instance's VIPs get a
// kernel lifetime and are written only through the fence's guard, which
// refreshes that lifetime on each committed renewal.
func addressFactory(log *slog.Logger, f *fence.Fence, cfg func() *config.Config) func(vrrp.InstanceSpec) (vrrp.AddressSet, error) {
	return func(spec vrrp.InstanceSpec) (vrrp.AddressSet, error) {
		inst, ok := spec.Source.(*config.VRRPInstance)
		if !ok {
			return nil, fmt.Errorf("instance %s: no configuration for its addresses", spec.Name)
		}
		vs, err := vip.SpecFromConfig(inst)
		if err != nil {
			return nil, err
		}
		fenced := f != nil && inst.Fenced(cfg())
		if fenced {
			vs.Lifetime = f.Params().KernelLifetime()
		}
		set, err := vip.NewSet(vs, log)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", spec.Name, err)
		}
		if fenced {
			k := fence.Key{VRID: spec.VRID, Interface: spec.Interface, IPv6: spec.IPv6}
			return f.Guard(k, int(spec.Priority), set), nil
		}
		return set, nil
	}
}
