/*
 * lk_otlp_json_decode and the Export responses.
 *
 * The schema tables are checked against the descriptors protobuf-c generates
 * from proto/. Each signal's realistic request, written by hand to cover
 * every field type, is decoded, unpacked by protobuf-c and checked field by
 * field; protobuf-c's re-encoding of what it unpacked must equal our bytes
 * (same field order, same default omission, minimal lengths), and
 * lk_otlp_validate must accept them with the right counts. Then the mapping's
 * variants (id case, 64-bit integers as strings or numbers, enum names,
 * base64 alphabets, snake_case names, unknown fields, null) and one case per
 * error, each with its exact reason.
 *
 * JSON in this file is written with single quotes, turned into double quotes
 * before decoding (no test needs an apostrophe).
 */
#include "receivers/otlp_json.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "receivers/otlp_schema.h"
#include "receivers/otlp_validate.h"

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
    TraceReq;
typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
    MetricsReq;
typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest
    LogsReq;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Logs__V1__LogRecord LogRecord;

#define ANY(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x

static lk_buf out;
static char why[1024];
static struct lk_otlp_counts counts;

/* Decodes |json_sq| (single-quoted JSON) as signal |sig| into |out|, whose
 * cap is |max| bytes. */
static int decode_max(enum lk_signal sig, const char *json_sq, size_t max)
{
    size_t n = strlen(json_sq);
    char *j = malloc(n + 1);
    int rc;

    ck_assert_ptr_nonnull(j);
    for (size_t i = 0; i <= n; i++)
        j[i] = json_sq[i] == '\'' ? '"' : json_sq[i];
    lk_buf_fini(&out);
    lk_buf_init(&out, max);
    memset(why, 'X', sizeof(why));
    rc =
        lk_otlp_json_decode(sig, (const uint8_t *)j, n, &out, why, sizeof(why));
    free(j);
    return rc;
}

static int decode(enum lk_signal sig, const char *json_sq)
{
    return decode_max(sig, json_sq, 1u << 24);
}

/* Decodes and checks that the validator accepts the result with |items|
 * spans, points or records in |resources| resource entries. */
static void decode_valid(enum lk_signal sig, const char *json_sq)
{
    char vwhy[256];
    int rc = decode(sig, json_sq);

    ck_assert_msg(rc == 0, "rc %d: %s", rc, why);
    rc = lk_otlp_validate(sig, out.data, out.len, &counts, vwhy, sizeof(vwhy));
    ck_assert_msg(rc == 0, "validator: %s", vwhy);
}

static void ok(enum lk_signal sig, const char *json_sq, uint64_t items,
               uint64_t resources)
{
    decode_valid(sig, json_sq);
    ck_assert_uint_eq(counts.items, items);
    ck_assert_uint_eq(counts.resources, resources);
}

static void bad(enum lk_signal sig, const char *json_sq, int want_rc,
                const char *want_why)
{
    int rc = decode(sig, json_sq);

    ck_assert_msg(rc == want_rc, "rc %d, want %d (%s)", rc, want_rc, why);
    ck_assert_msg(strcmp(why, want_why) == 0,
                  "reason\n  \"%s\"\nwant\n  \"%s\"", why, want_why);
}

/* A copy of the current output, to compare two decodes. */
static uint8_t *save(size_t *n)
{
    uint8_t *p = malloc(out.len + 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, out.data, out.len);
    *n = out.len;
    return p;
}

static void same_output(enum lk_signal sig, const char *a, const char *b)
{
    size_t n;
    uint8_t *first;

    decode_valid(sig, a);
    first = save(&n);
    decode_valid(sig, b);
    ck_assert_uint_eq(out.len, n);
    ck_assert_msg(memcmp(out.data, first, n) == 0, "outputs differ");
    free(first);
}

/* protobuf-c's re-encoding of |m|, unpacked from our output, must be our
 * output byte for byte. */
static void same_as_protobuf_c(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n + 1);

    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(protobuf_c_message_pack(m, b), n);
    ck_assert_uint_eq(n, out.len);
    ck_assert_msg(memcmp(b, out.data, n) == 0,
                  "protobuf-c encodes the same values differently");
    free(b);
}

static TraceReq *unpack_traces(void)
{
    TraceReq *r =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            NULL, out.len, out.data);
    ck_assert_ptr_nonnull(r);
    return r;
}

static MetricsReq *unpack_metrics(void)
{
    MetricsReq *r =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
            NULL, out.len, out.data);
    ck_assert_ptr_nonnull(r);
    return r;
}

static LogsReq *unpack_logs(void)
{
    LogsReq *r =
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
            NULL, out.len, out.data);
    ck_assert_ptr_nonnull(r);
    return r;
}

static void free_msg(void *m) { protobuf_c_message_free_unpacked(m, NULL); }

static void assert_bytes(ProtobufCBinaryData b, const char *hex)
{
    size_t n = strlen(hex) / 2;

    ck_assert_uint_eq(b.len, n);
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        ck_assert(sscanf(hex + 2 * i, "%2x", &x) == 1);
        ck_assert_uint_eq(b.data[i], x);
    }
}

static void assert_kv_string(const KeyValue *kv, const char *key,
                             const char *val)
{
    ck_assert_str_eq(kv->key, key);
    ck_assert_ptr_nonnull(kv->value);
    ck_assert_int_eq(kv->value->value_case, ANY(STRING_VALUE));
    ck_assert_str_eq(kv->value->string_value, val);
}

/* --- the schema against protobuf-c's descriptors of proto/ */

static ProtobufCType pbc_type(uint8_t t)
{
    switch (t) {
    case LK_PBT_STRING:
        return PROTOBUF_C_TYPE_STRING;
    case LK_PBT_BYTES:
        return PROTOBUF_C_TYPE_BYTES;
    case LK_PBT_BOOL:
        return PROTOBUF_C_TYPE_BOOL;
    case LK_PBT_INT32:
        return PROTOBUF_C_TYPE_INT32;
    case LK_PBT_INT64:
        return PROTOBUF_C_TYPE_INT64;
    case LK_PBT_UINT32:
        return PROTOBUF_C_TYPE_UINT32;
    case LK_PBT_UINT64:
        return PROTOBUF_C_TYPE_UINT64;
    case LK_PBT_SINT32:
        return PROTOBUF_C_TYPE_SINT32;
    case LK_PBT_SINT64:
        return PROTOBUF_C_TYPE_SINT64;
    case LK_PBT_FIXED32:
        return PROTOBUF_C_TYPE_FIXED32;
    case LK_PBT_FIXED64:
        return PROTOBUF_C_TYPE_FIXED64;
    case LK_PBT_SFIXED64:
        return PROTOBUF_C_TYPE_SFIXED64;
    case LK_PBT_DOUBLE:
        return PROTOBUF_C_TYPE_DOUBLE;
    case LK_PBT_ENUM:
        return PROTOBUF_C_TYPE_ENUM;
    case LK_PBT_MESSAGE:
        return PROTOBUF_C_TYPE_MESSAGE;
    default:
        ck_abort_msg("type %u", t);
        return PROTOBUF_C_TYPE_FLOAT;
    }
}

static uint8_t want_kind(const struct lk_pb_field *f)
{
    bool rep = (f->flags & LK_PBF_REPEATED) != 0;

    switch (f->type) {
    case LK_PBT_STRING:
        return LK_PBK_STRING;
    case LK_PBT_BYTES:
        return LK_PBK_BYTES;
    case LK_PBT_MESSAGE:
        return LK_PBK_MESSAGE;
    case LK_PBT_FIXED32:
        ck_assert_msg(!rep, "%s: repeated fixed32 has no kind", f->name);
        return LK_PBK_FIXED32;
    case LK_PBT_FIXED64:
    case LK_PBT_SFIXED64:
    case LK_PBT_DOUBLE:
        return rep ? LK_PBK_PACKED_FIXED64 : LK_PBK_FIXED64;
    default:
        return rep ? LK_PBK_PACKED_VARINT : LK_PBK_VARINT;
    }
}

static void camel(const char *s, char *buf)
{
    bool up = false;

    for (; *s != '\0'; s++) {
        if (*s == '_') {
            up = true;
            continue;
        }
        *buf++ = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 32) : *s;
        up = false;
    }
    *buf = '\0';
}

static const struct lk_pb_msg *seen[64];
static size_t nseen;

