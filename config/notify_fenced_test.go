package config

import (
	"strings"
	"testing"
)

// TestNotifyFenced: hakeep's notify_fenced is read in vrrp_instance and
// vrrp_sync_group like the other notify_* scripts, and a bad line is
// reported at its file:line.
func TestNotifyFenced(t *testing.T) {
	inst := func(extra string) string {
		return "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n" + extra + " virtual_ipaddress {\n  10.0.0.1\n }\n}\n"
	}
	// A second member: a one-member group draws a warning of its own.
	group := func(extra string) string {
		return "vrrp_instance W {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n  10.0.0.2\n }\n}\n" +
			"vrrp_sync_group G {\n group {\n  V\n  W\n }\n" + extra + "}\n"
	}
	cases := []struct {
		name      string
		text      string
		inst, grp Notify
		wantDiags []string
	}{
		{name: "instance", text: inst(" notify_fenced /etc/keepalived/fenced.sh\n notify_fault /etc/keepalived/fault.sh\n"),
			inst: Notify{Fenced: "/etc/keepalived/fenced.sh", Fault: "/etc/keepalived/fault.sh"}},
		{name: "instance, quoted with arguments", text: inst(" notify_fenced \"/usr/bin/logger -t ha fenced\"\n"),
			inst: Notify{Fenced: "/usr/bin/logger -t ha fenced"}},
		{name: "sync group", text: inst("") + group(" notify_fenced /etc/keepalived/g-fenced.sh\n"),
			grp: Notify{Fenced: "/etc/keepalived/g-fenced.sh"}},
		{name: "absent: empty, so FENCED falls back to notify_fault", text: inst(" notify_fault /f.sh\n"),
			inst: Notify{Fault: "/f.sh"}},
		{name: "instance: missing value", text: inst(" notify_fenced\n"),
			wantDiags: []string{"error t.conf:4: 'notify_fenced' is missing its value"}},
		{name: "sync group: missing value", text: inst("") + group(" notify_fenced\n"),
			wantDiags: []string{"error t.conf:20: 'notify_fenced' is missing its value"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, d := Parse("t.conf", []byte(tc.text), Options{NoInclude: true})
			if got := diagStrings(d); strings.Join(got, "\n") != strings.Join(tc.wantDiags, "\n") {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.wantDiags, "\n"))
			}
			if i := c.Instance("V"); i == nil || i.Notify != tc.inst {
				t.Errorf("instance notify = %+v, want %+v", i, tc.inst)
			}
			var grp Notify
			if len(c.SyncGroups) > 0 {
				grp = c.SyncGroups[0].Notify
			}
			if grp != tc.grp {
				t.Errorf("group notify = %+v, want %+v", grp, tc.grp)
			}
		})
	}
}
