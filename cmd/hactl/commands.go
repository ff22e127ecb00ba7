package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"hakeep/api"
	"hakeep/config"
	"hakeep/consensus"
)

func loadPool(ca string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA %s: no PEM certificate", ca)
	}
	return pool, nil
}

func (e *env) table() *tabwriter.Writer {
	return tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

func (e *env) status() error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	if e.json {
		raw, err := e.client.Raw(ctx, "/v1/status")
		if err != nil {
			return err
		}
		_, err = e.out.Write(raw)
		return err
	}
	st, err := e.client.Status(ctx)
	if err != nil {
		return err
	}
	leader := st.Raft.Leader
	if leader == "" {
		leader = "(none)"
	}
	fmt.Fprintf(e.out, "node:    %s\n", st.Node)
	fmt.Fprintf(e.out, "raft:    %s, term %d, leader %s\n", orDash(st.Raft.State), st.Raft.Term, leader)
	if st.Config.Version == 0 {
		fmt.Fprintf(e.out, "config:  none committed (local file in use)\n")
	} else {
		fmt.Fprintf(e.out, "config:  version %d, sha256 %s, running %d\n", st.Config.Version, short(st.Config.SHA256), st.Config.Running)
	}
	if len(st.Config.Applied) > 0 {
		var parts []string
		for _, a := range st.Config.Applied {
			p := fmt.Sprintf("%s v%d", a.Node, a.Version)
			if a.Error != "" {
				p += " (failed: " + a.Error + ")"
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(e.out, "applied: %s\n", strings.Join(parts, ", "))
	}
	if st.Config.LocalError != "" {
		fmt.Fprintf(e.out, "         apply failed here: %s\n", st.Config.LocalError)
	}
	if r := st.Config.LastReload; r != nil {
		fmt.Fprintf(e.out, "reload:  %s\n", reloadLine(r))
	}
	h := "health:  " + orDash(st.Health.Mode)
	if st.Health.Fallback {
		h += " (FALLBACK to local checks: " + st.Health.Reason + ")"
	}
	fmt.Fprintln(e.out, h)
	e.security(st.Security)
	if len(st.Members) > 0 {
		fmt.Fprintln(e.out)
		e.members(st.Members)
	}
	if len(st.Instances) > 0 {
		fmt.Fprintln(e.out)
		e.instances(st.Instances)
	}
	if len(st.VirtualServers) > 0 {
		fmt.Fprintln(e.out)
		e.ipvs(st.VirtualServers)
	}
	return nil
}

// reloadLine says whether the last reload applied, and why not.
func reloadLine(r *api.Reload) string {
	at := r.At.Local().Format(time.DateTime)
	if r.OK {
		return fmt.Sprintf("ok (%s at %s)", r.Source, at)
	}
	line := fmt.Sprintf("REFUSED (%s at %s): %s; running configuration kept", r.Source, at, r.Error)
	if !r.LastSuccess.IsZero() {
		line += ", applied " + r.LastSuccess.Local().Format(time.DateTime)
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e *env) members(ms []api.Member) {
	tw := e.table()
	fmt.Fprintln(tw, "MEMBER\tSTATUS\tVOTER\tLEADER\tRAFT ADDR\tGOSSIP ADDR")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Status, yes(m.Voter), yes(m.Leader), orDash(m.RaftAddr), orDash(m.GossipAddr))
	}
	tw.Flush()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (e *env) instances(is []api.Instance) {
	tw := e.table()
	fmt.Fprintln(tw, "INSTANCE\tVRID\tSTATE\tPRIORITY\tINTERFACE\tVIPS\tFENCE")
	for _, i := range is {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", i.Name, i.VRID, i.State, i.Priority, orDash(i.Interface), strings.Join(i.VIPs, " "), fenceColumn(i))
	}
	tw.Flush()
}

// fenceColumn says why a fenced instance is fenced, and who owns it with
// which epoch and how much of our lease is left; "-" when not fenced.
func fenceColumn(i api.Instance) string {
	f := i.Fence
	if f == nil {
		return "-"
	}
	var b strings.Builder
	if f.Reason != "" {
		fmt.Fprintf(&b, "FENCED (%s) ", f.Reason)
	}
	fmt.Fprintf(&b, "owner=%s epoch=%d", orDash(f.Owner), f.Epoch)
	if f.LeaseLeftMS > 0 {
		fmt.Fprintf(&b, " lease=%dms", f.LeaseLeftMS)
	}
	return b.String()
}

// ipvs prints the table the way ipvsadm -Ln does, with a health column.
func (e *env) ipvs(vss []api.VirtualServer) {
	tw := e.table()
	fmt.Fprintln(tw, "Prot\tLocalAddress:Port\tScheduler\tFlags\t\t\t\t")
	fmt.Fprintln(tw, "  ->\tRemoteAddress:Port\tForward\tWeight\tActiveConn\tInActConn\tHealth")
	for _, vs := range vss {
		addr := vs.Key
		if vs.Address != "" {
			addr = joinHostPort(vs.Address, vs.Port)
		} else if vs.FWMark != 0 {
			addr = strconv.FormatUint(uint64(vs.FWMark), 10)
		}
		prot := vs.Protocol
		if vs.FWMark != 0 {
			prot = "FWM"
		}
		flags := ""
		if vs.Persistence > 0 {
			flags = fmt.Sprintf("persistent %d", vs.Persistence)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\t\t\n", prot, addr, vs.Scheduler, flags)
		for _, rs := range vs.RealServers {
			health := "down"
			if rs.Healthy {
				health = "up"
			}
			if rs.HealthSource != "" {
				health += " (" + rs.HealthSource + ")"
			}
			fmt.Fprintf(tw, "  ->\t%s\t%s\t%d\t%d\t%d\t%s\n", joinHostPort(rs.Address, rs.Port), orDash(rs.Forward), rs.Weight, rs.ActiveConns, rs.InactConns, health)
		}
	}
	tw.Flush()
}

func joinHostPort(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(int(port))
	}
	return addr + ":" + strconv.Itoa(int(port))
}

func (e *env) view(what string) error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	path := map[string]string{"vrrp": "/v1/vrrp", "ipvs": "/v1/ipvs", "checks": "/v1/checks"}[what]
	if e.json {
		raw, err := e.client.Raw(ctx, path)
		if err != nil {
			return err
		}
		_, err = e.out.Write(raw)
		return err
	}
	switch what {
	case "vrrp":
		is, err := e.client.Instances(ctx)
		if err != nil {
			return err
		}
		e.instances(is)
	case "ipvs":
		vss, err := e.client.VirtualServers(ctx)
		if err != nil {
			return err
		}
		e.ipvs(vss)
	case "checks":
		cs, err := e.client.Checks(ctx)
		if err != nil {
			return err
		}
		tw := e.table()
		fmt.Fprintln(tw, "VIRTUAL SERVER\tREAL SERVER\tCHECK\tSTATE\tSINCE\tLAST ERROR")
		for _, c := range cs {
			state := "down"
			if c.Up {
				state = "up"
			}
			since := "-"
			if !c.LastChange.IsZero() {
				since = c.LastChange.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.VirtualServer, c.RealServer, c.Kind, state, since, orDash(c.LastError))
		}
		tw.Flush()
	}
	return nil
}

// validatePushable parses FILE the way the leader will (one text, no
// includes) and refuses a cluster block. It returns the text.
func validatePushable(path string) ([]byte, []string, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	name := filepath.Base(path)
	errs, warns := consensus.CheckPushable(name, data)
	return data, errs, warns, nil
}

func (e *env) configValidate(path string) error {
	cfg, diags := config.Load(path, config.Options{ConfigID: e.id})
	errs, warns := diags.Errors().Strings(), diags.Warnings().Strings()
	if cfg == nil && len(errs) == 0 {
		errs = append(errs, path+": could not be read")
	}
	if e.json {
		if err := e.printJSON(api.ValidateResult{Valid: len(errs) == 0, Errors: errs, Warnings: warns}); err != nil {
			return err
		}
	} else {
		for _, w := range warns {
			fmt.Fprintf(e.errw, "warning: %s\n", w)
		}
		for _, er := range errs {
			fmt.Fprintf(e.errw, "error: %s\n", er)
		}
		if len(errs) == 0 {
			fmt.Fprintf(e.out, "%s: configuration is valid (%d warning(s))\n", path, len(warns))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %d error(s)", path, len(errs))
	}
	return nil
}

func pushedBy() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return name + "@" + host
}

// checkPushable reads and checks path as the director will, prints its
// warnings and errors, and fails when it has errors ("nothing was
// <what>").
func (e *env) checkPushable(path, what string) ([]byte, error) {
	data, errs, warns, err := validatePushable(path)
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		fmt.Fprintf(e.errw, "warning: %s\n", w)
	}
	if len(errs) > 0 {
		for _, er := range errs {
			fmt.Fprintf(e.errw, "error: %s\n", er)
		}
		return nil, fmt.Errorf("%s: %d error(s); nothing was %s", path, len(errs), what)
	}
	return data, nil
}

