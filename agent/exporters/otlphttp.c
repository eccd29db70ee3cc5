/*
 * OTLP/HTTP exporter: each batch is one POST of the concatenated request
 * bodies (one valid Export<Signal>ServiceRequest), optionally compressed
 * (gzip or zstd), over the shared libuv-driven curl client.
 *
 * Responses are sorted as the OTLP/HTTP specification says: 2xx accepted
 * (a partial_success in the body is logged), 429/502/503/504 and transport
 * failures retried (honouring Retry-After), every other status dropped.
 */
#include "exporters/otlphttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/compress.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "exporters/http_exporter.h"

#define MAX_TEXT_LOG_BYTES 200 /* of a non-protobuf error body */

static const char *const signal_path[LK_SIGNAL_COUNT] = {
    "/v1/traces",
    "/v1/metrics",
    "/v1/logs",
};

struct otlphttp_exporter;

/* One POST of one batch, alive until its callback. */
struct attempt {
    struct otlphttp_exporter *x;
    lk_batch *b;
    uint8_t *zbody; /* compressed body (compression on), owned */
    size_t zbody_len;
    /* Off the loop: the batch's bodies compressed on the thread pool. */
    uv_work_t work;
    const struct iovec *iov;
    size_t n, total;
    int rc;
};

/* Bodies at least this large are compressed on the thread pool, so the loop
 * goes on receiving meanwhile; smaller ones are not worth the hop. */
#define OFFLOOP_COMPRESS_BYTES (64 * 1024)

struct otlphttp_exporter {
    struct lk_http_exporter h; /* first */
    char *url[LK_SIGNAL_COUNT]; /* NULL: no endpoint for that signal */
    bool compress;       /* with |codec| at |level| */
    enum lk_codec codec;
    int level;
    uint64_t timeout_ms;
};

enum lk_export_result lk_otlphttp_classify(int http_status)
{
    if (http_status >= 200 && http_status <= 299)
        return LK_EXPORT_OK;
    switch (http_status) {
    case 0:   /* no response: connection refused, reset, timeout */
    case 429: /* Too Many Requests */
    case 502: /* Bad Gateway */
    case 503: /* Service Unavailable */
    case 504: /* Gateway Timeout */
        return LK_EXPORT_RETRY;
    default:
        return LK_EXPORT_PERMANENT;
    }
}

/* ---- protobuf reading, just enough for two small messages ---- */

static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        x |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/*
 * Finds the last top-level field |num| in [p, p + n) (for a message field
 * protobuf would merge all of them; the last is enough for logging). A
 * varint (wire type 0) goes to |*v|, a length-delimited one (wire type 2)
 * to |*data| / |*len|. Returns 1 found, 0 absent, -1 malformed.
 */
static int pb_find(const uint8_t *p, size_t n, uint64_t num, uint64_t *v,
                   const uint8_t **data, size_t *len)
{
    const uint8_t *end = p + n;
    int found = 0;

    while (p < end) {
        uint64_t key, x;
        if (!pb_varint(&p, end, &key))
            return -1;
        uint64_t field = key >> 3;
        if (field == 0)
            return -1;
        switch (key & 7) {
        case 0:
            if (!pb_varint(&p, end, &x))
                return -1;
            if (field == num && v != NULL) {
                *v = x;
                found = 1;
            }
            break;
        case 1:
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 2:
            if (!pb_varint(&p, end, &x) || x > (uint64_t)(end - p))
                return -1;
            if (field == num && data != NULL) {
                *data = p;
                *len = (size_t)x;
                found = 1;
            }
            p += x;
            break;
        case 5:
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        default:
            return -1;
        }
    }
    return found;
}

static void copy_text(char *out, size_t outlen, const uint8_t *p, size_t n)
{
    if (outlen == 0)
        return;
    if (n > outlen - 1)
        n = outlen - 1;
    if (n > 0)
        memcpy(out, p, n);
    out[n] = '\0';
}

