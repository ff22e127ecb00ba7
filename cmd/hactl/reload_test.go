package main

import (
	"strings"
	"testing"
	"time"

	"hakeep/api"
)

func TestReloadLine(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		name string
		r    api.Reload
		want []string
	}{
		{"applied", api.Reload{Source: "SIGHUP", At: at, OK: true, LastSuccess: at}, []string{"ok (SIGHUP at 2026-12-02 10:00:00)"}},
		{"refused", api.Reload{Source: "version 4", At: at, Error: "k.conf:7: block opened here is not closed", LastSuccess: at.Add(-time.Hour)},
			[]string{"REFUSED (version 4 at 2026-12-02 10:00:00)", "k.conf:7: block opened here is not closed", "running configuration kept", "applied 2026-12-02 09:00:00"}},
	} {
		got := reloadLine(&tc.r)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
	}
}
