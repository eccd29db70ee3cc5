/* A signal's pipeline: fans each accepted item out to the queue of every
 * exporter configured for that signal. Loop thread only. */
#ifndef LK_PIPELINE_PIPELINE_H
#define LK_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "pipeline/ack.h"
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
/* The item forms (bit 1 << form) besides LK_FORM_OTLP that every exporter of
 * the pipeline takes, set by whoever sets its queues; none at creation. */
void lk_pipeline_set_forms(lk_pipeline *p, uint32_t forms);
/* Whether a receiver may submit items of |form|: always for LK_FORM_OTLP. */
bool lk_pipeline_accepts(const lk_pipeline *p, enum lk_item_form form);

/*
 * Offers |it| (the caller keeps its reference) to every queue. When a queue
 * with the refuse policy is full, nothing is queued anywhere and LK_EAGAIN is
 * returned, so the client can retry without duplicating data at the other
 * exporters. Full queues with the drop policy drop their copy (counted) and
 * the others still get theirs. Returns 0, LK_EAGAIN, or LK_E2BIG when the
 * item is larger than a refusing queue's whole capacity (it never fits).
 */
int lk_pipeline_submit(lk_pipeline *p, lk_item *it);

/* Whether receivers acknowledge only once what they submit is committed to
 * the disk spool (storage.durable): then they use lk_pipeline_submit_acked
 * and answer their clients from the ack's callback (pipeline/ack.h). */
bool lk_pipeline_durable(const lk_pipeline *p);
void lk_pipeline_set_durable(lk_pipeline *p, bool durable);
/* lk_pipeline_submit, with |ack| (pipeline/ack.h) waiting for the commits of
 * what the queues took. */
int lk_pipeline_submit_acked(lk_pipeline *p, lk_item *it, lk_ack *ack);

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
