package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The first byte of every connection to the Raft port says what it carries,
// so Raft and the node-to-node RPC (forwarding to the leader) share one
// port and one TLS setup.
const (
	connRaft byte = 'R'
	connRPC  byte = 'P'
)

// muxListener accepts on the Raft port, sorts connections by their first
// byte, and can be cut to simulate a partition (every connection in or out
// fails while cut).
type muxListener struct {
	ln     net.Listener
	creds  *Credentials // nil: plain TCP (insecure_open_cluster)
	srvTLS *tls.Config
	cliTLS *tls.Config
	log    *slog.Logger
	raftCh chan net.Conn
	rpc    func(net.Conn, peer)
	// allowRaft decides whether a peer may carry Raft traffic to us.
	allowRaft func(peer) error
	cut       atomic.Bool
	// sorting bounds the connections not yet sorted (handshake and first
	// byte pending): strangers opening many cannot make us hold many.
	sorting chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed chan struct{}
	once   sync.Once
}

func newMuxListener(addr string, creds *Credentials, log *slog.Logger) (*muxListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", addr, err)
	}
	m := &muxListener{ln: ln, creds: creds, log: log, raftCh: make(chan net.Conn, 16), conns: map[net.Conn]struct{}{}, closed: make(chan struct{}),
		allowRaft: func(peer) error { return nil }, sorting: make(chan struct{}, maxSorting)}
	if creds != nil {
		m.srvTLS, m.cliTLS = creds.serverConfig(), creds.clientConfig()
	}
	return m, nil
}

// peer is who is at the other end of a connection to the Raft port.
type peer struct {
	addr string
	tls  bool
	// names are the director names its certificate proves (none for an
	// operator's client certificate, or without TLS).
	names   []string
	subject string
}

func (p peer) String() string {
	if !p.tls {
		return "unauthenticated " + p.addr
	}
	if len(p.names) == 0 {
		return fmt.Sprintf("certificate %q (no director) at %s", p.subject, p.addr)
	}
	return fmt.Sprintf("director %s at %s", strings.Join(p.names, "/"), p.addr)
}

func peerOf(c net.Conn) peer {
	p := peer{addr: c.RemoteAddr().String()}
	if tc, ok := c.(*tls.Conn); ok {
		p.tls = true
		if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 {
			p.names = directorNames(cs.PeerCertificates[0])
			p.subject = cs.PeerCertificates[0].Subject.CommonName
		}
	}
	return p
}

func (m *muxListener) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			m.log.Warn("raft port accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case m.sorting <- struct{}{}:
			go m.sort(c, func() { <-m.sorting })
		default:
			m.log.Warn("raft port: too many connections in their handshake; dropping one", "remote", c.RemoteAddr().String(), "limit", maxSorting)
			c.Close()
		}
	}
}

// maxSorting bounds the connections in their handshake at once; a cluster
// of directors needs a handful.
const maxSorting = 128

// sort reads the first byte (after the TLS handshake) and routes the conn;
// it calls sorted once that is done (or has failed), before serving it.
func (m *muxListener) sort(c net.Conn, sorted func()) {
	var once sync.Once
	done := func() { once.Do(sorted) }
	defer done()
	if m.cut.Load() {
		c.Close()
		return
	}
	if m.srvTLS != nil {
		tc := tls.Server(c, m.srvTLS)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			m.log.Warn("cluster TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		_ = tc.SetDeadline(time.Time{})
		c = tc
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	done()
	p := peerOf(c)
	if b[0] == connRaft {
		// Raft itself cannot carry a refusal: the connection is closed,
		// and the reason logged here.
		if err := m.allowRaft(p); err != nil {
			m.log.Warn("refused raft connection", "peer", p.String(), "err", err)
			c.Close()
			return
		}
	}
	c = m.track(c)
	if c == nil {
		return
	}
	switch b[0] {
	case connRaft:
		select {
		case m.raftCh <- c:
		case <-m.closed:
			c.Close()
		}
	case connRPC:
		m.rpc(c, p)
	default:
		m.log.Warn("unknown connection type on raft port", "remote", c.RemoteAddr().String(), "byte", b[0])
		c.Close()
	}
}

// trackedConn removes itself from the listener's set when closed.
type trackedConn struct {
	net.Conn
	m    *muxListener
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.m.mu.Lock()
		delete(t.m.conns, t.Conn)
		t.m.mu.Unlock()
	})
	return t.Conn.Close()
}

func (m *muxListener) track(c net.Conn) net.Conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cut.Load() {
		c.Close()
		return nil
	}
	m.conns[c] = struct{}{}
	return &trackedConn{Conn: c, m: m}
}

// dial opens a connection of the given kind to a peer's Raft port.
func (m *muxListener) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	if m.cut.Load() {
		return nil, fmt.Errorf("dial %s: %w", addr, errPartitioned)
	}
	d := &net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if m.cliTLS != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, m.cliTLS)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c = m.track(c)
	if c == nil {
		return nil, fmt.Errorf("dial %s: %w", addr, errPartitioned)
	}
	return c, nil
}

var errPartitioned = errors.New("node is partitioned (transport cut)")

// setCut cuts (true) or restores (false) every connection of this node.
func (m *muxListener) setCut(cut bool) {
	m.mu.Lock()
	m.cut.Store(cut)
	var open []net.Conn
	if cut {
		for c := range m.conns {
			open = append(open, c)
		}
	}
	m.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

func (m *muxListener) close() error {
	var err error
	m.once.Do(func() {
		close(m.closed)
		err = m.ln.Close()
		m.setCut(true)
	})
	return err
}

// streamLayer is the raft.StreamLayer over the mux.
type streamLayer struct {
	m         *muxListener
	advertise net.Addr
}

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftCh:
		return c, nil
	case <-s.m.closed:
		return nil, net.ErrClosed
	}
}

func (s *streamLayer) Close() error { return s.m.close() }

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.m.dial(string(address), connRaft, timeout)
}
