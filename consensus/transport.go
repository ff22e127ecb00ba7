package consensus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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

// LoadTLS builds a mutual-TLS configuration from PEM files: the node's
// certificate and key, and the CA that signs every director's certificate.
// Peers must present a certificate from that CA, both ways.
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load cluster TLS key pair %s, %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read cluster TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("read cluster TLS CA %s: no PEM certificate found", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// muxListener accepts on the Raft port, sorts connections by their first
// byte, and can be cut to simulate a partition (every connection in or out
// fails while cut).
type muxListener struct {
	ln     net.Listener
	tls    *tls.Config
	log    *slog.Logger
	raftCh chan net.Conn
	rpc    func(net.Conn)
	cut    atomic.Bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed chan struct{}
	once   sync.Once
}

func newMuxListener(addr string, tlsConf *tls.Config, log *slog.Logger) (*muxListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", addr, err)
	}
	m := &muxListener{ln: ln, tls: tlsConf, log: log, raftCh: make(chan net.Conn, 16), conns: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	return m, nil
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
		go m.sort(c)
	}
}

// sort reads the first byte (after the TLS handshake) and routes the conn.
func (m *muxListener) sort(c net.Conn) {
	if m.cut.Load() {
		c.Close()
		return
	}
	if m.tls != nil {
		tc := tls.Server(c, m.tls)
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
		m.rpc(c)
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
	if m.tls != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, m.tls)
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
