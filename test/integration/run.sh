#!/bin/sh
# Integration tests: OTLP/gRPC client -> build/lookout -> in-process sink.
# Run from the repo root (make integration) after build/lookout is built.
# Generates the Python protobuf modules from proto/ into build/pytest-gen, runs every
# test/integration/test_*.py (or the unittest names given as arguments, e.g.
# test_traces.TracesTest.test_a_spans_round_trip) and ends with one line
# "integration: N passed, N failed". Exit status is non-zero on any failure.
# Env: LOOKOUT_BIN (default build/lookout), LOOKOUT_PROTO_DIR (default proto),
# INTEGRATION_NAME (the name of the summary line, default integration),
# LOOKOUT_WATCHDOG (seconds the whole run may take, default 300).
# Without arguments it runs every module except the reliability ones
# (RELIABILITY_TESTS: `make reliability` runs those, with a longer watchdog)
# and the durability one (DURABILITY_TESTS: `make durability`).

RELIABILITY_TESTS="test_hostile test_overload test_backends"
DURABILITY_TESTS="test_durability"

cd "$(dirname "$0")/../.." || exit 1

PROTO_DIR=${LOOKOUT_PROTO_DIR:-proto}
GEN=build/pytest-gen
RESULT=build/integration-result

summary_fail() {
    echo "integration: $1"
    echo "integration: 0 passed, 1 failed"
    exit 1
}

[ -x "${LOOKOUT_BIN:-build/lookout}" ] || summary_fail "${LOOKOUT_BIN:-build/lookout} not built (run make)"
command -v protoc >/dev/null 2>&1 || summary_fail "protoc not found (make deps)"

# Regenerate every time: proto/ is the source of truth and protoc is fast.
rm -rf "$GEN" "$RESULT"
mkdir -p "$GEN"
protos=$(cd "$PROTO_DIR" 2>/dev/null && find opentelemetry -name '*.proto' | sort)
[ -n "$protos" ] || summary_fail "no .proto files under $PROTO_DIR/opentelemetry"
# shellcheck disable=SC2086  # one word per .proto path (no spaces in proto/)
protoc --python_out="$GEN" -I"$PROTO_DIR" $protos || summary_fail "protoc failed"

# Debian's grpcio/protobuf load only in /usr/bin/python3; elsewhere (macOS) use
# whichever python3 has them.
PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import grpc, google.protobuf' >/dev/null 2>&1; then PY=$p; break; fi
done
[ -n "$PY" ] || summary_fail "no python3 with grpc and protobuf (make deps)"

# Every wait inside has its own deadline; this caps the whole run in case one
# does not (coreutils timeout, where present).
WATCHDOG=
command -v timeout >/dev/null 2>&1 && WATCHDOG="timeout ${LOOKOUT_WATCHDOG:-300}"

if [ $# -eq 0 ]; then
    for f in test/integration/test_*.py; do
        m=$(basename "$f" .py)
        case " $RELIABILITY_TESTS $DURABILITY_TESTS " in *" $m "*) ;; *) set -- "$@" "$m" ;; esac
    done
fi

LOOKOUT_PYGEN="$PWD/$GEN" LOOKOUT_PROTO_DIR="$PROTO_DIR" LOOKOUT_RESULT="$RESULT" \
    $WATCHDOG "$PY" -c 'import sys; sys.path.insert(0, "test/integration"); import helpers; sys.exit(helpers.main(sys.argv[1:]))' "$@"
rc=$?

if [ -s "$RESULT" ]; then
    read -r passed failed < "$RESULT"
else
    passed=0
    failed=1
fi
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "${INTEGRATION_NAME:-integration}: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
