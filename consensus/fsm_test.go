package consensus

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// applyCmd encodes c and applies it at index like raft would.
func applyCmd(t *testing.T, f *FSM, index uint64, c Command) ApplyResult {
	t.Helper()
	data, err := EncodeCommand(c)
	if err != nil {
		t.Fatalf("encode %s: %v", c.Type, err)
	}
	res, ok := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(ApplyResult)
	if !ok {
		t.Fatalf("apply returned %T", res)
	}
	return res
}

func push(id, text string) Command {
	return Command{Type: CmdPushConfig, Push: &PushConfig{PushID: id, Source: "k.conf", Text: text, PushedBy: "op", At: t0}}
}

func TestFSMPushDedupRollbackHistory(t *testing.T) {
	f := NewFSM(3)
	var got []ConfigVersion
	f.onConfig = func(cv ConfigVersion) { got = append(got, cv) }
	if r := applyCmd(t, f, 1, push("a", "one")); r.Version != 1 || r.Duplicate {
		t.Fatalf("first push = %+v", r)
	}
	// The same push id again (a retry across a leader change) commits nothing.
	if r := applyCmd(t, f, 2, push("a", "one")); r.Version != 1 || !r.Duplicate {
		t.Fatalf("retried push = %+v", r)
	}
	applyCmd(t, f, 3, push("b", "two"))
	applyCmd(t, f, 4, push("c", "three"))
	applyCmd(t, f, 5, push("d", "four"))
	h := f.History()
	if len(h) != 3 || h[0].Version != 2 || h[2].Version != 4 {
		t.Fatalf("history = %+v, want versions 2..4", h)
	}
	if r := applyCmd(t, f, 6, Command{Type: CmdRollback, Rollback: &Rollback{PushID: "e", Version: 1, At: t0}}); r.Error == "" || !strings.Contains(r.Error, "not in the history") {
		t.Fatalf("rollback to dropped version = %+v", r)
	}
	r := applyCmd(t, f, 7, Command{Type: CmdRollback, Rollback: &Rollback{PushID: "f", Version: 2, PushedBy: "op2", At: t0}})
	if r.Version != 5 || r.Error != "" {
		t.Fatalf("rollback = %+v", r)
	}
	cur, _ := f.Current()
	if cur.Text != "two" || cur.RollbackOf != 2 || cur.Version != 5 || cur.Index != 7 || cur.PushedBy != "op2" {
		t.Fatalf("current after rollback = %+v", cur)
	}
	if len(got) != 5 || got[4].Version != 5 {
		t.Fatalf("notified %d versions, last %+v", len(got), got[len(got)-1])
	}
	// A wrong checksum is refused.
	bad := push("g", "five")
	bad.Push.SHA256 = strings.Repeat("0", 64)
	if r := applyCmd(t, f, 8, bad); !strings.Contains(r.Error, "sha256 mismatch") {
		t.Fatalf("bad sha = %+v", r)
	}
}

func TestFSMOwnership(t *testing.T) {
	f := NewFSM(0)
	claim := func(node string, prev uint64) Command {
		return Command{Type: CmdClaim, Claim: &Claim{VRID: 51, Node: node, PrevEpoch: prev, At: t0}}
	}
	tests := []struct {
		name      string
		cmd       Command
		wantErr   bool
		wantEpoch uint64
		wantOwner string
	}{
		{"first claim", claim("d1", 0), false, 1, "d1"},
		{"stale claim", claim("d2", 0), true, 1, "d1"},
		{"retried claim", claim("d1", 0), false, 1, "d1"},
		{"renew by owner", Command{Type: CmdRenew, Renew: &Renew{Node: "d1", Epochs: map[int]uint64{51: 1}, SentAt: t0.Add(time.Second)}}, false, 0, "d1"},
		{"renew by other", Command{Type: CmdRenew, Renew: &Renew{Node: "d2", Epochs: map[int]uint64{51: 1}, SentAt: t0}}, true, 0, "d1"},
		{"takeover claim", claim("d2", 1), false, 2, "d2"},
		{"renew stale epoch", Command{Type: CmdRenew, Renew: &Renew{Node: "d1", Epochs: map[int]uint64{51: 1}, SentAt: t0}}, true, 0, "d2"},
		// The previous owner's release after the takeover is its
		// acknowledgement (the new owner's fast path), not a refusal.
		{"release by the previous owner acknowledges", Command{Type: CmdRelease, Release: &Release{VRID: 51, Node: "d1", Epoch: 1, At: t0}}, false, 2, "d2"},
		{"release stale", Command{Type: CmdRelease, Release: &Release{VRID: 51, Node: "d3", Epoch: 1, At: t0}}, true, 2, "d2"},
		{"release by owner", Command{Type: CmdRelease, Release: &Release{VRID: 51, Node: "d2", Epoch: 2, At: t0}}, false, 2, ""},
		{"claim after release", claim("d3", 2), false, 3, "d3"},
	}
	for i, tc := range tests {
		r := applyCmd(t, f, uint64(i+1), tc.cmd)
		if (r.Error != "") != tc.wantErr {
			t.Fatalf("%s: result %+v, want error %v", tc.name, r, tc.wantErr)
		}
		if tc.wantEpoch != 0 && r.Epoch != tc.wantEpoch {
			t.Fatalf("%s: epoch %d, want %d", tc.name, r.Epoch, tc.wantEpoch)
		}
		if o := f.Owners()["51"]; o.Node != tc.wantOwner {
			t.Fatalf("%s: owner %q, want %q", tc.name, o.Node, tc.wantOwner)
		}
	}
	if o := f.Owners()["51"]; !o.RenewedAt.Equal(t0) || o.Epoch != 3 {
		t.Fatalf("final owner %+v", o)
	}
}