static void check_message(const struct lk_pb_msg *m,
                          const ProtobufCMessageDescriptor *pd)
{
    size_t nlen = strlen(m->name), plen = strlen(pd->name);
    unsigned ours = 0;

    for (size_t i = 0; i < nseen; i++)
        if (seen[i] == m)
            return;
    ck_assert_uint_lt(nseen, 64);
    seen[nseen++] = m;

    /* "Span.Event" names opentelemetry.proto.trace.v1.Span.Event. */
    ck_assert_msg(plen > nlen && strcmp(pd->name + plen - nlen, m->name) == 0 &&
                      pd->name[plen - nlen - 1] == '.',
                  "%s is not %s", m->name, pd->name);
    ck_assert_uint_le(m->nfields, LK_PB_MAX_FIELDS);
    ck_assert_uint_eq(m->fields[0].kind, LK_PBK_NONE);
    for (uint32_t num = 1; num < m->nfields; num++) {
        const struct lk_pb_field *f = &m->fields[num];
        const ProtobufCFieldDescriptor *pf =
            protobuf_c_message_descriptor_get_field(pd, num);
        char json[64];

        if (f->kind == LK_PBK_NONE) {
            ck_assert_msg(pf == NULL, "%s.%s missing", m->name, pf->name);
            continue;
        }
        ours++;
        ck_assert_msg(pf != NULL, "%s field %u not in proto/", m->name, num);
        ck_assert_str_eq(f->name, pf->name);
        camel(f->name, json);
        ck_assert_str_eq(f->json_name, json);
        ck_assert_msg(pbc_type(f->type) == pf->type, "%s.%s type", m->name,
                      f->name);
        ck_assert_uint_eq(f->kind, want_kind(f));
        ck_assert_int_eq((f->flags & LK_PBF_REPEATED) != 0,
                         pf->label == PROTOBUF_C_LABEL_REPEATED);
        ck_assert_int_eq(f->kind == LK_PBK_PACKED_VARINT ||
                             f->kind == LK_PBK_PACKED_FIXED64,
                         (pf->flags & PROTOBUF_C_FIELD_FLAG_PACKED) != 0);
        ck_assert_int_eq(f->oneof != 0,
                         (pf->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0);
        if (f->oneof != 0) {
            ck_assert_uint_le(f->oneof, m->noneofs);
            /* Members of one oneof share protobuf-c's case member. */
            for (uint32_t j = 1; j < m->nfields; j++) {
                const ProtobufCFieldDescriptor *pj;
                if (m->fields[j].oneof == 0)
                    continue;
                pj = protobuf_c_message_descriptor_get_field(pd, j);
                ck_assert_int_eq(m->fields[j].oneof == f->oneof,
                                 pj->quantifier_offset ==
                                     pf->quantifier_offset);
            }
            /* protoc's name for the oneof of an `optional` field. */
            if (m->oneofs[f->oneof - 1][0] == '_')
                ck_assert_str_eq(m->oneofs[f->oneof - 1] + 1, f->name);
        }
        /* Ids are exactly the trace_id / span_id / parent_span_id bytes. */
        if (f->type == LK_PBT_BYTES && strcmp(f->name, "trace_id") == 0)
            ck_assert_uint_eq(f->flags & (LK_PBF_ID16 | LK_PBF_ID8),
                              LK_PBF_ID16);
        else if (f->type == LK_PBT_BYTES &&
                 (strcmp(f->name, "span_id") == 0 ||
                  strcmp(f->name, "parent_span_id") == 0))
            ck_assert_uint_eq(f->flags & (LK_PBF_ID16 | LK_PBF_ID8),
                              LK_PBF_ID8);
        else
            ck_assert_uint_eq(f->flags & (LK_PBF_ID16 | LK_PBF_ID8), 0);
        if (f->flags & LK_PBF_ONCE)
            ck_assert_uint_lt(num, 32);
        if (f->type == LK_PBT_ENUM) {
            const ProtobufCEnumDescriptor *ed = pf->descriptor;
            ck_assert_ptr_nonnull(f->enum_t);
            ck_assert_uint_eq(f->enum_t->nvalues, ed->n_values);
            for (unsigned i = 0; i < ed->n_values; i++) {
                ck_assert_str_eq(f->enum_t->values[i].name, ed->values[i].name);
                ck_assert_int_eq(f->enum_t->values[i].number,
                                 ed->values[i].value);
            }
        } else {
            ck_assert_ptr_null(f->enum_t);
        }
        if (f->type == LK_PBT_MESSAGE) {
            ck_assert_ptr_nonnull(f->child);
            check_message(f->child, pf->descriptor);
        } else {
            ck_assert_ptr_null(f->child);
        }
    }
    ck_assert_uint_eq(ours, pd->n_fields);
}

START_TEST(schema_matches_proto)
{
    nseen = 0;
    check_message(
        lk_otlp_schema_request(LK_SIGNAL_TRACES),
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor);
    check_message(
        lk_otlp_schema_request(LK_SIGNAL_METRICS),
        &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor);
    check_message(
        lk_otlp_schema_request(LK_SIGNAL_LOGS),
        &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor);
    /* Every message of the three requests, each met once. */
    ck_assert_uint_eq(nseen, 34);
    ck_assert_ptr_null(lk_otlp_schema_request(LK_SIGNAL_COUNT));
}
END_TEST

/* --- every field of each signal */

static const char traces_json[] =
    "{'resourceSpans':[{"
    " 'resource':{'attributes':["
    "   {'key':'service.name','value':{'stringValue':'checkout'}},"
    "   {'key':'host.cores','value':{'intValue':'8'}}],"
    "  'droppedAttributesCount':1,"
    "  'entityRefs':[{'schemaUrl':'https://e/1','type':'service',"
    "    'idKeys':['service.name','service.namespace'],"
    "    'descriptionKeys':['']}]},"
    " 'scopeSpans':[{"
    "  'scope':{'name':'my.lib','version':'1.2.3',"
    "   'attributes':[{'key':'k','value':{'boolValue':true}}],"
    "   'droppedAttributesCount':2},"
    "  'spans':[{"
    "   'traceId':'5B8EFFF798038103D269B633813FC60C',"
    "   'spanId':'EEE19B7EC3C1B174',"
    "   'traceState':'congo=t61rcWkgMzE',"
    "   'parentSpanId':'eee19b7ec3c1b173',"
    "   'flags':257,"
    "   'name':'GET /api/v1/users/{id}',"
    "   'kind':'SPAN_KIND_SERVER',"
    "   'startTimeUnixNano':'1544712660000000000',"
    "   'endTimeUnixNano':1544712661000000000,"
    "   'attributes':["
    "    {'key':'s','value':{'stringValue':'h\xc3\xa9llo \xe2\x9c\x93'}},"
    "    {'key':'b','value':{'boolValue':false}},"
    "    {'key':'i','value':{'intValue':'-9223372036854775808'}},"
    "    {'key':'i0','value':{'intValue':0}},"
    "    {'key':'d','value':{'doubleValue':1.5}},"
    "    {'key':'d0','value':{'doubleValue':0}},"
    "    {'key':'by','value':{'bytesValue':'AAEC/w=='}},"
    "    {'key':'arr','value':{'arrayValue':{'values':["
    "      {'stringValue':'a'},{'intValue':'7'},{}]}}},"
    "    {'key':'kv','value':{'kvlistValue':{'values':["
    "      {'key':'inner','value':{'doubleValue':'-Infinity'}}]}}},"
    "    {'key':'none'},"
    "    {'key':'sx','value':{'stringValueStrindex':0}},"
    "    {'key':'','value':{'stringValue':''}},"
    "    {'keyStrindex':3,'value':{'intValue':-1}}],"
    "   'droppedAttributesCount':3,"
    "   'events':[{'timeUnixNano':'1544712660500000000','name':'cache miss',"
    "     'attributes':[{'key':'n','value':{'intValue':3}}],"
    "     'droppedAttributesCount':1}],"
    "   'droppedEventsCount':4,"
    "   'links':[{'traceId':'5b8efff798038103d269b633813fc60c',"
    "     'spanId':'00f067aa0ba902b7','traceState':'a=b',"
    "     'attributes':[{'key':'l','value':{'stringValue':'x'}}],"
    "     'droppedAttributesCount':5,'flags':256}],"
    "   'droppedLinksCount':6,"
    "   'status':{'message':'boom','code':'STATUS_CODE_ERROR'}"
    "  },{"
    "   'traceId':'5b8efff798038103d269b633813fc60c',"
    "   'spanId':'0000000000000001','name':'child','kind':3,'status':{}"
    "  }],"
    "  'schemaUrl':'https://opentelemetry.io/schemas/1.4.0'}],"
    " 'schemaUrl':'https://opentelemetry.io/schemas/1.21.0'}]}";

START_TEST(traces_every_field)
{
    TraceReq *r;
    const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs;
    const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss;
    const Opentelemetry__Proto__Common__V1__EntityRef *er;
    const Span *s;
    KeyValue **a;

    ok(LK_SIGNAL_TRACES, traces_json, 2, 1);
    r = unpack_traces();
    ck_assert_uint_eq(r->n_resource_spans, 1);
    rs = r->resource_spans[0];
    ck_assert_str_eq(rs->schema_url, "https://opentelemetry.io/schemas/1.21.0");
    ck_assert_uint_eq(rs->resource->n_attributes, 2);
    assert_kv_string(rs->resource->attributes[0], "service.name", "checkout");
    ck_assert_int_eq(rs->resource->attributes[1]->value->value_case,
                     ANY(INT_VALUE));
    ck_assert_int_eq(rs->resource->attributes[1]->value->int_value, 8);
    ck_assert_uint_eq(rs->resource->dropped_attributes_count, 1);
    ck_assert_uint_eq(rs->resource->n_entity_refs, 1);
    er = rs->resource->entity_refs[0];
    ck_assert_str_eq(er->schema_url, "https://e/1");
    ck_assert_str_eq(er->type, "service");
    ck_assert_uint_eq(er->n_id_keys, 2);
    ck_assert_str_eq(er->id_keys[1], "service.namespace");
    /* A list element is written even when it is the empty string. */
    ck_assert_uint_eq(er->n_description_keys, 1);
    ck_assert_str_eq(er->description_keys[0], "");

    ck_assert_uint_eq(rs->n_scope_spans, 1);
    ss = rs->scope_spans[0];
    ck_assert_str_eq(ss->schema_url, "https://opentelemetry.io/schemas/1.4.0");
    ck_assert_str_eq(ss->scope->name, "my.lib");
    ck_assert_str_eq(ss->scope->version, "1.2.3");
    ck_assert_uint_eq(ss->scope->n_attributes, 1);
    ck_assert_int_eq(ss->scope->attributes[0]->value->bool_value, 1);
    ck_assert_uint_eq(ss->scope->dropped_attributes_count, 2);
    ck_assert_uint_eq(ss->n_spans, 2);

    s = ss->spans[0];
    assert_bytes(s->trace_id, "5b8efff798038103d269b633813fc60c");
    assert_bytes(s->span_id, "eee19b7ec3c1b174");
    assert_bytes(s->parent_span_id, "eee19b7ec3c1b173");
    ck_assert_str_eq(s->trace_state, "congo=t61rcWkgMzE");
    ck_assert_uint_eq(s->flags, 257);
    ck_assert_str_eq(s->name, "GET /api/v1/users/{id}");
    ck_assert_int_eq(s->kind, 2);
    ck_assert_uint_eq(s->start_time_unix_nano, 1544712660000000000ull);
    ck_assert_uint_eq(s->end_time_unix_nano, 1544712661000000000ull);
    ck_assert_uint_eq(s->dropped_attributes_count, 3);
    ck_assert_uint_eq(s->dropped_events_count, 4);
    ck_assert_uint_eq(s->dropped_links_count, 6);

    ck_assert_uint_eq(s->n_attributes, 13);
    a = s->attributes;
    assert_kv_string(a[0], "s", "h\xc3\xa9llo \xe2\x9c\x93");
    /* Zero values inside the oneof are present. */
    ck_assert_int_eq(a[1]->value->value_case, ANY(BOOL_VALUE));
    ck_assert_int_eq(a[1]->value->bool_value, 0);
    ck_assert_int_eq(a[2]->value->value_case, ANY(INT_VALUE));
    ck_assert(a[2]->value->int_value == INT64_MIN);
    ck_assert_int_eq(a[3]->value->value_case, ANY(INT_VALUE));
    ck_assert_int_eq(a[3]->value->int_value, 0);
    ck_assert_int_eq(a[4]->value->value_case, ANY(DOUBLE_VALUE));
    ck_assert_double_eq(a[4]->value->double_value, 1.5);
    ck_assert_int_eq(a[5]->value->value_case, ANY(DOUBLE_VALUE));
    ck_assert_double_eq(a[5]->value->double_value, 0.0);
    ck_assert_int_eq(a[6]->value->value_case, ANY(BYTES_VALUE));
    assert_bytes(a[6]->value->bytes_value, "000102ff");
    ck_assert_int_eq(a[7]->value->value_case, ANY(ARRAY_VALUE));
    ck_assert_uint_eq(a[7]->value->array_value->n_values, 3);
    ck_assert_str_eq(a[7]->value->array_value->values[0]->string_value, "a");
    ck_assert_int_eq(a[7]->value->array_value->values[1]->int_value, 7);
    ck_assert_int_eq(a[7]->value->array_value->values[2]->value_case,
                     ANY(_NOT_SET));
    ck_assert_int_eq(a[8]->value->value_case, ANY(KVLIST_VALUE));
    ck_assert_uint_eq(a[8]->value->kvlist_value->n_values, 1);
    ck_assert_str_eq(a[8]->value->kvlist_value->values[0]->key, "inner");
    ck_assert(isinf(a[8]->value->kvlist_value->values[0]->value->double_value));
    ck_assert_str_eq(a[9]->key, "none");
    ck_assert_ptr_null(a[9]->value);
    ck_assert_int_eq(a[10]->value->value_case, ANY(STRING_VALUE_STRINDEX));
    ck_assert_int_eq(a[10]->value->string_value_strindex, 0);
    ck_assert_str_eq(a[11]->key, "");
    ck_assert_int_eq(a[11]->value->value_case, ANY(STRING_VALUE));
    ck_assert_str_eq(a[11]->value->string_value, "");
    ck_assert_int_eq(a[12]->key_strindex, 3);
    ck_assert_int_eq(a[12]->value->int_value, -1);

    ck_assert_uint_eq(s->n_events, 1);
    ck_assert_uint_eq(s->events[0]->time_unix_nano, 1544712660500000000ull);
    ck_assert_str_eq(s->events[0]->name, "cache miss");
    ck_assert_int_eq(s->events[0]->attributes[0]->value->int_value, 3);
    ck_assert_uint_eq(s->events[0]->dropped_attributes_count, 1);
    ck_assert_uint_eq(s->n_links, 1);
    assert_bytes(s->links[0]->trace_id, "5b8efff798038103d269b633813fc60c");
    assert_bytes(s->links[0]->span_id, "00f067aa0ba902b7");
    ck_assert_str_eq(s->links[0]->trace_state, "a=b");
    assert_kv_string(s->links[0]->attributes[0], "l", "x");
    ck_assert_uint_eq(s->links[0]->dropped_attributes_count, 5);
    ck_assert_uint_eq(s->links[0]->flags, 256);
    ck_assert_str_eq(s->status->message, "boom");
    ck_assert_int_eq(s->status->code, 2);

    s = ss->spans[1];
    ck_assert_str_eq(s->name, "child");
    ck_assert_int_eq(s->kind, 3);
    ck_assert_uint_eq(s->parent_span_id.len, 0);
    /* An empty object is a present message. */
    ck_assert_ptr_nonnull(s->status);
    ck_assert_int_eq(s->status->code, 0);

    same_as_protobuf_c(&r->base);
    free_msg(r);
}
END_TEST

static const char metrics_json[] =
    "{'resourceMetrics':[{"
    " 'resource':{'attributes':[{'key':'service.name',"
    "   'value':{'stringValue':'api'}}]},"
    " 'scopeMetrics':[{'scope':{'name':'meter'},'metrics':["
    "  {'name':'temp','description':'Temperature','unit':'Cel',"
    "   'metadata':[{'key':'m','value':{'stringValue':'x'}}],"
    "   'gauge':{'dataPoints':["
    "    {'attributes':[{'key':'room','value':{'stringValue':'a'}}],"
    "     'startTimeUnixNano':'1','timeUnixNano':'1700000000000000000',"
    "     'asDouble':0,'flags':1,"
    "     'exemplars':[{'filteredAttributes':[{'key':'u',"
    "       'value':{'stringValue':'v'}}],"
    "      'timeUnixNano':'1700000000000000001','asDouble':21.5,"
    "      'spanId':'00f067aa0ba902b7',"
    "      'traceId':'4BF92F3577B34DA6A3CE929D0E0E4736'}]},"
    "    {'timeUnixNano':1700000000000000000,'asInt':'-5',"
    "     'exemplars':[{'asInt':0}]}]}},"
    "  {'name':'requests','sum':{"
    "   'aggregationTemporality':'AGGREGATION_TEMPORALITY_CUMULATIVE',"
    "   'isMonotonic':true,"
    "   'dataPoints':[{'asInt':'9223372036854775807'}]}},"
    "  {'name':'latency','unit':'ms','histogram':{"
    "   'aggregationTemporality':1,'dataPoints':["
    "    {'count':'6','sum':0,'bucketCounts':['1',2,'0',3],"
    "     'explicitBounds':[0,5.5,'10'],'min':-1.25,'max':'Infinity',"
    "     'flags':0},"
    "    {'count':0}]}},"
    "  {'name':'size','exponentialHistogram':{"
    "   'aggregationTemporality':'AGGREGATION_TEMPORALITY_DELTA',"
    "   'dataPoints':[{'count':'3','sum':12.5,'scale':-2,'zeroCount':'1',"
    "    'positive':{'offset':-3,'bucketCounts':['1','18446744073709551615']},"
    "    'negative':{},'zeroThreshold':1e-9,'min':0,'max':10}]}},"
    "  {'name':'rtt','summary':{'dataPoints':[{'count':'2','sum':3.5,"
    "   'quantileValues':[{'quantile':0.5,'value':1},"
    "    {'quantile':1,'value':2.5},{}],"
    "   'attributes':[]}]}}"
    " ]}]}]}";

START_TEST(metrics_every_field)
{
    MetricsReq *r;
    const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm;
    const Opentelemetry__Proto__Metrics__V1__NumberDataPoint *np;
    const Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp;
    const Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint *ep;
    const Opentelemetry__Proto__Metrics__V1__SummaryDataPoint *sp;
    const Opentelemetry__Proto__Metrics__V1__Exemplar *ex;
    const Metric *m;

    ok(LK_SIGNAL_METRICS, metrics_json, 7, 1);
    r = unpack_metrics();
    assert_kv_string(r->resource_metrics[0]->resource->attributes[0],
                     "service.name", "api");
    sm = r->resource_metrics[0]->scope_metrics[0];
    ck_assert_str_eq(sm->scope->name, "meter");
    ck_assert_uint_eq(sm->n_metrics, 5);

    m = sm->metrics[0];
    ck_assert_str_eq(m->name, "temp");
    ck_assert_str_eq(m->description, "Temperature");
    ck_assert_str_eq(m->unit, "Cel");
    assert_kv_string(m->metadata[0], "m", "x");
    ck_assert_int_eq(m->data_case,
                     OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
    ck_assert_uint_eq(m->gauge->n_data_points, 2);
    np = m->gauge->data_points[0];
    assert_kv_string(np->attributes[0], "room", "a");
    ck_assert_uint_eq(np->start_time_unix_nano, 1);
    ck_assert_uint_eq(np->time_unix_nano, 1700000000000000000ull);
    ck_assert_int_eq(
        np->value_case,
        OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
    ck_assert_double_eq(np->as_double, 0.0);
    ck_assert_uint_eq(np->flags, 1);
    ex = np->exemplars[0];
    assert_kv_string(ex->filtered_attributes[0], "u", "v");
    ck_assert_uint_eq(ex->time_unix_nano, 1700000000000000001ull);
    ck_assert_double_eq(ex->as_double, 21.5);
    assert_bytes(ex->span_id, "00f067aa0ba902b7");
    assert_bytes(ex->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    np = m->gauge->data_points[1];
    ck_assert_uint_eq(np->time_unix_nano, 1700000000000000000ull);
    ck_assert_int_eq(
        np->value_case,
        OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT);
    ck_assert_int_eq(np->as_int, -5);
    ck_assert_int_eq(np->exemplars[0]->value_case,
                     OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_INT);
    ck_assert_int_eq(np->exemplars[0]->as_int, 0);

    m = sm->metrics[1];
    ck_assert_int_eq(m->data_case,
                     OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
    ck_assert_int_eq(m->sum->aggregation_temporality, 2);
    ck_assert_int_eq(m->sum->is_monotonic, 1);
    ck_assert(m->sum->data_points[0]->as_int == INT64_MAX);

    m = sm->metrics[2];
    ck_assert_str_eq(m->unit, "ms");
    ck_assert_int_eq(m->histogram->aggregation_temporality, 1);
    ck_assert_uint_eq(m->histogram->n_data_points, 2);
    hp = m->histogram->data_points[0];
    ck_assert_uint_eq(hp->count, 6);
    /* `optional`: present at zero. */
    ck_assert_int_eq(
        hp->_sum_case,
        OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM);
    ck_assert_double_eq(hp->sum, 0.0);
    ck_assert_uint_eq(hp->n_bucket_counts, 4);
    ck_assert_uint_eq(hp->bucket_counts[0], 1);
    ck_assert_uint_eq(hp->bucket_counts[1], 2);
    ck_assert_uint_eq(hp->bucket_counts[2], 0);
    ck_assert_uint_eq(hp->bucket_counts[3], 3);
    ck_assert_uint_eq(hp->n_explicit_bounds, 3);
    ck_assert_double_eq(hp->explicit_bounds[0], 0.0);
    ck_assert_double_eq(hp->explicit_bounds[1], 5.5);
    ck_assert_double_eq(hp->explicit_bounds[2], 10.0);
    ck_assert_double_eq(hp->min, -1.25);
    ck_assert(isinf(hp->max) && hp->max > 0);
    ck_assert_int_eq(
        hp->_max_case,
        OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MAX_MAX);
    hp = m->histogram->data_points[1];
    ck_assert_uint_eq(hp->count, 0);
    ck_assert_int_eq(hp->_sum_case, 0);
    ck_assert_int_eq(hp->_min_case, 0);
    ck_assert_int_eq(hp->_max_case, 0);

    m = sm->metrics[3];
    ck_assert_int_eq(m->exponential_histogram->aggregation_temporality, 1);
    ep = m->exponential_histogram->data_points[0];
    ck_assert_uint_eq(ep->count, 3);
    ck_assert_double_eq(ep->sum, 12.5);
    ck_assert_int_eq(ep->scale, -2);
    ck_assert_uint_eq(ep->zero_count, 1);
    ck_assert_int_eq(ep->positive->offset, -3);
    ck_assert_uint_eq(ep->positive->n_bucket_counts, 2);
    ck_assert_uint_eq(ep->positive->bucket_counts[1], UINT64_MAX);
    ck_assert_ptr_nonnull(ep->negative);
    ck_assert_uint_eq(ep->negative->n_bucket_counts, 0);
    ck_assert_double_eq(ep->zero_threshold, 1e-9);
    ck_assert_int_eq(ep->_min_case, 12);
    ck_assert_double_eq(ep->min, 0.0);
    ck_assert_double_eq(ep->max, 10.0);

    m = sm->metrics[4];
    sp = m->summary->data_points[0];
    ck_assert_uint_eq(sp->count, 2);
    ck_assert_double_eq(sp->sum, 3.5);
    ck_assert_uint_eq(sp->n_quantile_values, 3);
    ck_assert_double_eq(sp->quantile_values[0]->quantile, 0.5);
    ck_assert_double_eq(sp->quantile_values[1]->value, 2.5);
    ck_assert_uint_eq(sp->n_attributes, 0);

    same_as_protobuf_c(&r->base);
    free_msg(r);
}
END_TEST

static const char logs_json[] =
    "{'resourceLogs':[{"
    " 'resource':{'attributes':[{'key':'service.name',"
    "   'value':{'stringValue':'worker'}}],'droppedAttributesCount':0},"
    " 'scopeLogs':[{'scope':{'name':'zerolog'},'logRecords':["
    "  {'timeUnixNano':'1700000000000000000',"
    "   'observedTimeUnixNano':'1700000000000000042',"
    "   'severityNumber':'SEVERITY_NUMBER_WARN','severityText':'WARN',"
    "   'body':{'kvlistValue':{'values':["
    "     {'key':'msg','value':{'stringValue':'disk almost full'}},"
    "     {'key':'pct','value':{'doubleValue':97.5}}]}},"
    "   'attributes':[{'key':'disk','value':{'stringValue':'/dev/sda1'}}],"
    "   'droppedAttributesCount':2,'flags':1,"
    "   'traceId':'5B8EFFF798038103D269B633813FC60C',"
    "   'spanId':'EEE19B7EC3C1B174','eventName':'disk.usage'},"
    "  {'severityNumber':17,'body':{'bytesValue':'3q2-7w'}},"
    "  {'body':{'stringValue':'plain'},'traceId':'','spanId':''}],"
    "  'schemaUrl':'s'}],"
    " 'schemaUrl':'r'}]}";

START_TEST(logs_every_field)
{
    LogsReq *r;
    const Opentelemetry__Proto__Logs__V1__ScopeLogs *sl;
    const LogRecord *l;

    ok(LK_SIGNAL_LOGS, logs_json, 3, 1);
    r = unpack_logs();
    ck_assert_str_eq(r->resource_logs[0]->schema_url, "r");
    ck_assert_uint_eq(r->resource_logs[0]->resource->dropped_attributes_count,
                      0);
    sl = r->resource_logs[0]->scope_logs[0];
    ck_assert_str_eq(sl->schema_url, "s");
    ck_assert_str_eq(sl->scope->name, "zerolog");
    ck_assert_uint_eq(sl->n_log_records, 3);
    l = sl->log_records[0];
    ck_assert_uint_eq(l->time_unix_nano, 1700000000000000000ull);
    ck_assert_uint_eq(l->observed_time_unix_nano, 1700000000000000042ull);
    ck_assert_int_eq(l->severity_number, 13);
    ck_assert_str_eq(l->severity_text, "WARN");
    ck_assert_int_eq(l->body->value_case, ANY(KVLIST_VALUE));
    assert_kv_string(l->body->kvlist_value->values[0], "msg",
                     "disk almost full");
    ck_assert_double_eq(l->body->kvlist_value->values[1]->value->double_value,
                        97.5);
    assert_kv_string(l->attributes[0], "disk", "/dev/sda1");
    ck_assert_uint_eq(l->dropped_attributes_count, 2);
    ck_assert_uint_eq(l->flags, 1);
    assert_bytes(l->trace_id, "5b8efff798038103d269b633813fc60c");
    assert_bytes(l->span_id, "eee19b7ec3c1b174");
    ck_assert_str_eq(l->event_name, "disk.usage");
    l = sl->log_records[1];
    ck_assert_int_eq(l->severity_number, 17);
    ck_assert_int_eq(l->body->value_case, ANY(BYTES_VALUE));
    assert_bytes(l->body->bytes_value, "deadbeef");
    l = sl->log_records[2];
    ck_assert_str_eq(l->body->string_value, "plain");
    ck_assert_uint_eq(l->trace_id.len, 0);
    ck_assert_uint_eq(l->span_id.len, 0);

    same_as_protobuf_c(&r->base);
    free_msg(r);
}
END_TEST

/* Requests shaped like the OTLP specification's examples/ (our own values). */
START_TEST(spec_like_examples)
{
    ok(LK_SIGNAL_TRACES,
       "{'resourceSpans':[{'resource':{'attributes':[{'key':'service.name',"
       "'value':{'stringValue':'my.service'}}]},'scopeSpans':[{'scope':{"
       "'name':'my.library','version':'1.0.0','attributes':[{'key':"
       "'my.scope.attribute','value':{'stringValue':'some scope attribute'}}]"
       "},'spans':[{'traceId':'5B8EFFF798038103D269B633813FC60C','spanId':"
       "'EEE19B7EC3C1B174','parentSpanId':'EEE19B7EC3C1B173','name':"
       "'I\\u0027m a server span','startTimeUnixNano':'1544712660000000000',"
       "'endTimeUnixNano':'1544712661000000000','kind':2,'attributes':[{"
       "'key':'my.span.attr','value':{'stringValue':'some value'}}]}]}]}]}",
       1, 1);
    ok(LK_SIGNAL_METRICS,
       "{'resourceMetrics':[{'resource':{'attributes':[{'key':'service.name',"
       "'value':{'stringValue':'my.service'}}]},'scopeMetrics':[{'scope':{"
       "'name':'my.library','version':'1.0.0'},'metrics':[{'name':"
       "'my.counter','unit':'1','description':'I am a Counter','sum':{"
       "'aggregationTemporality':1,'isMonotonic':true,'dataPoints':[{"
       "'asDouble':5,'startTimeUnixNano':'1544712660300000000',"
       "'timeUnixNano':'1544712660300000000','attributes':[{'key':"
       "'my.counter.attr','value':{'stringValue':'some value'}}]}]}},{"
       "'name':'my.gauge','unit':'1','description':'I am a Gauge','gauge':{"
       "'dataPoints':[{'asDouble':10,'timeUnixNano':'1544712660300000000'}]}"
       "},{'name':'my.histogram','unit':'1','description':'I am a Histogram',"
       "'histogram':{'aggregationTemporality':1,'dataPoints':[{"
       "'startTimeUnixNano':'1544712660300000000','timeUnixNano':"
       "'1544712660300000000','count':2,'sum':2,'bucketCounts':[1,1],"
       "'explicitBounds':[1],'min':0,'max':2}]}},{'name':"
       "'my.exponential.histogram','unit':'1','exponentialHistogram':{"
       "'aggregationTemporality':1,'dataPoints':[{'count':3,'sum':10,"
       "'scale':0,'zeroCount':1,'positive':{'offset':1,'bucketCounts':[0,2]"
       "},'min':0,'max':5,'zeroThreshold':0}]}}]}]}]}",
       4, 1);
    ok(LK_SIGNAL_LOGS,
       "{'resourceLogs':[{'resource':{'attributes':[{'key':'service.name',"
       "'value':{'stringValue':'my.service'}}]},'scopeLogs':[{'scope':{"
       "'name':'my.library','version':'1.0.0'},'logRecords':[{"
       "'timeUnixNano':'1544712660300000000','observedTimeUnixNano':"
       "'1544712660300000000','severityNumber':10,'severityText':'Information',"
       "'traceId':'5B8EFFF798038103D269B633813FC60C','spanId':"
       "'EEE19B7EC3C1B174','body':{'stringValue':'Example log record'},"
       "'attributes':[{'key':'string.attribute','value':{'stringValue':"
       "'some string'}},{'key':'boolean.attribute','value':{'boolValue':true}"
       "},{'key':'int.attribute','value':{'intValue':'10'}},{'key':"
       "'double.attribute','value':{'doubleValue':637.704}},{'key':"
       "'array.attribute','value':{'arrayValue':{'values':[{'stringValue':"
       "'many'},{'stringValue':'values'}]}}},{'key':'map.attribute','value':"
       "{'kvlistValue':{'values':[{'key':'some.map.key','value':{"
       "'stringValue':'some value'}}]}}}]}]}]}]}",
       1, 1);
    /* Empty requests. */
    ok(LK_SIGNAL_TRACES, "{}", 0, 0);
    ck_assert_uint_eq(out.len, 0);
    ok(LK_SIGNAL_LOGS, "{'resourceLogs':[]}", 0, 0);
    ck_assert_uint_eq(out.len, 0);
    ok(LK_SIGNAL_METRICS, "{'resourceMetrics':[{}]}", 0, 1);
}
END_TEST

/* --- the mapping's variants */

START_TEST(ids_either_case)
{
    same_output(LK_SIGNAL_TRACES,
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'traceId':'ABCDEF0123456789ABCDEF0123456789',"
                "'spanId':'ABCDEF0123456789','links':[{'traceId':"
                "'ABCDEF0123456789ABCDEF0123456789'}]}]}]}]}",
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'traceId':'abcdef0123456789abcdef0123456789',"
                "'spanId':'abcDEF0123456789','links':[{'traceId':"
                "'abcdef0123456789ABCDEF0123456789'}]}]}]}]}");
    same_output(LK_SIGNAL_METRICS,
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
                "'dataPoints':[{'exemplars':[{'traceId':"
                "'ABCDEF0123456789ABCDEF0123456789','spanId':"
                "'ABCDEF0123456789'}]}]}}]}]}]}",
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
                "'dataPoints':[{'exemplars':[{'traceId':"
                "'abcdef0123456789abcdef0123456789','spanId':"
                "'abcdef0123456789'}]}]}}]}]}]}");
}
END_TEST

START_TEST(int64_string_or_number)
{
    same_output(LK_SIGNAL_TRACES,
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'startTimeUnixNano':'1700000000123456789',"
                "'droppedAttributesCount':'7','attributes':[{'key':'a',"
                "'value':{'intValue':'-42'}}]}]}]}]}",
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'startTimeUnixNano':1700000000123456789,"
                "'droppedAttributesCount':7,'attributes':[{'key':'a',"
                "'value':{'intValue':-42}}]}]}]}]}");
    /* Exponent and fraction forms of an exact integer. */
    same_output(LK_SIGNAL_TRACES,
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'startTimeUnixNano':'1000','flags':2}]}]}]}",
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'startTimeUnixNano':1e3,'flags':2.0}]}]}]}");
    same_output(LK_SIGNAL_METRICS,
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'sum':{"
                "'dataPoints':[{'asInt':'-9223372036854775808'}]}}]}]}]}",
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'sum':{"
                "'dataPoints':[{'asInt':-9223372036854775808}]}}]}]}]}");
}
END_TEST

START_TEST(enum_name_or_number)
{
    same_output(LK_SIGNAL_TRACES,
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'kind':'SPAN_KIND_CONSUMER','status':{'code':"
                "'STATUS_CODE_OK'}}]}]}]}",
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                "'kind':5,'status':{'code':1}}]}]}]}");
    same_output(LK_SIGNAL_LOGS,
                "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{"
                "'severityNumber':'SEVERITY_NUMBER_FATAL4'}]}]}]}",
                "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{"
                "'severityNumber':24}]}]}]}");
    same_output(LK_SIGNAL_METRICS,
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{"
                "'histogram':{'aggregationTemporality':"
                "'AGGREGATION_TEMPORALITY_CUMULATIVE'}}]}]}]}",
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{"
                "'histogram':{'aggregationTemporality':2}}]}]}]}");
    /* proto3 enums are open: numbers without a name pass, negative ones as
     * protobuf writes them (10 bytes). */
    ok(LK_SIGNAL_TRACES,
       "{'resourceSpans':[{'scopeSpans':[{'spans':[{'kind':-1},{'kind':99}]}]"
       "}]}",
       2, 1);
    {
        TraceReq *r = unpack_traces();
        ck_assert_int_eq(
            (int)r->resource_spans[0]->scope_spans[0]->spans[0]->kind, -1);
        ck_assert_int_eq(
            (int)r->resource_spans[0]->scope_spans[0]->spans[1]->kind, 99);
        same_as_protobuf_c(&r->base);
        free_msg(r);
    }
}
END_TEST

START_TEST(proto_names_accepted)
{
    same_output(
        LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'schemaUrl':'u','scopeSpans':[{'spans':[{"
        "'traceId':'5b8efff798038103d269b633813fc60c',"
        "'parentSpanId':'eee19b7ec3c1b173',"
        "'startTimeUnixNano':'5','droppedEventsCount':1}]}]}]}",
        "{'resource_spans':[{'schema_url':'u','scope_spans':[{'spans':[{"
        "'trace_id':'5b8efff798038103d269b633813fc60c',"
        "'parent_span_id':'eee19b7ec3c1b173',"
        "'start_time_unix_nano':'5','dropped_events_count':1}]}]}]}");
    same_output(
        LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'kvlistValue':{'values':[]}},'observedTimeUnixNano':'3'}]}]}]}",
        "{'resource_logs':[{'scope_logs':[{'log_records':[{'body':{"
        "'kvlist_value':{'values':[]}},'observed_time_unix_nano':3}]}]}]"
        "}");
}
END_TEST

