/*
 * lk_otlp_validate: valid requests of every signal (hand-encoded, and packed
 * by protobuf-c from the project's proto/), then one malformation per case,
 * each checking the return code and that the reason names the field.
 */
#include "receivers/otlp_validate.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "receivers/pb_enc.h"

/* Opens resource_spans / scope_spans / spans: three e_end() close them. */
static void begin_span(struct enc *e)
{
    e_begin(e, 1);
    e_begin(e, 2);
    e_begin(e, 2);
}

/* Opens resource_logs / scope_logs / log_records. */
static void begin_log(struct enc *e)
{
    e_begin(e, 1);
    e_begin(e, 2);
    e_begin(e, 2);
}

/* Opens resource_metrics / scope_metrics / metrics / |kind| / data_points. */
static void begin_point(struct enc *e, uint32_t kind)
{
    e_begin(e, 1);
    e_begin(e, 2);
    e_begin(e, 2);
    e_begin(e, kind);
    e_begin(e, 1);
}


static const uint8_t id16[16] = {1, 2,  3,  4,  5,  6,  7,  8,
                                 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t id8[8] = {1, 2, 3, 4, 5, 6, 7, 8};

static char why[512];
static struct lk_otlp_counts counts;

static int run(enum lk_signal sig, const struct enc *e)
{
    memset(why, 'x', sizeof(why));
    why[sizeof(why) - 1] = '\0';
    return lk_otlp_validate(sig, e->buf, e->len, &counts, why, sizeof(why));
}

#define ASSERT_OK(sig, e, nitems, nres)                                        \
    do {                                                                       \
        int rc_ = run((sig), (e));                                             \
        ck_assert_msg(rc_ == 0, "rc %d: %s", rc_, why);                        \
        ck_assert_uint_eq(counts.items, (nitems));                             \
        ck_assert_uint_eq(counts.resources, (nres));                           \
    } while (0)

#define ASSERT_FAIL(sig, e, code, needle)                                      \
    do {                                                                       \
        int rc_ = run((sig), (e));                                             \
        ck_assert_msg(rc_ == (code), "rc %d, want %d: %s", rc_, (code), why);  \
        ck_assert_msg(strstr(why, (needle)) != NULL,                           \
                      "reason \"%s\" lacks \"%s\"", why, (needle));            \
    } while (0)

/* A span with every field of the schema set. */
static void put_full_span(struct enc *e, const char *name)
{
    e_bytes(e, 1, id16, 16);
    e_bytes(e, 2, id8, 8);
    e_str(e, 3, "rojo=00f067aa0ba902b7");
    e_bytes(e, 4, id8, 8);
    e_str(e, 5, name);
    e_uint(e, 6, 2);
    e_fixed64(e, 7, 1700000000000000000ull);
    e_fixed64(e, 8, 1700000000000001000ull);
    e_kv_str(e, 9, "http.method", "GET");
    e_begin(e, 9); /* every AnyValue kind */
    e_str(e, 1, "mixed");
    e_begin(e, 2);
    e_begin(e, 5); /* array_value */
    e_begin(e, 1);
    e_uint(e, 2, 1); /* bool */
    e_end(e);
    e_begin(e, 1);
    e_uint(e, 3, (uint64_t)-5); /* int, 10-byte varint */
    e_end(e);
    e_begin(e, 1);
    e_fixed64(e, 4, 0x400921fb54442d18ull); /* double */
    e_end(e);
    e_begin(e, 1);
    e_bytes(e, 7, "\xff\xfe", 2); /* bytes: no UTF-8 check */
    e_end(e);
    e_begin(e, 1);
    e_begin(e, 6); /* kvlist_value */
    e_kv_str(e, 1, "inner", "v\xc3\xa9");
    e_end(e);
    e_end(e);
    e_begin(e, 1);
    e_uint(e, 8, 3); /* string_value_strindex */
    e_end(e);
    e_end(e);        /* array_value */
    e_end(e);        /* value */
    e_uint(e, 3, 0); /* key_strindex */
    e_end(e);        /* attribute */
    e_uint(e, 10, 1);
    e_begin(e, 11); /* event */
    e_fixed64(e, 1, 5);
    e_str(e, 2, "exception");
    e_kv_str(e, 3, "exception.type", "E");
    e_uint(e, 4, 0);
    e_end(e);
    e_uint(e, 12, 0);
    e_begin(e, 13); /* link */
    e_bytes(e, 1, id16, 16);
    e_bytes(e, 2, id8, 8);
    e_str(e, 3, "");
    e_kv_str(e, 4, "k", "v");
    e_uint(e, 5, 0);
    e_fixed32(e, 6, 0x301);
    e_end(e);
    e_uint(e, 14, 0);
    e_begin(e, 15); /* status */
    e_str(e, 2, "boom");
    e_uint(e, 3, 2);
    e_end(e);
    e_fixed32(e, 16, 0x101);
}

/* --- valid requests, hand-encoded */

START_TEST(traces_valid_counts)
{
    struct enc e;
    e_init(&e);
    /* resource 0: resource attrs + entity ref, two scopes with 2 + 1 spans */
    e_begin(&e, 1);
    e_begin(&e, 1);
    e_kv_str(&e, 1, "service.name", "checkout");
    e_uint(&e, 2, 0);
    e_begin(&e, 3);
    e_str(&e, 1, "https://x");
    e_str(&e, 2, "service");
    e_str(&e, 3, "service.name");
    e_str(&e, 4, "service.version");
    e_end(&e);
    e_end(&e);
    for (int s = 0; s < 2; s++) {
        e_begin(&e, 2);
        e_begin(&e, 1);
        e_str(&e, 1, "io.opentelemetry.contrib");
        e_str(&e, 2, "1.0");
        e_kv_str(&e, 3, "a", "b");
        e_uint(&e, 4, 0);
        e_end(&e);
        for (int i = 0; i < 2 - s; i++) {
            e_begin(&e, 2);
            put_full_span(&e, "GET /");
            e_end(&e);
        }
        e_str(&e, 3, "https://opentelemetry.io/schemas/1.21.0");
        e_end(&e);
    }
    e_str(&e, 3, "https://opentelemetry.io/schemas/1.21.0");
    e_end(&e);
    /* resource 1: one empty span; resource 2: nothing at all */
    begin_span(&e);
    e_end_n(&e, 3);
    e_begin(&e, 1);
    e_end(&e);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 4, 3);
    e_fini(&e);
}
END_TEST

START_TEST(empty_requests)
{
    struct enc e;
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_TRACES, NULL, 0, &counts, why, sizeof(why)),
        0);
    ck_assert_uint_eq(counts.items, 0);
    ck_assert_uint_eq(counts.resources, 0);
    ck_assert_int_eq(lk_otlp_validate(LK_SIGNAL_METRICS, (const uint8_t *)"", 0,
                                      &counts, NULL, 0),
                     0);
    ck_assert_int_eq(lk_otlp_validate(LK_SIGNAL_LOGS, NULL, 0, &counts, why, 0),
                     0);
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_end_n(&e, 2);
    ASSERT_OK(LK_SIGNAL_LOGS, &e, 0, 1);
    ASSERT_OK(LK_SIGNAL_METRICS, &e, 0, 1);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 0, 1);
    e_fini(&e);
}
END_TEST

