package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadSeed loads testdata/seeds/NAME and fails on errors; wantWarn lists
// substrings of the warnings expected (and no others).
func loadSeed(t *testing.T, name string, wantWarn ...string) *Config {
	t.Helper()
	c, d := Load(filepath.Join("testdata", "seeds", name), Options{})
	if c == nil {
		t.Fatalf("%s: no config: %s", name, d)
	}
	if d.HasErrors() {
		t.Fatalf("%s: unexpected errors:\n%s", name, d)
	}
	ws := d.Warnings()
	if len(ws) != len(wantWarn) {
		t.Fatalf("%s: got %d warnings, want %d:\n%s", name, len(ws), len(wantWarn), ws)
	}
	for i, w := range wantWarn {
		if !strings.Contains(ws[i].String(), w) {
			t.Errorf("%s: warning %d = %q, want it to contain %q", name, i, ws[i], w)
		}
	}
	return c
}

type instWant struct {
	name, state, iface string
	vrid, prio         int
	advert             time.Duration
	preempt            bool
	pass               string
	vips               []string // "prefix dev label brd"
	tracks             []string
}

func checkInstance(t *testing.T, c *Config, w instWant) {
	t.Helper()
	i := c.Instance(w.name)
	if i == nil {
		t.Fatalf("no instance %s", w.name)
	}
	if i.State != w.state || i.Interface != w.iface || i.VRID != w.vrid || i.Priority != w.prio || i.AdvertInt != w.advert || i.Preempt != w.preempt {
		t.Errorf("%s: got state=%s if=%s vrid=%d prio=%d advert=%s preempt=%v; want %+v", w.name, i.State, i.Interface, i.VRID, i.Priority, i.AdvertInt, i.Preempt, w)
	}
	if w.pass != "" && (i.Auth == nil || i.Auth.Type != "PASS" || i.Auth.Pass != w.pass) {
		t.Errorf("%s: auth = %+v, want PASS %s", w.name, i.Auth, w.pass)
	}
	var vips []string
	for _, v := range i.VIPs {
		vips = append(vips, strings.TrimSpace(v.Prefix.String()+" "+v.Dev+" "+v.Label+" "+addrOrEmpty(v.Brd)))
	}
	if strings.Join(vips, ",") != strings.Join(w.vips, ",") {
		t.Errorf("%s: VIPs = %q, want %q", w.name, vips, w.vips)
	}
	var tracks []string
	for _, s := range i.TrackScripts {
		tracks = append(tracks, s.Name)
	}
	if strings.Join(tracks, ",") != strings.Join(w.tracks, ",") {
		t.Errorf("%s: track_script = %q, want %q", w.name, tracks, w.tracks)
	}
}

func addrOrEmpty(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}

func TestSeed000Srv01Srv02(t *testing.T) {
	for _, tc := range []struct {
		file, router, state string
		prio                int
	}{{"000_2.conf", "srv01", "MASTER", 100}, {"000_3.conf", "srv02", "BACKUP", 90}} {
		c := loadSeed(t, tc.file)
		g := c.Global
		if g.RouterID != tc.router || g.SMTPServer == nil || g.SMTPServer.Host != "127.0.0.1" || g.SMTPServer.Port != 25 ||
			g.SMTPConnectTimeout != 30*time.Second || g.NotificationEmailFrom != "Alexandre.Cassen@firewall.loc" ||
			strings.Join(g.NotificationEmail, ",") != "acassen@firewall.loc" {
			t.Errorf("%s: global = %+v", tc.file, g)
		}
		checkInstance(t, c, instWant{name: "VI_1", state: tc.state, iface: "ens33", vrid: 51, prio: tc.prio, advert: time.Second,
			preempt: true, pass: "1111", vips: []string{"172.16.42.111/24 ens33 ens33:0 172.16.42.111"}})
	}
}

func TestSeed000LVS(t *testing.T) {
	c := loadSeed(t, "000_4.conf", "000_4.conf:5: nat_mask: accepted, not implemented in hakeepd", "000_4.conf:9: sorry_server port 1358 differs")
	if len(c.VirtualServers) != 1 {
		t.Fatalf("virtual servers: %d", len(c.VirtualServers))
	}
	v := c.VirtualServers[0]
	if v.Addr != netip.MustParseAddrPort("172.16.42.111:80") || v.LBAlgo != "rr" || v.LBKind != "DR" || v.Protocol != "TCP" ||
		v.DelayLoop != 6*time.Second || v.PersistenceTimeout != 0 || v.SorryServer.Addr != netip.MustParseAddrPort("192.168.200.200:80") {
		t.Errorf("vs = %+v", v)
	}
	if len(v.RealServers) != 2 {
		t.Fatalf("real servers: %d", len(v.RealServers))
	}
	for k, r := range v.RealServers {
		want := []string{"172.16.42.102:80", "172.16.42.103:80"}[k]
		if r.Addr.String() != want || r.Weight != 1 || r.Options().NotifyUp != "/usr/local/notify.sh up" || r.Options().NotifyDown != "/usr/local/notify.sh down" {
			t.Errorf("rs %d = %+v", k, r)
		}
		if len(r.Checkers) != 1 {
			t.Fatalf("checkers: %d", len(r.Checkers))
		}
		ch := r.Checkers[0]
		if ch.Kind != CheckHTTP || ch.ConnectTimeout != 3*time.Second || ch.Retry != 3 || ch.DelayBeforeRetry != 3*time.Second ||
			ch.ConnectAddr(r).String() != want || len(ch.HTTPFields().URLs) != 1 || ch.HTTPFields().URLs[0].Path != "/index.html" ||
			len(ch.HTTPFields().URLs[0].StatusCodes) != 1 || ch.HTTPFields().URLs[0].StatusCodes[0] != (StatusRange{200, 200}) || ch.DelayLoop != 6*time.Second {
			t.Errorf("checker = %+v", ch)
		}
	}
}

func TestSeed000Template(t *testing.T) {
	// The blog's annotated template: placeholders such as "<PORT>" and
	// "rr|wrr|lc" are rejected with errors at their lines (keepalived
	// warns and substitutes defaults); everything else is read.
	c, d := Load("testdata/seeds/000_1.conf", Options{})
	var errs []string
	for _, e := range d.Errors() {
		errs = append(errs, e.String())
	}
	want := []string{
		"testdata/seeds/000_1.conf:80: lb_algo: unknown scheduler 'rr|wrr|lc|wlc|lblc|sh|dh'",
		"testdata/seeds/000_1.conf:82: lb_kind: want NAT, DR or TUN, got 'NAT|DR|TUN'",
		"testdata/seeds/000_1.conf:105: connect_port: bad number '<PORT>'",
		"testdata/seeds/000_1.conf:107: bindto: bad IP address '<IP>'",
		"testdata/seeds/000_1.conf:139: connect_port: bad number '<PORT>'",
		"testdata/seeds/000_1.conf:141: bindto: bad IP address '<IP>'",
	}
	if strings.Join(errs, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(d.Warnings().String(), "000_1.conf:100: unknown keyword 'SMTP_CHEKC' in real_server (did you mean 'SMTP_CHECK'?)") {
		t.Errorf("no misspelling warning for SMTP_CHEKC:\n%s", d.Warnings())
	}
	i := c.Instance("VI_1")
	if i == nil || len(i.VIPs) != 2 || i.VIPs[0].Dev != "eth1" || len(i.TrackInterfaces) != 1 || i.TrackInterfaces[0].Name != "eth0" ||
		len(i.Routes) != 1 || i.Routes[0].Dst.String() != "192.168.110.0/24" || i.Routes[0].Dev != "eth2" {
		t.Errorf("VI_1 = %+v", i)
	}
	rs := c.VirtualServers[0].RealServers[0]
	var kinds []string
	for _, ch := range rs.Checkers {
		kinds = append(kinds, ch.Kind)
	}
	// The empty "SSL_GET {}" has no url: ignored with a warning, as
	// keepalived does.
	if strings.Join(kinds, ",") != "TCP_CHECK,HTTP_GET" {
		t.Errorf("checkers = %v", kinds)
	}
	h := rs.Checkers[1]
	if len(h.HTTPFields().URLs) != 3 || h.HTTPFields().URLs[0].Digest != "640205b7b0fc66c1ea91c463fac6334d" || h.HTTPFields().URLs[0].StatusCodes[0].Lo != 200 || h.Retry != 3 {
		t.Errorf("HTTP_GET = %+v", h)
	}
}

func TestSeed001(t *testing.T) {
	for _, tc := range []struct {
		file, router, state string
		prio                int
	}{{"001_1.conf", "node1", "MASTER", 100}, {"001_2.conf", "node2", "BACKUP", 96}} {
		c := loadSeed(t, tc.file)
		if c.Global.RouterID != tc.router || c.Global.VRRPMcastGroup4 != netip.MustParseAddr("224.1.101.33") {
			t.Errorf("%s: global %+v", tc.file, c.Global)
		}
		checkInstance(t, c, instWant{name: "VI_1", state: tc.state, iface: "ens34", vrid: 51, prio: tc.prio, advert: time.Second,
			preempt: true, pass: "1111", vips: []string{"192.168.1.199/32"}})
		n := c.Instance("VI_1").Notify
		if n.Master != "/etc/keepalived/notify.sh master" || n.Backup != "/etc/keepalived/notify.sh backup" || n.Fault != "/etc/keepalived/notify.sh fault" {
			t.Errorf("%s: notify = %+v", tc.file, n)
		}
	}

	c := loadSeed(t, "001_3.conf")
	checkInstance(t, c, instWant{name: "VI_1", state: "MASTER", iface: "ens34", vrid: 51, prio: 100, advert: time.Second, preempt: true,
		pass: "1111", vips: []string{"192.168.1.198/32 ens34 ens34:0"}})
	checkInstance(t, c, instWant{name: "VI_2", state: "BACKUP", iface: "ens34", vrid: 52, prio: 98, advert: time.Second, preempt: true,
		pass: "2222", vips: []string{"192.168.1.197/32"}})
	if len(c.VirtualServers) != 2 {
		t.Fatalf("virtual servers: %d", len(c.VirtualServers))
	}
	for k, v := range c.VirtualServers {
		if v.Addr.String() != []string{"192.168.1.198:80", "192.168.1.197:80"}[k] || v.LBAlgo != "wrr" || v.LBKind != "DR" || v.DelayLoop != time.Second ||
			v.SorryServer.Addr.String() != "192.168.1.200:80" || len(v.RealServers) != 2 {
			t.Fatalf("vs %d = %+v", k, v)
		}
		h, tcp := v.RealServers[0].Checkers[0], v.RealServers[1].Checkers[0]
		if v.RealServers[0].Addr.String() != "192.168.1.202:80" || h.Kind != CheckHTTP || h.HTTPFields().URLs[0].Path != "/index.html" ||
			h.Retry != 3 || h.DelayBeforeRetry != 2*time.Second || h.ConnectTimeout != 3*time.Second {
			t.Errorf("vs %d HTTP_GET = %+v", k, h)
		}
		if v.RealServers[1].Addr.String() != "192.168.1.203:80" || tcp.Kind != CheckTCP || tcp.Retry != 3 ||
			tcp.ConnectAddr(v.RealServers[1]).String() != "192.168.1.203:80" {
			t.Errorf("vs %d TCP_CHECK = %+v", k, tcp)
		}
	}

	c = loadSeed(t, "001_4.conf")
	checkInstance(t, c, instWant{name: "VI_1", state: "MASTER", iface: "ens34", vrid: 51, prio: 100, advert: time.Second, preempt: true,
		pass: "1111", vips: []string{"192.168.1.198/24"}, tracks: []string{"chk_down", "chk_nginx"}})
	d, n := c.Script("chk_down"), c.Script("chk_nginx")
	if d.Script != "/etc/keepalived/down.sh" || d.Weight != -20 || d.Interval != time.Second || d.Rise != 1 || d.Fall != 1 {
		t.Errorf("chk_down = %+v", d)
	}
	if n.Script != "pidof nginx && exit 0 || exit 1" || n.Weight != -3 || n.Rise != 2 || n.Fall != 2 {
		t.Errorf("chk_nginx = %+v", n)
	}
}

func TestSeed002(t *testing.T) {
	c := loadSeed(t, "002_1.conf")
	checkInstance(t, c, instWant{name: "VI_1", state: "MASTER", iface: "eth0", vrid: 51, prio: 100, advert: time.Second, preempt: true,
		pass: "hell>com", vips: []string{"192.168.188.120/32"}})
	v := c.VirtualServers[0]
	if v.Addr.String() != "192.168.188.120:80" || v.LBAlgo != "wlc" || v.LBKind != "DR" || v.DelayLoop != 5*time.Second || v.PersistenceTimeout != 0 {
		t.Errorf("vs = %+v", v)
	}
	for k, r := range v.RealServers {
		ch := r.Checkers[0]
		if r.Addr.String() != []string{"192.168.188.107:80", "192.168.188.110:80"}[k] || r.Weight != 100 || ch.Kind != CheckTCP ||
			ch.ConnectTimeout != 10*time.Second || ch.Retry != 3 || ch.DelayBeforeRetry != 3*time.Second || ch.ConnectAddr(r).Port() != 80 {
			t.Errorf("rs %d = %+v / %+v", k, r, ch)
		}
	}
}

func TestSeed003(t *testing.T) {
	for _, tc := range []struct {
		file, router, state, src string
		prio                     int
	}{{"003_1.conf", "1", "MASTER", "10.0.6.183", 100}, {"003_2.conf", "2", "BACKUP", "10.0.6.187", 99}} {
		c := loadSeed(t, tc.file)
		if c.Global.RouterID != tc.router {
			t.Errorf("%s: router_id %q", tc.file, c.Global.RouterID)
		}
		checkInstance(t, c, instWant{name: "VI_1", state: tc.state, iface: "ens192", vrid: 55, prio: tc.prio, advert: time.Second,
			preempt: true, pass: "1111", vips: []string{"10.0.6.190/32"}})
		if c.Instance("VI_1").McastSrcIP.String() != tc.src {
			t.Errorf("%s: mcast_src_ip %s", tc.file, c.Instance("VI_1").McastSrcIP)
		}
	}
	c := loadSeed(t, "003_3.conf")
	checkInstance(t, c, instWant{name: "VI_1", state: "BACKUP", iface: "ens192", vrid: 55, prio: 99, advert: time.Second,
		preempt: true, pass: "1111", vips: []string{"10.0.6.190/32"}, tracks: []string{"chk_nginx"}})
	s := c.Script("chk_nginx")
	if s.Script != "/etc/keepalived/ch_ng.sh" || s.Interval != 2*time.Second || s.Weight != -5 || s.Fall != 3 || s.Rise != 1 {
		t.Errorf("chk_nginx = %+v", s)
	}
}

func TestSeed004(t *testing.T) {
	// The blog's rendering lost the closing brace of vrrp_instance http.
	// keepalived warns ("1 missing '}'") and runs what it read; hakeep is
	// strict where keepalived is lax: a block still open at the end is
	// what a truncated file looks like, so the seed as written is refused,
	// with the line of the brace that was never closed.
	path := filepath.Join("testdata", "seeds", "004_1.conf")
	if _, d := Load(path, Options{}); d.String() != path+":7: vrrp_instance http: "+msgUnclosed+"\n" || !d.HasErrors() {
		t.Fatalf("004_1.conf as written: got\n%swant exactly the unclosed-block error at 004_1.conf:7", d)
	}
	// With the lost brace put back it reads as the blog meant.
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, d := Parse("004_1.conf", append(text, "}\n"...), Options{})
	if len(d) != 0 {
		t.Fatalf("004_1.conf with its '}': %s", d)
	}
	checkInstance(t, c, instWant{name: "http", state: "BACKUP", iface: "eth1", vrid: 47, prio: 100, advert: 3 * time.Second,
		preempt: false, pass: "1234", vips: []string{"172.16.101.10/24"}, tracks: []string{"check_running"}})
	s := c.Script("check_running")
	if s.Script != "/etc/keepalived/check_http.sh" || s.Interval != 2*time.Second || s.Weight != -20 {
		t.Errorf("check_running = %+v", s)
	}
}
