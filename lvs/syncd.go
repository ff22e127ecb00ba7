package lvs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// The kernel's IPVS connection synchronisation daemon (ipvsadm
// --start-daemon, keepalived's lvs_sync_daemon): a master daemon sends the
// connection table to a multicast group, a backup daemon fills its own
// table from it, so established connections survive a failover between
// directors. moby/ipvs has no daemon commands: the messages are built here
// (include/uapi/linux/ip_vs.h; keepalived's libipvs.c ipvs_start_daemon).

// Sync daemon states (IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP).
const (
	SyncMaster uint32 = 1
	SyncBackup uint32 = 2
)

const (
	cmdNewDaemon = 9
	cmdDelDaemon = 10
	cmdGetDaemon = 11

	attrCmdDaemon = 3

	daemonState       = 1
	daemonMcastIfn    = 2
	daemonSyncID      = 3
	daemonSyncMaxLen  = 4
	daemonMcastGroup  = 5
	daemonMcastGroup6 = 6
	daemonMcastPort   = 7
	daemonMcastTTL    = 8
)

// SyncDaemon is one kernel sync daemon. MaxLen, Port, TTL and Group are
// optional (0 / invalid: the kernel's defaults, 224.0.0.81:8848 TTL 1).
type SyncDaemon struct {
	State     uint32
	Interface string
	SyncID    uint32
	MaxLen    uint16
	Port      uint16
	TTL       uint8
	Group     netip.Addr
}

func (d SyncDaemon) String() string {
	st := "backup"
	if d.State == SyncMaster {
		st = "master"
	}
	s := fmt.Sprintf("%s sync daemon on %s syncid %d", st, d.Interface, d.SyncID)
	if d.Group.IsValid() {
		s += " group " + d.Group.String()
	}
	return s
}

// SyncDaemonClient starts, stops and lists sync daemons; Kernel and Memory
// implement it.
type SyncDaemonClient interface {
	StartSyncDaemon(SyncDaemon) error
	StopSyncDaemon(state uint32) error
	SyncDaemons() ([]SyncDaemon, error)
}

// daemon appends the nested IPVS_CMD_ATTR_DAEMON attribute: all of d to
// start one, state and sync id to stop one (as keepalived sends them).
func (w *batchWriter) daemon(d SyncDaemon, start bool) {
	end := w.nest(attrCmdDaemon)
	w.u32(daemonState, d.State)
	if start {
		w.attr(daemonMcastIfn, append([]byte(d.Interface), 0))
	}
	w.u32(daemonSyncID, d.SyncID)
	if start {
		if d.MaxLen != 0 {
			w.u16(daemonSyncMaxLen, d.MaxLen)
		}
		if d.Port != 0 {
			w.u16(daemonMcastPort, d.Port)
		}
		if d.TTL != 0 {
			w.attr(daemonMcastTTL, []byte{d.TTL})
		}
		switch {
		case d.Group.Is4():
			w.attr(daemonMcastGroup, d.Group.AsSlice()) // in_addr: network order
		case d.Group.Is6():
			w.attr(daemonMcastGroup6, d.Group.AsSlice())
		}
	}
	end()
}

// daemonRequest builds the NEW_DAEMON / DEL_DAEMON message in w.buf.
func (w *batchWriter) daemonRequest(cmd uint8, d SyncDaemon) {
	w.buf = w.buf[:0]
	w.seq++
	w.request(cmd, unix.NLM_F_REQUEST|unix.NLM_F_ACK, w.seq, func() { w.daemon(d, cmd == cmdNewDaemon) })
}

func (k *Kernel) daemonCmd(cmd uint8, d SyncDaemon) error {
	w, err := k.reader()
	if err != nil {
		return err
	}
	w.daemonRequest(cmd, d)
	err = w.exchange(w.seq, w.seq, func(uint32, []byte) error { return nil }, nil)
	k.putReader(w, err == nil || errors.As(err, new(syscall.Errno)))
	return err
}

