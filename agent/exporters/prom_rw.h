/*
 * Prometheus remote write 1.0 bodies from the series store: one TimeSeries
 * per sample of each series given (a histogram's buckets, _sum and _count
 * are series of their own, as in the text format), each with the series'
 * current value at the time of its last point, then one MetricMetadata per
 * family. The protobuf is written by hand (field numbers from
 * proto/prometheus/prompb); the caller compresses it with snappy.
 * Loop thread only.
 */
#ifndef LK_EXPORTERS_PROM_RW_H
#define LK_EXPORTERS_PROM_RW_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "exporters/prom_store.h"

typedef struct lk_prom_rw lk_prom_rw;

struct lk_prom_rw_stats {
    uint64_t timeseries; /* TimeSeries written, one sample each */
    uint64_t families;   /* MetricMetadata written */
};

/* NULL on allocation failure. */
lk_prom_rw *lk_prom_rw_create(void);
void lk_prom_rw_destroy(lk_prom_rw *w); /* NULL-safe */

/*
 * Appends to |out| one WriteRequest holding the samples of the |n| series
 * at |series| (of store |s|) and the metadata of their families. Series
 * without a point time (target_info) are stamped |now_ms|. Adds to |st|.
 * LK_ENOMEM, LK_E2BIG (|out|'s cap), LK_EINVAL (a label text this store did
 * not write).
 */
int lk_prom_rw_encode(lk_prom_rw *w, lk_prom_store *s, lk_prom_series *const *series,
                      size_t n, uint64_t now_ms, lk_buf *out, struct lk_prom_rw_stats *st);

#endif