START_TEST(unknown_fields_and_null)
{
    same_output(LK_SIGNAL_TRACES,
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':'n',"
                "'kind':1}]}]}]}",
                "{'extra':[1,{'a':null}],'resourceSpans':[{'newField':{'x':"
                "[[[]]]},'scopeSpans':[{'spans':[{'name':'n','Name':5,"
                "'kind':1,'traceId':null,'status':null,'attributes':null,"
                "'TRACE_ID':'zz','spanid':7,'\\u00e9':1}]}]}]}");
    /* null in a oneof is an absent member: no conflict. */
    same_output(LK_SIGNAL_LOGS,
                "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
                "'stringValue':'x'}}]}]}]}",
                "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
                "'intValue':null,'stringValue':'x','boolValue':null}}]}]}]}");
}
END_TEST

START_TEST(defaults_left_out)
{
    /* proto3 defaults outside oneofs are written as nothing at all. */
    same_output(LK_SIGNAL_TRACES,
                "{'resourceSpans':[{'scopeSpans':[{'spans':[{}]}]}]}",
                "{'resourceSpans':[{'schemaUrl':'','scopeSpans':[{'spans':[{"
                "'traceId':'','spanId':'','traceState':'','name':'',"
                "'kind':'SPAN_KIND_UNSPECIFIED','startTimeUnixNano':'0',"
                "'endTimeUnixNano':0,'attributes':[],'droppedAttributesCount'"
                ":0,'flags':0,'events':[],'links':[]}]}]}]}");
    same_output(LK_SIGNAL_METRICS,
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'sum':{"
                "'dataPoints':[{}]}}]}]}]}",
                "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'sum':{"
                "'isMonotonic':false,'aggregationTemporality':0,"
                "'dataPoints':[{'flags':0,'exemplars':[]}]}}]}]}]}");
    /* -0.0 is not the default: its bits are not zero. */
    ok(LK_SIGNAL_METRICS,
       "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{"
       "'exponentialHistogram':{'dataPoints':[{'zeroThreshold':-0.0}]}}]}]}]}",
       1, 1);
    {
        MetricsReq *r = unpack_metrics();
        double z = r->resource_metrics[0]
                       ->scope_metrics[0]
                       ->metrics[0]
                       ->exponential_histogram->data_points[0]
                       ->zero_threshold;
        ck_assert(z == 0.0 && signbit(z));
        /* Not compared with protobuf-c 1.4, which drops -0.0 (it compares
         * the value with 0); Go and C++ protobuf compare the bits and keep
         * it, and so do we. */
        free_msg(r);
    }
}
END_TEST

START_TEST(doubles_special_and_strings)
{
    MetricsReq *r;
    const Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp;

    ok(LK_SIGNAL_METRICS,
       "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'histogram':{"
       "'dataPoints':[{'sum':'NaN','min':'-Infinity','max':'1.5e300',"
       "'explicitBounds':['-0.5',1E2,'Infinity',-7,'2.5E-3']}]}}]}]}]}",
       1, 1);
    r = unpack_metrics();
    hp = r->resource_metrics[0]
             ->scope_metrics[0]
             ->metrics[0]
             ->histogram->data_points[0];
    ck_assert(isnan(hp->sum));
    ck_assert(isinf(hp->min) && hp->min < 0);
    ck_assert_double_eq(hp->max, 1.5e300);
    ck_assert_uint_eq(hp->n_explicit_bounds, 5);
    ck_assert_double_eq(hp->explicit_bounds[0], -0.5);
    ck_assert_double_eq(hp->explicit_bounds[1], 100.0);
    ck_assert(isinf(hp->explicit_bounds[2]));
    ck_assert_double_eq(hp->explicit_bounds[3], -7.0);
    ck_assert_double_eq(hp->explicit_bounds[4], 2.5e-3);
    same_as_protobuf_c(&r->base);
    free_msg(r);
}
END_TEST

START_TEST(base64_variants)
{
    static const char *const forms[] = {"+/+/", "-_-_", "+_-/"};
    static const char *const lens[][2] = {
        {"", ""},         {"AA==", "00"},  {"AA", "00"},
        {"AAE=", "0001"}, {"AAE", "0001"}, {"AAEC", "000102"},
        {"/w==", "ff"},   {"_w", "ff"},    {"AAECAw==", "00010203"},
    };
    char json[256];

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        LogsReq *r;
        snprintf(json, sizeof(json),
                 "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
                 "'bytesValue':'%s'}}]}]}]}",
                 forms[i]);
        ok(LK_SIGNAL_LOGS, json, 1, 1);
        r = unpack_logs();
        assert_bytes(r->resource_logs[0]
                         ->scope_logs[0]
                         ->log_records[0]
                         ->body->bytes_value,
                     "fbffbf");
        free_msg(r);
    }
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        LogsReq *r;
        const AnyValue *body;
        snprintf(json, sizeof(json),
                 "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
                 "'bytesValue':'%s'}}]}]}]}",
                 lens[i][0]);
        ok(LK_SIGNAL_LOGS, json, 1, 1);
        r = unpack_logs();
        body = r->resource_logs[0]->scope_logs[0]->log_records[0]->body;
        /* In the oneof, empty bytes are still a bytes value. */
        ck_assert_int_eq(body->value_case, ANY(BYTES_VALUE));
        assert_bytes(body->bytes_value, lens[i][1]);
        same_as_protobuf_c(&r->base);
        free_msg(r);
    }
}
END_TEST

