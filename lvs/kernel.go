package lvs

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Client is the kernel's IPVS table as the reconciler uses it. The real
// one (Kernel) talks netlink; tests use a fake. Implementations must be
// safe for concurrent use: the reconciler applies independent services in
// parallel.
type Client interface {
	// Dump reads the whole table with destinations and their counters.
	Dump() (Table, error)
	// Get reads one service with its destinations; ErrNoService if absent.
	Get(ServiceKey) (*Service, error)
	// Do applies one change.
	Do(Op) error
	// Flush deletes every service.
	Flush() error
}

// ErrNoIPVS is returned when the kernel has no IPVS generic-netlink family.
var ErrNoIPVS = errors.New("kernel has no IPVS (module ip_vs not loaded?)")

// ErrNoService is returned by Client.Get for a service the kernel lacks.
var ErrNoService = errors.New("no such IPVS service")

// CheckIPVS verifies that the IPVS generic-netlink family exists in the
// current network namespace. moby/ipvs only logs when it does not and then
// silently does nothing, so this runs before any use.
func CheckIPVS() error {
	f, err := netlink.GenlFamilyGet("IPVS")
	if err != nil || f == nil || f.ID == 0 {
		// The family lookup fails with ENOENT when the module is absent.
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("%w: %v", ErrNoIPVS, err)
		}
		return ErrNoIPVS
	}
	return nil
}

// Kernel is the Client for the kernel's IPVS over netlink (moby/ipvs),
// with a pool of netlink sockets so that independent changes run in
// parallel.
type Kernel struct {
	pool chan *ipvs.Handle
	all  []*ipvs.Handle
	once sync.Once

	nsPath  string
	readers chan *batchWriter
	batchMu sync.Mutex
	batch   *batchWriter
}

// NewKernel opens sockets to the IPVS of the network namespace at nsPath
// ("" for the current one). It fails with ErrNoIPVS when that kernel has
// no IPVS.
func NewKernel(nsPath string, sockets int) (*Kernel, error) {
	if sockets < 1 {
		sockets = 1
	}
	if err := checkIPVSIn(nsPath); err != nil {
		return nil, err
	}
	k := &Kernel{pool: make(chan *ipvs.Handle, sockets), nsPath: nsPath, readers: make(chan *batchWriter, sockets)}
	for range sockets {
		h, err := ipvs.New(nsPath)
		if err != nil {
			k.Close()
			return nil, fmt.Errorf("open IPVS netlink socket: %w", err)
		}
		k.all = append(k.all, h)
		k.pool <- h
	}
	return k, nil
}

// checkIPVSIn runs CheckIPVS in the namespace at path.
func checkIPVSIn(path string) error {
	if path == "" {
		return CheckIPVS()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, syscall.NETLINK_GENERIC)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	f, err := h.GenlFamilyGet("IPVS")
	if err != nil || f == nil || f.ID == 0 {
		return fmt.Errorf("%w (namespace %s)", ErrNoIPVS, path)
	}
	return nil
}

// Close releases the sockets.
func (k *Kernel) Close() {
	k.once.Do(func() {
		for _, h := range k.all {
			h.Close()
		}
		for len(k.readers) > 0 {
			(<-k.readers).close()
		}
		k.batchMu.Lock()
		if k.batch != nil {
			k.batch.close()
		}
		k.batchMu.Unlock()
	})
}

func (k *Kernel) with(f func(h *ipvs.Handle) error) error {
	h := <-k.pool
	defer func() { k.pool <- h }()
	return f(h)
}

// toIPVS converts a service to moby's type (key and attributes).
func toIPVS(s *Service) *ipvs.Service {
	m := &ipvs.Service{
		AddressFamily: s.Key.Family,
		FWMark:        s.Key.FWMark,
		SchedName:     s.Scheduler,
		Flags:         s.Flags & flagsCompared,
		Timeout:       s.Timeout,
		Netmask:       s.Netmask,
	}
	if s.Key.FWMark == 0 {
		m.Address = net.IP(s.Key.Addr.AsSlice())
		m.Protocol = s.Key.Proto
		m.Port = s.Key.Port
	}
	return m
}

func keyOnly(k ServiceKey) *ipvs.Service {
	return toIPVS(&Service{Key: k, Netmask: DefaultNetmask(k.Family)})
}

func destToIPVS(d Dest) *ipvs.Destination {
	af := uint16(AFInet)
	if d.Addr.Is6() {
		af = AFInet6
	}
	return &ipvs.Destination{
		Address:         net.IP(d.Addr.AsSlice()),
		Port:            d.Port,
		Weight:          d.Weight,
		ConnectionFlags: uint32(d.Method),
		AddressFamily:   af,
		UpperThreshold:  d.Upper,
		LowerThreshold:  d.Lower,
	}
}

func addrFromIP(ip net.IP, family uint16) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	if family == AFInet {
		return a.Unmap()
	}
	return a
}

func fromIPVS(m *ipvs.Service) *Service {
	s := &Service{
		Key: ServiceKey{
			Family: m.AddressFamily,
			FWMark: m.FWMark,
		},
		Scheduler: m.SchedName,
		Flags:     m.Flags,
		Timeout:   m.Timeout,
		Netmask:   m.Netmask,
	}
	if m.FWMark == 0 {
		s.Key.Proto = m.Protocol
		s.Key.Addr = addrFromIP(m.Address, m.AddressFamily)
		s.Key.Port = m.Port
	}
	return s
}

