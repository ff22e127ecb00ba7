package lab_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// The hakeepd binary built for the run lives in its own temp dir.
	if hkPath != "" && os.Getenv("HAKEEPD_BIN") == "" && strings.HasPrefix(filepath.Base(filepath.Dir(hkPath)), "hakeepd-bin-") {
		os.RemoveAll(filepath.Dir(hkPath))
	}
	os.Exit(code)
}