/* Lengths of 1, 2 and 3 bytes, nested: the body moves up as its length
 * grows past one byte. */
START_TEST(long_values)
{
    size_t big = 20000, n;
    char *json = malloc(big + 512), *p;
    TraceReq *r;
    const Span *s;

    ck_assert_ptr_nonnull(json);
    p = json;
    p += sprintf(p, "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':'");
    memset(p, 'n', 200);
    p += 200;
    p += sprintf(p, "','attributes':[{'key':'k','value':{'stringValue':'");
    for (size_t i = 0; i < big; i++)
        *p++ = (char)('a' + i % 26);
    p += sprintf(p, "'}}]},{'name':'short'}]}]}]}");
    ok(LK_SIGNAL_TRACES, json, 2, 1);
    r = unpack_traces();
    s = r->resource_spans[0]->scope_spans[0]->spans[0];
    n = strlen(s->name);
    ck_assert_uint_eq(n, 200);
    n = strlen(s->attributes[0]->value->string_value);
    ck_assert_uint_eq(n, big);
    ck_assert_int_eq(s->attributes[0]->value->string_value[big - 1],
                     'a' + (big - 1) % 26);
    ck_assert_str_eq(r->resource_spans[0]->scope_spans[0]->spans[1]->name,
                     "short");
    same_as_protobuf_c(&r->base);
    free_msg(r);
    free(json);
}
END_TEST

