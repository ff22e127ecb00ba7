package consensus

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestOwnerRecordsByKey: records are keyed by the instance's identity, the
// previous owner and its hold are kept, the previous owner's release is
// its acknowledgement, and apply times are this node's.
func TestOwnerRecordsByKey(t *testing.T) {
	f := NewFSM(0)
	claim := func(key, node string, prev uint64, prio int) Command {
		return Command{Type: CmdClaim, Claim: &Claim{Key: key, VRID: 51, Node: node, PrevEpoch: prev, Priority: prio, Hold: 2 * time.Second, At: t0}}
	}
	renew := func(node string, keys map[string]uint64) Command {
		return Command{Type: CmdRenew, Renew: &Renew{Node: node, Keys: keys, SentAt: t0}}
	}
	release := func(key, node string, epoch uint64) Command {
		return Command{Type: CmdRelease, Release: &Release{Key: key, VRID: 51, Node: node, Epoch: epoch, At: t0}}
	}
	const eth0, eth1 = "51/eth0/ipv4", "51/eth1/ipv4"
	tests := []struct {
		name    string
		cmd     Command
		wantErr bool
		refused []string
		key     string
		want    Owner // Node, Epoch, Prev, PrevReleased, Priority checked
	}{
		{"claim on eth0", claim(eth0, "d1", 0, 100), false, nil, eth0, Owner{Node: "d1", Epoch: 1, PrevReleased: true, Priority: 100}},
		{"same VRID on eth1 is another record", claim(eth1, "d2", 0, 100), false, nil, eth1, Owner{Node: "d2", Epoch: 1, PrevReleased: true, Priority: 100}},
		{"batched renewal, one key stale", renew("d1", map[string]uint64{eth0: 1, eth1: 1}), true, []string{eth1}, eth0, Owner{Node: "d1", Epoch: 1, PrevReleased: true, Priority: 100}},
		{"takeover keeps the previous owner", claim(eth0, "d3", 1, 150), false, nil, eth0, Owner{Node: "d3", Epoch: 2, Prev: "d1", Priority: 150}},
		{"renewal of the old epoch refused", renew("d1", map[string]uint64{eth0: 1}), true, []string{eth0}, eth0, Owner{Node: "d3", Epoch: 2, Prev: "d1", Priority: 150}},
		{"previous owner's release acknowledges", release(eth0, "d1", 1), false, nil, eth0, Owner{Node: "d3", Epoch: 2, Prev: "d1", PrevReleased: true, Priority: 150}},
		{"a stranger's release is refused", release(eth0, "d2", 1), true, nil, eth0, Owner{Node: "d3", Epoch: 2, Prev: "d1", PrevReleased: true, Priority: 150}},
		{"owner releases", release(eth0, "d3", 2), false, nil, eth0, Owner{Node: "", Epoch: 2, Prev: "d1", PrevReleased: true, Priority: 150}},
		{"claim after release", claim(eth0, "d1", 2, 100), false, nil, eth0, Owner{Node: "d1", Epoch: 3, Prev: "", PrevReleased: true, Priority: 100}},
	}
	var lastApplied time.Time
	for i, tc := range tests {
		r := applyCmd(t, f, uint64(i+1), tc.cmd)
		if (r.Error != "") != tc.wantErr {
			t.Fatalf("%s: result %+v, want error %v", tc.name, r, tc.wantErr)
		}
		if len(r.Refused) != len(tc.refused) || (len(r.Refused) > 0 && r.Refused[0] != tc.refused[0]) {
			t.Fatalf("%s: refused %v, want %v", tc.name, r.Refused, tc.refused)
		}
		got := f.OwnerRecords()[tc.key]
		if got.Node != tc.want.Node || got.Epoch != tc.want.Epoch || got.Prev != tc.want.Prev || got.PrevReleased != tc.want.PrevReleased || got.Priority != tc.want.Priority {
			t.Fatalf("%s: record %+v, want %+v", tc.name, got.Owner, tc.want)
		}
		if got.Key != tc.key {
			t.Fatalf("%s: key %q", tc.name, got.Key)
		}
		if got.Applied.IsZero() || got.Applied.Before(lastApplied) {
			t.Fatalf("%s: applied at %v (before %v)", tc.name, got.Applied, lastApplied)
		}
		lastApplied = got.Applied
	}
	// The takeover remembered when d1's last accepted renewal was applied.
	recs := f.OwnerRecords()
	if recs[eth0].PrevHold != 0 {
		t.Errorf("after a release the previous hold is %s, want 0", recs[eth0].PrevHold)
	}
}

// TestOwnerTimesAfterRestore: a restored node counts every record as
// applied at restore time (later than the truth: on the safe side).
func TestOwnerTimesAfterRestore(t *testing.T) {
	f := NewFSM(0)
	applyCmd(t, f, 1, Command{Type: CmdClaim, Claim: &Claim{Key: "7/eth0/ipv4", VRID: 7, Node: "d1", At: t0}})
	before := f.OwnerRecords()["7/eth0/ipv4"].Applied
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(0)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	after := g.OwnerRecords()["7/eth0/ipv4"]
	if after.Node != "d1" || after.Applied.Before(before) || after.PrevSeen.IsZero() {
		t.Fatalf("restored record %+v (applied %v, before %v)", after.Owner, after.Applied, before)
	}
}
