#!/bin/sh
# `make bench-report`: times `socialgate report` on a big usage log, next to
# `cat FILE > /dev/null` as the disk-speed reference. Each is run twice and
# the faster run counts; after the first `cat` the file is usually in the
# page cache, so both then read from memory. `dd iflag=direct` adds what
# the disk itself gives, bypassing the cache.
#
# usage: bench_report.sh SOCIALGATE LOGFILE
set -eu
bin=$1
log=$2
err=$(mktemp)
trap 'rm -f "$err"' EXIT

now() { date +%s.%N; }
best() { # best CMD...: the shorter of two runs, in seconds
    b=
    for _ in 1 2; do
        t0=$(now)
        if ! "$@" >/dev/null 2>"$err"; then
            cat "$err" >&2
            exit 1
        fi
        t1=$(now)
        b=$(awk -v a="$t0" -v z="$t1" -v b="$b" 'BEGIN { d = z - a; print (b == "" || d < b) ? d : b }')
    done
    echo "$b"
}

bytes=$(wc -c <"$log")
lines=$(wc -l <"$log")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "log: $log, $lines lines, $mb MB"

t_cat=$(best cat "$log")
t_def=$(best "$bin" report "$log")
skipped=$(cat "$err")
t_role=$(best "$bin" report --by role,hour --format csv "$log")
t_day=$(best "$bin" report --by day --since 2026-11-10 --until 2026-11-20 "$log")

show() { # show LABEL SECONDS
    awk -v l="$1" -v t="$2" -v b="$bytes" -v n="$lines" 'BEGIN {
        printf "%-44s %7.2f s  %8.0f MB/s  %10.0f lines/s\n", l, t, b / t / 1e6, n / t }'
}
show "cat FILE > /dev/null (disk-speed reference)" "$t_cat"
# The disk itself, past the page cache (O_DIRECT), where the file system allows it.
if t_dd=$(best dd if="$log" of=/dev/null bs=4M iflag=direct status=none 2>/dev/null); then
    show "dd iflag=direct (the disk, uncached)" "$t_dd"
fi
show "socialgate report FILE" "$t_def"
show "socialgate report --by role,hour --format csv" "$t_role"
show "socialgate report --by day --since --until" "$t_day"
[ -z "$skipped" ] || echo "$skipped"
