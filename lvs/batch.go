package lvs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// batchWriter sends many IPVS changes in few netlink writes: the kernel
// processes every message of one sendmsg in order, so a chunk of a few
// hundred changes costs one system call and one wake-up instead of one
// round trip each. moby/ipvs has no such path (one request, one reply);
// keepalived has none either, which is where most of its start time goes.
type batchWriter struct {
	fd     int
	family uint16
	seq    uint32
	buf    []byte
	rbuf   []byte
}

// batchChunk bounds the messages per sendmsg so the acks fit the receive
// buffer.
const batchChunk = 256

// recvBufSize is a read's buffer. A read returns one datagram: an ack
// (NETLINK_CAP_ACK: a header each), or a dump's, which the kernel sizes
// to the reader's buffer but at most 32 KB (netlink_dump,
// max_recvmsg_len). A buffer of 1 MB per socket, with a socket per
// parallel dump, held 2.4 MB for the daemon's life.
const recvBufSize = 64 << 10

// IPVS generic netlink numbers (include/uapi/linux/ip_vs.h).
const (
	ipvsGenlVersion = 1

	cmdNewService = 1
	cmdSetService = 2
	cmdDelService = 3
	cmdNewDest    = 5
	cmdSetDest    = 6
	cmdDelDest    = 7

	attrCmdService = 1
	attrCmdDest    = 2

	svcAF      = 1
	svcProto   = 2
	svcAddr    = 3
	svcPort    = 4
	svcFWMark  = 5
	svcSched   = 6
	svcFlags   = 7
	svcTimeout = 8
	svcNetmask = 9

	dstAddr   = 1
	dstPort   = 2
	dstFwd    = 3
	dstWeight = 4
	dstUpper  = 5
	dstLower  = 6
	dstAF     = 11
)

// newBatchWriter opens a generic netlink socket in the namespace at
// nsPath ("" for the current one).
func newBatchWriter(nsPath string) (*batchWriter, error) {
	var fam *netlink.GenlFamily
	fd := -1
	err := func() error {
		if nsPath != "" {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			orig, err := netns.Get()
			if err != nil {
				return err
			}
			defer orig.Close()
			target, err := netns.GetFromPath(nsPath)
			if err != nil {
				return err
			}
			defer target.Close()
			if err := netns.Set(target); err != nil {
				return err
			}
			defer netns.Set(orig)
		}
		var err error
		fam, err = netlink.GenlFamilyGet("IPVS")
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNoIPVS, err)
		}
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
		return err
	}()
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("open IPVS batch socket: %w", err)
	}
	// Acks carry only the header of the request, and the receive buffer
	// holds a whole chunk of them.
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	tv := unix.Timeval{Sec: 30}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind IPVS batch socket: %w", err)
	}
	return &batchWriter{fd: fd, family: fam.ID, rbuf: make([]byte, recvBufSize)}, nil
}

func (w *batchWriter) close() { unix.Close(w.fd) }

// attribute encoding helpers: append to w.buf.
func (w *batchWriter) attr(typ uint16, data []byte) {
	l := 4 + len(data)
	w.buf = binary.NativeEndian.AppendUint16(w.buf, uint16(l))
	w.buf = binary.NativeEndian.AppendUint16(w.buf, typ)
	w.buf = append(w.buf, data...)
	for len(w.buf)%4 != 0 {
		w.buf = append(w.buf, 0)
	}
}

func (w *batchWriter) u16(typ, v uint16) { w.attr(typ, binary.NativeEndian.AppendUint16(nil, v)) }
func (w *batchWriter) u32(typ uint16, v uint32) {
	w.attr(typ, binary.NativeEndian.AppendUint32(nil, v))
}
func (w *batchWriter) be16(typ, v uint16) { w.attr(typ, binary.BigEndian.AppendUint16(nil, v)) }

// nest starts a nested attribute and returns a function that closes it.
func (w *batchWriter) nest(typ uint16) func() {
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0)
	binary.NativeEndian.PutUint16(w.buf[start+2:], typ)
	return func() { binary.NativeEndian.PutUint16(w.buf[start:], uint16(len(w.buf)-start)) }
}

func (w *batchWriter) service(s *Service, full bool) {
	end := w.nest(attrCmdService)
	w.u16(svcAF, s.Key.Family)
	if s.Key.FWMark != 0 {
		w.u32(svcFWMark, s.Key.FWMark)
	} else {
		w.u16(svcProto, s.Key.Proto)
		w.attr(svcAddr, s.Key.Addr.AsSlice())
		w.be16(svcPort, s.Key.Port)
	}
	if full {
		w.attr(svcSched, append([]byte(s.Scheduler), 0))
		f := binary.NativeEndian.AppendUint32(nil, s.Flags&flagsCompared)
		w.attr(svcFlags, binary.NativeEndian.AppendUint32(f, 0xffffffff))
		w.u32(svcTimeout, s.Timeout)
		w.u32(svcNetmask, s.Netmask)
	}
	end()
}

