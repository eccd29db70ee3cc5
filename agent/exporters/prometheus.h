/*
 * The prometheus exporter: a metrics pipeline's batches go into a series
 * store (prom_otlp, prom_store) instead of a backend; the store is rendered
 * for Prometheus to scrape on the admin listener's /metrics, after the
 * self-metrics, or, with an endpoint, alone on a listener of its own.
 * Sending a batch always succeeds at once; points the store cannot take are
 * counted in lookout_dropped_items_total by reason. On the admin listener,
 * metrics named like lookout's own (lk_metrics_name_is_reserved) are among
 * them (reason reserved_name): one name twice in a body fails the scrape.
 */
#ifndef LK_EXPORTERS_PROMETHEUS_H
#define LK_EXPORTERS_PROMETHEUS_H

#include <stdbool.h>

#include <uv.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/exposition.h"
#include "core/selfmetrics.h"
#include "pipeline/exporter.h"

extern const struct lk_exporter_ops lk_prometheus_exporter_ops;

/* Creates the exporter for |cfg| (copied); |m| counts its drops and series.
 * Returns 0 or LK_ENOMEM. Release it through ops->close. */
int lk_prometheus_exporter_create(lk_exporter **out, uv_loop_t *loop,
                                  const struct lk_exporter_config *cfg, lk_metrics *m);

/* An lk_admin_render_cb: appends the store's exposition (|arg| is the exporter). */
int lk_prometheus_exporter_render(lk_buf *out, enum lk_expo_format fmt, void *arg);

#endif
