package lvs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// keyStrings lists a table's keys as ipvsadm names them, sorted.
func keyStrings(t Table) []string {
	var out []string
	for _, k := range t.Keys() {
		out = append(out, k.String())
	}
	return out
}

// stateKeys reads a state file that must be valid (or missing: nothing
// owned).
func stateKeys(t *testing.T, path string) []string {
	t.Helper()
	owned, err := readState(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("state file: %v", err)
	}
	t2 := Table{}
	for k := range owned {
		t2[k] = nil
	}
	return keyStrings(t2)
}

func TestStateFileRoundTrip(t *testing.T) {
	tcp := func(a string, p uint16) ServiceKey {
		ad := netip.MustParseAddr(a)
		return ServiceKey{Family: familyOf(ad), Proto: ProtoTCP, Addr: ad, Port: p}
	}
	tests := []struct {
		name string
		keys []ServiceKey
	}{
		{"empty", nil},
		{"ipv4 and ipv6", []ServiceKey{tcp("10.0.0.1", 80), tcp("fd00::1", 443)}},
		{"udp, sctp and port 0 (persistent any-port)", []ServiceKey{
			{Family: AFInet, Proto: ProtoUDP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 53},
			{Family: AFInet6, Proto: ProtoSCTP, Addr: netip.MustParseAddr("fd00::2"), Port: 9},
			tcp("10.0.0.2", 0),
		}},
		{"firewall marks of both families", []ServiceKey{{Family: AFInet, FWMark: 7}, {Family: AFInet6, FWMark: 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "b") // missing: created
			path := filepath.Join(dir, StateFileName)
			want := map[ServiceKey]bool{}
			for _, k := range tt.keys {
				want[k] = true
			}
			if err := writeState(path, want); err != nil {
				t.Fatal(err)
			}
			got, err := readState(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("read %v, wrote %v", got, want)
			}
			for k := range want {
				if !got[k] {
					t.Errorf("%s lost (read %v)", k, got)
				}
			}
			for p, mode := range map[string]fs.FileMode{path: 0o600, dir: 0o700 | fs.ModeDir} {
				if st, err := os.Stat(p); err != nil || st.Mode() != mode {
					t.Errorf("%s: mode %v (%v), want %v", p, st.Mode(), err, mode)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
			owned, err := OwnedInStateFile(path)
			if err != nil || owned != (len(want) > 0) {
				t.Errorf("OwnedInStateFile = %v, %v; want %v", owned, err, len(want) > 0)
			}
		})
	}
}

func TestStateFileRejectsWhatItCannotTrust(t *testing.T) {
	const ok4 = `{"service":"TCP 10.0.0.1:80","family":2,"proto":6,"addr":"10.0.0.1","port":80}`
	tests := []struct {
		name, content, wantErr string
	}{
		{"empty file", ``, "EOF"},
		{"truncated", `{"version": 1, "services": [` + ok4, "unexpected EOF"},
		{"not json", "TCP 10.0.0.1:80\n", "invalid character"},
		{"no version", `{"services": [` + ok4 + `]}`, "version 0"},
		{"future version", `{"version": 2, "services": []}`, "version 2"},
		{"unknown field", `{"version": 1, "services": [], "extra": 1}`, "unknown field"},
		{"two documents", `{"version": 1, "services": []}{"version": 1}`, "data after"},
		{"bad address", `{"version": 1, "services": [{"service":"TCP 10.0.0.300:80","family":2,"proto":6,"addr":"10.0.0.300","port":80}]}`, "10.0.0.300"},
		{"family disagrees with address", `{"version": 1, "services": [{"service":"TCP 10.0.0.1:80","family":10,"proto":6,"addr":"10.0.0.1","port":80}]}`, "family 10"},
		{"unknown family", `{"version": 1, "services": [{"service":"FWM 7","family":7,"fwmark":7}]}`, "family 7"},
		{"firewall mark with an address", `{"version": 1, "services": [{"service":"FWM 7","family":2,"fwmark":7,"addr":"10.0.0.1"}]}`, "firewall-mark"},
		{"no protocol", `{"version": 1, "services": [{"service":"PROTO0 10.0.0.1:80","family":2,"addr":"10.0.0.1","port":80}]}`, "neither"},
		{"name disagrees with fields", `{"version": 1, "services": [{"service":"TCP 10.0.0.2:80","family":2,"proto":6,"addr":"10.0.0.1","port":80}]}`, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), StateFileName)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := readState(path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("readState: %v, want an error naming the file and containing %q", err, tt.wantErr)
			}
			if owned, err := OwnedInStateFile(path); owned || err == nil {
				t.Fatalf("OwnedInStateFile = %v, %v; want false and the error", owned, err)
			}
		})
	}
	// The one accepted form of "nothing": no file at all.
	if owned, err := OwnedInStateFile(filepath.Join(t.TempDir(), "missing")); owned || err != nil {
		t.Fatalf("missing file: %v, %v", owned, err)
	}
}