START_TEST(invalid_arguments)
{
    uint8_t b[2] = {0x0a, 0x00};
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_COUNT, b, 2, &counts, why, sizeof(why)),
        LK_EINVAL);
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_TRACES, NULL, 2, &counts, why, sizeof(why)),
        LK_EINVAL);
}
END_TEST

static void put_exemplar(struct enc *e, uint32_t num)
{
    e_begin(e, num);
    e_kv_str(e, 7, "user", "u1");
    e_fixed64(e, 2, 9);
    e_fixed64(e, 3, 0x3ff0000000000000ull);
    e_bytes(e, 4, id8, 8);
    e_bytes(e, 5, id16, 16);
    e_end(e);
}

START_TEST(metrics_valid_every_type)
{
    struct enc e;
    uint8_t packed[24] = {0};
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 1);
    e_kv_str(&e, 1, "service.name", "api");
    e_end(&e);
    e_begin(&e, 2);
    e_begin(&e, 1);
    e_str(&e, 1, "meter");
    e_end(&e);

    /* gauge: 2 points, double and int */
    e_begin(&e, 2);
    e_str(&e, 1, "temp");
    e_str(&e, 2, "temperature");
    e_str(&e, 3, "Cel");
    e_begin(&e, 5);
    e_begin(&e, 1);
    e_kv_str(&e, 7, "room", "a");
    e_fixed64(&e, 2, 1);
    e_fixed64(&e, 3, 2);
    e_fixed64(&e, 4, 0x4034000000000000ull);
    put_exemplar(&e, 5);
    e_uint(&e, 8, 0);
    e_end(&e);
    e_begin(&e, 1);
    e_fixed64(&e, 6, (uint64_t)-3); /* as_int: sfixed64 */
    e_end(&e);
    e_end(&e);
    e_kv_str(&e, 12, "meta", "data");
    e_end(&e);

    /* sum: 3 points */
    e_begin(&e, 2);
    e_str(&e, 1, "requests");
    e_begin(&e, 7);
    for (int i = 0; i < 3; i++) {
        e_begin(&e, 1);
        e_fixed64(&e, 6, (uint64_t)i);
        e_end(&e);
    }
    e_uint(&e, 2, 2);
    e_uint(&e, 3, 1);
    e_end(&e);
    e_end(&e);

    /* histogram: 2 points, one packed, one unpacked */
    e_begin(&e, 2);
    e_str(&e, 1, "latency");
    e_begin(&e, 9);
    e_begin(&e, 1);
    e_fixed64(&e, 4, 3);
    e_fixed64(&e, 5, 0x4000000000000000ull);
    e_bytes(&e, 6, packed, 24); /* 3 bucket counts */
    e_bytes(&e, 7, packed, 16); /* 2 bounds */
    put_exemplar(&e, 8);
    e_kv_str(&e, 9, "route", "/");
    e_uint(&e, 10, 1);
    e_fixed64(&e, 11, 0);
    e_fixed64(&e, 12, 0);
    e_end(&e);
    e_begin(&e, 1);
    e_fixed64(&e, 6, 1); /* unpacked bucket_counts */
    e_fixed64(&e, 6, 2);
    e_fixed64(&e, 7, 0x3ff0000000000000ull); /* unpacked bound */
    e_bytes(&e, 7, NULL, 0);                 /* empty packed run */
    e_end(&e);
    e_uint(&e, 2, 1);
    e_end(&e);
    e_end(&e);

    /* exponential histogram: 2 points */
    e_begin(&e, 2);
    e_str(&e, 1, "size");
    e_begin(&e, 10);
    e_begin(&e, 1);
    e_kv_str(&e, 1, "k", "v");
    e_fixed64(&e, 4, 6);
    e_uint(&e, 6, 3); /* sint32 scale -2 */
    e_fixed64(&e, 7, 1);
    e_begin(&e, 8); /* positive, packed */
    e_uint(&e, 1, 1);
    e_bytes(&e, 2, "\x01\x02\xac\x02", 4);
    e_end(&e);
    e_begin(&e, 9); /* negative, unpacked */
    e_uint(&e, 2, 7);
    e_uint(&e, 2, 300);
    e_end(&e);
    e_uint(&e, 10, 0);
    put_exemplar(&e, 11);
    e_fixed64(&e, 12, 0);
    e_fixed64(&e, 13, 0);
    e_fixed64(&e, 14, 0);
    e_end(&e);
    e_begin(&e, 1);
    e_end(&e);
    e_uint(&e, 2, 2);
    e_end(&e);
    e_end(&e);

    /* summary: 1 point */
    e_begin(&e, 2);
    e_str(&e, 1, "rpc");
    e_begin(&e, 11);
    e_begin(&e, 1);
    e_fixed64(&e, 4, 10);
    e_fixed64(&e, 5, 0);
    e_begin(&e, 6);
    e_fixed64(&e, 1, 0x3fe0000000000000ull);
    e_fixed64(&e, 2, 0);
    e_end(&e);
    e_kv_str(&e, 7, "k", "v");
    e_uint(&e, 8, 0);
    e_end(&e);
    e_end(&e);
    e_end(&e);

    /* a metric with no data at all */
    e_begin(&e, 2);
    e_str(&e, 1, "empty");
    e_end(&e);

    e_end(&e); /* scope_metrics */
    e_end(&e); /* resource_metrics */
    ASSERT_OK(LK_SIGNAL_METRICS, &e, 2 + 3 + 2 + 2 + 1, 1);
    e_fini(&e);
}
END_TEST

START_TEST(logs_valid_counts)
{
    struct enc e;
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 1);
    e_kv_str(&e, 1, "service.name", "api");
    e_end(&e);
    e_begin(&e, 2);
    e_begin(&e, 1);
    e_str(&e, 1, "zerolog");
    e_end(&e);
    for (int i = 0; i < 3; i++) {
        e_begin(&e, 2);
        e_fixed64(&e, 1, 1);
        e_fixed64(&e, 11, 2);
        e_uint(&e, 2, 9);
        e_str(&e, 3, "INFO");
        e_begin(&e, 5);
        if (i == 0) {
            e_str(&e, 1, "hello w\xc3\xb6rld");
        } else {
            e_begin(&e, 6);
            e_kv_str(&e, 1, "msg", "structured");
            e_end(&e);
        }
        e_end(&e);
        e_kv_str(&e, 6, "k", "v");
        e_uint(&e, 7, 0);
        e_fixed32(&e, 8, 1);
        e_bytes(&e, 9, id16, i == 2 ? 0 : 16);
        e_bytes(&e, 10, id8, i == 2 ? 0 : 8);
        e_str(&e, 12, "app.started");
        e_end(&e);
    }
    e_str(&e, 3, "https://x");
    e_end(&e);
    e_end(&e);
    ASSERT_OK(LK_SIGNAL_LOGS, &e, 3, 1);
    e_fini(&e);
}
END_TEST

