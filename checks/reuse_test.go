package checks

import (
	"fmt"
	"hakeep/internal/scaleconf"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"hakeep/config"
)

// reuseText is n virtual servers of d real servers each, checked by
// HTTP_GET and TCP_CHECK (warmup 0: new checks are due at once, so two
// managers compare); edit changes virtual server i's text.
func reuseText(head string, n, d int, edit func(i int, vs string) string) string {
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		var v strings.Builder
		fmt.Fprintf(&v, "virtual_server 10.1.0.%d 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  warmup 0\n", i)
		for j := range d {
			// Real server 10.2.0.(i+j)%4: virtual servers share checks.
			fmt.Fprintf(&v, "  real_server 10.2.0.%d 80 {\n    weight 1\n", (i+j)%4)
			if j%2 == 0 {
				v.WriteString("    HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n      connect_timeout 3\n    }\n")
			} else {
				v.WriteString("    TCP_CHECK {\n      connect_timeout 3\n    }\n")
			}
			v.WriteString("  }\n")
		}
		v.WriteString("}\n")
		s := v.String()
		if edit != nil {
			s = edit(i, s)
		}
		b.WriteString(s)
	}
	return b.String()
}

// TestBuildEqualsFromConfig: specs built reusing the running build, and a
// Manager reloaded keeping the unchanged virtual servers' checks, are
// exactly what a full build and Reload give, checker state included.
func TestBuildEqualsFromConfig(t *testing.T) {
	const n, d = 8, 4
	base := reuseText("", n, d, nil)
	onlyVS := func(k int, f func(string) string) func(int, string) string {
		return func(i int, s string) string {
			if i == k {
				return f(s)
			}
			return s
		}
	}
	tests := []struct {
		name string
		text string
		kept int // virtual servers whose specs are reused
	}{
		{"unchanged", base, n},
		{"checker params", reuseText("", n, d, onlyVS(2, func(s string) string {
			return strings.Replace(s, "connect_timeout 3", "connect_timeout 5", 1)
		})), n - 1},
		{"blocks moved", reuseText("# a comment\n\n", n, d, nil), n},
		{"blocks moved and one changed", reuseText("# a comment\n", n, d, onlyVS(5, func(s string) string {
			return strings.Replace(s, "weight 1", "weight 3", 1)
		})), n - 1},
		{"real server removed", reuseText("", n, d, onlyVS(1, func(s string) string {
			i := strings.Index(s, "  real_server")
			j := strings.Index(s[i+1:], "  real_server") + i + 1
			return s[:i] + s[j:]
		})), n - 1},
		{"real server added", reuseText("", n, d, onlyVS(3, func(s string) string {
			return strings.Replace(s, "  warmup 0\n", "  warmup 0\n  real_server 10.2.0.9 80 {\n    TCP_CHECK {\n      connect_port 81\n    }\n  }\n", 1)
		})), n - 1},
		{"virtual server removed", reuseText("", n, d, func(i int, s string) string {
			if i == 0 {
				return ""
			}
			return s
		})[0:], n - 1},
		{"virtual server added", base + "virtual_server 10.1.1.1 80 {\n  protocol TCP\n  warmup 0\n  real_server 10.2.0.1 80 {\n    TCP_CHECK {\n    }\n  }\n}\n", n},
		{"warning moved", reuseText("\n", n, d, onlyVS(4, func(s string) string {
			return strings.Replace(s, "    weight 1\n", "    weight 1\n    BFD_CHECK {\n      name bfd1\n    }\n", 1)
		})), n - 1},
		{"global settings changed", "global_defs {\n  smtp_alert_checker\n}\n" + base, 0},
	}
	baseCfg := parseReuse(t, base, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The warning case's base has the BFD_CHECK too, moved after.
			running := baseCfg
			if tt.name == "warning moved" {
				running = parseReuse(t, strings.TrimPrefix(tt.text, "\n"), nil)
			}
			loaded := Build(running, nil)
			if specs, warns := FromConfig(running); !reflect.DeepEqual(loaded.Specs, specs) || !slices.Equal(loaded.Warnings, warns) || loaded.Kept != nil {
				t.Fatal("a build from nothing is not FromConfig's")
			}
			cfg := parseReuse(t, tt.text, running)
			got := Build(cfg, loaded.Basis)
			checkBuilt(t, got, cfg, running)
			if len(got.Kept) != tt.kept {
				t.Fatalf("kept %d virtual servers, want %d", len(got.Kept), tt.kept)
			}

			full, keeping := reuseManager(t), reuseManager(t)
			for _, m := range []*Manager{full, keeping} {
				if err := m.Reload(loaded.Specs); err != nil {
					t.Fatal(err)
				}
				perturb(m)
			}
			wantSpecs, _ := FromConfig(cfg)
			if err := full.Reload(wantSpecs); err != nil {
				t.Fatal(err)
			}
			if err := keeping.ReloadKeeping(got.Specs, got.Kept); err != nil {
				t.Fatal(err)
			}
			if a, b := dumpManager(full), dumpManager(keeping); a != b {
				t.Fatalf("manager state differs\nfull:\n%s\nkeeping:\n%s", a, b)
			}
			// Once more, as the next reload would: back to the base.
			backCfg := parseReuse(t, base, cfg)
			back := Build(backCfg, got.Basis)
			checkBuilt(t, back, backCfg, cfg)
			backSpecs, _ := FromConfig(backCfg)
			if err := full.Reload(backSpecs); err != nil {
				t.Fatal(err)
			}
			if err := keeping.ReloadKeeping(back.Specs, back.Kept); err != nil {
				t.Fatal(err)
			}
			if a, b := dumpManager(full), dumpManager(keeping); a != b {
				t.Fatalf("manager state differs after the second reload\nfull:\n%s\nkeeping:\n%s", a, b)
			}
		})
	}
}

