package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// vsBlockRE finds top-level virtual_server blocks of the test texts (at
// the start of a line, closed by a "}" alone at the start of a line).
var vsBlockRE = regexp.MustCompile(`(?ms)^virtual_server [^\n]*\{\n.*?^\}\n`)

var weightRE = regexp.MustCompile(`weight (\d+)`)

// mutations of a configuration text: what an operator changes before a
// SIGHUP. Each returns the new text (or the same when it does not apply).
var mutations = []struct {
	name string
	f    func(string) string
}{
	{"same", func(s string) string { return s }},
	{"weight changed", func(s string) string {
		i := 0
		return weightRE.ReplaceAllStringFunc(s, func(m string) string {
			if i++; i != 4 { // one real server's weight
				return m
			}
			n, _ := strconv.Atoi(m[len("weight "):])
			return "weight " + strconv.Itoa(n%200+1)
		})
	}},
	{"first block removed", func(s string) string {
		if loc := vsBlockRE.FindStringIndex(s); loc != nil {
			return s[:loc[0]] + s[loc[1]:]
		}
		return s
	}},
	{"block added at the top", func(s string) string {
		return "virtual_server 10.9.9.9 99 {\n  lb_algo rr\n  real_server 10.8.8.8 99 {\n    weight 3\n  }\n}\n" + s
	}},
	{"first block moved to the end", func(s string) string {
		if loc := vsBlockRE.FindStringIndex(s); loc != nil {
			return s[:loc[0]] + s[loc[1]:] + s[loc[0]:loc[1]]
		}
		return s
	}},
	{"block duplicated", func(s string) string {
		if loc := vsBlockRE.FindStringIndex(s); loc != nil {
			return s[:loc[1]] + s[loc[0]:loc[1]] + s[loc[1]:]
		}
		return s
	}},
	{"lines inserted at the top", func(s string) string { return "\n# a comment\n\n" + s }},
	{"global_defs changed", func(s string) string {
		return "global_defs {\n  router_id changed\n  smtp_helo_name other.example\n  lvs_flush\n}\n" + s
	}},
	{"$PARAM defined and used", func(s string) string {
		return "$W=7\n" + strings.Replace(s, "weight ", "weight $W #", 1)
	}},
	{"@id line", func(s string) string { return strings.Replace(s, "  lb_algo", "@other lb_algo sh\n  lb_algo", 1) }},
	{"block cut off", func(s string) string {
		if loc := vsBlockRE.FindStringIndex(s); loc != nil {
			return s[:loc[1]-2]
		}
		return s
	}},
	{"unbalanced brace after a block", func(s string) string {
		if loc := vsBlockRE.FindStringIndex(s); loc != nil {
			return s[:loc[1]] + "}\n" + s[loc[1]:]
		}
		return s
	}},
	{"junk inside a block", func(s string) string { return strings.Replace(s, "  lb_kind", "  no_such_kw 1\n  lb_kind", 1) }},
	{"CRLF", func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }},
}

// incrementalBases are the texts the mutations apply to: the seeds (real
// users' files), the fuzz corpus and a generated table with checkers.
func incrementalBases(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{"generated": string(largeConfig(6, 3))}
	var b strings.Builder
	for v := range 5 {
		fmt.Fprintf(&b, "virtual_server 10.1.0.%d 80 {\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n  quorum 2\n", v+1)
		for r := range 4 {
			fmt.Fprintf(&b, "  real_server 10.2.%d.%d 80 {\n    weight %d\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n", v, r+1, r+1)
		}
		b.WriteString("  real_server 10.2.9.9 80 {\n    weight 1\n  }\n  real_server 10.2.9.9 80 {\n    weight 2\n  }\n}\n")
	}
	b.WriteString("virtual_server 10.1.1.1 25 {\n  real_server 10.3.0.1 25 {\n    SMTP_CHECK {\n    }\n  }\n}\n")
	out["checkers"] = b.String()
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seeds", "*.conf"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = string(data)
	}
	corpus, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParse", "*"))
	for _, p := range corpus {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := fuzzCorpusBytes(data); ok {
			out["corpus/"+filepath.Base(p)] = s
		}
	}
	return out
}

// fuzzCorpusBytes reads the one []byte value of a "go test fuzz v1" file.
func fuzzCorpusBytes(data []byte) (string, bool) {
	lines := bytes.SplitN(data, []byte("\n"), 3)
	if len(lines) < 2 || !bytes.HasPrefix(lines[1], []byte("[]byte(")) {
		return "", false
	}
	lit := bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSpace(lines[1]), []byte("[]byte(")), []byte(")"))
	s, err := strconv.Unquote(string(lit))
	return s, err == nil
}

// sameLoad compares two loads: the whole model (positions included) and
// the diagnostics.
func sameLoad(a *Config, da Diagnostics, b *Config, db Diagnostics) string {
	if da.String() != db.String() {
		return fmt.Sprintf("diagnostics differ:\n%s\nvs\n%s", da, db)
	}
	if (a == nil) != (b == nil) {
		return "one config is nil"
	}
	if a == nil {
		return ""
	}
	x, y := *a, *b
	x.inc, y.inc = nil, nil
	if !reflect.DeepEqual(&x, &y) {
		for i := range min(len(x.VirtualServers), len(y.VirtualServers)) {
			if !reflect.DeepEqual(x.VirtualServers[i], y.VirtualServers[i]) {
				return fmt.Sprintf("virtual server %d differs:\n%+v\nvs\n%+v", i, x.VirtualServers[i], y.VirtualServers[i])
			}
		}
		return "models differ"
	}
	return ""
}