/* --- valid requests packed by protobuf-c */

typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;

static void kv_string(KeyValue *kv, AnyValue *v, const char *k, const char *s)
{
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    kv->key = (char *)k;
    kv->value = v;
    v->value_case =
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = (char *)s;
}

static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *n)
{
    uint8_t *b;
    *n = protobuf_c_message_get_packed_size(m);
    b = malloc(*n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(protobuf_c_message_pack(m, b), *n);
    return b;
}

START_TEST(traces_protobuf_c)
{
    enum { NR = 2, NS = 2, NP = 5, NA = 4 };
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs[NR], *rsp[NR];
    Opentelemetry__Proto__Resource__V1__Resource res[NR];
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss[NR][NS], *ssp[NR][NS];
    Opentelemetry__Proto__Common__V1__InstrumentationScope scope;
    Opentelemetry__Proto__Trace__V1__Span sp[NR][NS][NP], *spp[NR][NS][NP];
    Opentelemetry__Proto__Trace__V1__Span__Event ev, *evp = &ev;
    Opentelemetry__Proto__Trace__V1__Span__Link ln, *lnp = &ln;
    Opentelemetry__Proto__Trace__V1__Status st;
    KeyValue kv[NA], *kvp[NA];
    AnyValue av[NA];
    uint8_t *b;
    size_t n;

    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(
        &req);
    opentelemetry__proto__common__v1__instrumentation_scope__init(&scope);
    scope.name = "lib";
    scope.version = "1.2.3";
    opentelemetry__proto__trace__v1__span__event__init(&ev);
    ev.name = "ev";
    ev.time_unix_nano = 77;
    opentelemetry__proto__trace__v1__span__link__init(&ln);
    ln.trace_id.data = (uint8_t *)id16;
    ln.trace_id.len = 16;
    ln.span_id.data = (uint8_t *)id8;
    ln.span_id.len = 8;
    opentelemetry__proto__trace__v1__status__init(&st);
    st.message = "oops";
    st.code =
        OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    kv_string(&kv[0], &av[0], "http.route", "/api/v1/users/{id}");
    kv_string(&kv[1], &av[1], "net.peer.name", "db.internal");
    opentelemetry__proto__common__v1__key_value__init(&kv[2]);
    opentelemetry__proto__common__v1__any_value__init(&av[2]);
    kv[2].key = "retries";
    kv[2].value = &av[2];
    av[2].value_case =
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    av[2].int_value = -1;
    opentelemetry__proto__common__v1__key_value__init(&kv[3]);
    opentelemetry__proto__common__v1__any_value__init(&av[3]);
    kv[3].key = "ratio";
    kv[3].value = &av[3];
    av[3].value_case =
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    av[3].double_value = 0.25;
    for (int a = 0; a < NA; a++)
        kvp[a] = &kv[a];

    for (int r = 0; r < NR; r++) {
        opentelemetry__proto__trace__v1__resource_spans__init(&rs[r]);
        opentelemetry__proto__resource__v1__resource__init(&res[r]);
        res[r].n_attributes = 2;
        res[r].attributes = kvp;
        rs[r].resource = &res[r];
        rs[r].schema_url = "https://opentelemetry.io/schemas/1.21.0";
        rs[r].n_scope_spans = NS;
        rs[r].scope_spans = ssp[r];
        rsp[r] = &rs[r];
        for (int s = 0; s < NS; s++) {
            opentelemetry__proto__trace__v1__scope_spans__init(&ss[r][s]);
            ss[r][s].scope = &scope;
            ss[r][s].n_spans = NP;
            ss[r][s].spans = spp[r][s];
            ssp[r][s] = &ss[r][s];
            for (int i = 0; i < NP; i++) {
                Opentelemetry__Proto__Trace__V1__Span *x = &sp[r][s][i];
                opentelemetry__proto__trace__v1__span__init(x);
                x->trace_id.data = (uint8_t *)id16;
                x->trace_id.len = 16;
                x->span_id.data = (uint8_t *)id8;
                x->span_id.len = 8;
                if (i > 0) {
                    x->parent_span_id.data = (uint8_t *)id8;
                    x->parent_span_id.len = 8;
                }
                x->name = "SELECT users";
                x->kind =
                    OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
                x->start_time_unix_nano = 1700000000000000000ull;
                x->end_time_unix_nano = 1700000000000500000ull;
                x->n_attributes = NA;
                x->attributes = kvp;
                x->n_events = 1;
                x->events = &evp;
                x->n_links = 1;
                x->links = &lnp;
                x->status = &st;
                x->flags = 0x301;
                spp[r][s][i] = x;
            }
        }
    }
    req.n_resource_spans = NR;
    req.resource_spans = rsp;
    b = pack_msg(&req.base, &n);
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_TRACES, b, n, &counts, why, sizeof(why)), 0);
    ck_assert_uint_eq(counts.items, NR * NS * NP);
    ck_assert_uint_eq(counts.resources, NR);

    /* The same request with one span name made invalid UTF-8. */
    sp[1][0][3].name = "bad \xc3\x28 name";
    free(b);
    b = pack_msg(&req.base, &n);
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_TRACES, b, n, &counts, why, sizeof(why)),
        LK_EUTF8);
    ck_assert_str_eq(why, "resource_spans[1].scope_spans[0].spans[3].name: "
                          "invalid UTF-8 at byte 4 of 11");
    free(b);
}
END_TEST

