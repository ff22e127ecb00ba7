package ipvs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hakeep/api"
	netlab "hakeep/internal/lab"
)

// ipvsDest is one destination line of ipvsadm -Ln.
type ipvsDest struct {
	Fwd        string // Masq, Route, Tunnel
	Weight     int
	ActiveConn int
}

// ipvsService is one service of ipvsadm -Ln with its destinations by
// "IP:PORT".
type ipvsService struct {
	Sched string
	Dests map[string]ipvsDest
}

// ipvsTable is ipvsadm -Ln parsed: services by "TCP 10.0.0.1:80".
type ipvsTable map[string]ipvsService

// parseIPVSAdmLn parses ipvsadm -Ln output (IPv4/IPv6, TCP/UDP/FWM).
func parseIPVSAdmLn(out string) (ipvsTable, error) {
	tab := ipvsTable{}
	var cur string
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "IP" || f[0] == "Prot" || (f[0] == "->" && f[1] == "RemoteAddress:Port") {
			continue
		}
		switch f[0] {
		case "TCP", "UDP", "SCTP", "FWM":
			if len(f) < 3 {
				return nil, fmt.Errorf("ipvsadm line %d: %q", i+1, line)
			}
			cur = f[0] + " " + f[1]
			tab[cur] = ipvsService{Sched: f[2], Dests: map[string]ipvsDest{}}
		case "->":
			if cur == "" || len(f) < 6 {
				return nil, fmt.Errorf("ipvsadm line %d: %q", i+1, line)
			}
			w, err1 := strconv.Atoi(f[3])
			a, err2 := strconv.Atoi(f[4])
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("ipvsadm line %d: %q", i+1, line)
			}
			tab[cur].Dests[f[1]] = ipvsDest{Fwd: f[2], Weight: w, ActiveConn: a}
		default:
			// Continuation lines (persistent, ops flags) are not used here.
		}
	}
	return tab, nil
}

// shape is the table without connection counts, in a stable text form for
// comparisons and messages: "TCP 10.10.0.100:80 wrr | 10.20.1.2:80 Masq 1, ...".
func (t ipvsTable) shape() string {
	var lines []string
	for k, s := range t {
		var ds []string
		for a, d := range s.Dests {
			ds = append(ds, fmt.Sprintf("%s %s %d", a, d.Fwd, d.Weight))
		}
		sort.Strings(ds)
		lines = append(lines, k+" "+s.Sched+" | "+strings.Join(ds, ", "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (t ipvsTable) activeConns(svc string) int {
	n := 0
	for _, d := range t[svc].Dests {
		n += d.ActiveConn
	}
	return n
}

// want builds an expected shape from services given as
// "TCP 10.10.0.100:80 wrr" -> "10.20.1.2:80 Masq 1", ... .
func want(svcs map[string][]string) string {
	t := ipvsTable{}
	for k, ds := range svcs {
		f := strings.Fields(k)
		s := ipvsService{Sched: f[2], Dests: map[string]ipvsDest{}}
		for _, d := range ds {
			g := strings.Fields(d)
			w, _ := strconv.Atoi(g[2])
			s.Dests[g[0]] = ipvsDest{Fwd: g[1], Weight: w}
		}
		t[f[0]+" "+f[1]] = s
	}
	return t.shape()
}

// serviceConns reads the service's total connection counter (ipvsadm -Ln
// --stats): the kernel keeps it for the service's lifetime, so it only
// goes down when the service was deleted and added again.
func serviceConns(t *testing.T, ns, svc string) int {
	t.Helper()
	out := sh(t, "ip", "netns", "exec", ns, "ipvsadm", "-Ln", "--stats")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0]+" "+f[1] == svc {
			n, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("ipvsadm --stats: %q", line)
			}
			return n
		}
	}
	t.Fatalf("service %s not in ipvsadm --stats:\n%s", svc, out)
	return 0
}

// rserver is a real server in a namespace: GET / answers its name (and is
// counted), GET /health answers 200 or 503 as set.
type rserver struct {
	name, ns, addr string
	hits           atomic.Int64
	sick           atomic.Bool
	mu             sync.Mutex
	srv            *http.Server
}

func (s *rserver) start(t *testing.T) {
	t.Helper()
	var l net.Listener
	// The port may still be in TIME_WAIT use from the last run.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := netlab.InNamedNS(s.ns, func() (err error) {
			lc := net.ListenConfig{}
			l, err = lc.Listen(t.Context(), "tcp", s.addr)
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen %s in %s: %v", s.addr, s.ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if s.sick.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			io.WriteString(w, "health")
			return
		}
		s.hits.Add(1)
		io.WriteString(w, s.name)
	})}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(l)
}

