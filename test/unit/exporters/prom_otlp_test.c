/*
 * The prometheus exporter's core: OTLP metrics requests (packed by
 * protobuf-c) applied to a series store, read back as the exposition text.
 * Covers delta accumulation (sums and histograms) and its ordering rules,
 * restarts, the series cap, expiry, type conflicts, exponential histograms,
 * label merging and escaping, job/instance/target_info, the names kept
 * for lookout's own metrics on the same /metrics; and the remote
 * write bodies (prom_rw) made from the same store, read back by protobuf-c.
 */
#include "exporters/prom_otlp.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/platform.h"
#include "core/selfmetrics.h"
#include "exporters/prom_rw.h"
#include "exporters/prom_state.h"
#include "prometheus/io/prometheus/client/metrics.pb-c.h"
#include "prometheus/prompb/remote.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest Req;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics RM;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics SM;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__Gauge Gauge;
typedef Opentelemetry__Proto__Metrics__V1__Sum Sum;
typedef Opentelemetry__Proto__Metrics__V1__Histogram Hist;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogram ExpHist;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NDP;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HDP;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint EDP;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets EB;
typedef Opentelemetry__Proto__Resource__V1__Resource Res;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Common__V1__KeyValue KV;
typedef Opentelemetry__Proto__Common__V1__AnyValue AV;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar Exemplar;

#define CUMULATIVE OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE
#define DELTA OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA

static lk_prom_store *store;
static lk_prom_mapper *mapper;
static struct lk_prom_map_stats st;
static lk_buf out;
static uint8_t body[65536];

static void setup_with(uint64_t max_series, uint64_t expiration_ms)
{
    struct lk_prom_store_opts so = {.expiration_ms = expiration_ms, .max_series = max_series};
    static char *promote[] = {"deployment.environment"};
    struct lk_prom_map_opts mo = {.add_suffixes = true, .promote = promote, .npromote = 1};
    store = lk_prom_store_create(&so);
    mapper = lk_prom_mapper_create(&mo, store);
    ck_assert_ptr_nonnull(mapper);
    memset(&st, 0, sizeof(st));
    lk_buf_init(&out, 64 << 20);
}

static void setup(void)
{
    setup_with(0, 0);
}

static void teardown(void)
{
    lk_prom_mapper_destroy(mapper);
    lk_prom_store_destroy(store);
    lk_buf_fini(&out);
}

/* ---- request building: one resource, one scope, one metric ---- */

static AV avs[16];
static KV kvs[16], *kvp[16];
static size_t nkv;

static KV *kv_str(const char *k, const char *v)
{
    AV *a = &avs[nkv];
    KV *kv = &kvs[nkv];
    opentelemetry__proto__common__v1__any_value__init(a);
    a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    a->string_value = (char *)v;
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = (char *)k;
    kv->value = a;
    kvp[nkv] = kv;
    nkv++;
    return kv;
}

/* Packs |mt| under a resource of |nres| attributes at |res| and, when
 * |scoped|, scope lib/1.0; applies it at |now_ms|. */
static int apply_metric_under(Metric *mt, KV **res, size_t nres, bool scoped, uint64_t now_ms)
{
    Res r;
    opentelemetry__proto__resource__v1__resource__init(&r);
    r.n_attributes = nres;
    r.attributes = res;
    Scope sc;
    opentelemetry__proto__common__v1__instrumentation_scope__init(&sc);
    sc.name = "lib";
    sc.version = "1.0";
    SM sm;
    opentelemetry__proto__metrics__v1__scope_metrics__init(&sm);
    sm.scope = scoped ? &sc : NULL;
    Metric *mts[1] = {mt};
    sm.n_metrics = 1;
    sm.metrics = mts;
    SM *sms[1] = {&sm};
    RM rm;
    opentelemetry__proto__metrics__v1__resource_metrics__init(&rm);
    rm.resource = &r;
    rm.n_scope_metrics = 1;
    rm.scope_metrics = sms;
    RM *rms[1] = {&rm};
    Req req;
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__init(&req);
    req.n_resource_metrics = 1;
    req.resource_metrics = rms;
    size_t len = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__pack(
        &req, body);
    ck_assert_uint_lt(len, sizeof(body));
    return lk_prom_mapper_apply(mapper, body, len, now_ms, &st);
}

/* Packs |mt| under resource {service.name=checkout, service.namespace=shop,
 * service.instance.id=i-1, host.name=mac, deployment.environment=dev} and
 * scope lib/1.0; applies it at |now_ms|. */
static int apply_metric(Metric *mt, uint64_t now_ms)
{
    nkv = 0;
    kv_str("service.name", "checkout");
    kv_str("service.namespace", "shop");
    kv_str("service.instance.id", "i-1");
    kv_str("host.name", "mac");
    kv_str("deployment.environment", "dev");
    return apply_metric_under(mt, kvp, 5, true, now_ms);
}

/* One number point with attribute |k|=|v| (none when k is NULL). */
static int apply_number(const char *name, const char *unit, int kind, int temporality,
                        bool monotonic, const char *k, const char *v, uint64_t start,
                        uint64_t time, double value)
{
    NDP p;
    opentelemetry__proto__metrics__v1__number_data_point__init(&p);
    p.start_time_unix_nano = start;
    p.time_unix_nano = time;
    p.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    p.as_double = value;
    AV a;
    KV kv, *kvpp[1] = {&kv};
    if (k != NULL) {
        opentelemetry__proto__common__v1__any_value__init(&a);
        a.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        a.string_value = (char *)v;
        opentelemetry__proto__common__v1__key_value__init(&kv);
        kv.key = (char *)k;
        kv.value = &a;
        p.n_attributes = 1;
        p.attributes = kvpp;
    }
    NDP *pts[1] = {&p};
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = (char *)name;
    mt.unit = (char *)unit;
    mt.description = "help \\ text\nline two";
    Gauge g;
    Sum s;
    if (kind == 0) {
        opentelemetry__proto__metrics__v1__gauge__init(&g);
        g.n_data_points = 1;
        g.data_points = pts;
        mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
        mt.gauge = &g;
    } else {
        opentelemetry__proto__metrics__v1__sum__init(&s);
        s.n_data_points = 1;
        s.data_points = pts;
        s.aggregation_temporality = temporality;
        s.is_monotonic = monotonic;
        mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
        mt.sum = &s;
    }
    return apply_metric(&mt, 1000);
}

