#!/bin/sh
# SOCIALGATE_BIN for `make test-valgrind`: runs socialgate under memcheck with
# the arguments it was given. Each process (the daemon, `-t`, `explain`,
# `report`, a `-d` child) writes its own log, SG_VALGRIND_LOGS/vg.PID.log;
# tests/integration/valgrind-check.sh reads them at the end, and the test
# fixtures read a daemon's log when they stop it. Exit code 99 means memcheck
# found an error or a definite leak. --fair-sched=yes: memcheck runs one
# thread at a time, and the main loop must get its turn (a signal, a reload)
# while worker and password-check threads are busy.
here=$(cd "$(dirname "$0")/../.." && pwd)
logs=${SG_VALGRIND_LOGS:-$here/build-valgrind/logs}
mkdir -p "$logs"
exec valgrind --error-exitcode=99 --leak-check=full --fair-sched=yes \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --num-callers=30 --log-file="$logs/vg.%p.log" \
    "${SG_VALGRIND_TARGET:-$here/socialgate}" "$@"
