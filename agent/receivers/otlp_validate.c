/*
 * OTLP request validation: the schema as const tables, one generic walker.
 *
 * Each message of the schema is a table of fields indexed by field number
 * (holes are fields the schema does not know, skipped like unknown ones).
 * The walker keeps an explicit stack of the messages it is inside and never
 * recurses. The error path re-reads the input to name the failing field, so
 * the success path records nothing but the stack it needs anyway.
 */
#include "receivers/otlp_validate.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/utf8.h"

/* How a field's bytes are checked. */
enum pb_kind {
    PB_NONE = 0,       /* not in the schema: structure only */
    PB_VARINT,         /* int32, int64, uint32, uint64, sint32, bool, enum */
    PB_FIXED32,        /* fixed32 */
    PB_FIXED64,        /* fixed64, sfixed64, double */
    PB_STRING,         /* valid UTF-8 */
    PB_BYTES,          /* anything; see PB_ID16 / PB_ID8 */
    PB_MESSAGE,        /* walked with |child| */
    PB_PACKED_VARINT,  /* repeated varint scalar, packed or not */
    PB_PACKED_FIXED64, /* repeated fixed64 / double, packed or not */
};

enum pb_flag {
    PB_REPEATED = 1u << 0,       /* paths show the element index */
    PB_ID16 = 1u << 1,           /* bytes: 16 long or empty (trace id) */
    PB_ID8 = 1u << 2,            /* bytes: 8 long or empty (span id) */
    PB_COUNT_ITEM = 1u << 3,     /* each element is one span, point or record */
    PB_COUNT_RESOURCE = 1u << 4, /* each element is one resource_* entry */
    /* At most once per message. Protobuf merges a repeated singular message,
     * but protobuf-c 1.4 mis-merges two AnyValues that both leave the oneof
     * unset (it looks up field 0 and reads before its field table); no
     * encoder writes a singular field twice. Field numbers below 32 only. */
    PB_ONCE = 1u << 5,
};

enum {
    WT_VARINT = 0,
    WT_I64 = 1,
    WT_LEN = 2,
    WT_SGROUP = 3,
    WT_EGROUP = 4,
    WT_I32 = 5
};

/* Field numbers above this are invalid (protobuf's limit, 2^29 - 1). */
#define PB_MAX_FIELD 0x1fffffffu

struct pb_msg;

struct pb_field {
    uint8_t kind;               /* enum pb_kind */
    uint8_t flags;              /* enum pb_flag */
    const struct pb_msg *child; /* PB_MESSAGE only */
    const char *name;
};

struct pb_msg {
    const char *name;
    const struct pb_field *fields; /* indexed by field number */
    uint32_t nfields;              /* highest field number + 1 */
};

#define F(kind_, flags_, child_, name_)                                        \
    {                                                                          \
        .kind = (kind_), .flags = (flags_), .child = (child_), .name = (name_) \
    }
#define MSG(name_, fields_)                                                    \
    {                                                                          \
        .name = (name_), .fields = (fields_),                                  \
        .nfields = sizeof(fields_) / sizeof((fields_)[0])                      \
    }

/* Tentative definitions: the schema is recursive (AnyValue, KeyValue). */
static const struct pb_msg m_any_value, m_array_value, m_kvlist, m_key_value,
    m_scope, m_entity_ref, m_resource;
static const struct pb_msg m_trace_req, m_resource_spans, m_scope_spans, m_span,
    m_event, m_link, m_status;
static const struct pb_msg m_logs_req, m_resource_logs, m_scope_logs,
    m_log_record;
static const struct pb_msg m_metrics_req, m_resource_metrics, m_scope_metrics,
    m_metric, m_gauge, m_sum, m_histogram, m_exp_histogram, m_summary,
    m_number_dp, m_histogram_dp, m_exp_histogram_dp, m_buckets, m_summary_dp,
    m_quantile, m_exemplar;

/* --- opentelemetry.proto.common.v1 and resource.v1 */

static const struct pb_field any_value_fields[] = {
    [1] = F(PB_STRING, 0, NULL, "string_value"),
    [2] = F(PB_VARINT, 0, NULL, "bool_value"),
    [3] = F(PB_VARINT, 0, NULL, "int_value"),
    [4] = F(PB_FIXED64, 0, NULL, "double_value"),
    [5] = F(PB_MESSAGE, 0, &m_array_value, "array_value"),
    [6] = F(PB_MESSAGE, 0, &m_kvlist, "kvlist_value"),
    [7] = F(PB_BYTES, 0, NULL, "bytes_value"),
    [8] = F(PB_VARINT, 0, NULL, "string_value_strindex"),
};
static const struct pb_msg m_any_value = MSG("AnyValue", any_value_fields);