static int apply_hist(const char *name, int temporality, uint64_t start, uint64_t time,
                      double *bounds, size_t nb, uint64_t *counts, double sum, uint64_t count)
{
    HDP p;
    opentelemetry__proto__metrics__v1__histogram_data_point__init(&p);
    p.start_time_unix_nano = start;
    p.time_unix_nano = time;
    p.n_explicit_bounds = nb;
    p.explicit_bounds = bounds;
    p.n_bucket_counts = nb + 1;
    p.bucket_counts = counts;
    p._sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
    p.sum = sum;
    p.count = count;
    HDP *pts[1] = {&p};
    Hist h;
    opentelemetry__proto__metrics__v1__histogram__init(&h);
    h.n_data_points = 1;
    h.data_points = pts;
    h.aggregation_temporality = temporality;
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = (char *)name;
    mt.unit = "s";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    mt.histogram = &h;
    return apply_metric(&mt, 1000);
}

static const char *render_as(bool om)
{
    lk_buf_reset(&out);
    ck_assert_int_eq(lk_prom_store_render(store, &out, om), 0);
    ck_assert_int_eq(lk_buf_append(&out, "", 1), 0);
    return (const char *)out.data;
}

static const char *render(void)
{
    return render_as(false);
}

#define LBL "instance=\"i-1\",job=\"shop/checkout\",otel_scope_name=\"lib\",otel_scope_version=\"1.0\""
#define LBLD "deployment_environment=\"dev\"," LBL
/* The same with one attribute k="VALUE" in its sorted place. */
#define LBLDK(v)                                                                 \
    "deployment_environment=\"dev\",instance=\"i-1\",job=\"shop/checkout\",k=\"" v \
    "\",otel_scope_name=\"lib\",otel_scope_version=\"1.0\""

#define HAS(line)                                                                \
    do {                                                                         \
        const char *r_ = render();                                               \
        ck_assert_msg(strstr(r_, line "\n") != NULL, "missing line\n  %s\nin:\n%s", \
                      line, r_);                                                 \
    } while (0)

START_TEST(gauge_and_cumulative_counter)
{
    ck_assert_int_eq(apply_number("queue.depth", "1", 0, 0, false, NULL, NULL, 0, 10, 0.25), 0);
    ck_assert_int_eq(apply_number("orders", "{order}", 1, CUMULATIVE, true, "k", "v", 5, 10, 3), 0);
    ck_assert_int_eq(apply_number("orders", "{order}", 1, CUMULATIVE, true, "k", "v", 5, 20, 7), 0);
    HAS("queue_depth_ratio{" LBLD "} 0.25");
    HAS("orders_total{" LBLDK("v") "} 7");
    HAS("# TYPE orders_total counter");
    HAS("# HELP orders_total help \\\\ text\\nline two");
    HAS("target_info{deployment_environment=\"dev\",host_name=\"mac\",instance=\"i-1\","
        "job=\"shop/checkout\"} 1");
    ck_assert_uint_eq(st.points, 3);
}
END_TEST

START_TEST(delta_sums_accumulate_in_order)
{
    apply_number("hits", "", 1, DELTA, true, NULL, NULL, 0, 10, 3);
    apply_number("hits", "", 1, DELTA, true, NULL, NULL, 10, 20, 4);
    apply_number("hits", "", 1, DELTA, true, NULL, NULL, 25, 30, 5);
    HAS("hits_total{" LBLD "} 12");
    /* A replay of the second point overlaps what was added: dropped. */
    apply_number("hits", "", 1, DELTA, true, NULL, NULL, 10, 20, 4);
    HAS("hits_total{" LBLD "} 12");
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_OUT_OF_ORDER], 1);
    /* Non-monotonic delta (UpDownCounter): a gauge of the running sum. */
    apply_number("inflight", "", 1, DELTA, false, NULL, NULL, 0, 10, 5);
    apply_number("inflight", "", 1, DELTA, false, NULL, NULL, 10, 20, -2);
    HAS("# TYPE inflight gauge");
    HAS("inflight{" LBLD "} 3");
}
END_TEST

START_TEST(cumulative_restart_and_out_of_order)
{
    apply_number("reqs", "", 1, CUMULATIVE, true, NULL, NULL, 100, 200, 100);
    /* An older point of the same run is not taken. */
    apply_number("reqs", "", 1, CUMULATIVE, true, NULL, NULL, 100, 150, 90);
    HAS("reqs_total{" LBLD "} 100");
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_OUT_OF_ORDER], 1);
    /* The app restarted: a later start time begins the series anew. */
    apply_number("reqs", "", 1, CUMULATIVE, true, NULL, NULL, 300, 310, 5);
    HAS("reqs_total{" LBLD "} 5");
}
END_TEST

START_TEST(histograms_cumulative_and_delta)
{
    double b[] = {0.1, 0.5, 1};
    uint64_t c1[] = {1, 2, 3, 0}, c2[] = {0, 1, 1, 2};
    apply_hist("rt", CUMULATIVE, 1, 10, b, 3, c1, 1.5, 6);
    HAS("rt_seconds_bucket{" LBLD ",le=\"0.1\"} 1");
    HAS("rt_seconds_bucket{" LBLD ",le=\"0.5\"} 3");
    HAS("rt_seconds_bucket{" LBLD ",le=\"1\"} 6");
    HAS("rt_seconds_bucket{" LBLD ",le=\"+Inf\"} 6");
    HAS("rt_seconds_sum{" LBLD "} 1.5");
    HAS("rt_seconds_count{" LBLD "} 6");
    HAS("# TYPE rt_seconds histogram");

    apply_hist("drt", DELTA, 0, 10, b, 3, c1, 1.5, 6);
    apply_hist("drt", DELTA, 10, 20, b, 3, c2, 4, 4);
    HAS("drt_seconds_bucket{" LBLD ",le=\"0.1\"} 1");
    HAS("drt_seconds_bucket{" LBLD ",le=\"0.5\"} 4");
    HAS("drt_seconds_bucket{" LBLD ",le=\"1\"} 8");
    HAS("drt_seconds_bucket{" LBLD ",le=\"+Inf\"} 10");
    HAS("drt_seconds_sum{" LBLD "} 5.5");
    HAS("drt_seconds_count{" LBLD "} 10");
    /* Overlapping delta: not added twice. */
    apply_hist("drt", DELTA, 10, 20, b, 3, c2, 4, 4);
    HAS("drt_seconds_count{" LBLD "} 10");
    /* New bounds: the series starts anew with them. */
    double b2[] = {2};
    uint64_t c3[] = {1, 1};
    apply_hist("drt", DELTA, 20, 30, b2, 1, c3, 3, 2);
    HAS("drt_seconds_bucket{" LBLD ",le=\"2\"} 1");
    HAS("drt_seconds_count{" LBLD "} 2");
    /* Bounds that do not increase make the point invalid. */
    double unsorted[] = {1, 0.5, 2};
    apply_hist("bad", CUMULATIVE, 1, 10, unsorted, 3, c1, 1, 6);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_INVALID], 1);
    ck_assert_ptr_null(strstr(render(), "bad_seconds"));
}
END_TEST

