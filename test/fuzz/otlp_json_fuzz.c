/*
 * libFuzzer target for lk_otlp_json_decode. The first byte picks the signal
 * (modulo 3: traces, metrics, logs; the corpus uses '0', '1', '2'); the rest
 * is the JSON body.
 *
 * Besides "never crash": a failure is LK_EPROTO with a one-line ASCII reason,
 * the same verdict without a reason buffer; a success is protobuf that
 * lk_otlp_validate accepts (jansson guarantees UTF-8, the decoder checks id
 * lengths and depth) and that protobuf-c, decoding independently, unpacks
 * with the same numbers of resources and of spans or log records.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "receivers/otlp_json.h"
#include "receivers/otlp_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* Resources and items as protobuf-c sees them. Where protobuf-c keeps only
 * the last member of Metric's data oneof, the validator counts them all;
 * the decoder writes at most one, so the counts agree for every signal. */
static int unpack_counts(enum lk_signal sig, const lk_buf *b, uint64_t *res,
                         uint64_t *items)
{
    *res = 0;
    *items = 0;
    if (sig == LK_SIGNAL_TRACES) {
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r =
            opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
                NULL, b->len, b->data);
        if (r == NULL)
            return -1;
        *res = r->n_resource_spans;
        for (size_t i = 0; i < r->n_resource_spans; i++)
            for (size_t j = 0; j < r->resource_spans[i]->n_scope_spans; j++)
                *items += r->resource_spans[i]->scope_spans[j]->n_spans;
        protobuf_c_message_free_unpacked(&r->base, NULL);
    } else if (sig == LK_SIGNAL_METRICS) {
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
            *r =
                opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
                    NULL, b->len, b->data);
        if (r == NULL)
            return -1;
        *res = r->n_resource_metrics;
        for (size_t i = 0; i < r->n_resource_metrics; i++) {
            const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm =
                r->resource_metrics[i];
            for (size_t j = 0; j < rm->n_scope_metrics; j++)
                for (size_t k = 0; k < rm->scope_metrics[j]->n_metrics; k++)
                    *items += metric_points(rm->scope_metrics[j]->metrics[k]);
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    } else {
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *r =
            opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
                NULL, b->len, b->data);
        if (r == NULL)
            return -1;
        *res = r->n_resource_logs;
        for (size_t i = 0; i < r->n_resource_logs; i++)
            for (size_t j = 0; j < r->resource_logs[i]->n_scope_logs; j++)
                *items += r->resource_logs[i]->scope_logs[j]->n_log_records;
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_otlp_counts c;
    enum lk_signal sig;
    char why[256], vwhy[256];
    uint64_t res, items;
    uint8_t *body;
    size_t n;
    lk_buf out;
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
    /* Room enough that no input reaches the cap: the protobuf is never
     * more than a few times the JSON. */
    lk_buf_init(&out, 16 * n + 64);

    rc = lk_otlp_json_decode(sig, body, n, &out, why, sizeof(why));
    if (rc != 0) {
        size_t len = strnlen(why, sizeof(why));
        if (rc != LK_EPROTO || len == 0 || len >= sizeof(why)) {
            fprintf(stderr, "bad failure: rc %d, why \"%s\"\n", rc, why);
            abort();
        }
        for (size_t i = 0; i < len; i++) {
            if (why[i] < 0x20 || why[i] > 0x7e) {
                fprintf(stderr, "reason byte %zu is 0x%02x: %s\n", i,
                        (unsigned char)why[i], why);
                abort();
            }
        }
        lk_buf_reset(&out);
        if (lk_otlp_json_decode(sig, body, n, &out, NULL, 0) != rc)
            abort();
    } else {
        rc = lk_otlp_validate(sig, out.data, out.len, &c, vwhy, sizeof(vwhy));
        if (rc != 0) {
            fprintf(stderr, "validator refuses the decoder's output: %s\n",
                    vwhy);
            abort();
        }
        if (unpack_counts(sig, &out, &res, &items) != 0) {
            fprintf(stderr, "protobuf-c refuses the decoder's output\n");
            abort();
        }
        if (res != c.resources || items != c.items) {
            fprintf(
                stderr, "counts: protobuf-c %llu/%llu, validator %llu/%llu\n",
                (unsigned long long)res, (unsigned long long)items,
                (unsigned long long)c.resources, (unsigned long long)c.items);
            abort();
        }
    }
    lk_buf_fini(&out);
    free(body);
    return 0;
}
