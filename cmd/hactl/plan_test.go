package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"hakeep/api"
	"hakeep/api/apitest"
)

// planBackend answers dry runs with fixed plans (the real fan-out is
// tested in consensus and in the lab); it records the texts it was sent.
type planBackend struct {
	*apitest.Fake
	plans []api.DirectorPlan
	err   error
	texts []string
}

func (p *planBackend) ConfigPlan(ctx context.Context, req api.PlanRequest) (api.PlanResult, error) {
	p.texts = append(p.texts, req.Name+"|"+req.Text)
	return api.PlanResult{Directors: p.plans}, p.err
}

func planServer(t *testing.T, b *planBackend) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	s := api.NewServer(api.Compose(b.Fake, b), nil)
	if err := s.ServeUnix(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path
}

func TestConfigPushDryRun(t *testing.T) {
	changes := []api.PlanChange{
		{Kind: api.PlanInstance, Object: "VI_1", Change: api.PlanChanged, Detail: "priority 100 -> 150 (in place)"},
		{Kind: api.PlanVIP, Object: "10.0.0.102/32", Change: api.PlanMoved, Detail: "VI_1 -> VI_2"},
		{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.2:80", Change: api.PlanReweighted, Detail: "weight 1 -> 3"},
	}
	ok := []api.DirectorPlan{
		{Director: "d1", RunningVersion: 3, Changes: changes},
		{Director: "d2", RunningVersion: 3, Changes: []api.PlanChange{}},
	}
	down := append(ok[:1:1], api.DirectorPlan{Director: "d3", Error: "no answer within 5s"})
	tests := []struct {
		name     string
		plans    []api.DirectorPlan
		srvErr   error
		file     string
		json     bool
		wantCode int
		wantOut  []string // in stdout, in this order
		wantErr  string   // in stderr
		wantSent bool
	}{
		{name: "table with a summary", plans: ok, file: goodConf, wantCode: 0, wantSent: true, wantOut: []string{
			"DIRECTOR", "KIND", "OBJECT", "CHANGE", "DETAIL",
			"d1", "vrrp_instance", "VI_1", "changed", "priority 100 -> 150 (in place)",
			"d1", "vip", "10.0.0.102/32", "moved", "VI_1 -> VI_2",
			"d1", "real_server", "TCP 10.0.0.100:80 -> 10.0.1.2:80", "reweighted", "weight 1 -> 3",
			"d1: 3 changes against version 3: 1 instance, 1 VIP, 1 real server",
			"d2: no change (runs version 3)",
			"dry run: nothing was committed"}},
		{name: "a director without a plan fails the command", plans: down, file: goodConf, wantCode: 1, wantSent: true,
			wantOut: []string{"d1", "vrrp_instance", "d3: NO PLAN: no answer within 5s"}, wantErr: "no plan from d3"},
		{name: "invalid file: file:line, nothing sent", plans: ok, file: badConf, wantCode: 1, wantErr: "plan.conf:3:"},
		{name: "refused by the director", plans: ok, srvErr: &api.Error{Code: api.CodeInvalid, Message: "refused", Diagnostics: []string{"plan.conf:2: only on d2"}},
			file: goodConf, wantCode: 1, wantSent: true, wantErr: "plan.conf:2: only on d2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &planBackend{Fake: &apitest.Fake{Node: "d1"}, plans: tt.plans, err: tt.srvErr}
			sock := planServer(t, b)
			file := writeFile(t, "plan.conf", tt.file)
			args := []string{"--api", sock, "config", "push", "--dry-run", file}
			code, out, errOut := hactl(args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			rest := out
			for _, w := range tt.wantOut {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stdout lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
			if sent := len(b.texts) > 0; sent != tt.wantSent {
				t.Errorf("sent to the daemon: %v, want %v", sent, tt.wantSent)
			}
			if tt.wantSent && b.texts[0] != "plan.conf|"+tt.file {
				t.Errorf("sent %q", b.texts[0])
			}
			// Never a push.
			for _, c := range b.CallsCopy() {
				if c == "push" {
					t.Errorf("--dry-run pushed")
				}
			}
		})
	}
}

func TestConfigPushDryRunJSON(t *testing.T) {
	plans := []api.DirectorPlan{{Director: "d1", RunningVersion: 2, Changes: []api.PlanChange{
		{Kind: api.PlanService, Object: "TCP 10.0.0.101:443", Change: api.PlanAdded, Detail: "scheduler wrr, 1 real server(s)"},
		{Kind: api.PlanVIP, Object: "10.0.0.101/32", Change: api.PlanMoved, Detail: "VI_2 -> VI_1"}}}}
	sock := planServer(t, &planBackend{Fake: &apitest.Fake{Node: "d1"}, plans: plans})
	code, out, errOut := hactl("--api", sock, "--json", "config", "push", "--dry-run", writeFile(t, "plan.conf", goodConf))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `      "running_version": 2,`) || !strings.Contains(out, `"detail": "VI_2 -> VI_1"`) {
		t.Errorf("JSON not indented or escaped:\n%s", out)
	}
	var res api.PlanResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(res.Directors, plans) {
		t.Errorf("JSON %+v, want %+v", res.Directors, plans)
	}
}
