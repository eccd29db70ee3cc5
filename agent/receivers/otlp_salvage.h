/*
 * Partial acceptance of OTLP Export requests: the slow path a receiver takes
 * when lk_otlp_validate refused a request, to keep the items that are valid
 * on their own and drop those that are not (OTLP `partial_success`).
 *
 * The unit of rejection is the message that carries the items: a Span, a
 * Metric (with all its data points) or a LogRecord. A bad value in a
 * resource or a scope (its attributes, its name, its schema_url) rejects
 * every unit under that resource or scope. Only bad field values are
 * rejected this way, as lk_otlp_validate reports them: invalid UTF-8 in a
 * `string` (LK_EUTF8) and trace or span ids of the wrong length. Anything
 * else (wire structure, wire types, nesting depth, a singular field given
 * twice) makes the whole request malformed, as before.
 *
 * The request is never decoded into structs: its bytes are walked down to
 * the units only (request, resource_*, scope_*, units), and each part is
 * judged by lk_otlp_validate on a minimal request wrapped around it, so
 * "valid" has one definition. The output is the input's bytes minus what was
 * rejected (kept fields are copied as they are, in their order; only the
 * length prefixes of the enclosing resource and scope entries are rewritten,
 * minimally encoded), so it validates like any request and carries the same
 * counts for what it kept.
 */
#ifndef LK_RECEIVERS_OTLP_SALVAGE_H
#define LK_RECEIVERS_OTLP_SALVAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"

struct lk_otlp_salvage_result {
    uint64_t accepted; /* items in the output: spans, data points, log records */
    uint64_t rejected; /* items dropped */
    /* Something was dropped, possibly without items (a Metric without data
     * points, a resource without scopes). */
    bool dropped;
};

/*
 * Salvages the |n| bytes at |p|, an Export request of signal |sig| that
 * lk_otlp_validate refused (a valid request is passed through unchanged).
 * Appends the request without its rejected parts to |out| (at most |n|
 * bytes; nothing is appended on failure) and fills |res|; when something was
 * dropped, |why| (|whylen| bytes, NUL-terminated, may be 0) gets the first
 * reason with the path of the rejected part in the request as sent, e.g.
 * "resource_spans[0].scope_spans[1].spans[3].trace_id: length 15, want 16
 * or 0". |res->accepted| == 0 means nothing is left to forward; the caller
 * then refuses the request as a whole.
 *
 * Returns 0; LK_EPROTO when the request is malformed beyond its items (the
 * first such problem in |why|: nothing can be salvaged); LK_E2BIG when |out|
 * cannot grow by the output; LK_ENOMEM; LK_EINVAL for an unknown |sig| or a
 * NULL |p| with |n| > 0. Allocates up to about 2 * |n| bytes while it runs.
 */
int lk_otlp_salvage(enum lk_signal sig, const uint8_t *p, size_t n, lk_buf *out,
                    struct lk_otlp_salvage_result *res, char *why,
                    size_t whylen);

#endif
