package api_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"hakeep/api"
	"hakeep/api/apitest"
)

// localPlanner is a director that plans for itself.
type localPlanner struct {
	*apitest.Fake
	got api.PlanRequest
}

func (l *localPlanner) PlanLocal(ctx context.Context, req api.PlanRequest) (api.DirectorPlan, error) {
	l.got = req
	if strings.Contains(req.Text, "bad") {
		return api.DirectorPlan{}, &api.Error{Code: api.CodeInvalid, Message: "configuration refused", Diagnostics: []string{req.Name + ":3: bad keyword"}}
	}
	return api.DirectorPlan{Director: "d1", RunningVersion: 4, Changes: []api.PlanChange{
		{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.1:80", Change: api.PlanReweighted, Detail: "weight 1 -> 3"},
	}}, nil
}

// clusterPlanner is a cluster side that fans out (one director
// unreachable).
type clusterPlanner struct{ api.Cluster }

func (clusterPlanner) ConfigPlan(ctx context.Context, req api.PlanRequest) (api.PlanResult, error) {
	return api.PlanResult{Directors: []api.DirectorPlan{
		{Director: "d1", Changes: []api.PlanChange{{Kind: api.PlanVIP, Object: "10.0.0.100/32", Change: api.PlanMoved, Detail: "VI_1 -> VI_2"}}},
		{Director: "d2", Error: "no answer within 5s"},
	}}, nil
}

func TestPlanRoundTrip(t *testing.T) {
	lp := &localPlanner{Fake: fake()}
	tests := []struct {
		name     string
		b        api.Backend
		text     string
		want     []api.DirectorPlan
		wantCode string
	}{
		{name: "standalone: this director alone", b: api.Compose(lp, api.Standalone("d1")), text: "vrrp_instance VI_1 {}",
			want: []api.DirectorPlan{{Director: "d1", RunningVersion: 4, Changes: []api.PlanChange{
				{Kind: api.PlanRealServer, Object: "TCP 10.0.0.100:80 -> 10.0.1.1:80", Change: api.PlanReweighted, Detail: "weight 1 -> 3"}}}}},
		{name: "standalone: invalid text", b: api.Compose(lp, api.Standalone("d1")), text: "bad", wantCode: api.CodeInvalid},
		{name: "cluster: every director, errors per director", b: api.Compose(lp, clusterPlanner{api.Standalone("d1")}), text: "x",
			want: []api.DirectorPlan{
				{Director: "d1", Changes: []api.PlanChange{{Kind: api.PlanVIP, Object: "10.0.0.100/32", Change: api.PlanMoved, Detail: "VI_1 -> VI_2"}}},
				{Director: "d2", Error: "no answer within 5s", Changes: []api.PlanChange{}},
			}},
		{name: "a backend that cannot plan", b: fake(), text: "x", wantCode: api.CodeUnavailable},
		{name: "a director without a planner", b: api.Compose(fake(), api.Standalone("d1")), text: "x", wantCode: api.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := serveUnix(t, tt.b)
			res, err := api.NewClient(path).ConfigPlan(ctx(t), api.PlanRequest{Name: "new.conf", Text: tt.text})
			if tt.wantCode != "" {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != tt.wantCode {
					t.Fatalf("err %v, want code %s", err, tt.wantCode)
				}
				if tt.wantCode == api.CodeInvalid && !reflect.DeepEqual(ae.Diagnostics, []string{"new.conf:3: bad keyword"}) {
					t.Errorf("diagnostics %q", ae.Diagnostics)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Directors, tt.want) {
				t.Errorf("directors %+v\nwant %+v", res.Directors, tt.want)
			}
		})
	}
	if lp.got.Name != "new.conf" {
		t.Errorf("the planner got %+v, want the file's name and text", lp.got)
	}
}

// TestPlanBody: the plan route takes a whole configuration (a push's
// limit, not the small one) and refuses unknown fields like every route.
func TestPlanBody(t *testing.T) {
	path, _ := serveUnix(t, api.Compose(&localPlanner{Fake: fake()}, api.Standalone("d1")))
	c := api.NewClient(path)
	big := strings.Repeat("# comment line of a large file\n", 8<<10) // 256 KiB: over the small-body limit
	if _, err := c.ConfigPlan(ctx(t), api.PlanRequest{Name: "big.conf", Text: big}); err != nil {
		t.Errorf("a 256 KiB file: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	resp, err := hc.Post("http://hakeepd/v1/config/plan", "application/json", strings.NewReader(`{"name":"a","text":"b","commit":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown field: HTTP %d, want 400", resp.StatusCode)
	}
}
