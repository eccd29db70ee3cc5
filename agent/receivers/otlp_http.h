/*
 * OTLP/HTTP receiver: POST /v1/traces, /v1/metrics and /v1/logs over HTTP/1.1
 * (core/httpd), over TCP or a Unix socket, with protobuf
 * (application/x-protobuf) or JSON (application/json) bodies, optionally
 * gzip- or deflate-encoded. JSON is turned into protobuf once, at the door,
 * so the pipeline sees only protobuf. Compressed bodies of
 * LK_INFLATE_OFFLOOP_BYTES or more are inflated on libuv's thread pool
 * (core/inflate_pool.h) and the request is finished on the loop afterwards;
 * its connection reads nothing more meanwhile, so pipelined requests are
 * still answered in order.
 *
 * Answers: 200 with an Export<Signal>ServiceResponse in the request's content
 * type (carrying partial_success when only some items had invalid values:
 * those are rejected, the rest queued); otherwise a google.rpc.Status body (protobuf, or JSON for JSON
 * requests) with
 *   400 malformed or invalid data (never retried by clients),
 *   404 unknown path, or a signal without a pipeline,
 *   405 another method than POST on a signal path (with Allow: POST),
 *   413 body over max_request_body_size after decompression,
 *   415 content type or content encoding not supported,
 *   503 pipeline full, out of memory, or (storage.durable) the commit to
 *       the disk spool failed (with Retry-After: 1).
 * With storage.durable (lk_pipeline_durable) a request is answered only once
 * its items are committed (pipeline/ack.h); its connection reads nothing
 * meanwhile, and closing the receiver stops the wait without an answer.
 * The HTTP server answers on its own, without a Status body: 413 (body over
 * the limit on the wire), 431, 408, 400 (malformed HTTP), 503 (over
 * max_connections); all but the last are counted in the request counter
 * through the server's on_reject hook.
 */
#ifndef LK_RECEIVERS_OTLP_HTTP_H
#define LK_RECEIVERS_OTLP_HTTP_H

#include <uv.h>

#include "config/config.h"
#include "core/selfmetrics.h"
#include "pipeline/pipeline.h"

typedef struct lk_otlp_http lk_otlp_http;

/*
 * Listens on |cfg->endpoint| as receiver |name| (a label of its metrics).
 * |pipelines| is indexed by signal; a NULL entry makes that signal's path
 * answer 404. Pipelines are borrowed and must outlive the receiver; |cfg| and
 * |name| are copied. Registers the receiver's series in |m| (which must
 * outlive it). Returns 0 and sets |*out|, or LK_ENOMEM, LK_EINVAL (malformed
 * endpoint) or LK_ESYS (bind/listen failed; logged).
 */
int lk_otlp_http_start(lk_otlp_http **out, uv_loop_t *loop, const char *name,
                       const struct lk_http_receiver_config *cfg,
                       lk_pipeline *const pipelines[LK_SIGNAL_COUNT],
                       lk_metrics *m);

/* The bound TCP port (useful with port 0), or -1 on a Unix socket. */
int lk_otlp_http_port(const lk_otlp_http *r);

/*
 * Stops accepting and closes every connection at once (a response being
 * written is cut). A request whose body is being inflated on the thread
 * pool is not queued: its result is dropped, as the client gets no answer
 * to retry on. |done| (may be NULL) runs on the loop once everything is
 * closed and the thread pool is through with every body; |r| is freed just
 * before. Call once.
 */
/* A reload that keeps the endpoint: new limits (for new connections and
 * requests) and pipelines. */
void lk_otlp_http_update(lk_otlp_http *r, const struct lk_http_receiver_config *cfg,
                         lk_pipeline *const pipelines[LK_SIGNAL_COUNT]);
void lk_otlp_http_close(lk_otlp_http *r, void (*done)(void *arg), void *arg);

#endif