// checkIncremental parses a, then b three ways: fully, reusing a's load,
// and reusing that incremental load again; all must give the same model.
// It returns how many of b's virtual servers were reused.
func checkIncremental(t *testing.T, a, b string, opts Options) int {
	t.Helper()
	prev, _ := Parse("k.conf", []byte(a), opts)
	full, df := Parse("k.conf", []byte(b), opts)
	o := opts
	o.Reuse = prev
	inc, di := Parse("k.conf", []byte(b), o)
	if msg := sameLoad(full, df, inc, di); msg != "" {
		t.Fatalf("incremental load differs from a full one: %s", msg)
	}
	o.Reuse = inc
	again, da := Parse("k.conf", []byte(b), o)
	if msg := sameLoad(full, df, again, da); msg != "" {
		t.Fatalf("second incremental load differs from a full one: %s", msg)
	}
	reused := 0
	old := map[*VirtualServer]bool{}
	for _, v := range prev.VirtualServers {
		old[v] = true
	}
	for _, v := range inc.VirtualServers {
		if old[v] || old[inc.ReusedFrom(v)] {
			reused++
		}
	}
	return reused
}

// TestIncrementalEqualsFull: an incremental load of a changed file gives
// exactly the model and diagnostics of a full load, over real users' files
// and the usual edits; and the unchanged blocks are reused.
func TestIncrementalEqualsFull(t *testing.T) {
	bases := incrementalBases(t)
	if len(bases) < 20 {
		t.Fatalf("only %d base texts", len(bases))
	}
	reusedAny := 0
	for name, base := range bases {
		for _, m := range mutations {
			t.Run(name+"/"+m.name, func(t *testing.T) {
				r := checkIncremental(t, base, m.f(base), Options{NoInclude: true, ConfigID: "x"})
				reusedAny += r
				if name == "generated" && (m.name == "weight changed" || m.name == "first block moved to the end" || m.name == "block added at the top") && r < 3 {
					t.Errorf("only %d virtual servers reused", r)
				}
			})
		}
	}
	if reusedAny == 0 {
		t.Error("nothing was ever reused")
	}
}

// TestIncrementalReuse: what is reused and what is not, on a small table.
func TestIncrementalReuse(t *testing.T) {
	a := string(largeConfig(4, 2))
	prev, d := Parse("k.conf", []byte(a), Options{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	// Unchanged: every virtual server is the same object.
	same, _ := Parse("k.conf", []byte(a), Options{Reuse: prev})
	for i, v := range same.VirtualServers {
		if v != prev.VirtualServers[i] {
			t.Errorf("virtual server %d parsed again", i)
		}
	}
	// Lines moved: copies with positions moved, known as reused.
	moved, _ := Parse("k.conf", []byte("\n\n"+a), Options{Reuse: prev})
	for i, v := range moved.VirtualServers {
		if v == prev.VirtualServers[i] || moved.ReusedFrom(v) != prev.VirtualServers[i] {
			t.Errorf("virtual server %d: not a copy of the previous one", i)
		}
		if v.Pos.Line != prev.VirtualServers[i].Pos.Line+2 || v.RealServers[1].Checkers[0].URLs[0].Pos.Line != prev.VirtualServers[i].RealServers[1].Checkers[0].URLs[0].Pos.Line+2 {
			t.Errorf("virtual server %d: positions not moved: %s", i, v.Pos)
		}
	}
	if prev.VirtualServers[0].Pos.Line == moved.VirtualServers[0].Pos.Line {
		t.Error("the previous load's positions changed")
	}
	// Another config_id: nothing reused (an @id line could mean otherwise).
	other, _ := Parse("k.conf", []byte(a), Options{Reuse: prev, ConfigID: "b"})
	if other.VirtualServers[0] == prev.VirtualServers[0] {
		t.Error("reused across config_ids")
	}
}

// TestIncrementalInclude: blocks of included files are reused too, and a
// changed include is read again.
func TestIncrementalInclude(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "k.conf")
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("k.conf", "global_defs {\n  router_id a\n}\ninclude vs*.conf\n")
	write("vs1.conf", string(largeConfig(3, 2)[bytes.Index(largeConfig(3, 2), []byte("virtual_server")):]))
	write("vs2.conf", "virtual_server 10.7.0.1 80 {\n  real_server 10.7.1.1 80 {\n  }\n}\n")
	prev, d := Load(main, Options{})
	if d.HasErrors() || len(prev.VirtualServers) != 4 {
		t.Fatalf("%d virtual servers\n%s", len(prev.VirtualServers), d)
	}
	write("vs2.conf", "\nvirtual_server 10.7.0.1 80 {\n  real_server 10.7.1.1 80 {\n    weight 4\n  }\n}\n")
	inc, di := Load(main, Options{Reuse: prev})
	full, df := Load(main, Options{})
	if msg := sameLoad(full, df, inc, di); msg != "" {
		t.Fatal(msg)
	}
	for i := range 3 {
		if inc.VirtualServers[i] != prev.VirtualServers[i] {
			t.Errorf("virtual server %d of the unchanged include parsed again", i)
		}
	}
	if inc.VirtualServers[3] == prev.VirtualServers[3] || inc.VirtualServers[3].RealServers[0].Weight != 4 {
		t.Error("the changed include's block was not read again")
	}
}

// FuzzIncremental: for any two texts, loading the second reusing the
// first gives what loading it alone gives.
func FuzzIncremental(f *testing.F) {
	base := string(largeConfig(3, 2))
	for _, m := range mutations {
		f.Add([]byte(base), []byte(m.f(base)))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if len(a) > 1<<15 || len(b) > 1<<15 {
			return
		}
		checkIncremental(t, string(a), string(b), Options{NoInclude: true, ConfigID: "x"})
	})
}
