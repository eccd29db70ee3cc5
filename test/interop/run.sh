#!/bin/sh
# Interop test: the official OpenTelemetry JavaScript SDK (npm) -> build/lookout ->
# in-process gRPC sink, for traces, metrics and logs over each SDK exporter protocol
# (grpc, http/protobuf, http/json) (test_node_sdk.py, 9 cases); and the SDK's metric
# instruments -> build/lookout's prometheus exporter -> /metrics, over each protocol
# with cumulative and with delta temporality (test_node_prometheus.py, 6 cases, run
# by test_node_sdk.py in the same suite). Run from the repo root (make interop) after
# build/lookout is built. Installs the pinned packages of test/interop/package.json +
# package-lock.json into build/interop-node (install.sh; nothing to do when make deps
# did it), then runs test_node_sdk.py (or the unittest names given as arguments,
# e.g. NodeSdkInteropTest.test_logs_grpc or
# NodeSdkPrometheusTest.test_prometheus_grpc_delta) and ends with one line
# "interop: N passed, N failed". Exit status is non-zero on any failure.
# Env: LOOKOUT_BIN (default build/lookout), LOOKOUT_PROTO_DIR (default proto).

cd "$(dirname "$0")/../.." || exit 1

SRC=test/interop
NODE_DIR=build/interop-node
GEN=build/interop-pygen
RESULT=build/interop-result
PROTO_DIR=${LOOKOUT_PROTO_DIR:-proto}
NCOMBOS=15   # 9 in NodeSdkInteropTest + 6 in NodeSdkPrometheusTest

summary_fail() {
    echo "interop: $1"
    echo "interop: 0 passed, $NCOMBOS failed"
    exit 1
}

# --- prerequisites

[ -x "${LOOKOUT_BIN:-build/lookout}" ] || summary_fail "${LOOKOUT_BIN:-build/lookout} not built (run make)"
command -v protoc >/dev/null 2>&1 || summary_fail "protoc not found (make deps)"
PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import grpc, google.protobuf' >/dev/null 2>&1; then PY=$p; break; fi
done
[ -n "$PY" ] || summary_fail "no python3 with grpc and protobuf (make deps)"

# coreutils timeout caps each step where present; every wait inside has its own
# deadline too.
tmo() {
    if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi
}

# --- npm packages (exact versions from the committed lock; make deps has
# usually installed them already)

out=$(sh "$SRC/install.sh" 2>&1) || { printf '%s\n' "$out"; summary_fail "the SDK packages are not installed"; }
[ -z "$out" ] || printf '%s\n' "$out"

# --- Python modules from proto/ (own directory: the integration suite may be
# regenerating its own at the same time)

rm -rf "$GEN" "$RESULT"
mkdir -p "$GEN"
protos=$(cd "$PROTO_DIR" 2>/dev/null && find opentelemetry -name '*.proto' | sort)
[ -n "$protos" ] || summary_fail "no .proto files under $PROTO_DIR/opentelemetry"
# shellcheck disable=SC2086  # one word per .proto path (no spaces in proto/)
protoc --python_out="$GEN" -I"$PROTO_DIR" $protos || summary_fail "protoc failed"

# --- the test

LOOKOUT_PYGEN="$PWD/$GEN" LOOKOUT_PROTO_DIR="$PROTO_DIR" LOOKOUT_RESULT="$RESULT" \
INTEROP_NODE_DIR="$PWD/$NODE_DIR" \
    tmo 170 "$PY" "$SRC/test_node_sdk.py" "$@"
rc=$?

if [ -s "$RESULT" ]; then
    read -r passed failed < "$RESULT"
else
    passed=0
    failed=$NCOMBOS
fi
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "interop: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
