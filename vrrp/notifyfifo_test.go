package vrrp

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"hakeep/internal/notifyfifo"
)

func TestFifoLine(t *testing.T) {
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Name: "VI_1", State: StateMaster, Priority: 100}, "INSTANCE \"VI_1\" MASTER 100\n"},
		{Event{Name: "VI_1", State: StateBackup, Priority: 90}, "INSTANCE \"VI_1\" BACKUP 90\n"},
		{Event{Name: "VI_1", State: StateFault}, "INSTANCE \"VI_1\" FAULT 0\n"},
		{Event{Name: "VI_1", State: StateStop, Priority: 100}, "INSTANCE \"VI_1\" STOP 100\n"},
		// keepalived's readers know FAULT, not hakeep's FENCED.
		{Event{Name: "VI_1", State: StateFenced, Priority: 100}, "INSTANCE \"VI_1\" FAULT 100\n"},
		// keepalived passes 0 as a group's priority.
		{Event{Group: true, Name: "G1", State: StateBackup, Priority: 7}, "GROUP \"G1\" BACKUP 0\n"},
	} {
		if got := tc.e.FifoLine(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}

// TestManagerNotifyFifo: a VRRP election and shutdown, through the
// manager's notification queue, write keepalived's lines to a real fifo
// that a reader follows.
func TestManagerNotifyFifo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vrrp.fifo")
	f, err := notifyfifo.Open(notifyfifo.Options{Path: path, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	s := specNamed("VI_1", 51, nil)
	set := &Set{Instances: []*InstanceSpec{s}}
	h := newHarness(t, set, func(o *Options) {
		o.Notifier = Notifiers{o.Notifier, FifoNotifier{Writers: []LineWriter{f}}}
	})
	h.waitState("VI_1", "BACKUP")
	h.clock.Advance(3600 * time.Millisecond)
	h.waitState("VI_1", "MASTER")
	h.stop()
	want := []string{`INSTANCE "VI_1" BACKUP 100`, `INSTANCE "VI_1" MASTER 100`, `INSTANCE "VI_1" STOP 100`}
	var got []string
	for len(got) < len(want) {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-time.After(5 * time.Second):
			t.Fatalf("fifo lines %q, want %q", got, want)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fifo lines %q, want %q", got, want)
	}
}
