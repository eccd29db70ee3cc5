/*
 * What the prometheus and prometheusremotewrite exporters share: a series
 * store fed by the OTLP translation, its self-metrics
 * (lookout_prometheus_series, lookout_prometheus_series_expired_total), the
 * drops of a batch counted by reason, the expiry sweep, and, for a store
 * rendered after the self-metrics, the names they hold kept out of it.
 * Loop thread only.
 */
#ifndef LK_EXPORTERS_PROM_STATE_H
#define LK_EXPORTERS_PROM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/selfmetrics.h"
#include "exporters/prom_otlp.h"
#include "exporters/prom_store.h"
#include "pipeline/exporter.h"

#define LK_PROM_STATE_LOGGED 16 /* reserved names logged by name, at most */

struct lk_prom_state {
    lk_prom_store *store;
    lk_prom_mapper *mapper;
    const char *name; /* the exporter's, borrowed */
    lk_gauge *series;
    lk_counter *expired;
    uint64_t last_sweep_ms;
    uint64_t last_conflict_log_ms;
    const lk_metrics *beside;           /* whose names are reserved, or NULL */
    char *logged[LK_PROM_STATE_LOGGED]; /* reserved names already logged */
    size_t nlogged;
};

/*
 * For the exporter named |name| (kept, must outlive |st|) with |cfg|'s
 * prometheus settings; registers the metrics in |m|. |beside|, unless NULL,
 * is the registry whose exposition precedes the store's in the same body
 * (the admin /metrics): the store then refuses the names that registry
 * reserves (lk_metrics_name_is_reserved), and the first LK_PROM_STATE_LOGGED
 * names refused are logged, each once. |st| must not move while it lives.
 * LK_ENOMEM, with nothing to release.
 */
int lk_prom_state_init(struct lk_prom_state *st, const char *name,
                       const struct lk_exporter_config *cfg, lk_metrics *m,
                       const lk_metrics *beside);
void lk_prom_state_fini(struct lk_prom_state *st);

/*
 * Applies every request of |b| to the store; points it could not take are
 * counted on |b| by reason (lk_batch_count_rejected) and type conflicts
 * logged at most every 10 s. Returns the points taken.
 */
uint64_t lk_prom_state_apply(struct lk_prom_state *st, lk_batch *b, uint64_t now_ms);

/* Removes expired series, at most once a second unless |force|. */
void lk_prom_state_sweep(struct lk_prom_state *st, uint64_t now_ms, bool force);

#endif