static const struct pb_field array_value_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED, &m_any_value, "values"),
};
static const struct pb_msg m_array_value =
    MSG("ArrayValue", array_value_fields);

static const struct pb_field kvlist_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "values"),
};
static const struct pb_msg m_kvlist = MSG("KeyValueList", kvlist_fields);

static const struct pb_field key_value_fields[] = {
    [1] = F(PB_STRING, 0, NULL, "key"),
    [2] = F(PB_MESSAGE, PB_ONCE, &m_any_value, "value"),
    [3] = F(PB_VARINT, 0, NULL, "key_strindex"),
};
static const struct pb_msg m_key_value = MSG("KeyValue", key_value_fields);

static const struct pb_field scope_fields[] = {
    [1] = F(PB_STRING, 0, NULL, "name"),
    [2] = F(PB_STRING, 0, NULL, "version"),
    [3] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [4] = F(PB_VARINT, 0, NULL, "dropped_attributes_count"),
};
static const struct pb_msg m_scope = MSG("InstrumentationScope", scope_fields);

static const struct pb_field entity_ref_fields[] = {
    [1] = F(PB_STRING, 0, NULL, "schema_url"),
    [2] = F(PB_STRING, 0, NULL, "type"),
    [3] = F(PB_STRING, PB_REPEATED, NULL, "id_keys"),
    [4] = F(PB_STRING, PB_REPEATED, NULL, "description_keys"),
};
static const struct pb_msg m_entity_ref = MSG("EntityRef", entity_ref_fields);

static const struct pb_field resource_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [2] = F(PB_VARINT, 0, NULL, "dropped_attributes_count"),
    [3] = F(PB_MESSAGE, PB_REPEATED, &m_entity_ref, "entity_refs"),
};
static const struct pb_msg m_resource = MSG("Resource", resource_fields);

/* --- opentelemetry.proto.trace.v1 */

static const struct pb_field trace_req_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_RESOURCE, &m_resource_spans,
            "resource_spans"),
};
static const struct pb_msg m_trace_req =
    MSG("ExportTraceServiceRequest", trace_req_fields);

static const struct pb_field resource_spans_fields[] = {
    [1] = F(PB_MESSAGE, 0, &m_resource, "resource"),
    [2] = F(PB_MESSAGE, PB_REPEATED, &m_scope_spans, "scope_spans"),
    [3] = F(PB_STRING, 0, NULL, "schema_url"),
};
static const struct pb_msg m_resource_spans =
    MSG("ResourceSpans", resource_spans_fields);

static const struct pb_field scope_spans_fields[] = {
    [1] = F(PB_MESSAGE, 0, &m_scope, "scope"),
    [2] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_ITEM, &m_span, "spans"),
    [3] = F(PB_STRING, 0, NULL, "schema_url"),
};
static const struct pb_msg m_scope_spans =
    MSG("ScopeSpans", scope_spans_fields);

static const struct pb_field span_fields[] = {
    [1] = F(PB_BYTES, PB_ID16, NULL, "trace_id"),
    [2] = F(PB_BYTES, PB_ID8, NULL, "span_id"),
    [3] = F(PB_STRING, 0, NULL, "trace_state"),
    [4] = F(PB_BYTES, PB_ID8, NULL, "parent_span_id"),
    [5] = F(PB_STRING, 0, NULL, "name"),
    [6] = F(PB_VARINT, 0, NULL, "kind"),
    [7] = F(PB_FIXED64, 0, NULL, "start_time_unix_nano"),
    [8] = F(PB_FIXED64, 0, NULL, "end_time_unix_nano"),
    [9] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [10] = F(PB_VARINT, 0, NULL, "dropped_attributes_count"),
    [11] = F(PB_MESSAGE, PB_REPEATED, &m_event, "events"),
    [12] = F(PB_VARINT, 0, NULL, "dropped_events_count"),
    [13] = F(PB_MESSAGE, PB_REPEATED, &m_link, "links"),
    [14] = F(PB_VARINT, 0, NULL, "dropped_links_count"),
    [15] = F(PB_MESSAGE, 0, &m_status, "status"),
    [16] = F(PB_FIXED32, 0, NULL, "flags"),
};
static const struct pb_msg m_span = MSG("Span", span_fields);

static const struct pb_field event_fields[] = {
    [1] = F(PB_FIXED64, 0, NULL, "time_unix_nano"),
    [2] = F(PB_STRING, 0, NULL, "name"),
    [3] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [4] = F(PB_VARINT, 0, NULL, "dropped_attributes_count"),
};
static const struct pb_msg m_event = MSG("Span.Event", event_fields);

