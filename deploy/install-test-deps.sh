#!/bin/sh
# Installs the Debian packages the tests use (deploy/test-deps.txt), only
# those missing, so running it again is cheap. Not root: says so and goes on
# (the tests that need a package skip with a clear message).
set -eu
list="$(dirname "$0")/test-deps.txt"
missing=
for p in $(grep -v '^#' "$list" | sort -u); do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps: not root, cannot install:$missing (tests that need them will skip)" >&2
	exit 0
fi
echo "install-test-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt() { apt-get -o DPkg::Lock::Timeout=600 -q "$@"; }
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt install -y --no-install-recommends $missing >&2 ||
	{ apt update >&2 && apt install -y --no-install-recommends $missing >&2; }
