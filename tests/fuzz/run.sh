#!/bin/sh
# Runs the fuzz targets; called by the Makefile (make fuzz-replay, make fuzz).
#
#   run.sh replay BINDIR TARGET...
#       Each BINDIR/TARGET (built with replay.c) over tests/fuzz/corpus/TARGET.
#   run.sh fuzz BINDIR SECONDS WORKDIR TARGET...
#       Each libFuzzer binary BINDIR/TARGET for SECONDS, one after the other.
#       New corpus entries go to WORKDIR/corpus/TARGET (the seed corpus in
#       the repository is only read), the log to WORKDIR/logs/TARGET.log, a
#       crashing input to WORKDIR/crashes/. tests/fuzz/dict/TARGET.dict is
#       used when it exists.
#
# Both print one line per target and last "LABEL: N passed, N failed"
# (fuzz-replay counts inputs, fuzz counts targets), and exit 1 when any
# failed.
set -u
mode=${1:?mode}
bindir=${2:?bindir}
shift 2
here=$(dirname "$0")
passed=0
failed=0

case "$mode" in
replay)
    # Counts inputs: the line is "fuzz-replay: N passed, N failed".
    label=fuzz-replay
    for t in "$@"; do
        out=$("$bindir/$t" -q "$here/corpus/$t" 2>&1)
        rc=$?
        printf '%s\n' "$out" | sed '$d'
        last=$(printf '%s\n' "$out" | tail -n 1)
        p=$(printf '%s\n' "$last" | sed -n 's/^.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
        f=$(printf '%s\n' "$last" | sed -n 's/^.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
        if [ -z "$p" ]; then
            p=0
            f=1
        fi
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then
            echo "replay $t: $p inputs ok"
        else
            [ "$f" -gt 0 ] || failed=$((failed + 1))
            echo "replay $t: FAILED (exit $rc): $last"
        fi
    done
    ;;
fuzz)
    # Counts targets: the line is "fuzz: N passed, N failed".
    label=fuzz
    seconds=${1:?seconds}
    work=${2:?workdir}
    shift 2
    mkdir -p "$work/logs" "$work/crashes"
    for t in "$@"; do
        mkdir -p "$work/corpus/$t"
        dict=""
        [ -f "$here/dict/$t.dict" ] && dict="-dict=$here/dict/$t.dict"
        log="$work/logs/$t.log"
        # -timeout: an input taking longer is a hang, reported as a crash.
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "$bindir/$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$work/crashes/$t-" $dict \
            "$work/corpus/$t" "$here/corpus/$t" >"$log" 2>&1
        rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
        ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | sed 's/ft: //')
        corp=$(ls "$work/corpus/$t" | wc -l)
        if [ "$rc" -eq 0 ]; then
            passed=$((passed + 1))
            echo "fuzz $t: ok, ${execs:-?} execs in ${seconds}s, cov ${cov:-?}, ft ${ft:-?}, work corpus $corp files"
        else
            failed=$((failed + 1))
            echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} execs; log $log"
            tail -n 60 "$log" | sed 's/^/    /'
            ls "$work/crashes/$t-"* 2>/dev/null | sed 's/^/    input: /'
        fi
    done
    ;;
*)
    echo "run.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
echo "$label: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
