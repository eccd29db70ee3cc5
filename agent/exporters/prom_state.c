/* The series state both Prometheus exporters share (see prom_state.h). */
#include "exporters/prom_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

#define SWEEP_EVERY_MS 1000
#define CONFLICT_LOG_EVERY_MS 10000

/*
 * The store's reserved(): lookout's own names on the same /metrics. The store
 * asks for names no family holds, so for a refused name again with every
 * request that carries it: the names logged, each once, are looked at first
 * (the registry only grows: a name reserved stays reserved). The list is
 * bounded; the count of points dropped (reserved_name) is not.
 */
static bool reserved(void *arg, const char *name, size_t nlen)
{
    struct lk_prom_state *st = arg;
    for (size_t i = 0; i < st->nlogged; i++)
        if (strlen(st->logged[i]) == nlen && memcmp(st->logged[i], name, nlen) == 0)
            return true;
    if (!lk_metrics_name_is_reserved(st->beside, name, nlen))
        return false;
    if (st->nlogged == LK_PROM_STATE_LOGGED)
        return true;
    char *copy = malloc(nlen + 1);
    if (copy == NULL)
        return true;
    memcpy(copy, name, nlen);
    copy[nlen] = '\0';
    st->logged[st->nlogged++] = copy;
    lk_log(LK_LOG_WARN, "metric points dropped: the name is lookout's own on the admin /metrics",
           LK_S("exporter", st->name) LK_S("metric", copy)
           LK_S("hint", "give the exporter an endpoint of its own to serve these"));
    return true;
}

int lk_prom_state_init(struct lk_prom_state *st, const char *name,
                       const struct lk_exporter_config *cfg, lk_metrics *m,
                       const lk_metrics *beside)
{
    *st = (struct lk_prom_state){.name = name, .beside = beside};
    struct lk_prom_store_opts so = {
        .expiration_ms = cfg->prometheus.metric_expiration_ms,
        .max_series = cfg->prometheus.max_series,
        .reserved = beside != NULL ? reserved : NULL,
        .reserved_arg = st,
    };
    struct lk_prom_map_opts mo = {
        .add_suffixes = cfg->prometheus.add_metric_suffixes,
        .promote = cfg->prometheus.promote_resource_attributes,
        .npromote = cfg->prometheus.npromote,
    };
    st->store = lk_prom_store_create(&so);
    st->mapper = st->store ? lk_prom_mapper_create(&mo, st->store) : NULL;
    if (st->mapper == NULL) {
        lk_prom_state_fini(st);
        return LK_ENOMEM;
    }
    char labels[512];
    snprintf(labels, sizeof(labels), "exporter=\"%s\"", name);
    st->series = lk_metrics_gauge(m, "lookout_prometheus_series",
                                  "Series held by a prometheus or prometheusremotewrite "
                                  "exporter.",
                                  labels);
    st->expired = lk_metrics_counter(m, "lookout_prometheus_series_expired_total",
                                     "Series removed after metric_expiration without updates.",
                                     labels);
    return 0;
}

void lk_prom_state_fini(struct lk_prom_state *st)
{
    lk_prom_mapper_destroy(st->mapper);
    lk_prom_store_destroy(st->store);
    st->mapper = NULL;
    st->store = NULL;
    for (size_t i = 0; i < st->nlogged; i++)
        free(st->logged[i]);
    st->nlogged = 0;
}

uint64_t lk_prom_state_apply(struct lk_prom_state *st, lk_batch *b, uint64_t now_ms)
{
    const struct iovec *iov;
    size_t n, total;
    lk_batch_iov(b, &iov, &n, &total);
    struct lk_prom_map_stats ms = {0};
    for (size_t i = 0; i < n; i++) {
        int rc = lk_prom_mapper_apply(st->mapper, iov[i].iov_base, iov[i].iov_len, now_ms,
                                      &ms);
        if (rc < 0) /* receivers validate: only LK_ENOMEM can get here */
            lk_log(LK_LOG_ERROR, "could not apply a metrics request to the series store",
                   LK_S("exporter", st->name) LK_S("error", lk_strerror(rc)));
    }
    for (int d = 0; d < LK_PROM_DROP_COUNT; d++)
        if (ms.dropped[d] > 0)
            lk_batch_count_rejected(b, ms.dropped[d], lk_prom_drop_reason((enum lk_prom_drop)d));
    if (ms.dropped[LK_PROM_DROP_TYPE_CONFLICT] > 0 &&
        (st->last_conflict_log_ms == 0 ||
         now_ms - st->last_conflict_log_ms >= CONFLICT_LOG_EVERY_MS)) {
        st->last_conflict_log_ms = now_ms;
        lk_log(LK_LOG_WARN, "metric points dropped: their Prometheus name is taken by a "
                            "metric of another type",
               LK_S("exporter", st->name)
               LK_U("points", ms.dropped[LK_PROM_DROP_TYPE_CONFLICT]));
    }
    return ms.points;
}

void lk_prom_state_sweep(struct lk_prom_state *st, uint64_t now_ms, bool force)
{
    if (!force && now_ms - st->last_sweep_ms < SWEEP_EVERY_MS)
        return;
    st->last_sweep_ms = now_ms;
    lk_counter_add(st->expired, lk_prom_store_expire(st->store, now_ms));
    lk_gauge_set(st->series, (double)lk_prom_store_series_count(st->store));
}