START_TEST(metrics_protobuf_c)
{
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
        req;
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm, *rmp = &rm;
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm, *smp = &sm;
    Opentelemetry__Proto__Metrics__V1__Metric m[5], *mp[5];
    Opentelemetry__Proto__Metrics__V1__Gauge gauge;
    Opentelemetry__Proto__Metrics__V1__Sum sum;
    Opentelemetry__Proto__Metrics__V1__Histogram hist;
    Opentelemetry__Proto__Metrics__V1__ExponentialHistogram ehist;
    Opentelemetry__Proto__Metrics__V1__Summary summ;
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint ndp[3], *ndpp[3];
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint hdp[2], *hdpp[2];
    Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint edp,
        *edpp = &edp;
    Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets
        pos;
    Opentelemetry__Proto__Metrics__V1__SummaryDataPoint sdp[4], *sdpp[4];
    Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile q,
        *qp = &q;
    Opentelemetry__Proto__Metrics__V1__Exemplar ex, *exp_ = &ex;
    KeyValue kv, *kvp = &kv;
    AnyValue av;
    uint64_t buckets[4] = {1, 2, 3, 4};
    double bounds[3] = {0.5, 1, 2.5};
    uint64_t ebuckets[3] = {1, 300, 70000};
    uint8_t *b;
    size_t n;

    kv_string(&kv, &av, "host", "h1");
    opentelemetry__proto__metrics__v1__exemplar__init(&ex);
    ex.value_case =
        OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
    ex.as_double = 1.5;
    ex.trace_id.data = (uint8_t *)id16;
    ex.trace_id.len = 16;
    ex.span_id.data = (uint8_t *)id8;
    ex.span_id.len = 8;
    for (int i = 0; i < 3; i++) {
        opentelemetry__proto__metrics__v1__number_data_point__init(&ndp[i]);
        ndp[i].n_attributes = 1;
        ndp[i].attributes = &kvp;
        ndp[i].value_case =
            OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
        ndp[i].as_int = i;
        ndp[i].n_exemplars = 1;
        ndp[i].exemplars = &exp_;
        ndpp[i] = &ndp[i];
    }
    opentelemetry__proto__metrics__v1__gauge__init(&gauge);
    gauge.n_data_points = 1;
    gauge.data_points = ndpp;
    opentelemetry__proto__metrics__v1__sum__init(&sum);
    sum.n_data_points = 3;
    sum.data_points = ndpp;
    sum.is_monotonic = 1;
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__metrics__v1__histogram_data_point__init(&hdp[i]);
        hdp[i].count = 10;
        hdp[i].n_bucket_counts = 4;
        hdp[i].bucket_counts = buckets;
        hdp[i].n_explicit_bounds = 3;
        hdp[i].explicit_bounds = bounds;
        hdp[i]._sum_case =
            OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
        hdp[i].sum = 12.5;
        hdpp[i] = &hdp[i];
    }
    opentelemetry__proto__metrics__v1__histogram__init(&hist);
    hist.n_data_points = 2;
    hist.data_points = hdpp;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(
        &pos);
    pos.offset = -2;
    pos.n_bucket_counts = 3;
    pos.bucket_counts = ebuckets;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(
        &edp);
    edp.scale = -1;
    edp.positive = &pos;
    edp.negative = &pos;
    opentelemetry__proto__metrics__v1__exponential_histogram__init(&ehist);
    ehist.n_data_points = 1;
    ehist.data_points = &edpp;
    opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__init(
        &q);
    q.quantile = 0.99;
    q.value = 3;
    for (int i = 0; i < 4; i++) {
        opentelemetry__proto__metrics__v1__summary_data_point__init(&sdp[i]);
        sdp[i].n_quantile_values = 1;
        sdp[i].quantile_values = &qp;
        sdpp[i] = &sdp[i];
    }
    opentelemetry__proto__metrics__v1__summary__init(&summ);
    summ.n_data_points = 4;
    summ.data_points = sdpp;
    for (int i = 0; i < 5; i++) {
        opentelemetry__proto__metrics__v1__metric__init(&m[i]);
        m[i].name = "m";
        mp[i] = &m[i];
    }
    m[0].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
    m[0].gauge = &gauge;
    m[1].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
    m[1].sum = &sum;
    m[2].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    m[2].histogram = &hist;
    m[3].data_case =
        OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m[3].exponential_histogram = &ehist;
    m[4].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY;
    m[4].summary = &summ;
    opentelemetry__proto__metrics__v1__scope_metrics__init(&sm);
    sm.n_metrics = 5;
    sm.metrics = mp;
    opentelemetry__proto__metrics__v1__resource_metrics__init(&rm);
    rm.n_scope_metrics = 1;
    rm.scope_metrics = &smp;
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__init(
        &req);
    req.n_resource_metrics = 1;
    req.resource_metrics = &rmp;

    b = pack_msg(&req.base, &n);
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_METRICS, b, n, &counts, why, sizeof(why)),
        0);
    ck_assert_uint_eq(counts.items, 1 + 3 + 2 + 1 + 4);
    ck_assert_uint_eq(counts.resources, 1);
    free(b);

    ex.trace_id.len = 15;
    b = pack_msg(&req.base, &n);
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_METRICS, b, n, &counts, why, sizeof(why)),
        LK_EPROTO);
    ck_assert_str_eq(why, "resource_metrics[0].scope_metrics[0].metrics[0]."
                          "gauge.data_points[0].exemplars[0].trace_id: "
                          "length 15, want 16 or 0");
    free(b);
}
END_TEST

START_TEST(logs_protobuf_c)
{
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest req;
    Opentelemetry__Proto__Logs__V1__ResourceLogs rl[3], *rlp[3];
    Opentelemetry__Proto__Logs__V1__ScopeLogs sl, *slp = &sl;
    Opentelemetry__Proto__Logs__V1__LogRecord lr[7], *lrp[7];
    AnyValue body;
    KeyValue kv, *kvp = &kv;
    AnyValue av;
    uint8_t *b;
    size_t n;

    kv_string(&kv, &av, "logger", "main");
    opentelemetry__proto__common__v1__any_value__init(&body);
    body.value_case =
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    body.string_value = "request served";
    for (int i = 0; i < 7; i++) {
        opentelemetry__proto__logs__v1__log_record__init(&lr[i]);
        lr[i].time_unix_nano = 1;
        lr[i].severity_number =
            OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO;
        lr[i].severity_text = "INFO";
        lr[i].body = &body;
        lr[i].n_attributes = 1;
        lr[i].attributes = &kvp;
        lr[i].trace_id.data = (uint8_t *)id16;
        lr[i].trace_id.len = 16;
        lr[i].span_id.data = (uint8_t *)id8;
        lr[i].span_id.len = 8;
        lrp[i] = &lr[i];
    }
    opentelemetry__proto__logs__v1__scope_logs__init(&sl);
    sl.n_log_records = 7;
    sl.log_records = lrp;
    for (int i = 0; i < 3; i++) {
        opentelemetry__proto__logs__v1__resource_logs__init(&rl[i]);
        rl[i].n_scope_logs = 1;
        rl[i].scope_logs = &slp;
        rlp[i] = &rl[i];
    }
    opentelemetry__proto__collector__logs__v1__export_logs_service_request__init(
        &req);
    req.n_resource_logs = 3;
    req.resource_logs = rlp;
    b = pack_msg(&req.base, &n);
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_LOGS, b, n, &counts, why, sizeof(why)), 0);
    ck_assert_uint_eq(counts.items, 21);
    ck_assert_uint_eq(counts.resources, 3);
    free(b);

    body.string_value = "\xed\xa0\x80 surrogate";
    b = pack_msg(&req.base, &n);
    ck_assert_int_eq(
        lk_otlp_validate(LK_SIGNAL_LOGS, b, n, &counts, why, sizeof(why)),
        LK_EUTF8);
    ck_assert_str_eq(why, "resource_logs[0].scope_logs[0].log_records[0].body."
                          "string_value: invalid UTF-8 at byte 0 of 13");
    free(b);
}
END_TEST

/* --- wire structure */

START_TEST(truncated_varint)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_str(&e, 5, "x");
    e_tag(&e, 6, WT_VARINT);
    e_raw(&e, "\x80\x80", 2); /* continuation bits to the end */
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "resource_spans[0].scope_spans[0].spans[0].kind: varint "
                "truncated");
    e_fini(&e);

    /* at the very end of the request */
    e_init(&e);
    e_tag(&e, 7, WT_VARINT);
    e_raw(&e, "\xff", 1);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO, "(field 7): varint truncated");
    e_fini(&e);
}
END_TEST

