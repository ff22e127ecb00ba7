package consensus

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCheckPushable is the leader's check of a pushed text (ValidatePushed
// runs before raft.Apply, so a refused text is never committed).
func TestCheckPushable(t *testing.T) {
	good, err := os.ReadFile("testdata/pernode.conf")
	if err != nil {
		t.Fatal(err)
	}
	// A push cut off before its last line: the instance's '}' is missing.
	cut := strings.TrimSuffix(string(good), "}\n")
	if cut == string(good) {
		t.Fatal("testdata/pernode.conf does not end with \"}\\n\"")
	}
	// Cut off inside the address list: both open blocks are named.
	cutVIPs := string(good[:strings.Index(string(good), "10.0.0.100/24")+len("10.0.0.100/24\n")])
	const unclosed = ": block opened here is not closed: missing '}' at end of configuration (is the file cut off?)"
	tests := []struct {
		name, text string
		errs       []string
		warnings   []string
	}{
		{"good", string(good), nil, nil},
		{"cut off before the last brace", cut, []string{"p.conf:1: vrrp_instance VI_1" + unclosed}, nil},
		{"cut off inside a nested block", cutVIPs,
			[]string{"p.conf:9: virtual_ipaddress" + unclosed, "p.conf:1: vrrp_instance VI_1" + unclosed}, nil},
		{"warnings do not refuse", strings.Replace(string(good), "advert_int 1", "advert_int 1\n    priorty 5", 1), nil,
			[]string{"p.conf:9: unknown keyword 'priorty' in vrrp_instance (did you mean 'priority'?)"}},
		{"includes refused", "include other.conf\n" + string(good), []string{"p.conf:1: include other.conf: includes are not allowed here"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs, warnings := CheckPushable("p.conf", []byte(tc.text))
			if !slices.Equal(errs, tc.errs) || !slices.Equal(warnings, tc.warnings) {
				t.Fatalf("errors %q\nwarnings %q\nwant %q\nand %q", errs, warnings, tc.errs, tc.warnings)
			}
			err := ValidatePushed("p.conf", []byte(tc.text))
			var ve *ValidationError
			switch {
			case len(tc.errs) == 0 && err != nil:
				t.Fatalf("ValidatePushed = %v, want nil", err)
			case len(tc.errs) > 0 && (!errors.As(err, &ve) || !slices.Equal(ve.Diagnostics, tc.errs)):
				t.Fatalf("ValidatePushed = %v, want a *ValidationError with %q", err, tc.errs)
			}
		})
	}
}

// TestPushCutOffCommitsNothing pushes a truncated file to a running node:
// it is refused with file:line and no version is committed.
func TestPushCutOffCommitsNothing(t *testing.T) {
	good, err := os.ReadFile("testdata/pernode.conf")
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{n: 1, expect: 1, validate: ValidatePushed})
	n := c.leader().node
	_, err = n.Push(ctxT(t, 10*time.Second), "pernode.conf", []byte(strings.TrimSuffix(string(good), "}\n")), "op", "cut")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Diagnostics) != 1 || !strings.HasPrefix(ve.Diagnostics[0], "pernode.conf:1: vrrp_instance VI_1: block opened here is not closed") {
		t.Fatalf("push of a cut-off file: err = %v, want the unclosed-block error at pernode.conf:1", err)
	}
	if h := n.FSM().History(); len(h) != 0 {
		t.Fatalf("a refused push was committed: history %+v", h)
	}
	// The whole file then commits as version 1: the refused one took none.
	if r, err := n.Push(ctxT(t, 10*time.Second), "pernode.conf", good, "op", "whole"); err != nil || r.Version != 1 {
		t.Fatalf("push of the whole file = %+v, %v", r, err)
	}
}
