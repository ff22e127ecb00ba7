package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"hakeep/api"
)

// configPlan is `hactl config push --dry-run FILE`: the file is checked
// as a push would be, then every director says what it would change.
// Nothing is committed. It fails when the file is refused or a director
// gave no plan; a plan with changes is a success.
func (e *env) configPlan(path string) error {
	data, err := e.checkPushable(path, "planned")
	if err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	ctx, cancel := e.ctx()
	defer cancel()
	res, err := e.client.ConfigPlan(ctx, api.PlanRequest{Name: filepath.Base(path), Text: string(data)})
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeInvalid {
			return fmt.Errorf("the director refused the configuration; nothing was planned:\n  %s", strings.Join(ae.Diagnostics, "\n  "))
		}
		return err
	}
	if e.json {
		// "->" in details stays readable (no \u003e).
		enc := json.NewEncoder(e.out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		e.printPlan(res)
	}
	return planError(res)
}

// printPlan writes one row per change, then a summary line per director.
func (e *env) printPlan(res api.PlanResult) {
	tw := e.table()
	fmt.Fprintln(tw, "DIRECTOR\tKIND\tOBJECT\tCHANGE\tDETAIL")
	for _, p := range res.Directors {
		for _, c := range p.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Director, c.Kind, c.Object, c.Change, orDash(c.Detail))
		}
	}
	tw.Flush()
	fmt.Fprintln(e.out)
	for _, p := range res.Directors {
		fmt.Fprintf(e.out, "%s: %s\n", p.Director, planSummary(p))
		for _, d := range p.Diagnostics {
			fmt.Fprintf(e.out, "  %s\n", d)
		}
	}
	fmt.Fprintln(e.out, "dry run: nothing was committed")
}

// planSummary is one director's line: its changes counted by kind, or
// why it has no plan.
func planSummary(p api.DirectorPlan) string {
	if p.Error != "" {
		return "NO PLAN: " + p.Error
	}
	against := "its local file"
	if p.RunningVersion > 0 {
		against = fmt.Sprintf("version %d", p.RunningVersion)
	}
	if len(p.Changes) == 0 {
		return "no change (runs " + against + ")"
	}
	kinds := []struct{ kind, name string }{
		{api.PlanInstance, "instance"}, {api.PlanVIP, "VIP"}, {api.PlanService, "virtual server"}, {api.PlanRealServer, "real server"},
	}
	var parts []string
	for _, k := range kinds {
		n := 0
		for _, c := range p.Changes {
			if c.Kind == k.kind {
				n++
			}
		}
		if n > 0 {
			parts = append(parts, plural(n, k.name))
		}
	}
	return fmt.Sprintf("%s against %s: %s", plural(len(p.Changes), "change"), against, strings.Join(parts, ", "))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// planError fails the command when a director gave no plan.
func planError(res api.PlanResult) error {
	var missing []string
	for _, p := range res.Directors {
		if p.Error != "" {
			missing = append(missing, p.Director)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dry run incomplete: no plan from %s", strings.Join(missing, ", "))
	}
	return nil
}
