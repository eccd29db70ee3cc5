/*
 * The admin HTTP endpoint: GET (or HEAD) /metrics (self-metrics in the
 * Prometheus text format 0.0.4, or OpenMetrics 1.0 when Accept asks for it;
 * gzip when Accept-Encoding allows), /healthz (200 while the loop runs) and
 * /readyz (200 once lk_admin_set_ready(true), else 503). Other paths get 404;
 * other methods on these paths 405 with an Allow header.
 */
#ifndef LK_ADMIN_ADMIN_H
#define LK_ADMIN_ADMIN_H

#include <stdbool.h>
#include <uv.h>

#include "core/buf.h"
#include "core/exposition.h"
#include "core/selfmetrics.h"

typedef struct lk_admin lk_admin;

/*
 * Listens on |endpoint| ("host:port", "[v6]:port" or "unix:///path") and
 * serves |m| (not owned; it must outlive the endpoint). Starts not ready.
 * Returns 0 and sets |*out|, or LK_EINVAL, LK_ENOMEM, LK_ESYS (see
 * lk_httpd_create).
 */
int lk_admin_start(lk_admin **out, uv_loop_t *loop, const char *endpoint,
                   lk_metrics *m);
void lk_admin_set_ready(lk_admin *a, bool ready);

/*
 * Appends more exposition after the self-metrics on every GET /metrics (for
 * the Prometheus exporter, which serves the pipeline's metrics on the same
 * endpoint). |render| appends to |out| in the format the scraper's Accept
 * asked for (text 0.0.4, OpenMetrics 1.0 without `# EOF`, which the admin
 * adds, or the protobuf exposition), and returns 0 or a negative LK_E* code
 * (the scrape then fails with 500). One renderer at a time: a new call
 * replaces it; NULL removes it. |arg| is not owned.
 */
typedef lk_exposition_render lk_admin_render_cb;
void lk_admin_set_renderer(lk_admin *a, lk_admin_render_cb render, void *arg);
/*
 * POST (or PUT) /-/reload calls |cb|, which reloads the configuration and
 * returns 0 (answered 200), LK_ECONFIG with *errors set to the errors, one
 * per line (answered 400), or another LK_E* (500, with *errors when set).
 * *errors is malloc'd; the admin frees it.
 */
typedef int (*lk_admin_reload_cb)(void *arg, char **errors);
void lk_admin_set_reload(lk_admin *a, lk_admin_reload_cb cb, void *arg);
/* The bound TCP port (for endpoints with port 0), or -1. */
int lk_admin_port(const lk_admin *a);
/* Stops listening, closes connections, frees |a|, then calls |done| (may be
 * NULL) with |arg|. NULL-safe (|done| is then called at once). */
void lk_admin_close(lk_admin *a, void (*done)(void *arg), void *arg);

#endif