/* JSON escapes, including NUL, decode to the UTF-8 the validator checks. */
START_TEST(string_escapes)
{
    TraceReq *r;
    const Span *s;

    ok(LK_SIGNAL_TRACES,
       "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':"
       "'a\\u0000b\\n\\u00e9\\ud83d\\ude00\\/\\\\\\''}]}]}]}",
       1, 1);
    r = unpack_traces();
    s = r->resource_spans[0]->scope_spans[0]->spans[0];
    ck_assert_int_eq(memcmp(s->name, "a\0b\n\xc3\xa9\xf0\x9f\x98\x80/\\\"", 14),
                     0);
    free_msg(r);
}
END_TEST

/* Messages nested up to the validator's limit, and not one deeper. */
START_TEST(depth_limit)
{
    /* The first AnyValue is at depth 5; each arrayValue adds 2. */
    char json[2048], *p;
    int k;

    for (k = 29; k <= 30; k++) {
        p = json;
        p += sprintf(p, "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
                        "'attributes':[{'key':'k','value':");
        for (int i = 0; i < k; i++)
            p += sprintf(p, "{'arrayValue':{'values':[");
        p += sprintf(p, "{}");
        for (int i = 0; i < k; i++)
            p += sprintf(p, "]}}");
        sprintf(p, "}]}]}]}]}");
        if (k == 29) {
            ok(LK_SIGNAL_TRACES, json, 1, 1);
        } else {
            static const char tail[] =
                "values[0].arrayValue: messages nested deeper than 64";
            ck_assert_int_eq(decode(LK_SIGNAL_TRACES, json), LK_EPROTO);
            ck_assert_msg(strncmp(why,
                                  "resourceSpans[0].scopeSpans[0].spans[0]."
                                  "attributes[0].value.arrayValue.values[0].",
                                  79) == 0,
                          "%s", why);
            ck_assert_str_eq(why + strlen(why) - strlen(tail), tail);
        }
    }
}
END_TEST

