package lvs

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"hakeep/config"
	"hakeep/internal/vmtest"
)

// TestNoIPVSIsAClearError runs where the kernel lacks IPVS (the host):
// moby/ipvs would silently do nothing there.
func TestNoIPVSIsAClearError(t *testing.T) {
	if vmtest.HasIPVS() {
		t.Skip("this kernel has IPVS")
	}
	_, err := NewKernel("", 1)
	if !errors.Is(err, ErrNoIPVS) || !strings.Contains(err.Error(), "kernel has no IPVS (module ip_vs not loaded?)") {
		t.Fatalf("NewKernel on a kernel without IPVS: %v", err)
	}
}

// kernelRec returns a reconciler on a fresh namespace's IPVS.
func kernelRec(t *testing.T, opt Options) (*Reconciler, *Kernel, string) {
	t.Helper()
	ns, path := newNS(t)
	k, err := NewKernel(path, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	opt.Log = quietLog()
	r, err := NewReconciler(k, opt)
	if err != nil {
		t.Fatal(err)
	}
	return r, k, ns
}

// requireKernelEquals checks that ipvsadm -Ln shows exactly want (plus
// the foreign services listed).
func requireKernelEquals(t *testing.T, ns string, want Table, foreign ...ServiceKey) {
	t.Helper()
	got := ipvsadmTable(t, ns)
	for _, k := range foreign {
		if _, ok := got[k]; !ok {
			t.Errorf("foreign service %s is gone", k)
		}
		delete(got, k)
	}
	if ops := Diff(got, want, func(ServiceKey) bool { return true }); len(ops) > 0 {
		t.Fatalf("ipvsadm -Ln differs from the desired table:\n%s\nmissing changes:\n%s", inNS(t, ns, "ipvsadm", "-Ln"), strings.Join(opKinds(ops), "\n"))
	}
}

func TestKernelEverySchedulerMethodAndFamily(t *testing.T) {
	r, k, ns := kernelRec(t, Options{})
	var vss []*config.VirtualServer
	for i, s := range Schedulers {
		v := vsConf("10.0.0.1:"+itoa(1000+i), rs("10.1.0.1:80", 1, false), rs("10.1.0.2:8080", 3, false))
		v.LBAlgo = s
		if s == "sh" {
			v.SchedFlags = []string{"sh-fallback", "sh-port"}
		}
		if s == "mh" {
			v.SchedFlags = []string{"mh-port"}
		}
		vss = append(vss, v)
	}
	dr := vsConf("10.0.0.2:80", rs("10.1.0.1:80", 2, false))
	dr.LBKind = "DR"
	tun := vsConf("10.0.0.3:80", rs("10.1.0.1:80", 2, false), rs("10.1.0.2:80", 1, false))
	tun.LBKind = "TUN"
	tun.RealServers[1].RealServerOptions = &config.RealServerOptions{LVSMethod: "DR"}
	persist := vsConf("10.0.0.4:443", rs("10.1.0.1:443", 1, false))
	persist.PersistenceTimeout = 600e9
	persist.PersistenceGranularity = netip.MustParseAddr("255.255.255.0")
	udp := vsConf("10.0.0.5:53", rs("10.1.0.1:53", 1, false))
	udp.Protocol, udp.OnePacket = "UDP", true
	fwm := &config.VirtualServer{FWMark: 7, Protocol: "TCP", LBAlgo: "wlc", LBKind: "DR", Quorum: 1, PersistenceTimeout: 60e9,
		RealServers: []*config.RealServer{rs("10.1.0.1:0", 1, false)}}
	fwm6 := &config.VirtualServer{FWMark: 8, FWMarkFamily: "inet6", Protocol: "TCP", LBAlgo: "rr", LBKind: "DR", Quorum: 1,
		RealServers: []*config.RealServer{rs("[fd00::10]:0", 1, false)}}
	v6 := vsConf("[fd00::1]:80", rs("[fd00::10]:80", 1, false), rs("[fd00::11]:80", 2, false))
	v6p := vsConf("[fd00::2]:80", rs("[fd00::10]:80", 1, false))
	v6p.PersistenceTimeout = 30e9
	v6p.PersistenceGranularity = netip.MustParseAddr("ffff:ffff:ffff:ffff::")
	grp := &config.VirtualServer{Group: "g", Protocol: "TCP", LBAlgo: "rr", LBKind: "DR", Quorum: 1,
		RealServers: []*config.RealServer{rs("10.1.0.1:80", 1, false)}}
	grp6 := &config.VirtualServer{Group: "g6", Protocol: "TCP", LBAlgo: "wrr", LBKind: "NAT", Quorum: 1,
		RealServers: []*config.RealServer{rs("[fd00::10]:8080", 4, false)}}
	vss = append(vss, dr, tun, persist, udp, fwm, fwm6, v6, v6p, grp, grp6)
	cfg := &config.Config{VirtualServers: vss, VSGroups: []*config.VirtualServerGroup{{Name: "g", Members: []*config.VSGMember{
		{Addr: netip.MustParseAddr("10.0.2.10"), LastAddr: netip.MustParseAddr("10.0.2.14"), Port: 80},
		{FWMark: 9},
	}}, {Name: "g6", Members: []*config.VSGMember{
		{Addr: netip.MustParseAddr("fd00::20"), LastAddr: netip.MustParseAddr("fd00::22"), Port: 80},
	}}}}
	d, err := FromConfig(cfg, Inputs{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Table) != len(Schedulers)+8+5+3+1 {
		t.Fatalf("desired has %d services", len(d.Table))
	}
	if _, err := r.SetDesired(context.Background(), d.Table); err != nil {
		t.Fatal(err)
	}
	requireKernelEquals(t, ns, d.Table)
	// The batched dump reads what moby/ipvs reads.
	fast, err := k.Dump()
	if err != nil {
		t.Fatal(err)
	}
	slow, err := k.dumpMoby()
	if err != nil {
		t.Fatal(err)
	}
	all := func(ServiceKey) bool { return true }
	if len(fast) != len(slow) || len(Diff(fast, slow, all)) > 0 || len(Diff(slow, fast, all)) > 0 {
		t.Fatalf("fast dump differs from moby's: %q", opKinds(Diff(fast, slow, all)))
	}

	// Applying again changes nothing.
	if st, err := r.Resync(context.Background()); err != nil || st.Ops != 0 {
		t.Fatalf("second pass: %+v %v", st, err)
	}
}

func TestKernelReconcileCases(t *testing.T) {
	ctx := context.Background()
	r, _, ns := kernelRec(t, Options{})
	// A service someone else made: never touched.
	inNS(t, ns, "ipvsadm", "-A", "-t", "192.0.2.9:80", "-s", "rr")
	inNS(t, ns, "ipvsadm", "-a", "-t", "192.0.2.9:80", "-r", "10.9.9.9:80", "-m")
	foreign := ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("192.0.2.9"), Port: 80}

	v := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 1, false), rs("10.1.0.2:80", 2, false))
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{v}}
	apply := func(step string) Table {
		t.Helper()
		d, err := FromConfig(cfg, Inputs{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.SetDesired(ctx, d.Table); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		requireKernelEquals(t, ns, d.Table, foreign)
		return d.Table
	}
	apply("initial")
	v.RealServers = append(v.RealServers, rs("10.1.0.3:80", 1, false))
	apply("add a real server")
	v.RealServers = v.RealServers[1:]
	apply("remove a real server")
	v.RealServers[0].Weight = 9
	apply("change a weight")
	v.LBAlgo = "lc"
	want := apply("change the scheduler")

	// Drift: ipvsadm -C (foreign service gone too, it is not ours to restore).
	inNS(t, ns, "ipvsadm", "-C")
	if _, err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	requireKernelEquals(t, ns, want)
	// Drift: a deleted destination and a changed weight.
	inNS(t, ns, "ipvsadm", "-d", "-t", "10.0.0.1:80", "-r", "10.1.0.2:80")
	inNS(t, ns, "ipvsadm", "-e", "-t", "10.0.0.1:80", "-r", "10.1.0.3:80", "-m", "-w", "50")
	if _, err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	requireKernelEquals(t, ns, want)
	// Removed from the configuration: deleted.
	if _, err := r.SetDesired(ctx, Table{}); err != nil {
		t.Fatal(err)
	}
	if len(ipvsadmTable(t, ns)) != 0 {
		t.Fatal("table not empty")
	}
}

type recordingRunner struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingRunner) RunScript(_ context.Context, script, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, script)
}