func (s *rserver) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// getVIP does n requests to VIP:port from the client namespace, each on a
// new connection, and counts the answers by server name.
func getVIP(t *testing.T, ns, vip string, n int) map[string]int {
	t.Helper()
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialer(ns), DisableKeepAlives: true}}
	got := map[string]int{}
	for range n {
		resp, err := cl.Get("http://" + vip + "/")
		if err != nil {
			t.Fatalf("GET via VIP %s: %v", vip, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[string(b)]++
	}
	return got
}

// daemon is a hakeepd process started in a namespace.
type daemon struct {
	t       *testing.T
	ns, dir string
	conf    string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	waitErr error
}

// syncBuffer collects the daemon's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startDaemon runs hakeepd -f conf [extra flags] in the namespace. At cleanup it is
// killed if still running, and on failure its log is printed.
func startDaemon(t *testing.T, bin, ns, dir, conf string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, ns: ns, dir: dir, conf: conf, log: &syncBuffer{}, exited: make(chan struct{})}
	args := append([]string{"netns", "exec", ns, bin, "-n", "-l", "-f", conf,
		"-p", filepath.Join(dir, "hakeepd.pid"), "--api", filepath.Join(dir, "api.sock")}, extra...)
	d.cmd = exec.Command("ip", args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start hakeepd: %v", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Signal(syscall.SIGKILL)
			<-d.exited
		}
		if t.Failed() {
			t.Logf("hakeepd log:\n%s", d.log.String())
		}
	})
	return d
}

// signal sends sig to hakeepd (ip netns exec execs it in place, so the
// child's pid is the daemon's).
func (d *daemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v to hakeepd: %v", sig, err)
	}
}

// waitExit waits for the daemon to exit and returns its exit error.
func (d *daemon) waitExit(limit time.Duration) error {
	d.t.Helper()
	select {
	case <-d.exited:
		return d.waitErr
	case <-time.After(limit):
		d.t.Fatalf("hakeepd did not exit within %s", limit)
		return nil
	}
}

// running fails the test when the daemon has exited.
func (d *daemon) running() {
	d.t.Helper()
	select {
	case <-d.exited:
		d.t.Fatalf("hakeepd exited: %v", d.waitErr)
	default:
	}
}

// ipvsadm parses ipvsadm -Ln in the daemon's namespace.
func (d *daemon) ipvsadm() ipvsTable {
	d.t.Helper()
	out := sh(d.t, "ip", "netns", "exec", d.ns, "ipvsadm", "-Ln")
	tab, err := parseIPVSAdmLn(out)
	if err != nil {
		d.t.Fatal(err)
	}
	return tab
}

// waitTable polls ipvsadm until the table's shape is exactly want.
func (d *daemon) waitTable(what, want string, limit time.Duration) ipvsTable {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		d.running()
		tab := d.ipvsadm()
		if tab.shape() == want {
			return tab
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: ipvsadm -Ln after %s:\n%s\nwant:\n%s", what, limit, tab.shape(), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logLen is the log's current length, for waitLog's from.
func (d *daemon) logLen() int { return len(d.log.String()) }

// waitLog polls the daemon's log, from byte offset from on, for a line
// containing every one of subs.
func (d *daemon) waitLog(from int, limit time.Duration, subs ...string) string {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, line := range strings.Split(d.log.String()[from:], "\n") {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no log line with %q within %s", subs, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLines polls a file until it holds exactly want lines (in order).
func waitLines(t *testing.T, path string, want []string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(path)
		if strings.TrimSpace(string(b)) == strings.Join(want, "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s:\n%s\nwant:\n%s", filepath.Base(path), limit, b, strings.Join(want, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitVIP polls until addr is on dev in the namespace (VRRP is MASTER).
func waitVIP(t *testing.T, ns, dev, addr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(sh(t, "ip", "-n", ns, "addr", "show", "dev", dev), " "+addr+"/") {
		if time.Now().After(deadline) {
			t.Fatalf("VIP %s not on %s in %s after %s", addr, dev, ns, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiStatus asks the daemon's API (its --api socket) for its status and
// fails the test when no answer comes within limit: a wedged director
// shows up here as a deadline, not as a hung test.
func (d *daemon) apiStatus(limit time.Duration) api.Status {
	d.t.Helper()
	st, err := d.tryStatus(limit)
	if err != nil {
		d.t.Fatalf("hakeepd API status, answer wanted within %s: %v", limit, err)
	}
	return st
}

// tryStatus is apiStatus returning the error.
func (d *daemon) tryStatus(limit time.Duration) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	return api.NewClient(filepath.Join(d.dir, "api.sock")).Status(ctx)
}

// waitAPI polls until the daemon's API answers (the daemon has started
// and serves), the daemon still running.
func (d *daemon) waitAPI(limit time.Duration) api.Status {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		d.running()
		st, err := d.tryStatus(time.Second)
		if err == nil {
			return st
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("hakeepd API did not answer within %s: %v", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bridgeLab makes namespace sw with a bridge and the namespaces nss
// (all removed at cleanup); attach plugs ns into the bridge by a veth
// whose end in ns is dev, with addr (port i on the bridge's side).
func bridgeLab(t *testing.T, sw string, nss ...string) (attach func(ns, dev, addr string, i int)) {
	for _, ns := range append([]string{sw}, nss...) {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", sw, "link", "set", "br0", "up")
	return func(ns, dev, addr string, i int) {
		port := fmt.Sprintf("p%d", i)
		sh(t, "ip", "link", "add", port, "netns", sw, "type", "veth", "peer", "name", dev, "netns", ns)
		sh(t, "ip", "-n", sw, "link", "set", port, "master", "br0")
		sh(t, "ip", "-n", sw, "link", "set", port, "up")
		sh(t, "ip", "-n", ns, "addr", "add", addr, "dev", dev)
		sh(t, "ip", "-n", ns, "link", "set", dev, "up")
	}
}
