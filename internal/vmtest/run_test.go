package vmtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStreamOutput(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		out    string
		status []int
	}{
		{
			name:   "two binaries",
			in:     "\nVMTEST-BEGIN 0\n=== RUN A\nPASS\n\nVMTEST-END 0 0\n\nVMTEST-BEGIN 1\nFAIL\n\nVMTEST-END 1 1\n",
			out:    "\n=== RUN A\nPASS\n\n\nFAIL\n\n",
			status: []int{0, 1},
		},
		{
			name:   "output without a final newline keeps the marker apart",
			in:     "VMTEST-BEGIN 0\npartialVMTEST-END 0 2\n",
			out:    "partial\n",
			status: []int{2, -1},
		},
		{
			name:   "crash before the end marker",
			in:     "VMTEST-BEGIN 0\npanic\n",
			out:    "panic\n",
			status: []int{-1, -1},
		},
		{
			name:   "garbage markers are ignored",
			in:     "VMTEST-END x y\nVMTEST-END 7 0\n",
			out:    "",
			status: []int{-1, -1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := []Result{{Status: -1}, {Status: -1}}
			var out bytes.Buffer
			streamOutput(strings.NewReader(tc.in), &out, res)
			if out.String() != tc.out {
				t.Errorf("output %q, want %q", out.String(), tc.out)
			}
			for i, want := range tc.status {
				if res[i].Status != want {
					t.Errorf("binary %d status %d, want %d", i, res[i].Status, want)
				}
			}
		})
	}
}

func TestShQuote(t *testing.T) {
	if got := shQuote("a'b c"); got != `'a'\''b c'` {
		t.Fatalf("shQuote = %s", got)
	}
}

func TestBuildInitrdPathBins(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	bin := filepath.Join(dir, "build", "hakeepd")
	if err := os.WriteFile(base, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if _, err := buildInitrd(context.Background(), work, base, Options{PathBins: []string{bin}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(work, "payload", "usr", "local", "bin", "hakeepd"))
	if err != nil || string(got) != "not really a binary" {
		t.Fatalf("hakeepd in the guest's /usr/local/bin: %q %v", got, err)
	}
}
