/*
 * prom_bench: the prometheus exporter's own costs, in process (make bench
 * runs it after the end-to-end scenarios and prints its figures).
 *
 *   ingest   OTLP metrics requests (protobuf, as a receiver hands them on)
 *            applied to the series store: 1,000 series of cumulative counters
 *            with 8 attributes each, per request 1,000 points, applied
 *            repeatedly (the steady state: every series exists). CPU µs per
 *            point (CLOCK_PROCESS_CPUTIME_ID).
 *   render   a store of 100,000 series (10 families of counters, 8 labels
 *            each) rendered as the text exposition: ms per render, bytes,
 *            and the store's resident memory per series (RSS growth while
 *            it was filled, /proc/self/statm; 0 where there is none).
 *
 *   rw       remote write bodies: each round applies a 1,000-point request
 *            (the series exist) and encodes the 1,000 series it touched as a
 *            WriteRequest, snappy-compressed, as the prometheusremotewrite
 *            exporter does per batch. CPU µs per sample for the encoding and
 *            compression alone (the apply is timed apart and left out).
 *
 * Prints one JSON object on stdout. Usage: prom_bench [--rounds N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <snappy-c.h>

#include "exporters/prom_otlp.h"
#include "exporters/prom_rw.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue KV;
typedef Opentelemetry__Proto__Common__V1__AnyValue AV;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = 0;
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One request: |nseries| points of the counter |name|, 8 attributes each
 * (a1..a8; a8 varies with the point), cumulative, at |time|. */
static uint8_t *build(const char *name, size_t nseries, size_t base, uint64_t time, size_t *len)
{
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint *pts = calloc(nseries, sizeof(*pts));
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint **pp = calloc(nseries, sizeof(*pp));
    KV *kvs = calloc(nseries * 8, sizeof(*kvs));
    KV **kvp = calloc(nseries * 8, sizeof(*kvp));
    AV *avs = calloc(nseries * 8, sizeof(*avs));
    char (*vals)[24] = calloc(nseries * 8, sizeof(*vals));
    static const char *const keys[8] = {"http.request.method", "http.route",
                                        "http.response.status_code", "server.address",
                                        "network.protocol.version", "url.scheme",
                                        "deployment.environment", "shard"};
    for (size_t i = 0; i < nseries; i++) {
        opentelemetry__proto__metrics__v1__number_data_point__init(&pts[i]);
        pts[i].start_time_unix_nano = 1;
        pts[i].time_unix_nano = time;
        pts[i].value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
        pts[i].as_int = (int64_t)(time / 1000 + i);
        for (size_t k = 0; k < 8; k++) {
            size_t j = i * 8 + k;
            snprintf(vals[j], sizeof(vals[j]), k == 7 ? "s%zu" : "v%zu", k == 7 ? base + i : k);
            opentelemetry__proto__common__v1__any_value__init(&avs[j]);
            avs[j].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            avs[j].string_value = vals[j];
            opentelemetry__proto__common__v1__key_value__init(&kvs[j]);
            kvs[j].key = (char *)keys[k];
            kvs[j].value = &avs[j];
            kvp[j] = &kvs[j];
        }
        pts[i].n_attributes = 8;
        pts[i].attributes = &kvp[i * 8];
        pp[i] = &pts[i];
    }
    Opentelemetry__Proto__Metrics__V1__Sum sum;
    opentelemetry__proto__metrics__v1__sum__init(&sum);
    sum.aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    sum.is_monotonic = 1;
    sum.n_data_points = nseries;
    sum.data_points = pp;
    Opentelemetry__Proto__Metrics__V1__Metric mt, *mts[1] = {&mt};
    opentelemetry__proto__metrics__v1__metric__init(&mt);
    mt.name = (char *)name;
    mt.unit = "{request}";
    mt.description = "Requests served.";
    mt.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
    mt.sum = &sum;
    Opentelemetry__Proto__Common__V1__InstrumentationScope sc;
    opentelemetry__proto__common__v1__instrumentation_scope__init(&sc);
    sc.name = "bench";
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm, *sms[1] = {&sm};
    opentelemetry__proto__metrics__v1__scope_metrics__init(&sm);
    sm.scope = &sc;
    sm.n_metrics = 1;
    sm.metrics = mts;
    AV sv;
    KV skv, *skvp[1] = {&skv};
    opentelemetry__proto__common__v1__any_value__init(&sv);
    sv.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    sv.string_value = "bench-app";
    opentelemetry__proto__common__v1__key_value__init(&skv);
    skv.key = "service.name";
    skv.value = &sv;
    Opentelemetry__Proto__Resource__V1__Resource res;
    opentelemetry__proto__resource__v1__resource__init(&res);
    res.n_attributes = 1;
    res.attributes = skvp;
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm, *rms[1] = {&rm};
    opentelemetry__proto__metrics__v1__resource_metrics__init(&rm);
    rm.resource = &res;
    rm.n_scope_metrics = 1;
    rm.scope_metrics = sms;
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req;
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__init(&req);
    req.n_resource_metrics = 1;
    req.resource_metrics = rms;
    *len = opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__get_packed_size(&req);
    uint8_t *out = malloc(*len);
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__pack(&req, out);
    free(pts);
    free(pp);
    free(kvs);
    free(kvp);
    free(avs);
    free(vals);
    return out;
}

