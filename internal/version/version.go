// Package version is the build's version, stamped from git at link time
// (Makefile: -ldflags "-X hakeep/internal/version.Version=$(git describe)")
// and read by both binaries (--version) and the build_info metric.
package version

import "runtime/debug"

// Version is set by the linker; without it the module's VCS stamp is used.
var Version = ""

// String is the version to print: the stamped one, else the VCS revision
// Go recorded in the binary, else "dev".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return "0.0.0-" + rev
		}
	}
	return "dev"
}