func (w *batchWriter) dest(d Dest, full bool) {
	end := w.nest(attrCmdDest)
	w.attr(dstAddr, d.Addr.AsSlice())
	w.be16(dstPort, d.Port)
	if full {
		af := uint16(AFInet)
		if !d.Addr.Is4() {
			af = AFInet6
		}
		w.u16(dstAF, af)
		w.u32(dstFwd, uint32(d.Method))
		w.u32(dstWeight, uint32(d.Weight))
		w.u32(dstUpper, d.Upper)
		w.u32(dstLower, d.Lower)
	}
	end()
}

// message appends one request for op with sequence number seq.
func (w *batchWriter) message(op Op, seq uint32) {
	start := len(w.buf)
	w.buf = append(w.buf, make([]byte, unix.NLMSG_HDRLEN)...)
	var cmd uint8
	switch op.Kind {
	case AddService:
		cmd = cmdNewService
	case UpdateService:
		cmd = cmdSetService
	case DelService:
		cmd = cmdDelService
	case AddDest:
		cmd = cmdNewDest
	case UpdateDest:
		cmd = cmdSetDest
	case DelDest:
		cmd = cmdDelDest
	}
	w.buf = append(w.buf, cmd, ipvsGenlVersion, 0, 0)
	switch op.Kind {
	case AddService, UpdateService:
		w.service(op.Service, true)
	case DelService:
		w.service(op.Service, false)
	default:
		w.service(op.Service, false)
		w.dest(op.Dest, op.Kind != DelDest)
	}
	h := w.buf[start:]
	binary.NativeEndian.PutUint32(h[0:], uint32(len(w.buf)-start))
	binary.NativeEndian.PutUint16(h[4:], w.family)
	binary.NativeEndian.PutUint16(h[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(h[8:], seq)
}

// write applies ops in order, chunk by chunk, and returns one error slot
// per op (nil: done). A failed op does not stop the others of its chunk:
// the caller must not rely on later ops of a service whose add failed.
func (w *batchWriter) write(ops []Op) ([]error, error) {
	errs := make([]error, len(ops))
	for lo := 0; lo < len(ops); lo += batchChunk {
		hi := min(lo+batchChunk, len(ops))
		w.buf = w.buf[:0]
		first := w.seq + 1
		for i := lo; i < hi; i++ {
			w.seq++
			w.message(ops[i], w.seq)
		}
		if err := unix.Sendto(w.fd, w.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return errs, fmt.Errorf("send %d IPVS changes: %w", hi-lo, err)
		}
		pending := hi - lo
		for pending > 0 {
			n, _, err := unix.Recvfrom(w.fd, w.rbuf, 0)
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return errs, fmt.Errorf("read IPVS acks (%d missing): %w", pending, err)
			}
			msgs, err := syscall.ParseNetlinkMessage(w.rbuf[:n])
			if err != nil {
				return errs, fmt.Errorf("parse IPVS acks: %w", err)
			}
			for _, m := range msgs {
				if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq < first || m.Header.Seq > w.seq || len(m.Data) < 4 {
					continue
				}
				i := lo + int(m.Header.Seq-first)
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					errs[i] = fmt.Errorf("%s: %w", ops[i], syscall.Errno(-code))
				}
				pending--
			}
		}
	}
	return errs, nil
}

// Dump commands and attributes.
const (
	cmdGetService = 4
	cmdGetDest    = 8

	dstActive = 7
	dstInact  = 8
)

// request appends one request message with the given flags.
func (w *batchWriter) request(cmd uint8, flags uint16, seq uint32, body func()) {
	start := len(w.buf)
	w.buf = append(w.buf, make([]byte, unix.NLMSG_HDRLEN)...)
	w.buf = append(w.buf, cmd, ipvsGenlVersion, 0, 0)
	if body != nil {
		body()
	}
	h := w.buf[start:]
	binary.NativeEndian.PutUint32(h[0:], uint32(len(w.buf)-start))
	binary.NativeEndian.PutUint16(h[4:], w.family)
	binary.NativeEndian.PutUint16(h[6:], flags)
	binary.NativeEndian.PutUint32(h[8:], seq)
}

// parseAttrs walks a buffer of netlink attributes.
func parseAttrs(b []byte, f func(typ uint16, v []byte)) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return fmt.Errorf("bad netlink attribute length %d (%d left)", l, len(b))
		}
		f(binary.NativeEndian.Uint16(b[2:])&0x3fff, b[4:l])
		b = b[min((l+3)&^3, len(b)):]
	}
	return nil
}

func attrAddr(v []byte, family uint16) netip.Addr {
	if family == AFInet && len(v) >= 4 {
		return netip.AddrFrom4([4]byte(v[:4]))
	}
	if len(v) >= 16 {
		return netip.AddrFrom16([16]byte(v[:16]))
	}
	return netip.Addr{}
}

func u16(v []byte) uint16 {
	if len(v) < 2 {
		return 0
	}
	return binary.NativeEndian.Uint16(v)
}

func u32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(v)
}

