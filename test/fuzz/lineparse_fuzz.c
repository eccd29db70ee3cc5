/*
 * libFuzzer target for lk_line_parse and lk_parse_timestamp. The whole input
 * is one line, parsed in every format, and also read as timestamp text.
 *
 * Besides "never crash": every text field is shorter than its buffer,
 * NUL-terminated at its length and valid UTF-8; the severity is 0..24; the
 * format is one the mode may yield (AUTO: any of JSON, LOGFMT, RAW; JSON:
 * JSON or RAW; LOGFMT: LOGFMT; RAW: RAW); a RAW result holds nothing; AUTO
 * agrees with the explicit mode it picked; and a parse is deterministic.
 * An accepted timestamp is at most INT64_MAX ns.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "receivers/lineparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_fields(const struct lk_line_fields *f)
{
    static const uint8_t zero[16];

    if (f->level_len >= LK_LINE_LEVEL_MAX || f->service_len >= LK_LINE_SERVICE_MAX ||
        f->level[f->level_len] != '\0' || f->service[f->service_len] != '\0') {
        fprintf(stderr, "text field overflows or is not terminated\n");
        abort();
    }
    if (!lk_utf8_is_valid((const uint8_t *)f->service, f->service_len) ||
        !lk_utf8_is_valid((const uint8_t *)f->level, f->level_len)) {
        fprintf(stderr, "text field is not UTF-8\n");
        abort();
    }
    if (f->severity_number < 0 || f->severity_number > 24) {
        fprintf(stderr, "severity %d\n", f->severity_number);
        abort();
    }
    if (f->time_ns > (uint64_t)INT64_MAX)
        abort();
    if (f->has_trace_id && memcmp(f->trace_id, zero, 16) == 0)
        abort();
    if (f->has_span_id && memcmp(f->span_id, zero, 8) == 0)
        abort();
    if (f->format == LK_LINE_RAW &&
        (f->time_ns != 0 || f->severity_number != 0 || f->level_len != 0 ||
         f->service_len != 0 || f->has_trace_id || f->has_span_id)) {
        fprintf(stderr, "RAW with fields\n");
        abort();
    }
}

static bool same_fields(const struct lk_line_fields *a, const struct lk_line_fields *b)
{
    return a->format == b->format && a->time_ns == b->time_ns &&
           a->severity_number == b->severity_number && a->level_len == b->level_len &&
           memcmp(a->level, b->level, a->level_len) == 0 &&
           a->service_len == b->service_len &&
           memcmp(a->service, b->service, a->service_len) == 0 &&
           a->has_trace_id == b->has_trace_id &&
           memcmp(a->trace_id, b->trace_id, 16) == 0 && a->has_span_id == b->has_span_id &&
           memcmp(a->span_id, b->span_id, 8) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lk_line_fields f[4], again;
    uint8_t *line;
    uint64_t ns;

    /* An exact-size copy lets ASan catch any read past the line. */
    line = malloc(size > 0 ? size : 1);
    if (line == NULL)
        return 0;
    memcpy(line, data, size);

    for (int fmt = LK_LINE_AUTO; fmt <= LK_LINE_RAW; fmt++) {
        memset(&f[fmt], 0xa5, sizeof(f[fmt]));
        lk_line_parse((enum lk_line_format)fmt, line, size, &f[fmt]);
        check_fields(&f[fmt]);
    }
    if (f[LK_LINE_JSON].format != LK_LINE_JSON && f[LK_LINE_JSON].format != LK_LINE_RAW)
        abort();
    if (f[LK_LINE_LOGFMT].format != LK_LINE_LOGFMT || f[LK_LINE_RAW].format != LK_LINE_RAW)
        abort();
    if (f[LK_LINE_AUTO].format == LK_LINE_AUTO)
        abort();
    /* AUTO is the explicit mode it picks. */
    if (f[LK_LINE_AUTO].format != LK_LINE_RAW &&
        !same_fields(&f[LK_LINE_AUTO], &f[f[LK_LINE_AUTO].format])) {
        fprintf(stderr, "AUTO differs from the mode it picked\n");
        abort();
    }
    memset(&again, 0, sizeof(again));
    lk_line_parse(LK_LINE_AUTO, line, size, &again);
    if (!same_fields(&again, &f[LK_LINE_AUTO]))
        abort();

    ns = 7;
    if (lk_parse_timestamp((const char *)line, size, &ns)) {
        if (ns > (uint64_t)INT64_MAX)
            abort();
    } else if (ns != 7) {
        fprintf(stderr, "refused timestamp wrote its output\n");
        abort();
    }
    free(line);
    return 0;
}