func TestKernelSorryServerAndQuorum(t *testing.T) {
	ctx := context.Background()
	r, _, ns := kernelRec(t, Options{})
	v := vsConf("10.0.0.1:80", rs("10.1.0.1:80", 2, true), rs("10.1.0.2:80", 2, true))
	quorum31(v) // quorum 3, hysteresis 1: up at >= 4, down below 2
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{v}}
	run := &recordingRunner{}
	p := NewPlanner(run, quietLog())
	h := map[HealthKey]RSHealth{}
	set := func(addr string, up bool) { h[HealthKey{v.Key(), ap(addr)}] = RSHealth{Up: up, Weight: -1} }
	step := func(name string, wantDests []string, wantCalls ...string) {
		t.Helper()
		tab, err := p.Plan(ctx, cfg, Inputs{Health: h})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.SetDesired(ctx, tab); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := ipvsadmTable(t, ns)
		s := got[ServiceKey{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}]
		if s == nil {
			t.Fatalf("%s: service missing", name)
		}
		if g := dests(s); !slices.Equal(g, wantDests) {
			t.Fatalf("%s: kernel has %q, want %q", name, g, wantDests)
		}
		run.mu.Lock()
		calls := run.calls
		run.calls = nil
		run.mu.Unlock()
		if !slices.Equal(calls, wantCalls) {
			t.Fatalf("%s: scripts %q, want %q", name, calls, wantCalls)
		}
	}
	step("both up", []string{"10.1.0.1:80/2/Masq", "10.1.0.2:80/2/Masq"})
	set("10.1.0.1:80", false)
	step("weight 2 keeps quorum (hysteresis)", []string{"10.1.0.2:80/2/Masq"})
	set("10.1.0.2:80", false)
	step("quorum lost: sorry server in", []string{"10.9.0.1:80/1/Masq"}, "/bin/down")
	set("10.1.0.2:80", true)
	step("weight 2 does not regain quorum", []string{"10.9.0.1:80/1/Masq"})
	set("10.1.0.1:80", true)
	step("quorum regained: sorry server out", []string{"10.1.0.1:80/2/Masq", "10.1.0.2:80/2/Masq"}, "/bin/up")
}