START_TEST(exponential_histogram_as_classic_buckets)
{
    uint64_t pos[] = {1, 2, 1};
    EB eb;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&eb);
    eb.offset = 5; /* scale 0: buckets (32,64], (64,128], (128,256] */
    eb.n_bucket_counts = 3;
    eb.bucket_counts = pos;
    EDP p;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(&p);
    p.time_unix_nano = 10;
    p.scale = 0;
    p.zero_count = 1;
    p.count = 5;
    p._sum_case = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___SUM_SUM;
    p.sum = 300;
    p.positive = &eb;
    EDP *pts[1] = {&p};
    ExpHist h;
    opentelemetry__proto__metrics__v1__exponential_histogram__init(&h);
    h.n_data_points = 1;
    h.data_points = pts;
    h.aggregation_temporality = CUMULATIVE;
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = "payload.size";
    mt.unit = "By";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    mt.exponential_histogram = &h;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    HAS("payload_size_bytes_bucket{" LBLD ",le=\"0\"} 1");
    HAS("payload_size_bytes_bucket{" LBLD ",le=\"64\"} 2");
    HAS("payload_size_bytes_bucket{" LBLD ",le=\"128\"} 4");
    HAS("payload_size_bytes_bucket{" LBLD ",le=\"256\"} 5");
    HAS("payload_size_bytes_bucket{" LBLD ",le=\"+Inf\"} 5");
    HAS("payload_size_bytes_count{" LBLD "} 5");

    /* Many buckets at a fine scale are merged down to at most 160. */
    static uint64_t many[1000];
    for (size_t i = 0; i < 1000; i++)
        many[i] = 1;
    eb.offset = -500;
    eb.n_bucket_counts = 1000;
    eb.bucket_counts = many;
    p.scale = 4;
    p.zero_count = 0;
    p.count = 1000;
    p.time_unix_nano = 20;
    mt.name = "fine";
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    const char *r = render();
    size_t buckets = 0;
    for (const char *q = r; (q = strstr(q, "fine_bytes_bucket{")) != NULL; q++)
        buckets++;
    ck_assert_uint_le(buckets, 160 + 2);
    ck_assert_uint_ge(buckets, 20);
    HAS("fine_bytes_bucket{" LBLD ",le=\"+Inf\"} 1000");

    /* Buckets too far apart for 160 even at scale -10: refused, not 2M kept. */
    uint64_t one[] = {1};
    eb.offset = -(1 << 30) + 2;
    eb.n_bucket_counts = 1;
    eb.bucket_counts = one;
    EB eb2;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&eb2);
    eb2.offset = (1 << 30) - 2;
    eb2.n_bucket_counts = 1;
    eb2.bucket_counts = one;
    p.negative = &eb2;
    p.scale = 0;
    p.count = 2;
    p.time_unix_nano = 30;
    mt.name = "wide";
    uint64_t before = st.dropped[LK_PROM_DROP_INVALID];
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_INVALID], before + 1);
    ck_assert_ptr_null(strstr(render(), "wide_bytes_bucket"));
}
END_TEST

START_TEST(series_limit_and_expiry)
{
    teardown();
    setup_with(2, 60000); /* target_info takes one */
    apply_number("g", "", 0, 0, false, "k", "a", 0, 10, 1);
    apply_number("g", "", 0, 0, false, "k", "b", 0, 10, 2);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_SERIES_LIMIT], 1);
    apply_number("g", "", 0, 0, false, "k", "a", 0, 20, 5); /* existing keeps updating */
    HAS("g{" LBLDK("a") "} 5");
    ck_assert_ptr_null(strstr(render(), "k=\"b\""));
    ck_assert_uint_eq(lk_prom_store_series_count(store), 2);
    ck_assert_uint_eq(lk_prom_store_expire(store, 1000 + 59999), 0);
    ck_assert_uint_eq(lk_prom_store_expire(store, 1000 + 60001), 2);
    ck_assert_uint_eq(lk_prom_store_series_count(store), 0);
    ck_assert_str_eq(render(), "");
    /* The families went with their series: the name is free for another type. */
    apply_number("g", "", 1, CUMULATIVE, true, NULL, NULL, 0, 10, 1);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_TYPE_CONFLICT], 0);
    HAS("# TYPE g_total counter");
}
END_TEST

START_TEST(type_conflict_first_wins)
{
    apply_number("temp", "", 0, 0, false, NULL, NULL, 0, 10, 21);
    /* A non-monotonic sum maps to the same gauge name: same type, fine. */
    apply_number("temp", "", 1, CUMULATIVE, false, NULL, NULL, 0, 20, 22);
    HAS("temp{" LBLD "} 22");
    /* A counter temp_total would be the OpenMetrics family "temp" too. */
    apply_number("temp", "", 1, CUMULATIVE, true, NULL, NULL, 0, 10, 1);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_TYPE_CONFLICT], 1);
    /* A counter reqs_total and a gauge named reqs_total collide. */
    apply_number("reqs", "", 1, CUMULATIVE, true, NULL, NULL, 0, 10, 1);
    apply_number("reqs_total", "", 0, 0, false, NULL, NULL, 0, 10, 2);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_TYPE_CONFLICT], 2);
    HAS("# TYPE reqs_total counter");
    HAS("reqs_total{" LBLD "} 1");
    /* target_info is lookout's own. */
    apply_number("target_info", "", 0, 0, false, NULL, NULL, 0, 10, 5);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_TYPE_CONFLICT], 3);
    ck_assert_ptr_null(strstr(render(), "target_info{} 5"));
}
END_TEST

