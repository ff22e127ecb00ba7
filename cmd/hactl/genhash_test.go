package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestGenhashCommand(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s host=%s", r.URL.Path, r.Host)
	})}
	go srv.Serve(l)
	defer srv.Close()
	port := l.Addr().(*net.TCPAddr).Port
	sum := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{fmt.Sprintf("http://127.0.0.1:%d/x", port)}, exitOK, sum(fmt.Sprintf("path=/x host=127.0.0.1:%d", port))},
		{[]string{"-s", "127.0.0.1", "-p", fmt.Sprint(port), "-u", "/y", "-V", "www.example.test"}, exitOK, sum("path=/y host=www.example.test")},
		{[]string{fmt.Sprintf("http://127.0.0.1:%d/z", port), "--virtualhost", "v.test"}, exitOK, sum("path=/z host=v.test")},
		{[]string{"-s", "127.0.0.1"}, exitUsage, ""},
		{[]string{"ftp://x/"}, exitUsage, ""},
		{[]string{"--bogus"}, exitUsage, ""},
	} {
		var out, errb bytes.Buffer
		code := runGenhash(tc.args, &out, &errb)
		if code != tc.code || (tc.out != "" && strings.TrimSpace(out.String()) != tc.out) {
			t.Fatalf("%v: code %d out %q err %q", tc.args, code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := runGenhash([]string{"-v", fmt.Sprintf("http://127.0.0.1:%d/v", port)}, &out, &errb); code != exitOK ||
		!strings.Contains(out.String(), "HTTP/1.0 200") {
		t.Fatalf("verbose: %d %q %q", code, out.String(), errb.String())
	}
}
