#!/bin/sh
# The version stamped into hakeepd and hactl (make build) and the .deb
# (make deb): git describe of the work tree, "dev" outside git.
#   version.sh        v1.2.0-3-gabc1234-dirty (as git describes it)
#   version.sh --deb  1.2.0+3.gabc1234.dirty  (a Debian upstream version:
#                     starts with a digit, no '-', sorts after 1.2.0)
v=$(git describe --tags --always --dirty 2>/dev/null) || v=
[ -n "$v" ] || v=dev
if [ "$1" = --deb ]; then
	v=${v#v}
	if ! printf '%s' "$v" | grep -Eq '^[0-9]+(\.[0-9]+)+'; then
		v=0.0.0~git$v # no release tag yet: sorts before any release
	fi
	v=$(printf '%s' "$v" | tr -- '-' '.' | sed 's/^\([0-9][0-9.]*[0-9]\)\.\([0-9]*\.g\)/\1+\2/')
fi
printf '%s\n' "$v"
