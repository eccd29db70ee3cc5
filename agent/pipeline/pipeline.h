/* A signal's pipeline: fans each accepted item out to the queue of every
 * exporter configured for that signal. Loop thread only. */
#ifndef LK_PIPELINE_PIPELINE_H
#define LK_PIPELINE_PIPELINE_H

#include <stddef.h>

#include "config/config.h"
#include "pipeline/item.h"
#include "pipeline/queue.h"

typedef struct lk_pipeline lk_pipeline;

/* |queues| (borrowed, |n| of them) must outlive the pipeline. */
int lk_pipeline_create(lk_pipeline **out, enum lk_signal sig, lk_queue **queues,
                       size_t n);
void lk_pipeline_destroy(lk_pipeline *p);
/* Replaces the queues (a reload): later items go to these. LK_ENOMEM, with
 * the old ones kept. */
int lk_pipeline_set_queues(lk_pipeline *p, lk_queue **queues, size_t n);
enum lk_signal lk_pipeline_signal(const lk_pipeline *p);

/*
 * Offers |it| (the caller keeps its reference) to every queue. When a queue
 * with the refuse policy is full, nothing is queued anywhere and LK_EAGAIN is
 * returned, so the client can retry without duplicating data at the other
 * exporters. Full queues with the drop policy drop their copy (counted) and
 * the others still get theirs. Returns 0, LK_EAGAIN, or LK_E2BIG when the
 * item is larger than a refusing queue's whole capacity (it never fits).
 */
int lk_pipeline_submit(lk_pipeline *p, lk_item *it);

/*
 * The largest item a receiver should make: a quarter of the smallest queue's
 * caps (at least 1 item, and 4 KiB or the smallest queue's max_bytes if that
 * is less), so that an item always fits once its queues have drained enough. An item larger than a queue's whole capacity
 * would be refused forever.
 */
void lk_pipeline_item_limits(const lk_pipeline *p, uint64_t *items, size_t *bytes);

/* Queues |it| everywhere even past the caps (nothing is refused): for what a
 * receiver already took from its clients when it shuts down, which the
 * shutdown drain then sends. */
void lk_pipeline_submit_over(lk_pipeline *p, lk_item *it);

#endif
