#include "exporters/otlp.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "exporters/grpc_client.h"
#include "core/grpc_status.h"

struct otlp_exporter {
    lk_exporter base;
    lk_grpc_client *client;
    uint64_t timeout_ms;
    void (*close_done)(void *);
    void *close_arg;
};

static const char *const export_method[] = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
};

/* Snake-case status names, used as the drop reason label. */
static const char *const status_reason[] = {
    "ok",        "cancelled",          "unknown",        "invalid_argument",
    "deadline_exceeded", "not_found",  "already_exists", "permission_denied",
    "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
    "unimplemented", "internal",       "unavailable",    "data_loss",
    "unauthenticated",
};

enum lk_export_result lk_otlp_classify(int grpc_status, bool has_retry_info)
{
    switch (grpc_status) {
    case LK_GRPC_OK:
        return LK_EXPORT_OK;
    /* Retryable per the OTLP specification. CANCELLED is ours (close). */
    case LK_GRPC_CANCELLED:
    case LK_GRPC_DEADLINE_EXCEEDED:
    case LK_GRPC_ABORTED:
    case LK_GRPC_OUT_OF_RANGE:
    case LK_GRPC_UNAVAILABLE:
    case LK_GRPC_DATA_LOSS:
        return LK_EXPORT_RETRY;
    case LK_GRPC_RESOURCE_EXHAUSTED:
        /* Only a server that says when to come back is out of capacity;
         * otherwise the request itself is too big and will never fit. */
        return has_retry_info ? LK_EXPORT_RETRY : LK_EXPORT_PERMANENT;
    default:
        return LK_EXPORT_PERMANENT;
    }
}

/* Reads ExportXServiceResponse.partial_success (field 1) { rejected = 1,
 * error_message = 2 } without generated code: it is logged, nothing more. */
static void log_partial_success(const char *exporter, const uint8_t *p, size_t n)
{
    /* Field 1, wire type 2, one-byte length is all a small response needs;
     * anything longer is skipped rather than parsed. */
    if (n < 2 || p[0] != 0x0a || p[1] >= 0x80 || (size_t)p[1] + 2 > n)
        return;
    const uint8_t *q = p + 2, *end = p + 2 + p[1];
    uint64_t rejected = 0;
    char msg[256] = "";
    while (q < end) {
        uint8_t tag = *q++;
        if (tag == 0x08) {
            int shift = 0;
            rejected = 0;
            while (q < end && shift < 64) {
                rejected |= (uint64_t)(*q & 0x7f) << shift;
                shift += 7;
                if (!(*q++ & 0x80))
                    break;
            }
        } else if (tag == 0x12 && q < end && *q < 0x80 && q + 1 + *q <= end) {
            size_t l = *q < sizeof(msg) - 1 ? *q : sizeof(msg) - 1;
            memcpy(msg, q + 1, l);
            msg[l] = '\0';
            q += 1 + *q;
        } else {
            return;
        }
    }
    if (rejected != 0 || msg[0] != '\0')
        lk_log(LK_LOG_WARN, "backend accepted the export partially",
               LK_S("exporter", exporter) LK_U("rejected", rejected)
               LK_S("error_message", msg));
}

static void call_done(void *arg, const struct lk_grpc_result *r)
{
    lk_batch *b = arg;
    const char *name = lk_batch_exporter(b)->name;
    enum lk_export_result res = lk_otlp_classify(r->status, r->retry_after_ms >= 0);
    const char *reason = r->status >= 0 && r->status <= 16
                             ? status_reason[r->status]
                             : "unknown";
    if (r->status != LK_GRPC_OK)
        lk_log(LK_LOG_DEBUG, "otlp export attempt failed",
               LK_S("exporter", name) LK_I("grpc_status", r->status) LK_S("grpc_message", r->message)
               LK_I("retry_after_ms", r->retry_after_ms));
    else if (r->response_len > 0)
        log_partial_success(name, r->response, r->response_len);
    lk_batch_done(b, res, r->retry_after_ms, reason);
}

static int otlp_send(lk_exporter *e, lk_batch *b)
{
    struct otlp_exporter *x = (struct otlp_exporter *)e;
    const struct iovec *iov;
    size_t n, total;

    lk_batch_iov(b, &iov, &n, &total);
    return lk_grpc_client_call(x->client, export_method[lk_batch_signal(b)], iov,
                               n, x->timeout_ms, call_done, b);
}

static void client_closed(void *arg)
{
    struct otlp_exporter *x = arg;
    void (*done)(void *) = x->close_done;
    void *darg = x->close_arg;
    free(x->base.name);
    free(x);
    if (done != NULL)
        done(darg);
}

static void otlp_close(lk_exporter *e, void (*done)(void *arg), void *arg)
{
    struct otlp_exporter *x = (struct otlp_exporter *)e;
    x->close_done = done;
    x->close_arg = arg;
    lk_grpc_client_close(x->client, client_closed, x);
}

const struct lk_exporter_ops lk_otlp_exporter_ops = {
    .type = "otlp",
    .send = otlp_send,
    .close = otlp_close,
};

int lk_otlp_exporter_create(lk_exporter **out, uv_loop_t *loop,
                            const struct lk_exporter_config *cfg)
{
    int rc;
    struct otlp_exporter *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return LK_ENOMEM;
    x->base.ops = &lk_otlp_exporter_ops;
    x->base.name = strdup(cfg->name);
    if (x->base.name == NULL) {
        rc = LK_ENOMEM;
        goto err_free;
    }
    x->timeout_ms = cfg->timeout_ms;
    struct lk_grpc_client_opts o = {
        .target = cfg->endpoint,
        .tls = &cfg->tls,
        .headers = cfg->headers,
        .nheaders = cfg->nheaders,
        .gzip = lk_exporter_gzip(cfg),
        .user_agent = "lookout/" LK_VERSION,
    };
    rc = lk_grpc_client_create(&x->client, loop, &o);
    if (rc < 0)
        goto err_name;
    *out = &x->base;
    return 0;
err_name:
    free(x->base.name);
err_free:
    free(x);
    return rc;
}
