/* Loki exporter: log batches POSTed to Loki's push API
 * (/loki/api/v1/push) as snappy-compressed protobuf or as JSON. */
#ifndef LK_EXPORTERS_LOKI_H
#define LK_EXPORTERS_LOKI_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "core/selfmetrics.h"
#include "pipeline/exporter.h"

extern const struct lk_exporter_ops lk_loki_exporter_ops;

/*
 * Creates the exporter for |cfg| (copied), its structured-metadata
 * self-metrics registered in |m| (may be NULL). Returns 0, LK_EINVAL (a URL
 * that is not http(s), an invalid header; logged), LK_EIO (TLS files
 * unreadable), LK_ENOMEM or LK_ESYS. Release it through ops->close.
 */
int lk_loki_exporter_create(lk_exporter **out, uv_loop_t *loop,
                            const struct lk_exporter_config *cfg, lk_metrics *m);

/* How a push answered with |http_status| ends (0: no response). */
enum lk_export_result lk_loki_classify(int http_status);

/* Whether an exporter of |cfg| sends LK_FORM_LOKI_ENTRIES items as they are
 * (a pipeline whose every exporter does may be given them). */
bool lk_loki_takes_entries_config(const struct lk_exporter_config *cfg);

/*
 * Internal, exposed for tests: reads a Loki 400 answer. Sets |*ignored| to
 * the sum of every "total ignored: N out of M" in it (0 when there is none)
 * and returns the reason word for the metrics: out_of_order, too_old,
 * too_new, line_too_long, rate_limited or bad_request.
 */
const char *lk__loki_refusal(const uint8_t *body, size_t len, uint64_t *ignored);

/*
 * Internal, exposed for tests: whether a push answered |http_status| with
 * |body| was refused because Loki does not accept structured metadata
 * (limits_config.allow_structured_metadata false: Loki 2.9's default, or
 * Loki 3 on a schema older than v13): a 400 whose body holds Loki's words
 * "includes structured metadata, but this feature is disallowed".
 */
bool lk__loki_md_refused(int http_status, const uint8_t *body, size_t len);

#endif