START_TEST(reserved_empty_and_joined_labels)
{
    double b[] = {1};
    uint64_t c[] = {1, 1};
    /* A histogram attribute named le would repeat the bucket label. */
    HDP p;
    opentelemetry__proto__metrics__v1__histogram_data_point__init(&p);
    p.time_unix_nano = 10;
    p.n_explicit_bounds = 1;
    p.explicit_bounds = b;
    p.n_bucket_counts = 2;
    p.bucket_counts = c;
    p.count = 2;
    AV a[3];
    KV kv[3], *kvpp[3] = {&kv[0], &kv[1], &kv[2]};
    const char *keys[3] = {"le", "__name__", "empty"};
    const char *vals[3] = {"x", "y", ""};
    for (int i = 0; i < 3; i++) {
        opentelemetry__proto__common__v1__any_value__init(&a[i]);
        a[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        a[i].string_value = (char *)vals[i];
        opentelemetry__proto__common__v1__key_value__init(&kv[i]);
        kv[i].key = (char *)keys[i];
        kv[i].value = &a[i];
    }
    p.n_attributes = 3;
    p.attributes = kvpp;
    HDP *pts[1] = {&p};
    Hist h;
    opentelemetry__proto__metrics__v1__histogram__init(&h);
    h.n_data_points = 1;
    h.data_points = pts;
    h.aggregation_temporality = CUMULATIVE;
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = "h";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    mt.histogram = &h;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    HAS("h_bucket{deployment_environment=\"dev\",instance=\"i-1\",job=\"shop/checkout\","
        "key___name__=\"y\",key_le=\"x\",otel_scope_name=\"lib\",otel_scope_version=\"1.0\","
        "le=\"1\"} 1");

    /* Two attributes that sanitise to a scope label's name both lose to it. */
    kv[0].key = "otel.scope.name";
    kv[1].key = "otel_scope_name";
    vals[0] = "A";
    a[0].string_value = "A";
    a[1].string_value = "B";
    NDP np;
    opentelemetry__proto__metrics__v1__number_data_point__init(&np);
    np.time_unix_nano = 10;
    np.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    np.as_double = 4;
    np.n_attributes = 2;
    np.attributes = kvpp;
    NDP *npts[1] = {&np};
    Gauge g;
    opentelemetry__proto__metrics__v1__gauge__init(&g);
    g.n_data_points = 1;
    g.data_points = npts;
    mt.name = "g";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
    mt.gauge = &g;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    HAS("g{" LBLD "} 4");

    /* Attributes that sanitise alike are joined in the order of their keys. */
    kv[0].key = "a_b";
    kv[1].key = "a.b";
    a[0].string_value = "2";
    a[1].string_value = "1";
    mt.name = "j";
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    HAS("j{a_b=\"1;2\"," LBLD "} 4");

    /* A label set longer than the key's stack buffer, joined past it too. */
    static char big[3001];
    memset(big, 'x', 3000);
    a[0].string_value = big;
    mt.name = "big";
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    const char *r = render();
    const char *at = strstr(r, "big{a_b=\"1;xxx");
    ck_assert_ptr_nonnull(at);
    ck_assert_ptr_nonnull(strstr(at, "xxx\",deployment_environment=\"dev\""));

    /* An explicit +Inf bound is invalid (the last bucket is +Inf already). */
    double inf_b[] = {1, INFINITY};
    uint64_t c3[] = {1, 1, 0};
    apply_hist("inf", CUMULATIVE, 1, 10, inf_b, 2, c3, 1, 2);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_INVALID], 1);
}
END_TEST

START_TEST(labels_sanitised_merged_escaped)
{
    apply_number("m", "", 0, 0, false, "http.method", "GE\"T\n\\", 0, 10, 1);
    HAS("m{deployment_environment=\"dev\",http_method=\"GE\\\"T\\n\\\\\","
        LBL "} 1");
    /* An attribute named job loses to the resource's job. */
    apply_number("n", "", 0, 0, false, "job", "mine", 0, 10, 1);
    HAS("n{" LBLD "} 1");
}
END_TEST

#define HAS_OM(line)                                                             \
    do {                                                                         \
        const char *r_ = render_as(true);                                        \
        ck_assert_msg(strstr(r_, line "\n") != NULL, "missing line\n  %s\nin:\n%s", \
                      line, r_);                                                 \
    } while (0)

