package lvs

import (
	"fmt"
	"sync"
)

// Memory is an in-memory IPVS table behind the Client interface, with the
// kernel's refusals (adding what exists, changing what does not). It lets
// the layers above the reconciler (the data plane, the director) run whole
// without a kernel in unit tests; kernel tests run the same paths in the VM.
type Memory struct {
	mu       sync.Mutex
	t        Table
	ops      int
	timeouts Timeouts // zero: the kernel's defaults (timeouts.go)
	daemons  []SyncDaemon
}

// NewMemory returns an empty in-memory table.
func NewMemory() *Memory { return &Memory{t: Table{}} }

// Dump returns a copy of the table.
func (m *Memory) Dump() (Table, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t.Clone(), nil
}

// Get returns a copy of one service, or ErrNoService.
func (m *Memory) Get(k ServiceKey) (*Service, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.t[k]; !ok {
		return nil, ErrNoService
	}
	return Table{k: m.t[k]}.Clone()[k], nil
}

// Do applies one change, refusing it as the kernel would.
func (m *Memory) Do(op Op) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, have := m.t[op.Service.Key]
	switch op.Kind {
	case AddService:
		if have {
			return fmt.Errorf("%s: service exists", op)
		}
	case UpdateService, DelService:
		if !have {
			return fmt.Errorf("%s: %w", op, ErrNoService)
		}
	default:
		if !have {
			return fmt.Errorf("%s: %w", op, ErrNoService)
		}
		dh := s.Dests.Has(op.Dest.Key())
		if op.Kind == AddDest && dh {
			return fmt.Errorf("%s: destination exists", op)
		}
		if op.Kind != AddDest && !dh {
			return fmt.Errorf("%s: no such destination", op)
		}
	}
	m.ops++
	applyOp(m.t, op)
	return nil
}

// Flush deletes every service.
func (m *Memory) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t = Table{}
	return nil
}

// Ops counts the changes applied so far.
func (m *Memory) Ops() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}
