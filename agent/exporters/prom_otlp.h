/*
 * OTLP metrics → the prometheus exporter's series store, per the
 * OpenTelemetry "Prometheus and OpenMetrics Compatibility" specification:
 *
 * - names and label names from prom_translate; HELP from the description;
 * - job = service.namespace/service.name (or service.name), instance =
 *   service.instance.id; the other resource attributes go to one target_info
 *   series per resource; promote_resource_attributes copies chosen ones onto
 *   every series; otel_scope_name and otel_scope_version labels;
 * - gauges; sums: monotonic → counter, else gauge; histograms; summaries;
 * - delta sums and histograms are accumulated into cumulative series; a
 *   delta point that starts before the previous one ended (out of order,
 *   overlapping) is dropped and counted, never added twice; a cumulative
 *   point with a new start time starts the series anew;
 * - exponential histograms are kept as such in the store (deltas with other
 *   bucket ranges add up) and render as classic buckets.
 *
 * A request is walked over its wire bytes (prom_wire.c): a gauge or sum point
 * whose attribute bytes were seen before under the same family, resource and
 * scope goes straight to its series; the rest is decoded with protobuf-c into
 * an arena that is reset after it. Points of existing series allocate
 * nothing. Loop thread only.
 */
#ifndef LK_EXPORTERS_PROM_OTLP_H
#define LK_EXPORTERS_PROM_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exporters/prom_store.h"

struct lk_prom_map_opts {
    bool add_suffixes;             /* unit and _total suffixes */
    char *const *promote;          /* resource attribute keys copied onto series */
    size_t npromote;
};

/* Why a point did not make it into the store (label values of
 * lookout_dropped_items_total{reason=...}). */
enum lk_prom_drop {
    LK_PROM_DROP_SERIES_LIMIT,  /* "series_limit": a new series past max_series */
    LK_PROM_DROP_TYPE_CONFLICT, /* "type_conflict": the name has another type */
    LK_PROM_DROP_OUT_OF_ORDER,  /* "out_of_order": older than the series, or an overlapping delta */
    LK_PROM_DROP_INVALID,       /* "invalid_point": no value, bucket counts that do not match the bounds */
    LK_PROM_DROP_RESERVED,      /* "reserved_name": the store's reserved() refused the name */
    LK_PROM_DROP_COUNT
};
const char *lk_prom_drop_reason(enum lk_prom_drop d);

struct lk_prom_map_stats {
    uint64_t points; /* taken into the store */
    uint64_t dropped[LK_PROM_DROP_COUNT];
    uint64_t new_series;
};

typedef struct lk_prom_mapper lk_prom_mapper;

/* |o| is copied (the promote list too). NULL on allocation failure. */
lk_prom_mapper *lk_prom_mapper_create(const struct lk_prom_map_opts *o, lk_prom_store *s);
void lk_prom_mapper_destroy(lk_prom_mapper *m); /* NULL-safe */

/*
 * Applies one ExportMetricsServiceRequest body. Adds what happened to |st|.
 * Returns 0, LK_EPROTO when the body does not decode, or LK_ENOMEM. Bodies
 * are expected to have passed the receivers' validation: a malformed one is
 * applied up to its first fault found.
 */
int lk_prom_mapper_apply(lk_prom_mapper *m, const uint8_t *body, size_t len,
                         uint64_t now_ms, struct lk_prom_map_stats *st);

#endif
