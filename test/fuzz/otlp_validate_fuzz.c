/*
 * libFuzzer target for lk_otlp_validate. The first byte picks the signal
 * (modulo 3: traces, metrics, logs); the rest is the request body.
 *
 * Besides "never crash", it cross-checks with protobuf-c, which decodes the
 * same bytes independently: whatever the validator accepts, protobuf-c must
 * unpack too (the converse does not hold: protobuf-c checks no UTF-8, no id
 * lengths and no depth), with the same number of resources and of spans or
 * log records. Data points may count more in the validator than in protobuf-c,
 * which keeps only the last member of Metric's `data` oneof.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "receivers/otlp_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_traces(const uint8_t *p, size_t n,
                         const struct lk_otlp_counts *c)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req;
    uint64_t spans = 0;

    req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            NULL, n, p);
    if (req == NULL) {
        fprintf(stderr, "validator accepted traces that protobuf-c rejects\n");
        abort();
    }
    for (size_t r = 0; r < req->n_resource_spans; r++)
        for (size_t s = 0; s < req->resource_spans[r]->n_scope_spans; s++)
            spans += req->resource_spans[r]->scope_spans[s]->n_spans;
    if (spans != c->items || req->n_resource_spans != c->resources) {
        fprintf(stderr, "spans %llu/%llu, resources %zu/%llu\n",
                (unsigned long long)spans, (unsigned long long)c->items,
                req->n_resource_spans, (unsigned long long)c->resources);
        abort();
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
        req, NULL);
}

static uint64_t
metric_points(const Opentelemetry__Proto__Metrics__V1__Metric *m)
{
    switch (m->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        return m->gauge->n_data_points;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        return m->sum->n_data_points;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        return m->histogram->n_data_points;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        return m->exponential_histogram->n_data_points;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        return m->summary->n_data_points;
    default:
        return 0;
    }
}

static void check_metrics(const uint8_t *p, size_t n,
                          const struct lk_otlp_counts *c)
{
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
        *req;
    uint64_t points = 0;

    req =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
            NULL, n, p);
    if (req == NULL) {
        fprintf(stderr, "validator accepted metrics that protobuf-c rejects\n");
        abort();
    }
    for (size_t r = 0; r < req->n_resource_metrics; r++) {
        const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm =
            req->resource_metrics[r];
        for (size_t s = 0; s < rm->n_scope_metrics; s++)
            for (size_t i = 0; i < rm->scope_metrics[s]->n_metrics; i++)
                points += metric_points(rm->scope_metrics[s]->metrics[i]);
    }
    if (points > c->items || req->n_resource_metrics != c->resources) {
        fprintf(stderr, "points %llu/%llu, resources %zu/%llu\n",
                (unsigned long long)points, (unsigned long long)c->items,
                req->n_resource_metrics, (unsigned long long)c->resources);
        abort();
    }
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__free_unpacked(
        req, NULL);
}

static void check_logs(const uint8_t *p, size_t n,
                       const struct lk_otlp_counts *c)
{
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *req;
    uint64_t records = 0;

    req =
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
            NULL, n, p);
    if (req == NULL) {
        fprintf(stderr, "validator accepted logs that protobuf-c rejects\n");
        abort();
    }
    for (size_t r = 0; r < req->n_resource_logs; r++)
        for (size_t s = 0; s < req->resource_logs[r]->n_scope_logs; s++)
            records += req->resource_logs[r]->scope_logs[s]->n_log_records;
    if (records != c->items || req->n_resource_logs != c->resources) {
        fprintf(stderr, "records %llu/%llu, resources %zu/%llu\n",
                (unsigned long long)records, (unsigned long long)c->items,
                req->n_resource_logs, (unsigned long long)c->resources);
        abort();
    }
    opentelemetry__proto__collector__logs__v1__export_logs_service_request__free_unpacked(
        req, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_otlp_counts c;
    enum lk_signal sig;
    char why[256];
    uint8_t *body;
    size_t n;
    int rc;

    if (size == 0)
        return 0;
    sig = (enum lk_signal)(data[0] % 3);
    n = size - 1;
    /* An exact-size copy lets ASan catch any read past the body. */
    body = malloc(n > 0 ? n : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data + 1, n);

    rc = lk_otlp_validate(sig, body, n, &c, why, sizeof(why));
    if (rc != 0) {
        if ((rc != LK_EPROTO && rc != LK_EUTF8) || why[0] == '\0' ||
            strlen(why) >= sizeof(why)) {
            fprintf(stderr, "bad failure: rc %d, why \"%s\"\n", rc, why);
            abort();
        }
        /* Without a reason buffer the verdict must not change. */
        if (lk_otlp_validate(sig, body, n, &c, NULL, 0) != rc)
            abort();
    } else {
        switch (sig) {
        case LK_SIGNAL_TRACES:
            check_traces(body, n, &c);
            break;
        case LK_SIGNAL_METRICS:
            check_metrics(body, n, &c);
            break;
        default:
            check_logs(body, n, &c);
            break;
        }
    }
    free(body);
    return 0;
}