// TestReconcilerStateAcrossRestart: a first run programs services, then a
// second reconciler (hakeepd restarted) with the same state file deletes
// what the first one owned and the second no longer wants, and nothing
// else.
func TestReconcilerStateAcrossRestart(t *testing.T) {
	a := svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1), dst("10.1.0.2", 80, 2))
	b := svc("10.0.0.2", 80, "rr", dst("10.1.0.1", 80, 1))
	f := svc("192.0.2.9", 80, "rr", dst("10.9.9.9", 80, 1)) // foreign from the start
	g := svc("192.0.2.10", 80, "rr")                        // foreign, made while hakeepd was down
	aForeign := svc("10.0.0.1", 80, "lc")                   // someone's service at a's address
	tests := []struct {
		name      string
		opt1      Options // first run; StateFile filled in unless noState1
		noState1  bool
		stop      bool  // first run stopped (else: it crashed)
		run1      Table // desired in the first run
		between   func(t *testing.T, k *fakeClient, path string)
		opt2      Options
		run2      Table // desired after the restart
		wantOps   []string
		wantTable []string // kernel after the restart
		wantState []string
		wantLog   string
	}{
		{
			name: "service removed from the configuration is deleted",
			stop: true, run1: table(a, b), run2: table(a),
			wantOps:   []string{"delete-service TCP 10.0.0.2:80"},
			wantTable: []string{"TCP 10.0.0.1:80", "TCP 192.0.2.9:80"},
			wantState: []string{"TCP 10.0.0.1:80"},
		},
		{
			name: "after a crash too",
			run1: table(a, b), run2: table(a),
			wantOps:   []string{"delete-service TCP 10.0.0.2:80"},
			wantTable: []string{"TCP 10.0.0.1:80", "TCP 192.0.2.9:80"},
			wantState: []string{"TCP 10.0.0.1:80"},
		},
		{
			name: "no virtual server left: all ours deleted, foreign ones kept",
			stop: true, run1: table(a, b), run2: Table{},
			between:   func(t *testing.T, k *fakeClient, _ string) { k.t[g.Key] = g.clone() },
			wantOps:   []string{"delete-service TCP 10.0.0.1:80", "delete-service TCP 10.0.0.2:80"},
			wantTable: []string{"TCP 192.0.2.9:80", "TCP 192.0.2.10:80"},
			wantState: nil,
		},
		{
			name: "same configuration: nothing changes",
			stop: true, run1: table(a, b), run2: table(a, b),
			wantTable: []string{"TCP 10.0.0.1:80", "TCP 10.0.0.2:80", "TCP 192.0.2.9:80"},
			wantState: []string{"TCP 10.0.0.1:80", "TCP 10.0.0.2:80"},
		},
		{
			name: "a foreign service adopted because desired is ours to delete",
			stop: true, run1: table(a, f), run2: table(a),
			wantOps:   []string{"delete-service TCP 192.0.2.9:80"},
			wantTable: []string{"TCP 10.0.0.1:80"},
			wantState: []string{"TCP 10.0.0.1:80"},
		},
		{
			name:     "first run kept no record: its services are foreign",
			noState1: true, stop: true, run1: table(a, b), run2: table(a),
			wantTable: []string{"TCP 10.0.0.1:80", "TCP 10.0.0.2:80", "TCP 192.0.2.9:80"},
			wantState: []string{"TCP 10.0.0.1:80"},
		},
		{
			name: "corrupt record: nothing deleted on a guess, a new record written",
			stop: true, run1: table(a, b), run2: table(a),
			between: func(t *testing.T, _ *fakeClient, path string) {
				if err := os.WriteFile(path, []byte(`{"version": 1, "services": [{"serv`), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantTable: []string{"TCP 10.0.0.1:80", "TCP 10.0.0.2:80", "TCP 192.0.2.9:80"},
			wantState: []string{"TCP 10.0.0.1:80"},
			wantLog:   "IPVS state file unreadable",
		},
		{
			name: "lvs_flush_on_stop VS: the record says they are gone",
			opt1: Options{FlushOnStop: true}, stop: true, run1: table(a, b), run2: Table{},
			between:   func(t *testing.T, k *fakeClient, _ string) { k.t[aForeign.Key] = aForeign.clone() },
			wantTable: []string{"TCP 10.0.0.1:80", "TCP 192.0.2.9:80"},
			wantState: nil,
		},
		{
			name: "bare lvs_flush_on_stop: the record says they are gone",
			opt1: Options{FlushOnStop: true, FlushAllOnStop: true}, stop: true, run1: table(a, b), run2: Table{},
			between:   func(t *testing.T, k *fakeClient, _ string) { k.t[aForeign.Key] = aForeign.clone() },
			wantTable: []string{"TCP 10.0.0.1:80"},
			wantState: nil,
		},
		{
			name: "lvs_flush at start: the old record is void",
			stop: true, run1: table(a, b), opt2: Options{Flush: true}, run2: table(b),
			wantOps:   []string{"add-service TCP 10.0.0.2:80 rr flags 0x0 timeout 0", "add-dest TCP 10.0.0.2:80 -> 10.1.0.1:80 Masq weight 1"},
			wantTable: []string{"TCP 10.0.0.2:80"},
			wantState: []string{"TCP 10.0.0.2:80"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "run", "hakeepd", StateFileName)
			k := newFake()
			k.t = table(f.clone())
			opt1 := tt.opt1
			if !tt.noState1 {
				opt1.StateFile = path
			}
			r1 := newRec(t, k, opt1)
			if _, err := r1.SetDesired(ctx, tt.run1); err != nil {
				t.Fatal(err)
			}
			if tt.stop {
				if err := r1.Stop(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if tt.between != nil {
				tt.between(t, k, path)
			}
			k.takeOps()
			var logs bytes.Buffer
			opt2 := tt.opt2
			opt2.StateFile = path
			opt2.Log = slog.New(slog.NewTextHandler(&logs, nil))
			opt2.Workers = 1 // services in parallel would apply in any order; wantOps is one order
			r2, err := NewReconciler(k, opt2)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r2.SetDesired(ctx, tt.run2); err != nil {
				t.Fatal(err)
			}
			if got := opKinds(k.takeOps()); !slices.Equal(got, tt.wantOps) {
				t.Errorf("changes after the restart:\n%q\nwant\n%q", got, tt.wantOps)
			}
			if got := keyStrings(k.t); !slices.Equal(got, tt.wantTable) {
				t.Errorf("kernel after the restart: %q, want %q", got, tt.wantTable)
			}
			if got := stateKeys(t, path); !slices.Equal(got, tt.wantState) {
				t.Errorf("state file after the restart: %q, want %q", got, tt.wantState)
			}
			if tt.wantLog != "" {
				if out := logs.String(); !strings.Contains(out, tt.wantLog) || !strings.Contains(out, "file="+path) {
					t.Errorf("log does not report the file:\n%s", out)
				}
				if _, err := os.Stat(path + ".corrupt"); err != nil {
					t.Errorf("the unreadable file was not kept: %v", err)
				}
			}
		})
	}
}

// crashPoint is the kernel table and state file a crash at some moment
// would leave.
type crashPoint struct {
	at     string
	kernel Table
	file   []byte // nil: no file
}

// crashRecorder is a fake kernel that records, around every change, what
// a crash at that moment would leave, and checks the record's ordering:
// a service is in the state file before it is created and until after it
// is deleted.
type crashRecorder struct {
	*fakeClient
	t      *testing.T
	path   string
	mu     sync.Mutex
	points []crashPoint
}

func (c *crashRecorder) snapshot(at string) {
	file, err := os.ReadFile(c.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.t.Error(err)
	}
	k, _ := c.fakeClient.Dump()
	c.points = append(c.points, crashPoint{at: at, kernel: k, file: file})
}

func (c *crashRecorder) Do(op Op) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.Kind == AddService || op.Kind == DelService {
		owned, err := readState(c.path)
		if err != nil || !owned[op.Service.Key] {
			c.t.Errorf("%s while the state file does not list it (%v)", op, err)
		}
	}
	c.snapshot("before " + op.String())
	err := c.fakeClient.Do(op)
	c.snapshot("after " + op.String())
	return err
}

// TestReconcilerStateCrashAnywhere: whatever moment hakeepd dies at, the
// next run ends with exactly the desired table plus the foreign services:
// it never deletes a foreign service and never leaves one of its own.
func TestReconcilerStateCrashAnywhere(t *testing.T) {
	a := svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1), dst("10.1.0.2", 80, 2))
	b := svc("10.0.0.2", 80, "rr", dst("10.1.0.1", 80, 1))
	c := svc("10.0.0.3", 80, "rr", dst("10.1.0.3", 80, 1))
	f := svc("192.0.2.9", 80, "rr", dst("10.9.9.9", 80, 1)) // foreign from the start
	g := svc("192.0.2.10", 80, "rr")                        // foreign, made while hakeepd was down
	tests := []struct {
		name        string
		flushOnStop bool
		runs        []Table
	}{
		{"add two, remove one", false, []Table{table(a, b), table(a)}},
		{"replace everything", false, []Table{table(a, b), table(c)}},
		{"remove all, add back", false, []Table{table(a, b), Table{}, table(b, c)}},
		{"stop with lvs_flush_on_stop", true, []Table{table(a, b, c)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), StateFileName)
			k := &crashRecorder{fakeClient: newFake(), t: t, path: path}
			k.fakeClient.t = table(f.clone())
			k.snapshot("start")
			r := newRec(t, k, Options{StateFile: path, FlushOnStop: tt.flushOnStop, Workers: 1})
			for i, d := range tt.runs {
				if _, err := r.SetDesired(ctx, d); err != nil {
					t.Fatal(err)
				}
				k.snapshot("after pass " + itoa(i))
			}
			if tt.flushOnStop {
				if err := r.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				k.snapshot("after stop")
			}
			if len(k.points) < 10 {
				t.Fatalf("only %d crash points recorded", len(k.points))
			}
			for _, p := range k.points {
				for _, want := range []Table{tt.runs[len(tt.runs)-1], {}} {
					k2 := newFake()
					k2.t = p.kernel.Clone()
					k2.t[g.Key] = g.clone()
					path2 := filepath.Join(t.TempDir(), StateFileName)
					if p.file != nil {
						if err := os.WriteFile(path2, p.file, 0o600); err != nil {
							t.Fatal(err)
						}
					}
					r2 := newRec(t, k2, Options{StateFile: path2})
					if _, err := r2.SetDesired(ctx, want); err != nil {
						t.Fatalf("crash %s, restart: %v", p.at, err)
					}
					rest := k2.t.Clone()
					for _, s := range []*Service{f, g} {
						if got, ok := rest[s.Key]; !ok || len(Diff(Table{s.Key: got}, table(s), nil)) > 0 {
							t.Errorf("crash %s, restart with %q: foreign %s deleted or changed", p.at, keyStrings(want), s.Key)
						}
						delete(rest, s.Key)
					}
					if ops := Diff(rest, want, func(ServiceKey) bool { return true }); len(ops) > 0 {
						t.Errorf("crash %s, restart with %q: kernel %q, left over: %q", p.at, keyStrings(want), keyStrings(k2.t), opKinds(ops))
					}
					if got := stateKeys(t, path2); !slices.Equal(got, keyStrings(want)) {
						t.Errorf("crash %s, restart with %q: state file %q", p.at, keyStrings(want), got)
					}
				}
			}
		})
	}
}

