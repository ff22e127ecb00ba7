package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestDiagnosticsHelpers(t *testing.T) {
	warn := Diagnostic{Pos: Pos{File: "a.conf", Line: 3}, Severity: Warning, Msg: "unknown keyword 'x'"}
	err1 := Diagnostic{Pos: Pos{File: "a.conf", Line: 1}, Severity: Error, Msg: "vrrp_instance V: " + msgUnclosed}
	err2 := Diagnostic{Pos: Pos{File: "b.conf"}, Severity: Error, Msg: "read configuration: no such file"}
	tests := []struct {
		name    string
		ds      Diagnostics
		strings []string
		err     string // "" for nil
		log     []string
	}{
		{"none", nil, nil, "", nil},
		{"warnings only are not an error", Diagnostics{warn}, []string{"a.conf:3: unknown keyword 'x'"}, "",
			[]string{`level=WARN msg=config msg="a.conf:3: unknown keyword 'x'"`}},
		{"errors one a line, warnings left out of Err", Diagnostics{warn, err1, err2},
			[]string{"a.conf:3: unknown keyword 'x'", "a.conf:1: vrrp_instance V: " + msgUnclosed, "b.conf: read configuration: no such file"},
			"invalid configuration:\na.conf:1: vrrp_instance V: " + msgUnclosed + "\nb.conf: read configuration: no such file",
			[]string{`level=WARN msg=config msg="a.conf:3: unknown keyword 'x'"`,
				`level=ERROR msg=config msg="a.conf:1: vrrp_instance V: block opened here is not closed: missing '}' at end of configuration (is the file cut off?)"`,
				`level=ERROR msg=config msg="b.conf: read configuration: no such file"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ds.Strings(); strings.Join(got, "\n") != strings.Join(tc.strings, "\n") || len(got) != len(tc.strings) {
				t.Errorf("Strings() = %q, want %q", got, tc.strings)
			}
			got := ""
			if err := tc.ds.Err(); err != nil {
				got = err.Error()
			}
			if got != tc.err {
				t.Errorf("Err() = %q, want %q", got, tc.err)
			}
			var buf bytes.Buffer
			tc.ds.Log(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				// Drop the time so the lines can be compared.
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				}})))
			if lines := strings.TrimSuffix(buf.String(), "\n"); lines != strings.Join(tc.log, "\n") {
				t.Errorf("Log wrote:\n%s\nwant:\n%s", lines, strings.Join(tc.log, "\n"))
			}
		})
	}
}
