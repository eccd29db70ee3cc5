/* OTLP/gRPC receiver: HTTP/2 cleartext (prior knowledge) served by nghttp2 on
 * the libuv loop, over TCP or a Unix socket. Compressed messages of
 * LK_INFLATE_OFFLOOP_BYTES or more are inflated on libuv's thread pool
 * (core/inflate_pool.h) while the loop serves other streams and
 * connections; the stream is answered on the loop afterwards, and its result
 * dropped if the stream was reset or its connection closed meanwhile. With
 * storage.durable (lk_pipeline_durable) a stream is answered once its items
 * are committed (pipeline/ack.h): OK, or UNAVAILABLE with RetryInfo when the
 * commit failed; it stays open meanwhile (a slot of max_concurrent_streams,
 * a busy connection), and a reset or a closed connection stops the wait. */
#ifndef LK_RECEIVERS_OTLP_GRPC_H
#define LK_RECEIVERS_OTLP_GRPC_H

#include <uv.h>

#include "config/config.h"
#include "core/selfmetrics.h"
#include "pipeline/pipeline.h"

typedef struct lk_otlp_grpc lk_otlp_grpc;

/*
 * Listens on |cfg->endpoint|. |pipelines| is indexed by signal; a NULL entry
 * makes that signal's Export method answer UNIMPLEMENTED. Pipelines are
 * borrowed and must outlive the receiver. Returns 0, LK_ENOMEM, LK_EINVAL or
 * LK_ESYS (bind/listen failed; logged).
 */
int lk_otlp_grpc_start(lk_otlp_grpc **out, uv_loop_t *loop, const char *name,
                       const struct lk_grpc_receiver_config *cfg,
                       lk_pipeline *const pipelines[LK_SIGNAL_COUNT],
                       lk_metrics *m);
/* A reload that keeps the endpoint: new limits (for new connections and
 * streams; idle timeouts as they are next armed) and pipelines (a message on
 * the thread pool goes to the pipeline of its signal when it is back). */
void lk_otlp_grpc_update(lk_otlp_grpc *r, const struct lk_grpc_receiver_config *cfg,
                         lk_pipeline *const pipelines[LK_SIGNAL_COUNT]);
/* Stops accepting, sends GOAWAY to every connection, closes them once their
 * pending output is written, and calls |done| when all handles are closed
 * and the thread pool is through with every message (results of streams
 * closed meanwhile are dropped). */
void lk_otlp_grpc_close(lk_otlp_grpc *r, void (*done)(void *arg), void *arg);

#endif
