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
