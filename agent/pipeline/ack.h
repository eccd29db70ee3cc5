/*
 * Durable acknowledgement (storage.durable: true).
 *
 * When lk_pipeline_durable says so, a receiver acknowledges its client (an
 * OTLP response; for a stream socket, reading on) only once what it
 * submitted is committed to the disk spool:
 *
 *     lk_ack *a = lk_ack_new(loop, done, req);
 *     rc = lk_pipeline_submit_acked(p, it, a);   // per item, as lk_pipeline_submit
 *     lk_ack_seal(a);   // done(req, status) runs later on the loop, never in here
 *
 * |status| is 0 when every item taken was committed, else LK_EFULL or LK_EIO:
 * the spool could not write (disk full, I/O error) and the items were not
 * queued; the receiver answers as for a full queue (gRPC UNAVAILABLE with
 * RetryInfo, HTTP 503 with Retry-After) so that the client sends again. An
 * item that lk_pipeline_submit_acked refused is the caller's to answer, as
 * with lk_pipeline_submit; the ack still completes for the rest.
 *
 * Every lk_ack_new is followed by exactly one lk_ack_seal or lk_ack_cancel.
 * lk_ack_cancel (the client went away; before |done| ran) means |done| never
 * runs; the ack frees itself once its commits are done. Loop thread only.
 */
#ifndef LK_PIPELINE_ACK_H
#define LK_PIPELINE_ACK_H

#include <uv.h>

typedef struct lk_ack lk_ack;
typedef void (*lk_ack_cb)(void *arg, int status);

/* NULL when out of memory (answer as for a full queue). */
lk_ack *lk_ack_new(uv_loop_t *loop, lk_ack_cb done, void *arg);
void lk_ack_seal(lk_ack *a);
void lk_ack_cancel(lk_ack *a);

/* For the spool: one more commit the ack waits for, and its end (0 or a
 * negative LK_E*; the first failure is what |done| gets). */
void lk_ack_hold(lk_ack *a);
void lk_ack_release(lk_ack *a, int status);

#endif