int lk__otlphttp_partial_success(const uint8_t *p, size_t n,
                                 uint64_t *rejected, char *msg, size_t msglen)
{
    const uint8_t *ps = NULL, *m = NULL;
    size_t pslen = 0, mlen = 0;

    *rejected = 0;
    copy_text(msg, msglen, NULL, 0);
    int rc = pb_find(p, n, 1, NULL, &ps, &pslen);
    if (rc <= 0)
        return rc;
    if (pb_find(ps, pslen, 1, rejected, NULL, NULL) < 0)
        return -1;
    rc = pb_find(ps, pslen, 2, NULL, &m, &mlen);
    if (rc < 0)
        return -1;
    if (rc > 0)
        copy_text(msg, msglen, m, mlen);
    return 1;
}

static bool is_protobuf(const char *content_type)
{
    return content_type != NULL &&
           (strncasecmp(content_type, "application/x-protobuf", 22) == 0 ||
            strncasecmp(content_type, "application/protobuf", 20) == 0);
}

bool lk__otlphttp_error_message(const uint8_t *body, size_t len,
                                const char *content_type, char *out,
                                size_t outlen)
{
    copy_text(out, outlen, NULL, 0);
    if (len == 0 || outlen == 0)
        return false;
    if (is_protobuf(content_type)) {
        /* google.rpc.Status { code = 1; message = 2; details = 3 } */
        const uint8_t *m = NULL;
        size_t mlen = 0;
        if (pb_find(body, len, 2, NULL, &m, &mlen) <= 0 || mlen == 0)
            return false;
        copy_text(out, outlen, m, mlen);
        return true;
    }
    copy_text(out, outlen, body, len < MAX_TEXT_LOG_BYTES ? len : MAX_TEXT_LOG_BYTES);
    return true;
}

/* ---- sending ---- */

static void attempt_free(struct attempt *a)
{
    free(a->zbody);
    free(a);
}

static void post_done(void *arg, const struct lk_http_result *r)
{
    struct attempt *a = arg;
    lk_batch *b = a->b;
    const char *name = a->x->h.base.name;
    const char *url = a->x->url[lk_batch_signal(b)];
    char reason[24];
    char msg[256];

    enum lk_export_result res = lk_otlphttp_classify(r->http_status);
    if (r->http_status == 0) {
        snprintf(reason, sizeof(reason), "%s", lk_http_transport_reason(r));
        lk_log(LK_LOG_DEBUG, "otlphttp export attempt failed",
               LK_S("exporter", name) LK_S("url", url) LK_S("reason", reason)
               LK_I("curl_code", r->curl_code) LK_S("error", r->error));
    } else if (res == LK_EXPORT_OK) {
        uint64_t rejected;
        if (r->body_len > 0 && (r->content_type[0] == '\0' || is_protobuf(r->content_type)) &&
            lk__otlphttp_partial_success(r->body, r->body_len, &rejected, msg,
                                         sizeof(msg)) > 0 &&
            (rejected != 0 || msg[0] != '\0'))
            lk_log(LK_LOG_WARN, "backend accepted the export partially",
                   LK_S("exporter", name) LK_U("rejected", rejected)
                   LK_S("error_message", msg));
    } else {
        snprintf(reason, sizeof(reason), "http_%d", r->http_status);
        lk__otlphttp_error_message(r->body, r->body_len, r->content_type, msg,
                                   sizeof(msg));
        /* A permanent failure drops the batch, which the queue logs too:
         * one line per dropped batch. Retries are only worth a debug line. */
        lk_log(res == LK_EXPORT_PERMANENT ? LK_LOG_WARN : LK_LOG_DEBUG,
               res == LK_EXPORT_PERMANENT ? "otlphttp export refused"
                                          : "otlphttp export attempt failed",
               LK_S("exporter", name) LK_S("url", url)
               LK_I("http_status", r->http_status) LK_S("message", msg)
               LK_I("retry_after_ms", r->retry_after_ms));
    }
    attempt_free(a);
    lk_batch_done(b, res, res == LK_EXPORT_RETRY ? r->retry_after_ms : -1,
                  res == LK_EXPORT_OK ? NULL : reason);
}

