package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hakeep/internal/pki"
)

// The cluster's secrets, one command each (as consul tls ca create, consul
// tls cert create, consul keygen), and `tls init` for all of them at once.
// They run locally: no daemon is involved.

const tlsUsage = `usage:
  hactl tls init [--dir D] [--days N] NODE...
        a CA, a certificate per director and a gossip key in D, and the
        cluster { } lines that use them
  hactl tls ca create [--dir D] [--days N]
        D/ca.pem and D/ca-key.pem (keep ca-key.pem off the directors)
  hactl tls cert create [--dir D] [--days N] [--ip IP]... [--dns NAME]... NODE
        D/NODE.pem and D/NODE-key.pem: director NODE's certificate (its
        node_name in the SAN: its identity on the Raft port)
  hactl tls cert create --client [--dir D] [--days N] NAME
        an operator's certificate for hactl --api HOST:PORT (it can never
        act as a director)
  hactl keygen [-o FILE]
        a random gossip_key (printed, or written to FILE mode 0600)
`

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// parseAll parses flags anywhere among args and returns the positional
// ones (hactl's convention).
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// runSecrets runs `hactl tls ...` and `hactl keygen ...`.
func runSecrets(args []string, stdout, stderr io.Writer) int {
	err := secrets(args, stdout)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		fmt.Fprint(stdout, tlsUsage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "hactl: %s\n\n%s", ue.msg, tlsUsage)
		return exitUsage
	}
	fmt.Fprintf(stderr, "hactl: %v\n", err)
	return exitFail
}

type tlsOpts struct {
	dir    string
	days   int
	client bool
	ips    stringList
	dns    stringList
	out    string
}

func secrets(args []string, out io.Writer) error {
	var o tlsOpts
	fs := flag.NewFlagSet("hactl tls", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dir, "dir", ".", "directory of the CA and the files written")
	fs.IntVar(&o.days, "days", 0, "validity in days")
	fs.BoolVar(&o.client, "client", false, "an operator's client certificate")
	fs.Var(&o.ips, "ip", "extra IP SAN (for hactl --api reaching api_listen by address)")
	fs.Var(&o.dns, "dns", "extra DNS SAN")
	fs.StringVar(&o.out, "o", "", "keygen: write the key to this file")
	pos, err := parseAll(fs, args)
	if err != nil {
		if strings.Contains(err.Error(), "help requested") {
			return errHelp
		}
		return err
	}
	if len(pos) == 0 || pos[len(pos)-1] == "help" || (len(pos) == 1 && pos[0] == "tls") {
		return errHelp
	}
	switch {
	case pos[0] == "keygen":
		if len(pos) != 1 {
			return usagef("usage: hactl keygen [-o FILE]")
		}
		return keygen(o, out)
	case len(pos) >= 2 && pos[0] == "tls" && pos[1] == "init":
		if len(pos) < 3 {
			return usagef("usage: hactl tls init [--dir D] NODE... (every director's node_name)")
		}
		return tlsInit(o, pos[2:], out)
	case len(pos) == 3 && pos[0] == "tls" && pos[1] == "ca" && pos[2] == "create":
		_, err := caCreate(o, out)
		return err
	case len(pos) >= 3 && pos[0] == "tls" && pos[1] == "cert" && pos[2] == "create":
		if len(pos) != 4 {
			return usagef("usage: hactl tls cert create [--client] NAME")
		}
		ca, err := pki.LoadCA(filepath.Join(o.dir, pki.CAFile), filepath.Join(o.dir, pki.CAKeyFile))
		if err != nil {
			return fmt.Errorf("%w (no CA in %s? make one with hactl tls ca create --dir %s)", err, o.dir, o.dir)
		}
		if err := certCreate(o, ca, pos[3], out); err != nil {
			return err
		}
		if !o.client {
			printLines(out, o.dir, []string{pos[3]}, false)
		}
		return nil
	}
	return usagef("unknown command %q", strings.Join(pos, " "))
}

func keygen(o tlsOpts, out io.Writer) error {
	k, err := pki.NewGossipKey()
	if err != nil {
		return err
	}
	if o.out == "" {
		_, err := fmt.Fprintln(out, k)
		return err
	}
	if err := pki.WriteFile(o.out, []byte(k+"\n"), 0o600); err != nil {
		return err
	}
	abs, _ := filepath.Abs(o.out)
	fmt.Fprintf(out, "wrote %s (gossip key, mode 0600): the same file on every director, as `gossip_key %s`\n", o.out, abs)
	return nil
}