// StartSyncDaemon starts d (IPVS_CMD_NEW_DAEMON). The kernel refuses a
// second daemon of the same state (EEXIST).
func (k *Kernel) StartSyncDaemon(d SyncDaemon) error {
	if d.State != SyncMaster && d.State != SyncBackup {
		return fmt.Errorf("sync daemon state %d: want master or backup", d.State)
	}
	if len(d.Interface) == 0 || len(d.Interface) > 15 {
		return fmt.Errorf("sync daemon interface %q: want 1 to 15 characters", d.Interface)
	}
	if err := k.daemonCmd(cmdNewDaemon, d); err != nil {
		return fmt.Errorf("start %s: %w", d, err)
	}
	return nil
}

// StopSyncDaemon stops the daemon of that state (IPVS_CMD_DEL_DAEMON); it
// is not an error when none runs.
func (k *Kernel) StopSyncDaemon(state uint32) error {
	err := k.daemonCmd(cmdDelDaemon, SyncDaemon{State: state})
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop sync daemon (state %d): %w", state, err)
	}
	return nil
}

// SyncDaemons lists the running daemons (IPVS_CMD_GET_DAEMON), master
// first.
func (k *Kernel) SyncDaemons() ([]SyncDaemon, error) {
	w, err := k.reader()
	if err != nil {
		return nil, err
	}
	var out []SyncDaemon
	w.buf = w.buf[:0]
	w.seq++
	w.request(cmdGetDaemon, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, w.seq, nil)
	err = w.exchange(w.seq, w.seq, func(_ uint32, data []byte) error {
		d, err := decodeDaemon(data[4:])
		if err == nil {
			out = append(out, d)
		}
		return err
	}, nil)
	k.putReader(w, err == nil)
	if err != nil {
		return nil, fmt.Errorf("list sync daemons: %w", err)
	}
	slices.SortFunc(out, func(a, b SyncDaemon) int { return int(a.State) - int(b.State) })
	return out, nil
}

// decodeDaemon reads one GET_DAEMON answer (after the genl header).
func decodeDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	found := false
	err := parseAttrs(b, func(typ uint16, v []byte) {
		if typ != attrCmdDaemon {
			return
		}
		found = true
		parseAttrs(v, func(typ uint16, v []byte) {
			switch typ {
			case daemonState:
				d.State = u32(v)
			case daemonMcastIfn:
				if i := slices.Index(v, 0); i >= 0 {
					v = v[:i]
				}
				d.Interface = string(v)
			case daemonSyncID:
				d.SyncID = u32(v)
			case daemonSyncMaxLen:
				d.MaxLen = u16(v)
			case daemonMcastPort:
				d.Port = u16(v)
			case daemonMcastTTL:
				if len(v) > 0 {
					d.TTL = v[0]
				}
			case daemonMcastGroup:
				if len(v) >= 4 {
					d.Group = netip.AddrFrom4([4]byte(v[:4]))
				}
			case daemonMcastGroup6:
				if len(v) >= 16 {
					d.Group = netip.AddrFrom16([16]byte(v[:16]))
				}
			}
		})
	})
	if err == nil && !found {
		err = errors.New("GET_DAEMON answer without a daemon attribute")
	}
	return d, err
}

// Memory's sync daemons behave as the kernel's: one per state.

// StartSyncDaemon records d; EEXIST when one of its state runs.
func (m *Memory) StartSyncDaemon(d SyncDaemon) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.daemons {
		if x.State == d.State {
			return fmt.Errorf("start %s: %w", d, unix.EEXIST)
		}
	}
	m.daemons = append(m.daemons, d)
	return nil
}

// StopSyncDaemon forgets the daemon of that state.
func (m *Memory) StopSyncDaemon(state uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.daemons = slices.DeleteFunc(m.daemons, func(x SyncDaemon) bool { return x.State == state })
	return nil
}

// SyncDaemons lists them, master first.
func (m *Memory) SyncDaemons() ([]SyncDaemon, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.daemons)
	slices.SortFunc(out, func(a, b SyncDaemon) int { return int(a.State) - int(b.State) })
	return out, nil
}
