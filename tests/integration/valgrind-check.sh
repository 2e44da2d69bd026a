#!/bin/sh
# Reads the memcheck logs of a `make test-valgrind` run (valgrind-wrap.sh):
# fails when any process had an error or lost memory definitely, and says
# how many processes ended without a summary (killed before exiting), which
# memcheck could therefore not judge.
set -u
dir=${1:?usage: valgrind-check.sh LOGDIR}
n=0 bad=0 unfinished=0
for f in "$dir"/vg.*.log; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    if grep -Eq 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$f"; then
        bad=$((bad + 1))
        echo "== $f"
        cat "$f"
    elif ! grep -q 'ERROR SUMMARY:' "$f"; then
        unfinished=$((unfinished + 1))
    fi
done
echo "valgrind: $n processes, $bad with errors or definite leaks, $unfinished without a summary (killed)"
[ "$n" -gt 0 ] || { echo "valgrind: no logs in $dir"; exit 1; }
[ "$bad" -eq 0 ]
