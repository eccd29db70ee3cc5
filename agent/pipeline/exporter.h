/* The contract between a queue and the exporter that sends its batches. */
#ifndef LK_PIPELINE_EXPORTER_H
#define LK_PIPELINE_EXPORTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config/config.h"

typedef struct lk_exporter lk_exporter;
typedef struct lk_batch lk_batch;

/* How an attempt ended. The exporter decides; the queue acts. */
enum lk_export_result {
    LK_EXPORT_OK,
    LK_EXPORT_RETRY,     /* transient: back off and send the same batch again */
    LK_EXPORT_PERMANENT, /* the backend refused the data: drop it, counted */
};

struct lk_exporter_ops {
    const char *type; /* "otlp" */
    /*
     * Starts sending |b| (read it with lk_batch_signal/lk_batch_iov). Must end,
     * later and on the loop thread, in exactly one lk_batch_done(b, ...).
     * Returns 0, or a negative LK_E* when it could not start; the queue then
     * treats the attempt as retryable.
     */
    int (*send)(lk_exporter *e, lk_batch *b);
    /* Cancels what is in flight (each pending batch still gets its
     * lk_batch_done) and releases everything; |done| runs on the loop last. */
    void (*close)(lk_exporter *e, void (*done)(void *arg), void *arg);
};

/* Every exporter embeds this first. */
struct lk_exporter {
    const struct lk_exporter_ops *ops;
    char *name; /* config name, e.g. "otlp/jaeger" (owned by the exporter) */
};

enum lk_signal lk_batch_signal(const lk_batch *b);
/* The batch as a list of request bodies whose concatenation is one valid
 * Export<Signal>ServiceRequest (items of LK_FORM_OTLP; a pipeline gives an
 * exporter other forms only when it said it takes them). |*iov| stays valid until lk_batch_done. */
/* enum lk_item_form of the batch's item |i|, in the order of its iov. */
uint8_t lk_batch_item_form(const lk_batch *b, size_t i);
void lk_batch_iov(lk_batch *b, const struct iovec **iov, size_t *iovcnt,
                  size_t *total_bytes);
uint64_t lk_batch_items(const lk_batch *b);
lk_exporter *lk_batch_exporter(const lk_batch *b);
/*
 * What an exporter keeps with a batch across its attempts (e.g. the body it
 * encoded the first time, when encoding changed its own state and must not
 * run twice). |state_free| (may be NULL) runs when the batch is released,
 * however it ends, or when another state replaces it.
 */
void lk_batch_set_state(lk_batch *b, void *state, void (*state_free)(void *state));
void *lk_batch_state(const lk_batch *b);
/*
 * The backend took the batch but refused |n| of its items for |reason|
 * (e.g. Loki's 400 for entries too old): they are counted as dropped at
 * once, and as failed when the batch ends; the rest as sent (or, when the
 * batch is dropped after all, as dropped for that reason). Calls add up.
 */
void lk_batch_count_rejected(lk_batch *b, uint64_t n, const char *reason);

/*
 * Reports the attempt's outcome. |retry_after_ms| is the backend's hint
 * (RetryInfo, Retry-After) or -1; |reason| is a short snake_case word used as
 * a metric label for drops (e.g. "invalid_argument"), may be NULL for OK.
 */
void lk_batch_done(lk_batch *b, enum lk_export_result r, int64_t retry_after_ms,
                   const char *reason);

#endif
