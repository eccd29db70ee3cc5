/*
 * The OTLP v1 schema (proto/opentelemetry/proto/...), one table per message.
 *
 * A row states the field's number, declared type, label and names; the
 * validator's wire kind is computed from the type and label by KIND_OF, so a
 * row cannot say "double" to the JSON decoder and "varint" to the validator.
 * A unit test compares every table with the descriptors protobuf-c generates
 * from proto/ (numbers, names, types, labels, oneofs) and every JSON name
 * with the lowerCamelCase of its .proto name.
 */
#include "receivers/otlp_schema.h"

#include <stddef.h>

/* The validator's wire kind of a field of type |t| with flags |fl|: numeric
 * repeated fields are packed (proto3), and a parser must accept them packed
 * or not. */
#define KIND_OF(t, fl)                                                         \
    ((t) == LK_PBT_STRING    ? LK_PBK_STRING                                   \
     : (t) == LK_PBT_BYTES   ? LK_PBK_BYTES                                    \
     : (t) == LK_PBT_MESSAGE ? LK_PBK_MESSAGE                                  \
     : (t) == LK_PBT_FIXED32 ? LK_PBK_FIXED32                                  \
     : ((t) == LK_PBT_FIXED64 || (t) == LK_PBT_SFIXED64 ||                     \
        (t) == LK_PBT_DOUBLE)                                                  \
         ? ((LK_PBF_REPEATED & (fl)) ? LK_PBK_PACKED_FIXED64 : LK_PBK_FIXED64) \
         : ((LK_PBF_REPEATED & (fl)) ? LK_PBK_PACKED_VARINT : LK_PBK_VARINT))

#define ROW(t, fl, oo, ch, en, name_, json_)                                   \
    {                                                                          \
        .kind = KIND_OF(t, fl), .flags = (fl), .type = (t), .oneof = (oo),     \
        .child = (ch), .name = (name_), .json_name = (json_), .enum_t = (en)   \
    }

