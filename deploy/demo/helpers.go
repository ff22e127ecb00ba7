package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// The demo binary runs itself inside lab hosts for two small jobs, so the
// lab needs no web server or HTTP client package:
//
//	demo serve-http ADDR:PORT NAME   a real server answering "NAME" to every GET
//	demo http-get URL                one GET, printing "STATUS BODY"
const (
	cmdServe = "serve-http"
	cmdGet   = "http-get"
)

// helper runs a hidden subcommand named by args[0]; handled is false when
// args name none.
func helper(args []string, out io.Writer) (handled bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	switch {
	case args[0] == cmdServe && len(args) == 3:
		return true, serveHTTP(args[1], args[2])
	case args[0] == cmdGet && len(args) == 2:
		return true, httpGet(args[1], out)
	case args[0] == cmdServe || args[0] == cmdGet:
		return true, fmt.Errorf("usage: %s serve-http ADDR:PORT NAME | http-get URL", os.Args[0])
	}
	return false, nil
}

func serveHTTP(addr, name string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("real server %s: %w", name, err)
	}
	fmt.Printf("real server %s listening on %s\n", name, addr)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s\n", name)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	return srv.Serve(ln) // SIGTERM from the lab ends the process
}

func httpGet(url string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	fmt.Fprintf(out, "%d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
	return nil
}