func caCreate(o tlsOpts, out io.Writer) (*pki.CA, error) {
	days := o.days
	if days == 0 {
		days = pki.DefaultCADays
	}
	ca, err := pki.NewCA("hakeep cluster CA", days)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.MarshalKey(ca.Key)
	if err != nil {
		return nil, err
	}
	cert, key := filepath.Join(o.dir, pki.CAFile), filepath.Join(o.dir, pki.CAKeyFile)
	// The key first: a CA certificate without its key would sign nothing.
	if err := pki.WriteFile(key, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := pki.WriteFile(cert, ca.PEM, 0o644); err != nil {
		os.Remove(key)
		return nil, err
	}
	fmt.Fprintf(out, "wrote %s (cluster CA, valid until %s)\n", cert, ca.Cert.NotAfter.Format(time.DateOnly))
	fmt.Fprintf(out, "wrote %s (CA private key, mode 0600): whoever holds it admits directors; keep it off the directors\n", key)
	return ca, nil
}

func certCreate(o tlsOpts, ca *pki.CA, name string, out io.Writer) error {
	req := pki.CertRequest{Name: name, Client: o.client, Days: o.days, DNS: o.dns}
	for _, s := range o.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return usagef("--ip %q is not an IP address", s)
		}
		req.IPs = append(req.IPs, ip)
	}
	certPEM, keyPEM, err := ca.Issue(req)
	if err != nil {
		return err
	}
	cert, key := filepath.Join(o.dir, pki.CertFile(name)), filepath.Join(o.dir, pki.KeyFile(name))
	if err := pki.WriteFile(key, keyPEM, 0o600); err != nil {
		return err
	}
	if err := pki.WriteFile(cert, certPEM, 0o644); err != nil {
		os.Remove(key)
		return err
	}
	what := "director " + name + "'s certificate (" + name + " in its SAN)"
	if o.client {
		what = "operator " + name + "'s client certificate (for hactl --api HOST:PORT --tls-cert ...)"
	}
	fmt.Fprintf(out, "wrote %s (%s)\nwrote %s (its private key, mode 0600)\n", cert, what, key)
	return nil
}

func tlsInit(o tlsOpts, nodes []string, out io.Writer) error {
	seen := map[string]bool{}
	for _, n := range nodes {
		if err := pki.ValidName(n); err != nil {
			return usagef("%v", err)
		}
		if seen[n] {
			return usagef("director %s named twice", n)
		}
		seen[n] = true
	}
	if o.client {
		return usagef("tls init makes director certificates; use tls cert create --client for an operator")
	}
	// --days is the directors' certificates'; the CA keeps its default.
	ca, err := caCreate(tlsOpts{dir: o.dir}, out)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := certCreate(o, ca, n, out); err != nil {
			return err
		}
	}
	if err := keygen(tlsOpts{out: filepath.Join(o.dir, pki.GossipKeyFile)}, out); err != nil {
		return err
	}
	printLines(out, o.dir, nodes, true)
	return nil
}

// printLines prints the cluster { } lines naming the files of nodes; with
// several nodes, "@NODE" lines pick each director's own (the file can be
// shared, as deploy/examples/cluster-3.conf is).
func printLines(out io.Writer, dir string, nodes []string, withKey bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	prefix := func(n string) string {
		if len(nodes) > 1 {
			return "@" + n + " "
		}
		return ""
	}
	fmt.Fprintf(out, "\nCopy %s, %s", pki.CAFile, "NODE.pem, NODE-key.pem")
	if withKey {
		fmt.Fprintf(out, " and %s", pki.GossipKeyFile)
	}
	fmt.Fprintf(out, " to %s on each director (not %s), and add to its cluster { } block:\n", abs, pki.CAKeyFile)
	for _, n := range nodes {
		fmt.Fprintf(out, "    %stls_cert %s\n    %stls_key %s\n", prefix(n), filepath.Join(abs, pki.CertFile(n)), prefix(n), filepath.Join(abs, pki.KeyFile(n)))
	}
	fmt.Fprintf(out, "    tls_ca %s\n", filepath.Join(abs, pki.CAFile))
	if withKey {
		fmt.Fprintf(out, "    gossip_key %s\n", filepath.Join(abs, pki.GossipKeyFile))
	}
}
