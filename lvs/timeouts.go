package lvs

import (
	"fmt"
	"time"

	"github.com/moby/ipvs"
)

// Timeouts are IPVS's connection timeouts (ipvsadm --set TCP TCPFIN UDP,
// keepalived's lvs_timeouts). A zero field leaves the kernel's value as
// it is (the kernel ignores 0 in IPVS_CMD_SET_CONFIG).
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// TimeoutClient sets and reads the timeouts; Kernel and Memory implement
// it.
type TimeoutClient interface {
	SetTimeouts(Timeouts) error
	Timeouts() (Timeouts, error)
}

// maxTimeout is the kernel's bound (INT_MAX / HZ seconds, HZ <= 1000):
// keepalived's LVS_MAX_TIMEOUT is lower still (31 days).
const maxTimeout = 31 * 24 * time.Hour

func (t Timeouts) check() error {
	for _, d := range []time.Duration{t.TCP, t.TCPFin, t.UDP} {
		if d < 0 || d > maxTimeout || d%time.Second != 0 {
			return fmt.Errorf("IPVS timeout %v: want whole seconds in [0, %v]", d, maxTimeout)
		}
	}
	return nil
}

// SetTimeouts sends IPVS_CMD_SET_CONFIG.
func (k *Kernel) SetTimeouts(t Timeouts) error {
	if err := t.check(); err != nil {
		return err
	}
	return k.with(func(h *ipvs.Handle) error {
		if err := h.SetConfig(&ipvs.Config{TimeoutTCP: t.TCP, TimeoutTCPFin: t.TCPFin, TimeoutUDP: t.UDP}); err != nil {
			return fmt.Errorf("set IPVS timeouts: %w", err)
		}
		return nil
	})
}

// Timeouts reads them (IPVS_CMD_GET_CONFIG).
func (k *Kernel) Timeouts() (Timeouts, error) {
	var t Timeouts
	err := k.with(func(h *ipvs.Handle) error {
		c, err := h.GetConfig()
		if err != nil {
			return fmt.Errorf("get IPVS timeouts: %w", err)
		}
		t = Timeouts{TCP: c.TimeoutTCP, TCPFin: c.TimeoutTCPFin, UDP: c.TimeoutUDP}
		return nil
	})
	return t, err
}

// memoryDefaultTimeouts are the kernel's defaults (ipvsadm -L --timeout
// on a fresh kernel: 900 120 300).
var memoryDefaultTimeouts = Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second}

// SetTimeouts sets the in-memory timeouts as the kernel would (0: kept).
func (m *Memory) SetTimeouts(t Timeouts) error {
	if err := t.check(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timeouts == (Timeouts{}) {
		m.timeouts = memoryDefaultTimeouts
	}
	if t.TCP != 0 {
		m.timeouts.TCP = t.TCP
	}
	if t.TCPFin != 0 {
		m.timeouts.TCPFin = t.TCPFin
	}
	if t.UDP != 0 {
		m.timeouts.UDP = t.UDP
	}
	return nil
}

// Timeouts reads the in-memory timeouts.
func (m *Memory) Timeouts() (Timeouts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timeouts == (Timeouts{}) {
		return memoryDefaultTimeouts, nil
	}
	return m.timeouts, nil
}
