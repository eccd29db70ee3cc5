/*
 * Validation of OTLP/protobuf Export requests without decoding them.
 *
 * One schema-driven pass over the wire bytes of an ExportTraceServiceRequest,
 * ExportMetricsServiceRequest or ExportLogsServiceRequest (OTLP v1) checks
 * everything a strict decoder downstream (Go protobuf in Jaeger or Tempo,
 * protobuf-c in our own exporters) would check, and counts what the request
 * carries, so that a receiver can forward the bytes as they are. Nothing is
 * allocated; the input is only read.
 *
 * Checks: varints (at most 10 bytes, no overflow past 64 bits; tags and
 * length prefixes at most 5 bytes), wire types 0, 1, 2 and 5 only (groups are
 * refused), field number 0 refused, every length within its enclosing message,
 * message nesting at most LK_OTLP_MAX_DEPTH, and for fields of the schema: the
 * wire type of the declared type (repeated numeric fields packed or not; a
 * packed fixed64/double payload a multiple of 8 bytes), valid UTF-8 in every
 * `string`, trace ids of 16 bytes and span ids of 8 bytes (or empty) in spans,
 * span links, log records and exemplars, and a KeyValue.value or LogRecord.body
 * at most once (protobuf would merge repeats, protobuf-c 1.4 mis-merges them;
 * no encoder writes them). Fields outside the schema are skipped after the
 * structural checks, as protobuf requires.
 */
#ifndef LK_RECEIVERS_OTLP_VALIDATE_H
#define LK_RECEIVERS_OTLP_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Messages nested in one another, the request included: depths 0 (the
 * request) to 63. A span attribute's AnyValue is at depth 5; each level of an
 * AnyValue array adds 2, each level of a kvlist adds 3. */
#define LK_OTLP_MAX_DEPTH 64

struct lk_otlp_counts {
    uint64_t items;     /* spans, data points or log records */
    uint64_t resources; /* resource_spans, _metrics or _logs entries */
};

/*
 * Validates the |n| bytes at |p| as a whole Export request of signal |sig|.
 * Returns 0 and fills |counts|. Data points are counted over the data_points
 * of every Gauge, Sum, Histogram, ExponentialHistogram and Summary as they
 * appear on the wire (a Metric that carries two members of its `data` oneof
 * counts both, where a decoder keeps the last).
 *
 * On failure returns LK_EPROTO (wire structure, wire type, id length, depth)
 * or LK_EUTF8 (a `string` field), leaves |counts| unspecified and, when
 * |whylen| > 0, writes a NUL-terminated reason of at most |whylen| bytes to
 * |why|, naming the field by its path, e.g. "resource_spans[0].scope_spans[1]
 * .spans[3].name: invalid UTF-8 at byte 4 of 9" (on one line). LK_EINVAL for an
 * unknown |sig| or a NULL |p| with |n| > 0.
 */
int lk_otlp_validate(enum lk_signal sig, const uint8_t *p, size_t n,
                     struct lk_otlp_counts *counts, char *why, size_t whylen);

#endif
