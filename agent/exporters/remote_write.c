/*
 * prometheusremotewrite exporter (see remote_write.h). The series store
 * tracks which series a batch touched; those are encoded (prom_rw),
 * snappy-compressed and kept on the batch (lk_batch_set_state) until it
 * ends, so every attempt sends the same bytes.
 */
#include "exporters/remote_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <snappy-c.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/http_client.h"
#include "core/log.h"
#include "exporters/http_exporter.h"
#include "exporters/prom_rw.h"
#include "exporters/prom_state.h"

#define MAX_BODY_BYTES (256u * 1024 * 1024) /* of one uncompressed WriteRequest */

struct rw_exporter {
    struct lk_http_exporter h; /* first */
    char *url;
    uint64_t timeout_ms;
    struct lk_prom_state st;
    bool live; /* st initialised */
    lk_prom_rw *enc;
    lk_buf scratch; /* the uncompressed body, reused */
    lk_counter *samples;
};

/* A batch's encoded body, kept across its attempts. */
struct body {
    uint8_t *data;
    size_t len;
    uint64_t timeseries;
};

/* One POST of one batch, alive until its callback. */
struct attempt {
    struct rw_exporter *x;
    lk_batch *b;
};

enum lk_export_result lk_remote_write_classify(int http_status)
{
    if (http_status >= 200 && http_status <= 299)
        return LK_EXPORT_OK;
    if (http_status == 0 || http_status == 429 || http_status >= 500)
        return LK_EXPORT_RETRY;
    return LK_EXPORT_PERMANENT;
}

static void body_free(void *p)
{
    struct body *body = p;
    if (body != NULL) {
        free(body->data);
        free(body);
    }
}

static void log_refusal(struct rw_exporter *x, const struct lk_http_result *r, uint64_t items)
{
    uint64_t unlogged;
    if (!lk_http_exporter_refusal_log_due(&x->h, &unlogged))
        return;
    char msg[320];
    lk_http_body_excerpt(r, msg, sizeof(msg));
    lk_log(LK_LOG_WARN, "remote write refused a request, dropping it",
           LK_S("exporter", x->h.base.name) LK_I("http_status", r->http_status)
           LK_U("points", items) LK_U("refusals_not_logged", unlogged)
           LK_S("message", msg));
}

static void post_done(void *arg, const struct lk_http_result *r)
{
    struct attempt *a = arg;
    struct rw_exporter *x = a->x;
    lk_batch *b = a->b;
    free(a);
    char reason[32];
    enum lk_export_result res = lk_remote_write_classify(r->http_status);
    if (res == LK_EXPORT_OK) {
        const struct body *body = lk_batch_state(b);
        lk_counter_add(x->samples, body != NULL ? body->timeseries : 0);
        lk_batch_done(b, LK_EXPORT_OK, -1, NULL);
        return;
    }
    if (r->http_status == 0)
        snprintf(reason, sizeof(reason), "%s", lk_http_transport_reason(r));
    else
        snprintf(reason, sizeof(reason), "http_%d", r->http_status);
    if (res == LK_EXPORT_RETRY) {
        lk_log(LK_LOG_DEBUG, "remote write attempt failed", LK_S("exporter", x->h.base.name)
               LK_I("http_status", r->http_status) LK_S("reason", reason)
               LK_S("error", r->error) LK_I("retry_after_ms", r->retry_after_ms));
        lk_batch_done(b, LK_EXPORT_RETRY, r->retry_after_ms, reason);
        return;
    }
    log_refusal(x, r, lk_batch_items(b));
    lk_batch_done(b, LK_EXPORT_PERMANENT, -1, reason);
}

static uint64_t wall_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int collect_all(void *arg, lk_prom_series *se)
{
    struct {
        lk_prom_series **v;
        size_t n;
    } *all = arg;
    all->v[all->n++] = se;
    return 0;
}

/* Applies |b| to the store and encodes what it changed into a new body. */
static int translate(struct rw_exporter *x, lk_batch *b, struct body **out)
{
    uint64_t now = uv_now(x->h.loop);
    lk_prom_store *s = x->st.store;
    lk_prom_store_clear_touched(s);
    (void)lk_prom_state_apply(&x->st, b, now);

    size_t n;
    bool incomplete;
    lk_prom_series *const *touched = lk_prom_store_touched(s, &n, &incomplete);
    struct {
        lk_prom_series **v;
        size_t n;
    } all = {NULL, 0};
    if (incomplete) { /* the list ran out of memory: send every series */
        all.v = malloc((lk_prom_store_series_count(s) + 1) * sizeof(*all.v));
        if (all.v == NULL) {
            lk_prom_store_clear_touched(s);
            return LK_ENOMEM;
        }
        (void)lk_prom_store_each(s, collect_all, &all);
        touched = all.v;
        n = all.n;
    }
    struct lk_prom_rw_stats rs = {0};
    lk_buf_reset(&x->scratch);
    int rc = lk_prom_rw_encode(x->enc, s, touched, n, wall_ms_now(), &x->scratch, &rs);
    free(all.v);
    lk_prom_store_clear_touched(s);
    lk_prom_state_sweep(&x->st, now, false);
    if (rc < 0)
        return rc;

    struct body *body = calloc(1, sizeof(*body));
    size_t max = snappy_max_compressed_length(x->scratch.len);
    if (body != NULL)
        body->data = malloc(max ? max : 1);
    if (body == NULL || body->data == NULL) {
        body_free(body);
        return LK_ENOMEM;
    }
    body->len = max;
    if (snappy_compress((const char *)x->scratch.data, x->scratch.len, (char *)body->data,
                        &body->len) != SNAPPY_OK) {
        body_free(body);
        return LK_EIO;
    }
    body->timeseries = rs.timeseries;
    *out = body;
    return 0;
}