static void post(struct attempt *a);

static void compress_work(uv_work_t *w)
{
    struct attempt *a = w->data; /* a thread of the pool: touches only |a| and the batch's bytes */
    a->rc = lk_compress_iov_alloc(a->x->codec, a->x->level, a->iov, a->n, a->total, &a->zbody,
                                  &a->zbody_len);
}

static void compress_done(uv_work_t *w, int status)
{
    struct attempt *a = w->data;
    struct otlphttp_exporter *x = a->x;
    lk_batch *b = a->b;
    if (status == 0 && a->rc == 0 && !x->h.closing) {
        post(a);
    } else {
        /* The exporter is closing (the batch is retried elsewhere or
         * dropped by the queue), or compression failed. */
        const char *why = x->h.closing ? "canceled" : "compress_failed";
        bool permanent = !x->h.closing && a->rc == LK_E2BIG;
        attempt_free(a);
        lk_batch_done(b, permanent ? LK_EXPORT_PERMANENT : LK_EXPORT_RETRY, -1,
                      permanent ? "too_large" : why);
    }
    lk_http_exporter_release(&x->h);
}

/* POSTs |a| (its body compressed already when compression is on); a failure to
 * start ends the batch as retryable. */
static void post(struct attempt *a)
{
    struct otlphttp_exporter *x = a->x;
    enum lk_signal sig = lk_batch_signal(a->b);
    struct iovec one = {.iov_base = a->zbody, .iov_len = a->zbody_len};
    int rc = lk_http_client_post(x->h.client, x->url[sig], x->h.headers, x->h.nheaders, &one,
                                 1, x->timeout_ms, post_done, a);
    if (rc < 0) {
        lk_batch *b = a->b;
        attempt_free(a);
        lk_batch_done(b, LK_EXPORT_RETRY, -1, "post_failed");
    }
}

static int otlphttp_send(lk_exporter *e, lk_batch *b)
{
    struct otlphttp_exporter *x = (struct otlphttp_exporter *)e;
    enum lk_signal sig = lk_batch_signal(b);
    const struct iovec *iov;
    size_t n, total;
    int rc;

    if (x->h.closing)
        return LK_ECLOSED;
    if (x->url[sig] == NULL) {
        lk_log(LK_LOG_ERROR, "otlphttp exporter has no endpoint for this signal",
               LK_S("exporter", x->h.base.name) LK_S("signal", lk_signal_name(sig)));
        return lk_http_exporter_fail(&x->h, b, "no_endpoint");
    }
    struct attempt *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return LK_ENOMEM;
    a->x = x;
    a->b = b;
    lk_batch_iov(b, &iov, &n, &total);
    struct iovec one;
    if (x->compress && total >= OFFLOOP_COMPRESS_BYTES) {
        a->iov = iov;
        a->n = n;
        a->total = total;
        a->work.data = a;
        lk_http_exporter_hold(&x->h);
        rc = uv_queue_work(x->h.loop, &a->work, compress_work, compress_done);
        if (rc != 0) {
            lk_http_exporter_release(&x->h);
            rc = LK_ESYS;
            goto err_attempt;
        }
        return 0; /* compress_done posts it */
    }
    if (x->compress) {
        rc = lk_compress_iov_alloc(x->codec, x->level, iov, n, total, &a->zbody, &a->zbody_len);
        if (rc < 0)
            goto err_attempt;
        one.iov_base = a->zbody;
        one.iov_len = a->zbody_len;
        iov = &one;
        n = 1;
    }
    /* The batch's bytes (or |a->zbody|) stay put until post_done. */
    rc = lk_http_client_post(x->h.client, x->url[sig], x->h.headers, x->h.nheaders,
                             iov, n, x->timeout_ms, post_done, a);
    if (rc < 0)
        goto err_attempt;
    return 0;
err_attempt:
    attempt_free(a);
    return rc;
}

