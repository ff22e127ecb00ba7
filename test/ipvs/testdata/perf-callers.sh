#!/bin/sh
# Who makes a daemon's clock_gettime and futex calls: for 5 s, each call's
# top seven user frames (runtime wrappers skipped), counted. $1: the
# daemon's pids, comma-separated (HAKEEP_BENCH_PERF's PIDS). Needs perf
# in the guest (vmtest -bin /usr/bin/perf); BENCHMARKS.md, "## checks".
perf record -q -e syscalls:sys_enter_clock_gettime -e syscalls:sys_enter_futex -g -p "$1" -o /tmp/t.data -- sleep 5 >/dev/null 2>&1
perf script -i /tmp/t.data -F event,ip,sym 2>/dev/null | awk '
/sys_enter_/ { if (key != "") c[key]++; split($1, e, ":"); key = e[2]; n = 0; next }
NF >= 2 { if (n < 7 && $2 !~ /^(runtime\.(usleep|futex|nanotime1|walltime|osyield)|internal\/runtime\/syscall|syscall\.)/) { key = key " < " $2; n++ } next }
END { if (key != "") c[key]++; for (k in c) print c[k], k }' | sort -rn | head -40
