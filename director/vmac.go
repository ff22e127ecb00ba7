package director

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netns"

	"hakeep/config"
	"hakeep/vip"
	"hakeep/vrrp"
)

// prepareVMACs creates the macvlan of every use_vmac instance (MAC
// 00-00-5E-00-01-VRID) and points the instance at it: keepalived sends the
// adverts from the VMAC (unless vmac_xmit_base) and puts the VIPs on it.
func prepareVMACs(cfg *config.Config, set *vrrp.Set) error {
	for _, spec := range set.Instances {
		inst, ok := spec.Source.(*config.VRRPInstance)
		if !ok || !inst.UseVMAC {
			continue
		}
		name := inst.VMACName
		if name == "" {
			name = fmt.Sprintf("vrrp.%d", inst.VRID)
		}
		ifname, err := vip.EnsureVMAC(netns.None(), inst.Interface, name, spec.VRID, spec.IPv6)
		if err != nil {
			return fmt.Errorf("%s: vrrp_instance %s: use_vmac: %w", inst.Pos, inst.Name, err)
		}
		// Adverts leave from the VMAC (keepalived's default) or, with
		// vmac_xmit_base, from the base interface; the VIPs live on the VMAC
		// either way (vip.SpecFromConfig).
		if !inst.VMACXmitBase {
			spec.Interface = ifname
		}
	}
	return nil
}

// removeStaleVIPs deletes VIPs a crashed previous run left on the
// instances' interfaces, as keepalived does at start: a VIP must only be
// present while this director is MASTER.
func removeStaleVIPs(ctx context.Context, cfg *config.Config, log *slog.Logger) {
	ifaces := map[string]bool{}
	var addrs []netip.Addr
	for _, i := range cfg.Instances {
		ifaces[i.Interface] = true
		for _, v := range append(append([]*config.VIP{}, i.VIPs...), i.ExcludedVIPs...) {
			if v.Dev != "" {
				ifaces[v.Dev] = true
			}
			addrs = append(addrs, v.Prefix.Addr())
		}
	}
	if len(addrs) == 0 {
		return
	}
	k, closeK, err := vip.NewKernel(netns.None())
	if err != nil {
		log.Warn("cannot check for stale VIPs", "err", err)
		return
	}
	defer closeK()
	names := make([]string, 0, len(ifaces))
	for n := range ifaces {
		names = append(names, n)
	}
	removed, err := vip.RemoveStale(ctx, k, names, addrs, log)
	if err != nil {
		log.Warn("removing stale VIPs", "err", err)
	}
	for _, p := range removed {
		log.Info("removed stale VIP left by a previous run", "vip", p.String())
	}
}