/* --- errors, each with its reason */

START_TEST(error_ids)
{
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'spanId':"
        "'EEE19B7EC3C1B17G'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].spanId: invalid hex "
        "character \"G\" at offset 15");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'traceId':"
        "'5B8EFFF798038103D269B633813FC60'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].traceId: odd number of hex "
        "digits (31)");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'traceId':"
        "'5B8EFFF798038103D269B633813FC6'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].traceId: 15 bytes, want 16");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{},{'links':[{},{"
        "'span_id':'5B8EFFF798038103D269B633813FC60C'}]}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[1].links[1].span_id: 16 bytes, "
        "want 8");
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'traceId':"
        "'5b8efff7 8038103d269b633813fc60c'}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].traceId: invalid hex "
        "character \" \" at offset 8");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
        "'dataPoints':[{'exemplars':[{'spanId':'0x0102030405060708'}]}]}}]}]"
        "}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]."
        "exemplars[0].spanId: invalid hex character \"x\" at offset 1");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'traceId':"
        "'\\u00e9'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].traceId: invalid hex "
        "character \"\\xc3\" at offset 0");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'traceId':"
        "[1,2]}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected a hex "
        "string, got array");
}
END_TEST

START_TEST(error_types)
{
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{},{},"
        "{'startTimeUnixNano':{}}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[2].startTimeUnixNano: expected "
        "an integer (string or number), got object");
    bad(LK_SIGNAL_TRACES, "{'resourceSpans':{}}", LK_EPROTO,
        "resourceSpans: expected an array, got object");
    bad(LK_SIGNAL_TRACES, "{'resourceSpans':[[]]}", LK_EPROTO,
        "resourceSpans[0]: expected an object, got array");
    bad(LK_SIGNAL_TRACES, "{'resourceSpans':[{'scopeSpans':[null]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0]: null is not allowed in a "
        "list");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':5}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].name: expected a string, "
        "got number");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'kind':true}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].kind: expected an enum "
        "(integer or name), got boolean");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'kind':'SERVER'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].kind: unknown Span.SpanKind "
        "value \"SERVER\"");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'sum':{"
        "'isMonotonic':'true'}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.isMonotonic: "
        "expected a boolean, got string");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
        "'dataPoints':[{'asDouble':'fast'}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]."
        "asDouble: not a number: \"fast\"");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'histogram':{"
        "'dataPoints':[{'explicitBounds':[1,null]}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].histogram."
        "dataPoints[0].explicitBounds[1]: null is not allowed in a list");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'histogram':{"
        "'dataPoints':[{'bucketCounts':[1,'2',[]]}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].histogram."
        "dataPoints[0].bucketCounts[2]: expected an integer (string or "
        "number), got array");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
        "'dataPoints':[{'asDouble':' 1'}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]."
        "asDouble: not a number: \" 1\"");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
        "'dataPoints':[{'asDouble':'1e999'}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]."
        "asDouble: out of range: \"1e999\" (not a double)");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
        "'dataPoints':[{'asDouble':'nan'}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]."
        "asDouble: not a number: \"nan\"");
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':'text'}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body: expected an object, "
        "got string");
    bad(LK_SIGNAL_LOGS, "[]", LK_EPROTO,
        "ExportLogsServiceRequest: expected an object, got array");
}
END_TEST

