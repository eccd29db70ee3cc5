/*
 * OTLP/gRPC exporter: each batch is one Export call through grpc_client.
 *
 * With gzip on, the exporter compresses each request message itself and
 * hands gRPC core the result (gRPC core 1.51 would deflate it on the thread
 * that starts the call, the loop, at its own level 6): a message of
 * OFFLOOP_GZIP_BYTES or more is compressed on libuv's thread pool and its
 * call started from the loop when that is done; a smaller one on the loop.
 * The compressed message stays with the batch (lk_batch_set_state), so a
 * retry sends it again without compressing twice.
 */
#include "exporters/otlp.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/log.h"
#include "exporters/grpc_client.h"
#include "core/grpc_status.h"

/* bytes; smaller messages are compressed on the loop (as otlphttp does) */
#define OFFLOOP_GZIP_BYTES (64 * 1024)

struct otlp_exporter {
    lk_exporter base;
    uv_loop_t *loop;
    lk_grpc_client *client; /* NULL once it has closed */
    uint64_t timeout_ms;
    bool gzip;
    int level;        /* zlib level of |gzip| */
    bool closing;
    int compressing;  /* compressions on the pool; close waits for them */
    void (*close_done)(void *);
    void *close_arg;
};

/* A batch's compressed message, kept across its attempts. */
struct gz_msg {
    uint8_t *data;
    size_t len;
};

/* A compression on the thread pool. */
struct gz_job {
    uv_work_t work;
    struct otlp_exporter *x;
    lk_batch *b;
    const struct iovec *iov; /* the batch's, valid until lk_batch_done */
    size_t n, total;
    int rc;
    struct gz_msg *msg;
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

static int start_call(struct otlp_exporter *x, lk_batch *b, const struct iovec *iov,
                      size_t n)
{
    return lk_grpc_client_call(x->client, export_method[lk_batch_signal(b)], iov, n,
                               x->timeout_ms, call_done, b);
}

static void gz_msg_free(void *state)
{
    struct gz_msg *m = state;
    free(m->data);
    free(m);
}

/*
 * Compresses the concatenation of |iov| into a new gz_msg. Touches nothing
 * but its arguments: it runs on the thread pool too. The pieces are joined
 * first, as lk_gzip_deflate_level takes one buffer (a copy costs a few % of
 * the deflate). LK_ENOMEM, LK_EIO.
 */
static int gzip_message(const struct iovec *iov, size_t n, size_t total, int level,
                        struct gz_msg **out)
{
    const uint8_t *in = n == 1 ? iov[0].iov_base : NULL;
    uint8_t *joined = NULL;
    struct gz_msg *m;
    lk_buf buf;
    int rc;

