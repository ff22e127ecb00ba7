package metrics_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"hakeep/metrics"
)

// promDir is deploy/prometheus (the rule files and their unit tests).
func promDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join("..", "go.mod")); err != nil {
		t.Skip("no source tree here (the vmtest guest has only the test binary)")
	}
	return filepath.Join("..", "deploy", "prometheus")
}

// The shipped rule files pass promtool's checks, and their unit tests
// (promtool test rules) pass: the compatibility rules turn sample hakeep
// series into keepalived-exporter's, the alerts fire when they should.
func TestPromtoolRules(t *testing.T) {
	dir := promDir(t)
	promtool := lookTool(t, "promtool")
	for _, tc := range []struct {
		args []string
		want string // in promtool's output
	}{
		{[]string{"check", "rules", "keepalived-exporter-compat.rules.yml"}, "SUCCESS"},
		{[]string{"check", "rules", "hakeep-alerts.rules.yml"}, "SUCCESS"},
		{[]string{"test", "rules", "keepalived-exporter-compat.rules_test.yml"}, "SUCCESS"},
		{[]string{"test", "rules", "hakeep-alerts.rules_test.yml"}, "SUCCESS"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(promtool, tc.args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
		})
	}
}

// Every hakeep_ series the rules, their tests and the dashboard read is
// one the daemon exports: a renamed metric breaks this test, not a
// production alert.
func TestDeployedNamesExist(t *testing.T) {
	dir := promDir(t)
	fams := scrape(t, metrics.Handler(metrics.NewRegistry(full().sources()), nil))
	files := []string{
		filepath.Join(dir, "keepalived-exporter-compat.rules.yml"),
		filepath.Join(dir, "keepalived-exporter-compat.rules_test.yml"),
		filepath.Join(dir, "hakeep-alerts.rules.yml"),
		filepath.Join(dir, "hakeep-alerts.rules_test.yml"),
		filepath.Join("..", "deploy", "grafana", "hakeep-dashboard.json"),
	}
	nameRe := regexp.MustCompile(`\bhakeep_[a-z0-9_]+`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var unknown []string
		for _, n := range nameRe.FindAllString(string(b), -1) {
			if fams[n] == nil && !slices.Contains(unknown, n) {
				unknown = append(unknown, n)
			}
		}
		if len(unknown) > 0 {
			t.Errorf("%s uses series hakeepd does not export: %v", f, unknown)
		}
	}
}