START_TEST(error_integers)
{
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'attributes':[{'key':"
        "'a','value':{'intValue':1.5}}]}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value."
        "intValue: not an integer: 1.5");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'endTimeUnixNano':"
        "'1.0'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano: not an "
        "integer: \"1.0\"");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'endTimeUnixNano':"
        "''}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano: not an "
        "integer: \"\"");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'endTimeUnixNano':"
        "'+5'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano: not an "
        "integer: \"+5\"");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'endTimeUnixNano':"
        "1.7e18}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano: integer "
        "1.7e+18 is too large for a fraction or exponent; write it as a "
        "string");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{"
        "'droppedAttributesCount':4294967296}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].droppedAttributesCount: "
        "4294967296 is out of range for uint32");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'flags':-1}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].flags: -1 is out of range "
        "for uint32");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'startTimeUnixNano':"
        "'-1'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: -1 is out "
        "of range for uint64");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'attributes':[{'value':"
        "{'intValue':'9223372036854775808'}}]}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value."
        "intValue: 9223372036854775808 is out of range for int64");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'attributes':[{'value':"
        "{'intValue':'-9223372036854775809'}}]}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value."
        "intValue: -9223372036854775809 is out of range for int64");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'startTimeUnixNano':"
        "'18446744073709551616'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: out of "
        "range: \"18446744073709551616\" (not a uint64)");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'kind':2147483648}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].kind: 2147483648 is out of "
        "range for int32");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{"
        "'exponentialHistogram':{'dataPoints':[{'scale':-2147483649}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].exponentialHistogram."
        "dataPoints[0].scale: -2147483649 is out of range for int32");
    /* Beyond int64, jansson refuses a number literal outright. */
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'startTimeUnixNano':"
        "18446744073709551615}]}]}]}",
        LK_EPROTO,
        "malformed JSON at line 1, column 84: too big integer near "
        "'18446744073709551615'");
}
END_TEST

START_TEST(error_base64)
{
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'bytesValue':'AQ$D'}}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: invalid "
        "base64 character \"$\" at offset 2");
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'bytesValue':'AQIDB'}}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: invalid "
        "base64 length 5");
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'bytesValue':'AQ='}}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: invalid "
        "base64 length 3");
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'bytesValue':'A==='}}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: invalid "
        "base64 character \"=\" at offset 1");
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'bytesValue':'AQ==AQ=='}}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: invalid "
        "base64 character \"=\" at offset 2");
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'bytesValue':'AQ\\nID'}}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: invalid "
        "base64 character \"\\x0a\" at offset 2");
}
END_TEST

START_TEST(error_malformed_json)
{
    bad(LK_SIGNAL_TRACES, "{'resourceSpans':[", LK_EPROTO,
        "malformed JSON at line 1, column 18: ']' expected near end of file");
    bad(LK_SIGNAL_TRACES, "", LK_EPROTO,
        "malformed JSON at line 1, column 0: '[' or '{' expected near end of "
        "file");
    bad(LK_SIGNAL_TRACES, "{} x", LK_EPROTO,
        "malformed JSON at line 1, column 4: end of file expected near 'x'");
    bad(LK_SIGNAL_TRACES, "{'a':NaN}", LK_EPROTO,
        "malformed JSON at line 1, column 8: invalid token near 'NaN'");
    bad(LK_SIGNAL_METRICS, "{'a':1e999}", LK_EPROTO,
        "malformed JSON at line 1, column 10: real number overflow near "
        "'1e999'");
    bad(LK_SIGNAL_LOGS, "{'a':'\\ud800'}", LK_EPROTO,
        "malformed JSON at line 1, column 13: invalid Unicode '\\uD800' near "
        "'\"\\ud800\"'");
    bad(LK_SIGNAL_LOGS, "{'a':'\xff'}", LK_EPROTO,
        "malformed JSON at line 1, column 6: unable to decode byte 0xff near "
        "'\"'");
    /* Duplicate keys, and one field under both of its names. */
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':'a','name':'b'}]}"
        "]}]}",
        LK_EPROTO,
        "malformed JSON at line 1, column 61: duplicate object key near "
        "'\"name\"'");
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'traceId':'',"
        "'trace_id':''}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0]: traceId given twice, as "
        "traceId and trace_id");
    /* Two members of one oneof. */
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'attributes':[{'key':"
        "'k','value':{'stringValue':'a','intValue':1}}]}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value: "
        "stringValue and intValue both set, but they share oneof value");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{},"
        "'sum':{}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0]: gauge and sum both "
        "set, but they share oneof data");
}
END_TEST

START_TEST(error_arguments_and_limits)
{
    lk_buf b;
    char w[64];

    lk_buf_init(&b, 1024);
    ck_assert_int_eq(lk_otlp_json_decode(LK_SIGNAL_COUNT, (const uint8_t *)"{}",
                                         2, &b, w, sizeof(w)),
                     LK_EINVAL);
    ck_assert_str_eq(w, "invalid argument");
    ck_assert_int_eq(
        lk_otlp_json_decode(LK_SIGNAL_TRACES, NULL, 2, &b, w, sizeof(w)),
        LK_EINVAL);
    /* No reason buffer: the same verdict. */
    ck_assert_int_eq(
        lk_otlp_json_decode(LK_SIGNAL_TRACES,
                            (const uint8_t *)"{\"resourceSpans\":1}", 19, &b,
                            NULL, 0),
        LK_EPROTO);
    ck_assert_int_eq(
        lk_otlp_json_decode(LK_SIGNAL_TRACES,
                            (const uint8_t *)"{\"resourceSpans\":1}", 19, &b, w,
                            0),
        LK_EPROTO);
    /* A short reason buffer gets a truncated, terminated reason. */
    ck_assert_int_eq(
        lk_otlp_json_decode(LK_SIGNAL_TRACES,
                            (const uint8_t *)"{\"resourceSpans\":1}", 19, &b, w,
                            10),
        LK_EPROTO);
    ck_assert_str_eq(w, "resourceS");
    lk_buf_fini(&b);

    /* Appending to what the buffer holds. */
    lk_buf_init(&b, 1024);
    ck_assert_int_eq(lk_buf_append(&b, "xy", 2), 0);
    ck_assert_int_eq(
        lk_otlp_json_decode(LK_SIGNAL_TRACES,
                            (const uint8_t *)"{\"resourceSpans\":[{}]}", 22, &b,
                            w, sizeof(w)),
        0);
    ck_assert_uint_eq(b.len, 4);
    ck_assert_int_eq(memcmp(b.data, "xy\x0a\x00", 4), 0);
    lk_buf_fini(&b);

    /* The output cap. */
    ck_assert_int_eq(
        decode_max(LK_SIGNAL_TRACES,
                   "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':"
                   "'0123456789'}]}]}]}",
                   10),
        LK_E2BIG);
    ck_assert_str_eq(why,
                     "the protobuf encoding exceeds the limit of 10 bytes");
    /* 18 bytes exactly fit in 18. */
    ck_assert_int_eq(
        decode_max(LK_SIGNAL_TRACES,
                   "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':"
                   "'0123456789'}]}]}]}",
                   18),
        0);
    ck_assert_uint_eq(out.len, 18);
    ck_assert_int_eq(
        decode_max(LK_SIGNAL_TRACES,
                   "{'resourceSpans':[{'scopeSpans':[{'spans':[{'name':"
                   "'0123456789'}]}]}]}",
                   17),
        LK_E2BIG);
}
END_TEST

START_TEST(error_other_types)
{
    bad(LK_SIGNAL_LOGS,
        "{'resourceLogs':[{'scopeLogs':[{'logRecords':[{'body':{"
        "'bytesValue':5}}]}]}]}",
        LK_EPROTO,
        "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue: expected "
        "a base64 string, got number");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'gauge':{"
        "'dataPoints':[{'asDouble':true}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]."
        "asDouble: expected a number (or \"NaN\", \"Infinity\", "
        "\"-Infinity\"), got boolean");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'summary':{"
        "'dataPoints':[{'quantileValues':[{'value':'1.'}]}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].summary.dataPoints[0]."
        "quantileValues[0].value: not a number: \"1.\"");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'summary':{"
        "'dataPoints':[{'sum':'2e+'}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].summary.dataPoints[0]."
        "sum: not a number: \"2e+\"");
    bad(LK_SIGNAL_METRICS,
        "{'resourceMetrics':[{'scopeMetrics':[{'metrics':[{'summary':{"
        "'dataPoints':[{'sum':'01'}]}}]}]}]}",
        LK_EPROTO,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].summary.dataPoints[0]."
        "sum: not a number: \"01\"");
    /* A long value is quoted in part. */
    bad(LK_SIGNAL_TRACES,
        "{'resourceSpans':[{'scopeSpans':[{'spans':[{'kind':"
        "'SPAN_KIND_SERVER_SPAN_KIND_SERVER_SPAN_KIND_SERVER'}]}]}]}",
        LK_EPROTO,
        "resourceSpans[0].scopeSpans[0].spans[0].kind: unknown Span.SpanKind "
        "value \"SPAN_KIND_SERVER_SPAN_KIND_SERVER_SPAN_K\"...");
    bad(LK_SIGNAL_TRACES, "{'resourceSpans':[1]}", LK_EPROTO,
        "resourceSpans[0]: expected an object, got number");
}
END_TEST