static void exporter_free(struct lk_http_exporter *h)
{
    struct otlphttp_exporter *x = (struct otlphttp_exporter *)h;
    for (int s = 0; s < LK_SIGNAL_COUNT; s++)
        free(x->url[s]);
    lk_http_exporter_fini(&x->h);
    free(x);
}

const struct lk_exporter_ops lk_otlphttp_exporter_ops = {
    .type = "otlphttp",
    .send = otlphttp_send,
    .close = lk_http_exporter_close,
};

/* Builds the URL of each signal. A base endpoint loses a trailing '/'. */
static int build_urls(struct otlphttp_exporter *x,
                      const struct lk_exporter_config *cfg)
{
    bool any = false;
    for (int s = 0; s < LK_SIGNAL_COUNT; s++) {
        const char *full = cfg->signal_endpoints[s];
        if (full != NULL) {
            x->url[s] = strdup(full);
        } else if (cfg->endpoint != NULL) {
            size_t len = strlen(cfg->endpoint);
            while (len > 0 && cfg->endpoint[len - 1] == '/')
                len--;
            size_t size = len + strlen(signal_path[s]) + 1;
            x->url[s] = malloc(size);
            if (x->url[s] != NULL)
                snprintf(x->url[s], size, "%.*s%s", (int)len, cfg->endpoint,
                         signal_path[s]);
        } else {
            continue;
        }
        if (x->url[s] == NULL)
            return LK_ENOMEM;
        if (!lk_http_url_is_valid(x->url[s])) {
            lk_log(LK_LOG_ERROR, "otlphttp exporter: not an http(s) URL",
                   LK_S("exporter", cfg->name) LK_S("url", x->url[s]));
            return LK_EINVAL;
        }
        any = true;
    }
    if (!any) {
        lk_log(LK_LOG_ERROR, "otlphttp exporter has no endpoint",
               LK_S("exporter", cfg->name));
        return LK_EINVAL;
    }
    return 0;
}

/* Content-Type, Content-Encoding, then the configured headers. The body's
 * framing is ours: configured headers that would contradict it are left out. */
static int build_headers(struct otlphttp_exporter *x,
                         const struct lk_exporter_config *cfg)
{
    static const char *const reserved[] = {"Content-Type", "Content-Encoding",
                                           "Content-Length", "Transfer-Encoding", NULL};
    int rc = lk_http_exporter_add_header(&x->h, "Content-Type", "application/x-protobuf");
    if (rc == 0 && x->compress)
        rc = lk_http_exporter_add_header(&x->h, "Content-Encoding",
                                         x->codec == LK_CODEC_ZSTD ? "zstd" : "gzip");
    if (rc == 0)
        rc = lk_http_exporter_add_config_headers(&x->h, cfg, reserved);
    return rc;
}

int lk_otlphttp_exporter_create(lk_exporter **out, uv_loop_t *loop,
                                const struct lk_exporter_config *cfg)
{
    struct otlphttp_exporter *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return LK_ENOMEM;
    enum lk_compression comp = lk_exporter_compression(cfg);
    x->compress = comp != LK_COMPRESSION_NONE;
    x->codec = comp == LK_COMPRESSION_ZSTD ? LK_CODEC_ZSTD : LK_CODEC_GZIP;
    x->level = cfg->compression_level ? (int)cfg->compression_level : 1;
    x->timeout_ms = cfg->timeout_ms;
    int rc = build_urls(x, cfg);
    if (rc == 0)
        rc = lk_http_exporter_init(&x->h, loop, cfg, 2, &lk_otlphttp_exporter_ops,
                                   exporter_free);
    if (rc == 0)
        rc = build_headers(x, cfg);
    if (rc < 0) {
        if (x->h.client != NULL) {
            /* Started: the loop owns handles now, close the normal way. */
            lk_http_exporter_close(&x->h.base, NULL, NULL);
            return rc;
        }
        for (int s = 0; s < LK_SIGNAL_COUNT; s++)
            free(x->url[s]);
        lk_http_exporter_fini(&x->h);
        free(x);
        return rc;
    }
    *out = &x->h.base;
    return 0;
}