static const struct pb_field link_fields[] = {
    [1] = F(PB_BYTES, PB_ID16, NULL, "trace_id"),
    [2] = F(PB_BYTES, PB_ID8, NULL, "span_id"),
    [3] = F(PB_STRING, 0, NULL, "trace_state"),
    [4] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [5] = F(PB_VARINT, 0, NULL, "dropped_attributes_count"),
    [6] = F(PB_FIXED32, 0, NULL, "flags"),
};
static const struct pb_msg m_link = MSG("Span.Link", link_fields);

static const struct pb_field status_fields[] = {
    [2] = F(PB_STRING, 0, NULL, "message"),
    [3] = F(PB_VARINT, 0, NULL, "code"),
};
static const struct pb_msg m_status = MSG("Status", status_fields);

/* --- opentelemetry.proto.logs.v1 */

static const struct pb_field logs_req_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_RESOURCE, &m_resource_logs,
            "resource_logs"),
};
static const struct pb_msg m_logs_req =
    MSG("ExportLogsServiceRequest", logs_req_fields);

static const struct pb_field resource_logs_fields[] = {
    [1] = F(PB_MESSAGE, 0, &m_resource, "resource"),
    [2] = F(PB_MESSAGE, PB_REPEATED, &m_scope_logs, "scope_logs"),
    [3] = F(PB_STRING, 0, NULL, "schema_url"),
};
static const struct pb_msg m_resource_logs =
    MSG("ResourceLogs", resource_logs_fields);

static const struct pb_field scope_logs_fields[] = {
    [1] = F(PB_MESSAGE, 0, &m_scope, "scope"),
    [2] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_ITEM, &m_log_record,
            "log_records"),
    [3] = F(PB_STRING, 0, NULL, "schema_url"),
};
static const struct pb_msg m_scope_logs = MSG("ScopeLogs", scope_logs_fields);

static const struct pb_field log_record_fields[] = {
    [1] = F(PB_FIXED64, 0, NULL, "time_unix_nano"),
    [2] = F(PB_VARINT, 0, NULL, "severity_number"),
    [3] = F(PB_STRING, 0, NULL, "severity_text"),
    [5] = F(PB_MESSAGE, PB_ONCE, &m_any_value, "body"),
    [6] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [7] = F(PB_VARINT, 0, NULL, "dropped_attributes_count"),
    [8] = F(PB_FIXED32, 0, NULL, "flags"),
    [9] = F(PB_BYTES, PB_ID16, NULL, "trace_id"),
    [10] = F(PB_BYTES, PB_ID8, NULL, "span_id"),
    [11] = F(PB_FIXED64, 0, NULL, "observed_time_unix_nano"),
    [12] = F(PB_STRING, 0, NULL, "event_name"),
};
static const struct pb_msg m_log_record = MSG("LogRecord", log_record_fields);

/* --- opentelemetry.proto.metrics.v1 */

static const struct pb_field metrics_req_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_RESOURCE, &m_resource_metrics,
            "resource_metrics"),
};
static const struct pb_msg m_metrics_req =
    MSG("ExportMetricsServiceRequest", metrics_req_fields);

static const struct pb_field resource_metrics_fields[] = {
    [1] = F(PB_MESSAGE, 0, &m_resource, "resource"),
    [2] = F(PB_MESSAGE, PB_REPEATED, &m_scope_metrics, "scope_metrics"),
    [3] = F(PB_STRING, 0, NULL, "schema_url"),
};
static const struct pb_msg m_resource_metrics =
    MSG("ResourceMetrics", resource_metrics_fields);

static const struct pb_field scope_metrics_fields[] = {
    [1] = F(PB_MESSAGE, 0, &m_scope, "scope"),
    [2] = F(PB_MESSAGE, PB_REPEATED, &m_metric, "metrics"),
    [3] = F(PB_STRING, 0, NULL, "schema_url"),
};
static const struct pb_msg m_scope_metrics =
    MSG("ScopeMetrics", scope_metrics_fields);

static const struct pb_field metric_fields[] = {
    [1] = F(PB_STRING, 0, NULL, "name"),
    [2] = F(PB_STRING, 0, NULL, "description"),
    [3] = F(PB_STRING, 0, NULL, "unit"),
    [5] = F(PB_MESSAGE, 0, &m_gauge, "gauge"),
    [7] = F(PB_MESSAGE, 0, &m_sum, "sum"),
    [9] = F(PB_MESSAGE, 0, &m_histogram, "histogram"),
    [10] = F(PB_MESSAGE, 0, &m_exp_histogram, "exponential_histogram"),
    [11] = F(PB_MESSAGE, 0, &m_summary, "summary"),
    [12] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "metadata"),
};
static const struct pb_msg m_metric = MSG("Metric", metric_fields);

static const struct pb_field gauge_fields[] = {
    [1] =
        F(PB_MESSAGE, PB_REPEATED | PB_COUNT_ITEM, &m_number_dp, "data_points"),
};
static const struct pb_msg m_gauge = MSG("Gauge", gauge_fields);

