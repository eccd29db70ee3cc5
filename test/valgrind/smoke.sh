#!/bin/sh
# make valgrind-smoke: build/lookout under valgrind (memcheck, definite leaks are
# errors) on a small config, with OTLP/gRPC, OTLP/HTTP and lines traffic, then
# SIGTERM: the agent must exit 0 with no valgrind error. Prints
# "valgrind: 1 passed, 0 failed" (or "valgrind: skipped, ..." where valgrind does
# not run: macOS). Log: build/valgrind/. Env: LOOKOUT_BIN (default build/lookout).
cd "$(dirname "$0")/../.." || exit 1

if [ "$(uname -s)" = Darwin ]; then
    echo "valgrind: skipped, valgrind does not run on macOS"
    exit 0
fi
command -v valgrind >/dev/null 2>&1 || { echo "valgrind: not found (make deps)"; echo "valgrind: 0 passed, 1 failed"; exit 1; }

PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import grpc, google.protobuf' >/dev/null 2>&1; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "valgrind: no python3 with grpc and protobuf (make deps)"; echo "valgrind: 0 passed, 1 failed"; exit 1; }

WATCHDOG=
command -v timeout >/dev/null 2>&1 && WATCHDOG="timeout ${LOOKOUT_WATCHDOG:-300}"
if $WATCHDOG "$PY" test/valgrind/smoke.py; then
    echo "valgrind: 1 passed, 0 failed"
else
    echo "valgrind: 0 passed, 1 failed"
    exit 1
fi
