package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// The demo binary runs itself inside lab hosts for small jobs, so the
// lab needs no web server, HTTP client or Python:
//
//	demo serve-http ADDR:PORT NAME   a real server answering "NAME" to every GET
//	demo http-get URL                one GET, printing "STATUS BODY"
//	demo raft-rpc ADDR:PORT JSON     issue 12's stranger: plain TCP to a Raft
//	                                 port, the byte 'P' and one JSON frame;
//	                                 prints the reply or why there is none
const (
	cmdServe   = "serve-http"
	cmdGet     = "http-get"
	cmdRaftRPC = "raft-rpc"
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
	case args[0] == cmdRaftRPC && len(args) == 3:
		return true, raftRPC(args[1], args[2], out)
	case args[0] == cmdServe || args[0] == cmdGet || args[0] == cmdRaftRPC:
		return true, fmt.Errorf("usage: %s serve-http ADDR:PORT NAME | http-get URL | raft-rpc ADDR:PORT JSON", os.Args[0])
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

// raftRPC is the stranger of issue 12: what a few lines of Python did to
// an open cluster. It prints "reply: ..." or "no reply: ..."; either is a
// result, not an error.
func raftRPC(addr, body string, out io.Writer) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		fmt.Fprintf(out, "no reply: %v\n", err)
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	msg := make([]byte, 5, 5+len(body))
	msg[0] = 'P'
	binary.BigEndian.PutUint32(msg[1:], uint32(len(body)))
	if _, err := c.Write(append(msg, body...)); err != nil {
		fmt.Fprintf(out, "no reply: %v\n", err)
		return nil
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		fmt.Fprintf(out, "no reply: %v\n", err)
		return nil
	}
	reply := make([]byte, min(binary.BigEndian.Uint32(hdr[:]), 4096))
	n, _ := io.ReadFull(c, reply)
	fmt.Fprintf(out, "reply: %s\n", reply[:n])
	return nil
}