// TestReconcilerStateWrittenOnlyWhenOwnedChanges: a pass that changes no
// ownership (a reload with other weights, a resync) leaves the file alone.
func TestReconcilerStateWrittenOnlyWhenOwnedChanges(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), StateFileName)
	k := newFake()
	r := newRec(t, k, Options{StateFile: path})
	a := svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1))
	aHeavier := svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 5))
	b := svc("10.0.0.2", 80, "rr")
	steps := []struct {
		name      string
		do        func() error
		rewritten bool
	}{
		{"first service", func() error { _, err := r.SetDesired(ctx, table(a)); return err }, true},
		{"same table", func() error { _, err := r.SetDesired(ctx, table(a)); return err }, false},
		{"weight change", func() error { _, err := r.SetDesired(ctx, table(aHeavier)); return err }, false},
		{"resync", func() error { _, err := r.Resync(ctx); return err }, false},
		{"drift repair", func() error { k.Flush(); _, err := r.Resync(ctx); return err }, false},
		{"service added", func() error { _, err := r.SetDesired(ctx, table(aHeavier, b)); return err }, true},
		{"service removed", func() error { _, err := r.SetDesired(ctx, table(b)); return err }, true},
		{"stop without flush", func() error { return r.Stop(ctx) }, false},
	}
	var prev os.FileInfo
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		// A write is a rename of a new file: another inode.
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if rewritten := prev == nil || !os.SameFile(prev, st); rewritten != s.rewritten {
			t.Errorf("%s: state file rewritten %v, want %v", s.name, rewritten, s.rewritten)
		}
		prev = st
	}
	if got := stateKeys(t, path); !slices.Equal(got, []string{"TCP 10.0.0.2:80"}) {
		t.Fatalf("state file: %q", got)
	}
}

