/*
 * The prometheusremotewrite exporter: a metrics pipeline's batches go
 * through the same translation as the prometheus exporter (prom_otlp into a
 * series store of its own, so deltas accumulate and restarts reset), and the
 * series each batch updated are POSTed as one remote write 1.0 request
 * (prom_rw, snappy) to Prometheus, Mimir, Thanos or Cortex.
 *
 * A batch is translated once, on its first attempt; its body is kept with it
 * for the retries, so a retried delta is never added twice. 2xx: sent; 429,
 * 5xx and transport failures: retried (Retry-After honoured); other 4xx:
 * dropped and counted (the receiver will refuse the same body again).
 */
#ifndef LK_EXPORTERS_REMOTE_WRITE_H
#define LK_EXPORTERS_REMOTE_WRITE_H

#include <uv.h>

#include "config/config.h"
#include "core/selfmetrics.h"
#include "pipeline/exporter.h"

extern const struct lk_exporter_ops lk_remote_write_exporter_ops;

/* Creates the exporter for |cfg|; |m| counts its series and samples.
 * LK_ENOMEM, LK_EINVAL, LK_EIO. Release it through ops->close. */
int lk_remote_write_exporter_create(lk_exporter **out, uv_loop_t *loop,
                                    const struct lk_exporter_config *cfg, lk_metrics *m);

/* How an answer is treated (for tests). */
enum lk_export_result lk_remote_write_classify(int http_status);

#endif
