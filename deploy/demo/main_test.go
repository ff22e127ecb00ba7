package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemo runs the demo end to end (fast adverts) with keepalived and
// with a freshly built hakeepd, and checks the story it prints and that
// it leaves no namespace behind.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	for _, impl := range []string{"keepalived", "hakeepd"} {
		t.Run(impl, func(t *testing.T) {
			o := options{advertInt: 0.1, version: 3}
			switch impl {
			case "keepalived":
				if _, err := exec.LookPath("keepalived"); err != nil {
					t.Skip("needs keepalived (Debian package)")
				}
				o.keepalived = true
			case "hakeepd":
				o.hakeepd = filepath.Join(t.TempDir(), "hakeepd")
				if out, err := exec.Command("go", "build", "-o", o.hakeepd, "hakeep/cmd/hakeepd").CombinedOutput(); err != nil {
					t.Skipf("hakeepd does not build: %v: %s", err, out)
				}
			}
			var out bytes.Buffer
			if err := run(o, &out); err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			t.Log("\n" + out.String())
			for _, want := range []string{
				`MASTER: h1 holds 10\.99\.0\.100`,
				`ARP 10\.99\.0\.100 -> 02:00:00:00:00:0b -> h1`,
				`TAKEOVER: h2 holds 10\.99\.0\.100 \d+ms after the kill`,
				`ARP 10\.99\.0\.100 -> 02:00:00:00:00:0c -> h2`,
				`PREEMPTION: h1 holds 10\.99\.0\.100 again`,
				`lab removed`,
			} {
				if !regexp.MustCompile(want).MatchString(out.String()) {
					t.Errorf("output lacks %q", want)
				}
			}
			ents, _ := os.ReadDir("/run/netns")
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "hkdemo"+strconv.Itoa(os.Getpid())+"-") {
					t.Errorf("namespace %s left behind", e.Name())
				}
			}
		})
	}
}