START_TEST(openmetrics_with_exemplars)
{
    static uint8_t trace[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static uint8_t span[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    Exemplar ex[2], *exs[2] = {&ex[0], &ex[1]};
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__metrics__v1__exemplar__init(&ex[i]);
        ex[i].trace_id.data = trace;
        ex[i].trace_id.len = 16;
        ex[i].span_id.data = span;
        ex[i].span_id.len = 8;
        ex[i].value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
    }
    ex[0].as_double = 0.3;
    ex[0].time_unix_nano = 1700000000123000000ull;
    ex[1].as_double = 7;
    ex[1].time_unix_nano = 1700000001000000000ull;

    double b[] = {0.1, 0.5, 1};
    uint64_t c[] = {1, 2, 3, 1};
    HDP p;
    opentelemetry__proto__metrics__v1__histogram_data_point__init(&p);
    p.time_unix_nano = 10;
    p.n_explicit_bounds = 3;
    p.explicit_bounds = b;
    p.n_bucket_counts = 4;
    p.bucket_counts = c;
    p.count = 7;
    p.n_exemplars = 2;
    p.exemplars = exs;
    HDP *pts[1] = {&p};
    Hist h;
    opentelemetry__proto__metrics__v1__histogram__init(&h);
    h.n_data_points = 1;
    h.data_points = pts;
    h.aggregation_temporality = CUMULATIVE;
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = "rt";
    mt.unit = "s";
    mt.description = "Response time.";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    mt.histogram = &h;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    apply_number("orders", "{order}", 1, CUMULATIVE, true, NULL, NULL, 5, 10, 3);

    HAS_OM("# TYPE rt_seconds histogram");
    HAS_OM("# UNIT rt_seconds seconds");
    HAS_OM("rt_seconds_bucket{" LBLD ",le=\"0.5\"} 3 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\","
           "span_id=\"00f067aa0ba902b7\"} 0.3 1700000000.123000000");
    HAS_OM("rt_seconds_bucket{" LBLD ",le=\"+Inf\"} 7 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\","
           "span_id=\"00f067aa0ba902b7\"} 7 1700000001.000000000");
    HAS_OM("rt_seconds_bucket{" LBLD ",le=\"1\"} 6");
    HAS_OM("# TYPE orders counter");
    HAS_OM("orders_total{" LBLD "} 3");
    HAS_OM("# TYPE target info");
    /* The text format has no exemplars and names the counter family with _total. */
    HAS("rt_seconds_bucket{" LBLD ",le=\"0.5\"} 3");
    HAS("# TYPE orders_total counter");
    ck_assert_ptr_null(strstr(render(), "trace_id"));
}
END_TEST

/* OpenMetrics family and sample names must stay unique, in both directions. */
START_TEST(openmetrics_name_clashes)
{
    int err = 0;
    ck_assert_ptr_nonnull(lk_prom_family_get(store, "zz_total", 8, LK_PROM_COUNTER, "", "", &err));
    ck_assert_ptr_null(lk_prom_family_get(store, "zz", 2, LK_PROM_COUNTER, "", "", &err));
    ck_assert_int_eq(err, LK_EEXIST);
    ck_assert_ptr_null(lk_prom_family_get(store, "zz", 2, LK_PROM_GAUGE, "", "", &err));
    ck_assert_ptr_nonnull(lk_prom_family_get(store, "x_total", 7, LK_PROM_GAUGE, "", "", &err));
    ck_assert_ptr_null(lk_prom_family_get(store, "x", 1, LK_PROM_COUNTER, "", "", &err));
    /* Two gauges g and g_total render g and g_total: no clash. */
    ck_assert_ptr_nonnull(lk_prom_family_get(store, "g_total", 7, LK_PROM_GAUGE, "", "", &err));
    ck_assert_ptr_nonnull(lk_prom_family_get(store, "g", 1, LK_PROM_GAUGE, "", "", &err));
    /* A counter c (no _total) and a gauge c_total share the sample name c_total. */
    ck_assert_ptr_nonnull(lk_prom_family_get(store, "c", 1, LK_PROM_COUNTER, "", "", &err));
    ck_assert_ptr_null(lk_prom_family_get(store, "c_total", 7, LK_PROM_GAUGE, "", "", &err));
}
END_TEST

/* lookout's own names on the admin /metrics: a store rendered after the
 * self-metrics (prom_state with |beside|) refuses them whatever the form
 * (reason reserved_name), every time, and takes the rest; a store served
 * alone (an endpoint of its own, remote write: no |beside|) takes them. */
START_TEST(reserved_beside_self_metrics)
{
    lk_metrics *self = lk_metrics_create();
    ck_assert_ptr_nonnull(self);
    lk_platform_register_process_metrics(self);
    struct lk_exporter_config cfg = {.name = "prometheus"};
    cfg.prometheus.add_metric_suffixes = true;
    lk_prom_store *fixture_store = store;
    lk_prom_mapper *fixture_mapper = mapper;
    double b[] = {1};
    uint64_t c[] = {1, 0};
    for (int beside = 1; beside >= 0; beside--) {
        struct lk_prom_state ps;
        ck_assert_int_eq(lk_prom_state_init(&ps, "prometheus", &cfg, self,
                                             beside ? self : NULL), 0);
        store = ps.store;
        mapper = ps.mapper;
        memset(&st, 0, sizeof(st));
        /* process.cpu (s, monotonic sum) is process_cpu_seconds_total. */
        ck_assert_int_eq(apply_number("process.cpu", "s", 1, CUMULATIVE, true, NULL, NULL,
                                      5, 10, 1.5), 0);
        ck_assert_int_eq(apply_number("process_open_fds", "", 0, 0, false, NULL, NULL,
                                      0, 10, 7), 0);
        /* A histogram process_cpu_seconds: OpenMetrics' name of the counter. */
        ck_assert_int_eq(apply_hist("process.cpu", CUMULATIVE, 5, 10, b, 1, c, 0.5, 1), 0);
        /* lookout_ is lookout's, registered or not. */
        ck_assert_int_eq(apply_number("lookout.queue.size", "", 0, 0, false, NULL, NULL,
                                      0, 10, 3), 0);
        ck_assert_int_eq(apply_number("queue.depth", "", 0, 0, false, NULL, NULL, 0, 10, 2),
                         0);
        HAS("queue_depth{" LBL "} 2");
        const char *r = render();
        if (beside) {
            ck_assert_uint_eq(st.dropped[LK_PROM_DROP_RESERVED], 4);
            ck_assert_ptr_null(strstr(r, "process_"));
            ck_assert_ptr_null(strstr(r, "lookout_"));
            /* Refused each time, not only when first seen. */
            apply_number("process_open_fds", "", 0, 0, false, NULL, NULL, 0, 20, 8);
            ck_assert_uint_eq(st.dropped[LK_PROM_DROP_RESERVED], 5);
            ck_assert_str_eq(lk_prom_drop_reason(LK_PROM_DROP_RESERVED), "reserved_name");
        } else {
            ck_assert_uint_eq(st.dropped[LK_PROM_DROP_RESERVED], 0);
            HAS("process_cpu_seconds_total{" LBL "} 1.5");
            HAS("process_open_fds{" LBL "} 7");
            HAS("lookout_queue_size{" LBL "} 3");
            /* Here the histogram meets the store's own counter. */
            ck_assert_uint_eq(st.dropped[LK_PROM_DROP_TYPE_CONFLICT], 1);
            st.dropped[LK_PROM_DROP_TYPE_CONFLICT] = 0;
        }
        for (int d = 0; d < LK_PROM_DROP_COUNT; d++)
            if (d != LK_PROM_DROP_RESERVED)
                ck_assert_uint_eq(st.dropped[d], 0);
        lk_prom_state_fini(&ps);
    }
    store = fixture_store;
    mapper = fixture_mapper;
    lk_metrics_destroy(self);
}
END_TEST

/* A refused exponential point leaves the series as it was. */
START_TEST(refused_exponential_point_keeps_series)
{
    uint64_t pos[] = {1, 2};
    EB eb;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&eb);
    eb.offset = 0;
    eb.n_bucket_counts = 2;
    eb.bucket_counts = pos;
    EDP p;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(&p);
    p.start_time_unix_nano = 1;
    p.time_unix_nano = 10;
    p.count = 3;
    p.positive = &eb;
    EDP *pts[1] = {&p};
    ExpHist h;
    opentelemetry__proto__metrics__v1__exponential_histogram__init(&h);
    h.n_data_points = 1;
    h.data_points = pts;
    h.aggregation_temporality = CUMULATIVE;
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = "e";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    mt.exponential_histogram = &h;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    HAS("e_count{" LBLD "} 3");
    eb.offset = -1021; /* 2^-1021: out of the double's normal range */
    p.time_unix_nano = 20;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_INVALID], 1);
    HAS("e_count{" LBLD "} 3");
    HAS("e_bucket{" LBLD ",le=\"2\"} 1");
    /* Its times did not move: a point at time 15 of the same run is still taken. */
    eb.offset = 0;
    p.time_unix_nano = 15;
    p.count = 4;
    pos[1] = 3;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
    HAS("e_count{" LBLD "} 4");
}
END_TEST

/* A reserved attribute name with a long value: the key_ rewrite copies the
 * label while the text buffer grows (ASan checks the copy). */
