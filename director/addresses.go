package director

import (
	"fmt"
	"log/slog"

	"hakeep/config"
	"hakeep/vip"
	"hakeep/vrrp"
)

// addressFactory builds the vrrp manager's address sets: one vip.Set per
// instance, from the instance's configuration carried in spec.Source.
func addressFactory(log *slog.Logger) func(vrrp.InstanceSpec) (vrrp.AddressSet, error) {
	return func(spec vrrp.InstanceSpec) (vrrp.AddressSet, error) {
		inst, ok := spec.Source.(*config.VRRPInstance)
		if !ok {
			return nil, fmt.Errorf("instance %s: no configuration for its addresses", spec.Name)
		}
		vs, err := vip.SpecFromConfig(inst)
		if err != nil {
			return nil, err
		}
		set, err := vip.NewSet(vs, log)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", spec.Name, err)
		}
		return set, nil
	}
}
