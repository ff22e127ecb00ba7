package lvs

import (
	"errors"
	"fmt"
	"sync"
)

// fakeClient is an in-memory kernel table with the kernel's error cases
// (add of an existing entry, change of a missing one) and injectable
// failures.
type fakeClient struct {
	mu     sync.Mutex
	t      Table
	ops    []Op
	failOn func(Op) error // nil: never
	dumps  int
}

func newFake() *fakeClient { return &fakeClient{t: Table{}} }

func (f *fakeClient) Dump() (Table, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dumps++
	return f.t.Clone(), nil
}

func (f *fakeClient) Get(k ServiceKey) (*Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.t[k]
	if !ok {
		return nil, ErrNoService
	}
	return s.clone(), nil
}

var errExists = errors.New("file exists")
var errMissing = errors.New("no such process")

func (f *fakeClient) Do(op Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn != nil {
		if err := f.failOn(op); err != nil {
			return err
		}
	}
	s, have := f.t[op.Service.Key]
	switch op.Kind {
	case AddService:
		if have {
			return fmt.Errorf("%s: %w", op, errExists)
		}
	case UpdateService, DelService:
		if !have {
			return fmt.Errorf("%s: %w", op, errMissing)
		}
	default:
		if !have {
			return fmt.Errorf("%s: %w", op, errMissing)
		}
		dh := s.Dests.Has(op.Dest.Key())
		if op.Kind == AddDest && dh {
			return fmt.Errorf("%s: %w", op, errExists)
		}
		if op.Kind != AddDest && !dh {
			return fmt.Errorf("%s: %w", op, errMissing)
		}
	}
	f.ops = append(f.ops, op)
	applyOp(f.t, op)
	return nil
}

func (f *fakeClient) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = Table{}
	return nil
}

func (f *fakeClient) takeOps() []Op {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.ops
	f.ops = nil
	return o
}