START_TEST(reserved_name_long_value)
{
    static char v[5000];
    memset(v, 'v', sizeof(v) - 1);
    apply_number("r", "", 0, 0, false, "__x", v, 0, 10, 1);
    const char *r = render();
    const char *at = strstr(r, "key___x=\"vvvv");
    ck_assert_ptr_nonnull(at);
    ck_assert_ptr_nonnull(strstr(at, "vvvv\",otel_scope_name"));
}
END_TEST

START_TEST(garbage_is_refused)
{
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
    ck_assert_int_eq(lk_prom_mapper_apply(mapper, junk, sizeof(junk), 0, &st), LK_EPROTO);
    ck_assert_uint_eq(lk_prom_store_series_count(store), 0);
}
END_TEST

/* A request with one gauge of two points, their two attributes in the
 * order given, under resource service.name=|svc|. */
static int apply_two_attr_points(const char *svc, bool swap, double v1, uint64_t time)
{
    AV av[4];
    KV kv[4], *p0[2], *p1[2];
    static const char *const keys[] = {"a", "b", "a", "b"};
    static const char *const vals[] = {"1", "2", "3", "4"};
    for (int i = 0; i < 4; i++) {
        opentelemetry__proto__common__v1__any_value__init(&av[i]);
        av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        av[i].string_value = (char *)vals[i];
        opentelemetry__proto__common__v1__key_value__init(&kv[i]);
        kv[i].key = (char *)keys[i];
        kv[i].value = &av[i];
    }
    p0[0] = &kv[swap ? 1 : 0];
    p0[1] = &kv[swap ? 0 : 1];
    p1[0] = &kv[2];
    p1[1] = &kv[3];
    NDP pts[2], *pp[2] = {&pts[0], &pts[1]};
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__metrics__v1__number_data_point__init(&pts[i]);
        pts[i].time_unix_nano = time;
        pts[i].value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
        pts[i].as_double = i == 0 ? v1 : 10 * v1;
        pts[i].n_attributes = 2;
        pts[i].attributes = i == 0 ? p0 : p1;
    }
    Gauge g;
    opentelemetry__proto__metrics__v1__gauge__init(&g);
    g.n_data_points = 2;
    g.data_points = pp;
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = "temp";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
    mt.gauge = &g;
    nkv = 0;
    kv_str("service.name", svc);
    return apply_metric_under(&mt, kvp, 1, false, 1000);
}

/* The wire walk's cache: points of known series (hits), attributes in
 * another order (the same series), another resource (another series), and
 * series removed under the cache (emptied with the store's epoch). Run under
 * ASan (make unit-san) a stale series pointer would be a use after free. */
START_TEST(wire_cache)
{
    teardown();
    setup_with(0, 60000);
    ck_assert_int_eq(apply_two_attr_points("app", false, 1, 10), 0);
    ck_assert_int_eq(apply_two_attr_points("app", false, 2, 20), 0); /* cached */
    HAS("temp{a=\"1\",b=\"2\",job=\"app\"} 2");
    HAS("temp{a=\"3\",b=\"4\",job=\"app\"} 20");
    ck_assert_int_eq(apply_two_attr_points("app", true, 3, 30), 0); /* b before a */
    HAS("temp{a=\"1\",b=\"2\",job=\"app\"} 3");
    ck_assert_uint_eq(lk_prom_store_series_count(store), 2);
    ck_assert_int_eq(apply_two_attr_points("other", false, 4, 30), 0);
    HAS("temp{a=\"1\",b=\"2\",job=\"other\"} 4");
    HAS("temp{a=\"1\",b=\"2\",job=\"app\"} 3");
    ck_assert_uint_eq(lk_prom_store_series_count(store), 4);
    /* An older point of a cached series is refused as the label path would. */
    ck_assert_int_eq(apply_two_attr_points("app", false, 9, 15), 0);
    ck_assert_uint_eq(st.dropped[LK_PROM_DROP_OUT_OF_ORDER], 2);
    HAS("temp{a=\"1\",b=\"2\",job=\"app\"} 3");
    /* Everything expires; the same points make new series. */
    ck_assert_uint_eq(lk_prom_store_expire(store, 1000 + 60001), 4);
    ck_assert_int_eq(apply_two_attr_points("app", false, 5, 40), 0);
    HAS("temp{a=\"1\",b=\"2\",job=\"app\"} 5");
    ck_assert_uint_eq(lk_prom_store_series_count(store), 2);
    ck_assert_uint_eq(st.points, 2 + 2 + 2 + 2 + 2);
}
END_TEST

/* ---- remote write bodies ---- */

typedef Prometheus__WriteRequest WR;
typedef Prometheus__TimeSeries TS;

static lk_buf rwbuf;

/* Encodes the touched series, clears the list, unpacks the body. */
static WR *rw_encode(void)
{
    size_t n;
    bool incomplete;
    lk_prom_series *const *t = lk_prom_store_touched(store, &n, &incomplete);
    ck_assert(!incomplete);
    lk_prom_rw *w = lk_prom_rw_create();
    struct lk_prom_rw_stats rs = {0};
    lk_buf_init(&rwbuf, 1 << 20);
    ck_assert_int_eq(lk_prom_rw_encode(w, store, t, n, 777, &rwbuf, &rs), 0);
    lk_prom_store_clear_touched(store);
    lk_prom_rw_destroy(w);
    WR *wr = prometheus__write_request__unpack(NULL, rwbuf.len, rwbuf.data);
    lk_buf_fini(&rwbuf);
    ck_assert_ptr_nonnull(wr);
    ck_assert_uint_eq(wr->n_timeseries, rs.timeseries);
    ck_assert_uint_eq(wr->n_metadata, rs.families);
    /* Labels sorted by name, no name twice, __name__ among them. */
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        TS *ts = wr->timeseries[i];
        bool named = false;
        for (size_t j = 0; j < ts->n_labels; j++) {
            named |= strcmp(ts->labels[j]->name, "__name__") == 0;
            if (j > 0)
                ck_assert_msg(strcmp(ts->labels[j - 1]->name, ts->labels[j]->name) < 0,
                              "labels out of order: %s, %s", ts->labels[j - 1]->name,
                              ts->labels[j]->name);
        }
        ck_assert(named);
        ck_assert_uint_eq(ts->n_samples, 1);
    }
    return wr;
}

static const char *label_of(const TS *ts, const char *name)
{
    for (size_t j = 0; j < ts->n_labels; j++)
        if (strcmp(ts->labels[j]->name, name) == 0)
            return ts->labels[j]->value;
    return NULL;
}