static int rw_send(lk_exporter *e, lk_batch *b)
{
    struct rw_exporter *x = (struct rw_exporter *)e;
    if (x->h.closing)
        return LK_ECLOSED;
    struct body *body = lk_batch_state(b);
    if (body == NULL) {
        int rc = translate(x, b, &body);
        if (rc == LK_E2BIG || rc == LK_EINVAL) {
            /* The store took the points; the same encoding would fail again. */
            lk_log(LK_LOG_ERROR, "cannot encode a remote write request, dropping it",
                   LK_S("exporter", x->h.base.name) LK_S("error", lk_strerror(rc)));
            return lk_http_exporter_fail(&x->h, b, rc == LK_E2BIG ? "too_large" : "malformed");
        }
        if (rc < 0)
            return rc;
        lk_batch_set_state(b, body, body_free);
    }
    struct attempt *a = malloc(sizeof(*a));
    if (a == NULL)
        return LK_ENOMEM;
    a->x = x;
    a->b = b;
    struct iovec one = {.iov_base = body->data, .iov_len = body->len};
    int rc = lk_http_client_post(x->h.client, x->url, x->h.headers, x->h.nheaders, &one, 1,
                                 x->timeout_ms, post_done, a);
    if (rc < 0)
        free(a);
    return rc;
}

static void exporter_free(struct lk_http_exporter *h)
{
    struct rw_exporter *x = (struct rw_exporter *)h;
    if (x->live)
        lk_prom_state_fini(&x->st);
    lk_prom_rw_destroy(x->enc);
    lk_buf_fini(&x->scratch);
    free(x->url);
    lk_http_exporter_fini(&x->h);
    free(x);
}

const struct lk_exporter_ops lk_remote_write_exporter_ops = {
    .type = "prometheusremotewrite",
    .send = rw_send,
    .close = lk_http_exporter_close,
};

/* What remote write 1.0 requires, then tenant and auth, then the configured
 * headers (those that would contradict these are left out). */
static int build_headers(struct rw_exporter *x, const struct lk_exporter_config *cfg)
{
    static const char *const owned[] = {"Content-Type", "Content-Encoding",
                                        "X-Prometheus-Remote-Write-Version", NULL};
    int rc = lk_http_exporter_add_header(&x->h, "Content-Type", "application/x-protobuf");
    if (rc == 0)
        rc = lk_http_exporter_add_header(&x->h, "Content-Encoding", "snappy");
    if (rc == 0)
        rc = lk_http_exporter_add_header(&x->h, "X-Prometheus-Remote-Write-Version", "0.1.0");
    if (rc == 0)
        rc = lk_http_exporter_add_auth_headers(&x->h, &cfg->auth);
    if (rc == 0)
        rc = lk_http_exporter_add_config_headers(&x->h, cfg, owned);
    return rc;
}

int lk_remote_write_exporter_create(lk_exporter **out, uv_loop_t *loop,
                                    const struct lk_exporter_config *cfg, lk_metrics *m)
{
    struct rw_exporter *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return LK_ENOMEM;
    x->timeout_ms = cfg->timeout_ms;
    lk_buf_init(&x->scratch, MAX_BODY_BYTES);
    int rc = LK_ENOMEM;
    x->url = strdup(cfg->endpoint != NULL ? cfg->endpoint : "");
    x->enc = lk_prom_rw_create();
    if (x->url == NULL || x->enc == NULL)
        goto fail;
    if (!lk_http_url_is_valid(x->url)) {
        lk_log(LK_LOG_ERROR, "prometheusremotewrite exporter: not an http(s) URL",
               LK_S("exporter", cfg->name) LK_S("url", x->url));
        rc = LK_EINVAL;
        goto fail;
    }
    rc = lk_http_exporter_init(&x->h, loop, cfg, 6, &lk_remote_write_exporter_ops,
                               exporter_free);
    if (rc == 0)
        rc = lk_prom_state_init(&x->st, x->h.base.name, cfg, m, NULL);
    if (rc == 0) {
        x->live = true;
        lk_prom_store_track(x->st.store, true);
        rc = build_headers(x, cfg);
    }
    if (rc < 0)
        goto fail;
    char labels[512];
    snprintf(labels, sizeof(labels), "exporter=\"%s\"", cfg->name);
    x->samples = lk_metrics_counter(m, "lookout_remote_write_samples_total",
                                    "Samples a prometheusremotewrite exporter delivered.",
                                    labels);
    *out = &x->h.base;
    return 0;
fail:
    if (x->h.client != NULL) {
        lk_http_exporter_close(&x->h.base, NULL, NULL);
        return rc;
    }
    exporter_free(&x->h);
    return rc;
}