static const struct pb_field sum_fields[] = {
    [1] =
        F(PB_MESSAGE, PB_REPEATED | PB_COUNT_ITEM, &m_number_dp, "data_points"),
    [2] = F(PB_VARINT, 0, NULL, "aggregation_temporality"),
    [3] = F(PB_VARINT, 0, NULL, "is_monotonic"),
};
static const struct pb_msg m_sum = MSG("Sum", sum_fields);

static const struct pb_field histogram_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_ITEM, &m_histogram_dp,
            "data_points"),
    [2] = F(PB_VARINT, 0, NULL, "aggregation_temporality"),
};
static const struct pb_msg m_histogram = MSG("Histogram", histogram_fields);

static const struct pb_field exp_histogram_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_ITEM, &m_exp_histogram_dp,
            "data_points"),
    [2] = F(PB_VARINT, 0, NULL, "aggregation_temporality"),
};
static const struct pb_msg m_exp_histogram =
    MSG("ExponentialHistogram", exp_histogram_fields);

static const struct pb_field summary_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED | PB_COUNT_ITEM, &m_summary_dp,
            "data_points"),
};
static const struct pb_msg m_summary = MSG("Summary", summary_fields);

static const struct pb_field number_dp_fields[] = {
    [2] = F(PB_FIXED64, 0, NULL, "start_time_unix_nano"),
    [3] = F(PB_FIXED64, 0, NULL, "time_unix_nano"),
    [4] = F(PB_FIXED64, 0, NULL, "as_double"),
    [5] = F(PB_MESSAGE, PB_REPEATED, &m_exemplar, "exemplars"),
    [6] = F(PB_FIXED64, 0, NULL, "as_int"),
    [7] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [8] = F(PB_VARINT, 0, NULL, "flags"),
};
static const struct pb_msg m_number_dp =
    MSG("NumberDataPoint", number_dp_fields);

static const struct pb_field histogram_dp_fields[] = {
    [2] = F(PB_FIXED64, 0, NULL, "start_time_unix_nano"),
    [3] = F(PB_FIXED64, 0, NULL, "time_unix_nano"),
    [4] = F(PB_FIXED64, 0, NULL, "count"),
    [5] = F(PB_FIXED64, 0, NULL, "sum"),
    [6] = F(PB_PACKED_FIXED64, PB_REPEATED, NULL, "bucket_counts"),
    [7] = F(PB_PACKED_FIXED64, PB_REPEATED, NULL, "explicit_bounds"),
    [8] = F(PB_MESSAGE, PB_REPEATED, &m_exemplar, "exemplars"),
    [9] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [10] = F(PB_VARINT, 0, NULL, "flags"),
    [11] = F(PB_FIXED64, 0, NULL, "min"),
    [12] = F(PB_FIXED64, 0, NULL, "max"),
};
static const struct pb_msg m_histogram_dp =
    MSG("HistogramDataPoint", histogram_dp_fields);

static const struct pb_field exp_histogram_dp_fields[] = {
    [1] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [2] = F(PB_FIXED64, 0, NULL, "start_time_unix_nano"),
    [3] = F(PB_FIXED64, 0, NULL, "time_unix_nano"),
    [4] = F(PB_FIXED64, 0, NULL, "count"),
    [5] = F(PB_FIXED64, 0, NULL, "sum"),
    [6] = F(PB_VARINT, 0, NULL, "scale"),
    [7] = F(PB_FIXED64, 0, NULL, "zero_count"),
    [8] = F(PB_MESSAGE, 0, &m_buckets, "positive"),
    [9] = F(PB_MESSAGE, 0, &m_buckets, "negative"),
    [10] = F(PB_VARINT, 0, NULL, "flags"),
    [11] = F(PB_MESSAGE, PB_REPEATED, &m_exemplar, "exemplars"),
    [12] = F(PB_FIXED64, 0, NULL, "min"),
    [13] = F(PB_FIXED64, 0, NULL, "max"),
    [14] = F(PB_FIXED64, 0, NULL, "zero_threshold"),
};
static const struct pb_msg m_exp_histogram_dp =
    MSG("ExponentialHistogramDataPoint", exp_histogram_dp_fields);

static const struct pb_field buckets_fields[] = {
    [1] = F(PB_VARINT, 0, NULL, "offset"),
    [2] = F(PB_PACKED_VARINT, PB_REPEATED, NULL, "bucket_counts"),
};
static const struct pb_msg m_buckets =
    MSG("ExponentialHistogramDataPoint.Buckets", buckets_fields);

