package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"hakeep/api"
)

// security prints how the cluster's ports are protected (hactl status);
// an open cluster is said in capitals.
func (e *env) security(s *api.SecurityStatus) {
	if s == nil {
		return
	}
	var parts []string
	if s.TLS {
		p := "mutual TLS as " + strings.Join(s.Names, "/")
		if !s.CertNotAfter.IsZero() {
			p += fmt.Sprintf(" (certificate valid until %s", s.CertNotAfter.Local().Format(time.DateOnly))
			if left := time.Until(s.CertNotAfter); left < 30*24*time.Hour {
				p += fmt.Sprintf(", EXPIRES IN %s", left.Round(time.Hour))
			}
			p += ")"
		}
		if s.CAs > 1 {
			p += fmt.Sprintf(", %d CAs trusted (rotation)", s.CAs)
		}
		parts = append(parts, p)
	} else {
		parts = append(parts, "NO TLS on the Raft port")
	}
	switch {
	case s.GossipKeys == 1:
		parts = append(parts, "gossip encrypted")
	case s.GossipKeys > 1:
		parts = append(parts, fmt.Sprintf("gossip encrypted (%d keys: rotation)", s.GossipKeys))
	default:
		parts = append(parts, "gossip NOT encrypted")
	}
	line := "security: " + strings.Join(parts, ", ")
	if s.Insecure {
		line = "security: INSECURE (insecure_open_cluster): anyone who reaches this cluster's ports can command it; " + strings.Join(parts, ", ")
	}
	fmt.Fprintln(e.out, line)
}

// membershipHistory prints the directors added and removed, with who
// asked, after the versions of `hactl config history`.
func (e *env) membershipHistory(ctx context.Context) error {
	events, err := e.client.Audit(ctx)
	if err != nil {
		return fmt.Errorf("read the audit trail: %w", err)
	}
	tw := e.table()
	n := 0
	for _, ev := range events {
		if ev.Action != "join" && ev.Action != "remove" {
			continue // the versions above
		}
		if n == 0 {
			fmt.Fprintln(e.out)
			fmt.Fprintln(tw, "MEMBERSHIP\tAT\tDIRECTOR\tCALLER (AUTHENTICATED)\tVIA")
		}
		n++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Action, ev.At.Local().Format(time.DateTime), ev.Node, orDash(ev.Caller), orDash(ev.Via))
	}
	return tw.Flush()
}
