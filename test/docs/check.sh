#!/bin/sh
# Keeps the docs and the binary in agreement: metric names (and their types and
# labels), configuration keys and command-line flags, both ways. See check.py.
# Run from anywhere (`make docs-check` runs it from the repository root).
# Environment: LOOKOUT_BIN (default build/lookout).
# Ends with "docs: N passed, N failed"; exit status non-zero on any failure.

cd "$(dirname "$0")/../.." || exit 1

# Only the standard library is used: /usr/bin/python3 first (the house
# interpreter on Debian), any python3 elsewhere (macOS).
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1; then
        exec "$p" test/docs/check.py "$@"
    fi
done
echo "FAIL python3 found"
echo "docs: 0 passed, 1 failed"
exit 1