// decodeService reads one GET_SERVICE answer (after the genl header).
func decodeService(b []byte) (*Service, error) {
	var s *Service
	err := parseAttrs(b, func(typ uint16, v []byte) {
		if typ != attrCmdService {
			return
		}
		s = &Service{}
		var addr []byte
		parseAttrs(v, func(t uint16, v []byte) {
			switch t {
			case svcAF:
				s.Key.Family = u16(v)
			case svcProto:
				s.Key.Proto = u16(v)
			case svcAddr:
				addr = v
			case svcPort:
				if len(v) >= 2 {
					s.Key.Port = binary.BigEndian.Uint16(v)
				}
			case svcFWMark:
				s.Key.FWMark = u32(v)
			case svcSched:
				if i := bytes.IndexByte(v, 0); i >= 0 {
					v = v[:i]
				}
				s.Scheduler = string(v)
			case svcFlags:
				s.Flags = u32(v)
			case svcTimeout:
				s.Timeout = u32(v)
			case svcNetmask:
				s.Netmask = u32(v)
			}
		})
		if s.Key.FWMark == 0 {
			s.Key.Addr = attrAddr(addr, s.Key.Family)
		} else {
			s.Key.Proto, s.Key.Port = 0, 0
		}
	})
	if err == nil && s == nil {
		err = errors.New("service answer without a service")
	}
	return s, err
}

// decodeDest reads one GET_DEST answer (after the genl header).
func decodeDest(b []byte, svcFamily uint16) (Dest, error) {
	var d Dest
	found := false
	err := parseAttrs(b, func(typ uint16, v []byte) {
		if typ != attrCmdDest {
			return
		}
		found = true
		var addr []byte
		fam := svcFamily
		parseAttrs(v, func(t uint16, v []byte) {
			switch t {
			case dstAddr:
				addr = v
			case dstPort:
				if len(v) >= 2 {
					d.Port = binary.BigEndian.Uint16(v)
				}
			case dstFwd:
				d.Method = Method(u32(v) & 7)
			case dstWeight:
				d.Weight = int(int32(u32(v)))
			case dstUpper:
				d.Upper = u32(v)
			case dstLower:
				d.Lower = u32(v)
			case dstActive:
				d.ActiveConns = int(u32(v))
			case dstInact:
				d.InactConns = int(u32(v))
			case dstAF:
				fam = u16(v)
			}
		})
		d.Addr = attrAddr(addr, fam)
	})
	if err == nil && !found {
		err = errors.New("destination answer without a destination")
	}
	return d, err
}

// dumpServices reads the service list (without destinations).
func (w *batchWriter) dumpServices() ([]*Service, error) {
	var out []*Service
	w.buf = w.buf[:0]
	w.seq++
	w.request(cmdGetService, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, w.seq, nil)
	if err := w.exchange(w.seq, w.seq, func(_ uint32, data []byte) error {
		s, err := decodeService(data[4:])
		if err == nil {
			out = append(out, s)
		}
		return err
	}, nil); err != nil {
		return nil, fmt.Errorf("dump IPVS services: %w", err)
	}
	return out, nil
}

// dumpDests reads the destinations of s into s.Dests. The kernel runs one
// dump per socket at a time and a dump needs a second read to finish, so
// destination dumps cannot be pipelined: callers spread services over
// several sockets instead. It returns ErrNoService when s is gone.
func (w *batchWriter) dumpDests(s *Service) error {
	w.buf = w.buf[:0]
	w.seq++
	w.request(cmdGetDest, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, w.seq, func() { w.service(s, false) })
	err := w.exchange(w.seq, w.seq, func(_ uint32, data []byte) error {
		d, err := decodeDest(data[4:], s.Key.Family)
		if err == nil {
			s.Dests = append(s.Dests, d)
		}
		return err
	}, nil)
	s.Dests.Sort()
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return ErrNoService
	}
	if err != nil {
		return fmt.Errorf("dump destinations of %s: %w", s.Key, err)
	}
	return nil
}

// exchange sends w.buf and reads the answers to the requests with
// sequence numbers first..last until each has ended (NLMSG_DONE or an
// error). onData gets each answer's payload; onErr each error (nil: fail).
func (w *batchWriter) exchange(first, last uint32, onData func(seq uint32, data []byte) error, onErr func(seq uint32, code syscall.Errno) error) error {
	if err := unix.Sendto(w.fd, w.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	pending := int(last - first + 1)
	for pending > 0 {
		n, _, err := unix.Recvfrom(w.fd, w.rbuf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("receive (%d answers missing): %w", pending, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(w.rbuf[:n])
		if err != nil {
			return fmt.Errorf("parse answer: %w", err)
		}
		for _, m := range msgs {
			seq := m.Header.Seq
			if seq < first || seq > last {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				pending--
			case unix.NLMSG_ERROR:
				pending--
				if len(m.Data) < 4 {
					return errors.New("short netlink error")
				}
				code := int32(binary.NativeEndian.Uint32(m.Data))
				if code == 0 {
					continue
				}
				if onErr == nil {
					return syscall.Errno(-code)
				}
				if err := onErr(seq, syscall.Errno(-code)); err != nil {
					return err
				}
			default:
				if len(m.Data) < 4 {
					return errors.New("short generic netlink answer")
				}
				if err := onData(seq, m.Data); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
