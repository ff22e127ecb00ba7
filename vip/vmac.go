package vip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// VMACAddr returns the RFC 5798 virtual router MAC: 00:00:5e:00:01:VRID
// for IPv4, 00:00:5e:00:02:VRID for IPv6.
func VMACAddr(vrid uint8, ipv6 bool) net.HardwareAddr {
	if ipv6 {
		return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, vrid}
	}
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
}

// EnsureVMAC creates (or reuses) the macvlan name on parent with the
// virtual router MAC, in private mode as keepalived does, and brings it up.
// For IPv4 it sets keepalived's sysctls: arp_ignore=1 and arp_filter=1 on
// the parent (so the parent does not answer ARP for the VIPs), and on the
// VMAC arp_ignore=1, accept_local=1, rp_filter=0. ns is the namespace
// (netns.None() for the caller's). It returns the interface name.
func EnsureVMAC(ns netns.NsHandle, parent, name string, vrid uint8, ipv6 bool) (string, error) {
	if name == "" {
		name = fmt.Sprintf("vrrp.%d", vrid)
	}
	if len(name) > 15 {
		return "", fmt.Errorf("create VMAC %s: name longer than 15 characters", name)
	}
	h, err := handleAt(ns)
	if err != nil {
		return "", fmt.Errorf("create VMAC %s: %w", name, err)
	}
	defer h.Close()
	p, err := h.LinkByName(parent)
	if err != nil {
		return "", fmt.Errorf("create VMAC %s: find parent %s: %w", name, parent, err)
	}
	mac := VMACAddr(vrid, ipv6)
	l, err := h.LinkByName(name)
	switch {
	case err == nil:
		mv, ok := l.(*netlink.Macvlan)
		if !ok || mv.Attrs().ParentIndex != p.Attrs().Index {
			return "", fmt.Errorf("create VMAC %s: an interface of that name exists and is not a macvlan on %s", name, parent)
		}
		if mv.Attrs().HardwareAddr.String() != mac.String() {
			if err := h.LinkSetHardwareAddr(l, mac); err != nil {
				return "", fmt.Errorf("create VMAC %s: set MAC %s: %w", name, mac, err)
			}
		}
	default:
		mv := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index, HardwareAddr: mac},
			Mode:      netlink.MACVLAN_MODE_PRIVATE,
		}
		if err := h.LinkAdd(mv); err != nil {
			return "", fmt.Errorf("create VMAC %s on %s: %w", name, parent, err)
		}
		if l, err = h.LinkByName(name); err != nil {
			return "", fmt.Errorf("create VMAC %s: read back: %w", name, err)
		}
	}
	if !ipv6 {
		err := InNetns(ns, func() error {
			return errors.Join(
				sysctl("net/ipv4/conf/"+parent+"/arp_ignore", "1"),
				sysctl("net/ipv4/conf/"+parent+"/arp_filter", "1"),
				sysctl("net/ipv4/conf/"+name+"/arp_ignore", "1"),
				sysctl("net/ipv4/conf/"+name+"/accept_local", "1"),
				sysctl("net/ipv4/conf/"+name+"/rp_filter", "0"),
			)
		})
		if err != nil {
			return "", fmt.Errorf("create VMAC %s: %w", name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return "", fmt.Errorf("create VMAC %s: set up: %w", name, err)
	}
	return name, nil
}

// DeleteVMAC deletes the macvlan name; an absent one is not an error.
func DeleteVMAC(ns netns.NsHandle, name string) error {
	h, err := handleAt(ns)
	if err != nil {
		return fmt.Errorf("delete VMAC %s: %w", name, err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("delete VMAC %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Macvlan); !ok {
		return fmt.Errorf("delete VMAC %s: not a macvlan", name)
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("delete VMAC %s: %w", name, err)
	}
	return nil
}

func handleAt(ns netns.NsHandle) (*netlink.Handle, error) {
	if ns > 0 {
		return netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	}
	return netlink.NewHandle(unix.NETLINK_ROUTE)
}

// sysctl writes /proc/sys/KEY; the net tree is the calling thread's namespace's.
func sysctl(key, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
