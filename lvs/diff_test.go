package lvs

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func svc(addr string, port uint16, sched string, dests ...Dest) *Service {
	a := netip.MustParseAddr(addr)
	k := ServiceKey{Family: familyOf(a), Proto: ProtoTCP, Addr: a, Port: port}
	s := &Service{Key: k, Scheduler: sched, Netmask: DefaultNetmask(k.Family), Dests: nil}
	for _, d := range dests {
		s.Dests.Set(d)
	}
	return s
}

func dst(addr string, port uint16, w int) Dest {
	return Dest{Addr: netip.MustParseAddr(addr), Port: port, Weight: w}
}

func table(ss ...*Service) Table {
	t := Table{}
	for _, s := range ss {
		t[s.Key] = s
	}
	return t
}

func opKinds(ops []Op) []string {
	var out []string
	for _, o := range ops {
		out = append(out, o.String())
	}
	return out
}

func TestDiff(t *testing.T) {
	foreign := svc("192.0.2.9", 80, "rr", dst("10.9.9.9", 80, 1))
	withFlags := svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1))
	withFlags.Flags = FlagPersistent | FlagHashed
	withFlags.Timeout = 300
	hashedOnly := svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1))
	hashedOnly.Flags = FlagHashed | FlagPersistent
	hashedOnly.Timeout = 300
	tests := []struct {
		name     string
		cur, des Table
		owned    []ServiceKey
		want     []string
	}{
		{
			name: "empty kernel: add service then its dests in order",
			cur:  Table{},
			des:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.2", 80, 2), dst("10.1.0.1", 80, 1))),
			want: []string{
				"add-service TCP 10.0.0.1:80 wrr flags 0x0 timeout 0",
				"add-dest TCP 10.0.0.1:80 -> 10.1.0.1:80 Masq weight 1",
				"add-dest TCP 10.0.0.1:80 -> 10.1.0.2:80 Masq weight 2",
			},
		},
		{
			name: "equal tables: nothing",
			cur:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1))),
			des:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1))),
		},
		{
			name: "weight change is an update",
			cur:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1))),
			des:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 5))),
			want: []string{"update-dest TCP 10.0.0.1:80 -> 10.1.0.1:80 Masq weight 5"},
		},
		{
			name: "remove before add within a service",
			cur:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1))),
			des:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.2", 80, 1))),
			want: []string{
				"delete-dest TCP 10.0.0.1:80 -> 10.1.0.1:80",
				"add-dest TCP 10.0.0.1:80 -> 10.1.0.2:80 Masq weight 1",
			},
		},
		{
			name: "scheduler change is a service update, dests kept",
			cur:  table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 1))),
			des:  table(svc("10.0.0.1", 80, "lc", dst("10.1.0.1", 80, 1))),
			want: []string{"update-service TCP 10.0.0.1:80 lc flags 0x0 timeout 0"},
		},
		{
			name: "kernel-only hashed flag is ignored",
			cur:  table(hashedOnly),
			des:  table(withFlags),
		},
		{
			name: "foreign service left alone",
			cur:  table(foreign),
			des:  Table{},
		},
		{
			name:  "owned service no longer desired is deleted",
			cur:   table(foreign, svc("10.0.0.1", 80, "rr")),
			des:   Table{},
			owned: []ServiceKey{svc("10.0.0.1", 80, "rr").Key},
			want:  []string{"delete-service TCP 10.0.0.1:80"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := opKinds(Diff(tc.cur, tc.des, func(k ServiceKey) bool { return slices.Contains(tc.owned, k) }))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Diff:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestApplyOpMakesTablesEqual(t *testing.T) {
	cur := table(svc("10.0.0.1", 80, "rr", dst("10.1.0.1", 80, 1), dst("10.1.0.3", 80, 1)), svc("10.0.0.2", 80, "rr"))
	des := table(svc("10.0.0.1", 80, "wrr", dst("10.1.0.1", 80, 3), dst("10.1.0.2", 80, 1)), svc("10.0.0.3", 443, "sh"))
	owned := func(ServiceKey) bool { return true }
	work := cur.Clone()
	for _, op := range Diff(cur, des, owned) {
		applyOp(work, op)
	}
	if rest := Diff(work, des, owned); len(rest) != 0 {
		t.Fatalf("after applying the diff, still: %q", opKinds(rest))
	}
}

// The picture of a new service gets room for its destinations at once,
// and none of the desired service's slices.
func TestApplyOpNewServiceDests(t *testing.T) {
	var ds []Dest
	for i := range 20 {
		ds = append(ds, dst(fmt.Sprintf("10.1.0.%d", i+1), 80, 1))
	}
	des := table(svc("10.0.0.1", 80, "rr", ds...))
	ops := Diff(Table{}, des, func(ServiceKey) bool { return true })
	work := Table{}
	allocs := testing.AllocsPerRun(20, func() {
		clear(work)
		for _, op := range ops {
			applyOp(work, op)
		}
	})
	// The service and its destination list (growing it one AddDest at a
	// time took six lists, and a copy of the desired one was dropped).
	if allocs > 2 {
		t.Errorf("%v allocations to picture one new service of 20 destinations, want 2", allocs)
	}
	s := work[des[svc("10.0.0.1", 80, "rr").Key].Key]
	if len(s.Dests) != 20 || &s.Dests[0] == &des[s.Key].Dests[0] {
		t.Errorf("picture's destinations: %d, shared with the desired table: %v", len(s.Dests), &s.Dests[0] == &des[s.Key].Dests[0])
	}
}

func TestNetmask(t *testing.T) {
	tests := []struct {
		fam  uint16
		mask string
		want string
		err  bool
	}{
		{AFInet, "", "255.255.255.255", false},
		{AFInet, "255.255.255.0", "255.255.255.0", false},
		{AFInet, "255.0.255.0", "", true},
		{AFInet6, "", "128", false},
		{AFInet6, "ffff:ffff:ffff:ffff::", "64", false},
		{AFInet6, "255.255.255.0", "", true},
	}
	for _, tc := range tests {
		var m netip.Addr
		if tc.mask != "" {
			m = netip.MustParseAddr(tc.mask)
		}
		got, err := NetmaskFromAddr(tc.fam, m)
		if (err != nil) != tc.err {
			t.Errorf("NetmaskFromAddr(%d, %q) error %v, want error %v", tc.fam, tc.mask, err, tc.err)
			continue
		}
		if err == nil && FormatNetmask(tc.fam, got) != tc.want {
			t.Errorf("NetmaskFromAddr(%d, %q) = %s, want %s", tc.fam, tc.mask, FormatNetmask(tc.fam, got), tc.want)
		}
	}
}