// TestReconcilerStateWriteFailure: an unwritable record does not hold the
// table back, is reported, and is written once possible.
func TestReconcilerStateWriteFailure(t *testing.T) {
	ctx := context.Background()
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(blocker, StateFileName)
	k := newFake()
	r := newRec(t, k, Options{StateFile: path})
	want := table(svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1)))
	_, err := r.SetDesired(ctx, want)
	if err == nil || !strings.Contains(err.Error(), "IPVS state file") {
		t.Fatalf("SetDesired: %v, want the state file error", err)
	}
	if rest := Diff(k.t, want, nil); len(rest) > 0 {
		t.Fatalf("table held back by the state file: %q", opKinds(rest))
	}
	if st := r.Status(); !strings.Contains(st.LastError, "IPVS state file") {
		t.Fatalf("status does not show it: %q", st.LastError)
	}
	if _, err := r.Resync(ctx); err == nil {
		t.Fatal("retry succeeded while the file still cannot be written")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateKeys(t, path); !slices.Equal(got, keyStrings(want)) {
		t.Fatalf("state file after the retry: %q", got)
	}
	if st := r.Status(); st.LastError != "" {
		t.Fatalf("status after the retry: %q", st.LastError)
	}
}

// TestAppendStateEntryIsJSON: the state file's entries are written by
// hand, byte for byte as json.Marshal writes them.
func TestAppendStateEntryIsJSON(t *testing.T) {
	keys := []ServiceKey{
		{Family: AFInet, Proto: ProtoTCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80},
		{Family: AFInet, Proto: ProtoUDP, Addr: netip.MustParseAddr("192.0.2.255"), Port: 65535},
		{Family: AFInet6, Proto: ProtoTCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443},
		{Family: AFInet6, Proto: ProtoTCP, Addr: netip.MustParseAddr("fe80::1%eth0"), Port: 8080},
		{Family: AFInet, FWMark: 7},
		{Family: AFInet6, FWMark: 4294967295},
		{Family: AFInet, Proto: 132, Addr: netip.MustParseAddr("10.0.0.2")}, // SCTP, port 0
		{Family: AFInet6, Proto: ProtoTCP, Addr: netip.MustParseAddr("::ffff:10.1.2.3"), Port: 1},
	}
	for _, k := range keys {
		want, err := json.Marshal(stateEntry{Service: k.String(), Family: k.Family, Proto: k.Proto, Addr: k.Addr, Port: k.Port, FWMark: k.FWMark})
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendStateEntry([]byte("x"), k)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("%v: wrote %s (%v), json.Marshal %s", k, got, err, want)
		}
	}
}