START_TEST(varint_too_long)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_tag(&e, 10, WT_VARINT);
    e_raw(&e, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "spans[0].dropped_attributes_count: varint longer than 10 bytes");
    e_fini(&e);

    /* 10 bytes, but the last one carries bits past 64 */
    e_init(&e);
    begin_span(&e);
    e_tag(&e, 10, WT_VARINT);
    e_raw(&e, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].dropped_attributes_count: varint overflows 64 bits");
    e_fini(&e);

    /* the largest 64-bit value is fine */
    e_init(&e);
    begin_span(&e);
    e_tag(&e, 10, WT_VARINT);
    e_raw(&e, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
    e_end_n(&e, 3);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 1, 1);
    e_fini(&e);
}
END_TEST

START_TEST(bad_tags)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_raw(&e, "\x82", 1); /* tag varint cut by the end of the span */
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "resource_spans[0].scope_spans[0].spans[0]: tag varint truncated");
    e_fini(&e);

    /* tag longer than 5 bytes */
    e_init(&e);
    e_raw(&e, "\x8a\x80\x80\x80\x80\x00", 6);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "ExportTraceServiceRequest: tag varint longer than 5 bytes");
    e_fini(&e);

    /* field number above 2^29 - 1 */
    e_init(&e);
    e_raw(&e, "\xf8\xff\xff\xff\x1f\x00", 6);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "invalid field number 1073741823");
    e_fini(&e);
}
END_TEST

START_TEST(field_zero)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_str(&e, 5, "ok");
    e_uint(&e, 0, 1);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "resource_spans[0].scope_spans[0].spans[0]: invalid field number 0");
    e_fini(&e);

    e_init(&e);
    e_bytes(&e, 0, "", 0);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "ExportLogsServiceRequest: invalid field number 0");
    e_fini(&e);
}
END_TEST

START_TEST(length_past_end)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_tag(&e, 5, WT_LEN);
    e_varint(&e, 50);
    e_raw(&e, "abc", 3);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].name: length 50 exceeds the 3 bytes left");
    e_fini(&e);

    /* a child message longer than its parent, though within the request */
    e_init(&e);
    e_begin(&e, 1);
    e_tag(&e, 2, WT_LEN);
    e_varint(&e, 4);
    e_end(&e);
    e_raw(&e, "\x00\x00\x00\x00", 4);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "resource_spans[0].scope_spans[0]: length 4 exceeds the 0 bytes");
    e_fini(&e);

    /* a huge length (2^34) and a length prefix of 6 bytes */
    e_init(&e);
    e_tag(&e, 1, WT_LEN);
    e_varint(&e, 1ull << 34);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "resource_spans[0]: length 17179869184 exceeds");
    e_fini(&e);
    e_init(&e);
    e_tag(&e, 1, WT_LEN);
    e_raw(&e, "\x80\x80\x80\x80\x80\x00", 6);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "resource_spans[0]: length prefix longer than 5 bytes");
    e_fini(&e);

    /* length prefix missing at the end */
    e_init(&e);
    e_tag(&e, 1, WT_LEN);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "resource_spans[0]: length prefix missing");
    e_fini(&e);

    /* fixed64 cut short */
    e_init(&e);
    begin_span(&e);
    e_tag(&e, 7, WT_I64);
    e_raw(&e, "\x01\x02\x03", 3);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "spans[0].start_time_unix_nano: 8-byte value truncated: 3 bytes left");
    e_fini(&e);
}
END_TEST

START_TEST(wrong_wire_type_known_field)
{
    struct enc e;

    e_init(&e); /* string sent as varint */
    begin_span(&e);
    e_uint(&e, 5, 7);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "spans[0].name: wire type 0 (varint), want 2 (length-delimited)");
    e_fini(&e);

    e_init(&e); /* fixed64 sent as varint */
    begin_span(&e);
    e_uint(&e, 8, 7);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "spans[0].end_time_unix_nano: wire type 0 (varint), want 1 (64-bit)");
    e_fini(&e);

    e_init(&e); /* fixed32 sent as fixed64 */
    begin_span(&e);
    e_fixed64(&e, 16, 1);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].flags: wire type 1 (64-bit), want 5 (32-bit)");
    e_fini(&e);

    e_init(&e); /* enum sent as length-delimited */
    begin_span(&e);
    e_bytes(&e, 6, "\x01", 1);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "spans[0].kind: wire type 2 (length-delimited), want 0 (varint)");
    e_fini(&e);

    e_init(&e); /* repeated message sent as fixed32 */
    begin_span(&e);
    e_str(&e, 5, "n");
    e_fixed32(&e, 9, 1);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].attributes[0]: wire type 5 (32-bit), want 2");
    e_fini(&e);

    e_init(&e); /* bytes id sent as fixed64 */
    begin_log(&e);
    e_fixed64(&e, 9, 1);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "log_records[0].trace_id: wire type 1 (64-bit), want 2");
    e_fini(&e);

    e_init(&e); /* packed fixed64 field sent as varint */
    begin_point(&e, 9);
    e_uint(&e, 6, 1);
    e_end_n(&e, 5);
    ASSERT_FAIL(LK_SIGNAL_METRICS, &e, LK_EPROTO,
                "data_points[0].bucket_counts[0]: wire type 0 (varint), want 1 "
                "(64-bit) or 2 (packed)");
    e_fini(&e);
}
END_TEST

START_TEST(group_and_invalid_wire_types)
{
    struct enc e;

    e_init(&e); /* unknown field as a group */
    begin_span(&e);
    e_tag(&e, 99, WT_SGROUP);
    e_tag(&e, 99, 4);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "spans[0].(field 99): wire type 3 (start group) is not supported");
    e_fini(&e);

    e_init(&e); /* known field as a group */
    begin_span(&e);
    e_tag(&e, 15, WT_SGROUP);
    e_tag(&e, 15, 4);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].status: wire type 3 (start group) is not supported");
    e_fini(&e);

    e_init(&e); /* end group alone, top level */
    e_tag(&e, 2, 4);
    ASSERT_FAIL(LK_SIGNAL_METRICS, &e, LK_EPROTO,
                "(field 2): wire type 4 (end group) is not supported");
    e_fini(&e);

    e_init(&e); /* wire types 6 and 7 */
    e_tag(&e, 1, 6);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "resource_spans[0]: invalid wire type 6");
    e_fini(&e);
    e_init(&e);
    begin_span(&e);
    e_tag(&e, 40, 7);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].(field 40): invalid wire type 7");
    e_fini(&e);
}
END_TEST

/* --- UTF-8 in string fields, not in bytes fields */

