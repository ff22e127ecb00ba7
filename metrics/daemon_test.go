package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"hakeep/internal/lab"
	"hakeep/internal/lab/labtest"
)

// TestDaemonMetrics runs the real hakeepd in a network namespace of its
// own (one VRRP instance, a NAT virtual server with a TCP_CHECK real
// server that answers and one that does not) and scrapes /metrics from its
// API socket. The IPVS series are checked where the kernel has IPVS (the
// vmtest guest: make test-ipvs); elsewhere they must be absent.
func TestDaemonMetrics(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs hakeepd in a network namespace")
	}
	if testing.Short() {
		t.Skip("runs the daemon")
	}
	bin := labtest.Binary(t, "hakeepd")
	ns := fmt.Sprintf("hkmetrics%d", os.Getpid())
	exec.Command("ip", "netns", "del", ns).Run() // a stale one from a killed run
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	sh(t, "ip", "-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	sh(t, "ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", "v0")
	sh(t, "ip", "-n", ns, "addr", "add", "10.77.0.2/24", "dev", "v1")
	sh(t, "ip", "-n", ns, "link", "set", "v0", "up")
	sh(t, "ip", "-n", ns, "link", "set", "v1", "up")

	// rs1 answers; rs2 (no listener) refuses connections.
	var ln net.Listener
	if err := lab.InNamedNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", "10.77.0.2:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	confText := `global_defs {
  router_id metrics
  metrics_listen 10.77.0.1:19650
}
vrrp_instance VI_M {
  state MASTER
  interface v0
  virtual_router_id 77
  priority 150
  advert_int 1
  virtual_ipaddress {
    10.77.0.100/32
  }
}
virtual_server 10.77.0.100 80 {
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 10.77.0.2 8080 {
    weight 2
    TCP_CHECK {
      connect_timeout 1
    }
  }
  real_server 10.77.0.2 8081 {
    weight 1
    TCP_CHECK {
      connect_timeout 1
      retry 0
    }
  }
}
`
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	var logBuf syncBuf
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "-n", "-l", "-G", "-f", conf, "-p", filepath.Join(dir, "hakeepd.pid"), "--api", sock)
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hakeepd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("hakeepd log:\n%s", logBuf.String())
		}
	})

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	get := func() (map[string]*dto.MetricFamily, error) {
		resp, err := c.Get("http://hakeepd/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return parse(t, resp.Body), nil
	}
	ipvs := ipvsAvailable(ns)
	want := []struct {
		name   string
		labels map[string]string
		v      float64
	}{
		{"hakeep_vrrp_instance_state", l("vrrp_instance", "VI_M", "vrid", "77", "interface", "v0", "state", "MASTER"), 1},
		{"hakeep_vrrp_base_priority", l("vrrp_instance", "VI_M"), 150},
		{"hakeep_vrrp_vips", l("vrrp_instance", "VI_M"), 1},
		{"hakeep_check_realserver_up", l("vs", "10.77.0.100:80/TCP", "rs", "10.77.0.2:8080"), 1},
		{"hakeep_check_realserver_up", l("vs", "10.77.0.100:80/TCP", "rs", "10.77.0.2:8081"), 0},
		{"hakeep_checks_jobs", nil, 2},
	}
	if ipvs {
		want = append(want, []struct {
			name   string
			labels map[string]string
			v      float64
		}{
			{"hakeep_ipvs_services", l("state", "programmed"), 1},
			{"hakeep_ipvs_destinations", l("state", "programmed"), 1},
			{"hakeep_ipvs_destination_weight", l("vs", "TCP 10.77.0.100:80", "rs", "10.77.0.2:8080"), 2},
			{"hakeep_ipvs_reconcile_error", nil, 0},
		}...)
	}
	deadline := time.Now().Add(30 * time.Second)
	var fams map[string]*dto.MetricFamily
	var lastErr error
	for {
		fams, lastErr = get()
		if lastErr == nil {
			lastErr = nil
			for _, w := range want {
				if v, ok := value(fams, w.name, w.labels); !ok || v != w.v {
					lastErr = fmt.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, v, ok, w.v)
					break
				}
			}
		}
		if lastErr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics did not reach the expected state: %v", lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Adverts go out every second as MASTER: the counter grows between
	// scrapes, read live.
	first, _ := value(fams, "hakeep_vrrp_adverts_sent_total", l("vrrp_instance", "VI_M"))
	deadline = time.Now().Add(10 * time.Second)
	for {
		f, err := get()
		if err == nil {
			if v, ok := value(f, "hakeep_vrrp_adverts_sent_total", l("vrrp_instance", "VI_M")); ok && v > first {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hakeep_vrrp_adverts_sent_total stayed at %v", first)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if runs, ok := value(fams, "hakeep_checker_failures_total", l("rs", "10.77.0.2:8081")); !ok || runs < 1 {
		t.Errorf("failures of the refused checker = %v (present %v), want >= 1", runs, ok)
	}
	if !ipvs && fams["hakeep_ipvs_services"] != nil {
		t.Errorf("IPVS series without IPVS in the kernel: %v", fams["hakeep_ipvs_services"])
	}
	if fams["hakeep_cluster_raft_term"] != nil {
		t.Error("cluster series without a cluster block")
	}
	if fams["process_resident_memory_bytes"] == nil {
		t.Error("process collector missing")
	}

	// metrics_listen: the same series over plain HTTP, nothing else there;
	// a reload without the line closes the listener.
	plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = lab.InNamedNS(ns, func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/status", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, "http://10.77.0.1:19650"+tc.path, nil)
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatalf("%s %s on metrics_listen: %v", tc.method, tc.path, err)
		}
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s on metrics_listen: HTTP %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
		if tc.code == http.StatusOK {
			if v, ok := value(parse(t, resp.Body), "hakeep_vrrp_base_priority", l("vrrp_instance", "VI_M")); !ok || v != 150 {
				t.Errorf("plain scrape: hakeep_vrrp_base_priority = %v %v", v, ok)
			}
		}
		resp.Body.Close()
	}
	if err := os.WriteFile(conf, []byte(strings.Replace(confText, "  metrics_listen 10.77.0.1:19650\n", "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(20 * time.Second)
	for {
		resp, err := plain.Get("http://10.77.0.1:19650/metrics")
		if err != nil {
			break // refused: the listener is closed
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("metrics_listen still served after a reload removed it")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Closed by the reload, not by a dead daemon: the API still answers.
	select {
	case <-exited:
		t.Fatal("hakeepd exited on the reload")
	default:
	}
	if _, err := get(); err != nil {
		t.Fatalf("API after the reload: %v", err)
	}
}

// ipvsAvailable reports whether the kernel has IPVS (seen from ns).
func ipvsAvailable(ns string) bool {
	return exec.Command("ip", "netns", "exec", ns, "test", "-e", "/proc/net/ip_vs").Run() == nil
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
