package config

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary text to the reader: it must never panic (the
// reader turns a panic into an "internal error" diagnostic, which fails
// here), must be deterministic, and what it returns must marshal to JSON.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimalInst))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		if p := os.Getenv("FUZZ_LAST"); p != "" {
			_ = os.WriteFile(p, data, 0o644)
		}
		c, d := Parse("f.conf", data, Options{NoInclude: true, ConfigID: "x"})
		for _, x := range d {
			if strings.Contains(x.Msg, "internal error") {
				t.Fatalf("panic inside the reader: %s", x)
			}
			if x.Pos.File != "f.conf" || x.Pos.Line < 1 {
				if !(x.Pos.File == "" && x.Pos.Line == 0) {
					t.Fatalf("diagnostic with a bad position: %+v", x)
				}
			}
		}
		if c == nil {
			t.Fatal("Parse returned no config")
		}
		_, d2 := Parse("f.conf", data, Options{NoInclude: true, ConfigID: "x"})
		if d.String() != d2.String() {
			t.Fatalf("not deterministic:\n%s\nvs\n%s", d, d2)
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatalf("marshal: %v", err)
		}
		_ = c.Summary()
	})
}
