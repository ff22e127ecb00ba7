package dataplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/lvs"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(text), config.Options{NoInclude: true})
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

const noServers = "global_defs {\n router_id t\n}\n"

const oneServer = `global_defs {
 router_id t
}
vrrp_instance VI_1 {
 interface eth0
 virtual_router_id 51
 priority 100
 virtual_ipaddress {
  10.0.0.100
 }
}
virtual_server 10.0.0.100 80 {
 lb_algo rr
 lb_kind NAT
 protocol TCP
 %s
 real_server 10.0.1.1 80 {
  weight 1
 }
 real_server 10.0.1.2 80 {
  weight 2
 }
}
`

// waitTable polls the in-memory kernel until cond holds.
func waitTable(t *testing.T, mem *lvs.Memory, what string, cond func(lvs.Table) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab, _ := mem.Dump()
		if cond(tab) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; table %v", what, tab)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasService(addr string) func(lvs.Table) bool {
	return func(tab lvs.Table) bool {
		for k, s := range tab {
			if k.Addr == netip.MustParseAddr(addr) && len(s.Dests) == 2 {
				return true
			}
		}
		return false
	}
}

func empty(tab lvs.Table) bool { return len(tab) == 0 }

func start(t *testing.T, cfg *config.Config, mem *lvs.Memory) (*Plane, func()) {
	t.Helper()
	return runPlane(t, New(cfg, Options{Log: quiet(), OpenIPVS: func() (lvs.Client, error) { return mem, nil }}))
}

// The first virtual server arriving by reload opens IPVS and programs it;
// removing the last one removes it (the deadlock this package replaced
// was on exactly this path).
func TestReloadAddsFirstAndRemovesLastVirtualServer(t *testing.T) {
	mem := lvs.NewMemory()
	p, stop := start(t, parse(t, noServers), mem)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Snapshot().IPVS != nil {
		t.Fatal("IPVS opened without a virtual server")
	}
	if err := p.Reload(ctx, parse(t, fmt.Sprintf(oneServer, ""))); err != nil {
		t.Fatalf("reload adding the first virtual server: %v", err)
	}
	waitTable(t, mem, "the first virtual server", hasService("10.0.0.100"))
	if p.Snapshot().IPVS == nil {
		t.Error("snapshot has no reconciler after the first virtual server")
	}
	if err := p.Reload(ctx, parse(t, noServers)); err != nil {
		t.Fatalf("reload removing the last virtual server: %v", err)
	}
	waitTable(t, mem, "an empty table", empty)
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("plane does not answer after the reloads: %v", err)
	}
}

// ha_suspend services are programmed only while their instance is MASTER;
// SetMasters never blocks and only the latest set counts.
func TestHASuspendFollowsMasters(t *testing.T) {
	mem := lvs.NewMemory()
	p, stop := start(t, parse(t, fmt.Sprintf(oneServer, "ha_suspend")), mem)
	defer stop()
	p.SetMasters(map[string]bool{}) // VRRP runs, nothing is MASTER
	waitTable(t, mem, "no service while BACKUP", empty)
	p.SetMasters(map[string]bool{"VI_1": false})
	p.SetMasters(map[string]bool{"VI_1": true})
	waitTable(t, mem, "the service while MASTER", hasService("10.0.0.100"))
	p.SetMasters(map[string]bool{})
	waitTable(t, mem, "no service after leaving MASTER", empty)
}