func destFromIPVS(d *ipvs.Destination) Dest {
	return Dest{
		Addr:        addrFromIP(d.Address, d.AddressFamily),
		Port:        d.Port,
		Weight:      d.Weight,
		Method:      Method(d.ConnectionFlags & ipvs.ConnFwdMask),
		Upper:       d.UpperThreshold,
		Lower:       d.LowerThreshold,
		ActiveConns: d.ActiveConnections,
		InactConns:  d.InactiveConnections,
	}
}

// reader borrows a read socket (own netlink codec, less overhead than
// moby's per request), opening one when none is idle.
func (k *Kernel) reader() (*batchWriter, error) {
	select {
	case w := <-k.readers:
		return w, nil
	default:
		return newBatchWriter(k.nsPath)
	}
}

// putReader returns a healthy read socket to the pool (or closes it).
func (k *Kernel) putReader(w *batchWriter, ok bool) {
	if ok {
		select {
		case k.readers <- w:
			return
		default:
		}
	}
	w.close()
}

// Dump reads the whole table: the service list, then each service's
// destinations, spread over several sockets.
func (k *Kernel) Dump() (Table, error) {
	w, err := k.reader()
	if err != nil {
		return nil, err
	}
	svcs, err := w.dumpServices()
	k.putReader(w, err == nil)
	if err != nil {
		return nil, fmt.Errorf("read IPVS table: %w", err)
	}
	t := make(Table, len(svcs))
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	work := make(chan *Service)
	for range min(cap(k.readers), max(1, len(svcs)/16)) {
		wg.Go(func() {
			w, err := k.reader()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				for range work {
				}
				return
			}
			ok := true
			for s := range work {
				err := w.dumpDests(s)
				mu.Lock()
				switch {
				case err == nil:
					t[s.Key] = s
				case errors.Is(err, ErrNoService): // deleted meanwhile
				default:
					ok = false
					errs = append(errs, err)
				}
				mu.Unlock()
			}
			k.putReader(w, ok)
		})
	}
	for _, s := range svcs {
		work <- s
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("read IPVS table: %w", errors.Join(errs...))
	}
	return t, nil
}

// dumpMoby reads the whole table through moby/ipvs, one request per
// service (kept to cross-check the fast dump in tests).
func (k *Kernel) dumpMoby() (Table, error) {
	var svcs []*ipvs.Service
	if err := k.with(func(h *ipvs.Handle) (err error) {
		svcs, err = h.GetServices()
		return err
	}); err != nil {
		return nil, fmt.Errorf("read IPVS services: %w", err)
	}
	t := make(Table, len(svcs))
	// Destinations: one dump per service, spread over the sockets.
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	work := make(chan *ipvs.Service)
	for range cap(k.pool) {
		wg.Go(func() {
			for m := range work {
				s := fromIPVS(m)
				var ds []*ipvs.Destination
				err := k.with(func(h *ipvs.Handle) (err error) {
					ds, err = h.GetDestinations(m)
					return err
				})
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("read destinations of %s: %w", s.Key, err))
				} else {
					for _, d := range ds {
						s.Dests = append(s.Dests, destFromIPVS(d))
					}
					s.Dests.Sort()
					t[s.Key] = s
				}
				mu.Unlock()
			}
		})
	}
	for _, m := range svcs {
		work <- m
	}
	close(work)
	wg.Wait()
	return t, errors.Join(errs...)
}

// Get reads one service and its destinations.
func (k *Kernel) Get(key ServiceKey) (*Service, error) {
	var s *Service
	err := k.with(func(h *ipvs.Handle) error {
		m, err := h.GetService(keyOnly(key))
		if err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return ErrNoService
			}
			return err
		}
		s = fromIPVS(m)
		ds, err := h.GetDestinations(m)
		if err != nil {
			return err
		}
		for _, d := range ds {
			s.Dests = append(s.Dests, destFromIPVS(d))
		}
		s.Dests.Sort()
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNoService) {
			return nil, err
		}
		return nil, fmt.Errorf("read IPVS service %s: %w", key, err)
	}
	return s, nil
}

// Do applies one change.
func (k *Kernel) Do(op Op) error {
	err := k.with(func(h *ipvs.Handle) error {
		switch op.Kind {
		case AddService:
			return h.NewService(toIPVS(op.Service))
		case UpdateService:
			return h.UpdateService(toIPVS(op.Service))
		case DelService:
			return h.DelService(keyOnly(op.Service.Key))
		case AddDest:
			return h.NewDestination(keyOnly(op.Service.Key), destToIPVS(op.Dest))
		case UpdateDest:
			return h.UpdateDestination(keyOnly(op.Service.Key), destToIPVS(op.Dest))
		case DelDest:
			return h.DelDestination(keyOnly(op.Service.Key), destToIPVS(op.Dest))
		}
		return fmt.Errorf("unknown op kind %d", op.Kind)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Flush deletes every service in the kernel table.
func (k *Kernel) Flush() error {
	if err := k.with(func(h *ipvs.Handle) error { return h.Flush() }); err != nil {
		return fmt.Errorf("flush IPVS table: %w", err)
	}
	return nil
}

// Batch applies many changes in order over one netlink socket, a few
// hundred per write. It returns one error slot per op; err is for the
// socket itself (then the state of the ops without an error is unknown).
func (k *Kernel) Batch(ops []Op) (errs []error, err error) {
	k.batchMu.Lock()
	defer k.batchMu.Unlock()
	if k.batch == nil {
		if k.batch, err = newBatchWriter(k.nsPath); err != nil {
			return nil, err
		}
	}
	errs, err = k.batch.write(ops)
	if err != nil {
		// The socket may hold stale acks now: start over with a new one.
		k.batch.close()
		k.batch = nil
	}
	return errs, err
}
