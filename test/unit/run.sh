#!/bin/sh
# Runs each Check binary given and prints one "unit: N passed, N failed" line
# ($UNIT_NAME instead of "unit" when set: unit-san for the sanitizer build).
# CK_FORK=no keeps sanitizers attached to the test process itself.
passed=0
failed=0
for t in "$@"; do
    out=$(CK_FORK=no "$t" 2>&1)
    rc=$?
    summary=$(echo "$out" | grep -E '^[0-9]+%: Checks: ')
    echo "$(basename "$t"): ${summary:-no summary}"
    if [ -n "$summary" ]; then
        total=$(echo "$summary" | sed 's/.*Checks: \([0-9]*\).*/\1/')
        fails=$(echo "$summary" | sed 's/.*Failures: \([0-9]*\).*/\1/')
        errs=$(echo "$summary" | sed 's/.*Errors: \([0-9]*\).*/\1/')
        passed=$((passed + total - fails - errs))
        failed=$((failed + fails + errs))
    fi
    if [ $rc -ne 0 ]; then
        echo "$out" | grep -v '^[0-9]*%: Checks' | tail -40
        [ -n "$summary" ] && [ $((fails + errs)) -gt 0 ] || failed=$((failed + 1))
    fi
done
echo "${UNIT_NAME:-unit}: $passed passed, $failed failed"
[ $failed -eq 0 ]
