package metrics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hakeep/metrics"
)

// startPlain serves the full fake state on the plain listener, on a port
// of its own.
func startPlain(t *testing.T) string {
	t.Helper()
	ln, err := metrics.Listen("127.0.0.1:0", metrics.Handler(metrics.NewRegistry(full().sources()), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// The plain listener serves GET /metrics and nothing else: no API route,
// no other method, no other path (a prefix or a trailing slash included).
func TestPlainListenerServesOnlyMetrics(t *testing.T) {
	addr := startPlain(t)
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string // Allow header on 405
	}{
		{http.MethodGet, "/metrics", http.StatusOK, ""},
		{http.MethodHead, "/metrics", http.StatusOK, ""},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPut, "/metrics", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, "/metrics", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodGet, "/metrics/", http.StatusNotFound, ""},
		{http.MethodGet, "/metricsx", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/status", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/config", http.StatusNotFound, ""},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://"+addr+tc.path, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("HTTP %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if tc.code != http.StatusOK && bytes.Contains(body, []byte("hakeep_")) {
				t.Errorf("metrics leaked on %s %s: %s", tc.method, tc.path, body)
			}
			if tc.code == http.StatusOK && tc.method == http.MethodGet {
				if v, ok := value(parse(t, bytes.NewReader(body)), "hakeep_vrrp_instance_state", l("vrrp_instance", "VI_1", "state", "MASTER")); !ok || v != 1 {
					t.Fatalf("VI_1 MASTER = %v %v", v, ok)
				}
			}
		})
	}
}

// A bad address is an error naming the keyword; a taken port too.
func TestPlainListenerBindErrors(t *testing.T) {
	taken := startPlain(t)
	for _, addr := range []string{"127.0.0.1:notaport", taken} {
		if ln, err := metrics.Listen(addr, http.NotFoundHandler(), nil); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		} else if !strings.Contains(err.Error(), "metrics_listen "+addr) {
			t.Errorf("Listen(%q): %v, want the keyword and address in the error", addr, err)
		}
	}
}

// promtool, Prometheus's own linter, accepts what the plain listener
// serves (names, types, help, label syntax, _total on counters).
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := lookTool(t, "promtool")
	addr := startPlain(t)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d %v", resp.StatusCode, err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// A real Prometheus scrapes the plain listener: the target is up and the
// VRRP series keep their vrrp_instance label next to Prometheus's own
// instance label (the old "instance" label came back as
// exported_instance). With the source tree at hand it also loads the
// shipped rules: the compat rules turn the live series into
// keepalived-exporter's, and every dashboard query is valid PromQL.
func TestPrometheusScrapesPlainListener(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	prom := lookTool(t, "prometheus")
	addr := startPlain(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	var rules string
	_, noTree := os.Stat(filepath.Join("..", "go.mod"))
	if noTree == nil {
		abs, err := filepath.Abs(filepath.Join("..", "deploy", "prometheus"))
		if err != nil {
			t.Fatal(err)
		}
		rules = fmt.Sprintf("rule_files:\n  - %s\n  - %s\n", filepath.Join(abs, "keepalived-exporter-compat.rules.yml"), filepath.Join(abs, "hakeep-alerts.rules.yml"))
	}
	if err := os.WriteFile(conf, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
%sscrape_configs:
  - job_name: hakeep
    static_configs:
      - targets: ['%s']
`, rules, addr), 0o644); err != nil {
		t.Fatal(err)
	}
	web := freeAddr(t)
	var log bytes.Buffer
	cmd := exec.Command(prom, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	query := func(q string) ([]promSample, error) {
		resp, err := http.Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []promSample `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, err
		}
		if r.Status != "success" {
			return nil, fmt.Errorf("query %s: status %s: %s", q, r.Status, r.Error)
		}
		return r.Data.Result, nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		up, err := query(`up{job="hakeep"}`)
		if err == nil && len(up) == 1 && up[0].value() == "1" && up[0].Metric["instance"] == addr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("up{job=\"hakeep\"} never 1: %+v %v", up, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	st, err := query(`hakeep_vrrp_instance_state{state="MASTER"} == 1`)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Metric["vrrp_instance"] != "VI_1" || st[0].Metric["instance"] != addr || st[0].Metric["exported_instance"] != "" {
		t.Fatalf("MASTER series as stored by Prometheus: %+v", st)
	}
	if noTree != nil {
		return
	}
	// keepalived-exporter's series from the live scrape (VI_1 MASTER with
	// two VIPs: state 2 on each; VI_2 BACKUP; chk_nginx failing).
	for _, tc := range []struct {
		query string
		want  []string // values, sorted by the query
	}{
		{`sort_desc(keepalived_vrrp_state{iname="VI_1"})`, []string{"2", "2"}},
		{`keepalived_vrrp_state{iname="VI_2", ip_address="fd00::52", intf="eth1", vrid="52"}`, []string{"1"}},
		{`keepalived_script_status{name="chk_nginx"}`, []string{"0"}},
		{`keepalived_advertisements_sent_total{iname="VI_1", intf="eth0"}`, []string{"1234"}},
		{`keepalived_authentication_failure_total{iname="VI_1"}`, []string{"3"}},
		{`keepalived_up`, []string{"1"}},
	} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, err := query(tc.query)
			var got []string
			for _, r := range res {
				got = append(got, r.value())
			}
			if err == nil && strings.Join(got, " ") == strings.Join(tc.want, " ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v (%v), want %v", tc.query, got, err, tc.want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// Every dashboard query parses and runs (Grafana's variables set to
	// match all).
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "hakeep-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	vars := strings.NewReplacer("$job", ".*", "$instance", ".*", "$__rate_interval", "1m")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			n++
			if _, err := query(vars.Replace(tg.Expr)); err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, tg.Expr, err)
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d dashboard queries", n)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

func (s promSample) value() string {
	if len(s.Value) != 2 {
		return ""
	}
	v, _ := s.Value[1].(string)
	return v
}

// lookTool finds a Prometheus tool (Debian package prometheus, listed in
// deploy/test-deps.txt); the test skips only when it is missing.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package prometheus; deploy/install-test-deps.sh)", name)
	}
	return p
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
