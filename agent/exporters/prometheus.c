/*
 * prometheus exporter (see prometheus.h): batches into the series store,
 * the store onto /metrics. Expired series are swept at most once a second,
 * when a batch arrives or a scrape renders.
 */
#include "exporters/prometheus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/exposition.h"
#include "core/httpd.h"
#include "core/log.h"
#include "exporters/prom_otlp.h"
#include "exporters/prom_store.h"

#define SWEEP_EVERY_MS 1000
#define CONFLICT_LOG_EVERY_MS 10000

struct prom_exporter {
    lk_exporter base; /* first */
    uv_loop_t *loop;
    lk_prom_store *store;
    lk_prom_mapper *mapper;
    lk_metrics *metrics;
    lk_gauge *series;
    lk_counter *expired;
    uint64_t last_sweep_ms;
    uint64_t last_conflict_log_ms;
    lk_httpd *httpd;    /* its own listener (endpoint set), else NULL */
    lk_exposition expo; /* that listener's bodies */
    void (*done)(void *arg);
    void *done_arg;
};

static void sweep(struct prom_exporter *x, bool force)
{
    uint64_t now = uv_now(x->loop);
    if (!force && now - x->last_sweep_ms < SWEEP_EVERY_MS)
        return;
    x->last_sweep_ms = now;
    lk_counter_add(x->expired, lk_prom_store_expire(x->store, now));
    lk_gauge_set(x->series, (double)lk_prom_store_series_count(x->store));
}

static int prom_send(lk_exporter *e, lk_batch *b)
{
    struct prom_exporter *x = (struct prom_exporter *)e;
    const struct iovec *iov;
    size_t n, total;
    lk_batch_iov(b, &iov, &n, &total);
    struct lk_prom_map_stats st = {0};
    uint64_t now = uv_now(x->loop);
    for (size_t i = 0; i < n; i++) {
        int rc = lk_prom_mapper_apply(x->mapper, iov[i].iov_base, iov[i].iov_len, now, &st);
        if (rc < 0) /* receivers validate: only LK_ENOMEM can get here */
            lk_log(LK_LOG_ERROR, "prometheus exporter could not apply a request",
                   LK_S("exporter", x->base.name) LK_S("error", lk_strerror(rc)));
    }
    /* Points the store could not take are dropped by reason; the queue counts
     * the rest as sent. */
    for (int d = 0; d < LK_PROM_DROP_COUNT; d++)
        if (st.dropped[d] > 0)
            lk_batch_count_rejected(b, st.dropped[d], lk_prom_drop_reason((enum lk_prom_drop)d));
    if (st.dropped[LK_PROM_DROP_TYPE_CONFLICT] > 0 &&
        now - x->last_conflict_log_ms >= CONFLICT_LOG_EVERY_MS) {
        x->last_conflict_log_ms = now;
        lk_log(LK_LOG_WARN, "metric points dropped: their Prometheus name is taken by a "
                            "metric of another type",
               LK_S("exporter", x->base.name)
               LK_U("points", st.dropped[LK_PROM_DROP_TYPE_CONFLICT]));
    }
    sweep(x, false);
    lk_batch_done(b, LK_EXPORT_OK, -1, NULL);
    return 0;
}

int lk_prometheus_exporter_render(lk_buf *out, bool openmetrics, void *arg)
{
    struct prom_exporter *x = arg;
    sweep(x, true);
    return lk_prom_store_render(x->store, out, openmetrics);
}

static void prom_free(void *arg)
{
    struct prom_exporter *x = arg;
    void (*done)(void *) = x->done;
    void *done_arg = x->done_arg;
    lk_exposition_fini(&x->expo);
    lk_prom_mapper_destroy(x->mapper);
    lk_prom_store_destroy(x->store);
    free(x->base.name);
    free(x);
    if (done != NULL)
        done(done_arg);
}

/* The listener goes first (its scrapes render the store), then the store. */
static void prom_close(lk_exporter *e, void (*done)(void *arg), void *arg)
{
    struct prom_exporter *x = (struct prom_exporter *)e;
    x->done = done;
    x->done_arg = arg;
    if (x->httpd != NULL) {
        lk_httpd *h = x->httpd;
        x->httpd = NULL;
        lk_httpd_close(h, prom_free, x);
    } else {
        prom_free(x);
    }
}

/* The own listener: GET/HEAD /metrics, the store alone. */
static void handle(lk_httpd_req *req, void *arg)
{
    struct prom_exporter *x = arg;
    const char *method = lk_httpd_req_method(req);
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(lk_httpd_req_path(req), "/metrics") != 0) {
        (void)lk_httpd_respond(req, 404, text, NULL, "not found\n", 10);
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        (void)lk_httpd_respond(req, 405, text, "Allow: GET, HEAD\r\n", "method not allowed\n",
                               19);
        return;
    }
    if (x->store == NULL) { /* closing */
        (void)lk_httpd_respond(req, 503, text, NULL, "closing\n", 8);
        return;
    }
    lk_exposition_serve(&x->expo, req, lk_prometheus_exporter_render, x);
}

const struct lk_exporter_ops lk_prometheus_exporter_ops = {
    .type = "prometheus",
    .send = prom_send,
    .close = prom_close,
};

int lk_prometheus_exporter_create(lk_exporter **out, uv_loop_t *loop,
                                  const struct lk_exporter_config *cfg, lk_metrics *m)
{
    struct prom_exporter *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return LK_ENOMEM;
    x->base.ops = &lk_prometheus_exporter_ops;
    x->base.name = strdup(cfg->name);
    x->loop = loop;
    x->metrics = m;
    struct lk_prom_store_opts so = {
        .expiration_ms = cfg->prometheus.metric_expiration_ms,
        .max_series = cfg->prometheus.max_series,
    };
    struct lk_prom_map_opts mo = {
        .add_suffixes = cfg->prometheus.add_metric_suffixes,
        .promote = cfg->prometheus.promote_resource_attributes,
        .npromote = cfg->prometheus.npromote,
    };
    lk_exposition_init(&x->expo);
    x->store = lk_prom_store_create(&so);
    x->mapper = x->store ? lk_prom_mapper_create(&mo, x->store) : NULL;
    if (x->base.name == NULL || x->mapper == NULL) {
        prom_close(&x->base, NULL, NULL);
        return LK_ENOMEM;
    }
    if (cfg->endpoint != NULL) {
        const struct lk_httpd_opts o = {
            .endpoint = cfg->endpoint,
            .name = cfg->name,
            .max_connections = 32,
            .max_header_bytes = 16 * 1024,
            .max_body_bytes = 16 * 1024,
            .idle_timeout_ms = 60000,
            .request_timeout_ms = 10000,
        };
        int rc = lk_httpd_create(&x->httpd, loop, &o, handle, x);
        if (rc < 0) {
            x->httpd = NULL;
            prom_close(&x->base, NULL, NULL);
            return rc;
        }
        lk_log(LK_LOG_INFO, "prometheus exporter listening", LK_S("exporter", cfg->name)
               LK_S("endpoint", cfg->endpoint));
    }
    char labels[512];
    snprintf(labels, sizeof(labels), "exporter=\"%s\"", cfg->name);
    x->series = lk_metrics_gauge(m, "lookout_prometheus_series",
                                 "Series held by a prometheus exporter.", labels);
    x->expired = lk_metrics_counter(m, "lookout_prometheus_series_expired_total",
                                    "Series removed after metric_expiration without updates.",
                                    labels);
    *out = &x->base;
    return 0;
}
