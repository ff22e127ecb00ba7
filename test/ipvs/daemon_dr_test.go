package ipvs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"hakeep/internal/vmtest"
)

// TestDaemonDirectRouting is the seed documents' DR director run by the
// real hakeepd: client, director and two real servers on one L2 segment
// (a bridge in a switch namespace); the real servers hold the VIP on lo
// with arp_ignore/arp_announce, so the director only rewrites the MAC and
// the answers go straight back to the client.
func TestDaemonDirectRouting(t *testing.T) {
	vmtest.RequireIPVS(t)
	bin, err := exec.LookPath("hakeepd")
	if err != nil {
		t.Skip("no hakeepd in PATH: run through vmtest -build ./cmd/hakeepd (make test-ipvs)")
	}
	const limit = 20 * time.Second
	p := fmt.Sprintf("dr%d", os.Getpid())
	sw, c, d := p+"sw", p+"c", p+"d"
	rs := []string{p + "r1", p + "r2"}
	attach := bridgeLab(t, sw, append([]string{c, d}, rs...)...)
	attach(c, "c0", "10.30.0.2/24", 0)
	attach(d, "d0", "10.30.0.1/24", 1)
	srvs := make([]*rserver, len(rs))
	for i, r := range rs {
		attach(r, "e0", fmt.Sprintf("10.30.0.%d/24", 11+i), 2+i)
		// The VIP on lo, never announced or answered for by ARP.
		sh(t, "ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
		sh(t, "ip", "-n", r, "addr", "add", "10.30.0.100/32", "dev", "lo")
		srvs[i] = &rserver{name: fmt.Sprintf("rs%d", i+1), ns: r, addr: ":80"}
		srvs[i].start(t)
		t.Cleanup(srvs[i].stop)
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	err = os.WriteFile(conf, []byte(`global_defs {
  router_id dr
}
vrrp_instance VI_1 {
  state MASTER
  interface d0
  virtual_router_id 52
  priority 150
  advert_int 1
  virtual_ipaddress {
    10.30.0.100/32
  }
}
virtual_server 10.30.0.100 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.30.0.11 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 1
    }
  }
  real_server 10.30.0.12 80 {
    weight 1
    HTTP_GET {
      url {
        path /health
        status_code 200
      }
      connect_timeout 1
    }
  }
}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	dm := startDaemon(t, bin, d, dir, conf)
	full := want(map[string][]string{"TCP 10.30.0.100:80 rr": {"10.30.0.11:80 Route 1", "10.30.0.12:80 Route 1"}})
	dm.waitTable("DR table", full, limit)
	waitVIP(t, d, "d0", "10.30.0.100", limit)
	vip := "10.30.0.100:80"
	if got := getVIP(t, c, vip, 10); got["rs1"] != 5 || got["rs2"] != 5 {
		t.Fatalf("rr over DR: %v, want 5 each", got)
	}
	srvs[0].stop()
	dm.waitTable("rs1 out", want(map[string][]string{"TCP 10.30.0.100:80 rr": {"10.30.0.12:80 Route 1"}}), limit)
	if got := getVIP(t, c, vip, 4); got["rs2"] != 4 {
		t.Fatalf("with rs1 down: %v, want all on rs2", got)
	}
	srvs[0].start(t)
	dm.waitTable("rs1 back", full, limit)
	if got := getVIP(t, c, vip, 4); got["rs1"] != 2 || got["rs2"] != 2 {
		t.Fatalf("rs1 back: %v, want 2 each", got)
	}
}
