package consensus

import (
	"hakeep/config"
)

// CheckPushable checks a configuration text meant for `hactl config push`
// the way the leader does: parsed as one text (includes refused: they would
// name files on another machine) and without a cluster { } block, which is
// node-local. It returns "file:line: message" errors and warnings.
func CheckPushable(name string, text []byte) (errs, warnings []string) {
	cfg, diags := config.Parse(name, text, config.Options{NoInclude: true})
	// A cut-off push (a block still open at the end) is among the errors:
	// the leader refuses it before anything is committed.
	errs, warnings = diags.Errors().Strings(), diags.Warnings().Strings()
	if cfg != nil && cfg.Cluster != nil {
		errs = append(errs, cfg.Cluster.Pos.String()+": a pushed configuration must not contain a cluster { } block: it is node-local (keep it in the file given to hakeepd -f)")
	}
	return errs, warnings
}

// ValidatePushed is the Config.Validate the daemon uses: CheckPushable's
// errors as a *ValidationError.
func ValidatePushed(name string, text []byte) error {
	errs, _ := CheckPushable(name, text)
	if len(errs) > 0 {
		return &ValidationError{Diagnostics: errs}
	}
	return nil
}
