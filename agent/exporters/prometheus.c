/*
 * prometheus exporter (see prometheus.h): batches into the series store,
 * the store onto /metrics. Expired series are swept at most once a second
 * when a batch arrives, and before every scrape.
 */
#include "exporters/prometheus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/exposition.h"
#include "core/httpd.h"
#include "core/log.h"
#include "exporters/prom_state.h"

struct prom_exporter {
    lk_exporter base; /* first */
    uv_loop_t *loop;
    struct lk_prom_state st;
    bool live;          /* st initialised and not yet released */
    lk_httpd *httpd;    /* its own listener (endpoint set), else NULL */
    lk_exposition expo; /* that listener's bodies */
    void (*done)(void *arg);
    void *done_arg;
};

/* Points the store could not take are dropped by reason; the queue counts
 * the rest as sent. */
static int prom_send(lk_exporter *e, lk_batch *b)
{
    struct prom_exporter *x = (struct prom_exporter *)e;
    uint64_t now = uv_now(x->loop);
    (void)lk_prom_state_apply(&x->st, b, now);
    lk_prom_state_sweep(&x->st, now, false);
    lk_batch_done(b, LK_EXPORT_OK, -1, NULL);
    return 0;
}

int lk_prometheus_exporter_render(lk_buf *out, enum lk_expo_format fmt, void *arg)
{
    struct prom_exporter *x = arg;
    lk_prom_state_sweep(&x->st, uv_now(x->loop), true);
    if (fmt == LK_EXPO_PROTOBUF)
        return lk_prom_store_render_proto(x->st.store, out);
    return lk_prom_store_render(x->st.store, out, fmt == LK_EXPO_OPENMETRICS);
}

static void prom_free(void *arg)
{
    struct prom_exporter *x = arg;
    void (*done)(void *) = x->done;
    void *done_arg = x->done_arg;
    lk_exposition_fini(&x->expo);
    if (x->live)
        lk_prom_state_fini(&x->st);
    x->live = false;
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
    if (!x->live) { /* closing */
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
    lk_exposition_init(&x->expo);
    /* Without an endpoint the store is rendered after the self-metrics, in
     * the same body: their names must not appear twice. */
    const lk_metrics *beside = cfg->endpoint == NULL ? m : NULL;
    if (x->base.name == NULL || lk_prom_state_init(&x->st, x->base.name, cfg, m, beside) < 0) {
        prom_close(&x->base, NULL, NULL);
        return LK_ENOMEM;
    }
    x->live = true;
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
    *out = &x->base;
    return 0;
}
