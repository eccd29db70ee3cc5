#!/bin/sh
# Keeps lookout's proto/ wire-compatible with the reference .proto copies
# (OTLP, Loki push, Prometheus remote write/read and protobuf exposition).
# Run from the repository root (`make proto-check`).
#
#   sh test/proto/check.sh         compare proto/, compare it as rewritten for
#                                  protoc-c, then prove the comparison can fail
#                                  by comparing mutated temp copies
#   sh test/proto/check.sh ROOT    compare only the proto tree at ROOT
#
# The last line is `proto: N passed, M failed`: N counts the messages, enums
# and services of the reference that match ours; M counts mismatches plus any
# self-check that did not catch its mutation. Exit status 1 when M > 0.
#
# Without reference copies (a clone with no ../shared) there is nothing to
# compare with: the one line is `proto: skipped, no reference copies at DIR`
# and the exit status 0, unless LOOKOUT_REQUIRE_REF=1 (CI sets it), which
# makes their absence a failure. A partial set (say OTLP and Loki but no
# Prometheus) is always a failure naming what is missing: skipping would
# silently drop the comparison of the parts that are there.
#
# File names: the reference's Prometheus schemas are named prompb/*.proto and
# io/prometheus/client/metrics.proto (include root DIR/prometheus); lookout
# keeps them under proto/prometheus/, so compare.py maps those prefixes
# before it checks that each item is defined in the file of the same name.
#
# Environment: LOOKOUT_REF_DIR (default ../shared/reference), PROTOC (protoc),
# PYTHON (/usr/bin/python3 when it has google.protobuf, else python3),
# LOOKOUT_REQUIRE_REF (0).
set -u

REF_DIR=${LOOKOUT_REF_DIR:-../shared/reference}
PROTOC=${PROTOC:-protoc}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${PYTHON:-}" ]; then
  if /usr/bin/python3 -c 'import google.protobuf' 2>/dev/null; then
    PYTHON=/usr/bin/python3
  else
    PYTHON=python3
  fi
fi
# Same rewrite as the Makefile's $(B)/proto/%.proto rule; keep them in sync.
OPTIONAL_SED='s/^([[:space:]]*)optional[[:space:]]+([A-Za-z0-9_.]+)[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*=[[:space:]]*([0-9]+)[[:space:]]*;/\1oneof _\3 { \2 \3 = \4; }/'

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lookout-proto.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

die() {
  echo "proto-check: $*" >&2
  echo "proto: 0 passed, 1 failed"
  exit 1
}

ref_prom=$REF_DIR/prometheus
PROM_REF_FILES="prompb/types.proto prompb/remote.proto io/prometheus/client/metrics.proto"
# Reference file-name prefix = ours, for compare.py (see above).
FILE_MAPS="prompb/=prometheus/prompb/ io/prometheus/=prometheus/io/prometheus/"

# ref_missing: prints the reference parts that are absent, one per line.
ref_missing() {
  [ -d "$REF_DIR/opentelemetry-proto/opentelemetry" ] || echo "opentelemetry-proto/opentelemetry"
  [ -f "$REF_DIR/loki/push.proto" ] || echo "loki/push.proto"
  for f in $PROM_REF_FILES; do
    [ -f "$ref_prom/$f" ] || echo "prometheus/$f"
  done
}

missing=$(ref_missing)
# shellcheck disable=SC2086  # counting the words of the list
all_parts=$((2 + $(echo $PROM_REF_FILES | wc -w)))
if [ -n "$missing" ] && [ "$(echo "$missing" | wc -l)" -lt "$all_parts" ]; then
  die "incomplete reference copies under $REF_DIR, missing: $(echo "$missing" | paste -s -d ' ' -)"
fi
if [ -n "$missing" ]; then
  if [ "${LOOKOUT_REQUIRE_REF:-0}" = 1 ]; then
    die "reference protos not found under $REF_DIR (set LOOKOUT_REF_DIR; LOOKOUT_REQUIRE_REF=1)"
  fi
  echo "proto: skipped, no reference copies at $REF_DIR"
  exit 0
fi
command -v "$PROTOC" >/dev/null 2>&1 || die "$PROTOC not found"

# Reference set, built once: OTLP files named as in proto/, loki/push.proto,
# and the Prometheus files named as upstream names them (prompb/..., mapped).
ref_otlp=$REF_DIR/opentelemetry-proto
ref_files=$(cd "$ref_otlp" && find opentelemetry -name '*.proto' | sort)
# shellcheck disable=SC2086  # word splitting of the file lists is intended
"$PROTOC" -I "$ref_otlp" -I "$REF_DIR" -I "$ref_prom" --include_imports \
  --descriptor_set_out="$TMP/ref.pb" $ref_files loki/push.proto $PROM_REF_FILES ||
  die "protoc failed on the reference protos"

