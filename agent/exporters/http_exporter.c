#include "exporters/http_exporter.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

struct lk_http_failed {
    lk_batch *b;
    const char *reason;
    struct lk_http_failed *next;
};

int lk_http_exporter_init(struct lk_http_exporter *h, uv_loop_t *loop,
                          const struct lk_exporter_config *cfg, size_t extra_headers,
                          const struct lk_exporter_ops *ops,
                          void (*free_self)(struct lk_http_exporter *h))
{
    h->base.ops = ops;
    h->loop = loop;
    h->free_self = free_self;
    h->base.name = strdup(cfg->name);
    h->capheaders = cfg->nheaders + extra_headers;
    h->headers = calloc(h->capheaders ? h->capheaders : 1, sizeof(*h->headers));
    if (h->base.name == NULL || h->headers == NULL)
        return LK_ENOMEM;
    struct lk_http_client_opts o = {
        .max_connections = cfg->max_concurrency,
        .user_agent = "lookout/" LK_VERSION,
        .tls = &cfg->tls,
    };
    int rc = lk_http_client_create(&h->client, loop, &o);
    if (rc < 0)
        return rc;
    if (uv_timer_init(loop, &h->fail_timer) != 0) {
        lk_http_client_close(h->client, NULL, NULL);
        h->client = NULL;
        return LK_ESYS;
    }
    h->fail_timer.data = h;
    h->open = 2;
    return 0;
}

void lk_http_exporter_fini(struct lk_http_exporter *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        free(h->headers[i].name);
        free(h->headers[i].value);
    }
    free(h->headers);
    h->headers = NULL;
    h->nheaders = 0;
    free(h->base.name);
    h->base.name = NULL;
}

int lk_http_exporter_add_header(struct lk_http_exporter *h, const char *name,
                                const char *value)
{
    if (h->nheaders == h->capheaders)
        return LK_ENOMEM; /* init sized the array: a caller's miscount */
    if (!lk_http_header_is_valid(name, value)) {
        lk_log(LK_LOG_ERROR, "exporter: invalid header", LK_S("exporter", h->base.name)
               LK_S("header", name));
        return LK_EINVAL;
    }
    struct lk_header *hd = &h->headers[h->nheaders];
    hd->name = strdup(name);
    hd->value = strdup(value);
    h->nheaders++; /* counted now so that fini frees both */
    return hd->name == NULL || hd->value == NULL ? LK_ENOMEM : 0;
}

int lk_http_exporter_add_auth_headers(struct lk_http_exporter *h,
                                      const struct lk_http_auth_config *a)
{
    int rc = 0;
    if (a->tenant_id != NULL)
        rc = lk_http_exporter_add_header(h, "X-Scope-OrgID", a->tenant_id);
    if (rc < 0 || (a->bearer_token == NULL && a->username == NULL))
        return rc;
    lk_buf raw, v;
    lk_buf_init(&raw, SIZE_MAX);
    lk_buf_init(&v, SIZE_MAX);
    if (a->bearer_token != NULL) {
        rc = lk_buf_append_str(&v, "Bearer ");
        if (rc == 0)
            rc = lk_buf_append_str(&v, a->bearer_token);
    } else {
        rc = lk_buf_append_str(&raw, a->username);
        if (rc == 0)
            rc = lk_buf_append(&raw, ":", 1);
        if (rc == 0)
            rc = lk_buf_append_str(&raw, a->password);
        if (rc == 0)
            rc = lk_buf_append_str(&v, "Basic ");
        if (rc == 0)
            rc = lk_base64_append(&v, raw.data, raw.len, true);
    }
    if (rc == 0)
        rc = lk_buf_append(&v, "", 1); /* NUL: a C string */
    if (rc == 0)
        rc = lk_http_exporter_add_header(h, "Authorization", (const char *)v.data);
    lk_buf_fini(&raw);
    lk_buf_fini(&v);
    return rc;
}

