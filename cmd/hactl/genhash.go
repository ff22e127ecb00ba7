package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"hakeep/checks"
)

const genhashUsage = `usage: hactl genhash URL [-V VIRTUALHOST] [-I] [-P PROTOCOL] [-t SECONDS] [-v]
       hactl genhash [-S] -s SERVER -p PORT -u PATH [-V VIRTUALHOST] [-I] [-P PROTOCOL] [-t SECONDS] [-v]

Fetches the page as HTTP_GET / SSL_GET do and prints the MD5 digest of its
body, the value for a url block's "digest" (keepalived's genhash).
`

// runGenhash is "hactl genhash": keepalived genhash's flags, or a URL.
func runGenhash(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("genhash", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		o       checks.GenHashOptions
		port    uint
		timeout float64
		verbose bool
	)
	for _, n := range []string{"s", "server"} {
		fs.StringVar(&o.Server, n, "", "server address")
	}
	for _, n := range []string{"p", "port"} {
		fs.UintVar(&port, n, 0, "port")
	}
	for _, n := range []string{"u", "url"} {
		fs.StringVar(&o.Path, n, "", "path")
	}
	for _, n := range []string{"S", "use-ssl"} {
		fs.BoolVar(&o.SSL, n, false, "use SSL")
	}
	for _, n := range []string{"I", "use-sni"} {
		fs.BoolVar(&o.SNI, n, false, "send SNI (the virtual host)")
	}
	for _, n := range []string{"V", "use-virtualhost", "virtualhost"} {
		fs.StringVar(&o.Virtualhost, n, "", "virtual host")
	}
	for _, n := range []string{"P", "protocol"} {
		fs.StringVar(&o.Protocol, n, "", "HTTP protocol: 1.0, 1.0c, 1.1")
	}
	for _, n := range []string{"t", "timeout"} {
		fs.Float64Var(&timeout, n, 5, "timeout in seconds")
	}
	for _, n := range []string{"v", "verbose"} {
		fs.BoolVar(&verbose, n, false, "print the response headers")
	}
	// Flags may come before or after the URL.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if err == flag.ErrHelp {
				fmt.Fprint(stdout, genhashUsage)
				return exitOK
			}
			fmt.Fprintf(stderr, "hactl genhash: %v\n%s", err, genhashUsage)
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(pos) == 1 && o.Server == "":
		u, err := checks.ParseGenHashURL(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "hactl genhash: %v\n", err)
			return exitUsage
		}
		u.Virtualhost, u.SNI, u.Protocol = o.Virtualhost, o.SNI, o.Protocol
		o = u
	case len(pos) == 0 && o.Server != "" && o.Path != "":
		if port > 65535 {
			fmt.Fprintf(stderr, "hactl genhash: bad port %d\n", port)
			return exitUsage
		}
		o.Port = uint16(port)
	default:
		fmt.Fprint(stderr, genhashUsage)
		return exitUsage
	}
	if strings.EqualFold(o.Protocol, "1.0c") {
		o.Protocol = "1.0C"
	}
	if timeout <= 0 {
		fmt.Fprintf(stderr, "hactl genhash: bad timeout %v\n", timeout)
		return exitUsage
	}
	o.Timeout = time.Duration(timeout * float64(time.Second))
	r, err := checks.GenHash(context.Background(), o)
	if err != nil {
		fmt.Fprintf(stderr, "hactl genhash: %v\n", err)
		return exitFail
	}
	if verbose {
		fmt.Fprintf(stdout, "%s %d\n", r.Proto, r.Status)
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			for _, v := range r.Header[k] {
				fmt.Fprintf(stdout, "%s: %s\n", k, v)
			}
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintln(stdout, r.Digest)
	return exitOK
}
