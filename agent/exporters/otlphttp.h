/* OTLP exporter over HTTP/1.1 with protobuf bodies (OTLP/HTTP): an
 * OpenTelemetry Collector, Jaeger, Tempo or any backend on port 4318. */
#ifndef LK_EXPORTERS_OTLPHTTP_H
#define LK_EXPORTERS_OTLPHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "pipeline/exporter.h"

extern const struct lk_exporter_ops lk_otlphttp_exporter_ops;

/*
 * Creates the exporter for |cfg| (copied). A batch of signal S is POSTed to
 * cfg->signal_endpoints[S] when set, else to cfg->endpoint + "/v1/traces",
 * "/v1/metrics" or "/v1/logs"; a batch of a signal with neither fails
 * permanently (reason "no_endpoint"). Returns 0, LK_EINVAL (no endpoint at
 * all, a URL that is not http(s), an invalid header; logged), LK_EIO (TLS
 * files unreadable), LK_ENOMEM or LK_ESYS. Release it through ops->close.
 */
int lk_otlphttp_exporter_create(lk_exporter **out, uv_loop_t *loop,
                                const struct lk_exporter_config *cfg);

/* How an HTTP response status is handled, per the OTLP/HTTP specification
 * (exposed for tests). 0 (no response) is retryable. */
enum lk_export_result lk_otlphttp_classify(int http_status);

/*
 * Internal, exposed for tests: what to log of an error response. A protobuf
 * body (|content_type| application/x-protobuf or application/protobuf) is
 * read as google.rpc.Status and its message taken; anything else is taken as
 * text. At most |outlen| - 1 bytes (and at most 200 of text) are copied to
 * |out|, NUL-terminated. Returns false, with |out| empty, when there is
 * nothing to show (no body, or a protobuf body without a message).
 */
bool lk__otlphttp_error_message(const uint8_t *body, size_t len,
                                const char *content_type, char *out,
                                size_t outlen);

/*
 * Internal, exposed for tests: reads Export<Signal>ServiceResponse
 * .partial_success (field 1) { rejected = 1, error_message = 2 }. Returns
 * 1 and fills |*rejected| and |msg| (truncated to |msglen| - 1 bytes) when
 * it is present, 0 when absent, -1 when the bytes are malformed.
 */
int lk__otlphttp_partial_success(const uint8_t *p, size_t n,
                                 uint64_t *rejected, char *msg, size_t msglen);

#endif