/* Rows, by field number. */
#define SCALAR(n, T, name_, json_)                                             \
    [n] = ROW(LK_PBT_##T, 0, 0, NULL, NULL, name_, json_)
#define LIST(n, T, name_, json_)                                               \
    [n] = ROW(LK_PBT_##T, LK_PBF_REPEATED, 0, NULL, NULL, name_, json_)
#define ID(n, fl, name_, json_)                                                \
    [n] = ROW(LK_PBT_BYTES, (fl), 0, NULL, NULL, name_, json_)
#define ENUM(n, en, name_, json_)                                              \
    [n] = ROW(LK_PBT_ENUM, 0, 0, NULL, (en), name_, json_)
#define MESSAGE(n, ch, fl, name_, json_)                                       \
    [n] = ROW(LK_PBT_MESSAGE, (fl), 0, (ch), NULL, name_, json_)
#define MESSAGES(n, ch, fl, name_, json_)                                      \
    [n] = ROW(LK_PBT_MESSAGE, LK_PBF_REPEATED | (fl), 0, (ch), NULL, name_,    \
              json_)
/* A member of the message's oneof number |oo| (1-based). */
#define ONEOF(n, oo, T, ch, name_, json_)                                      \
    [n] = ROW(LK_PBT_##T, 0, (oo), (ch), NULL, name_, json_)

#define MSG(name_, fields_)                                                    \
    {                                                                          \
        .name = (name_), .fields = (fields_),                                  \
        .nfields = sizeof(fields_) / sizeof((fields_)[0]), .noneofs = 0,       \
        .oneofs = NULL                                                         \
    }
#define MSG_ONEOFS(name_, fields_, oneofs_)                                    \
    {                                                                          \
        .name = (name_), .fields = (fields_),                                  \
        .nfields = sizeof(fields_) / sizeof((fields_)[0]),                     \
        .noneofs = sizeof(oneofs_) / sizeof((oneofs_)[0]), .oneofs = (oneofs_) \
    }
#define ENUM_TYPE(name_, values_)                                              \
    {                                                                          \
        .name = (name_), .values = (values_),                                  \
        .nvalues = sizeof(values_) / sizeof((values_)[0])                      \
    }

/* Tentative definitions: the schema is recursive (AnyValue, KeyValue). */
static const struct lk_pb_msg m_any_value, m_array_value, m_kvlist, m_key_value,
    m_scope, m_entity_ref, m_resource;
static const struct lk_pb_msg m_trace_req, m_resource_spans, m_scope_spans,
    m_span, m_event, m_link, m_status;
static const struct lk_pb_msg m_logs_req, m_resource_logs, m_scope_logs,
    m_log_record;
static const struct lk_pb_msg m_metrics_req, m_resource_metrics,
    m_scope_metrics, m_metric, m_gauge, m_sum, m_histogram, m_exp_histogram,
    m_summary, m_number_dp, m_histogram_dp, m_exp_histogram_dp, m_buckets,
    m_summary_dp, m_quantile, m_exemplar;

/* --- enums */

static const struct lk_pb_enum_value span_kind_values[] = {
    {"SPAN_KIND_UNSPECIFIED", 0}, {"SPAN_KIND_INTERNAL", 1},
    {"SPAN_KIND_SERVER", 2},      {"SPAN_KIND_CLIENT", 3},
    {"SPAN_KIND_PRODUCER", 4},    {"SPAN_KIND_CONSUMER", 5},
};
static const struct lk_pb_enum e_span_kind =
    ENUM_TYPE("Span.SpanKind", span_kind_values);

static const struct lk_pb_enum_value status_code_values[] = {
    {"STATUS_CODE_UNSET", 0},
    {"STATUS_CODE_OK", 1},
    {"STATUS_CODE_ERROR", 2},
};
static const struct lk_pb_enum e_status_code =
    ENUM_TYPE("Status.StatusCode", status_code_values);

static const struct lk_pb_enum_value severity_values[] = {
    {"SEVERITY_NUMBER_UNSPECIFIED", 0}, {"SEVERITY_NUMBER_TRACE", 1},
    {"SEVERITY_NUMBER_TRACE2", 2},      {"SEVERITY_NUMBER_TRACE3", 3},
    {"SEVERITY_NUMBER_TRACE4", 4},      {"SEVERITY_NUMBER_DEBUG", 5},
    {"SEVERITY_NUMBER_DEBUG2", 6},      {"SEVERITY_NUMBER_DEBUG3", 7},
    {"SEVERITY_NUMBER_DEBUG4", 8},      {"SEVERITY_NUMBER_INFO", 9},
    {"SEVERITY_NUMBER_INFO2", 10},      {"SEVERITY_NUMBER_INFO3", 11},
    {"SEVERITY_NUMBER_INFO4", 12},      {"SEVERITY_NUMBER_WARN", 13},
    {"SEVERITY_NUMBER_WARN2", 14},      {"SEVERITY_NUMBER_WARN3", 15},
    {"SEVERITY_NUMBER_WARN4", 16},      {"SEVERITY_NUMBER_ERROR", 17},
    {"SEVERITY_NUMBER_ERROR2", 18},     {"SEVERITY_NUMBER_ERROR3", 19},
    {"SEVERITY_NUMBER_ERROR4", 20},     {"SEVERITY_NUMBER_FATAL", 21},
    {"SEVERITY_NUMBER_FATAL2", 22},     {"SEVERITY_NUMBER_FATAL3", 23},
    {"SEVERITY_NUMBER_FATAL4", 24},
};
static const struct lk_pb_enum e_severity =
    ENUM_TYPE("SeverityNumber", severity_values);

static const struct lk_pb_enum_value temporality_values[] = {
    {"AGGREGATION_TEMPORALITY_UNSPECIFIED", 0},
    {"AGGREGATION_TEMPORALITY_DELTA", 1},
    {"AGGREGATION_TEMPORALITY_CUMULATIVE", 2},
};
static const struct lk_pb_enum e_temporality =
    ENUM_TYPE("AggregationTemporality", temporality_values);

/* Oneof names shared by several messages. */
static const char *const oneof_value[] = {"value"};
static const char *const oneof_optional_sum_min_max[] = {"_sum", "_min",
                                                         "_max"};

/* --- opentelemetry.proto.common.v1 and resource.v1 */

static const struct lk_pb_field any_value_fields[] = {
    ONEOF(1, 1, STRING, NULL, "string_value", "stringValue"),
    ONEOF(2, 1, BOOL, NULL, "bool_value", "boolValue"),
    ONEOF(3, 1, INT64, NULL, "int_value", "intValue"),
    ONEOF(4, 1, DOUBLE, NULL, "double_value", "doubleValue"),
    ONEOF(5, 1, MESSAGE, &m_array_value, "array_value", "arrayValue"),
    ONEOF(6, 1, MESSAGE, &m_kvlist, "kvlist_value", "kvlistValue"),
    ONEOF(7, 1, BYTES, NULL, "bytes_value", "bytesValue"),
    ONEOF(8, 1, INT32, NULL, "string_value_strindex", "stringValueStrindex"),
};
static const struct lk_pb_msg m_any_value =
    MSG_ONEOFS("AnyValue", any_value_fields, oneof_value);

static const struct lk_pb_field array_value_fields[] = {
    MESSAGES(1, &m_any_value, 0, "values", "values"),
};
static const struct lk_pb_msg m_array_value =
    MSG("ArrayValue", array_value_fields);

static const struct lk_pb_field kvlist_fields[] = {
    MESSAGES(1, &m_key_value, 0, "values", "values"),
};
static const struct lk_pb_msg m_kvlist = MSG("KeyValueList", kvlist_fields);

static const struct lk_pb_field key_value_fields[] = {
    SCALAR(1, STRING, "key", "key"),
    MESSAGE(2, &m_any_value, LK_PBF_ONCE, "value", "value"),
    SCALAR(3, INT32, "key_strindex", "keyStrindex"),
};
static const struct lk_pb_msg m_key_value = MSG("KeyValue", key_value_fields);

static const struct lk_pb_field scope_fields[] = {
    SCALAR(1, STRING, "name", "name"),
    SCALAR(2, STRING, "version", "version"),
    MESSAGES(3, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(4, UINT32, "dropped_attributes_count", "droppedAttributesCount"),
};
static const struct lk_pb_msg m_scope =
    MSG("InstrumentationScope", scope_fields);

static const struct lk_pb_field entity_ref_fields[] = {
    SCALAR(1, STRING, "schema_url", "schemaUrl"),
    SCALAR(2, STRING, "type", "type"),
    LIST(3, STRING, "id_keys", "idKeys"),
    LIST(4, STRING, "description_keys", "descriptionKeys"),
};
static const struct lk_pb_msg m_entity_ref =
    MSG("EntityRef", entity_ref_fields);

static const struct lk_pb_field resource_fields[] = {
    MESSAGES(1, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(2, UINT32, "dropped_attributes_count", "droppedAttributesCount"),
    MESSAGES(3, &m_entity_ref, 0, "entity_refs", "entityRefs"),
};
static const struct lk_pb_msg m_resource = MSG("Resource", resource_fields);

/* --- opentelemetry.proto.trace.v1 */

static const struct lk_pb_field trace_req_fields[] = {
    MESSAGES(1, &m_resource_spans, LK_PBF_COUNT_RESOURCE, "resource_spans",
             "resourceSpans"),
};
static const struct lk_pb_msg m_trace_req =
    MSG("ExportTraceServiceRequest", trace_req_fields);

static const struct lk_pb_field resource_spans_fields[] = {
    MESSAGE(1, &m_resource, 0, "resource", "resource"),
    MESSAGES(2, &m_scope_spans, 0, "scope_spans", "scopeSpans"),
    SCALAR(3, STRING, "schema_url", "schemaUrl"),
};
static const struct lk_pb_msg m_resource_spans =
    MSG("ResourceSpans", resource_spans_fields);

static const struct lk_pb_field scope_spans_fields[] = {
    MESSAGE(1, &m_scope, 0, "scope", "scope"),
    MESSAGES(2, &m_span, LK_PBF_COUNT_ITEM, "spans", "spans"),
    SCALAR(3, STRING, "schema_url", "schemaUrl"),
};
static const struct lk_pb_msg m_scope_spans =
    MSG("ScopeSpans", scope_spans_fields);

static const struct lk_pb_field span_fields[] = {
    ID(1, LK_PBF_ID16, "trace_id", "traceId"),
    ID(2, LK_PBF_ID8, "span_id", "spanId"),
    SCALAR(3, STRING, "trace_state", "traceState"),
    ID(4, LK_PBF_ID8, "parent_span_id", "parentSpanId"),
    SCALAR(5, STRING, "name", "name"),
    ENUM(6, &e_span_kind, "kind", "kind"),
    SCALAR(7, FIXED64, "start_time_unix_nano", "startTimeUnixNano"),
    SCALAR(8, FIXED64, "end_time_unix_nano", "endTimeUnixNano"),
    MESSAGES(9, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(10, UINT32, "dropped_attributes_count", "droppedAttributesCount"),
    MESSAGES(11, &m_event, 0, "events", "events"),
    SCALAR(12, UINT32, "dropped_events_count", "droppedEventsCount"),
    MESSAGES(13, &m_link, 0, "links", "links"),
    SCALAR(14, UINT32, "dropped_links_count", "droppedLinksCount"),
    MESSAGE(15, &m_status, 0, "status", "status"),
    SCALAR(16, FIXED32, "flags", "flags"),
};
static const struct lk_pb_msg m_span = MSG("Span", span_fields);

static const struct lk_pb_field event_fields[] = {
    SCALAR(1, FIXED64, "time_unix_nano", "timeUnixNano"),
    SCALAR(2, STRING, "name", "name"),
    MESSAGES(3, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(4, UINT32, "dropped_attributes_count", "droppedAttributesCount"),
};
static const struct lk_pb_msg m_event = MSG("Span.Event", event_fields);

static const struct lk_pb_field link_fields[] = {
    ID(1, LK_PBF_ID16, "trace_id", "traceId"),
    ID(2, LK_PBF_ID8, "span_id", "spanId"),
    SCALAR(3, STRING, "trace_state", "traceState"),
    MESSAGES(4, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(5, UINT32, "dropped_attributes_count", "droppedAttributesCount"),
    SCALAR(6, FIXED32, "flags", "flags"),
};
static const struct lk_pb_msg m_link = MSG("Span.Link", link_fields);

static const struct lk_pb_field status_fields[] = {
    SCALAR(2, STRING, "message", "message"),
    ENUM(3, &e_status_code, "code", "code"),
};
static const struct lk_pb_msg m_status = MSG("Status", status_fields);

/* --- opentelemetry.proto.logs.v1 */

static const struct lk_pb_field logs_req_fields[] = {
    MESSAGES(1, &m_resource_logs, LK_PBF_COUNT_RESOURCE, "resource_logs",
             "resourceLogs"),
};
static const struct lk_pb_msg m_logs_req =
    MSG("ExportLogsServiceRequest", logs_req_fields);

static const struct lk_pb_field resource_logs_fields[] = {
    MESSAGE(1, &m_resource, 0, "resource", "resource"),
    MESSAGES(2, &m_scope_logs, 0, "scope_logs", "scopeLogs"),
    SCALAR(3, STRING, "schema_url", "schemaUrl"),
};
static const struct lk_pb_msg m_resource_logs =
    MSG("ResourceLogs", resource_logs_fields);

static const struct lk_pb_field scope_logs_fields[] = {
    MESSAGE(1, &m_scope, 0, "scope", "scope"),
    MESSAGES(2, &m_log_record, LK_PBF_COUNT_ITEM, "log_records", "logRecords"),
    SCALAR(3, STRING, "schema_url", "schemaUrl"),
};
static const struct lk_pb_msg m_scope_logs =
    MSG("ScopeLogs", scope_logs_fields);

static const struct lk_pb_field log_record_fields[] = {
    SCALAR(1, FIXED64, "time_unix_nano", "timeUnixNano"),
    ENUM(2, &e_severity, "severity_number", "severityNumber"),
    SCALAR(3, STRING, "severity_text", "severityText"),
    MESSAGE(5, &m_any_value, LK_PBF_ONCE, "body", "body"),
    MESSAGES(6, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(7, UINT32, "dropped_attributes_count", "droppedAttributesCount"),
    SCALAR(8, FIXED32, "flags", "flags"),
    ID(9, LK_PBF_ID16, "trace_id", "traceId"),
    ID(10, LK_PBF_ID8, "span_id", "spanId"),
    SCALAR(11, FIXED64, "observed_time_unix_nano", "observedTimeUnixNano"),
    SCALAR(12, STRING, "event_name", "eventName"),
};
static const struct lk_pb_msg m_log_record =
    MSG("LogRecord", log_record_fields);

/* --- opentelemetry.proto.metrics.v1 */

static const struct lk_pb_field metrics_req_fields[] = {
    MESSAGES(1, &m_resource_metrics, LK_PBF_COUNT_RESOURCE, "resource_metrics",
             "resourceMetrics"),
};
static const struct lk_pb_msg m_metrics_req =
    MSG("ExportMetricsServiceRequest", metrics_req_fields);

static const struct lk_pb_field resource_metrics_fields[] = {
    MESSAGE(1, &m_resource, 0, "resource", "resource"),
    MESSAGES(2, &m_scope_metrics, 0, "scope_metrics", "scopeMetrics"),
    SCALAR(3, STRING, "schema_url", "schemaUrl"),
};
static const struct lk_pb_msg m_resource_metrics =
    MSG("ResourceMetrics", resource_metrics_fields);

static const struct lk_pb_field scope_metrics_fields[] = {
    MESSAGE(1, &m_scope, 0, "scope", "scope"),
    MESSAGES(2, &m_metric, 0, "metrics", "metrics"),
    SCALAR(3, STRING, "schema_url", "schemaUrl"),
};
static const struct lk_pb_msg m_scope_metrics =
    MSG("ScopeMetrics", scope_metrics_fields);

static const char *const oneof_data[] = {"data"};

static const struct lk_pb_field metric_fields[] = {
    SCALAR(1, STRING, "name", "name"),
    SCALAR(2, STRING, "description", "description"),
    SCALAR(3, STRING, "unit", "unit"),
    ONEOF(5, 1, MESSAGE, &m_gauge, "gauge", "gauge"),
    ONEOF(7, 1, MESSAGE, &m_sum, "sum", "sum"),
    ONEOF(9, 1, MESSAGE, &m_histogram, "histogram", "histogram"),
    ONEOF(10, 1, MESSAGE, &m_exp_histogram, "exponential_histogram",
          "exponentialHistogram"),
    ONEOF(11, 1, MESSAGE, &m_summary, "summary", "summary"),
    MESSAGES(12, &m_key_value, 0, "metadata", "metadata"),
};
static const struct lk_pb_msg m_metric =
    MSG_ONEOFS("Metric", metric_fields, oneof_data);

static const struct lk_pb_field gauge_fields[] = {
    MESSAGES(1, &m_number_dp, LK_PBF_COUNT_ITEM, "data_points", "dataPoints"),
};
static const struct lk_pb_msg m_gauge = MSG("Gauge", gauge_fields);

static const struct lk_pb_field sum_fields[] = {
    MESSAGES(1, &m_number_dp, LK_PBF_COUNT_ITEM, "data_points", "dataPoints"),
    ENUM(2, &e_temporality, "aggregation_temporality",
         "aggregationTemporality"),
    SCALAR(3, BOOL, "is_monotonic", "isMonotonic"),
};
static const struct lk_pb_msg m_sum = MSG("Sum", sum_fields);

static const struct lk_pb_field histogram_fields[] = {
    MESSAGES(1, &m_histogram_dp, LK_PBF_COUNT_ITEM, "data_points",
             "dataPoints"),
    ENUM(2, &e_temporality, "aggregation_temporality",
         "aggregationTemporality"),
};
static const struct lk_pb_msg m_histogram = MSG("Histogram", histogram_fields);

static const struct lk_pb_field exp_histogram_fields[] = {
    MESSAGES(1, &m_exp_histogram_dp, LK_PBF_COUNT_ITEM, "data_points",
             "dataPoints"),
    ENUM(2, &e_temporality, "aggregation_temporality",
         "aggregationTemporality"),
};
static const struct lk_pb_msg m_exp_histogram =
    MSG("ExponentialHistogram", exp_histogram_fields);

static const struct lk_pb_field summary_fields[] = {
    MESSAGES(1, &m_summary_dp, LK_PBF_COUNT_ITEM, "data_points", "dataPoints"),
};
static const struct lk_pb_msg m_summary = MSG("Summary", summary_fields);

static const struct lk_pb_field number_dp_fields[] = {
    SCALAR(2, FIXED64, "start_time_unix_nano", "startTimeUnixNano"),
    SCALAR(3, FIXED64, "time_unix_nano", "timeUnixNano"),
    ONEOF(4, 1, DOUBLE, NULL, "as_double", "asDouble"),
    MESSAGES(5, &m_exemplar, 0, "exemplars", "exemplars"),
    ONEOF(6, 1, SFIXED64, NULL, "as_int", "asInt"),
    MESSAGES(7, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(8, UINT32, "flags", "flags"),
};
static const struct lk_pb_msg m_number_dp =
    MSG_ONEOFS("NumberDataPoint", number_dp_fields, oneof_value);

static const struct lk_pb_field histogram_dp_fields[] = {
    SCALAR(2, FIXED64, "start_time_unix_nano", "startTimeUnixNano"),
    SCALAR(3, FIXED64, "time_unix_nano", "timeUnixNano"),
    SCALAR(4, FIXED64, "count", "count"),
    ONEOF(5, 1, DOUBLE, NULL, "sum", "sum"),
    LIST(6, FIXED64, "bucket_counts", "bucketCounts"),
    LIST(7, DOUBLE, "explicit_bounds", "explicitBounds"),
    MESSAGES(8, &m_exemplar, 0, "exemplars", "exemplars"),
    MESSAGES(9, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(10, UINT32, "flags", "flags"),
    ONEOF(11, 2, DOUBLE, NULL, "min", "min"),
    ONEOF(12, 3, DOUBLE, NULL, "max", "max"),
};
static const struct lk_pb_msg m_histogram_dp = MSG_ONEOFS(
    "HistogramDataPoint", histogram_dp_fields, oneof_optional_sum_min_max);

static const struct lk_pb_field exp_histogram_dp_fields[] = {
    MESSAGES(1, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(2, FIXED64, "start_time_unix_nano", "startTimeUnixNano"),
    SCALAR(3, FIXED64, "time_unix_nano", "timeUnixNano"),
    SCALAR(4, FIXED64, "count", "count"),
    ONEOF(5, 1, DOUBLE, NULL, "sum", "sum"),
    SCALAR(6, SINT32, "scale", "scale"),
    SCALAR(7, FIXED64, "zero_count", "zeroCount"),
    MESSAGE(8, &m_buckets, 0, "positive", "positive"),
    MESSAGE(9, &m_buckets, 0, "negative", "negative"),
    SCALAR(10, UINT32, "flags", "flags"),
    MESSAGES(11, &m_exemplar, 0, "exemplars", "exemplars"),
    ONEOF(12, 2, DOUBLE, NULL, "min", "min"),
    ONEOF(13, 3, DOUBLE, NULL, "max", "max"),
    SCALAR(14, DOUBLE, "zero_threshold", "zeroThreshold"),
};
static const struct lk_pb_msg m_exp_histogram_dp =
    MSG_ONEOFS("ExponentialHistogramDataPoint", exp_histogram_dp_fields,
               oneof_optional_sum_min_max);

static const struct lk_pb_field buckets_fields[] = {
    SCALAR(1, SINT32, "offset", "offset"),
    LIST(2, UINT64, "bucket_counts", "bucketCounts"),
};
static const struct lk_pb_msg m_buckets =
    MSG("ExponentialHistogramDataPoint.Buckets", buckets_fields);

static const struct lk_pb_field summary_dp_fields[] = {
    SCALAR(2, FIXED64, "start_time_unix_nano", "startTimeUnixNano"),
    SCALAR(3, FIXED64, "time_unix_nano", "timeUnixNano"),
    SCALAR(4, FIXED64, "count", "count"),
    SCALAR(5, DOUBLE, "sum", "sum"),
    MESSAGES(6, &m_quantile, 0, "quantile_values", "quantileValues"),
    MESSAGES(7, &m_key_value, 0, "attributes", "attributes"),
    SCALAR(8, UINT32, "flags", "flags"),
};
static const struct lk_pb_msg m_summary_dp =
    MSG("SummaryDataPoint", summary_dp_fields);

static const struct lk_pb_field quantile_fields[] = {
    SCALAR(1, DOUBLE, "quantile", "quantile"),
    SCALAR(2, DOUBLE, "value", "value"),
};
static const struct lk_pb_msg m_quantile =
    MSG("SummaryDataPoint.ValueAtQuantile", quantile_fields);

static const struct lk_pb_field exemplar_fields[] = {
    SCALAR(2, FIXED64, "time_unix_nano", "timeUnixNano"),
    ONEOF(3, 1, DOUBLE, NULL, "as_double", "asDouble"),
    ID(4, LK_PBF_ID8, "span_id", "spanId"),
    ID(5, LK_PBF_ID16, "trace_id", "traceId"),
    ONEOF(6, 1, SFIXED64, NULL, "as_int", "asInt"),
    MESSAGES(7, &m_key_value, 0, "filtered_attributes", "filteredAttributes"),
};
static const struct lk_pb_msg m_exemplar =
    MSG_ONEOFS("Exemplar", exemplar_fields, oneof_value);

const struct lk_pb_msg *lk_otlp_schema_request(enum lk_signal sig)
{
    switch (sig) {
    case LK_SIGNAL_TRACES:
        return &m_trace_req;
    case LK_SIGNAL_METRICS:
        return &m_metrics_req;
    case LK_SIGNAL_LOGS:
        return &m_logs_req;
    default:
        return NULL;
    }
}
