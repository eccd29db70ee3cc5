/* OTLP exporter over gRPC (Jaeger, Tempo, an OpenTelemetry Collector gateway). */
#ifndef LK_EXPORTERS_OTLP_H
#define LK_EXPORTERS_OTLP_H

#include <uv.h>

#include "config/config.h"
#include "pipeline/exporter.h"

extern const struct lk_exporter_ops lk_otlp_exporter_ops;

/* Creates the exporter for |cfg| (copied). Returns 0, LK_ENOMEM, LK_EIO (TLS
 * files unreadable) or LK_EUNSUPPORTED. Release it through ops->close. */
int lk_otlp_exporter_create(lk_exporter **out, uv_loop_t *loop,
                            const struct lk_exporter_config *cfg);

/* How a gRPC status is handled (exposed for tests). */
enum lk_export_result lk_otlp_classify(int grpc_status, bool has_retry_info);

#endif
