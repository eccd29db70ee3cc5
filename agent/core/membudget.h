/*
 * The memory budget: one process-wide count of the bytes lookout holds for
 * data (request bodies being received, items in queues, batches being sent,
 * the Prometheus series store), against one limit (`memory_limit`).
 *
 * Receivers charge what they take from clients with lk_mem_try, which fails
 * once the limit would be passed: the client is then refused with a
 * retryable status before more of its data is held. What lookout already
 * holds and must keep (a batch being encoded for a backend, series) is
 * charged with lk_mem_charge, which always succeeds and may take the count
 * past the limit; receivers then refuse until it is back under.
 *
 * Counts are atomic, so buffers filled on libuv's thread pool (inflates,
 * compression) are charged from there. Everything else about it is the
 * loop's.
 */
#ifndef LK_CORE_MEMBUDGET_H
#define LK_CORE_MEMBUDGET_H

#include <stdbool.h>
#include <stddef.h>

/* Who holds the bytes: a label of lookout_memory_used_bytes. */
enum lk_mem_kind {
    LK_MEM_NONE = 0, /* not charged */
    LK_MEM_RECEIVERS,  /* connection buffers, request bodies, inflated bodies */
    LK_MEM_QUEUES,     /* items: queued, in batches, held by a blocked receiver */
    LK_MEM_EXPORTERS,  /* encoded and compressed batches, in flight or retrying */
    LK_MEM_SERIES,     /* the prometheus exporters' series */
    LK_MEM_KINDS
};

/* 0: no limit (the count is still kept). */
void lk_mem_set_limit(size_t bytes);
size_t lk_mem_limit(void);
size_t lk_mem_used(void);
size_t lk_mem_used_by(enum lk_mem_kind k);
/* Bytes that may still be charged with lk_mem_try: SIZE_MAX without a limit. */
size_t lk_mem_available(void);
/* The count is at or past the limit. */
bool lk_mem_full(void);
/* Charges |n| bytes unless that would pass the limit; false then. */
bool lk_mem_try(enum lk_mem_kind k, size_t n);
/* Charges |n| bytes whatever the limit. */
void lk_mem_charge(enum lk_mem_kind k, size_t n);
void lk_mem_release(enum lk_mem_kind k, size_t n);
/* The most the count has been since start (or the last reset: tests). */
size_t lk_mem_peak(void);
void lk_mem_reset_peak(void);
/* Name of |k| for the metric label: "receivers", "queues", ... */
const char *lk_mem_kind_name(enum lk_mem_kind k);

#endif
