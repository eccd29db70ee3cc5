/* What every exporter over core/http_client shares: the client, the headers
 * sent with every request, dropping a batch outside send(), and the staged
 * close. otlphttp and loki embed it first. Loop thread only. */
#ifndef LK_EXPORTERS_HTTP_EXPORTER_H
#define LK_EXPORTERS_HTTP_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "config/config.h"
#include "core/http_client.h"
#include "pipeline/exporter.h"

struct lk_http_failed;

struct lk_http_exporter {
    lk_exporter base; /* first: the queue sees an lk_exporter */
    uv_loop_t *loop;
    lk_http_client *client;
    struct lk_header *headers; /* sent with every request, owned */
    size_t nheaders, capheaders;
    bool closing;
    uint64_t last_refusal_log_ms; /* lk_http_exporter_refusal_log_due */
    uint64_t refusals_unlogged;
    /* Private. */
    uv_timer_t fail_timer;         /* drops |failed| outside send() */
    struct lk_http_failed *failed;
    int open;                      /* the client and the timer */
    void (*free_self)(struct lk_http_exporter *h);
    void (*close_done)(void *);
    void *close_arg;
};

/*
 * Fills |h| for |cfg|: the name, room for cfg->nheaders + |extra_headers|
 * headers (none added yet), the HTTP client (TLS, user agent,
 * max_concurrency connections) and the timer. |free_self| frees what the
 * embedding exporter owns, then calls lk_http_exporter_fini and frees the
 * whole struct; the close path calls it last. On failure returns LK_ENOMEM,
 * LK_EINVAL, LK_EIO or LK_ESYS with nothing left to close: the caller
 * releases its own fields and calls lk_http_exporter_fini.
 */
int lk_http_exporter_init(struct lk_http_exporter *h, uv_loop_t *loop,
                          const struct lk_exporter_config *cfg, size_t extra_headers,
                          const struct lk_exporter_ops *ops,
                          void (*free_self)(struct lk_http_exporter *h));
/* Frees the name and the headers. */
void lk_http_exporter_fini(struct lk_http_exporter *h);
/* Appends a header (copied). LK_ENOMEM, or LK_EINVAL when the name or
 * value cannot be sent (logged). */
int lk_http_exporter_add_header(struct lk_http_exporter *h, const char *name,
                                const char *value);
/* Appends X-Scope-OrgID and Authorization (Bearer or Basic) for |a|, where
 * set. LK_ENOMEM, LK_EINVAL. */
int lk_http_exporter_add_auth_headers(struct lk_http_exporter *h,
                                      const struct lk_http_auth_config *a);
/* Appends the configured headers; |skip| (NULL-terminated, may be NULL)
 * names headers the exporter owns, which are left out with a warning. */
int lk_http_exporter_add_config_headers(struct lk_http_exporter *h,
                                        const struct lk_exporter_config *cfg,
                                        const char *const *skip);
/* Ends |b| as a permanent failure for |reason| (a static string) from a
 * timer callback, as send() may not end a batch itself. LK_ENOMEM. */
int lk_http_exporter_fail(struct lk_http_exporter *h, lk_batch *b, const char *reason);
/* The ops->close of the embedding exporter: transfers in flight end
 * (cancelled, retryable), failed batches are dropped, then free_self and
 * |done| run on the loop. */
void lk_http_exporter_close(lk_exporter *e, void (*done)(void *arg), void *arg);
/* Work of the exporter's own that close must wait for (a body being
 * compressed on the thread pool): hold before starting it, release when its
 * completion has run on the loop; close frees the exporter after the last. */
void lk_http_exporter_hold(struct lk_http_exporter *h);
void lk_http_exporter_release(struct lk_http_exporter *h);
/* Whether a refusal by the backend is to be logged now: at most once per
 * 10 s. When it is, *unlogged is the number of refusals not logged since the
 * last one (and the count starts again); when not, this one is counted. */
bool lk_http_exporter_refusal_log_due(struct lk_http_exporter *h, uint64_t *unlogged);
/* The start of |r|'s body (at most 300 bytes), unprintable bytes as spaces,
 * NUL-terminated in |out|: for a log line. */
void lk_http_body_excerpt(const struct lk_http_result *r, char *out, size_t outlen);
/* A metric-label word for a failed exchange (http_status 0). */
const char *lk_http_transport_reason(const struct lk_http_result *r);

#endif