    if (n > 1) {
        joined = malloc(total > 0 ? total : 1);
        if (joined == NULL)
            return LK_ENOMEM;
        for (size_t i = 0, off = 0; i < n; off += iov[i].iov_len, i++)
            if (iov[i].iov_len > 0)
                memcpy(joined + off, iov[i].iov_base, iov[i].iov_len);
        in = joined;
    }
    m = malloc(sizeof(*m));
    if (m == NULL) {
        free(joined);
        return LK_ENOMEM;
    }
    lk_buf_init(&buf, SIZE_MAX);
    rc = lk_gzip_deflate_level(in, total, level, &buf);
    free(joined);
    if (rc < 0) {
        lk_buf_fini(&buf);
        free(m);
        return rc;
    }
    m->data = lk_buf_detach(&buf, &m->len);
    /* The buffer was sized for the worst case (deflateBound, about the
     * input's size); the batch keeps it until its last attempt. */
    uint8_t *fit = realloc(m->data, m->len > 0 ? m->len : 1);
    if (fit != NULL)
        m->data = fit;
    *out = m;
    return 0;
}

static int send_gzipped(struct otlp_exporter *x, lk_batch *b, struct gz_msg *m)
{
    struct iovec one = {.iov_base = m->data, .iov_len = m->len};
    return start_call(x, b, &one, 1);
}

static void finish_close_if_idle(struct otlp_exporter *x)
{
    if (x->client != NULL || x->compressing > 0)
        return;
    void (*done)(void *) = x->close_done;
    void *darg = x->close_arg;
    free(x->base.name);
    free(x);
    if (done != NULL)
        done(darg);
}

static void gzip_work(uv_work_t *w)
{
    struct gz_job *j = w->data; /* a pool thread: only |j| and the batch's bytes */
    j->rc = gzip_message(j->iov, j->n, j->total, j->x->level, &j->msg);
}

static void gzip_done(uv_work_t *w, int status)
{
    struct gz_job *j = w->data;
    struct otlp_exporter *x = j->x;
    lk_batch *b = j->b;
    struct gz_msg *m = j->msg;
    int rc = status < 0 ? LK_ESYS : j->rc;

    free(j);
    x->compressing--;
    if (rc == 0) {
        lk_batch_set_state(b, m, gz_msg_free);
        if (!x->closing)
            rc = send_gzipped(x, b, m);
    }
    if (x->closing) {
        /* The batch goes back to its queue (retried or dropped there). */
        lk_batch_done(b, LK_EXPORT_RETRY, -1, "canceled");
        finish_close_if_idle(x);
    } else if (rc < 0) {
        lk_log(LK_LOG_DEBUG, "otlp export attempt not started",
               LK_S("exporter", x->base.name) LK_S("error", lk_strerror(rc)));
        lk_batch_done(b, LK_EXPORT_RETRY, -1,
                      rc == LK_ENOMEM || rc == LK_EIO ? "compress_failed" : "call_failed");
    }
}

static int otlp_send(lk_exporter *e, lk_batch *b)
{
    struct otlp_exporter *x = (struct otlp_exporter *)e;
    const struct iovec *iov;
    size_t n, total;
    struct gz_msg *m;
    int rc;

    if (x->closing)
        return LK_ECLOSED;
    lk_batch_iov(b, &iov, &n, &total);
    if (!x->gzip)
        return start_call(x, b, iov, n);
    m = lk_batch_state(b);
    if (m != NULL) /* a retry: compressed the first time */
        return send_gzipped(x, b, m);
    if (total >= OFFLOOP_GZIP_BYTES) {
        struct gz_job *j = calloc(1, sizeof(*j));
        if (j == NULL)
            return LK_ENOMEM;
        j->x = x;
        j->b = b;
        j->iov = iov;
        j->n = n;
        j->total = total;
        j->work.data = j;
        if (uv_queue_work(x->loop, &j->work, gzip_work, gzip_done) != 0) {
            free(j);
            return LK_ESYS;
        }
        x->compressing++;
        return 0; /* gzip_done starts the call */
    }
    rc = gzip_message(iov, n, total, x->level, &m);
    if (rc < 0)
        return rc;
    lk_batch_set_state(b, m, gz_msg_free);
    return send_gzipped(x, b, m);
}

static void client_closed(void *arg)
{
    struct otlp_exporter *x = arg;
    x->client = NULL;
    finish_close_if_idle(x);
}

/* Calls in flight end as CANCELLED; compressions on the pool cannot be
 * stopped, so the exporter is freed after the last of them has ended its
 * batch (gzip_done). */
static void otlp_close(lk_exporter *e, void (*done)(void *arg), void *arg)
{
    struct otlp_exporter *x = (struct otlp_exporter *)e;
    x->closing = true;
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
    x->loop = loop;
    x->timeout_ms = cfg->timeout_ms;
    x->gzip = lk_exporter_gzip(cfg);
    x->level = cfg->compression_level > 0 ? (int)cfg->compression_level : 1;
    struct lk_grpc_client_opts o = {
        .target = cfg->endpoint,
        .tls = &cfg->tls,
        .headers = cfg->headers,
        .nheaders = cfg->nheaders,
        .gzip = x->gzip,
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
