#include "admin/admin.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/gzip.h"
#include "core/httpd.h"
#include "core/log.h"

/* Scrapes and probes are small and few: tight limits. */
#define ADMIN_MAX_CONNECTIONS 32
#define ADMIN_MAX_HEADER_BYTES (16 * 1024)
#define ADMIN_MAX_BODY_BYTES (16 * 1024)
#define ADMIN_IDLE_TIMEOUT_MS 60000 /* longer than a usual scrape interval */
#define ADMIN_REQUEST_TIMEOUT_MS 10000
#define ADMIN_MAX_EXPOSITION_BYTES (64 * 1024 * 1024)

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define EXPOSITION_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define OPENMETRICS_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define GZIP_MIN_BYTES 1024 /* smaller expositions go as they are */

struct lk_admin {
    lk_httpd *httpd;
    lk_metrics *metrics; /* not owned */
    bool ready;
    lk_admin_render_cb render; /* extra exposition, may be NULL */
    void *render_arg;
    lk_buf scratch; /* the exposition, reused between scrapes */
    lk_buf gz;      /* its gzip form, when the scraper accepts it */
    void (*done)(void *arg);
    void *done_arg;
};

static void respond_text(lk_httpd_req *req, int status, const char *extra,
                         const char *text)
{
    (void)lk_httpd_respond(req, status, TEXT_PLAIN, extra, text, strlen(text));
}

/*
 * Whether the header value |h| (Accept, Accept-Encoding) lists |what| with a
 * q-value above 0. Media type parameters other than q are not looked at.
 */
bool lk__admin_accepts(const char *h, const char *what)
{
    size_t wl = strlen(what);
    for (const char *p = h; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= wl && strncasecmp(p, what, wl) == 0 &&
            (n == wl || p[wl] == ';' || p[wl] == ' ')) {
            const char *q = p + wl;
            bool zero = false;
            for (; q < p + n; q++) {
                if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
                    double v = strtod(q + 2, NULL);
                    zero = v <= 0;
                    break;
                }
            }
            if (!zero)
                return true;
        }
        p = end;
    }
    return false;
}

static void serve_metrics(lk_admin *a, lk_httpd_req *req)
{
    bool om = lk__admin_accepts(lk_httpd_req_header(req, "accept"),
                                "application/openmetrics-text");
    lk_buf_reset(&a->scratch);
    int rc = lk_metrics_render_format(a->metrics, &a->scratch, om);
    if (rc == 0 && a->render != NULL)
        rc = a->render(&a->scratch, om, a->render_arg);
    if (rc == 0 && om)
        rc = lk_buf_append_str(&a->scratch, "# EOF\n");
    if (rc < 0) {
        lk_log(LK_LOG_ERROR, "cannot render metrics",
               LK_S("error", lk_strerror(rc)));
        respond_text(req, 500, NULL, "cannot render metrics\n");
        return;
    }
    const lk_buf *body = &a->scratch;
    const char *extra = "Vary: Accept, Accept-Encoding\r\n";
    if (a->scratch.len >= GZIP_MIN_BYTES &&
        lk__admin_accepts(lk_httpd_req_header(req, "accept-encoding"), "gzip")) {
        lk_buf_reset(&a->gz);
        if (lk_gzip_deflate(a->scratch.data, a->scratch.len, &a->gz) == 0) {
            body = &a->gz;
            extra = "Content-Encoding: gzip\r\nVary: Accept, Accept-Encoding\r\n";
        }
    }
    (void)lk_httpd_respond(req, 200, om ? OPENMETRICS_TYPE : EXPOSITION_TYPE, extra,
                           body->data, body->len);
    /* An unusually large exposition should not stay allocated. */
    if (a->scratch.cap > 1024 * 1024)
        lk_buf_fini(&a->scratch);
    if (a->gz.cap > 1024 * 1024)
        lk_buf_fini(&a->gz);
}

static void handle(lk_httpd_req *req, void *arg)
{
    lk_admin *a = arg;
    const char *path = lk_httpd_req_path(req);
    const char *method = lk_httpd_req_method(req);
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
    lk_buf_init(&a->scratch, ADMIN_MAX_EXPOSITION_BYTES);
    lk_buf_init(&a->gz, ADMIN_MAX_EXPOSITION_BYTES);
    const struct lk_httpd_opts o = {
        .endpoint = endpoint,
        .name = "admin",
        .max_connections = ADMIN_MAX_CONNECTIONS,
        .max_header_bytes = ADMIN_MAX_HEADER_BYTES,
        .max_body_bytes = ADMIN_MAX_BODY_BYTES,
        .idle_timeout_ms = ADMIN_IDLE_TIMEOUT_MS,
        .request_timeout_ms = ADMIN_REQUEST_TIMEOUT_MS,
    };
    int rc = lk_httpd_create(&a->httpd, loop, &o, handle, a);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
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
    lk_buf_fini(&a->scratch);
    lk_buf_fini(&a->gz);
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