func TestKernelFlushOptions(t *testing.T) {
	ctx := context.Background()
	ns, path := newNS(t)
	inNS(t, ns, "ipvsadm", "-A", "-t", "192.0.2.9:80", "-s", "rr")
	k, err := NewKernel(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	r, err := NewReconciler(k, Options{Flush: true, FlushOnStop: true, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if len(ipvsadmTable(t, ns)) != 0 {
		t.Fatal("lvs_flush left the foreign service")
	}
	if _, err := r.SetDesired(ctx, table(svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1)))); err != nil {
		t.Fatal(err)
	}
	inNS(t, ns, "ipvsadm", "-A", "-t", "192.0.2.9:80", "-s", "rr")
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ipvsadmTable(t, ns); len(got) != 1 {
		t.Fatalf("after stop with lvs_flush_on_stop: %v, want only the foreign service", got.Keys())
	}
}

func TestKernelStatus(t *testing.T) {
	r, _, _ := kernelRec(t, Options{})
	want := table(svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1)))
	if _, err := r.SetDesired(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	if len(st.Services) != 1 || !st.Services[0].InKernel || len(st.Services[0].Dests) != 1 || !st.Services[0].Dests[0].InKernel || st.LastError != "" {
		t.Fatalf("status: %+v", st)
	}
}