/* The series named |name| with |extra| = |value| (extra NULL: any). */
static const TS *find_ts(const WR *wr, const char *name, const char *extra, const char *value)
{
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const TS *ts = wr->timeseries[i];
        if (strcmp(label_of(ts, "__name__"), name) != 0)
            continue;
        if (extra == NULL || (label_of(ts, extra) && strcmp(label_of(ts, extra), value) == 0))
            return ts;
    }
    ck_abort_msg("no series %s %s=%s", name, extra ? extra : "", value ? value : "");
    return NULL;
}

START_TEST(remote_write_samples_labels_metadata)
{
    lk_prom_store_track(store, true);
    double bounds[] = {0.5, 1};
    uint64_t c1[] = {1, 2, 3}, c2[] = {1, 0, 1};
    ck_assert_int_eq(apply_number("orders", "{order}", 1, CUMULATIVE, true, "A", "v\"q\n\\",
                                  1000000000, 2000000000, 7), 0);
    ck_assert_int_eq(apply_hist("lat", DELTA, 1000000000, 2000000000, bounds, 2, c1, 4, 6), 0);
    ck_assert_int_eq(apply_hist("lat", DELTA, 2000000000, 3000000000, bounds, 2, c2, 1.5, 2), 0);
    WR *wr = rw_encode();

    const TS *o = find_ts(wr, "orders_total", NULL, NULL);
    ck_assert_str_eq(label_of(o, "A"), "v\"q\n\\"); /* unescaped again */
    ck_assert_str_eq(o->labels[0]->name, "A"); /* upper case sorts before __name__ */
    ck_assert_str_eq(label_of(o, "job"), "shop/checkout");
    ck_assert_double_eq(o->samples[0]->value, 7);
    ck_assert_int_eq(o->samples[0]->timestamp, 2000);
    /* One series per bucket, cumulative, accumulated over both deltas. */
    ck_assert_double_eq(find_ts(wr, "lat_seconds_bucket", "le", "0.5")->samples[0]->value, 2);
    ck_assert_double_eq(find_ts(wr, "lat_seconds_bucket", "le", "1")->samples[0]->value, 4);
    const TS *inf = find_ts(wr, "lat_seconds_bucket", "le", "+Inf");
    ck_assert_double_eq(inf->samples[0]->value, 8);
    ck_assert_int_eq(inf->samples[0]->timestamp, 3000);
    ck_assert_double_eq(find_ts(wr, "lat_seconds_sum", NULL, NULL)->samples[0]->value, 5.5);
    ck_assert_double_eq(find_ts(wr, "lat_seconds_count", NULL, NULL)->samples[0]->value, 8);
    /* target_info has no point time: stamped with the encoder's now. */
    ck_assert_int_eq(find_ts(wr, "target_info", NULL, NULL)->samples[0]->timestamp, 777);
    ck_assert_uint_eq(wr->n_timeseries, 1 + 5 + 1);

    bool counter = false, hist = false;
    for (size_t i = 0; i < wr->n_metadata; i++) {
        const Prometheus__MetricMetadata *md = wr->metadata[i];
        if (strcmp(md->metric_family_name, "orders_total") == 0) {
            counter = md->type == PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER;
            ck_assert_str_eq(md->help, "help \\ text\nline two");
        }
        if (strcmp(md->metric_family_name, "lat_seconds") == 0)
            hist = md->type == PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM &&
                   strcmp(md->unit, "seconds") == 0;
    }
    ck_assert(counter && hist);
    prometheus__write_request__free_unpacked(wr, NULL);
}
END_TEST

START_TEST(remote_write_only_touched_series)
{
    lk_prom_store_track(store, true);
    apply_number("a", "", 0, 0, false, "k", "1", 0, 1000000, 1);
    apply_number("b", "", 0, 0, false, "k", "1", 0, 1000000, 2);
    WR *wr = rw_encode();
    ck_assert_uint_eq(wr->n_timeseries, 3); /* a, b, target_info */
    prometheus__write_request__free_unpacked(wr, NULL);
    /* A refused point touches nothing; a later one touches its series only. */
    apply_number("a", "", 0, 0, false, "k", "1", 0, 500000, 9); /* older: out of order */
    apply_number("b", "", 0, 0, false, "k", "1", 0, 2000000, 3);
    wr = rw_encode();
    ck_assert_uint_eq(wr->n_timeseries, 2); /* b, target_info */
    ck_assert_double_eq(find_ts(wr, "b", NULL, NULL)->samples[0]->value, 3);
    ck_assert_int_eq(find_ts(wr, "b", NULL, NULL)->samples[0]->timestamp, 2);
    prometheus__write_request__free_unpacked(wr, NULL);
    /* A series removed while listed leaves the list. */
    apply_number("a", "", 0, 0, false, "k", "1", 0, 3000000, 4);
    size_t n;
    bool inc;
    lk_prom_series *const *t = lk_prom_store_touched(store, &n, &inc);
    ck_assert_uint_eq(n, 2);
    lk_prom_store_remove(store, t[0]);
    t = lk_prom_store_touched(store, &n, &inc);
    ck_assert_uint_eq(n, 1);
    lk_prom_store_remove(store, t[0]);
    lk_prom_store_touched(store, &n, &inc);
    ck_assert_uint_eq(n, 0);
}
END_TEST

static int count_label(void *arg, const char *name, size_t nlen, const char *value,
                       size_t vlen)
{
    (void)name;
    (void)nlen;
    (void)value;
    (void)vlen;
    ++*(int *)arg;
    return 0;
}

START_TEST(remote_write_label_text_parser)
{
    static const char *const bad[] = {"a", "a=", "a=\"x", "=\"x\"", "a=\"x\"b=\"y\"",
                                      "a=\"\\q\"", "a=\"x\\"};
    lk_buf scratch;
    lk_buf_init(&scratch, 1024);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = 0;
        ck_assert_int_eq(lk_metrics_labels_each(bad[i], strlen(bad[i]), &scratch, count_label, &n),
                         LK_EINVAL);
    }
    int n = 0;
    const char *good = "a=\"\",b=\"x,y=\\\"z\"";
    ck_assert_int_eq(lk_metrics_labels_each(good, strlen(good), &scratch, count_label, &n), 0);
    ck_assert_int_eq(n, 2);
    lk_buf_fini(&scratch);
}
END_TEST

/* ---- the protobuf exposition ---- */

typedef Io__Prometheus__Client__MetricFamily MF;

static MF *fams[64];
static size_t nfams;

