#include "admin/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/exposition.h"
#include "core/httpd.h"
#include "core/log.h"

/* Scrapes and probes are small and few: tight limits. */
#define ADMIN_MAX_CONNECTIONS 32
#define ADMIN_MAX_HEADER_BYTES (16 * 1024)
#define ADMIN_MAX_BODY_BYTES (16 * 1024)
#define ADMIN_IDLE_TIMEOUT_MS 60000 /* longer than a usual scrape interval */
#define ADMIN_REQUEST_TIMEOUT_MS 10000
/* A probe or a scrape sends its request as soon as it connects. */
#define ADMIN_HANDSHAKE_TIMEOUT_MS 10000

#define TEXT_PLAIN "text/plain; charset=utf-8"

struct lk_admin {
    lk_httpd *httpd;
    lk_metrics *metrics; /* not owned */
    bool ready;
    lk_admin_render_cb render; /* extra exposition, may be NULL */
    void *render_arg;
    lk_exposition expo; /* the /metrics bodies, reused between scrapes */
    lk_admin_reload_cb reload;  /* POST /-/reload, may be NULL */
    void *reload_arg;
    void (*done)(void *arg);
    void *done_arg;
};

static void respond_text(lk_httpd_req *req, int status, const char *extra,
                         const char *text)
{
    (void)lk_httpd_respond(req, status, TEXT_PLAIN, extra, text, strlen(text));
}

/* The self-metrics, then the extra renderer's exposition. */
static int render_all(lk_buf *out, enum lk_expo_format fmt, void *arg)
{
    lk_admin *a = arg;
    int rc = fmt == LK_EXPO_PROTOBUF
                 ? lk_metrics_render_proto(a->metrics, out)
                 : lk_metrics_render_format(a->metrics, out, fmt == LK_EXPO_OPENMETRICS);
    if (rc == 0 && a->render != NULL)
        rc = a->render(out, fmt, a->render_arg);
    return rc;
}

static void serve_metrics(lk_admin *a, lk_httpd_req *req)
{
    lk_exposition_serve(&a->expo, req, render_all, a);
}

static void handle(lk_httpd_req *req, void *arg)
{
    lk_admin *a = arg;
    const char *path = lk_httpd_req_path(req);
    const char *method = lk_httpd_req_method(req);
    if (strcmp(path, "/-/reload") == 0) {
        if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0) {
            respond_text(req, 405, "Allow: POST, PUT\r\n", "method not allowed\n");
            return;
        }
        if (a->reload == NULL) {
            respond_text(req, 503, NULL, "reload not available\n");
            return;
        }
        char *errors = NULL;
        int rc = a->reload(a->reload_arg, &errors);
        if (rc == 0)
            respond_text(req, 200, NULL, "reloaded\n");
        else
            respond_text(req, rc == LK_ECONFIG ? 400 : rc == LK_EAGAIN ? 503 : 500,
                         rc == LK_EAGAIN ? "Retry-After: 1\r\n" : NULL,
                         errors != NULL ? errors : lk_strerror(rc));
        free(errors);
        return;
    }
    bool known = strcmp(path, "/metrics") == 0 ||
                 strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;
    if (!known) {
        respond_text(req, 404, NULL, "not found\n");
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        respond_text(req, 405, "Allow: GET, HEAD\r\n", "method not allowed\n");
        return;
    }
    if (strcmp(path, "/metrics") == 0)
        serve_metrics(a, req);
    else if (strcmp(path, "/healthz") == 0)
        respond_text(req, 200, NULL, "ok\n");
    else if (a->ready)
        respond_text(req, 200, NULL, "ready\n");
    else
        respond_text(req, 503, NULL, "not ready\n");
}

int lk_admin_start(lk_admin **out, uv_loop_t *loop, const char *endpoint,
                   lk_metrics *m)
{
    lk_admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return LK_ENOMEM;
    a->metrics = m;
    lk_exposition_init(&a->expo);
    struct lk_httpd_opts o = {
        .endpoint = endpoint,
        .name = "admin",
        .max_connections = ADMIN_MAX_CONNECTIONS,
        .max_header_bytes = ADMIN_MAX_HEADER_BYTES,
        .max_body_bytes = ADMIN_MAX_BODY_BYTES,
        .idle_timeout_ms = ADMIN_IDLE_TIMEOUT_MS,
        .request_timeout_ms = ADMIN_REQUEST_TIMEOUT_MS,
        .handshake_timeout_ms = ADMIN_HANDSHAKE_TIMEOUT_MS,
        .connections = lk_metrics_gauge(m, "lookout_admin_connections",
                                        "Open admin connections.", ""),
        .connections_refused = lk_metrics_counter(
            m, "lookout_admin_connections_refused_total",
            "Admin connections refused with 503: the limit was reached and every "
            "connection was busy.",
            ""),
    };
    lk_conn_close_counters(m, "lookout_admin_connections_closed_total",
                           "Admin connections closed by lookout on its own, by reason.", "",
                           o.closed);
    int rc = lk_httpd_create(&a->httpd, loop, &o, handle, a);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void lk_admin_set_reload(lk_admin *a, lk_admin_reload_cb cb, void *arg)
{
    a->reload = cb;
    a->reload_arg = arg;
}

void lk_admin_set_ready(lk_admin *a, bool ready)
{
    if (a != NULL)
        a->ready = ready;
}

void lk_admin_set_renderer(lk_admin *a, lk_admin_render_cb render, void *arg)
{
    a->render = render;
    a->render_arg = arg;
}

int lk_admin_port(const lk_admin *a)
{
    return lk_httpd_port(a->httpd);
}

static void on_httpd_closed(void *arg)
{
    lk_admin *a = arg;
    void (*done)(void *) = a->done;
    void *done_arg = a->done_arg;
    lk_exposition_fini(&a->expo);
    free(a);
    if (done != NULL)
        done(done_arg);
}

void lk_admin_close(lk_admin *a, void (*done)(void *arg), void *arg)
{
    if (a == NULL) {
        if (done != NULL)
            done(arg);
        return;
    }
    a->done = done;
    a->done_arg = arg;
    lk_httpd_close(a->httpd, on_httpd_closed, a);
}