// TestKernelRunRepairsDriftWithinAPeriod: keepalived #1018 — after
// ipvsadm -C or a deleted destination, Run restores the table by itself.
func TestKernelRunRepairsDriftWithinAPeriod(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	period := 300 * time.Millisecond
	r, _, ns := kernelRec(t, Options{Period: period})
	want := table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1), dst("10.1.0.2", 80, 2)))
	if _, err := r.SetDesired(ctx, want); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, drift := range [][]string{
		{"ipvsadm", "-C"},
		{"ipvsadm", "-d", "-t", "10.0.0.1:80", "-r", "10.1.0.2:80"},
	} {
		inNS(t, ns, drift...)
		deadline := time.Now().Add(20 * period) // generous: TCG is slow
		for len(Diff(ipvsadmTable(t, ns), want, nil)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after %s: not repaired:\n%s", strings.Join(drift, " "), inNS(t, ns, "ipvsadm", "-Ln"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestKernelRestartKeepsTable: a new reconciler (hakeepd restarted without
// lvs_flush_on_stop) adopts the table it finds and changes nothing when
// the configuration is the same; connections and counters stay.
func TestKernelRestartKeepsTable(t *testing.T) {
	ctx := context.Background()
	r, _, ns := kernelRec(t, Options{})
	want := table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1), dst("10.1.0.2", 80, 2)))
	if _, err := r.SetDesired(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	k2, err := NewKernel("/run/netns/"+ns, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	r2, err := NewReconciler(k2, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r2.SetDesired(ctx, want)
	if err != nil || st.Ops != 0 {
		t.Fatalf("restart with the same configuration: %+v %v, want no change", st, err)
	}
	requireKernelEquals(t, ns, want)
}

// opRecorder records the changes a reconciler makes through a client. It
// hides the client's Batch, so every change goes through Do.
type opRecorder struct {
	Client
	mu  sync.Mutex
	ops []string
}

func (o *opRecorder) Do(op Op) error {
	o.mu.Lock()
	o.ops = append(o.ops, op.String())
	o.mu.Unlock()
	return o.Client.Do(op)
}

func (o *opRecorder) Flush() error {
	o.mu.Lock()
	o.ops = append(o.ops, "flush")
	o.mu.Unlock()
	return o.Client.Flush()
}

func (o *opRecorder) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	ops := o.ops
	o.ops = nil
	return ops
}

// synFrom opens a TCP connection attempt from inside the namespace to to
// and leaves it pending: IPVS schedules locally sent packets too, so the
// kernel holds a connection entry for it (SYN_RECV, an inactive
// connection of the chosen destination) as long as the socket retries.
func synFrom(t *testing.T, nsPath string, to netip.AddrPort) {
	t.Helper()
	fd, err := func() (int, error) {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return -1, err
		}
		defer orig.Close()
		h, err := netns.GetFromPath(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			return -1, err
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			return -1, err
		}
		// A socket stays in the namespace it was made in.
		fd, serr := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err := netns.Set(orig); err != nil {
			return -1, err // this thread stays locked, and dies with its goroutine
		}
		runtime.UnlockOSThread()
		return fd, serr
	}()
	if err != nil {
		t.Fatalf("socket in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()})
	if !errors.Is(err, syscall.EINPROGRESS) {
		t.Fatalf("connect to %s: %v, want EINPROGRESS (a SYN sent, no answer yet)", to, err)
	}
}

// conns sums a service's active and inactive connections as ipvsadm
// shows them.
func conns(t *testing.T, ns string, k ServiceKey) int {
	t.Helper()
	s := ipvsadmTable(t, ns)[k]
	if s == nil {
		t.Fatalf("%s missing:\n%s", k, inNS(t, ns, "ipvsadm", "-Ln"))
	}
	n := 0
	for _, d := range s.Dests {
		n += d.ActiveConns + d.InactConns
	}
	return n
}

// TestKernelRestartDeletesWhatItOwnedOnly: hakeepd restarted with a
// virtual_server removed deletes that service (the state file says it
// made it), keeps the services someone else made in the meantime, and
// leaves the others as they are: no change at all, and their connections
// stay. Then, with lvs_flush_on_stop, the record follows the deletion: a
// service someone makes afterwards at the same address is not ours.
func TestKernelRestartDeletesWhatItOwnedOnly(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "hakeepd", StateFileName)
	r1, _, ns := kernelRec(t, Options{StateFile: state})
	nsPath := "/run/netns/" + ns
	a := svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1), dst("10.1.0.2", 80, 2))
	b := svc("10.0.0.2", 80, "rr", dst("10.1.0.1", 80, 1))
	c := svc("10.0.0.3", 80, "rr", dst("10.1.0.3", 80, 1))
	if _, err := r1.SetDesired(ctx, table(a, b, c)); err != nil {
		t.Fatal(err)
	}
	synFrom(t, nsPath, netip.MustParseAddrPort("10.0.0.1:80"))
	if n := conns(t, ns, a.Key); n != 1 {
		t.Fatalf("connections of %s: %d, want 1\n%s", a.Key, n, inNS(t, ns, "ipvsadm", "-Lnc"))
	}
	if err := r1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Made by others while hakeepd is down: with ipvsadm, and through
	// netlink as another daemon would.
	inNS(t, ns, "ipvsadm", "-A", "-t", "192.0.2.9:80", "-s", "rr")
	inNS(t, ns, "ipvsadm", "-a", "-t", "192.0.2.9:80", "-r", "10.9.9.9:80", "-m")
	other := svc("192.0.2.10", 80, "lc", dst("10.9.9.10", 80, 3))
	kOther, err := NewKernel(nsPath, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer kOther.Close()
	for _, op := range appendServiceDiff(nil, nil, other) {
		if err := kOther.Do(op); err != nil {
			t.Fatal(err)
		}
	}
	foreign := []ServiceKey{other.Key, {Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("192.0.2.9"), Port: 80}}

	restart := func(opt Options, want Table) (*Reconciler, []string) {
		t.Helper()
		k, err := NewKernel(nsPath, 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
		rec := &opRecorder{Client: k}
		opt.StateFile, opt.Log = state, quietLog()
		r, err := NewReconciler(rec, opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.SetDesired(ctx, want); err != nil {
			t.Fatal(err)
		}
		return r, rec.take()
	}
	r2, ops := restart(Options{FlushOnStop: true}, table(a, c))
	if want := []string{"delete-service TCP 10.0.0.2:80"}; !slices.Equal(ops, want) {
		t.Fatalf("restart without b: changes %q, want %q", ops, want)
	}
	requireKernelEquals(t, ns, table(a, c), foreign...)
	if n := conns(t, ns, a.Key); n != 1 {
		t.Fatalf("after the restart, connections of %s: %d, want 1 (service re-created?)\n%s", a.Key, n, inNS(t, ns, "ipvsadm", "-Lnc"))
	}
	if got := stateKeys(t, state); !slices.Equal(got, keyStrings(table(a, c))) {
		t.Fatalf("state file: %q", got)
	}

	// lvs_flush_on_stop VS deletes ours and records it; then someone makes
	// a service at a's address: the next run must leave it alone.
	if err := r2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	requireKernelEquals(t, ns, Table{}, foreign...)
	inNS(t, ns, "ipvsadm", "-A", "-t", "10.0.0.1:80", "-s", "rr")
	if owned, err := OwnedInStateFile(state); owned || err != nil {
		t.Fatalf("after lvs_flush_on_stop the state file still owns services (%v, %v): %q", owned, err, stateKeys(t, state))
	}
	_, ops = restart(Options{}, Table{})
	if len(ops) > 0 {
		t.Fatalf("restart with nothing configured: changes %q", ops)
	}
	requireKernelEquals(t, ns, Table{}, append(foreign, a.Key)...)
}