START_TEST(utf8_span_name)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_str(&e, 5, "GET /caf\xe9"); /* Latin-1, not UTF-8 */
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EUTF8,
                "resource_spans[0].scope_spans[0].spans[0].name: invalid UTF-8 "
                "at byte 8 of 9");
    e_fini(&e);

    /* Around the sizes where the ASCII fast path hands over. */
    static const size_t sizes[] = {1, 7, 8, 9, 31, 32, 33, 40, 200};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char s[201], needle[64];
        memset(s, 'a', sizes[i]);
        s[sizes[i]] = '\0';
        s[sizes[i] - 1] = (char)0xc3; /* a lead byte cut by the end */
        e_init(&e);
        begin_span(&e);
        e_str(&e, 5, s);
        e_end_n(&e, 3);
        snprintf(needle, sizeof(needle),
                 "name: invalid UTF-8 at byte %zu of %zu", sizes[i] - 1,
                 sizes[i]);
        ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EUTF8, needle);
        e.len = 0;
        s[sizes[i] - 1] = 'z';
        begin_span(&e);
        e_str(&e, 5, s);
        e_end_n(&e, 3);
        ASSERT_OK(LK_SIGNAL_TRACES, &e, 1, 1);
        e_fini(&e);
    }
}
END_TEST

START_TEST(utf8_attribute_key)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_kv_str(&e, 9, "ok", "ok");
    e_kv_str(&e, 9, "k\xc0\xafy", "v"); /* overlong '/' */
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EUTF8,
                "spans[0].attributes[1].key: invalid UTF-8");
    e_fini(&e);
}
END_TEST

START_TEST(utf8_string_any_value)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_begin(&e, 9);
    e_str(&e, 1, "list");
    e_begin(&e, 2);
    e_begin(&e, 5);
    e_begin(&e, 1);
    e_str(&e, 1, "fine");
    e_end(&e);
    e_begin(&e, 1);
    e_str(&e, 1, "\xf4\x90\x80\x80"); /* above U+10FFFF */
    e_end(&e);
    e_end_n(&e, 3);
    e_end_n(&e, 3);
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EUTF8,
        "spans[0].attributes[0].value.array_value.values[1].string_value:"
        " invalid UTF-8 at byte 0 of 4");
    e_fini(&e);
}
END_TEST

START_TEST(utf8_resource_attribute)
{
    struct enc e;
    e_init(&e);
    e_begin(&e, 1);
    e_end(&e);
    e_begin(&e, 1);
    e_begin(&e, 1);
    e_kv_str(&e, 1, "service.name", "ok");
    e_kv_str(&e, 1, "host.name", "trunc\xe2\x82");
    e_end_n(&e, 2);
    ASSERT_FAIL(
        LK_SIGNAL_METRICS, &e, LK_EUTF8,
        "resource_metrics[1].resource.attributes[1].value.string_value: "
        "invalid UTF-8 at byte 5 of 7");
    e_fini(&e);
}
END_TEST

START_TEST(utf8_log_body_and_scope)
{
    struct enc e;
    e_init(&e);
    begin_log(&e);
    e_end(&e);
    e_begin(&e, 2);
    e_begin(&e, 5);
    e_str(&e, 1, "\x80");
    e_end_n(&e, 4);
    ASSERT_FAIL(
        LK_SIGNAL_LOGS, &e, LK_EUTF8,
        "resource_logs[0].scope_logs[0].log_records[1].body.string_value");
    e_fini(&e);

    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_begin(&e, 1);
    e_str(&e, 2, "v\xff");
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EUTF8,
                "resource_logs[0].scope_logs[0].scope.version: invalid UTF-8");
    e_fini(&e);
}
END_TEST

START_TEST(bytes_not_utf8_checked)
{
    struct enc e;
    e_init(&e);
    begin_log(&e);
    e_begin(&e, 5);
    e_bytes(&e, 7, "\xff\xfe\x00\xc0", 4);
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_OK(LK_SIGNAL_LOGS, &e, 1, 1);
    e_fini(&e);
}
END_TEST

/* --- id lengths */

START_TEST(span_id_lengths)
{
    static const struct {
        uint32_t field;
        size_t len;
        const char *needle;
    } bad[] = {
        {1, 15, "spans[0].trace_id: length 15, want 16 or 0"},
        {1, 17, "spans[0].trace_id: length 17, want 16 or 0"},
        {1, 8, "spans[0].trace_id: length 8, want 16 or 0"},
        {2, 7, "spans[0].span_id: length 7, want 8 or 0"},
        {2, 16, "spans[0].span_id: length 16, want 8 or 0"},
        {4, 9, "spans[0].parent_span_id: length 9, want 8 or 0"},
    };
    uint8_t ids[17] = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct enc e;
        e_init(&e);
        begin_span(&e);
        e_bytes(&e, bad[i].field, ids, bad[i].len);
        e_end_n(&e, 3);
        ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO, bad[i].needle);
        e_fini(&e);
    }
}
END_TEST

START_TEST(empty_ids_accepted)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_bytes(&e, 1, NULL, 0);
    e_bytes(&e, 2, NULL, 0);
    e_bytes(&e, 4, NULL, 0);
    e_begin(&e, 13);
    e_bytes(&e, 1, NULL, 0);
    e_bytes(&e, 2, NULL, 0);
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 1, 1);
    e_fini(&e);

    e_init(&e);
    begin_point(&e, 5);
    e_begin(&e, 5);
    e_bytes(&e, 4, NULL, 0);
    e_bytes(&e, 5, NULL, 0);
    e_end(&e);
    e_end_n(&e, 5);
    ASSERT_OK(LK_SIGNAL_METRICS, &e, 1, 1);
    e_fini(&e);
}
END_TEST

START_TEST(link_log_exemplar_id_lengths)
{
    struct enc e;
    uint8_t ids[17] = {0};

    e_init(&e);
    begin_span(&e);
    e_begin(&e, 13);
    e_end(&e);
    e_begin(&e, 13);
    e_bytes(&e, 1, ids, 12);
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].links[1].trace_id: length 12, want 16 or 0");
    e_fini(&e);

    e_init(&e);
    begin_span(&e);
    e_begin(&e, 13);
    e_bytes(&e, 2, ids, 7);
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].links[0].span_id: length 7, want 8 or 0");
    e_fini(&e);

    e_init(&e);
    begin_log(&e);
    e_bytes(&e, 10, ids, 7);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "log_records[0].span_id: length 7, want 8 or 0");
    e_fini(&e);

    e_init(&e);
    begin_log(&e);
    e_bytes(&e, 9, ids, 17);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "log_records[0].trace_id: length 17, want 16 or 0");
    e_fini(&e);

    e_init(&e);
    begin_point(&e, 10);
    e_begin(&e, 11);
    e_bytes(&e, 4, ids, 7);
    e_end(&e);
    e_end_n(&e, 5);
    ASSERT_FAIL(LK_SIGNAL_METRICS, &e, LK_EPROTO,
                "exponential_histogram.data_points[0].exemplars[0].span_id: "
                "length 7, want 8 or 0");
    e_fini(&e);
}
END_TEST

/* --- unknown fields */

