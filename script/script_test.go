package script

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "/bin/true", want: []string{"/bin/true"}},
		{in: "  /usr/bin/killall   -0 haproxy ", want: []string{"/usr/bin/killall", "-0", "haproxy"}},
		{in: `/x 'a b' "c \"d\"" e\ f`, want: []string{"/x", "a b", `c "d"`, "e f"}},
		{in: `/x ''`, want: []string{"/x", ""}},
		{in: `/x a'b'c`, want: []string{"/x", "abc"}},
		{in: `/x 'open`, bad: true},
		{in: `/x "open`, bad: true},
		{in: "   ", bad: true},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("Split(%q) = %q, want error", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{"/bin/true", `/x 'a b' "c \"d\"" e\ f`, `"`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := Split(s)
		if err == nil && len(w) == 0 {
			t.Fatal("no words and no error")
		}
	})
}

// writeScript creates an executable script in dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	args := writeScript(t, dir, "args.sh", `echo "$@" > `+dir+`/args; exit $1`)
	r := &Runner{}
	tests := []struct {
		code int
	}{{0}, {1}, {3}}
	for _, tt := range tests {
		res := r.Run(context.Background(), args+" "+strconv.Itoa(tt.code)+" 'two words'", []string{"INSTANCE", "VI_1"}, 5*time.Second)
		if res.Err != nil || res.TimedOut || res.ExitCode != tt.code || res.OK() != (tt.code == 0) {
			t.Fatalf("code %d: %+v", tt.code, res)
		}
		b, _ := os.ReadFile(dir + "/args")
		if want := strconv.Itoa(tt.code) + " two words INSTANCE VI_1\n"; string(b) != want {
			t.Fatalf("args %q want %q", b, want)
		}
	}
	if res := r.Run(context.Background(), dir+"/missing.sh", nil, time.Second); res.Err == nil {
		t.Fatalf("missing script ran: %+v", res)
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	s := writeScript(t, dir, "slow.sh", `sleep 60 & echo $! > `+dir+`/child; wait`)
	r := &Runner{}
	start := time.Now()
	res := r.Run(context.Background(), s, nil, 200*time.Millisecond)
	if !res.TimedOut || res.OK() {
		t.Fatalf("want timeout: %+v", res)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Run returned after %v", d)
	}
	b, err := os.ReadFile(dir + "/child")
	if err != nil {
		t.Fatalf("child pid: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Signal 0: the child of the killed group must be gone (or a zombie
		// being reaped by init).
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the timed-out script still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: switches user to nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // the per-test parent is 0700
	os.Chmod(dir, 0o777)
	s := writeScript(t, dir, "id.sh", `id -u > `+dir+`/uid`)
	r := &Runner{User: "nobody", Secure: true}
	if res := r.Run(context.Background(), s, nil, 5*time.Second); !res.OK() {
		t.Fatalf("run as nobody: %+v", res)
	}
	b, _ := os.ReadFile(dir + "/uid")
	if strings.TrimSpace(string(b)) != nobody.Uid {
		t.Fatalf("ran as uid %q, want %s", b, nobody.Uid)
	}
}

func TestCheckSecurity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: enable_script_security applies to scripts run as root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o755)
	mk := func(name string, mode os.FileMode, owner int) string {
		d := filepath.Join(base, name)
		os.Mkdir(d, 0o755)
		os.Chmod(d, mode)
		os.Chown(d, owner, 0)
		return writeScript(t, d, "s.sh", "exit 0")
	}
	good := mk("good", 0o755, 0)
	world := mk("world", 0o777, 0)
	owned := mk("owned", 0o755, uid)
	groupW := mk("groupw", 0o775, 0)
	os.Chown(filepath.Dir(groupW), 0, 100) // group "users": non-root group write
	badFile := mk("badfile", 0o755, 0)
	os.Chmod(badFile, 0o777)
	tests := []struct {
		name   string
		path   string
		runner Runner
		ok     bool
	}{
		{"root-owned path", good, Runner{Secure: true}, true},
		{"world-writable dir", world, Runner{Secure: true}, false},
		{"dir owned by nobody", owned, Runner{Secure: true}, false},
		{"group-writable dir, non-root group", groupW, Runner{Secure: true}, false},
		{"world-writable script", badFile, Runner{Secure: true}, false},
		{"insecure allowed without security", world, Runner{}, true},
		{"run as nobody is not root", world, Runner{User: "nobody", Secure: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.runner.Check(tt.path)
			if tt.ok && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !tt.ok {
				if !errors.Is(err, ErrInsecure) {
					t.Fatalf("Check = %v, want ErrInsecure", err)
				}
				if res := tt.runner.Run(context.Background(), tt.path, nil, time.Second); res.Err == nil {
					t.Fatalf("insecure script ran: %+v", res)
				}
			}
		})
	}
}
