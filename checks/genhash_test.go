package checks

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestGenHashMatchesKeepalived(t *testing.T) {
	n := startNginx(t)
	n.write("index.html", "hello genhash\n")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		o    GenHashOptions
		want string
	}{
		{"http", GenHashOptions{Server: "127.0.0.1", Port: n.http.Port(), Path: "/index.html"}, md5hex("hello genhash\n")},
		{"https", GenHashOptions{Server: "127.0.0.1", Port: n.tls.Port(), Path: "/index.html", SSL: true}, md5hex("hello genhash\n")},
		{"vhost+sni", GenHashOptions{Server: "127.0.0.1", Port: n.tls.Port(), Path: "/vhost", SSL: true, SNI: true,
			Virtualhost: "www.example.test"}, md5hex("host=www.example.test sni=www.example.test\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := GenHash(ctx, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Digest != tc.want || r.Status != 200 {
				t.Fatalf("%+v, want %s", r, tc.want)
			}
		})
	}
	// Side by side with keepalived's own genhash when installed.
	if gh, err := exec.LookPath("genhash"); err == nil {
		for _, args := range [][]string{
			{"-s", "127.0.0.1", "-p", strconv.Itoa(int(n.http.Port())), "-u", "/index.html"},
			{"-S", "-s", "127.0.0.1", "-p", strconv.Itoa(int(n.tls.Port())), "-u", "/index.html"},
		} {
			out, err := exec.Command(gh, args...).Output()
			if err != nil {
				t.Fatalf("genhash %v: %v", args, err)
			}
			if got := strings.TrimSpace(string(out)); got != md5hex("hello genhash\n") {
				t.Fatalf("keepalived genhash %v printed %q", args, got)
			}
		}
	} else {
		t.Log("keepalived's genhash not installed: no side-by-side comparison")
	}
	if _, err := GenHash(ctx, GenHashOptions{Server: "127.0.0.1", Port: freePort(t, "tcp"), Path: "/"}); err == nil ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed port: %v", err)
	}
}

func TestParseGenHashURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want GenHashOptions
		bad  bool
	}{
		{in: "http://10.0.0.7/index.html", want: GenHashOptions{Server: "10.0.0.7", Path: "/index.html"}},
		{in: "https://[fd00::7]:8443/a?b=c", want: GenHashOptions{Server: "fd00::7", Port: 8443, Path: "/a?b=c", SSL: true}},
		{in: "http://h:99/", want: GenHashOptions{Server: "h", Port: 99, Path: "/"}},
		{in: "ftp://h/", bad: true},
		{in: "http:///x", bad: true},
		{in: "http://h:99999/", bad: true},
		{in: "%zz", bad: true},
	} {
		got, err := ParseGenHashURL(tc.in)
		if (err != nil) != tc.bad {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if !tc.bad && got != tc.want {
			t.Fatalf("%q: %+v", tc.in, got)
		}
	}
}