static void put_unknowns(struct enc *e)
{
    e_uint(e, 90, 1ull << 63);
    e_fixed64(e, 91, 2);
    e_fixed32(e, 92, 3);
    e_bytes(e, 93, "\xff\x00 not a message, not UTF-8", 27);
    e_begin(e, 94);
    e_uint(e, 1, 1);
    e_end(e);
}

START_TEST(unknown_fields_skipped)
{
    struct enc e;
    e_init(&e);
    put_unknowns(&e); /* request */
    e_begin(&e, 1);
    put_unknowns(&e);    /* ResourceSpans */
    e_uint(&e, 1000, 1); /* reserved there */
    e_begin(&e, 2);
    e_begin(&e, 2);
    put_unknowns(&e); /* Span */
    e_begin(&e, 9);
    e_str(&e, 1, "k");
    e_begin(&e, 2);
    put_unknowns(&e); /* AnyValue */
    e_str(&e, 1, "v");
    e_end_n(&e, 2);
    e_begin(&e, 15);
    e_str(&e, 1, "\xff"); /* Status field 1 is reserved: bytes, unchecked */
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 1, 1);
    e_fini(&e);

    /* unknown fields still must be well formed */
    e_init(&e);
    begin_span(&e);
    e_tag(&e, 93, WT_LEN);
    e_varint(&e, 10);
    e_raw(&e, "abc", 3);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].(field 93): length 10 exceeds the 3 bytes left");
    e_fini(&e);

    e_init(&e);
    e_begin(&e, 1);
    e_tag(&e, 50, WT_I32);
    e_raw(&e, "\x01\x02", 2);
    e_end(&e);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "resource_logs[0].(field 50): 4-byte value truncated");
    e_fini(&e);

    /* Metric field 4 is reserved (was IntGauge): skipped */
    e_init(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_begin(&e, 2);
    e_bytes(&e, 4, "\x0a\x00", 2);
    e_end_n(&e, 3);
    ASSERT_OK(LK_SIGNAL_METRICS, &e, 0, 1);
    e_fini(&e);
}
END_TEST

/* --- depth */

/* A span attribute whose value nests |levels| arrays. */
static void put_nested_arrays(struct enc *e, int levels)
{
    begin_span(e);
    e_begin(e, 9);
    e_str(e, 1, "deep");
    e_begin(e, 2); /* AnyValue */
    for (int i = 0; i < levels; i++) {
        e_begin(e, 5); /* array_value */
        e_begin(e, 1); /* values[0] */
    }
    e_str(e, 1, "leaf");
    e_end_n(e, 2 * levels);
    e_end_n(e, 2);
    e_end_n(e, 3);
}

START_TEST(depth_limit)
{
    struct enc e;
    /* AnyValue of a span attribute sits at index 5; each array adds 2. */
    int ok_levels = (LK_OTLP_MAX_DEPTH - 1 - 5) / 2;

    e_init(&e);
    put_nested_arrays(&e, ok_levels);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 1, 1);
    e_fini(&e);

    e_init(&e);
    put_nested_arrays(&e, ok_levels + 1);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "messages nested deeper than 64");
    ASSERT_FAIL(
        LK_SIGNAL_TRACES, &e, LK_EPROTO,
        "spans[0].attributes[0].value.array_value.values[0].array_value");
    e_fini(&e);

    /* kvlists nest too */
    e_init(&e);
    begin_log(&e);
    e_begin(&e, 5);
    for (int i = 0; i < 30; i++) {
        e_begin(&e, 6);
        e_begin(&e, 1);
        e_str(&e, 1, "k");
        e_begin(&e, 2);
    }
    e_end_n(&e, 3 * 30);
    e_end_n(&e, 4);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "values[0].value: messages nested deeper than 64");
    e_fini(&e);
}
END_TEST

/* --- packed repeated fields */

START_TEST(packed_lengths)
{
    struct enc e;
    uint8_t zeros[16] = {0};

    e_init(&e);
    begin_point(&e, 9);
    e_bytes(&e, 7, zeros, 12);
    e_end_n(&e, 5);
    ASSERT_FAIL(LK_SIGNAL_METRICS, &e, LK_EPROTO,
                "histogram.data_points[0].explicit_bounds[0]: packed length 12 "
                "is not a multiple of 8");
    e_fini(&e);

    e_init(&e);
    begin_point(&e, 9);
    e_bytes(&e, 6, zeros, 8);
    e_bytes(&e, 6, zeros, 7);
    e_end_n(&e, 5);
    ASSERT_FAIL(LK_SIGNAL_METRICS, &e, LK_EPROTO,
                "data_points[0].bucket_counts[1]: packed length 7");
    e_fini(&e);

    /* packed varints must each be complete within the run */
    e_init(&e);
    begin_point(&e, 10);
    e_begin(&e, 8);
    e_bytes(&e, 2, "\x01\x80", 2);
    e_end(&e);
    e_end_n(&e, 5);
    ASSERT_FAIL(
        LK_SIGNAL_METRICS, &e, LK_EPROTO,
        "data_points[0].positive.bucket_counts[0]: packed varint truncated");
    e_fini(&e);

    /* packed fixed64 cut by the end of the message */
    e_init(&e);
    begin_point(&e, 9);
    e_tag(&e, 6, WT_I64);
    e_raw(&e, zeros, 5);
    e_end_n(&e, 5);
    ASSERT_FAIL(LK_SIGNAL_METRICS, &e, LK_EPROTO,
                "data_points[0].bucket_counts[0]: 8-byte value truncated");
    e_fini(&e);
}
END_TEST

/* --- reasons */

START_TEST(reason_paths_and_buffers)
{
    struct enc e;
    char small[12];
    int rc;

    e_init(&e);
    e_begin(&e, 1);
    e_end(&e);
    e_begin(&e, 1);
    e_begin(&e, 2);
    e_end(&e);
    e_begin(&e, 2);
    for (int i = 0; i < 3; i++) {
        e_begin(&e, 2);
        e_kv_str(&e, 9, "a", "b");
        e_kv_str(&e, 9, "c", i == 2 ? "\xc3" : "d");
        e_end(&e);
    }
    e_end_n(&e, 2);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EUTF8,
                "resource_spans[1].scope_spans[1].spans[2].attributes[1].value."
                "string_value: invalid UTF-8 at byte 0 of 1");

    /* Short buffers truncate and stay NUL-terminated; none is fine too. */
    memset(small, 'x', sizeof(small));
    rc = lk_otlp_validate(LK_SIGNAL_TRACES, e.buf, e.len, &counts, small,
                          sizeof(small));
    ck_assert_int_eq(rc, LK_EUTF8);
    ck_assert_str_eq(small, "resource_sp");
    rc = lk_otlp_validate(LK_SIGNAL_TRACES, e.buf, e.len, &counts, small, 1);
    ck_assert_int_eq(rc, LK_EUTF8);
    ck_assert_str_eq(small, "");
    rc = lk_otlp_validate(LK_SIGNAL_TRACES, e.buf, e.len, &counts, NULL, 0);
    ck_assert_int_eq(rc, LK_EUTF8);
    e_fini(&e);
}
END_TEST

