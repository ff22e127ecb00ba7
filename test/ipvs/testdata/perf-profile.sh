#!/bin/sh
# Where a daemon's CPU goes for 6 s: its user symbols, and the share of
# its samples under each user frame (kernel time included), then
# perf-callers.sh. $1: the daemon's pids, comma-separated
# (HAKEEP_BENCH_PERF's PIDS); BENCHMARKS.md, "## checks".
perf record -q -e cpu-clock -g -p "$1" -o /tmp/p.data -- sleep 6 >/dev/null 2>&1
echo "== user symbols"
perf report -i /tmp/p.data --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | grep -v "\[k\]" | head -30
echo "== samples under each user frame"
perf report -i /tmp/p.data --children --sort sym --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | grep "\[\.\]" | head -40
"$(dirname "$0")/perf-callers.sh" "$1"