// TestStateTextKeptEqualsWhole: the state file written from the kept
// text of earlier writes is the file written from scratch.
func TestStateTextKeptEqualsWhole(t *testing.T) {
	dir := t.TempDir()
	kept, whole := filepath.Join(dir, "kept"), filepath.Join(dir, "whole")
	v6 := ServiceKey{Family: AFInet6, Proto: ProtoTCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443}
	fw := ServiceKey{Family: AFInet, FWMark: 9}
	union := func(ms ...map[ServiceKey]bool) map[ServiceKey]bool {
		out := map[ServiceKey]bool{}
		for _, m := range ms {
			for k := range m {
				out[k] = true
			}
		}
		return out
	}
	steps := []struct {
		name  string
		owned map[ServiceKey]bool
	}{
		{"first", stateKeysN(0, 50)},
		{"unchanged", stateKeysN(0, 50)},
		{"20 out, 20 in", stateKeysN(20, 50)},
		{"added before, between and after", union(stateKeysN(10, 70), map[ServiceKey]bool{v6: true, fw: true})},
		{"all but one removed", map[ServiceKey]bool{fw: true}},
		{"none", map[ServiceKey]bool{}},
		{"again", stateKeysN(5, 3)},
	}
	var st stateText
	for _, s := range steps {
		if err := st.write(kept, s.owned); err != nil {
			t.Fatal(err)
		}
		if err := writeState(whole, s.owned); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(kept)
		b, _ := os.ReadFile(whole)
		if string(a) != string(b) {
			t.Fatalf("%s: written from the kept text:\n%s\nfrom scratch:\n%s", s.name, a, b)
		}
		if got := stateKeys(t, kept); len(got) != len(s.owned) {
			t.Fatalf("%s: file holds %d services, want %d", s.name, len(got), len(s.owned))
		}
	}
}
