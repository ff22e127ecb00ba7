package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"hakeep/api"
	"hakeep/api/apitest"
)

func fakeServer(t *testing.T) (string, *apitest.Fake) {
	t.Helper()
	f := &apitest.Fake{
		Node:    "d1",
		Raft:    api.RaftStatus{State: "Leader", Leader: "d1", Term: 4},
		Members: []api.Member{{Name: "d1", Status: "alive", Voter: true, Leader: true}, {Name: "d2", Status: "alive", Voter: true}},
		Health:  api.HealthStatus{Mode: "quorum"},
		Inst:    []api.Instance{{Name: "VI_1", VRID: 51, State: "MASTER", Priority: 150, Interface: "eth0", VIPs: []string{"10.0.0.100/24"}}},
		VS: []api.VirtualServer{{Key: "10.0.0.100:80/TCP", Address: "10.0.0.100", Port: 80, Protocol: "TCP", Scheduler: "wrr",
			RealServers: []api.RealServer{{Address: "192.168.0.10", Port: 80, Weight: 3, Forward: "Masq", Healthy: true, HealthSource: "quorum"},
				{Address: "192.168.0.11", Port: 80, Weight: 1, Forward: "Masq", Healthy: false, HealthSource: "quorum"}}}},
		Chk:         []api.Check{{VirtualServer: "10.0.0.100:80/TCP", RealServer: "192.168.0.10:80", Kind: "TCP_CHECK", Up: true}},
		Voters:      []string{"d1", "d2"},
		ApplyOnPush: []string{"d1", "d2"},
	}
	path := filepath.Join(t.TempDir(), "api.sock")
	s := api.NewServer(f, nil)
	if err := s.ServeUnix(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path, f
}

func hactl(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodConf = `vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    @d1 priority 150
    @d2 priority 120
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/24
    }
}
`

const badConf = `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 300
    virtual_ipaddress {
        10.0.0.100/24
    }
}
`

const clusterConf = `cluster {
    node_name d1
    bind_addr 127.0.0.1
}
` + goodConf

func TestExitCodesAndUsage(t *testing.T) {
	sock, _ := fakeServer(t)
	t.Setenv("HAKEEP_API", sock)
	tests := []struct {
		name string
		args []string
		code int
		out  string // in stdout or stderr
	}{
		{"no command", nil, 2, "no command given"},
		{"unknown", []string{"--api", sock, "frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"--bogus", "status"}, 2, "flag provided but not defined"},
		{"missing arg", []string{"--api", sock, "config", "push"}, 2, "usage: hactl config push"},
		{"extra arg", []string{"--api", sock, "status", "x"}, 2, "usage: hactl status"},
		{"bad rollback", []string{"--api", sock, "config", "rollback", "abc"}, 2, "positive number"},
		{"help", []string{"help"}, 0, "commands:"},
		{"no daemon", []string{"--api", filepath.Join(t.TempDir(), "none.sock"), "status"}, 1, "cannot reach hakeepd"},
		{"tcp without certs", []string{"--api", "127.0.0.1:1", "status"}, 2, "mutual TLS"},
		{"status", []string{"--api", sock, "status"}, 0, "raft:    Leader, term 4, leader d1"},
		{"api from env", []string{"vrrp"}, 0, "VI_1"},
		{"flags after command", []string{"status", "--api", sock}, 0, "node:    d1"},
		{"show nothing", []string{"--api", sock, "config", "show"}, 1, "no configuration has been committed"},
		{"remove unknown", []string{"--api", sock, "cluster", "remove", "d9"}, 1, `no such director "d9"`},
		{"remove", []string{"--api", sock, "cluster", "remove", "d2"}, 0, "removed d2"},
		{"join", []string{"--api", sock, "cluster", "join", "10.0.0.2:7401"}, 0, "joined the cluster via 10.0.0.2:7401"},
		{"init", []string{"--api", sock, "cluster", "init"}, 0, "initialised"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := hactl(tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.out) {
				t.Fatalf("hactl %v = %d\nstdout: %s\nstderr: %s\nwant %d and %q", tc.args, code, out, errOut, tc.code, tc.out)
			}
		})
	}
}

func TestTables(t *testing.T) {
	sock, _ := fakeServer(t)
	code, out, _ := hactl("--api", sock, "status")
	for _, want := range []string{"MEMBER", "d2", "INSTANCE", "VI_1", "51", "MASTER", "150", "10.0.0.100/24",
		"10.0.0.100:80", "192.168.0.10:80", "Masq", "up (quorum)", "down (quorum)", "health:  quorum"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("status table lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = hactl("--api", sock, "ipvs")
	if !strings.Contains(out, "Prot") || !strings.Contains(out, "->") || !strings.Contains(out, "Health") {
		t.Fatalf("ipvs table:\n%s", out)
	}
	_, out, _ = hactl("--api", sock, "checks")
	if !strings.Contains(out, "TCP_CHECK") {
		t.Fatalf("checks table:\n%s", out)
	}
	_, out, _ = hactl("--api", sock, "vrrp")
	if !strings.Contains(out, "VI_1") {
		t.Fatalf("vrrp table:\n%s", out)
	}
}

func TestJSONOutput(t *testing.T) {
	sock, _ := fakeServer(t)
	for _, args := range [][]string{{"status"}, {"vrrp"}, {"ipvs"}, {"checks"}, {"cluster", "members"}, {"config", "history"}} {
		code, out, errOut := hactl(append([]string{"--api", sock, "--json"}, args...)...)
		if code != 0 || !json.Valid([]byte(out)) {
			t.Fatalf("%v --json = %d, %q %q", args, code, out, errOut)
		}
	}
	_, out, _ := hactl("--api", sock, "status", "--json")
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Raft.Leader != "d1" || st.Instances[0].VRID != 51 {
		t.Fatalf("status json: %v %+v", err, st)
	}
}

func TestConfigValidate(t *testing.T) {
	good := writeFile(t, "good.conf", goodConf)
	bad := writeFile(t, "bad.conf", badConf)
	code, out, _ := hactl("config", "validate", good)
	if code != 0 || !strings.Contains(out, "configuration is valid") {
		t.Fatalf("validate good = %d %q", code, out)
	}
	code, _, errOut := hactl("config", "validate", bad)
	if code != 1 || !strings.Contains(errOut, "bad.conf:3:") {
		t.Fatalf("validate bad = %d, stderr %q (want file:line)", code, errOut)
	}
	code, out, _ = hactl("--json", "config", "validate", bad)
	var vr api.ValidateResult
	if code != 1 || json.Unmarshal([]byte(out), &vr) != nil || vr.Valid || len(vr.Errors) == 0 {
		t.Fatalf("validate --json = %d %q", code, out)
	}
	cut := writeFile(t, "cut.conf", strings.TrimSuffix(goodConf, "}\n"))
	if code, _, errOut := hactl("config", "validate", cut); code != 1 || !strings.Contains(errOut, "error: "+cut+":1: vrrp_instance VI_1: block opened here is not closed") {
		t.Fatalf("validate cut-off file = %d, stderr %q (want the unclosed block at cut.conf:1)", code, errOut)
	}
	if code, _, errOut := hactl("config", "validate", "/nonexistent.conf"); code != 1 || errOut == "" {
		t.Fatalf("validate missing file = %d %q", code, errOut)
	}
}

func TestConfigPushFlow(t *testing.T) {
	sock, f := fakeServer(t)
	withCluster := writeFile(t, "c.conf", clusterConf)
	// Refused locally: nothing is sent.
	for _, tc := range []struct{ file, want string }{
		{writeFile(t, "bad.conf", badConf), "bad.conf:3: virtual_router_id"},
		{withCluster, "c.conf:1: a pushed configuration must not contain a cluster"},
		// A file cut off before its last '}' (a truncated copy).
		{writeFile(t, "cut.conf", strings.TrimSuffix(goodConf, "}\n")), "cut.conf:1: vrrp_instance VI_1: block opened here is not closed"},
	} {
		code, _, errOut := hactl("--api", sock, "config", "push", tc.file)
		if code != 1 || !strings.Contains(errOut, "nothing was pushed") || !strings.Contains(errOut, "error: "+tc.want) {
			t.Fatalf("push %s = %d %q, want 1 and %q", tc.file, code, errOut, tc.want)
		}
	}
	if calls := f.CallsCopy(); len(calls) != 0 {
		t.Fatalf("refused pushes reached the daemon: %v", calls)
	}
	if code, _, errOut := hactl("--api", sock, "config", "push", withCluster); code != 1 || !strings.Contains(errOut, "cluster { } block") {
		t.Fatalf("cluster block message: %q", errOut)
	}
	good := writeFile(t, "good.conf", goodConf)
	code, out, errOut := hactl("--api", sock, "config", "push", good, "--wait", "--timeout", "5s")
	if code != 0 || !strings.Contains(out, "committed version 1") || !strings.Contains(out, "applied on: d1, d2") {
		t.Fatalf("push = %d %q %q", code, out, errOut)
	}
	code, out, _ = hactl("--api", sock, "--json", "config", "push", good)
	var pr api.PushResult
	if code != 0 || json.Unmarshal([]byte(out), &pr) != nil || pr.Version != 2 {
		t.Fatalf("push --json = %d %q", code, out)
	}
	code, out, _ = hactl("--api", sock, "config", "show")
	if code != 0 || out != goodConf {
		t.Fatalf("show = %d %q", code, out)
	}
	code, out, _ = hactl("--api", sock, "config", "rollback", "1")
	if code != 0 || !strings.Contains(out, "rolled back to 1 as version 3") {
		t.Fatalf("rollback = %d %q", code, out)
	}
	code, out, _ = hactl("--api", sock, "config", "history")
	if code != 0 || !strings.Contains(out, "rollback to 1") || strings.Count(out, "\n") != 4 {
		t.Fatalf("history = %d %q", code, out)
	}
	// A director that failed to apply: --wait reports it and exits 1.
	f.ApplyOnPush = []string{"d1"}
	f.SetApplied("d2", 4, "interface eth9 missing")
	code, out, errOut = hactl("--api", sock, "config", "push", good, "--wait", "--timeout", "5s")
	if code != 1 || !strings.Contains(out, "failed on:  d2 (interface eth9 missing)") || !strings.Contains(errOut, "failed to apply on d2") {
		t.Fatalf("push with failing director = %d %q %q", code, out, errOut)
	}
	// No leader: exit 1 with the reason.
	f.Unavailable = true
	code, _, errOut = hactl("--api", sock, "config", "push", good)
	if code != 1 || !strings.Contains(errOut, "no Raft leader") {
		t.Fatalf("push without leader = %d %q", code, errOut)
	}
}

// TestBinaryExitCodes runs the built binary: exit statuses are what
// scripts see.
func TestBinaryExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "hactl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sock, _ := fakeServer(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--api", sock, "status"}, 0},
		{[]string{"--api", sock, "config", "show"}, 1},
		{[]string{"--api", sock, "bogus"}, 2},
	} {
		err := exec.Command(bin, tc.args...).Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("hactl %v exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

// --help anywhere, `help CMD` and `CMD --help` print usage on stdout and
// exit 0; the command's own lines when there is a command.
func TestHelp(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		notWant string
	}{
		{[]string{"--help"}, []string{"usage: hactl", "config push FILE", "cluster init", "global flags"}, ""},
		{[]string{"-h"}, []string{"usage: hactl", "status"}, ""},
		{[]string{"help"}, []string{"usage: hactl", "reload [--pid PID]"}, ""},
		{[]string{"status", "--help"}, []string{"  status  ", "global flags"}, "cluster init"},
		{[]string{"config", "--help"}, []string{"config validate FILE", "config rollback VERSION"}, "cluster init"},
		{[]string{"config", "push", "-h"}, []string{"config push FILE [--wait]", "config push --dry-run FILE"}, "config show"},
		{[]string{"--json", "cluster", "join", "--help"}, []string{"cluster join ADDR"}, "cluster remove"},
		{[]string{"help", "cluster"}, []string{"cluster init", "cluster remove NODE"}, "config show"},
		{[]string{"reload", "--help"}, []string{"reload [--pid PID]"}, "status  "},
		{[]string{"genhash", "--help"}, []string{"genhash"}, ""},
		{[]string{"tls", "--help"}, []string{"tls init"}, ""},
		{[]string{"frobnicate", "--help"}, []string{"usage: hactl", "cluster init"}, ""},
	}
	for _, tt := range tests {
		code, out, errOut := hactl(tt.args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", tt.args, w, out)
			}
		}
		if tt.notWant != "" && strings.Contains(out, tt.notWant) {
			t.Errorf("%v: stdout has %q:\n%s", tt.args, tt.notWant, out)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := hactl(args...)
		if code != 0 || !strings.HasPrefix(out, "hactl ") || errOut != "" {
			t.Errorf("%v: %d %q %q", args, code, out, errOut)
		}
	}
}

// Every command is in the usage, is known to the dispatcher, and is
// completed by the bash and zsh completions.
func TestEveryCommandEverywhere(t *testing.T) {
	bash, err := os.ReadFile("../../deploy/completion/hactl.bash")
	if err != nil {
		t.Fatal(err)
	}
	zsh, err := os.ReadFile("../../deploy/completion/_hactl")
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile("../../deploy/man/hactl.8")
	if err != nil {
		t.Fatal(err)
	}
	sock, _ := fakeServer(t)
	for _, c := range commands {
		if !strings.Contains(usage, "  "+c+" ") && !strings.Contains(usage, "| "+c+" ") {
			t.Errorf("usage lacks %q", c)
		}
		if !regexp.MustCompile(`(?m)^\.B[IR]? (.*[" ])?` + regexp.QuoteMeta(c) + `\b`).Match(man) {
			t.Errorf("hactl.8 has no entry for %q", c)
		}
		words := strings.Fields(c)
		// Known: whatever it says, it is not "unknown command".
		_, out, errOut := hactl(append([]string{"--api", sock, "--timeout", "1s"}, words...)...)
		if strings.Contains(out+errOut, "unknown") {
			t.Errorf("hactl %s: %s%s", c, out, errOut)
		}
		for _, w := range words {
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(w) + `\b`).Match(bash) {
				t.Errorf("hactl.bash does not complete %q (of %q)", w, c)
			}
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(w) + `\b`).Match(zsh) {
				t.Errorf("_hactl does not complete %q (of %q)", w, c)
			}
		}
	}
	// And every global flag.
	for _, f := range []string{"--api", "--json", "--timeout", "--tls-cert", "--tls-key", "--tls-ca", "--wait", "--dry-run", "--pid"} {
		if !strings.Contains(string(bash), f) || !strings.Contains(string(zsh), f) {
			t.Errorf("a completion lacks %s", f)
		}
	}
}

// hactl reload against a real hakeepd: 0 for an applied file, 1 with the
// reason for a refused one.
func TestReloadRealDaemon(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hakeepd")
	if out, err := exec.Command("go", "build", "-o", bin, "../hakeepd").CombinedOutput(); err != nil {
		t.Fatalf("build hakeepd: %v\n%s", err, out)
	}
	conf := writeFile(t, "k.conf", "global_defs {\n  router_id r1\n}\n")
	sock := filepath.Join(dir, "api.sock")
	d := exec.Command(bin, "-n", "-l", "-G", "-P", "-f", conf, "-p", filepath.Join(dir, "pid"), "--api", sock, "--state-dir", "")
	var logs bytes.Buffer
	d.Stdout, d.Stderr = &logs, &logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Process.Kill()
		d.Wait()
		if t.Failed() {
			t.Logf("hakeepd:\n%s", logs.String())
		}
	}()
	for i := 0; ; i++ {
		if code, _, _ := hactl("--api", sock, "status"); code == 0 {
			break
		}
		if i > 100 {
			t.Fatal("hakeepd did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := strconv.Itoa(d.Process.Pid)
	tests := []struct {
		name string
		text string
		code int
		want string
	}{
		{"applied", "global_defs {\n  router_id r2\n}\n", 0, "reload applied (SIGHUP at "},
		{"refused", "global_defs {\n  router_id r3\n", 1, "reload refused, running configuration kept: "},
		{"applied again", "global_defs {\n  router_id r4\n}\n", 0, "reload applied"},
	}
	for _, tt := range tests {
		if err := os.WriteFile(conf, []byte(tt.text), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := hactl("--api", sock, "--timeout", "20s", "reload", "--pid", pid)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%s: exit %d, %q %q; want %d and %q", tt.name, code, out, errOut, tt.code, tt.want)
		}
	}
	if code, _, errOut := hactl("--api", sock, "reload", "--pid", "999999999"); code != 1 || !strings.Contains(errOut, "signal hakeepd") {
		t.Errorf("reload of no process: %d %q", code, errOut)
	}
}

// The bash completion, run by bash: what it offers after each prefix.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tests := []struct {
		words []string // the command line, the last word being completed
		want  string
	}{
		{[]string{"hactl", ""}, "status vrrp ipvs checks config cluster genhash tls keygen reload version help"},
		{[]string{"hactl", "cl"}, "cluster"},
		{[]string{"hactl", "config", ""}, "validate push show history rollback"},
		{[]string{"hactl", "--api", "/x", "cluster", ""}, "init join members remove"},
		{[]string{"hactl", "--json", "config", "push", "--d"}, "--dry-run"},
		{[]string{"hactl", "reload", "--p"}, "--pid"},
		{[]string{"hactl", "tls", ""}, "init ca cert help"},
		{[]string{"hactl", "--ti"}, "--timeout"},
	}
	for _, tt := range tests {
		var q []string
		for _, w := range tt.words {
			q = append(q, "'"+w+"'")
		}
		script := `source ../../deploy/completion/hactl.bash
COMP_WORDS=(` + strings.Join(q, " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=()
_hactl; echo "${COMPREPLY[*]}"`
		out, err := exec.Command("bash", "-c", script).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tt.want {
			t.Errorf("%q: %q (%v), want %q", tt.words, out, err, tt.want)
		}
	}
}
