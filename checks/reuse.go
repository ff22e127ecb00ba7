package checks

import (
	"hakeep/config"
)

// Reload reuse (issue 13): a SIGHUP's configuration keeps, as the same
// objects or as copies with only their lines moved (config.ReusedFrom),
// the virtual servers whose blocks did not change. Their real servers'
// specs depend on nothing else but the few global settings globalInputs
// holds, so they are those the Manager has loaded: Build leaves them out
// and names the virtual servers (Built.Kept), and ReloadKeeping keeps
// their real servers' checks as loaded without looking at them again.
// The specs are not kept between reloads (40,000 of them with their
// checkers are ~24 MB): only which virtual servers could be (Basis).

// Basis is what a later Build may reuse of a build whose specs the Manager
// loaded: which virtual servers' specs it holds and what of global_defs
// they depend on. It holds no specs.
type Basis struct {
	glob globalInputs
	// clean are the virtual servers whose specs were built without a
	// warning (warnings carry positions, which a moved block changes)
	// and have real servers.
	clean map[*config.VirtualServer]bool
}

// Built is the checkers' specs of a configuration.
type Built struct {
	// Specs are the specs of the virtual servers not in Kept.
	Specs    []Spec
	Warnings []string
	// Kept are the virtual servers (Spec.VirtualServer) whose specs are
	// From's, as loaded: FromConfig would give them the same.
	Kept []string
	// From is the basis this build reused (nil: a full build); Basis
	// is this one's, for the next.
	From, Basis *Basis
}

// globalInputs is what of global_defs FromConfig reads.
type globalInputs struct {
	alertDefault            bool
	sslCA, sslCert, sslKey  string
	scriptUser, scriptGroup string
	smtpHeloName            string
}

func globalsOf(cfg *config.Config) globalInputs {
	g := &cfg.Global
	return globalInputs{
		alertDefault: alertDefault(g),
		sslCA:        g.SSLCA, sslCert: g.SSLCertificate, sslKey: g.SSLKey,
		scriptUser: g.ScriptUser, scriptGroup: g.ScriptGroup,
		smtpHeloName: g.SMTPHeloName,
	}
}

// Build is FromConfig of cfg reusing prev, the basis of the specs loaded
// (nil: a full build, Specs are FromConfig's): a virtual server reused
// unchanged from prev's configuration (the same object or its copy,
// config.ReusedFrom) is kept when the global settings its specs depend
// on are the same. The specs of the others and the kept ones' as loaded
// are FromConfig's (TestBuildEqualsFromConfig).
func Build(cfg *config.Config, prev *Basis) *Built {
	glob := globalsOf(cfg)
	b := &Built{Basis: &Basis{glob: glob, clean: make(map[*config.VirtualServer]bool, len(cfg.VirtualServers))}}
	if prev != nil && prev.glob != glob {
		prev = nil
	}
	b.From = prev
	// A virtual server listed twice is not kept: Kept is by key.
	var keys []string
	var twice map[string]bool
	if prev != nil {
		keys = make([]string, len(cfg.VirtualServers))
		seen := make(map[string]bool, len(cfg.VirtualServers))
		for i, vs := range cfg.VirtualServers {
			k := vs.Key()
			if seen[k] {
				if twice == nil {
					twice = map[string]bool{}
				}
				twice[k] = true
			}
			seen[k], keys[i] = true, k
		}
	}
	if prev == nil {
		// A full build: every real server's spec, in one allocation.
		n := 0
		for _, vs := range cfg.VirtualServers {
			n += len(vs.RealServers)
		}
		if n > 0 {
			b.Specs = make([]Spec, 0, n)
		}
	}
	scratch := &buildScratch{}
	for i, vs := range cfg.VirtualServers {
		if prev != nil && (prev.clean[vs] || prev.clean[cfg.ReusedFrom(vs)]) && !twice[keys[i]] {
			b.Kept = append(b.Kept, keys[i])
			b.Basis.clean[vs] = true
			continue
		}
		nw := len(b.Warnings)
		b.Specs, b.Warnings = appendVS(b.Specs, b.Warnings, cfg, vs, glob.alertDefault, scratch)
		if len(b.Warnings) == nw && len(vs.RealServers) > 0 {
			b.Basis.clean[vs] = true
		}
	}
	return b
}