int main(int argc, char **argv)
{
    int rounds = 200;
    if (argc == 3 && strcmp(argv[1], "--rounds") == 0)
        rounds = atoi(argv[2]);
    struct lk_prom_store_opts so = {.expiration_ms = 0, .max_series = 0};
    struct lk_prom_map_opts mo = {.add_suffixes = true};

    /* ingest: 1,000 series updated repeatedly */
    lk_prom_store *s = lk_prom_store_create(&so);
    lk_prom_mapper *m = lk_prom_mapper_create(&mo, s);
    struct lk_prom_map_stats st = {0};
    size_t len[2];
    uint8_t *req[2];
    for (int i = 0; i < 2; i++)
        req[i] = build("http.server.requests", 1000, 0, 1000000u * (uint64_t)(i + 1), &len[i]);
    lk_prom_mapper_apply(m, req[0], len[0], 0, &st); /* creates the series */
    uint64_t before = st.points;
    double c0 = cpu_now();
    for (int r = 0; r < rounds; r++) /* same time again: every point is taken */
        lk_prom_mapper_apply(m, req[1], len[1], 0, &st);
    double ingest_cpu = cpu_now() - c0;
    uint64_t handled = st.points - before;

    /* rw: encode + snappy of the series each request touched */
    lk_prom_store_track(s, true);
    lk_prom_rw *w = lk_prom_rw_create();
    lk_buf body;
    lk_buf_init(&body, 1u << 30);
    char *snap = NULL;
    double rw_cpu = 0;
    uint64_t samples = 0;
    size_t rw_bytes = 0;
    for (int r = 0; r < rounds; r++) {
        lk_prom_store_clear_touched(s);
        lk_prom_mapper_apply(m, req[1], len[1], 0, &st);
        double e0 = cpu_now();
        size_t n;
        bool incomplete;
        lk_prom_series *const *t = lk_prom_store_touched(s, &n, &incomplete);
        struct lk_prom_rw_stats rs = {0};
        lk_buf_reset(&body);
        lk_prom_rw_encode(w, s, t, n, 1, &body, &rs);
        size_t max = snappy_max_compressed_length(body.len);
        if (snap == NULL)
            snap = malloc(max);
        size_t clen = max;
        snappy_compress((const char *)body.data, body.len, snap, &clen);
        rw_cpu += cpu_now() - e0;
        samples += rs.timeseries;
        rw_bytes = clen;
    }
    free(snap);
    lk_buf_fini(&body);
    lk_prom_rw_destroy(w);
    lk_prom_mapper_destroy(m);
    lk_prom_store_destroy(s);
    for (int i = 0; i < 2; i++)
        free(req[i]);

    /* render: 100,000 series */
    long rss0 = rss_kib();
    s = lk_prom_store_create(&so);
    m = lk_prom_mapper_create(&mo, s);
    char name[32];
    for (int f = 0; f < 10; f++) {
        snprintf(name, sizeof(name), "family.%d", f);
        size_t l;
        uint8_t *b = build(name, 10000, (size_t)f * 10000, 5000, &l);
        lk_prom_mapper_apply(m, b, l, 0, &st);
        free(b);
    }
    lk_prom_mapper_destroy(m);
    long rss1 = rss_kib();
    size_t nseries = lk_prom_store_series_count(s);
    lk_buf out;
    lk_buf_init(&out, 1u << 30);
    int renders = 10;
    double w0 = wall_now();
    for (int r = 0; r < renders; r++) {
        lk_buf_reset(&out);
        lk_prom_store_render(s, &out, false);
    }
    double render_s = (wall_now() - w0) / renders;
    printf("{\"ingest_points\": %llu, \"ingest_cpu_us_per_point\": %.4f, "
           "\"render_series\": %zu, \"render_ms\": %.2f, \"render_bytes\": %zu, "
           "\"rss_bytes_per_series\": %.0f, \"rw_samples\": %llu, "
           "\"rw_cpu_us_per_sample\": %.4f, \"rw_bytes_per_sample\": %.1f}\n",
           (unsigned long long)handled, handled ? ingest_cpu * 1e6 / (double)handled : 0.0,
           nseries, render_s * 1e3, out.len,
           nseries ? (double)(rss1 - rss0) * 1024.0 / (double)nseries : 0.0,
           (unsigned long long)samples, samples ? rw_cpu * 1e6 / (double)samples : 0.0,
           samples ? (double)rw_bytes * (double)rounds / (double)samples : 0.0);
    lk_buf_fini(&out);
    lk_prom_store_destroy(s);
    return 0;
}
