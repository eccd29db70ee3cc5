/* One exporter's bounded queue for one signal: holds items, cuts batches,
 * sends them with bounded concurrency and retries with backoff. Loop thread. */
#ifndef LK_PIPELINE_QUEUE_H
#define LK_PIPELINE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "core/selfmetrics.h"
#include "pipeline/ack.h"
#include "pipeline/exporter.h"
#include "pipeline/item.h"

typedef struct lk_queue lk_queue;

struct lk_queue_opts {
    enum lk_signal signal;
    const struct lk_queue_config *queue;
    const struct lk_batch_config *batch;
    const struct lk_retry_config *retry;
    uint32_t max_concurrency;
    /* The disk spool's stream for this exporter and signal, or NULL for
     * memory only; the queue takes this reference over. */
    struct lk_spool_stream *spool;
};

/* |exp| is borrowed and must outlive the queue's last batch. Registers the
 * queue's self-metrics in |m|. Returns 0 or LK_ENOMEM. */
int lk_queue_create(lk_queue **out, uv_loop_t *loop,
                    const struct lk_queue_opts *o, lk_exporter *exp,
                    lk_metrics *m);
/* Whether |count| items of |bytes| fit under both caps right now. */
bool lk_queue_has_room(const lk_queue *q, uint64_t count, size_t bytes);
enum lk_overflow lk_queue_overflow(const lk_queue *q);
/* Adds a reference to |it| to the queue. When it does not fit, the item is
 * dropped and counted (reason "queue_full") and LK_EAGAIN returned; callers
 * with a refuse policy check lk_queue_has_room first. */
int lk_queue_push(lk_queue *q, lk_item *it);
/* The same; with a durable spool, |ack| (may be NULL) waits for its commit. */
int lk_queue_push_acked(lk_queue *q, lk_item *it, lk_ack *ack);
/* The same past the caps (memory permitting): for data a receiver has
 * already taken from its clients when it shuts down. */
int lk_queue_push_over(lk_queue *q, lk_item *it);
/* The caps: queue.queue_size items and queue.max_bytes bytes. */
void lk_queue_limits(const lk_queue *q, uint64_t *items, size_t *bytes);
/* Counts |count| items of the queue's signal as dropped for |reason|. */
void lk_queue_count_dropped(lk_queue *q, uint64_t count, const char *reason);
/* From now on batches are cut at once, without waiting to fill. |done| runs
 * (on the loop, possibly before this returns) once the queue holds nothing. */
void lk_queue_drain(lk_queue *q, void (*done)(void *arg), void *arg);
/* With a spool, for shutdown: what is not in flight is written to the
 * spool instead of sent (before the rows it holds, so the order is kept),
 * batches in flight finish, and those that fail go to the spool too. |done|
 * as for lk_queue_drain. Without a spool, lk_queue_drain. */
void lk_queue_park(lk_queue *q, void (*done)(void *arg), void *arg);
/* The spool stream the queue writes to, or NULL. */
struct lk_spool_stream *lk_queue_spool(const lk_queue *q);
/* Drops everything not in flight (reason "shutdown") and makes failed
 * attempts drop instead of retry. Used when the shutdown deadline passes. */
void lk_queue_abort(lk_queue *q);
/* The same, counted with |reason| (a static string, e.g. "reload"). */
void lk_queue_abort_reason(lk_queue *q, const char *reason);
/* Moves the items waiting for a batch (not those in batches, in flight or
 * backing off) to the end of |to|, in order, past its caps: for a reload that
 * replaces a queue. With a spool: when both use the same stream, |to| also
 * becomes its reader; when they use different ones (storage changed), only
 * what |from| holds in memory alone moves, and |from| sends what its spool
 * holds as it drains. */
void lk_queue_move_waiting(lk_queue *from, lk_queue *to);
/* A reload gave storage to a queue without one: from now on it spills to
 * |st| (the queue takes the reference over). */
void lk_queue_attach_spool(lk_queue *q, struct lk_spool_stream *st);
uint64_t lk_queue_held_items(const lk_queue *q);
/* Frees the queue; it must hold nothing (after drain/abort completed).
 * NULL-safe. Handles close asynchronously; the memory goes in close callbacks. */
void lk_queue_destroy(lk_queue *q);

#endif