START_TEST(wrong_signal_rejected)
{
    struct enc e;
    e_init(&e);
    begin_span(&e);
    e_bytes(&e, 1, id16, 16);
    e_end_n(&e, 3);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 1, 1);
    /* As a LogRecord, field 1 is time_unix_nano (fixed64). */
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "log_records[0].time_unix_nano: wire type 2");
    e_fini(&e);
}
END_TEST

/* --- singular AnyValue fields given twice */

START_TEST(any_value_given_twice)
{
    struct enc e;

    e_init(&e); /* two empty values: protobuf-c 1.4 mis-merges these */
    begin_span(&e);
    e_kv_str(&e, 9, "a", "b");
    e_begin(&e, 9);
    e_str(&e, 1, "k");
    e_begin(&e, 2);
    e_end(&e);
    e_begin(&e, 2);
    e_end(&e);
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_TRACES, &e, LK_EPROTO,
                "spans[0].attributes[1].value: singular field given twice");
    e_fini(&e);

    e_init(&e);
    begin_log(&e);
    e_begin(&e, 5);
    e_str(&e, 1, "one");
    e_end(&e);
    e_begin(&e, 5);
    e_str(&e, 1, "two");
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_FAIL(LK_SIGNAL_LOGS, &e, LK_EPROTO,
                "log_records[0].body: singular field given twice");
    e_fini(&e);

    /* Other singular messages given twice merge, as protobuf says. */
    e_init(&e);
    begin_span(&e);
    e_begin(&e, 15);
    e_str(&e, 2, "a");
    e_end(&e);
    e_begin(&e, 15);
    e_uint(&e, 3, 1);
    e_end(&e);
    e_end_n(&e, 3);
    ASSERT_OK(LK_SIGNAL_TRACES, &e, 1, 1);
    e_fini(&e);
}
END_TEST

/* --- inputs found by test/fuzz/otlp_validate_fuzz.c (first byte: signal) */

/* Metrics whose exponential histogram point has an attribute with two empty
 * values: accepted here, rejected by protobuf-c. */
static const uint8_t fuzz_any_value_twice[] = {
    0x01, 0x0a, 0xbf, 0x01, 0x0a, 0x17, 0x0a, 0x15, 0x0a, 0x0c, 0x73, 0x65,
    0x72, 0x76, 0x69, 0x63, 0x65, 0x2e, 0x6e, 0x61, 0x6d, 0x65, 0x12, 0x05,
    0x0a, 0x03, 0x73, 0x76, 0x63, 0x12, 0xa3, 0x01, 0x0a, 0x0c, 0x0a, 0x05,
    0x6d, 0x65, 0x74, 0x65, 0x72, 0x12, 0x03, 0x31, 0x2e, 0x30, 0x12, 0x92,
    0x01, 0x0a, 0x04, 0x73, 0x69, 0x7a, 0x65, 0x1a, 0x01, 0x31, 0x52, 0x86,
    0x01, 0x0a, 0x81, 0x01, 0x0a, 0x08, 0x0a, 0x01, 0x6b, 0x12, 0x03, 0x0a,
    0x01, 0x76, 0x21, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x40, 0x30, 0x03, 0x39, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x93, 0x0a, 0x0a, 0x0a, 0x00, 0x12,
    0x00, 0x12, 0x00, 0x12, 0x00, 0x12, 0x00, 0x4a, 0x06, 0x08, 0x01, 0x10,
    0xfc, 0xf6, 0x05, 0x5a, 0x3b, 0x3a, 0x0b, 0x0a, 0x04, 0x75, 0x73, 0x65,
    0x72, 0x12, 0x03, 0x0a, 0x01, 0x75, 0x11, 0x09, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,
    0x22, 0x08, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x2a, 0x10,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
    0x0d, 0x0e, 0x0f, 0x10, 0x71, 0xfc, 0xa9, 0xf1, 0xd2, 0x4d, 0x00, 0x12,
    0x00, 0x0a, 0x00, 0x0a, 0x00, 0x12, 0x00, 0x0a, 0x00, 0x12, 0x00, 0x38,
    0x62, 0x50, 0x3f, 0x10, 0x02};

static void run_fuzz_input(const uint8_t *in, size_t n, int want,
                           const char *needle)
{
    int rc = lk_otlp_validate((enum lk_signal)(in[0] % 3), in + 1, n - 1,
                              &counts, why, sizeof(why));
    ck_assert_msg(rc == want, "rc %d, want %d: %s", rc, want, why);
    if (needle != NULL)
        ck_assert_msg(strstr(why, needle) != NULL, "reason \"%s\" lacks \"%s\"",
                      why, needle);
}

START_TEST(fuzz_regressions)
{
    run_fuzz_input(fuzz_any_value_twice, sizeof(fuzz_any_value_twice),
                   LK_EPROTO,
                   "exponential_histogram.data_points[0].attributes[1].value: "
                   "singular field given twice");
}
END_TEST

static Suite *otlp_validate_suite(void)
{
    Suite *s = suite_create("otlp_validate");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"traces_valid_counts", traces_valid_counts},
        {"empty_requests", empty_requests},
        {"invalid_arguments", invalid_arguments},
        {"metrics_valid_every_type", metrics_valid_every_type},
        {"logs_valid_counts", logs_valid_counts},
        {"traces_protobuf_c", traces_protobuf_c},
        {"metrics_protobuf_c", metrics_protobuf_c},
        {"logs_protobuf_c", logs_protobuf_c},
        {"truncated_varint", truncated_varint},
        {"varint_too_long", varint_too_long},
        {"bad_tags", bad_tags},
        {"field_zero", field_zero},
        {"length_past_end", length_past_end},
        {"wrong_wire_type_known_field", wrong_wire_type_known_field},
        {"group_and_invalid_wire_types", group_and_invalid_wire_types},
        {"utf8_span_name", utf8_span_name},
        {"utf8_attribute_key", utf8_attribute_key},
        {"utf8_string_any_value", utf8_string_any_value},
        {"utf8_resource_attribute", utf8_resource_attribute},
        {"utf8_log_body_and_scope", utf8_log_body_and_scope},
        {"bytes_not_utf8_checked", bytes_not_utf8_checked},
        {"span_id_lengths", span_id_lengths},
        {"empty_ids_accepted", empty_ids_accepted},
        {"link_log_exemplar_id_lengths", link_log_exemplar_id_lengths},
        {"unknown_fields_skipped", unknown_fields_skipped},
        {"depth_limit", depth_limit},
        {"packed_lengths", packed_lengths},
        {"reason_paths_and_buffers", reason_paths_and_buffers},
        {"wrong_signal_rejected", wrong_signal_rejected},
        {"any_value_given_twice", any_value_given_twice},
        {"fuzz_regressions", fuzz_regressions},
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
    SRunner *sr = srunner_create(otlp_validate_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
