package lvs

import (
	"fmt"
	"slices"
)

// OpKind is one kind of IPVS change.
type OpKind uint8

// The IPVS changes the reconciler makes.
const (
	AddService OpKind = iota + 1
	UpdateService
	DelService
	AddDest
	UpdateDest
	DelDest
)

var opNames = [...]string{"", "add-service", "update-service", "delete-service", "add-dest", "update-dest", "delete-dest"}

// String is a stable name used in logs.
func (k OpKind) String() string {
	if int(k) < len(opNames) && k != 0 {
		return opNames[k]
	}
	return fmt.Sprintf("op(%d)", k)
}

// Op is one change to the kernel table. Service carries the service's
// attributes (for service ops) or at least its key (for dest ops).
type Op struct {
	Kind    OpKind
	Service *Service
	Dest    Dest
}

// String describes the change for logs and test failures.
func (o Op) String() string {
	switch o.Kind {
	case AddService, UpdateService:
		return fmt.Sprintf("%s %s %s flags %#x timeout %d", o.Kind, o.Service.Key, o.Service.Scheduler, o.Service.Flags&flagsCompared, o.Service.Timeout)
	case DelService:
		return fmt.Sprintf("%s %s", o.Kind, o.Service.Key)
	case DelDest:
		return fmt.Sprintf("%s %s -> %s", o.Kind, o.Service.Key, o.Dest.Key())
	}
	return fmt.Sprintf("%s %s -> %s %s weight %d", o.Kind, o.Service.Key, o.Dest.Key(), o.Dest.Method, o.Dest.Weight)
}

// Diff returns the changes that turn current into desired. Services in
// current that desired lacks are deleted only when owned says the
// configuration owns them (nil owned: none are). Within a service, removed
// destinations go first, then changed ones, then new ones; a changed
// weight or method is an update, never a delete and add, so connections
// survive. The result is ordered by service key.
func Diff(current, desired Table, owned func(ServiceKey) bool) []Op {
	return diff(current, desired, owned, nil)
}

// diff is Diff where known(k, s) reports that s is already in current as
// it is (the reconciler's record of what it applied), so it need not be
// compared destination by destination.
func diff(current, desired Table, owned func(ServiceKey) bool, known func(ServiceKey, *Service) bool) []Op {
	var keys []ServiceKey
	for k, s := range desired {
		if known == nil || !known(k, s) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, ServiceKey.compare)
	var ops []Op
	if len(keys) > 0 && len(current) == 0 {
		n := len(keys)
		for _, k := range keys {
			n += len(desired[k].Dests)
		}
		ops = make([]Op, 0, n) // a full apply: size known
	}
	for _, k := range keys {
		ops = appendServiceDiff(ops, current[k], desired[k])
	}
	var gone []ServiceKey
	for k := range current {
		if _, ok := desired[k]; !ok && owned != nil && owned(k) {
			gone = append(gone, k)
		}
	}
	slices.SortFunc(gone, ServiceKey.compare)
	for _, k := range gone {
		ops = append(ops, Op{Kind: DelService, Service: current[k]})
	}
	return ops
}

// appendServiceDiff appends the changes that turn cur (nil: absent) into
// want.
func appendServiceDiff(ops []Op, cur, want *Service) []Op {
	if cur == nil {
		ops = append(ops, Op{Kind: AddService, Service: want})
		for _, d := range want.Dests {
			ops = append(ops, Op{Kind: AddDest, Service: want, Dest: d})
		}
		return ops
	}
	if !cur.sameKernel(want) {
		ops = append(ops, Op{Kind: UpdateService, Service: want})
	} else if sameDests(cur, want) {
		return ops // the common case on a reload: nothing to sort or copy
	}
	for _, d := range cur.Dests {
		if !want.Dests.Has(d.Key()) {
			ops = append(ops, Op{Kind: DelDest, Service: want, Dest: d})
		}
	}
	var adds []Op
	for _, d := range want.Dests {
		c, ok := cur.Dests.Get(d.Key())
		switch {
		case !ok:
			adds = append(adds, Op{Kind: AddDest, Service: want, Dest: d})
		case !c.sameKernel(d):
			ops = append(ops, Op{Kind: UpdateDest, Service: want, Dest: d})
		}
	}
	return append(ops, adds...)
}

// applyOp applies one change to a table (the reconciler's picture of the
// kernel). A frozen service in t (a desired service the picture points
// at) is copied before it is changed.
func applyOp(t Table, op Op) {
	k := op.Service.Key
	switch op.Kind {
	case AddService, UpdateService:
		// The service's fields, not its destinations: those are the
		// picture's, or follow as AddDest ops.
		c := *op.Service
		s := &c
		s.frozen = false
		if old, ok := t[k]; ok {
			s.Dests = old.Dests
			if old.frozen {
				s.Dests = slices.Clone(old.Dests)
			}
		} else {
			// Room for the AddDests that follow: a load of 2,000
			// services x 20 grew each list six times (11.5 MB).
			s.Dests = nil
			if n := len(op.Service.Dests); n > 0 {
				s.Dests = make(Dests, 0, n)
			}
		}
		t[k] = s
	case DelService:
		delete(t, k)
	case AddDest, UpdateDest:
		if s, ok := t[k]; ok {
			if s.frozen {
				s = s.clone()
				t[k] = s
			}
			s.Dests.Set(op.Dest)
		}
	case DelDest:
		if s, ok := t[k]; ok {
			if s.frozen {
				s = s.clone()
				t[k] = s
			}
			s.Dests.Delete(op.Dest.Key())
		}
	}
}

// sameDests reports whether two services hold the same destinations.
func sameDests(a, b *Service) bool {
	if len(a.Dests) != len(b.Dests) {
		return false
	}
	for i, d := range a.Dests { // both sorted by key
		o := b.Dests[i]
		if d.Key() != o.Key() || !d.sameKernel(o) {
			return false
		}
	}
	return true
}