static const struct pb_field summary_dp_fields[] = {
    [2] = F(PB_FIXED64, 0, NULL, "start_time_unix_nano"),
    [3] = F(PB_FIXED64, 0, NULL, "time_unix_nano"),
    [4] = F(PB_FIXED64, 0, NULL, "count"),
    [5] = F(PB_FIXED64, 0, NULL, "sum"),
    [6] = F(PB_MESSAGE, PB_REPEATED, &m_quantile, "quantile_values"),
    [7] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "attributes"),
    [8] = F(PB_VARINT, 0, NULL, "flags"),
};
static const struct pb_msg m_summary_dp =
    MSG("SummaryDataPoint", summary_dp_fields);

static const struct pb_field quantile_fields[] = {
    [1] = F(PB_FIXED64, 0, NULL, "quantile"),
    [2] = F(PB_FIXED64, 0, NULL, "value"),
};
static const struct pb_msg m_quantile =
    MSG("SummaryDataPoint.ValueAtQuantile", quantile_fields);

static const struct pb_field exemplar_fields[] = {
    [2] = F(PB_FIXED64, 0, NULL, "time_unix_nano"),
    [3] = F(PB_FIXED64, 0, NULL, "as_double"),
    [4] = F(PB_BYTES, PB_ID8, NULL, "span_id"),
    [5] = F(PB_BYTES, PB_ID16, NULL, "trace_id"),
    [6] = F(PB_FIXED64, 0, NULL, "as_int"),
    [7] = F(PB_MESSAGE, PB_REPEATED, &m_key_value, "filtered_attributes"),
};
static const struct pb_msg m_exemplar = MSG("Exemplar", exemplar_fields);

static const struct pb_field unknown_field = F(PB_NONE, 0, NULL, NULL);

#undef F
#undef MSG

/* --- wire primitives. Each returns the byte after what it read, or NULL. */

/* A varint of at most 10 bytes whose value fits in 64 bits. */
static inline const uint8_t *skip_varint(const uint8_t *p, const uint8_t *end)
{
    size_t avail = (size_t)(end - p);
    size_t max = avail < 10 ? avail : 10;

    for (size_t i = 0; i < max; i++) {
        if (p[i] < 0x80) {
            /* The 10th byte carries bit 63 only. */
            if (i == 9 && p[i] > 1)
                return NULL;
            return p + i + 1;
        }
    }
    return NULL;
}

/* A varint of at most 5 bytes (tags and length prefixes: protobuf-c reads no
 * more, and no encoder writes more). */
static inline const uint8_t *read_varint5(const uint8_t *p, const uint8_t *end,
                                          uint64_t *v)
{
    size_t avail = (size_t)(end - p);
    size_t max = avail < 5 ? avail : 5;
    uint64_t x = 0;

    for (size_t i = 0; i < max; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (p[i] < 0x80) {
            *v = x;
            return p + i + 1;
        }
    }
    return NULL;
}

/* Short ASCII strings (most keys and values) without a call. */
static inline bool is_ascii_short(const uint8_t *p, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;

    if (n > 32)
        return false;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= p[i];
    return (acc & 0x8080808080808080ull) == 0;
}

/* Why a varint of at most |maxlen| bytes at |p| failed to read. */
static const char *varint_problem(const uint8_t *p, const uint8_t *end,
                                  size_t maxlen)
{
    size_t avail = (size_t)(end - p);

    for (size_t i = 0; i < maxlen; i++) {
        if (i == avail)
            return avail == 0 ? "missing" : "truncated";
        if (p[i] < 0x80)
            return maxlen == 10 ? "overflows 64 bits" : "out of range";
    }
    return maxlen == 10 ? "longer than 10 bytes" : "longer than 5 bytes";
}

/* Skips the value of a field with wire type |wt| (0, 1, 2 or 5) whose tag
 * ends at |p|; the error path uses it on bytes already validated. */
static const uint8_t *skip_value(const uint8_t *p, const uint8_t *end,
                                 unsigned wt)
{
    uint64_t len;

    switch (wt) {
    case WT_VARINT:
        return skip_varint(p, end);
    case WT_I64:
        return end - p >= 8 ? p + 8 : NULL;
    case WT_I32:
        return end - p >= 4 ? p + 4 : NULL;
    case WT_LEN:
        p = read_varint5(p, end, &len);
        if (p == NULL || len > (uint64_t)(end - p))
            return NULL;
        return p + len;
    default:
        return NULL;
    }
}

/* --- error reporting (cold) */

struct frame {
    const struct pb_msg *m;
    const uint8_t *start; /* first byte of the message body */
    const uint8_t *end;   /* one past its last byte */
    const uint8_t *tag;   /* tag of the child field being walked */
    uint32_t once;        /* PB_ONCE fields seen, bit per field number */
};

struct walk {
    struct frame st[LK_OTLP_MAX_DEPTH];
    const uint8_t *base; /* start of the request, for offsets */
    char *why;
    size_t whylen;
};