/* Renders the store as protobuf and splits the delimited stream. */
static void render_proto(void)
{
    for (size_t i = 0; i < nfams; i++)
        io__prometheus__client__metric_family__free_unpacked(fams[i], NULL);
    nfams = 0;
    lk_buf_reset(&out);
    ck_assert_int_eq(lk_prom_store_render_proto(store, &out), 0);
    size_t at = 0;
    while (at < out.len) {
        uint64_t len = 0;
        int shift = 0;
        while (out.data[at] & 0x80) {
            len |= (uint64_t)(out.data[at++] & 0x7f) << shift;
            shift += 7;
        }
        len |= (uint64_t)out.data[at++] << shift;
        ck_assert_uint_le(at + len, out.len);
        ck_assert_uint_lt(nfams, 64);
        fams[nfams] = io__prometheus__client__metric_family__unpack(NULL, len, out.data + at);
        ck_assert_ptr_nonnull(fams[nfams]);
        nfams++;
        at += len;
    }
}

static const MF *family_named(const char *name)
{
    for (size_t i = 0; i < nfams; i++)
        if (strcmp(fams[i]->name, name) == 0)
            return fams[i];
    ck_abort_msg("no family %s", name);
    return NULL;
}

static void apply_exp(const char *name, int scale, int offset, uint64_t *pos, size_t n,
                      uint64_t zero, uint64_t count, double sum, uint64_t time)
{
    EB eb;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&eb);
    eb.offset = offset;
    eb.n_bucket_counts = n;
    eb.bucket_counts = pos;
    EDP p;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(&p);
    p.time_unix_nano = time;
    p.scale = scale;
    p.zero_count = zero;
    p.count = count;
    p._sum_case = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___SUM_SUM;
    p.sum = sum;
    p.positive = &eb;
    EDP *pts[1] = {&p};
    ExpHist h;
    opentelemetry__proto__metrics__v1__exponential_histogram__init(&h);
    h.n_data_points = 1;
    h.data_points = pts;
    h.aggregation_temporality = CUMULATIVE;
    Metric mt;
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = (char *)name;
    mt.unit = "By";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    mt.exponential_histogram = &h;
    ck_assert_int_eq(apply_metric(&mt, 1000), 0);
}

START_TEST(protobuf_exposition)
{
    /* scale 0, OTel buckets 5..7: (32,64], (64,128], (128,256] */
    uint64_t pos[] = {1, 2, 1};
    apply_exp("payload.size", 0, 5, pos, 3, 1, 5, 300, 10);
    /* scale 10 is finer than Prometheus' schema 8: four buckets become one */
    uint64_t fine[] = {1, 1, 1, 1};
    apply_exp("fine", 10, 8, fine, 4, 0, 4, 4.5, 10);
    double bounds[] = {0.5, 1};
    uint64_t c[] = {1, 2, 3};
    apply_hist("lat", CUMULATIVE, 1, 20, bounds, 2, c, 4, 6);
    apply_number("orders", "{order}", 1, CUMULATIVE, true, "k", "v", 5, 10, 7);
    render_proto();

    const MF *f = family_named("payload_size_bytes");
    ck_assert_int_eq(f->type, IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM);
    ck_assert_str_eq(f->unit, "bytes");
    ck_assert_uint_eq(f->n_metric, 1);
    const Io__Prometheus__Client__Histogram *h = f->metric[0]->histogram;
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(h->sample_count, 5);
    ck_assert_double_eq(h->sample_sum, 300);
    ck_assert_int_eq(h->schema, 0);
    ck_assert_uint_eq(h->zero_count, 1);
    ck_assert_uint_eq(h->n_bucket, 0); /* native only */
    ck_assert_uint_eq(h->n_positive_span, 1);
    ck_assert_int_eq(h->positive_span[0]->offset, 6); /* Prometheus index = OTel + 1 */
    ck_assert_uint_eq(h->positive_span[0]->length, 3);
    ck_assert_uint_eq(h->n_positive_delta, 3);
    ck_assert_int_eq(h->positive_delta[0], 1);
    ck_assert_int_eq(h->positive_delta[1], 1);
    ck_assert_int_eq(h->positive_delta[2], -1);
    ck_assert_uint_eq(h->n_negative_span, 0);
    /* The series' labels, job and scope included. */
    bool job = false;
    for (size_t i = 0; i < f->metric[0]->n_label; i++)
        job |= strcmp(f->metric[0]->label[i]->name, "job") == 0 &&
               strcmp(f->metric[0]->label[i]->value, "shop/checkout") == 0;
    ck_assert(job);

    h = family_named("fine_bytes")->metric[0]->histogram;
    ck_assert_int_eq(h->schema, 8);
    ck_assert_uint_eq(h->n_positive_span, 1);
    ck_assert_int_eq(h->positive_span[0]->offset, 3); /* OTel 8..11 at scale 10 = 2 at 8 */
    ck_assert_uint_eq(h->positive_span[0]->length, 1);
    ck_assert_int_eq(h->positive_delta[0], 4);

    h = family_named("lat_seconds")->metric[0]->histogram;
    ck_assert_uint_eq(h->n_positive_span, 0);
    ck_assert_uint_eq(h->n_bucket, 2); /* +Inf implied by the count */
    ck_assert_double_eq(h->bucket[1]->upper_bound, 1);
    ck_assert_uint_eq(h->bucket[1]->cumulative_count, 3);
    ck_assert_uint_eq(h->sample_count, 6);

    f = family_named("orders_total");
    ck_assert_int_eq(f->type, IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER);
    ck_assert_double_eq(f->metric[0]->counter->value, 7);
    ck_assert_str_eq(f->help, "help \\ text\nline two"); /* unescaped */
    for (size_t i = 0; i < nfams; i++)
        io__prometheus__client__metric_family__free_unpacked(fams[i], NULL);
    nfams = 0;
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("prom_otlp");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"gauge_counter", gauge_and_cumulative_counter},
        {"delta_sums", delta_sums_accumulate_in_order},
        {"restart", cumulative_restart_and_out_of_order},
        {"histograms", histograms_cumulative_and_delta},
        {"exponential", exponential_histogram_as_classic_buckets},
        {"limit_expiry", series_limit_and_expiry},
        {"type_conflict", type_conflict_first_wins},
        {"reserved", reserved_empty_and_joined_labels},
        {"labels", labels_sanitised_merged_escaped},
        {"openmetrics", openmetrics_with_exemplars},
        {"om_clashes", openmetrics_name_clashes},
        {"exp_refused", refused_exponential_point_keeps_series},
        {"reserved_long", reserved_name_long_value},
        {"garbage", garbage_is_refused},
        {"rw_body", remote_write_samples_labels_metadata},
        {"rw_touched", remote_write_only_touched_series},
        {"rw_labels", remote_write_label_text_parser},
        {"protobuf", protobuf_exposition},
        {"wire_cache", wire_cache},
        {"reserved_self", reserved_beside_self_metrics},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
