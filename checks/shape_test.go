package checks

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestSameCheckerSeesEveryField: sameChecker must tell apart any two
// checkers whose Keys differ, or Reload would merge different checks.
// Each leaf field of Checker is changed in turn (found by reflection, so
// a field added later is covered or fails here).
func TestSameCheckerSeesEveryField(t *testing.T) {
	base := Checker{Kind: KindHTTP, Connect: netip.MustParseAddrPort("10.0.0.1:80"), ConnectTimeout: time.Second,
		DelayLoop: time.Second, HTTP: HTTPOptions{URLs: []URL{{Path: "/", Status: []StatusRange{{200, 200}}}}},
		UDP: UDPOptions{Payload: []byte{1}, ReplyData: []byte{2}}}
	var paths [][]int
	var walk func(tp reflect.Type, path []int)
	walk = func(tp reflect.Type, path []int) {
		for i := 0; i < tp.NumField(); i++ {
			f := tp.Field(i)
			p := append(append([]int(nil), path...), i)
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == tp.PkgPath() {
				walk(f.Type, p)
				continue
			}
			paths = append(paths, p)
		}
	}
	walk(reflect.TypeOf(base), nil)
	for _, p := range paths {
		c := base
		c.HTTP.URLs = []URL{{Path: "/", Status: []StatusRange{{200, 200}}}}
		f := reflect.ValueOf(&c).Elem().FieldByIndex(p)
		name := reflect.TypeOf(c).FieldByIndex(p).Name
		if !mutate(f) {
			t.Errorf("field %s (%s): no way to change it in this test", name, f.Type())
			continue
		}
		if base.Key() == c.Key() {
			t.Errorf("field %s: changing it left the Key equal", name)
			continue
		}
		if sameChecker(&base, &c) {
			t.Errorf("field %s: changed, but sameChecker says the same", name)
		}
	}
	// And the URLs' own fields.
	for i := 0; i < reflect.TypeOf(URL{}).NumField(); i++ {
		c := base
		c.HTTP.URLs = []URL{{Path: "/", Status: []StatusRange{{200, 200}}}}
		f := reflect.ValueOf(&c.HTTP.URLs[0]).Elem().Field(i)
		if !mutate(f) {
			t.Errorf("URL field %d: no way to change it", i)
			continue
		}
		if sameChecker(&base, &c) {
			t.Errorf("URL field %s: changed, but sameChecker says the same", reflect.TypeOf(URL{}).Field(i).Name)
		}
	}
	if c := base; !sameChecker(&base, &c) {
		t.Error("a copy is not the same checker")
	}
}

// mutate changes v to another value of its type.
func mutate(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint16:
		v.SetUint(v.Uint() + 1)
	case reflect.Slice:
		switch v.Type().Elem().Kind() {
		case reflect.Uint8:
			v.SetBytes(append(append([]byte(nil), v.Bytes()...), 9))
		case reflect.Struct:
			n := reflect.Append(v, reflect.New(v.Type().Elem()).Elem())
			v.Set(n)
		default:
			return false
		}
	case reflect.Struct:
		switch x := v.Addr().Interface().(type) {
		case *netip.Addr:
			*x = netip.MustParseAddr("10.9.9.9")
		case *netip.AddrPort:
			*x = netip.MustParseAddrPort("10.9.9.9:99")
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// TestDialPlan: what the connector is asked to do for each kind of
// address and bind setting, and when Probe must dial instead.
func TestDialPlan(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo interface")
	}
	tests := []struct {
		name      string
		connect   string
		bindTo    string
		bindPort  uint16
		bindIf    string
		ok        bool
		local     string // "" none
		zone      uint32 // of the remote
		localZone uint32
	}{
		{"IPv4", "10.0.0.7:80", "", 0, "", true, "", 0, 0},
		{"IPv4 bindto", "10.0.0.7:80", "10.0.0.1", 0, "", true, "10.0.0.1:0", 0, 0},
		{"IPv4 bind_port only", "10.0.0.7:80", "", 4000, "", true, "0.0.0.0:4000", 0, 0},
		{"IPv4 with a missing bind_if", "10.0.0.7:80", "", 0, "nosuchif0", true, "", 0, 0},
		{"IPv6 global", "[fd00::7]:80", "", 0, "", true, "", 0, 0},
		{"IPv6 bind_port only", "[fd00::7]:80", "", 4000, "", true, "[::]:4000", 0, 0},
		{"link-local with bind_if", "[fe80::7]:80", "", 0, "lo", true, "", uint32(lo.Index), 0},
		{"link-local, bind_if missing", "[fe80::7]:80", "", 0, "nosuchif0", false, "", 0, 0},
		{"link-local source on bind_if", "[fe80::7]:80", "fe80::1", 0, "lo", true, "[fe80::1]:0", uint32(lo.Index), uint32(lo.Index)},
		{"zone in the address", "[fe80::7%lo]:80", "", 0, "", false, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Checker{Kind: KindTCP, Connect: netip.MustParseAddrPort(tt.connect), BindPort: tt.bindPort, BindIf: tt.bindIf,
				ConnectTimeout: 3 * time.Second, DelayLoop: time.Second}
			if tt.bindTo != "" {
				c.BindTo = netip.MustParseAddr(tt.bindTo)
			}
			p := newTCPProber(c)
			plan, ok := p.dialPlan()
			if ok != tt.ok {
				t.Fatalf("planned %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			local := ""
			if plan.local.IsValid() {
				local = plan.local.String()
			}
			if plan.remote != c.Connect || local != tt.local || plan.remoteZone != tt.zone ||
				plan.localZone != tt.localZone || plan.timeout != 3*time.Second {
				t.Fatalf("plan %+v, want remote %s local %q zones %d/%d", plan, c.Connect, tt.local, tt.zone, tt.localZone)
			}
		})
	}
}
