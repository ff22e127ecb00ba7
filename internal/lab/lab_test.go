package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
)

// Two real keepalived peers elect the higher priority; kill -9 of the
// master hands the VIP to the other within Master_Down_Interval, and the
// capture shows the RFC's wire gap.
func TestKeepalivedElectionAndCrash(t *testing.T) {
	l := labtest.New(t, 2, lab.Options{Extra: []string{"client"}}, "keepalived", "tcpdump")
	vip := netip.MustParseAddr("10.99.0.100")
	const interval = 0.1
	conf := func(prio int) string {
		return lab.Conf{Version: 3, Instances: []lab.Instance{{
			Name: "VI_1", State: "BACKUP", VRID: 51, Priority: prio, AdvertInt: interval, VIPs: []string{"10.99.0.100/32"},
		}}}.String()
	}
	capt, err := l.StartCapture("election", "")
	if err != nil {
		t.Fatal(err)
	}
	h1, err := l.StartKeepalived("h1", conf(150))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartKeepalived("h2", conf(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitOwner(vip, "h1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.StableOwner(vip, "h1", 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The client's ARP view points at h1.
	if err := l.Ping("client", vip); err != nil {
		t.Fatal(err)
	}
	mac, err := l.Neigh("client", vip)
	if err != nil || l.HostByMAC(mac) == nil || l.HostByMAC(mac).Name != "h1" {
		t.Fatalf("client's ARP entry for %s = %v (%v), want h1's MAC %s", vip, mac, err, l.Host("h1").MAC)
	}

	killed := time.Now()
	h1.Kill()
	took, err := l.WaitAddr("h2", vip, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The VIP stays on the crashed h1 (keepalived leaves it behind): a
	// split brain at the address level that the client resolves by GARP.
	if ok, _ := l.HasAddr("h1", vip); !ok {
		t.Error("kill -9 removed h1's VIP; keepalived leaves it")
	}
	t.Logf("h2 holds the VIP %s after kill -9", took.Round(time.Millisecond))
	if err := l.WaitNeighMAC("client", vip, l.Host("h2").MAC, 3*time.Second); err != nil {
		t.Error(err)
	}

	pk, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	gap, err := pk.WireGap(51, l.Host("h1").Addr4.Addr(), l.Host("h2").Addr4.Addr(), killed)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 5798: Master_Down = 3 x 0.1 + (256-100)/256 x 0.1 = 361 ms after
	// the last advert heard; the kill lands up to one interval after it.
	t.Logf("wire gap %s (RFC: 361 ms)", gap.Round(time.Millisecond))
	if gap < 300*time.Millisecond || gap > 1500*time.Millisecond {
		t.Errorf("wire gap %s outside [300ms, 1.5s]", gap)
	}
	var garps int
	for _, a := range pk.ARPs {
		if a.Gratuitous() && a.SenderIP == vip && a.SenderMAC.String() == l.Host("h2").MAC.String() && a.Time.After(killed) {
			garps++
		}
	}
	if garps == 0 {
		t.Error("no gratuitous ARP from h2 after the takeover")
	}
	for _, a := range pk.From(51, netip.Addr{}) {
		if a.TTL != 255 || a.Version != 3 || a.Interval != 100*time.Millisecond {
			t.Fatalf("unexpected advert %+v", a)
		}
	}
}

func TestLabTopologyAndCleanup(t *testing.T) {
	l := labtest.New(t, 3, lab.Options{Extra: []string{"client"}})
	if len(l.Hosts) != 4 || l.Host("client") == nil || l.Host("client").Index != 4 {
		t.Fatalf("hosts %v", l.Hosts)
	}
	h1 := l.Host("h1")
	if h1.Addr4.String() != "10.99.0.11/24" || h1.MAC.String() != "02:00:00:00:00:0b" || h1.LinkLocal().String() != "fe80::ff:fe00:b" {
		t.Fatalf("h1 = %s %s %s", h1.Addr4, h1.MAC, h1.LinkLocal())
	}
	for _, a := range []netip.Addr{l.Host("h3").Addr4.Addr(), l.Host("h3").Addr6.Addr()} {
		if err := l.Ping("client", a); err != nil {
			t.Errorf("client cannot reach %s: %v", a, err)
		}
	}
	p, err := l.Start("h2", "sleeper", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("restarted process not running")
	}
	ns := l.Host("h2").NS
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Running() || len(lab.PIDsIn(ns)) != 0 {
		t.Fatal("process survived Close")
	}
	if err := lab.RemoveStale(l.Prefix); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveOrphans(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	orphan, err := lab.New(fmt.Sprintf("hkorph%d-", dead.Process.Pid), 1, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Close()
	live, err := lab.New(fmt.Sprintf("hkorph%d-", os.Getpid()), 1, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := lab.RemoveOrphans("hkorph"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + orphan.Prefix + "h1"); !os.IsNotExist(err) {
		t.Errorf("orphaned lab %s still there (%v)", orphan.Prefix, err)
	}
	if _, err := os.Stat("/run/netns/" + live.Prefix + "h1"); err != nil {
		t.Errorf("a running process's lab was removed: %v", err)
	}
}

// Frames still in tcpdump's ring when the capture stops reach the file
// (the CI once lost h2's gratuitous ARPs, which the client had learned,
// this way): tcpdump is paused while h1 sends ARP requests and resumes
// while Packets is stopping it; a SIGINT without Stop's marker wait ends
// it with the ring unread.
func TestCaptureKeepsFramesStillInTheRing(t *testing.T) {
	l := labtest.New(t, 1, lab.Options{}, "tcpdump")
	capt, err := l.StartCapture("ring", "arp")
	if err != nil {
		t.Fatal(err)
	}
	if err := capt.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// h1 resolves n addresses nobody holds: n ARP requests at once.
	const n = 5
	var targets []netip.Addr
	script := ""
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 99, 0, byte(200 + i)})
		targets = append(targets, a)
		script += fmt.Sprintf("ping -n -c 1 -W 1 %s >/dev/null & ", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = l.Exec(ctx, "h1", "sh", "-c", script+"wait")
	// tcpdump resumes while Packets is stopping it.
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = capt.Signal(syscall.SIGCONT)
	}()
	pk, err := capt.Packets()
	if err != nil {
		t.Fatal(err)
	}
	asked := map[netip.Addr]bool{}
	for _, a := range pk.ARPs {
		if a.Op == 1 {
			asked[a.TargetIP] = true
		}
	}
	for _, a := range targets {
		if !asked[a] {
			t.Errorf("no ARP request for %s in the capture (%d ARPs): sent while tcpdump was stopped", a, len(pk.ARPs))
		}
	}
}
