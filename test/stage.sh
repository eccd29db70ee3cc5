#!/bin/sh
# One stage of `make test`: test/stage.sh NAME COMMAND...
#
# Runs COMMAND with its output kept in build/test-logs/NAME.log and prints only
# its summary lines ("unit: 367 passed, 0 failed", "proto: skipped, ...": the
# last one of each name), or
# "NAME: ok (Ns)" for a stage that has none (the build). When COMMAND fails, the
# whole log is shown, then "NAME: FAILED (exit N, Ns; log: FILE)".
# V=1 streams the output as it comes (compiler command lines included).
set -u

name=$1
shift
dir=build/test-logs
mkdir -p "$dir" || exit 1
log=$dir/$name.log
start=$(date +%s)

if [ "${V:-0}" = 1 ]; then
    { "$@"; echo $? > "$log.rc"; } 2>&1 | tee "$log"
else
    "$@" > "$log" 2>&1
    echo $? > "$log.rc"
fi
# No status recorded (disk full, build/ removed meanwhile) is a failure.
rc=$(cat "$log.rc" 2>/dev/null)
case $rc in '' | *[!0-9]*) rc=1 ;; esac
rm -f "$log.rc"
took=$(($(date +%s) - start))

if [ "$rc" -ne 0 ]; then
    [ "${V:-0}" = 1 ] || cat "$log"
    echo "$name: FAILED (exit $rc, ${took}s; log: $log)"
    exit "$rc"
fi
if [ "${V:-0}" != 1 ]; then
    # The last summary line of each name, in the order the names first appear
    # (a checker may print an intermediate one of the same name).
    awk -v ok="$name: ok (${took}s)" '
        /^[A-Za-z0-9_-]+: ([0-9]+ passed, [0-9]+ failed|skipped)/ {
            k = substr($0, 1, index($0, ":"))
            if (!(k in last)) order[n++] = k
            last[k] = $0
        }
        END {
            if (n == 0) print ok
            for (i = 0; i < n; i++) print last[order[i]]
        }' "$log"
fi
exit 0