/* Base64 longer than the decoder's chunk. */
START_TEST(long_base64)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nchars = 64 * 40; /* 1920 bytes decoded */
    char *json = malloc(nchars + 256), *p;
    LogsReq *r;
    ProtobufCBinaryData b;

    ck_assert_ptr_nonnull(json);
    p = json + sprintf(json, "{'resourceLogs':[{'scopeLogs':[{'logRecords':["
                             "{'body':{'bytesValue':'");
    for (size_t i = 0; i < nchars; i++)
        *p++ = b64[i % 64];
    strcpy(p, "'}}]}]}]}");
    ok(LK_SIGNAL_LOGS, json, 1, 1);
    r = unpack_logs();
    b = r->resource_logs[0]->scope_logs[0]->log_records[0]->body->bytes_value;
    ck_assert_uint_eq(b.len, nchars / 4 * 3);
    /* Every 64 characters decode to the 48 bytes 00 10 83 10 51 87 ... */
    for (size_t i = 0; i < b.len; i += 48) {
        ck_assert_uint_eq(b.data[i], 0x00);
        ck_assert_uint_eq(b.data[i + 1], 0x10);
        ck_assert_uint_eq(b.data[i + 2], 0x83);
        ck_assert_uint_eq(b.data[i + 47], 0xbf);
    }
    same_as_protobuf_c(&r->base);
    free_msg(r);
    free(json);
}
END_TEST

/* jansson's allocations failing one after another: never a crash or a
 * wrong result. jansson reports most failures as such (LK_ENOMEM), but some,
 * inside its lexer, as a syntax error (LK_EPROTO); nothing tells them apart
 * from outside. */
static long alloc_budget;

static void *failing_malloc(size_t n)
{
    if (alloc_budget-- <= 0)
        return NULL;
    return malloc(n);
}

START_TEST(jansson_allocation_failures)
{
    long nomem = 0, other = 0, k;
    int rc = 0;

    json_set_alloc_funcs(failing_malloc, free);
    for (k = 0; k < 100000; k++) {
        alloc_budget = k;
        rc = decode(LK_SIGNAL_LOGS, logs_json);
        if (rc == LK_ENOMEM && strcmp(why, "out of memory") == 0)
            nomem++;
        else if (rc == LK_EPROTO && strncmp(why, "malformed JSON", 14) == 0)
            other++;
        else
            break;
    }
    /* Restored before any assertion can end the test. */
    json_set_alloc_funcs(malloc, free);
    ck_assert_msg(rc == 0, "allocation %ld: rc %d (%s)", k, rc, why);
    ck_assert_int_gt(nomem, 50);
    ck_assert_int_lt(other, nomem);
    decode_valid(LK_SIGNAL_LOGS, logs_json);
}
END_TEST

/* --- responses */

START_TEST(json_responses)
{
    lk_buf b;

    lk_buf_init(&b, 4096);
    ck_assert_int_eq(lk_otlp_json_response(LK_SIGNAL_TRACES, 0, NULL, &b), 0);
    ck_assert_int_eq(lk_otlp_json_response(LK_SIGNAL_LOGS, 0, "", &b), 0);
    ck_assert_uint_eq(b.len, 4);
    ck_assert_int_eq(memcmp(b.data, "{}{}", 4), 0);
    lk_buf_reset(&b);

    ck_assert_int_eq(lk_otlp_json_response(LK_SIGNAL_TRACES, 5, NULL, &b), 0);
    ck_assert_int_eq(lk_buf_append(&b, "", 1), 0);
    ck_assert_str_eq((char *)b.data,
                     "{\"partialSuccess\":{\"rejectedSpans\":\"5\"}}");
    lk_buf_reset(&b);
    ck_assert_int_eq(
        lk_otlp_json_response(LK_SIGNAL_METRICS, 3, "bad \"x\"\n", &b), 0);
    ck_assert_int_eq(lk_buf_append(&b, "", 1), 0);
    ck_assert_str_eq((char *)b.data,
                     "{\"partialSuccess\":{\"rejectedDataPoints\":\"3\","
                     "\"errorMessage\":\"bad \\\"x\\\"\\n\"}}");
    lk_buf_reset(&b);
    ck_assert_int_eq(lk_otlp_json_response(LK_SIGNAL_LOGS, 0, "warn", &b), 0);
    ck_assert_int_eq(lk_buf_append(&b, "", 1), 0);
    ck_assert_str_eq((char *)b.data,
                     "{\"partialSuccess\":{\"errorMessage\":\"warn\"}}");
    lk_buf_reset(&b);
    ck_assert_int_eq(
        lk_otlp_json_response(LK_SIGNAL_LOGS, UINT64_MAX, "a\xff", &b), 0);
    ck_assert_int_eq(lk_buf_append(&b, "", 1), 0);
    ck_assert_str_eq((char *)b.data,
                     "{\"partialSuccess\":{\"rejectedLogRecords\":"
                     "\"9223372036854775807\",\"errorMessage\":"
                     "\"a\xef\xbf\xbd\"}}");
    /* jansson reads it back. */
    {
        json_error_t e;
        json_t *j = json_loadb((char *)b.data, b.len - 1, 0, &e);
        ck_assert_ptr_nonnull(j);
        json_decref(j);
    }
    lk_buf_reset(&b);
    ck_assert_int_eq(lk_otlp_json_response(LK_SIGNAL_COUNT, 1, NULL, &b),
                     LK_EINVAL);
    lk_buf_fini(&b);
}
END_TEST

START_TEST(proto_responses)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *tr;
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse
        *mr;
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse *lr;
    char big[300];
    lk_buf b;

    lk_buf_init(&b, 4096);
    ck_assert_int_eq(lk_otlp_proto_response(LK_SIGNAL_TRACES, 0, NULL, &b), 0);
    ck_assert_int_eq(lk_otlp_proto_response(LK_SIGNAL_TRACES, 0, "", &b), 0);
    ck_assert_uint_eq(b.len, 0);

    ck_assert_int_eq(lk_otlp_proto_response(LK_SIGNAL_TRACES, 5, "why", &b), 0);
    tr =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, b.len, b.data);
    ck_assert_ptr_nonnull(tr);
    ck_assert_ptr_nonnull(tr->partial_success);
    ck_assert_int_eq(tr->partial_success->rejected_spans, 5);
    ck_assert_str_eq(tr->partial_success->error_message, "why");
    free_msg(tr);
    lk_buf_reset(&b);

    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(lk_otlp_proto_response(LK_SIGNAL_METRICS, 0, big, &b), 0);
    mr =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(
            NULL, b.len, b.data);
    ck_assert_ptr_nonnull(mr);
    ck_assert_int_eq(mr->partial_success->rejected_data_points, 0);
    ck_assert_str_eq(mr->partial_success->error_message, big);
    free_msg(mr);
    /* Minimal: tag, 2-byte length, tag, 2-byte length, 299 bytes. */
    ck_assert_uint_eq(b.len, 1 + 2 + 1 + 2 + 299);
    lk_buf_reset(&b);

    ck_assert_int_eq(
        lk_otlp_proto_response(LK_SIGNAL_LOGS, UINT64_MAX, "a\xff\xc3", &b), 0);
    lr =
        opentelemetry__proto__collector__logs__v1__export_logs_service_response__unpack(
            NULL, b.len, b.data);
    ck_assert_ptr_nonnull(lr);
    ck_assert(lr->partial_success->rejected_log_records == INT64_MAX);
    /* Invalid UTF-8 is replaced: a proto3 string must be valid. */
    ck_assert_str_eq(lr->partial_success->error_message,
                     "a\xef\xbf\xbd\xef\xbf\xbd");
    free_msg(lr);
    lk_buf_reset(&b);
    ck_assert_int_eq(lk_otlp_proto_response(LK_SIGNAL_COUNT, 1, NULL, &b),
                     LK_EINVAL);
    lk_buf_fini(&b);
}
END_TEST

static Suite *otlp_json_suite(void)
{
    Suite *s = suite_create("otlp_json");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"schema_matches_proto", schema_matches_proto},
        {"traces_every_field", traces_every_field},
        {"metrics_every_field", metrics_every_field},
        {"logs_every_field", logs_every_field},
        {"spec_like_examples", spec_like_examples},
        {"ids_either_case", ids_either_case},
        {"int64_string_or_number", int64_string_or_number},
        {"enum_name_or_number", enum_name_or_number},
        {"proto_names_accepted", proto_names_accepted},
        {"unknown_fields_and_null", unknown_fields_and_null},
        {"defaults_left_out", defaults_left_out},
        {"doubles_special_and_strings", doubles_special_and_strings},
        {"base64_variants", base64_variants},
        {"long_values", long_values},
        {"string_escapes", string_escapes},
        {"depth_limit", depth_limit},
        {"error_ids", error_ids},
        {"error_types", error_types},
        {"error_integers", error_integers},
        {"error_base64", error_base64},
        {"error_malformed_json", error_malformed_json},
        {"error_arguments_and_limits", error_arguments_and_limits},
        {"error_other_types", error_other_types},
        {"long_base64", long_base64},
        {"jansson_allocation_failures", jansson_allocation_failures},
        {"json_responses", json_responses},
        {"proto_responses", proto_responses},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(otlp_json_suite());
    int failed;

    lk_buf_init(&out, 0);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lk_buf_fini(&out);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
