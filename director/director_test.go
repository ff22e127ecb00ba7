package director

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/lvs"
)

func parseConf(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(text), config.Options{NoInclude: true})
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

const withServer = `virtual_server 10.0.0.100 80 {
 lb_algo rr
 protocol TCP
 real_server 10.0.1.1 80 {
  weight 1
 }
}
`

// runStandalone runs a director with the checks + IPVS side on an
// in-memory IPVS table (VRRP needs network namespaces: the lab and the VM
// tests run it with the kernel).
func runStandalone(t *testing.T, cfg *config.Config, mem *lvs.Memory) *Director {
	t.Helper()
	d, err := New(Options{ConfigID: "t", Checks: true, Log: quietLog(), OpenIPVS: func() (lvs.Client, error) { return mem, nil }}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return d
}

func waitService(t *testing.T, mem *lvs.Memory, addr string, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tab, _ := mem.Dump()
		have := false
		for k := range tab {
			have = have || k.Addr == netip.MustParseAddr(addr)
		}
		if have == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s present=%v, want %v; table %v", addr, have, want, tab)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A SIGHUP that adds the first virtual server programs it, and the
// director keeps answering: the path that wedged the daemon before the
// director owned its state in one loop.
func TestReloadAddsFirstVirtualServer(t *testing.T) {
	mem := lvs.NewMemory()
	d := runStandalone(t, parseConf(t, "global_defs {\n router_id t\n}\n"), mem)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Reload(ctx, parseConf(t, withServer)); err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitService(t, mem, "10.0.0.100", true)
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	if err := d.Alive(actx); err != nil {
		t.Fatalf("director does not answer after the reload: %v", err)
	}
	if r := d.LastReload(); r.Source != "SIGHUP" || r.Err != nil || r.LastSuccess != r.At {
		t.Errorf("last reload = %+v, want a successful SIGHUP", r)
	}
	if vs := d.virtualServers(); len(vs) != 1 || len(vs[0].RealServers) != 1 {
		t.Errorf("API virtual servers = %+v", vs)
	}
	// And removing the last one removes it from the table.
	if err := d.Reload(ctx, parseConf(t, "global_defs {\n router_id t\n}\n")); err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitService(t, mem, "10.0.0.100", false)
}

// A refused reload is visible (status, metrics, systemd) and keeps the
// running configuration and the time of the last success.
func TestRefusedReloadIsRecorded(t *testing.T) {
	mem := lvs.NewMemory()
	cfg := parseConf(t, withServer)
	var seen []ReloadOutcome
	outcomes := make(chan ReloadOutcome, 4)
	d, err := New(Options{ConfigID: "t", Checks: true, Log: quietLog(), OpenIPVS: func() (lvs.Client, error) { return mem, nil },
		OnReload: func(o ReloadOutcome) { outcomes <- o }}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	started := d.LastReload().LastSuccess
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	d.Refused(rctx, "SIGHUP", errors.New("t.conf:3: block opened here is not closed"))
	seen = append(seen, <-outcomes)
	r := d.LastReload()
	if r.Err == nil || r.Source != "SIGHUP" || !r.LastSuccess.Equal(started) {
		t.Errorf("last reload = %+v, want the refusal with the start as last success", r)
	}
	if d.current().cfg != cfg {
		t.Error("a refused reload replaced the running configuration")
	}
	st := d.Status()
	if st.Config.LastReload == nil || st.Config.LastReload.OK || st.Config.LastReload.Error == "" {
		t.Errorf("status last reload = %+v", st.Config.LastReload)
	}
	if len(seen) != 1 || seen[0].Err == nil {
		t.Errorf("OnReload saw %+v", seen)
	}
}

// The watchdog's test fails while the director's loop is stuck, and passes
// again once it is free: systemd restarts a wedged daemon, not a busy one.
func TestAliveSeesAWedgedLoop(t *testing.T) {
	d := runStandalone(t, parseConf(t, withServer), lvs.NewMemory())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Alive(ctx); err != nil {
		t.Fatalf("alive before the wedge: %v", err)
	}
	release := make(chan struct{})
	wedged := make(chan struct{})
	go d.do(ctx, func(*loop) { close(wedged); <-release })
	<-wedged
	short, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	if err := d.Alive(short); err == nil {
		t.Fatal("Alive answered while the director's loop was wedged")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Alive error = %v, want a deadline", err)
	}
	close(release)
	if err := d.Alive(ctx); err != nil {
		t.Fatalf("alive after the wedge: %v", err)
	}
}