# compare_root ROOT OUT: build ROOT's descriptor set and compare it with the
# reference; compare.py's report goes to OUT. Returns compare.py's status
# (0 same, 1 differences) or 3 when protoc rejects ROOT.
compare_root() {
  root=$1 out=$2
  files=$(cd "$root" && find . -name '*.proto' | sed 's|^\./||' | sort)
  if [ -z "$files" ]; then
    echo "no .proto files under $root" > "$out"
    return 3
  fi
  # shellcheck disable=SC2086
  (cd "$root" && "$PROTOC" -I . --include_imports \
    --descriptor_set_out="$TMP/ours.pb" $files) > "$out" 2>&1 || return 3
  # shellcheck disable=SC2086  # FILE_MAPS is a list
  "$PYTHON" "$HERE/compare.py" "$TMP/ours.pb" "$TMP/ref.pb" $FILE_MAPS > "$out" 2>&1
}

# count WHAT OUT: the passed/failed number from OUT's closing line (0 if none).
count() {
  n=$(sed -n "s/^proto: \([0-9]*\) passed, \([0-9]*\) failed\$/\\$1/p" "$2" | tail -n 1)
  echo "${n:-0}"
}

if [ $# -ge 1 ]; then
  compare_root "$1" "$TMP/out"
  rc=$?
  cat "$TMP/out"
  [ $rc -eq 3 ] && echo "proto: 0 passed, 1 failed"
  [ $rc -eq 0 ] || exit 1
  exit 0
fi

failed=0

# 1. The real tree.
echo "== proto/ vs $REF_DIR"
compare_root proto "$TMP/out"
rc=$?
cat "$TMP/out"
[ $rc -eq 3 ] && failed=$((failed + 1))
passed=$(count 1 "$TMP/out")
failed=$((failed + $(count 2 "$TMP/out")))

# 2. The tree protoc-c actually compiles (optional -> oneof _name).
echo "== proto/ rewritten for protoc-c"
mkdir -p "$TMP/rewritten"
(cd proto && find . -name '*.proto') | while read -r f; do
  mkdir -p "$TMP/rewritten/$(dirname "$f")"
  sed -E "$OPTIONAL_SED" "proto/$f" > "$TMP/rewritten/$f"
done
if grep -rqE '^[[:space:]]*optional[[:space:]]' "$TMP/rewritten"; then
  echo "FAIL an optional field is not in the single-line shape the build rewrites:"
  grep -rnE '^[[:space:]]*optional[[:space:]]' "$TMP/rewritten"
  failed=$((failed + 1))
fi
compare_root "$TMP/rewritten" "$TMP/out"
rc=$?
if [ $rc -eq 0 ]; then
  echo "ok ($(count 1 "$TMP/out") passed)"
else
  cat "$TMP/out"
  failed=$((failed + 1))
fi

# 3. Negative self-checks: each mutation of a fresh copy must be reported.
# selfcheck NAME FILE SED_EXPR EXPECTED_LINE
selfcheck() {
  name=$1 file=$2 expr=$3 expect=$4
  rm -rf "$TMP/mut" && cp -R proto "$TMP/mut" || return 1
  if [ -n "$expr" ]; then
    sed "$expr" "$TMP/mut/$file" > "$TMP/mut.proto" && mv "$TMP/mut.proto" "$TMP/mut/$file.new"
    if cmp -s "$TMP/mut/$file" "$TMP/mut/$file.new"; then
      echo "FAIL self-check '$name': mutation did not apply to proto/$file"
      return 1
    fi
    mv "$TMP/mut/$file.new" "$TMP/mut/$file"
  else
    rm -f "$TMP/mut/$file"   # empty expression: delete the file
  fi
  compare_root "$TMP/mut" "$TMP/out"
  rc=$?
  if [ $rc -ne 1 ]; then
    echo "FAIL self-check '$name': expected the compare to fail (1), got $rc"
    cat "$TMP/out"
    return 1
  fi
  if ! grep -qF "$expect" "$TMP/out"; then
    echo "FAIL self-check '$name': report lacks: $expect"
    cat "$TMP/out"
    return 1
  fi
  echo "ok self-check '$name' caught: $expect"
}

echo "== self-checks (mutated copies must fail)"
T=opentelemetry/proto
selfcheck "field number" $T/trace/v1/trace.proto \
  's/^\([[:space:]]*fixed32[[:space:]]*flags[[:space:]]*=[[:space:]]*\)16;/\117;/' \
  "FAIL message opentelemetry.proto.trace.v1.Span: field 16 'flags' missing in ours" ||
  failed=$((failed + 1))
selfcheck "field type" $T/logs/v1/logs.proto \
  's/^\([[:space:]]*\)fixed64\([[:space:]]*time_unix_nano[[:space:]]*=[[:space:]]*1;\)/\1uint64\2/' \
  "FAIL message opentelemetry.proto.logs.v1.LogRecord: field 1 'time_unix_nano': type 'fixed64' in reference, 'uint64' in ours" ||
  failed=$((failed + 1))
selfcheck "presence" $T/metrics/v1/metrics.proto \
  's/^\([[:space:]]*\)optional double min = 11;/\1double min = 11;/' \
  "FAIL message opentelemetry.proto.metrics.v1.HistogramDataPoint: field 11 'min': presence 'optional' in reference, 'none' in ours" ||
  failed=$((failed + 1))
selfcheck "enum value" $T/trace/v1/trace.proto \
  's/STATUS_CODE_ERROR = 2;/STATUS_CODE_ERROR = 3;/' \
  "FAIL enum opentelemetry.proto.trace.v1.Status.StatusCode: value STATUS_CODE_ERROR: number 2 in reference, 3 in ours" ||
  failed=$((failed + 1))
# shellcheck disable=SC2016  # '$a' is sed's "append after the last line"
selfcheck "extra message" $T/common/v1/common.proto \
  '$a\
message LookoutExtra {}' \
  "FAIL message opentelemetry.proto.common.v1.LookoutExtra: only in ours" ||
  failed=$((failed + 1))
selfcheck "missing file" $T/collector/logs/v1/logs_service.proto "" \
  "FAIL service opentelemetry.proto.collector.logs.v1.LogsService: missing in ours" ||
  failed=$((failed + 1))

P=prometheus/prompb
C=prometheus/io/prometheus/client
selfcheck "prometheus field number" $P/types.proto \
  's/^\([[:space:]]*int64[[:space:]]*timestamp[[:space:]]*=[[:space:]]*\)2;/\13;/' \
  "FAIL message prometheus.Sample: field 2 'timestamp' missing in ours" ||
  failed=$((failed + 1))
selfcheck "prometheus enum value" $P/types.proto \
  '/^[[:space:]]*STATESET[[:space:]]*=[[:space:]]*7;/d' \
  "FAIL enum prometheus.MetricMetadata.MetricType: value STATESET = 7 missing in ours" ||
  failed=$((failed + 1))
selfcheck "prometheus oneof" $P/types.proto \
  's/^\([[:space:]]*oneof[[:space:]]*\)count[[:space:]]*{/\1counts {/' \
  "FAIL message prometheus.Histogram: field 1 'count_int': presence 'oneof count' in reference, 'oneof counts' in ours" ||
  failed=$((failed + 1))
selfcheck "prometheus reserved" $P/remote.proto \
  '/^[[:space:]]*reserved[[:space:]]*2;/d' \
  "FAIL message prometheus.WriteRequest: reserved ranges [(2, 3)] in reference, [] in ours" ||
  failed=$((failed + 1))
selfcheck "exposition native histogram" $C/metrics.proto \
  's/^\([[:space:]]*\)sint32\([[:space:]]*schema[[:space:]]*=[[:space:]]*5;\)/\1int32\2/' \
  "FAIL message io.prometheus.client.Histogram: field 5 'schema': type 'sint32' in reference, 'int32' in ours" ||
  failed=$((failed + 1))
selfcheck "exposition local Timestamp" $C/metrics.proto \
  's/^\([[:space:]]*\)int32\([[:space:]]*nanos[[:space:]]*=[[:space:]]*2;\)/\1int64\2/' \
  "FAIL message google.protobuf.Timestamp (ours io.prometheus.client.Timestamp): field 2 'nanos': type 'int32' in reference, 'int64' in ours" ||
  failed=$((failed + 1))
# The file-name check is live for the mapped files: without the mapping the
# schema-identical tree (a comment appended) must fail on it.
saved_maps=$FILE_MAPS FILE_MAPS=
# shellcheck disable=SC2016  # '$a' is sed's "append after the last line"
selfcheck "file-name mapping" $P/types.proto '$a\
// self-check: comment only' \
  "FAIL message prometheus.Sample: defined in prompb/types.proto in reference, prometheus/prompb/types.proto in ours" ||
  failed=$((failed + 1))
FILE_MAPS=$saved_maps

echo "proto: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