struct out {
    char *buf;
    size_t cap; /* > 0 */
    size_t len; /* < cap */
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (o->len + 1 >= o->cap)
        return;
    va_start(ap, fmt);
    r = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    o->len += (size_t)r;
    if (o->len >= o->cap)
        o->len = o->cap - 1;
}

static const struct pb_field *field_of(const struct pb_msg *m, uint32_t num)
{
    return num < m->nfields ? &m->fields[num] : &unknown_field;
}

/* Elements of field |num| before the one whose tag is at |tag|, counted by
 * re-reading the message body from |start| (all of it already validated). */
static size_t index_of(const uint8_t *start, const uint8_t *tag, uint32_t num)
{
    const uint8_t *p = start;
    size_t n = 0;
    uint64_t key;

    while (p < tag) {
        p = read_varint5(p, tag, &key);
        if (p == NULL)
            break;
        if ((key >> 3) == num)
            n++;
        p = skip_value(p, tag, (unsigned)(key & 7));
        if (p == NULL)
            break;
    }
    return n;
}

static void put_step(struct out *o, const struct frame *f, const uint8_t *tag,
                     uint32_t num)
{
    const struct pb_field *fd = field_of(f->m, num);

    if (o->len > 0)
        put(o, ".");
    if (fd->kind == PB_NONE)
        put(o, "(field %u)", (unsigned)num);
    else if (fd->flags & PB_REPEATED)
        put(o, "%s[%zu]", fd->name, index_of(f->start, tag, num));
    else
        put(o, "%s", fd->name);
}

/* Steps of a path shown before and after an elision. */
#define PATH_HEAD 8
#define PATH_TAIL 4

/* Writes "path: detail" for a failure in the message at depth |d|, in the
 * field with number |num| whose tag is at |tag| (NULL: in the message itself,
 * outside any one field). Returns |rc|. */
static int fail(struct walk *w, int rc, unsigned d, const uint8_t *tag,
                uint32_t num, const char *fmt, ...)
    __attribute__((format(printf, 6, 7), cold, noinline));
