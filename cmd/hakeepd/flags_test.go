package main

import (
	"io"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
		check   func(o options) bool
	}{
		{[]string{}, false, func(o options) bool {
			return o.configFile == "/etc/keepalived/keepalived.conf" && o.pidFile == "/run/hakeepd.pid" && o.stateDir == "/run/hakeepd"
		}},
		{[]string{"-f", "x.conf", "-t"}, false, func(o options) bool { return o.configFile == "x.conf" && o.configTest }},
		{[]string{"--use-file", "y.conf", "--config-test"}, false, func(o options) bool { return o.configFile == "y.conf" && o.configTest }},
		{[]string{"-n", "-l", "-D", "-p", "/tmp/p", "-i", "d1"}, false, func(o options) bool {
			return o.dontFork && o.logConsole && o.logDetail && o.pidFile == "/tmp/p" && o.configID == "d1"
		}},
		{[]string{"-S", "3", "-P"}, false, func(o options) bool { return o.logFacility == 3 && o.vrrpOnly }},
		{[]string{"-r", "/x", "-c", "/y", "-G"}, false, func(o options) bool { return o.noSyslog }},
		{[]string{"--state-dir", "/tmp/lab/d1"}, false, func(o options) bool { return o.stateDir == "/tmp/lab/d1" }},
		{[]string{"-state-dir=/x"}, false, func(o options) bool { return o.stateDir == "/x" }},
		{[]string{"--state-dir", ""}, false, func(o options) bool { return o.stateDir == "" }},
		{[]string{"--state-dir"}, true, nil},
		{[]string{"-S", "9"}, true, nil},
		{[]string{"-P", "-C"}, true, nil},
		{[]string{"stray"}, true, nil},
		{[]string{"--bogus"}, true, nil},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, io.Discard)
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: err = %v, wantErr %v", tt.args, err, tt.wantErr)
			continue
		}
		if err == nil && !tt.check(o) {
			t.Errorf("%v: unexpected options %+v", tt.args, o)
		}
	}
}