func TestFSMSnapshotRestoreAll(t *testing.T) {
	f := NewFSM(0)
	applyCmd(t, f, 1, push("a", "one"))
	applyCmd(t, f, 2, push("b", "two"))
	applyCmd(t, f, 3, Command{Type: CmdApplied, Applied: &Applied{Node: "d1", Version: 2, At: t0}})
	applyCmd(t, f, 4, Command{Type: CmdApplied, Applied: &Applied{Node: "d2", Version: 2, Error: "no such interface eth9", At: t0}})
	applyCmd(t, f, 5, Command{Type: CmdHealth, Health: &Health{Node: "d1", At: t0, Entries: []HealthEntry{{VS: "v", RS: "r1", Up: true}, {VS: "v", RS: "r2", Up: false}}}})
	applyCmd(t, f, 6, Command{Type: CmdClaim, Claim: &Claim{VRID: 7, Node: "d1", At: t0}})

	// A view that is gone leaves no empty maps behind.
	applyCmd(t, f, 7, Command{Type: CmdHealth, Health: &Health{Node: "d2", At: t0, Entries: []HealthEntry{{VS: "old", RS: "r", Up: true}}}})
	applyCmd(t, f, 8, Command{Type: CmdHealth, Health: &Health{Node: "d2", At: t0, Entries: []HealthEntry{{VS: "old", RS: "r", Gone: true}}}})
	if _, ok := f.HealthTable()["old"]; ok {
		t.Fatal("gone view left in the table")
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(0)
	var notified uint64
	g.onConfig = func(cv ConfigVersion) { notified = cv.Version }
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	var a, b State
	f.Read(func(s *State) { a = *s })
	g.Read(func(s *State) { b = *s })
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("restored state differs:\n%+v\n%+v", a, b)
	}
	if notified != 2 {
		t.Fatalf("restore notified version %d, want 2", notified)
	}
	// A duplicate push id is still recognised after restore.
	if r := applyCmd(t, g, 7, push("a", "one")); !r.Duplicate {
		t.Fatalf("push id forgotten by restore: %+v", r)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad version", []byte{9, '{', '}'}},
		{"bad json", []byte{codecVersion, '{'}},
		{"unknown type", append([]byte{codecVersion}, `{"type":"nope","push":{"push_id":"x"}}`...)},
		{"no payload", append([]byte{codecVersion}, `{"type":"push_config"}`...)},
		{"two payloads", append([]byte{codecVersion}, `{"type":"push_config","push":{"push_id":"x"},"applied":{"node":"a"}}`...)},
		{"wrong payload", append([]byte{codecVersion}, `{"type":"push_config","applied":{"node":"a"}}`...)},
		{"vrid out of range", append([]byte{codecVersion}, `{"type":"claim","claim":{"node":"a","vrid":300}}`...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeCommand(tc.data); !errors.Is(err, ErrBadCommand) {
				t.Fatalf("err = %v, want ErrBadCommand", err)
			}
		})
	}
	// A bad entry in the log is refused by Apply, not a panic.
	f := NewFSM(0)
	if r, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{1, 2}}).(ApplyResult); r.Error == "" {
		t.Fatal("bad entry applied without error")
	}
	if _, err := DecodeSnapshot([]byte(`{"format":99}`)); err == nil {
		t.Fatal("unknown snapshot format accepted")
	}
	if _, err := DecodeSnapshot([]byte(`{"format":1,"current":{"version":3}}`)); err == nil {
		t.Fatal("inconsistent snapshot accepted")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{push("a", "x"), {Type: CmdRenew, Renew: &Renew{Node: "d", Epochs: map[int]uint64{1: 2}}}, {Type: CmdHealth, Health: &Health{Node: "d", Entries: []HealthEntry{{VS: "v", RS: "r"}}}}} {
		b, _ := EncodeCommand(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode and apply without panicking.
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("decoded command does not re-encode: %v", err)
		}
		NewFSM(0).Apply(&raft.Log{Type: raft.LogCommand, Data: b, Index: 1})
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	fsm := NewFSM(0)
	data, _ := EncodeCommand(push("a", "x"))
	fsm.Apply(&raft.Log{Type: raft.LogCommand, Data: data, Index: 1})
	s, _ := fsm.Snapshot()
	f.Add([]byte(s.(fsmSnapshot)))
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeSnapshot(data)
		if err != nil {
			return
		}
		g := NewFSM(0)
		g.st = st
		// A restored state must keep working.
		b, _ := EncodeCommand(push("zz", "y"))
		g.Apply(&raft.Log{Type: raft.LogCommand, Data: b, Index: 2})
	})
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }
