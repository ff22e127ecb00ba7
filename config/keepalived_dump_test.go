package config

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKeepalivedDump compares what hakeep reads with what keepalived
// itself reads, value by value: each configuration runs under Debian's
// keepalived with -d (dump configuration) in a network namespace of its
// own, with a veth for every interface the file names, and the VRRP part
// of the dump (state, interface, VRID, priority, advert interval, preempt,
// authentication, VIPs with brd/dev/scope/label, excluded VIPs, unicast
// peers, tracked scripts and interfaces with their weights) must equal
// hakeep's model. Virtual servers are not dumped here: keepalived's
// checker needs kernel IPVS, which this kernel lacks (the lvs package
// tests IPVS in a VM).
func TestKeepalivedDump(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: keepalived runs in network namespaces")
	}
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived not installed (apt-get install keepalived)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	type input struct {
		name, file, id string
	}
	var inputs []input
	dir := t.TempDir()
	addText := func(name, text, id string) {
		f := filepath.Join(dir, fmt.Sprintf("c%d.conf", len(inputs)))
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, input{name, f, id})
	}
	seeds, _ := filepath.Glob("testdata/seeds/*.conf")
	for _, f := range seeds {
		inputs = append(inputs, input{"seed " + filepath.Base(f), f, ""})
	}
	for _, tc := range grammarCases {
		addText("grammar "+tc.name, tc.text, tc.opts.ConfigID)
	}
	for _, tc := range diagnosticCases {
		addText("diagnostic "+tc.name, tc.text, "")
	}
	samples, _ := filepath.Glob("/usr/share/doc/keepalived/samples/keepalived.conf.*")
	for _, f := range samples {
		inputs = append(inputs, input{"sample " + filepath.Base(f), f, ""})
	}

	// keepalived runs mostly wait: run several at once (t.Parallel would
	// be held to GOMAXPROCS).
	type result struct {
		name, got, want string
		err             error
	}
	var results []*result
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for n, in := range inputs {
		c, d := Load(in.file, Options{ConfigID: in.id})
		// A block left open at the end is the one error keepalived only
		// warns about and runs through; hakeep refuses the file (it looks
		// truncated) but reads it the same way, so it is compared too.
		if c == nil || (d.HasErrors() && !onlyUnclosed(d)) || len(c.Instances) == 0 || c.Cluster != nil || needsIPVS(c) {
			continue // nothing keepalived would run the same way here
		}
		r := &result{name: in.name, want: ourGlobal(&c.Global) + ourStatic(c) + ourView(c) + ourScripts(c)}
		results = append(results, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r.got, r.err = keepalivedView(bin, in.file, in.id, fmt.Sprintf("hkcfg%d-%d", os.Getpid()%100000, n), interfacesOf(c))
		}()
	}
	wg.Wait()
	if len(results) < 20 {
		t.Errorf("only %d configurations to compare", len(results))
	}
	for _, r := range results {
		t.Run(r.name, func(t *testing.T) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			r.got, r.want = sortBlocks(r.got), sortBlocks(r.want)
			if r.got != r.want {
				t.Errorf("keepalived read:\n%s\nhakeep read:\n%s", r.got, r.want)
			}
		})
	}
}

// onlyUnclosed reports whether every error in d is a block left open at
// the end of the file.
func onlyUnclosed(d Diagnostics) bool {
	for _, x := range d.Errors() {
		if !strings.HasSuffix(x.Msg, ": "+msgUnclosed) {
			return false
		}
	}
	return true
}

// interfacesOf lists the interface names a configuration uses.
func interfacesOf(c *Config) []string {
	seen := map[string]bool{"lo": true}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] && len(s) <= 15 {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, i := range c.Instances {
		add(i.Interface)
		for _, v := range append(append([]*VIP{}, i.VIPs...), i.ExcludedVIPs...) {
			add(v.Dev)
		}
		for _, ti := range i.TrackInterfaces {
			add(ti.Name)
		}
		for _, r := range i.Routes {
			add(r.Dev)
		}
	}
	for _, g := range c.SyncGroups {
		for _, ti := range g.TrackInterfaces {
			add(ti.Name)
		}
	}
	for _, v := range c.StaticAddresses {
		add(v.Dev)
	}
	for _, r := range c.StaticRoutes {
		add(r.Dev)
	}
	sort.Strings(out)
	return out
}

var dumpStamp = regexp.MustCompile(`^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}: ?`)

// keepalivedView runs keepalived -d in a fresh namespace and renders the
// VRRP part of its dump in ourView's format.
func keepalivedView(bin, file, id, ns string, ifaces []string) (string, error) {
	run := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("netns", "add", ns); err != nil {
		return "", err
	}
	defer func() { _ = exec.Command("ip", "netns", "del", ns).Run() }()
	if err := run("-n", ns, "link", "set", "lo", "up"); err != nil {
		return "", err
	}
	for k, name := range ifaces {
		// Up, with a carrier and an address, so that no instance goes to
		// FAULT (which would change what keepalived dumps).
		peer := fmt.Sprintf("hkpeer%d", k)
		for _, args := range [][]string{
			{"-n", ns, "link", "add", name, "type", "veth", "peer", "name", peer},
			{"-n", ns, "addr", "add", fmt.Sprintf("198.18.%d.1/32", k), "dev", name},
			{"-n", ns, "link", "set", peer, "up"},
			{"-n", ns, "link", "set", name, "up"},
		} {
			if err := run(args...); err != nil {
				return "", err
			}
		}
	}
	dir, err := os.MkdirTemp("", "hkcfg")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	// keepalived dumps its configuration when it stops; a second is
	// plenty to have started, even on a busy machine.
	var sections map[string][]string
	var out []byte
	// A busy machine can take longer to start keepalived: one retry with
	// more time before calling it a failure.
	for _, secs := range []string{"1", "4"} {
		args := []string{"-s", "TERM", "-k", "5", secs, "ip", "netns", "exec", ns, bin, "-n", "-l", "-D", "-d", "-P", "-f", file,
			"-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"), "-c", filepath.Join(dir, "c.pid"), "-b", filepath.Join(dir, "b.pid")}
		if id != "" {
			args = append(args, "-i", id)
		}
		out, _ = exec.Command("timeout", args...).CombinedOutput()
		sections = map[string][]string{}
		section := ""
		for _, l := range strings.Split(string(out), "\n") {
			l = dumpStamp.ReplaceAllString(l, "")
			if strings.HasPrefix(l, "------<") {
				section = strings.Trim(l, "-<> ")
				continue
			}
			// Dump lines are indented; other processes' log lines (not
			// indented) can land in the middle of a section.
			if section != "" && strings.HasPrefix(l, " ") && strings.TrimSpace(l) != "" {
				sections[section] = append(sections[section], l)
			}
		}
		if len(sections["VRRP Topology"]) > 0 {
			break
		}
	}
	if len(sections["VRRP Topology"]) == 0 {
		return "", fmt.Errorf("no VRRP dump from keepalived:\n%s", out)
	}
	var static strings.Builder
	for _, l := range sections["Static Addresses"] {
		fmt.Fprintf(&static, "static address %s\n", strings.TrimSuffix(strings.TrimSpace(l), " set"))
	}
	for _, l := range sections["Static Routes"] {
		l, _, _ = strings.Cut(strings.TrimSpace(l), " [")
		fmt.Fprintf(&static, "static route %s\n", keepalivedRoute(l))
	}
	for _, l := range sections["VRRP Sync groups"] {
		key, val, _ := strings.Cut(strings.TrimSpace(l), " = ")
		if key == "VRRP Sync Group" {
			name, _, _ := strings.Cut(val, ",")
			fmt.Fprintf(&static, "sync group %s\n", name)
		} else if indentOf(l) == 5 {
			fmt.Fprintf(&static, "sync member %s\n", strings.TrimSpace(l))
		}
	}
	return renderKeepalivedGlobal(sections["Global definitions"]) + static.String() + renderKeepalivedDump(sections["VRRP Topology"]) +
		renderKeepalivedScripts(sections["VRRP Scripts"]), nil
}

// sortBlocks sorts the lines under each "instance"/"script" header (and
// the global lines), so that the order keepalived prints things in does
// not matter.
func sortBlocks(s string) string {
	var out, block []string
	flush := func() {
		sort.Strings(block)
		out = append(out, block...)
		block = nil
	}
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.HasPrefix(l, "instance ") || strings.HasPrefix(l, "script ") {
			flush()
			out = append(out, l)
			continue
		}
		block = append(block, l)
	}
	flush()
	return strings.Join(out, "\n") + "\n"
}

// needsIPVS: keepalived stops at once without kernel IPVS when the
// configuration asks for the IPVS sync daemon.
func needsIPVS(c *Config) bool {
	if c.Global.LVSSyncDaemon != nil {
		return true
	}
	for _, i := range c.Instances {
		if i.LVSSyncDaemonInterface != "" {
			return true
		}
	}
	return false
}

// globalKeys are the global_defs facts compared (keepalived's dump names).
var globalKeys = []string{"Router ID", "Smtp server", "Smtp server port", "Email notification from",
	"VRRP IPv4 mcast group", "VRRP IPv6 mcast group", "Gratuitous ARP delay", "Gratuitous ARP repeat",
	"Gratuitous ARP refresh timer", "Gratuitous ARP refresh repeat", "Gratuitous ARP lower priority delay",
	"Gratuitous ARP lower priority repeat", "VRRP default protocol version", "VRRP strict mode"}

func renderKeepalivedGlobal(lines []string) string {
	var b strings.Builder
	vals := map[string]string{}
	var emails []string
	for k, l := range lines {
		key, val, _ := strings.Cut(strings.TrimSpace(l), " = ")
		vals[key] = val
		if strings.TrimSpace(l) == "Email notification to:" {
			for _, x := range lines[k+1:] {
				if indentOf(x) <= indentOf(l) {
					break
				}
				emails = append(emails, strings.TrimSpace(x))
			}
		}
	}
	for _, k := range globalKeys {
		if v, ok := vals[k]; ok && !(k == "Router ID" && v == hostnameDefault()) {
			fmt.Fprintf(&b, "global %s = %s\n", k, v)
		}
	}
	for _, e := range emails {
		fmt.Fprintf(&b, "global email %s\n", e)
	}
	return b.String()
}

func ourGlobal(g *GlobalDefs) string {
	var b strings.Builder
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	vals := map[string]string{
		"Router ID":                            g.RouterID,
		"VRRP IPv4 mcast group":                g.VRRPMcastGroup4.String(),
		"VRRP IPv6 mcast group":                g.VRRPMcastGroup6.String(),
		"Gratuitous ARP delay":                 secs(g.GARP.MasterDelay),
		"Gratuitous ARP repeat":                strconv.Itoa(g.GARP.MasterRepeat),
		"Gratuitous ARP refresh timer":         secs(g.GARP.MasterRefresh),
		"Gratuitous ARP refresh repeat":        strconv.Itoa(g.GARP.MasterRefreshRepeat),
		"Gratuitous ARP lower priority delay":  secs(g.GARP.LowerPrioDelay),
		"Gratuitous ARP lower priority repeat": strconv.Itoa(g.GARP.LowerPrioRepeat),
		"VRRP default protocol version":        strconv.Itoa(g.VRRPVersion),
		"VRRP strict mode":                     strconv.FormatBool(g.VRRPStrict),
		"Email notification from":              g.NotificationEmailFrom,
	}
	if g.SMTPServer != nil {
		vals["Smtp server"] = g.SMTPServer.Host
		vals["Smtp server port"] = strconv.Itoa(int(g.SMTPServer.Port))
	}
	for _, k := range globalKeys {
		if v := vals[k]; v != "" && !(k == "Router ID" && v == hostnameDefault()) {
			fmt.Fprintf(&b, "global %s = %s\n", k, v)
		}
	}
	for _, e := range g.NotificationEmail {
		fmt.Fprintf(&b, "global email %s\n", e)
	}
	return b.String()
}

// renderKeepalivedScripts renders the "VRRP Scripts" dump section.
func renderKeepalivedScripts(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		key, val, _ := strings.Cut(strings.TrimSpace(l), " = ")
		switch key {
		case "VRRP Script":
			fmt.Fprintf(&b, "script %s\n", val)
		case "Interval", "Timeout":
			secs, _ := strconv.Atoi(strings.Fields(val)[0])
			fmt.Fprintf(&b, "  %s %s\n", strings.ToLower(key), time.Duration(secs)*time.Second)
		case "Weight", "Rise", "Fall":
			fmt.Fprintf(&b, "  %s %s\n", strings.ToLower(key), val)
		}
	}
	return b.String()
}

func ourStatic(c *Config) string {
	var b strings.Builder
	for _, v := range c.StaticAddresses {
		fmt.Fprintf(&b, "static address %s\n", vipLine(v, ""))
	}
	for _, r := range c.StaticRoutes {
		fmt.Fprintf(&b, "static route %s\n", ourRoute(r))
	}
	for _, g := range c.SyncGroups {
		fmt.Fprintf(&b, "sync group %s\n", g.Name)
		for _, m := range g.Group {
			fmt.Fprintf(&b, "sync member %s\n", m)
		}
	}
	return b.String()
}

func ourScripts(c *Config) string {
	var b strings.Builder
	used := map[string]bool{} // keepalived drops scripts nothing tracks
	for _, i := range c.Instances {
		for _, t := range i.TrackScripts {
			used[t.Name] = true
		}
	}
	for _, g := range c.SyncGroups {
		for _, t := range g.TrackScripts {
			used[t.Name] = true
		}
	}
	for _, s := range c.Scripts {
		if !scriptRunnable(s.Script) || !used[s.Name] {
			continue
		}
		w := strconv.Itoa(s.Weight)
		if s.WeightReverse {
			w += " reverse"
		}
		fmt.Fprintf(&b, "script %s\n  interval %s\n  timeout %s\n  weight %s\n  rise %d\n  fall %d\n", s.Name, s.Interval, s.Timeout, w, s.Rise, s.Fall)
	}
	return b.String()
}

func indentOf(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

// renderKeepalivedDump turns keepalived's "VRRP Topology" dump lines into
// ourView's format.
func renderKeepalivedDump(lines []string) string {
	var b strings.Builder
	var preempt, prDelay, auth, pass, vmac string
	skipState := false
	flush := func() {
		if preempt != "" {
			fmt.Fprintf(&b, "  preempt %s delay %s auth %s%s\n", preempt, prDelay, auth, pass)
		}
		preempt, prDelay, auth, pass = "", "0s", "none", ""
	}
	for k := 0; k < len(lines); k++ {
		l := strings.TrimSpace(lines[k])
		key, val, _ := strings.Cut(l, " = ")
		// The list that starts here: its items are the following lines
		// indented deeper than this one.
		list := func(prefix string, fix func(string) string) {
			ind := indentOf(lines[k])
			var items []string
			for k+1 < len(lines) && indentOf(lines[k+1]) > ind {
				k++
				items = append(items, prefix+fix(strings.TrimSpace(lines[k])))
			}
			sort.Strings(items)
			for _, it := range items {
				b.WriteString("  " + it + "\n")
			}
		}
		switch {
		case key == "VRRP Instance":
			flush()
			vmac, skipState = "", false
			fmt.Fprintf(&b, "instance %s\n", val)
			// The state is compared only where run time can not change it
			// (see runtimeState).
			for _, x := range lines[k+1:] {
				x = strings.TrimSpace(x)
				if strings.HasPrefix(x, "VRRP Instance = ") {
					break
				}
				if strings.HasPrefix(x, "Sync group = ") || strings.HasPrefix(x, "Tracked scripts") || strings.HasPrefix(x, "Tracked files") {
					skipState = true
				}
			}
		case key == "VRRP Version":
			fmt.Fprintf(&b, "  version %s\n", val)
		case key == "Wantstate":
			if !skipState {
				fmt.Fprintf(&b, "  state %s\n", val)
			}
		case key == "Interface":
			// "vrrp.10, vmac on eth0, xmit base i/f": the base interface.
			if name, rest, ok := strings.Cut(val, ", vmac on "); ok {
				vmac = name
				val, _, _ = strings.Cut(rest, ",")
			}
			fmt.Fprintf(&b, "  interface %s\n", val)
		case strings.HasPrefix(key, "Gratuitous ARP ") && val != "":
			fmt.Fprintf(&b, "  %s = %s\n", strings.ToLower(key), val)
		case key == "Accept":
			fmt.Fprintf(&b, "  accept %v\n", val == "enabled")
		case key == "Using src_ip":
			if a, ok := strings.CutSuffix(val, " (from configuration)"); ok {
				fmt.Fprintf(&b, "  src %s\n", a)
			}
		case key == "Virtual Router ID":
			fmt.Fprintf(&b, "  vrid %s\n", val)
		case key == "Priority":
			fmt.Fprintf(&b, "  priority %s\n", val)
		case key == "Advert interval":
			num, unit, _ := strings.Cut(val, " ")
			v, _ := strconv.ParseFloat(num, 64)
			d := time.Duration(v * float64(time.Second))
			if strings.HasPrefix(unit, "milli") {
				d = time.Duration(v * float64(time.Millisecond))
			}
			fmt.Fprintf(&b, "  advert %s\n", d)
		case key == "Preempt":
			preempt = map[string]string{"enabled": "true", "disabled": "false"}[val]
		case key == "Preempt delay":
			secs, _ := strconv.Atoi(strings.Fields(val)[0])
			prDelay = (time.Duration(secs) * time.Second).String()
		case key == "Authentication type":
			auth = map[string]string{"none": "none", "SIMPLE_PASSWORD": "PASS", "IPSEC_AH": "AH"}[val]
		case key == "Password":
			pass = ":" + val
		case strings.HasPrefix(l, "Virtual IP Excluded"):
			list("excluded ", func(s string) string { return vipFix(s, vmac) })
		case strings.HasPrefix(l, "Virtual IP ("):
			list("vip ", func(s string) string { return vipFix(s, vmac) })
		case strings.HasPrefix(l, "Unicast Peer"):
			list("peer ", func(s string) string { return strings.Fields(s)[0] })
		case strings.HasPrefix(l, "Tracked scripts"):
			list("track_script ", func(s string) string { return s })
		case strings.HasPrefix(l, "Tracked interfaces"):
			list("track_interface ", func(s string) string { return s })
		case strings.HasPrefix(l, "Virtual Routes"):
			list("route ", keepalivedRoute)
		case strings.HasPrefix(l, "Virtual Rules"):
			list("rule ", keepalivedRule)
		}
	}
	flush()
	return b.String()
}

// vipFix drops what keepalived adds to an address line on its own (run
// time flags; the VMAC it puts the address on).
func vipFix(s, vmac string) string {
	s = strings.TrimSuffix(s, " preferred_lft forever")
	s = strings.TrimSuffix(s, " deprecated")
	if vmac != "" {
		if i := strings.Index(s, " dev "+vmac+"@"); i >= 0 {
			s = s[:i] + " dev " + s[i+len(" dev "+vmac+"@"):]
		}
	}
	return s
}

// ourView renders the same facts from hakeep's model.
func ourView(c *Config) string {
	var b strings.Builder
	for _, i := range c.Instances {
		fmt.Fprintf(&b, "instance %s\n  version %d\n", i.Name, i.Version)
		if !runtimeState(c, i) {
			fmt.Fprintf(&b, "  state %s\n", i.State)
		}
		fmt.Fprintf(&b, "  interface %s\n", i.Interface)
		if src := i.McastSrcIP; src.IsValid() || i.UnicastSrcIP.IsValid() {
			if i.UnicastSrcIP.IsValid() {
				src = i.UnicastSrcIP
			}
			fmt.Fprintf(&b, "  src %s\n", src)
		}
		secs := func(d time.Duration) int { return int(d / time.Second) }
		for _, kv := range []struct {
			k string
			v int
		}{{"delay", secs(i.GARP.MasterDelay)}, {"repeat", i.GARP.MasterRepeat}, {"refresh", secs(i.GARP.MasterRefresh)},
			{"refresh repeat", i.GARP.MasterRefreshRepeat}, {"lower priority delay", secs(i.GARP.LowerPrioDelay)},
			{"lower priority repeat", i.GARP.LowerPrioRepeat}} {
			fmt.Fprintf(&b, "  gratuitous arp %s = %d\n", kv.k, kv.v)
		}
		fmt.Fprintf(&b, "  vrid %d\n  priority %d\n  advert %s\n  accept %v\n", i.VRID, i.Priority, i.AdvertInt, i.Accept)
		list := func(items []string) {
			sort.Strings(items)
			for _, it := range items {
				b.WriteString("  " + it + "\n")
			}
		}
		var vips, excl, peers, scripts, ifs []string
		for _, v := range i.VIPs {
			vips = append(vips, "vip "+vipLine(v, i.Interface))
		}
		for _, v := range i.ExcludedVIPs {
			excl = append(excl, "excluded "+vipLine(v, i.Interface))
		}
		list(vips)
		list(excl)
		for _, u := range i.UnicastPeers {
			peers = append(peers, "peer "+u.Addr.String())
		}
		list(peers)
		for _, ts := range i.TrackScripts {
			s := c.Script(ts.Name)
			if s == nil || !scriptRunnable(s.Script) {
				continue // keepalived drops scripts it can not find here
			}
			w, rev := s.Weight, s.WeightReverse
			if ts.Weight != nil {
				w, rev = *ts.Weight, ts.Reverse
			}
			line := fmt.Sprintf("track_script %s weight %d", ts.Name, w)
			if rev {
				line += " reverse"
			}
			scripts = append(scripts, line)
		}
		for _, ti := range i.TrackInterfaces {
			line := fmt.Sprintf("track_interface %s weight %d", ti.Name, ti.Weight)
			if ti.Reverse {
				line += " reverse"
			}
			ifs = append(ifs, line)
		}
		list(ifs)
		list(scripts)
		var routes, rules []string
		for _, r := range i.Routes {
			routes = append(routes, "route "+ourRoute(r))
		}
		list(routes)
		for _, r := range i.Rules {
			rules = append(rules, "rule "+ourRule(r))
		}
		list(rules)
		auth, pass := "none", ""
		if i.Auth != nil {
			auth = i.Auth.Type
			if i.Auth.Type == "PASS" {
				pass = ":" + i.Auth.Pass
			}
		}
		delay := i.PreemptDelay
		if !i.Preempt {
			delay = 0
		}
		fmt.Fprintf(&b, "  preempt %v delay %s auth %s%s\n", i.Preempt, delay, auth, pass)
	}
	return b.String()
}

// runtimeState: keepalived's dumped state of a sync group member or of an
// instance with track scripts or files follows what happened at run time
// (a failing script, a member in FAULT), not only the configuration.
func runtimeState(c *Config, i *VRRPInstance) bool {
	if i.SyncGroup != "" || len(i.TrackFiles) > 0 {
		return true
	}
	for _, ts := range i.TrackScripts {
		if s := c.Script(ts.Name); s != nil && scriptRunnable(s.Script) {
			return true
		}
	}
	return false
}

// vipLine renders a VIP as keepalived's dump does.
func vipLine(v *VIP, iface string) string {
	s := v.Prefix.String()
	if v.Prefix.Bits() == v.Prefix.Addr().BitLen() {
		s = v.Prefix.Addr().String()
	}
	if v.Brd.IsValid() {
		s += " brd " + v.Brd.String()
	} else if v.BrdAuto == "+" && v.Prefix.Addr().Is4() {
		s += " brd " + broadcastOf(v.Prefix).String()
	}
	dev := v.Dev
	if dev == "" {
		dev = iface
	}
	scope := v.Scope
	if scope == "" {
		scope = "global"
	}
	s += " dev " + dev + " scope " + scope
	if v.Label != "" {
		s += " label " + v.Label
	}
	if v.NoPrefixRoute {
		s += " noprefixroute"
	}
	return s
}

func broadcastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

// scriptRunnable reports whether keepalived would find the script's
// program on this machine (it drops track scripts it can not find).
func scriptRunnable(cmd string) bool {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return false
	}
	if !strings.HasPrefix(f[0], "/") {
		return true // searched for at run time
	}
	_, err := os.Stat(f[0])
	return err == nil
}

var routeScopes = map[string]string{"global": "", "universe": "", "site": "200", "link": "253", "host": "254", "nowhere": "255"}

// keepalivedRoute normalises a "Virtual Routes" dump line, e.g.
// "prepend 10.8.0.0/16 src 10.0.0.100 via inet 10.0.0.1 dev eth0 proto 18".
func keepalivedRoute(l string) string {
	f := strings.Fields(l)[1:] // "add" / "prepend"
	var out []string
	if len(f) > 0 && routeTypes[f[0]] {
		out, f = append(out, f[0]), f[1:]
	}
	if len(f) > 0 {
		out, f = append(out, f[0]), f[1:]
	}
	for k := 0; k < len(f); k++ {
		switch f[k] {
		case "no_track", "onlink":
			out = append(out, f[k])
		case "nexthop":
			out = append(out, f[k])
		case "via":
			if k+2 < len(f) && (f[k+1] == "inet" || f[k+1] == "inet6") {
				k++
			}
			if k+1 < len(f) {
				out = append(out, "via", f[k+1])
				k++
			}
		case "proto":
			k++
		default:
			if k+1 < len(f) {
				out = append(out, f[k], f[k+1])
				k++
			}
		}
	}
	return strings.Join(out, " ")
}

func ourRoute(r *Route) string {
	var out []string
	if r.Type != "" && r.Type != "unicast" {
		out = append(out, r.Type)
	}
	if r.Dst.Bits() == r.Dst.Addr().BitLen() {
		out = append(out, r.Dst.Addr().String())
	} else {
		out = append(out, r.Dst.String())
	}
	if r.Src.IsValid() {
		out = append(out, "src", r.Src.String())
	}
	if len(r.NextHops) > 0 {
		for _, h := range r.NextHops {
			out = append(out, "nexthop", "via", h.String())
		}
	} else if r.Via.IsValid() {
		out = append(out, "via", r.Via.String())
	}
	if r.Dev != "" {
		out = append(out, "dev", r.Dev)
	}
	if r.Table != "" {
		out = append(out, "table", r.Table)
	}
	if sc, named := routeScopes[r.Scope]; named && sc != "" {
		out = append(out, "scope", sc)
	} else if !named && r.Scope != "" {
		out = append(out, "scope", r.Scope)
	}
	if r.Metric > 0 {
		out = append(out, "metric", strconv.Itoa(r.Metric))
	}
	if r.OnLink {
		out = append(out, "onlink")
	}
	if r.NoTrack {
		out = append(out, "no_track")
	}
	return strings.Join(out, " ")
}

// keepalivedRule normalises a "Virtual Rules" dump line, e.g.
// "from 10.0.0.100 priority 100 tos 0x0 protocol 18 lookup 100".
func keepalivedRule(l string) string {
	f := strings.Fields(l)
	var out []string
	for k := 0; k+1 < len(f); k += 2 {
		switch f[k] {
		case "tos", "protocol":
			continue
		case "lookup":
			out = append(out, "table", f[k+1])
		default:
			out = append(out, f[k], f[k+1])
		}
	}
	if len(f)%2 == 1 {
		out = append(out, f[len(f)-1])
	}
	return strings.Join(out, " ")
}

func ourRule(r *Rule) string {
	var out []string
	pfx := func(p netip.Prefix) string {
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String()
		}
		return p.String()
	}
	if r.From.IsValid() {
		out = append(out, "from", pfx(r.From))
	} else {
		out = append(out, "from", "all")
	}
	if r.To.IsValid() {
		out = append(out, "to", pfx(r.To))
	}
	out = append(out, "priority", strconv.Itoa(r.Priority))
	if r.FWMark != "" {
		out = append(out, "fwmark", r.FWMark)
	}
	if r.IIF != "" {
		out = append(out, "iif", r.IIF)
	}
	if r.OIF != "" {
		out = append(out, "oif", r.OIF)
	}
	if r.Table != "" {
		out = append(out, "table", r.Table)
	}
	if r.NoTrack {
		out = append(out, "no_track")
	}
	return strings.Join(out, " ")
}
