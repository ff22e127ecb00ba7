package config

import (
	"path/filepath"
	"testing"
	"time"
)

// TestExamples: every example in deploy/examples reads without errors
// (but the deliberate exceptions below, with exactly their errors), and the
// three-director example gives each node its own values.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../deploy/examples/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	// Example -> its only errors. seed-004_1.conf is the blog post verbatim,
	// which lost the last '}': keepalived warns and runs it, hakeep refuses
	// a file whose blocks do not close (a truncated file must not be used).
	refused := map[string]string{
		"seed-004_1.conf": "../deploy/examples/seed-004_1.conf:7: vrrp_instance http: " + msgUnclosed + "\n",
	}
	for _, f := range files {
		for _, id := range []string{"d1", "d2", "d3"} {
			_, d := Load(f, Options{ConfigID: id})
			want, ok := refused[filepath.Base(f)]
			switch {
			case ok && d.Errors().String() != want:
				t.Errorf("%s as %s: errors\n%swant exactly\n%s", f, id, d.Errors(), want)
			case !ok && d.HasErrors():
				t.Errorf("%s as %s:\n%s", f, id, d)
			}
		}
	}
	for _, tc := range []struct {
		id, state, bind string
		prio            int
	}{{"d1", "MASTER", "10.0.0.11", 150}, {"d2", "BACKUP", "10.0.0.12", 100}, {"d3", "BACKUP", "10.0.0.13", 50}} {
		c, d := Load("../deploy/examples/cluster-3.conf", Options{ConfigID: tc.id})
		if len(d) != 0 {
			t.Errorf("cluster-3.conf as %s: %s", tc.id, d)
			continue
		}
		i := c.Instance("VI_WEB")
		if c.Global.RouterID != tc.id || c.Cluster.NodeName != tc.id || c.Cluster.BindAddr.String() != tc.bind ||
			i.State != tc.state || i.Priority != tc.prio || i.Version != 3 || !i.Fenced(c) || c.Cluster.Lease != time.Second ||
			len(c.Cluster.Join) != 3 || c.Cluster.BootstrapExpect != 3 {
			t.Errorf("%s: router_id %s, cluster %+v, instance %+v", tc.id, c.Global.RouterID, c.Cluster, i)
		}
		if i.VIPs[0].Prefix.String() != "10.0.0.100/24" || i.VIPs[0].Label != "eth0:vip" || c.VirtualServers[0].Addr.String() != "10.0.0.100:80" {
			t.Errorf("%s: VIP %+v, vs %s", tc.id, i.VIPs[0], c.VirtualServers[0].Addr)
		}
	}
}
