package consensus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hakeep/api"
)

// TestPlanFanOut: a dry run asked of any director reaches every director
// of the cluster, each answering for itself; one that is down is an error
// in its row, quickly, and the others still answer. A text the push
// validation refuses reaches nobody.
func TestPlanFanOut(t *testing.T) {
	asked := make(chan string, 16)
	// stuck makes d2 take the request and never answer, until released.
	var stuck atomic.Bool
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the nodes close
	c := newCluster(t, clusterOpts{n: 3, expect: 3, validate: ValidatePushed,
		plan: func(node string) func(string, []byte) api.DirectorPlan {
			return func(name string, text []byte) api.DirectorPlan {
				if node == "d2" && stuck.Load() {
					<-release
				}
				asked <- node
				return api.DirectorPlan{Director: "ignored", RunningVersion: 7, Changes: []api.PlanChange{
					{Kind: api.PlanVIP, Object: node, Change: api.PlanAdded, Detail: fmt.Sprintf("%s %d bytes", name, len(text))}}}
			}
		}})
	c.leader()
	for _, tn := range c.nodes {
		waitFor(t, tn.cfg.NodeName+" knows all three voters", 10*time.Second, func() bool {
			return slices.Equal(tn.node.Voters(), []string{"d1", "d2", "d3"})
		})
	}
	text := "global_defs {}\n"
	want := func(node string) api.DirectorPlan {
		return api.DirectorPlan{Director: node, RunningVersion: 7, Changes: []api.PlanChange{
			{Kind: api.PlanVIP, Object: node, Change: api.PlanAdded, Detail: "a.conf 15 bytes"}}}
	}
	for _, tn := range c.nodes {
		res, err := tn.node.API().(api.ClusterPlanner).ConfigPlan(ctxT(t, 10*time.Second), api.PlanRequest{Name: "a.conf", Text: text})
		if err != nil {
			t.Fatalf("plan through %s: %v", tn.cfg.NodeName, err)
		}
		if w := []api.DirectorPlan{want("d1"), want("d2"), want("d3")}; !slices.EqualFunc(res.Directors, w, samePlan) {
			t.Errorf("plan through %s: %+v\nwant %+v", tn.cfg.NodeName, res.Directors, w)
		}
	}
	drain := func() (n int) {
		for {
			select {
			case <-asked:
				n++
			default:
				return n
			}
		}
	}
	if n := drain(); n != 9 {
		t.Errorf("%d plans computed for 3 dry runs on 3 directors, want 9", n)
	}

	// Refused by validation: nobody is asked.
	_, err := c.nodes[0].node.API().(api.ClusterPlanner).ConfigPlan(ctxT(t, 10*time.Second), api.PlanRequest{Name: "b.conf", Text: "vrrp_instance VI_1 {\n virtual_router_id 300\n}\n"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalid || len(ae.Diagnostics) == 0 || !strings.HasPrefix(ae.Diagnostics[0], "b.conf:") {
		t.Errorf("invalid text: %v, want CodeInvalid with b.conf:LINE diagnostics", err)
	}
	if n := drain(); n != 0 {
		t.Errorf("an invalid text was planned %d times", n)
	}

	// d2 stuck: its row says so once the bound has passed, the others
	// answer.
	defer func(d time.Duration) { planTimeout = d }(planTimeout)
	planTimeout = time.Second
	stuck.Store(true)
	start := time.Now()
	plans := c.nodes[0].node.PlanAll(ctxT(t, 20*time.Second), "a.conf", []byte(text))
	if took := time.Since(start); took < planTimeout || took > planTimeout+2*time.Second {
		t.Errorf("dry run with d2 stuck took %v, want about %v", took, planTimeout)
	}
	if len(plans) != 3 || !samePlan(plans[0], want("d1")) || !samePlan(plans[2], want("d3")) {
		t.Fatalf("plans with d2 stuck: %+v", plans)
	}
	if p := plans[1]; p.Director != "d2" || !strings.Contains(p.Error, "no answer within 1s") || len(p.Changes) != 0 {
		t.Errorf("d2 stuck: %+v, want a timeout row", p)
	}
	stuck.Store(false)

	// d3 down: its row says so, the others answer.
	c.nodes[2].stop()
	start = time.Now()
	plans = c.nodes[0].node.PlanAll(ctxT(t, 20*time.Second), "a.conf", []byte(text))
	if took := time.Since(start); took > planTimeout+2*time.Second {
		t.Errorf("dry run with a director down took %v", took)
	}
	if len(plans) != 3 || !samePlan(plans[0], want("d1")) || !samePlan(plans[1], want("d2")) {
		t.Fatalf("plans with d3 down: %+v", plans)
	}
	if p := plans[2]; p.Director != "d3" || p.Error == "" || len(p.Changes) != 0 {
		t.Errorf("d3 down: %+v, want an error row", p)
	}
}

func samePlan(a, b api.DirectorPlan) bool {
	return a.Director == b.Director && a.RunningVersion == b.RunningVersion && a.Error == b.Error && slices.Equal(a.Changes, b.Changes)
}

// TestPlanRequestValidate: a plan without a text is malformed.
func TestPlanRequestValidate(t *testing.T) {
	tests := []struct {
		req     rpcRequest
		wantErr error
	}{
		{rpcRequest{Op: opPlan, Cmd: []byte(`{"name":"a","text":"b"}`)}, nil},
		{rpcRequest{Op: opPlan}, ErrBadCommand},
	}
	for _, tt := range tests {
		if err := tt.req.validate(); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("validate(%+v) = %v, want %v", tt.req, err, tt.wantErr)
		}
	}
}