func (e *env) configPush(path string) error {
	if e.dryRun {
		return e.configPlan(path)
	}
	data, err := e.checkPushable(path, "pushed")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	res, err := e.client.ConfigPush(ctx, api.PushRequest{Name: filepath.Base(path), Text: string(data), PushID: consensus.NewPushID(), PushedBy: pushedBy()})
	if err != nil {
		return pushError(err)
	}
	return e.pushed(ctx, res, "committed")
}

func pushError(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeInvalid {
		return fmt.Errorf("the leader refused the configuration; nothing changed:\n  %s", strings.Join(ae.Diagnostics, "\n  "))
	}
	return err
}

// pushed reports a committed version and, with --wait, waits for every
// director to apply it.
func (e *env) pushed(ctx context.Context, res api.PushResult, verb string) error {
	var waitErr error
	if e.wait {
		res, waitErr = e.client.WaitApplied(ctx, res.Version)
	}
	if e.json {
		if err := e.printJSON(res); err != nil {
			return err
		}
	} else {
		note := ""
		if res.Duplicate {
			note = " (already committed by an earlier attempt of this push)"
		}
		fmt.Fprintf(e.out, "%s version %d, sha256 %s%s\n", verb, res.Version, short(res.SHA256), note)
		var ok, failed []string
		for _, a := range res.Applied {
			if a.Error != "" {
				failed = append(failed, fmt.Sprintf("%s (%s)", a.Node, a.Error))
			} else {
				ok = append(ok, a.Node)
			}
		}
		fmt.Fprintf(e.out, "applied on: %s\n", listOrNone(ok))
		if len(failed) > 0 {
			fmt.Fprintf(e.out, "failed on:  %s\n", strings.Join(failed, ", "))
		}
		if len(res.Pending) > 0 {
			fmt.Fprintf(e.out, "pending:    %s\n", strings.Join(res.Pending, ", "))
		}
	}
	if waitErr != nil {
		return waitErr
	}
	for _, a := range res.Applied {
		if a.Error != "" && e.wait {
			return fmt.Errorf("version %d failed to apply on %s: %s", res.Version, a.Node, a.Error)
		}
	}
	return nil
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "(none yet)"
	}
	return strings.Join(s, ", ")
}

