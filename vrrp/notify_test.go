package vrrp

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hakeep/script"
)

type recAlerter struct {
	mu   sync.Mutex
	msgs []string
}

func (a *recAlerter) Alert(subject, body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.msgs = append(a.msgs, subject+" / "+body)
}

func TestScriptNotifier(t *testing.T) {
	dir := t.TempDir()
	log := dir + "/log"
	anyScript := writeTestScript(t, dir, "any.sh", `echo "any $@" >> `+log)
	slow := writeTestScript(t, dir, "slow.sh", `sleep 0.2; echo "fault-script" >> `+log)
	al := &recAlerter{}
	n := &ScriptNotifier{Runner: &script.Runner{}, Alerter: al, RouterID: "lb1", Timeout: 5 * time.Second}
	sp := NotifySpec{Any: anyScript, Fault: slow}
	start := time.Now()
	n.Notify(Event{Name: "VI_1", State: StateFault, Priority: 100, Scripts: sp, SMTPAlert: true})
	n.Notify(Event{Name: "VI_1", State: StateBackup, Priority: 90, Scripts: sp})
	n.Notify(Event{Group: true, Name: "G1", State: StateMaster, Scripts: NotifySpec{Any: anyScript}})
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Notify blocked for %v", d) // must queue, not run
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	// Per instance in order: the state's script, then notify; the group's
	// queue runs independently.
	var inst []string
	for _, l := range lines {
		if !strings.Contains(l, "GROUP") {
			inst = append(inst, l)
		}
	}
	want := []string{"fault-script", "any INSTANCE VI_1 FAULT 100", "any INSTANCE VI_1 BACKUP 90"}
	if strings.Join(inst, "|") != strings.Join(want, "|") {
		t.Fatalf("instance scripts %q want %q", inst, want)
	}
	if !strings.Contains(string(b), "any GROUP G1 MASTER") {
		t.Fatalf("group notify missing: %q", b)
	}
	if len(al.msgs) != 1 || al.msgs[0] != "[lb1] VRRP Instance VI_1 - Entering FAULT state / => VRRP Instance is in FAULT state <=" {
		t.Fatalf("alerts %q", al.msgs)
	}
}

// TestScriptNotifierFenced: FENCED runs notify_fenced, or notify_fault
// when it is not set (never both), and the generic notify script is told
// FAULT, the word keepalived scripts know; the e-mail says FENCED.
func TestScriptNotifierFenced(t *testing.T) {
	dir := t.TempDir()
	log := dir + "/log"
	// Each script logs its role and its arguments.
	fenced := writeTestScript(t, dir, "fenced.sh", `echo fenced "$@" >> `+log)
	fault := writeTestScript(t, dir, "fault.sh", `echo fault "$@" >> `+log)
	anyScript := writeTestScript(t, dir, "any.sh", `echo any "$@" >> `+log)
	inst := Event{Name: "VI_1", State: StateFenced, Priority: 100, SMTPAlert: true}
	grp := Event{Group: true, Name: "G1", State: StateFenced, SMTPAlert: true}
	with := func(e Event, sp NotifySpec) Event { e.Scripts = sp; return e }
	const instMail = "[lb1] VRRP Instance VI_1 - Entering FENCED state / => VRRP Instance is FENCED: the cluster refused it MASTER, it holds no VIPs <="
	const grpMail = "[lb1] VRRP Group G1 - Entering FENCED state / => All VRRP group instances are now in FENCED state <="
	cases := []struct {
		name      string
		ev        Event
		wantRuns  []string
		wantAlert string
	}{
		{"notify_fenced set: instead of notify_fault", with(inst, NotifySpec{Fenced: fenced, Fault: fault, Any: anyScript}),
			[]string{"fenced", "any INSTANCE VI_1 FAULT 100"}, instMail},
		{"no notify_fenced: notify_fault", with(inst, NotifySpec{Fault: fault, Any: anyScript}),
			[]string{"fault", "any INSTANCE VI_1 FAULT 100"}, instMail},
		{"generic notify only", with(inst, NotifySpec{Any: anyScript}),
			[]string{"any INSTANCE VI_1 FAULT 100"}, instMail},
		{"notify_fenced only", with(inst, NotifySpec{Fenced: fenced}),
			[]string{"fenced"}, instMail},
		{"a real FAULT does not run notify_fenced", with(Event{Name: "VI_1", State: StateFault, Priority: 90}, NotifySpec{Fenced: fenced, Fault: fault, Any: anyScript}),
			[]string{"fault", "any INSTANCE VI_1 FAULT 90"}, ""},
		{"group: notify_fenced", with(grp, NotifySpec{Fenced: fenced, Fault: fault, Any: anyScript}),
			[]string{"fenced", "any GROUP G1 FAULT"}, grpMail},
		{"group: no notify_fenced, notify_fault", with(grp, NotifySpec{Fault: fault, Any: anyScript}),
			[]string{"fault", "any GROUP G1 FAULT"}, grpMail},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(log)
			al := &recAlerter{}
			n := &ScriptNotifier{Runner: &script.Runner{}, Alerter: al, RouterID: "lb1", Timeout: 5 * time.Second}
			n.Notify(tc.ev)
			if err := n.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(log)
			if got := strings.Split(strings.TrimSpace(string(b)), "\n"); strings.Join(got, "|") != strings.Join(tc.wantRuns, "|") {
				t.Errorf("scripts ran %q, want %q", got, tc.wantRuns)
			}
			var wantAlerts []string
			if tc.wantAlert != "" {
				wantAlerts = []string{tc.wantAlert}
			}
			if strings.Join(al.msgs, "|") != strings.Join(wantAlerts, "|") {
				t.Errorf("alerts %q, want %q", al.msgs, wantAlerts)
			}
		})
	}
}