static int fail(struct walk *w, int rc, unsigned d, const uint8_t *tag,
                uint32_t num, const char *fmt, ...)
{
    struct out o = {w->why, w->whylen, 0};
    va_list ap;

    if (w->whylen == 0)
        return rc;
    w->why[0] = '\0';
    for (unsigned i = 0; i < d; i++) {
        uint64_t key = 0;
        /* Deep paths keep their first and last steps. */
        if (i == PATH_HEAD && d > PATH_HEAD + PATH_TAIL + 1) {
            put(&o, ".(%u more)", d - PATH_HEAD - PATH_TAIL);
            i = d - PATH_TAIL - 1;
            continue;
        }
        read_varint5(w->st[i].tag, w->st[i].end, &key);
        put_step(&o, &w->st[i], w->st[i].tag, (uint32_t)(key >> 3));
    }
    if (tag != NULL)
        put_step(&o, &w->st[d], tag, num);
    if (o.len == 0)
        put(&o, "%s", w->st[0].m->name);
    put(&o, ": ");
    if (o.len + 1 < o.cap) {
        va_start(ap, fmt);
        vsnprintf(o.buf + o.len, o.cap - o.len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static const char *wire_type_name(unsigned wt)
{
    static const char *const names[8] = {
        "varint",    "64-bit", "length-delimited", "start group",
        "end group", "32-bit", "invalid",          "invalid",
    };
    return names[wt & 7];
}

static int fail_wire_type(struct walk *w, unsigned d, const uint8_t *tag,
                          uint32_t num, const struct pb_field *f, unsigned wt)
    __attribute__((cold, noinline));
static int fail_wire_type(struct walk *w, unsigned d, const uint8_t *tag,
                          uint32_t num, const struct pb_field *f, unsigned wt)
{
    size_t off = (size_t)(tag - w->base);
    unsigned want;

    if (wt == WT_SGROUP || wt == WT_EGROUP)
        return fail(w, LK_EPROTO, d, tag, num,
                    "wire type %u (%s) is not supported, at byte %zu", wt,
                    wire_type_name(wt), off);
    if (wt > WT_I32)
        return fail(w, LK_EPROTO, d, tag, num,
                    "invalid wire type %u at byte %zu", wt, off);
    switch (f->kind) {
    case PB_VARINT:
        want = WT_VARINT;
        break;
    case PB_FIXED32:
        want = WT_I32;
        break;
    case PB_FIXED64:
        want = WT_I64;
        break;
    case PB_PACKED_VARINT:
        return fail(w, LK_EPROTO, d, tag, num,
                    "wire type %u (%s), want 0 (varint) or 2 (packed), at "
                    "byte %zu",
                    wt, wire_type_name(wt), off);
    case PB_PACKED_FIXED64:
        return fail(w, LK_EPROTO, d, tag, num,
                    "wire type %u (%s), want 1 (64-bit) or 2 (packed), at "
                    "byte %zu",
                    wt, wire_type_name(wt), off);
    default:
        want = WT_LEN;
        break;
    }
    return fail(w, LK_EPROTO, d, tag, num,
                "wire type %u (%s), want %u (%s), at byte %zu", wt,
                wire_type_name(wt), want, wire_type_name(want), off);
}

static int fail_utf8(struct walk *w, unsigned d, const uint8_t *tag,
                     uint32_t num, const uint8_t *s, size_t len)
    __attribute__((cold, noinline));
static int fail_utf8(struct walk *w, unsigned d, const uint8_t *tag,
                     uint32_t num, const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t k = lk_utf8_seq_len(s + i, len - i);
        if (k == 0)
            break;
        i += k;
    }
    return fail(w, LK_EUTF8, d, tag, num, "invalid UTF-8 at byte %zu of %zu", i,
                len);
}

/* --- the walker */

/* Reads a length prefix at |p| into |len| and checks it against |end|;
 * jumps to the failure labels of walk(). */
#define READ_LEN()                                                             \
    do {                                                                       \
        if (p < end && *p < 0x80) {                                            \
            len = *p++;                                                        \
        } else {                                                               \
            uint64_t v_;                                                       \
            q = read_varint5(p, end, &v_);                                     \
            if (q == NULL)                                                     \
                goto bad_length;                                               \
            p = q;                                                             \
            if (v_ > (uint64_t)(end - p)) {                                    \
                len = v_;                                                      \
                goto length_past_end;                                          \
            }                                                                  \
            len = (size_t)v_;                                                  \
        }                                                                      \
        if (len > (size_t)(end - p))                                           \
            goto length_past_end;                                              \
    } while (0)

#define SKIP_VARINT()                                                          \
    do {                                                                       \
        if (p < end && *p < 0x80) {                                            \
            p++;                                                               \
        } else {                                                               \
            q = skip_varint(p, end);                                           \
            if (q == NULL)                                                     \
                goto bad_varint;                                               \
            p = q;                                                             \
        }                                                                      \
    } while (0)

#define SKIP_FIXED(k)                                                          \
    do {                                                                       \
        if ((size_t)(end - p) < (k))                                           \
            goto truncated_fixed;                                              \
        p += (k);                                                              \
    } while (0)

static int walk(struct walk *w, const struct pb_msg *root, const uint8_t *p,
                size_t n, struct lk_otlp_counts *counts)
{
    const uint8_t *end = p + n;
    const struct pb_msg *m = root;
    const struct pb_field *f = &unknown_field;
    const uint8_t *tag = NULL, *q;
    uint64_t items = 0, resources = 0, key = 0;
    uint32_t num = 0, once = 0;
    unsigned d = 0, wt = 0;
    size_t len = 0;

    w->st[0].m = root;
    w->st[0].start = p;
    w->st[0].end = end;
    w->st[0].tag = NULL;

    for (;;) {
        while (p < end) {
            tag = p;
            if (*p < 0x80) {
                key = *p++;
            } else {
                q = read_varint5(p, end, &key);
                if (q == NULL)
                    goto bad_tag;
                p = q;
                if ((key >> 3) > PB_MAX_FIELD)
                    goto bad_field_number;
            }
            num = (uint32_t)(key >> 3);
            wt = (unsigned)(key & 7);
            if (num == 0)
                goto bad_field_number;
            f = num < m->nfields ? &m->fields[num] : &unknown_field;

            switch (f->kind) {
            case PB_VARINT:
                if (wt != WT_VARINT)
                    goto bad_wire_type;
                SKIP_VARINT();
                break;
            case PB_FIXED64:
                if (wt != WT_I64)
                    goto bad_wire_type;
                SKIP_FIXED(8);
                break;
            case PB_FIXED32:
                if (wt != WT_I32)
                    goto bad_wire_type;
                SKIP_FIXED(4);
                break;
            case PB_STRING:
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (!is_ascii_short(p, len) && !lk_utf8_is_valid(p, len))
                    return fail_utf8(w, d, tag, num, p, len);
                p += len;
                break;
            case PB_BYTES:
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (len != 0 && (f->flags & (PB_ID16 | PB_ID8))) {
                    if ((f->flags & PB_ID16) && len != 16)
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "length %zu, want 16 or 0", len);
                    if ((f->flags & PB_ID8) && len != 8)
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "length %zu, want 8 or 0", len);
                }
                p += len;
                break;
            case PB_MESSAGE:
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (f->flags & PB_ONCE) {
                    if (once & (1u << num))
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "singular field given twice, at byte %zu",
                                    (size_t)(tag - w->base));
                    once |= 1u << num;
                }
                if (d + 1 >= LK_OTLP_MAX_DEPTH)
                    return fail(w, LK_EPROTO, d, tag, num,
                                "messages nested deeper than %d, at byte %zu",
                                LK_OTLP_MAX_DEPTH, (size_t)(tag - w->base));
                items += (f->flags & PB_COUNT_ITEM) != 0;
                resources += (f->flags & PB_COUNT_RESOURCE) != 0;
                w->st[d].tag = tag;
                w->st[d].once = once;
                once = 0;
                d++;
                m = f->child;
                end = p + len;
                w->st[d].m = m;
                w->st[d].start = p;
                w->st[d].end = end;
                break;
            case PB_PACKED_FIXED64:
                if (wt == WT_I64) {
                    SKIP_FIXED(8);
                    break;
                }
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                if (len % 8 != 0)
                    return fail(w, LK_EPROTO, d, tag, num,
                                "packed length %zu is not a multiple of 8",
                                len);
                p += len;
                break;
            case PB_PACKED_VARINT:
                if (wt == WT_VARINT) {
                    SKIP_VARINT();
                    break;
                }
                if (wt != WT_LEN)
                    goto bad_wire_type;
                READ_LEN();
                for (const uint8_t *pe = p + len; p < pe; p = q) {
                    q = skip_varint(p, pe);
                    if (q == NULL)
                        return fail(w, LK_EPROTO, d, tag, num,
                                    "packed varint %s, at byte %zu",
                                    varint_problem(p, pe, 10),
                                    (size_t)(p - w->base));
                }
                break;
            default: /* PB_NONE: not in the schema */
                switch (wt) {
                case WT_VARINT:
                    SKIP_VARINT();
                    break;
                case WT_I64:
                    SKIP_FIXED(8);
                    break;
                case WT_I32:
                    SKIP_FIXED(4);
                    break;
                case WT_LEN:
                    READ_LEN();
                    p += len;
                    break;
                default:
                    goto bad_wire_type;
                }
                break;
            }
        }
        /* Every read above is bounded by |end|, so here p == end. */
        if (d == 0)
            break;
        d--;
        m = w->st[d].m;
        end = w->st[d].end;
        once = w->st[d].once;
    }
    counts->items = items;
    counts->resources = resources;
    return 0;