int lk_http_exporter_add_config_headers(struct lk_http_exporter *h,
                                        const struct lk_exporter_config *cfg,
                                        const char *const *skip)
{
    for (size_t i = 0; i < cfg->nheaders; i++) {
        const struct lk_header *hd = &cfg->headers[i];
        bool owned = false;
        for (size_t k = 0; skip != NULL && skip[k] != NULL && !owned; k++)
            owned = strcasecmp(hd->name, skip[k]) == 0;
        if (owned) {
            lk_log(LK_LOG_WARN, "exporter ignores a configured header",
                   LK_S("exporter", cfg->name) LK_S("header", hd->name));
            continue;
        }
        int rc = lk_http_exporter_add_header(h, hd->name, hd->value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void flush_failed(struct lk_http_exporter *h)
{
    while (h->failed != NULL) {
        struct lk_http_failed *f = h->failed;
        h->failed = f->next;
        lk_batch *b = f->b;
        const char *reason = f->reason;
        free(f);
        lk_batch_done(b, LK_EXPORT_PERMANENT, -1, reason);
    }
}

static void fail_timer_cb(uv_timer_t *t)
{
    flush_failed(t->data);
}

int lk_http_exporter_fail(struct lk_http_exporter *h, lk_batch *b, const char *reason)
{
    struct lk_http_failed *f = malloc(sizeof(*f));
    if (f == NULL)
        return LK_ENOMEM;
    f->b = b;
    f->reason = reason;
    f->next = h->failed;
    h->failed = f;
    uv_timer_start(&h->fail_timer, fail_timer_cb, 0, 0);
    return 0;
}

static void part_closed(struct lk_http_exporter *h)
{
    if (--h->open > 0)
        return;
    void (*done)(void *) = h->close_done;
    void *arg = h->close_arg;
    h->free_self(h);
    if (done != NULL)
        done(arg);
}

void lk_http_exporter_hold(struct lk_http_exporter *h)
{
    h->open++;
}

void lk_http_exporter_release(struct lk_http_exporter *h)
{
    if (h->closing)
        part_closed(h);
    else
        h->open--;
}

static void client_closed(void *arg)
{
    part_closed(arg);
}

static void timer_closed(uv_handle_t *t)
{
    part_closed(t->data);
}

void lk_http_exporter_close(lk_exporter *e, void (*done)(void *arg), void *arg)
{
    struct lk_http_exporter *h = (struct lk_http_exporter *)e;
    h->closing = true;
    h->close_done = done;
    h->close_arg = arg;
    /* Requests in flight end now, each with its lk_batch_done (retryable,
     * "canceled"); batches waiting to be dropped go too. */
    lk_http_client_close(h->client, client_closed, h);
    flush_failed(h);
    uv_close((uv_handle_t *)&h->fail_timer, timer_closed);
}

#define REFUSAL_LOG_EVERY_MS 10000

bool lk_http_exporter_refusal_log_due(struct lk_http_exporter *h, uint64_t *unlogged)
{
    uint64_t now = uv_now(h->loop);
    if (h->last_refusal_log_ms != 0 && now - h->last_refusal_log_ms < REFUSAL_LOG_EVERY_MS) {
        h->refusals_unlogged++;
        return false;
    }
    *unlogged = h->refusals_unlogged;
    h->last_refusal_log_ms = now;
    h->refusals_unlogged = 0;
    return true;
}

void lk_http_body_excerpt(const struct lk_http_result *r, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < r->body_len && o + 1 < outlen && o < 300; i++)
        out[o++] = isprint(r->body[i]) ? (char)r->body[i] : ' ';
    out[o] = '\0';
}

const char *lk_http_transport_reason(const struct lk_http_result *r)
{
    if (r->err == LK_ECANCELED)
        return "canceled";
    switch (r->curl_code) {
    case CURLE_COULDNT_CONNECT:
        return "connect_failed";
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "resolve_failed";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return "tls_error";
    default:
        return "transport_error";
    }
}
