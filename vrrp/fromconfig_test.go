package vrrp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hakeep/config"
)

const fullConf = `global_defs {
  router_id lb1
  vrrp_mcast_group4 224.0.0.19
}
vrrp_script chk_nginx {
  script "/usr/bin/killall -0 nginx"
  interval 2
  weight -20
  fall 3
  rise 2
}
vrrp_track_file tf1 {
  file /run/tf1
  weight 5
}
vrrp_sync_group G1 {
  group {
    VI_1
    VI_6
  }
  notify "/etc/keepalived/group.sh"
  notify_fenced "/etc/keepalived/group-fenced.sh"
  sync_group_tracking_weight
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 150
  advert_int 1
  nopreempt
  authentication {
    auth_type PASS
    auth_pass s3cret123
  }
  virtual_ipaddress {
    10.0.0.100/24 dev eth0 label eth0:1
    fd00::1/64
  }
  track_interface {
    eth1 weight -30
  }
  track_script {
    chk_nginx
  }
  track_file {
    tf1 weight 2
  }
  notify_master "/etc/keepalived/master.sh"
  notify "/etc/keepalived/notify.sh"
  notify_fault "/etc/keepalived/fault.sh"
  notify_fenced "/etc/keepalived/fenced.sh x"
  mcast_src_ip 10.0.0.11
}
vrrp_instance VI_6 {
  version 3
  interface eth0
  virtual_router_id 52
  priority 100
  advert_int 0.05
  virtual_ipaddress {
    fd00::100
  }
  unicast_src_ip fe80::1
  unicast_peer {
    fe80::2
  }
}
`

func TestFromConfig(t *testing.T) {
	c, diags := config.Parse("keepalived.conf", []byte(fullConf), config.Options{NoInclude: true})
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	set, err := FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Instances) != 2 || len(set.Groups) != 1 {
		t.Fatalf("set %+v", set)
	}
	v1, v6 := set.Instances[0], set.Instances[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"vrid", v1.VRID, uint8(51)},
		{"prio", v1.Priority, uint8(150)},
		{"version", v1.Version, 2},
		{"preempt", v1.Preempt, false},
		{"auth", v1.AuthType, uint8(AuthPass)},
		{"pass truncated", PassAuth(v1.AuthPass), PassAuth("s3cret12")},
		{"vips (excluded v6 not advertised)", v1.VIPs, []netip.Addr{netip.MustParseAddr("10.0.0.100")}},
		{"group", v1.Group, netip.MustParseAddr("224.0.0.19")},
		{"src", v1.SrcIP, netip.MustParseAddr("10.0.0.11")},
		{"track if", v1.TrackInterfaces[0], TrackInterface{Name: "eth1", Weight: -30}},
		{"track script", v1.TrackScripts[0].Weight, -20},
		{"track script fall", v1.TrackScripts[0].Fall, 3},
		{"track script interval", v1.TrackScripts[0].Interval, 2 * time.Second},
		{"track file", v1.TrackFiles[0], TrackFile{Name: "tf1", Path: "/run/tf1", Weight: 2}},
		{"notify", v1.Notify.Any, "/etc/keepalived/notify.sh"},
		{"notify_fault", v1.Notify.Fault, "/etc/keepalived/fault.sh"},
		{"notify_fenced", v1.Notify.Fenced, "/etc/keepalived/fenced.sh x"},
		{"sync group", v1.SyncGroup, "G1"},
		{"v6 version", v6.Version, 3},
		{"v6", v6.IPv6, true},
		{"v6 interval", v6.Interval, 50 * time.Millisecond},
		{"v6 peers", v6.Peers, []netip.Addr{netip.MustParseAddr("fe80::2")}},
		{"v6 src", v6.SrcIP, netip.MustParseAddr("fe80::1")},
		{"v6 group", v6.Group, DefaultGroup6},
		{"group notify", set.Groups[0].Notify.Any, "/etc/keepalived/group.sh"},
		{"group notify_fenced", set.Groups[0].Notify.Fenced, "/etc/keepalived/group-fenced.sh"},
	}
	for _, ch := range checks {
		if !equal(ch.got, ch.want) {
			t.Errorf("%s: got %v want %v", ch.name, ch.got, ch.want)
		}
	}
	if v1.Source.(*config.VRRPInstance).Name != "VI_1" {
		t.Error("Source not set")
	}
}

func equal(a, b any) bool { return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b) }

// TestFromConfigSeeds maps every seed configuration the config package
// carries (the users' own keepalived files).
func TestFromConfigSeeds(t *testing.T) {
	files, _ := filepath.Glob("../config/testdata/seeds/*.conf")
	if len(files) == 0 {
		t.Skip("no seed configurations in ../config/testdata/seeds")
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, diags := config.Parse(filepath.Base(f), b, config.Options{NoInclude: true})
		if c == nil || diags.HasErrors() {
			continue // the config package's tests cover refused files
		}
		set, err := FromConfig(c)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		n += len(set.Instances)
	}
	if n == 0 {
		t.Fatal("no seed had a vrrp_instance")
	}
	t.Logf("%d instances from %d seed files", n, len(files))
}