func (e *env) configShow() error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	cv, err := e.client.ConfigShow(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(cv)
	}
	fmt.Fprintf(e.errw, "# version %d, sha256 %s, pushed by %s at %s\n", cv.Version, cv.SHA256, orDash(cv.PushedBy), cv.PushedAt.Format(time.RFC3339))
	_, err = fmt.Fprint(e.out, cv.Text)
	return err
}

func (e *env) configHistory() error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	h, err := e.client.ConfigHistory(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(h)
	}
	tw := e.table()
	fmt.Fprintln(tw, "VERSION\tPUSHED AT\tBY\tSHA256\tSOURCE\tNOTE\tCALLER (AUTHENTICATED)")
	for _, v := range h {
		note := "-"
		if v.RollbackOf != 0 {
			note = fmt.Sprintf("rollback to %d", v.RollbackOf)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Version, v.PushedAt.Local().Format(time.DateTime), orDash(v.PushedBy), short(v.SHA256), orDash(v.Source), note, orDash(v.Caller))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return e.membershipHistory(ctx)
}

func (e *env) configRollback(arg string) error {
	v, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || v == 0 {
		return usagef("rollback VERSION must be a positive number, got %q", arg)
	}
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	res, err := e.client.ConfigRollback(ctx, api.RollbackRequest{Version: v, PushID: consensus.NewPushID(), PushedBy: pushedBy()})
	if err != nil {
		return err
	}
	return e.pushed(ctx, res, fmt.Sprintf("rolled back to %d as", v))
}

func (e *env) clusterInit() error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.client.ClusterInit(ctx); err != nil {
		return err
	}
	return e.done("cluster initialised with this director as its only member")
}

func (e *env) done(msg string) error {
	if e.json {
		return e.printJSON(map[string]any{"ok": true, "message": msg})
	}
	_, err := fmt.Fprintln(e.out, msg)
	return err
}

func (e *env) clusterJoin(addr string) error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.client.ClusterJoin(ctx, addr); err != nil {
		return err
	}
	return e.done("joined the cluster via " + addr)
}

func (e *env) clusterMembers() error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	ms, err := e.client.ClusterMembers(ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(ms)
	}
	e.members(ms)
	return nil
}

func (e *env) clusterRemove(node string) error {
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.client.ClusterRemove(ctx, node); err != nil {
		return err
	}
	return e.done("removed " + node + " from the cluster")
}
