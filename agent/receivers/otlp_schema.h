/*
 * The OTLP v1 schema as const tables: the one description of the messages
 * that both the protobuf validator (otlp_validate.c) and the JSON decoder
 * (otlp_json.c) walk.
 *
 * Each message is a table of fields indexed by field number; numbers the
 * schema does not use are holes with kind LK_PBK_NONE. A field gives its
 * declared protobuf type, its names (the .proto name and the lowerCamelCase
 * JSON name of the protobuf JSON mapping), its label, its oneof, and what the
 * validator checks on the wire (|kind|, derived from the type and label when
 * the tables are built, so the two cannot disagree). Everything is static,
 * read-only and shared; nothing here allocates.
 */
#ifndef LK_RECEIVERS_OTLP_SCHEMA_H
#define LK_RECEIVERS_OTLP_SCHEMA_H

#include <stdint.h>

#include "config/config.h"

/* What the validator checks for a field's bytes (its hot path switches on
 * this, so it stays one byte at the start of the field). */
enum lk_pb_kind {
    LK_PBK_NONE = 0,      /* not in the schema: structure only */
    LK_PBK_VARINT,        /* int32, int64, uint32, uint64, sint32, bool, enum */
    LK_PBK_FIXED32,       /* fixed32 */
    LK_PBK_FIXED64,       /* fixed64, sfixed64, double */
    LK_PBK_STRING,        /* valid UTF-8 */
    LK_PBK_BYTES,         /* anything; see LK_PBF_ID16 / LK_PBF_ID8 */
    LK_PBK_MESSAGE,       /* walked with |child| */
    LK_PBK_PACKED_VARINT, /* repeated varint scalar, packed or not */
    LK_PBK_PACKED_FIXED64, /* repeated fixed64 / double, packed or not */
};

/* The declared type, as written in the .proto. */
enum lk_pb_type {
    LK_PBT_NONE = 0,
    LK_PBT_STRING,
    LK_PBT_BYTES,
    LK_PBT_BOOL,
    LK_PBT_INT32,
    LK_PBT_INT64,
    LK_PBT_UINT32,
    LK_PBT_UINT64,
    LK_PBT_SINT32,
    LK_PBT_SINT64,
    LK_PBT_FIXED32,
    LK_PBT_FIXED64,
    LK_PBT_SFIXED64,
    LK_PBT_DOUBLE,
    LK_PBT_ENUM,
    LK_PBT_MESSAGE,
};

enum lk_pb_flag {
    /* Paths show the element index; numeric types are packed. */
    LK_PBF_REPEATED = 1u << 0,
    /* Bytes: a trace id, 16 long or empty; hex in JSON. */
    LK_PBF_ID16 = 1u << 1,
    /* Bytes: a span id, 8 long or empty; hex in JSON. */
    LK_PBF_ID8 = 1u << 2,
    /* Each element is one span, data point or log record. */
    LK_PBF_COUNT_ITEM = 1u << 3,
    /* Each element is one resource_spans, _metrics or _logs entry. */
    LK_PBF_COUNT_RESOURCE = 1u << 4,
    /* At most once per message. Protobuf merges a repeated singular message,
     * but protobuf-c 1.4 mis-merges two AnyValues that both leave the oneof
     * unset (it looks up field 0 and reads before its field table); no
     * encoder writes a singular field twice. Field numbers below 32 only. */
    LK_PBF_ONCE = 1u << 5,
};

/* Highest field number + 1 of any message of the schema (a test checks);
 * the JSON decoder sizes per-message arrays with it. */
#define LK_PB_MAX_FIELDS 20

struct lk_pb_msg;

struct lk_pb_enum_value {
    const char *name; /* e.g. "SPAN_KIND_SERVER" */
    int32_t number;
};

struct lk_pb_enum {
    const char *name; /* e.g. "Span.SpanKind" */
    const struct lk_pb_enum_value *values;
    uint32_t nvalues;
};

struct lk_pb_field {
    uint8_t kind;  /* enum lk_pb_kind */
    uint8_t flags; /* enum lk_pb_flag */
    uint8_t type;  /* enum lk_pb_type */
    /* 0 outside any oneof; else 1 + the index of the oneof's name in the
     * message's |oneofs|. A proto3 `optional` field is alone in a synthetic
     * oneof named "_<field>", as protoc describes it: both track presence. */
    uint8_t oneof;
    const struct lk_pb_msg *child;   /* LK_PBT_MESSAGE only */
    const char *name;                /* as in the .proto, e.g. "trace_id" */
    const char *json_name;           /* lowerCamelCase, e.g. "traceId" */
    const struct lk_pb_enum *enum_t; /* LK_PBT_ENUM only */
};

struct lk_pb_msg {
    const char *name;                 /* e.g. "Span.Event" */
    const struct lk_pb_field *fields; /* indexed by field number */
    uint32_t nfields;                 /* highest field number + 1 */
    uint32_t noneofs;
    const char *const *oneofs; /* names of the oneofs, |noneofs| of them */
};

/*
 * The request message of signal |sig|: ExportTraceServiceRequest,
 * ExportMetricsServiceRequest or ExportLogsServiceRequest. NULL for any other
 * value of |sig|.
 */
const struct lk_pb_msg *lk_otlp_schema_request(enum lk_signal sig);

#endif
