package lab

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// AddrEvent is one change of a watched address in a host, timestamped when
// the kernel's notification was read.
type AddrEvent struct {
	Time  time.Time
	Host  string
	Added bool // false: removed
}

// Watch subscribes to address changes for addr in the given hosts (all
// when none given) and sends them on the returned channel until stop is
// called. Event-driven, so it times a VIP's arrival without polling error.
func (l *Lab) Watch(addr netip.Addr, hosts ...string) (<-chan AddrEvent, func(), error) {
	out := make(chan AddrEvent, 256)
	done := make(chan struct{})
	var hs []*Host
	for _, h := range l.Hosts {
		if len(hosts) == 0 || contains(hosts, h.Name) {
			hs = append(hs, h)
		}
	}
	for _, h := range hs {
		ch := make(chan netlink.AddrUpdate, 64)
		ns := h.handle
		if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
			close(done)
			return nil, nil, fmt.Errorf("lab: watch addresses in %s: %w", h.NS, err)
		}
		go func(name string) {
			for u := range ch {
				ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
				if !ok || ip.Unmap() != addr {
					continue
				}
				select {
				case out <- AddrEvent{Time: time.Now(), Host: name, Added: u.NewAddr}:
				default: // a stuck reader must not block the netlink goroutine
				}
			}
		}(h.Name)
	}
	stopped := false
	return out, func() {
		if !stopped {
			stopped = true
			close(done)
		}
	}, nil
}

// WaitEvent returns the first event on ch for host with the given
// direction, or an error after timeout.
func WaitEvent(ch <-chan AddrEvent, host string, added bool, timeout time.Duration) (AddrEvent, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev := <-ch:
			if ev.Host == host && ev.Added == added {
				return ev, nil
			}
		case <-t.C:
			return AddrEvent{}, fmt.Errorf("lab: no %s event for %s within %s", map[bool]string{true: "add", false: "remove"}[added], host, timeout)
		}
	}
}
