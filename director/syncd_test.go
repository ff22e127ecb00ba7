package director

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"hakeep/config"
	"hakeep/lvs"
	"hakeep/vrrp"
)

// TestSyncDaemonFollowsInstance: the kernel's sync daemon is the backup
// one until the named instance is MASTER, the master one while it is, and
// follows configuration changes; it is stopped when the director stops.
func TestSyncDaemonFollowsInstance(t *testing.T) {
	mem := lvs.NewMemory()
	var (
		conf    atomic.Pointer[config.LVSSyncDaemon]
		changed configSignal
	)
	// A reload: the new configuration, then the signal (as the loop does).
	reload := func(c *config.LVSSyncDaemon) { conf.Store(c); changed.fire() }
	sd := newSyncDaemon(quietLog(), conf.Load, changed.wait, func() (lvs.SyncDaemonClient, func(), error) { return mem, nil, nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sd.run(ctx) }()

	c := &config.LVSSyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 51, Port: 8850, TTL: 2, Group: netip.MustParseAddr("224.0.0.82")}
	daemon := func(state uint32, id uint32) lvs.SyncDaemon {
		return lvs.SyncDaemon{State: state, Interface: "eth1", SyncID: id, Port: 8850, TTL: 2, Group: netip.MustParseAddr("224.0.0.82")}
	}
	st := func(state string) []vrrp.InstanceStatus {
		return []vrrp.InstanceStatus{{Name: "VI_2", State: "MASTER"}, {Name: "VI_1", State: state}}
	}
	steps := []struct {
		name string
		do   func()
		want []lvs.SyncDaemon
	}{
		{"no keyword: none", func() {}, nil},
		{"configured, VRRP not yet running: backup", func() { reload(c) }, []lvs.SyncDaemon{daemon(lvs.SyncBackup, 51)}},
		{"BACKUP: backup", func() { sd.set(st("BACKUP")) }, []lvs.SyncDaemon{daemon(lvs.SyncBackup, 51)}},
		{"MASTER: master only", func() { sd.set(st("MASTER")) }, []lvs.SyncDaemon{daemon(lvs.SyncMaster, 51)}},
		{"FAULT: backup only", func() { sd.set(st("FAULT")) }, []lvs.SyncDaemon{daemon(lvs.SyncBackup, 51)}},
		{"FENCED: backup", func() { sd.set(st("FENCED")) }, []lvs.SyncDaemon{daemon(lvs.SyncBackup, 51)}},
		{"MASTER again", func() { sd.set(st("MASTER")) }, []lvs.SyncDaemon{daemon(lvs.SyncMaster, 51)}},
		{"reload changes the id: restarted", func() {
			c2 := *c
			c2.SyncID = 9
			reload(&c2)
		}, []lvs.SyncDaemon{daemon(lvs.SyncMaster, 9)}},
		{"reload removes the keyword: stopped", func() { reload(nil) }, nil},
		{"added back while MASTER: master", func() { reload(c) }, []lvs.SyncDaemon{daemon(lvs.SyncMaster, 51)}},
	}
	for _, s := range steps {
		s.do()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, _ := mem.SyncDaemons()
			if len(got) == 0 && len(s.want) == 0 || reflect.DeepEqual(got, s.want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: daemons %+v, want %+v", s.name, got, s.want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	cancel()
	<-done
	if got, _ := mem.SyncDaemons(); len(got) != 0 {
		t.Fatalf("after stop: %+v", got)
	}
}

// TestSyncDaemonTakesOverLeftover: a daemon left running by an earlier
// run (killed daemon) is replaced with this configuration's.
func TestSyncDaemonTakesOverLeftover(t *testing.T) {
	mem := lvs.NewMemory()
	mem.StartSyncDaemon(lvs.SyncDaemon{State: lvs.SyncBackup, Interface: "old0", SyncID: 3})
	c := &config.LVSSyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 51}
	sd := newSyncDaemon(quietLog(), func() *config.LVSSyncDaemon { return c }, new(configSignal).wait, func() (lvs.SyncDaemonClient, func(), error) { return mem, nil, nil })
	sd.apply()
	want := []lvs.SyncDaemon{{State: lvs.SyncBackup, Interface: "eth1", SyncID: 51}}
	if got, _ := mem.SyncDaemons(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v, want %+v", got, want)
	}
}

// TestSyncDaemonRetriesFailedStart: with nothing else happening (no VRRP
// status, no reload), a start that failed is tried again by itself.
func TestSyncDaemonRetriesFailedStart(t *testing.T) {
	mem := lvs.NewMemory()
	var opens atomic.Int32
	open := func() (lvs.SyncDaemonClient, func(), error) {
		if opens.Add(1) == 1 {
			return nil, nil, errors.New("IPVS module not loaded yet")
		}
		return mem, nil, nil
	}
	c := &config.LVSSyncDaemon{Interface: "eth1", Instance: "VI_1", SyncID: 51}
	sd := newSyncDaemon(quietLog(), func() *config.LVSSyncDaemon { return c }, new(configSignal).wait, open)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sd.run(ctx) }()
	defer func() { cancel(); <-done }()
	want := []lvs.SyncDaemon{{State: lvs.SyncBackup, Interface: "eth1", SyncID: 51}}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, _ := mem.SyncDaemons(); reflect.DeepEqual(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not started after a failed open (%d opens)", opens.Load())
		}
	}
}
