package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for the demo binary inside lab
// hosts: the demo runs os.Executable() as real server and HTTP client.
func TestMain(m *testing.M) {
	if handled, err := helper(os.Args[1:], os.Stdout); handled {
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDemo runs the demo end to end (fast adverts) with keepalived and
// with freshly built hakeepd and hactl, and checks the story it prints and
// that it leaves no namespace behind.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	common := []string{
		`MASTER: h1 holds 10\.99\.0\.100`,
		`ARP 10\.99\.0\.100 -> 02:00:00:00:00:0b -> h1`,
		`client: GET http://10\.99\.0\.15/ -> 200 rs1`,
		`client: GET http://10\.99\.0\.16/ -> 200 rs2`,
		`TAKEOVER: h2 holds 10\.99\.0\.100 [\d.]+m?s after the kill`,
		`ARP 10\.99\.0\.100 -> 02:00:00:00:00:0c -> h2`,
		`PREEMPTION: h1 holds 10\.99\.0\.100 again`,
		`PARTITION: \{h1\} \| \{h2, h3\}`,
		`HEALED: h1 holds 10\.99\.0\.100 again`,
		`lab removed`,
	}
	want := map[string][]string{
		"keepalived": append([]string{`skipped`, `SPLIT BRAIN: 10\.99\.0\.100 held by h1 and h2`}, common...),
		"hakeepd": append([]string{
			`SECURE: cluster CA, a certificate per director \(its name in the SAN\) and a gossip key, made by hactl`,
			`\$ hactl tls init --dir \S+ h1 h2 h3`,
			`\| +@h2 tls_cert \S+/h2\.pem`,
			`RAFT: bootstrapped by expectation \(3 of 3 seen\); leader h\d`,
			`security: mutual TLS as h1 \(certificate valid until`,
			`STRANGER: the client \(not a director\) .*: no reply: .*; still 3 voters`,
			`\| h1 +alive +yes`,
			`\| h2 +alive +yes`,
			`\| h3 +alive +yes`,
			`CHECKS: HTTP_GET / -> 200 on rs1 and rs2`,
			`10\.99\.0\.15:80 +DR +1 .* up`,
			`client: GET http://10\.99\.0\.15/ -> connection refused`,
			`CHECK DOWN: rs1 out of the table on h1, h2 and h3 .*every director.s own HTTP_GET failed`,
			`10\.99\.0\.15:80 +HTTP_GET +down`,
			`10\.99\.0\.15:80 +DR +1 .* down \(quorum\)`,
			`REPLICATED: .* h1=down h2=down h3=down`,
			`CHECK UP: rs1 back`,
			`applied on: h1, h2, h3`,
			`PUSH APPLIED: h1, h2, h3 run config version \d+ \(rs1 weight 3\); VI_2 up on h1`,
			`UNCHANGED: 10\.99\.0\.100 stayed on h1 through the push`,
			`10\.99\.0\.15:80 +DR +3 .* up`,
			`RAFT without h1: leader h[23]`,
			`REJOINED: h1 resumed from its data_dir`,
			`VI_1 .*FENCED`,
			`FENCED: h1 \(1 of 3 voters\) gave 10\.99\.0\.100 up and shows FENCED; h2 holds it, [\d.]+m?s after the cut; moves 1, samples with two owners 0`,
			`HEALED: .*; 2 moves in all, 0 of \d+ samples with two owners`,
		}, common...),
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
				dir := t.TempDir()
				o.hakeepd, o.hactl = filepath.Join(dir, "hakeepd"), filepath.Join(dir, "hactl")
				for _, c := range [][2]string{{o.hakeepd, "hakeep/cmd/hakeepd"}, {o.hactl, "hakeep/cmd/hactl"}} {
					if out, err := exec.Command("go", "build", "-o", c[0], c[1]).CombinedOutput(); err != nil {
						t.Skipf("%s does not build (mid-edit elsewhere?): %v: %s", c[1], err, out)
					}
				}
			}
			var out bytes.Buffer
			if err := run(o, &out); err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			t.Log("\n" + out.String())
			for _, w := range want[impl] {
				if !regexp.MustCompile(w).MatchString(out.String()) {
					t.Errorf("output lacks %q", w)
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
