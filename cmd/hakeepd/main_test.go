package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testInst = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n}\n"

// unclosedMsg is the lexer's text for a block left open at the end.
const unclosedMsg = "block opened here is not closed: missing '}' at end of configuration (is the file cut off?)"

func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigTestExitCodes: -t exits as keepalived -t does (0 clean, 5
// warnings, 1 errors), but a file whose blocks do not close exits 1 where
// keepalived only warns: a truncated file must never be used.
func TestConfigTestExitCodes(t *testing.T) {
	tests := []struct {
		name, text string
		args       []string // after -f FILE
		code       int
		stderr     []string // each line, FILE standing for the path
		stdout     string   // in stdout ("" for empty stdout)
	}{
		{"clean", testInst, []string{"-t"}, exitOK, nil, "vrrp_instance V"},
		{"warnings", strings.Replace(testInst, " interface eth0\n", " interface eth0\n priorty 5\n", 1), []string{"-t"}, exitWarnings,
			[]string{"FILE:3: unknown keyword 'priorty' in vrrp_instance (did you mean 'priority'?)"}, "vrrp_instance V"},
		{"errors", strings.Replace(testInst, "virtual_router_id 1", "virtual_router_id 300", 1), []string{"-t"}, exitError,
			[]string{"FILE:3: virtual_router_id: 300 is out of range [1, 255]", "FILE:1: vrrp_instance V: virtual_router_id is missing"}, ""},
		{"cut before the last brace", strings.TrimSuffix(testInst, "}\n"), []string{"-t"}, exitError,
			[]string{"FILE:1: vrrp_instance V: " + unclosedMsg}, ""},
		{"cut inside a nested block", testInst[:strings.Index(testInst, " }\n")], []string{"-t"}, exitError,
			[]string{"FILE:4: virtual_ipaddress: " + unclosedMsg, "FILE:1: vrrp_instance V: " + unclosedMsg}, ""},
		{"dump refuses a cut-off file", strings.TrimSuffix(testInst, "}\n"), []string{"-d"}, exitError,
			[]string{"FILE:1: vrrp_instance V: " + unclosedMsg}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeConf(t, tc.text)
			var out, errOut bytes.Buffer
			code := run(append([]string{"-i", "d1", "-f", f}, tc.args...), &out, &errOut)
			var want string
			for _, l := range tc.stderr {
				want += strings.ReplaceAll(l, "FILE", f) + "\n"
			}
			if code != tc.code || errOut.String() != want {
				t.Errorf("exit %d, stderr:\n%swant exit %d, stderr:\n%s", code, errOut.String(), tc.code, want)
			}
			if tc.stdout == "" && out.Len() != 0 || !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout %q, want %q", out.String(), tc.stdout)
			}
		})
	}
}

// TestReloadConfig: SIGHUP applies a readable file and refuses one with
// errors, a cut-off one among them, logging why.
func TestReloadConfig(t *testing.T) {
	tests := []struct {
		name, text string
		applied    bool
		log        []string // each line, FILE standing for the path
	}{
		{"clean", testInst, true, nil},
		{"warnings are applied", strings.Replace(testInst, " interface eth0\n", " interface eth0\n priorty 5\n", 1), true,
			[]string{`level=WARN msg=config msg="FILE:3: unknown keyword 'priorty' in vrrp_instance (did you mean 'priority'?)"`}},
		{"cut-off file refused", strings.TrimSuffix(testInst, "}\n"), false,
			[]string{`level=ERROR msg=config msg="FILE:1: vrrp_instance V: ` + unclosedMsg + `"`,
				`level=ERROR msg="reload refused: configuration has errors, keeping the running one" file=FILE`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeConf(t, tc.text)
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{} // so lines can be compared
				}
				return a
			}}))
			cfg, err := reloadConfig(options{configFile: f, configID: "d1"}, log, nil)
			if (cfg != nil) != tc.applied || (err == nil) != tc.applied {
				t.Errorf("reloadConfig returned %v, %v; want applied %v", cfg != nil, err, tc.applied)
			}
			var want string
			for _, l := range tc.log {
				want += strings.ReplaceAll(l, "FILE", f) + "\n"
			}
			if buf.String() != want {
				t.Errorf("log:\n%swant:\n%s", buf.String(), want)
			}
		})
	}
}
