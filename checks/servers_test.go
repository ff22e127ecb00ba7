package checks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Helpers that start real servers from Debian packages for the tests.

func needBinary(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Skipf("%s not installed (see deploy/test-deps.txt)", name)
	return ""
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// freePort returns a currently unused loopback port for network.
func freePort(t *testing.T, network string) uint16 {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// waitTCP polls until addr accepts connections.
func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never accepted connections", addr)
}

// proc is a started server process, killed at cleanup.
type proc struct {
	cmd *exec.Cmd
	log string
}

func startProc(t *testing.T, logPath string, name string, args ...string) *proc {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	lf.Close()
	p := &proc{cmd: cmd, log: logPath}
	t.Cleanup(p.stop)
	return p
}

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// selfSigned writes a self-signed certificate and key for name.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// nginxServer is a private nginx with an HTTP and an HTTPS port.
type nginxServer struct {
	dir       string // document root
	http, tls netip.AddrPort
	proc      *proc
	prefix    string
	conf      string
	binary    string
	t         *testing.T
}

// startNginx serves dir's files plus /down (503) and /slow (never ends
// before 30 s) on loopback.
func startNginx(t *testing.T) *nginxServer {
	t.Helper()
	bin := needBinary(t, "nginx")
	prefix := t.TempDir()
	docroot := filepath.Join(prefix, "html")
	os.MkdirAll(docroot, 0o755)
	os.MkdirAll(filepath.Join(prefix, "tmp"), 0o777)
	cert, key := selfSigned(t, prefix, "www.example.test")
	n := &nginxServer{
		dir: docroot, prefix: prefix, binary: bin, t: t,
		http: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t, "tcp")),
		tls:  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t, "tcp")),
	}
	n.conf = filepath.Join(prefix, "nginx.conf")
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  default_type text/html;
  server {
    listen %[2]s;
    listen %[3]s ssl;
    server_name www.example.test;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    root %[6]s;
    location = /down { return 503; }
    ssl_verify_client optional_no_ca;
    location = /vhost { return 200 "host=$host sni=$ssl_server_name\n"; }
    location = /clientcert { return 200 "dn=$ssl_client_s_dn\n"; }
  }
}
`, prefix, n.http, n.tls, cert, key, docroot)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.start()
	return n
}

func (n *nginxServer) start() {
	n.t.Helper()
	n.proc = startProc(n.t, filepath.Join(n.prefix, "nginx.out"), n.binary, "-p", n.prefix, "-c", n.conf)
	waitTCP(n.t, n.http.String())
	waitTCP(n.t, n.tls.String())
}

func (n *nginxServer) stop() { n.proc.stop() }

func (n *nginxServer) write(name, content string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.dir, name), []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// realWorld runs a Manager with the real probers and the wall clock.
type realWorld struct {
	t     *testing.T
	m     *Manager
	trans []Transition
}

func newRealWorld(t *testing.T, specs []Spec, opts Options) *realWorld {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w := &realWorld{t: t, m: New(opts)}
	if err := w.m.Start(specs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.m.Stop)
	return w
}

func (w *realWorld) checker(vs, rs string) CheckerState {
	for _, s := range w.m.State() {
		if s.VirtualServer == vs && s.RealServer == rs && len(s.Checkers) > 0 {
			return s.Checkers[0]
		}
	}
	w.t.Fatalf("no real server %s %s", vs, rs)
	return CheckerState{}
}

// waitRuns polls until the checker has completed at least n more probes.
func (w *realWorld) waitRuns(vs, rs string, more uint64) {
	w.t.Helper()
	start := w.checker(vs, rs).Runs
	deadline := time.Now().Add(20 * time.Second)
	for w.checker(vs, rs).Runs < start+more {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s %s: no %d more runs: %+v", vs, rs, more, w.checker(vs, rs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expect waits for one transition and checks it.
func (w *realWorld) expect(vs, rs string, up bool, reason string) Transition {
	w.t.Helper()
	select {
	case tr := <-w.m.Transitions():
		w.trans = append(w.trans, tr)
		if tr.VirtualServer != vs || tr.RealServer.String() != rs || tr.Up != up || !strings.Contains(tr.Reason, reason) {
			w.t.Fatalf("transition %+v, want %s %s up=%v reason~%q", tr, vs, rs, up, reason)
		}
		return tr
	case <-time.After(20 * time.Second):
		w.t.Fatalf("no transition for %s %s up=%v; state %+v", vs, rs, up, w.m.State())
	}
	return Transition{}
}

// drain discards the transitions so far, including those still queued
// inside the manager or on their way to the channel: it returns once
// both have been empty at three looks 20 ms apart.
func (w *realWorld) drain() {
	for empty := 0; empty < 3; {
		select {
		case <-w.m.Transitions():
			empty = 0
			continue
		default:
		}
		w.m.mu.Lock()
		queued := len(w.m.tq)
		w.m.mu.Unlock()
		if queued == 0 {
			empty++
		} else {
			empty = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quiet lets the checker run `runs` more times and asserts that no
// transition appeared meanwhile (each transition counted exactly once).
func (w *realWorld) quiet(vs, rs string, runs uint64) {
	w.t.Helper()
	w.waitRuns(vs, rs, runs)
	w.m.mu.Lock()
	n := len(w.m.tq)
	w.m.mu.Unlock()
	select {
	case tr := <-w.m.Transitions():
		w.t.Fatalf("unexpected transition %+v", tr)
	default:
	}
	if n > 0 {
		w.t.Fatalf("%d unexpected transitions queued", n)
	}
}

// netnsProber runs p inside a network namespace (kernel tests).
func netnsProber(ns netns.NsHandle, p Prober) Prober {
	return ProberFunc(func(ctx context.Context) Result {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return failf("netns get: %v", err)
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			return failf("netns set: %v", err)
		}
		r := p.Probe(ctx)
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread() // else the thread dies with the goroutine
		}
		return r
	})
}

// newNS creates a named network namespace with lo up, deleted at cleanup.
func newNS(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	nsRun(t, name, "ip", "link", "set", "lo", "up")
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func nsRun(t *testing.T, ns string, args ...string) {
	t.Helper()
	full := append([]string{"netns", "exec", ns}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v %s", strings.Join(full, " "), err, out)
	}
}

func nsName(t *testing.T, tag string) string {
	return fmt.Sprintf("hkchk%d%s", os.Getpid()%100000, tag)
}

func itoa(i int) string { return fmt.Sprint(i) }

// loopbackListener accepts TCP connections on 127.0.0.1 and closes them
// until the test ends, signalling each on seen if it is not nil (never
// blocking): a healthy real server.
func loopbackListener(tb testing.TB, seen chan<- struct{}) netip.AddrPort {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case seen <- struct{}{}:
			default:
			}
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}
