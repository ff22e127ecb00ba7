package config

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Severity says whether a Diagnostic stops the configuration from being used.
type Severity int

const (
	// Warning: the configuration is usable; keepalived would also accept it
	// (hakeepd -t exits 5).
	Warning Severity = iota
	// Error: the configuration must not be used (hakeepd -t exits 1).
	Error
)

// String returns "warning" or "error".
func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// MarshalText makes Severity readable in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diagnostic is one problem found while reading a configuration.
type Diagnostic struct {
	Pos      Pos      `json:"pos"`
	Severity Severity `json:"severity"`
	Msg      string   `json:"msg"`
}

// String returns "file:line: message".
func (d Diagnostic) String() string {
	if d.Pos.File == "" && d.Pos.Line == 0 {
		return d.Msg
	}
	if d.Pos.Line == 0 {
		return d.Pos.File + ": " + d.Msg
	}
	return d.Pos.String() + ": " + d.Msg
}

// Diagnostics is every problem found, in the order found.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an Error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Errors returns the Error diagnostics.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(Error) }

// Warnings returns the Warning diagnostics.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(Warning) }

func (ds Diagnostics) filter(s Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// String joins the diagnostics one a line.
func (ds Diagnostics) String() string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Strings returns each diagnostic as "file:line: message" (no severity:
// callers split with Errors and Warnings first).
func (ds Diagnostics) Strings() []string {
	if len(ds) == 0 {
		return nil
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// Err returns nil when there are no errors, else an error listing them
// all, one a line (for callers that only need pass/fail). Warnings are
// left out: they do not stop the configuration from being used.
func (ds Diagnostics) Err() error {
	errs := ds.Errors()
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n%s", strings.TrimRight(errs.String(), "\n"))
}

// Log logs each diagnostic, in order, as a "config" record with the text
// under "msg": errors at Error level, warnings at Warn, so that a log
// filtered by level still shows why a file was refused.
func (ds Diagnostics) Log(log *slog.Logger) {
	for _, d := range ds {
		level := slog.LevelWarn
		if d.Severity == Error {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, "config", "msg", d.String())
	}
}

// maxDiags bounds how many diagnostics are kept: a hostile or badly
// broken file must not produce millions of them.
const maxDiags = 1000

// addDiag appends d, or past maxDiags counts it in a final "too many
// problems" diagnostic (an Error if any dropped one was).
func addDiag(ds *Diagnostics, d Diagnostic) {
	if len(*ds) < maxDiags {
		*ds = append(*ds, d)
		return
	}
	if len(*ds) == maxDiags {
		*ds = append(*ds, Diagnostic{Pos: d.Pos, Severity: Warning, Msg: fmt.Sprintf("more than %d problems; the rest are not shown", maxDiags)})
	}
	if d.Severity == Error {
		(*ds)[maxDiags].Severity = Error
	}
}