// checkBuilt: b's specs are FromConfig's of cfg but for the kept virtual
// servers, whose FromConfig specs are the same in cfg and running.
func checkBuilt(t *testing.T, b *Built, cfg, running *config.Config) {
	t.Helper()
	kept := map[string]bool{}
	for _, k := range b.Kept {
		kept[k] = true
	}
	byVS := func(specs []Spec) map[string][]Spec {
		m := map[string][]Spec{}
		for _, s := range specs {
			m[s.VirtualServer] = append(m[s.VirtualServer], s)
		}
		return m
	}
	all, warns := FromConfig(cfg)
	old, _ := FromConfig(running)
	oldBy := byVS(old)
	var rest []Spec
	for vs, specs := range byVS(all) {
		if kept[vs] && !reflect.DeepEqual(specs, oldBy[vs]) {
			t.Fatalf("kept %s, but its specs changed\n got %+v\nwant %+v", vs, oldBy[vs], specs)
		}
	}
	for _, s := range all {
		if !kept[s.VirtualServer] {
			rest = append(rest, s)
		}
	}
	if !reflect.DeepEqual(b.Specs, rest) || !slices.Equal(b.Warnings, warns) {
		t.Fatalf("specs differ\n got %+v %q\nwant %+v %q", b.Specs, b.Warnings, rest, warns)
	}
}

func parseReuse(t *testing.T, text string, running *config.Config) *config.Config {
	t.Helper()
	cfg, diags := config.Parse("k.conf", []byte(text), config.Options{NoInclude: true, Reuse: running})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func reuseManager(t *testing.T) *Manager {
	return New(Options{
		Clock:         NewFakeClock(time.Unix(1_700_000_000, 0)),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxConcurrent: 10,
		NewProber:     func(c Checker) (Prober, error) { return ProberFunc(nil), nil },
	})
}

// perturb gives the checks state a reload must keep: counters, and some
// down, so real servers whose checker set changes get a transition.
func perturb(m *Manager) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.jobs {
		a := j.addr.Addr().As4()
		j.runs, j.failures, j.retryIt = uint64(a[3])+10, uint64(a[3]), int32(a[3]%2)
		j.hasRun, j.lastAt = true, int64(a[3])
		j.up = a[3] != 1 || j.s.c.Kind != KindTCP
		j.lastReason = fmt.Sprint("run ", a[3])
	}
	// As the checks would have left them.
	for _, rs := range m.servers {
		up, w := rs.health()
		rs.up, rs.weight = up, int32(w)
		if !up {
			rs.reason = "down"
		}
	}
}