bad_tag:
    return fail(w, LK_EPROTO, d, NULL, 0, "tag varint %s, at byte %zu",
                varint_problem(tag, end, 5), (size_t)(tag - w->base));
bad_field_number:
    return fail(w, LK_EPROTO, d, NULL, 0,
                "invalid field number %llu, at byte %zu",
                (unsigned long long)(key >> 3), (size_t)(tag - w->base));
bad_wire_type:
    return fail_wire_type(w, d, tag, num, f, wt);
bad_varint:
    return fail(w, LK_EPROTO, d, tag, num, "varint %s, at byte %zu",
                varint_problem(p, end, 10), (size_t)(p - w->base));
truncated_fixed:
    return fail(w, LK_EPROTO, d, tag, num,
                "%u-byte value truncated: %zu bytes left, at byte %zu",
                wt == WT_I64 ? 8u : 4u, (size_t)(end - p),
                (size_t)(p - w->base));
bad_length:
    return fail(w, LK_EPROTO, d, tag, num, "length prefix %s, at byte %zu",
                varint_problem(p, end, 5), (size_t)(p - w->base));
length_past_end:
    return fail(w, LK_EPROTO, d, tag, num,
                "length %zu exceeds the %zu bytes left in the enclosing "
                "message, at byte %zu",
                len, (size_t)(end - p), (size_t)(tag - w->base));
}

int lk_otlp_validate(enum lk_signal sig, const uint8_t *p, size_t n,
                     struct lk_otlp_counts *counts, char *why, size_t whylen)
{
    const struct pb_msg *root;
    struct walk w;

    switch (sig) {
    case LK_SIGNAL_TRACES:
        root = &m_trace_req;
        break;
    case LK_SIGNAL_METRICS:
        root = &m_metrics_req;
        break;
    case LK_SIGNAL_LOGS:
        root = &m_logs_req;
        break;
    default:
        root = NULL;
        break;
    }
    if (why == NULL)
        whylen = 0;
    if (whylen > 0)
        why[0] = '\0';
    if (root == NULL || (p == NULL && n > 0)) {
        if (whylen > 0)
            snprintf(why, whylen, "invalid argument");
        return LK_EINVAL;
    }
    counts->items = 0;
    counts->resources = 0;
    if (n == 0)
        return 0;
    w.base = p;
    w.why = why;
    w.whylen = whylen;
    return walk(&w, root, p, n, counts);
}
