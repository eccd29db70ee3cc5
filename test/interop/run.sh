#!/bin/sh
# Interop test: the official OpenTelemetry JavaScript SDK (npm) -> build/lookout ->
# in-process gRPC sink, for traces, metrics and logs over each SDK exporter protocol
# (grpc, http/protobuf, http/json). Run from the repo root (make interop) after
# build/lookout is built. Installs the pinned packages of test/interop/package.json +
# package-lock.json into build/interop-node with `npm ci` (skipped when that lock is
# already installed there), then runs test_node_sdk.py (or the unittest names given as
# arguments, e.g. NodeSdkInteropTest.test_logs_grpc) and ends with one line
# "interop: N passed, N failed". Exit status is non-zero on any failure.
# Env: LOOKOUT_BIN (default build/lookout), LOOKOUT_PROTO_DIR (default proto).

cd "$(dirname "$0")/../.." || exit 1

SRC=test/interop
NODE_DIR=build/interop-node
GEN=build/interop-pygen
RESULT=build/interop-result
PROTO_DIR=${LOOKOUT_PROTO_DIR:-proto}
NCOMBOS=9

summary_fail() {
    echo "interop: $1"
    echo "interop: 0 passed, $NCOMBOS failed"
    exit 1
}

# --- prerequisites

command -v node >/dev/null 2>&1 || summary_fail "node not found on PATH (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || summary_fail "npm not found on PATH (Debian: apt-get install npm)"
# The pinned SDK line supports node ^18.19 || >=20.6.
node -e 'const [a,b]=process.versions.node.split(".").map(Number);
process.exit(a>20||(a===20&&b>=6)||(a===18&&b>=19)?0:1)' ||
    summary_fail "node $(node --version) too old: the pinned OpenTelemetry SDK needs ^18.19 or >=20.6"
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

# --- npm packages (exact versions from the committed lock)

want=$(cat "$SRC/package.json" "$SRC/package-lock.json" | cksum)
have=$(cat "$NODE_DIR/.installed" 2>/dev/null)
if [ "$want" != "$have" ] || [ ! -d "$NODE_DIR/node_modules/@opentelemetry" ]; then
    echo "interop: installing the OpenTelemetry JavaScript packages into $NODE_DIR"
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR" || summary_fail "cannot create $NODE_DIR"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$NODE_DIR/" || summary_fail "cannot copy package files"
    # --ignore-scripts: no package here needs an install script to work.
    if ! (cd "$NODE_DIR" && tmo 600 npm ci --no-audit --no-fund --ignore-scripts) > "$NODE_DIR/npm-ci.log" 2>&1; then
        tail -n 30 "$NODE_DIR/npm-ci.log"
        summary_fail "npm ci failed (log: $NODE_DIR/npm-ci.log)"
    fi
    echo "$want" > "$NODE_DIR/.installed"
fi

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