// dumpManager is everything of a manager's state a reload sets.
func dumpManager(m *Manager) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rss []string
	for _, rs := range m.servers {
		var b strings.Builder
		fmt.Fprintf(&b, "%s up=%v w=%d %q since=%d %+v\n", rs.key(), rs.up, rs.weight, rs.reason, rs.since, *rs.info)
		for _, j := range rs.jobs {
			var subs []string
			for _, s := range j.subs {
				subs = append(subs, s.key().String())
			}
			fmt.Fprintf(&b, "  %s %s up=%v runs=%d fail=%d retry=%d last=%q at=%d due=%d queued=%v removed=%v subs=%q\n",
				j.s.key, j.addr, j.up, j.runs, j.failures, j.retryIt, j.lastReason, j.lastAt, j.due, j.index >= 0, j.removed, subs)
		}
		rss = append(rss, b.String())
	}
	// In the order State gives (kept real servers come first in m.servers).
	slices.Sort(rss)
	var b strings.Builder
	b.WriteString(strings.Join(rss, ""))
	var shapes []string
	for k, s := range m.shapes {
		if s.key != k {
			shapes = append(shapes, "bad "+k)
		}
		shapes = append(shapes, k)
	}
	slices.Sort(shapes)
	fmt.Fprintf(&b, "shapes %q\njobs %d queue %d\n", shapes, len(m.jobs), m.queue.Len())
	for _, t := range m.tq {
		fmt.Fprintf(&b, "transition %+v\n", t)
	}
	var queued []string
	for _, j := range m.queue {
		queued = append(queued, fmt.Sprintf("%s@%d", j.addr, j.due))
	}
	slices.Sort(queued)
	fmt.Fprintf(&b, "queued %q\n", queued)
	return b.String()
}

// TestReloadKeepingRefuses: a kept virtual server that is not loaded, or
// also given, is refused and nothing changes.
func TestReloadKeepingRefuses(t *testing.T) {
	cfg := parseReuse(t, reuseText("", 3, 2, nil), nil)
	specs, _ := FromConfig(cfg)
	m := reuseManager(t)
	if err := m.Reload(specs); err != nil {
		t.Fatal(err)
	}
	before := dumpManager(m)
	for _, kept := range [][]string{{"10.9.9.9:80/TCP"}, {specs[0].VirtualServer}, {specs[4].VirtualServer, specs[4].VirtualServer}} {
		if err := m.ReloadKeeping(specs[:4], kept); err == nil {
			t.Fatalf("kept %q: no error", kept)
		}
		if after := dumpManager(m); after != before {
			t.Fatalf("kept %q: state changed\n%s\n%s", kept, before, after)
		}
	}
	if err := m.ReloadKeeping(specs[:4], []string{specs[4].VirtualServer}); err != nil {
		t.Fatal(err)
	}
	if after := dumpManager(m); after != before {
		t.Fatalf("state changed\n%s\n%s", before, after)
	}
}

// BenchmarkChecksReload1Percent: the checkers' part of a SIGHUP of the
// 2,000 x 20 file with 1% changed (40,000 checks): the specs built and
// loaded into a Manager, in full (FromConfig, Reload) and reusing the
// loaded ones (Build, ReloadKeeping). Alternately the changed file and
// the original, parsed reusing each other as the daemon does.
func BenchmarkChecksReload1Percent(b *testing.B) {
	checkers := map[string]string{
		"TCP_CHECK": "    TCP_CHECK {\n      connect_timeout 3\n    }\n",
		"HTTP_GET":  "    HTTP_GET {\n      url {\n        path /health\n        status_code 200\n      }\n      connect_timeout 3\n    }\n",
	}
	for _, kind := range []string{"TCP_CHECK", "HTTP_GET"} {
		texts := []string{scaleconf.TextChecked(2000, 20, false, checkers[kind]), scaleconf.TextChecked(2000, 20, true, checkers[kind])}
		var cfgs [2]*config.Config
		for i, text := range texts {
			var prev *config.Config
			if i == 1 {
				prev = cfgs[0]
			}
			c, d := config.Parse("k.conf", []byte(text), config.Options{NoInclude: true, Reuse: prev})
			if d.HasErrors() {
				b.Fatal(d)
			}
			cfgs[i] = c
		}
		for _, mode := range []string{"full", "reusing"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				m := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConcurrent: 100})
				loaded := Build(cfgs[0], nil)
				if err := m.Reload(loaded.Specs); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					cfg := cfgs[i%2]
					if mode == "full" {
						specs, _ := FromConfig(cfg)
						if err := m.Reload(specs); err != nil {
							b.Fatal(err)
						}
						continue
					}
					built := Build(cfg, loaded.Basis)
					if err := m.ReloadKeeping(built.Specs, built.Kept); err != nil {
						b.Fatal(err)
					}
					if len(built.Kept) != 1960 {
						b.Fatalf("kept %d virtual servers", len(built.Kept))
					}
					loaded = built
				}
			})
		}
	}
}
