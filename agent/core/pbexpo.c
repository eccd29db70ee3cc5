/* The protobuf exposition writer (see pbexpo.h). */
#include "core/pbexpo.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "core/pbwire.h"
#include "core/selfmetrics.h"

#define MAX_FAMILY_BYTES (256u * 1024 * 1024)

/* Field numbers of io.prometheus.client. */
enum {
    MF_NAME = 1, MF_HELP = 2, MF_TYPE = 3, MF_METRIC = 4, MF_UNIT = 5,
    M_LABEL = 1, M_GAUGE = 2, M_COUNTER = 3, M_SUMMARY = 4, M_UNTYPED = 5, M_HISTOGRAM = 7,
    LP_NAME = 1, LP_VALUE = 2,
    VALUE = 1, /* Gauge.value, Untyped.value, Counter.value */
    C_EXEMPLAR = 2,
    S_COUNT = 1, S_SUM = 2, S_QUANTILE = 3,
    Q_QUANTILE = 1, Q_VALUE = 2,
    H_COUNT = 1, H_SUM = 2, H_BUCKET = 3, H_SCHEMA = 5, H_ZERO_THRESHOLD = 6, H_ZERO_COUNT = 7,
    H_NEG_SPAN = 9, H_NEG_DELTA = 10, H_POS_SPAN = 12, H_POS_DELTA = 13,
    B_COUNT = 1, B_UPPER = 2, B_EXEMPLAR = 3,
    SPAN_OFFSET = 1, SPAN_LENGTH = 2,
    EX_LABEL = 1, EX_VALUE = 2, EX_TIMESTAMP = 3,
    TS_SECONDS = 1, TS_NANOS = 2,
};

void lk_pbexpo_init(lk_pbexpo *x)
{
    lk_buf_init(&x->fam, MAX_FAMILY_BYTES);
    lk_buf_init(&x->met, MAX_FAMILY_BYTES);
    lk_buf_init(&x->val, MAX_FAMILY_BYTES);
    lk_buf_init(&x->sub, MAX_FAMILY_BYTES);
    lk_buf_init(&x->labels, MAX_FAMILY_BYTES);
    x->nmetrics = 0;
}

void lk_pbexpo_fini(lk_pbexpo *x)
{
    lk_buf_fini(&x->fam);
    lk_buf_fini(&x->met);
    lk_buf_fini(&x->val);
    lk_buf_fini(&x->sub);
    lk_buf_fini(&x->labels);
}

static int put_tag(lk_buf *b, uint32_t field, int wire)
{
    return lk_pb_append_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

static int put_varint(lk_buf *b, uint32_t field, uint64_t v)
{
    int rc = put_tag(b, field, LK_PB_VARINT);
    return rc ? rc : lk_pb_append_varint(b, v);
}

static int put_sint(lk_buf *b, uint32_t field, int64_t v)
{
    return put_varint(b, field, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static int put_double(lk_buf *b, uint32_t field, double v)
{
    uint8_t le[8];
    uint64_t bits;
    memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(bits >> (8 * i));
    int rc = put_tag(b, field, LK_PB_I64);
    return rc ? rc : lk_buf_append(b, le, 8);
}

static int put_bytes(lk_buf *b, uint32_t field, const void *p, size_t n)
{
    return lk_pb_append_len_field(b, field, p, n);
}

/* Appends |child| as field |field| of |parent| and empties it. */
static int put_child(lk_buf *parent, uint32_t field, lk_buf *child)
{
    int rc = lk_pb_append_len_field(parent, field, child->data, child->len);
    lk_buf_reset(child);
    return rc;
}

int lk_pbexpo_family(lk_pbexpo *x, const char *name, size_t nlen, const char *help,
                     enum lk_pbexpo_type type, const char *unit)
{
    lk_buf_reset(&x->fam);
    lk_buf_reset(&x->met);
    lk_buf_reset(&x->val);
    lk_buf_reset(&x->sub);
    x->nmetrics = 0;
    int rc = put_bytes(&x->fam, MF_NAME, name, nlen);
    if (rc == 0 && help != NULL && help[0] != '\0')
        rc = put_bytes(&x->fam, MF_HELP, help, strlen(help));
    if (rc == 0 && type != LK_PBEXPO_COUNTER) /* proto3: the default is not written */
        rc = put_varint(&x->fam, MF_TYPE, (uint64_t)type);
    if (rc == 0 && unit != NULL && unit[0] != '\0')
        rc = put_bytes(&x->fam, MF_UNIT, unit, strlen(unit));
    return rc;
}

int lk_pbexpo_metric(lk_pbexpo *x)
{
    lk_buf_reset(&x->met);
    lk_buf_reset(&x->val);
    lk_buf_reset(&x->sub);
    return 0;
}

int lk_pbexpo_label(lk_pbexpo *x, const char *name, size_t nlen, const char *value,
                    size_t vlen)
{
    int rc = put_bytes(&x->sub, LP_NAME, name, nlen);
    if (rc == 0)
        rc = put_bytes(&x->sub, LP_VALUE, value, vlen);
    return rc ? rc : put_child(&x->met, M_LABEL, &x->sub);
}

static int text_label(void *arg, const char *name, size_t nlen, const char *value,
                      size_t vlen)
{
    return lk_pbexpo_label(arg, name, nlen, value, vlen);
}

int lk_pbexpo_label_text(lk_pbexpo *x, const char *text, size_t len)
{
    lk_buf_reset(&x->labels);
    return lk_metrics_labels_each(text, len, &x->labels, text_label, x);
}

/* Ends the metric: its value message |val| as |field|, then into the family. */
static int end_metric(lk_pbexpo *x, uint32_t field)
{
    int rc = put_child(&x->met, field, &x->val);
    if (rc == 0)
        rc = put_child(&x->fam, MF_METRIC, &x->met);
    if (rc == 0)
        x->nmetrics++;
    return rc;
}

int lk_pbexpo_gauge(lk_pbexpo *x, double v)
{
    int rc = put_double(&x->val, VALUE, v);
    return rc ? rc : end_metric(x, M_GAUGE);
}

int lk_pbexpo_untyped(lk_pbexpo *x, double v)
{
    int rc = put_double(&x->val, VALUE, v);
    return rc ? rc : end_metric(x, M_UNTYPED);
}

/* An Exemplar message into |out| (|scratch| holds its parts). */
static int put_exemplar(lk_buf *out, uint32_t field, const struct lk_pbexpo_exemplar *e,
                        lk_buf *scratch)
{
    static const char hex[] = "0123456789abcdef";
    lk_buf_reset(scratch);
    int rc = 0;
    if (e->trace_id != NULL) {
        char t[32], s[16];
        for (int i = 0; i < 16; i++) {
            t[2 * i] = hex[e->trace_id[i] >> 4];
            t[2 * i + 1] = hex[e->trace_id[i] & 15];
        }
        for (int i = 0; i < 8; i++) {
            s[2 * i] = hex[e->span_id[i] >> 4];
            s[2 * i + 1] = hex[e->span_id[i] & 15];
        }
        /* Two LabelPair messages, each 2 + name + 2 + value bytes. */
        uint8_t lp[64];
        size_t n = 0;
        lp[n++] = LP_NAME << 3 | LK_PB_LEN;
        lp[n++] = 8;
        memcpy(lp + n, "trace_id", 8);
        n += 8;
        lp[n++] = LP_VALUE << 3 | LK_PB_LEN;
        lp[n++] = 32;
        memcpy(lp + n, t, 32);
        n += 32;
        rc = put_bytes(scratch, EX_LABEL, lp, n);
        n = 0;
        lp[n++] = LP_NAME << 3 | LK_PB_LEN;
        lp[n++] = 7;
        memcpy(lp + n, "span_id", 7);
        n += 7;
        lp[n++] = LP_VALUE << 3 | LK_PB_LEN;
        lp[n++] = 16;
        memcpy(lp + n, s, 16);
        n += 16;
        if (rc == 0)
            rc = put_bytes(scratch, EX_LABEL, lp, n);
    }
    if (rc == 0)
        rc = put_double(scratch, EX_VALUE, e->value);
    if (rc == 0 && e->time_ns != 0) {
        uint8_t tsb[24];
        size_t n = 0;
        tsb[n++] = TS_SECONDS << 3 | LK_PB_VARINT;
        n += lk_pb_put_varint(tsb + n, e->time_ns / 1000000000u);
        uint64_t nanos = e->time_ns % 1000000000u;
        if (nanos != 0) {
            tsb[n++] = TS_NANOS << 3 | LK_PB_VARINT;
            n += lk_pb_put_varint(tsb + n, nanos);
        }
        rc = put_bytes(scratch, EX_TIMESTAMP, tsb, n);
    }
    return rc ? rc : put_bytes(out, field, scratch->data, scratch->len);
}

int lk_pbexpo_counter(lk_pbexpo *x, double v, const struct lk_pbexpo_exemplar *ex)
{
    int rc = put_double(&x->val, VALUE, v);
    if (rc == 0 && ex != NULL)
        rc = put_exemplar(&x->val, C_EXEMPLAR, ex, &x->sub);
    lk_buf_reset(&x->sub);
    return rc ? rc : end_metric(x, M_COUNTER);
}

int lk_pbexpo_summary(lk_pbexpo *x, uint64_t count, double sum, const double *quantiles,
                      const double *values, size_t n)
{
    int rc = put_varint(&x->val, S_COUNT, count);
    if (rc == 0)
        rc = put_double(&x->val, S_SUM, sum);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = put_double(&x->sub, Q_QUANTILE, quantiles[i]);
        if (rc == 0)
            rc = put_double(&x->sub, Q_VALUE, values[i]);
        if (rc == 0)
            rc = put_child(&x->val, S_QUANTILE, &x->sub);
    }
    return rc ? rc : end_metric(x, M_SUMMARY);
}

/* One span over the whole side, then the counts as deltas. */
static int put_side(lk_buf *val, lk_buf *sub, const struct lk_pbexpo_side *s,
                    uint32_t span_field, uint32_t delta_field)
{
    if (s->n == 0)
        return 0;
    int rc = put_sint(sub, SPAN_OFFSET, s->offset);
    if (rc == 0)
        rc = put_varint(sub, SPAN_LENGTH, s->n);
    if (rc == 0)
        rc = put_child(val, span_field, sub);
    int64_t prev = 0;
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        int64_t c = (int64_t)s->counts[i];
        rc = put_sint(val, delta_field, c - prev);
        prev = c;
    }
    return rc;
}

int lk_pbexpo_histogram(lk_pbexpo *x, const struct lk_pbexpo_hist *h)
{
    int rc = put_varint(&x->val, H_COUNT, h->count);
    if (rc == 0)
        rc = put_double(&x->val, H_SUM, h->sum);
    if (h->native) {
        if (rc == 0)
            rc = put_sint(&x->val, H_SCHEMA, h->schema);
        if (rc == 0)
            rc = put_double(&x->val, H_ZERO_THRESHOLD, h->zero_threshold);
        if (rc == 0)
            rc = put_varint(&x->val, H_ZERO_COUNT, h->zero_count);
        if (rc == 0)
            rc = put_side(&x->val, &x->sub, &h->negative, H_NEG_SPAN, H_NEG_DELTA);
        if (rc == 0)
            rc = put_side(&x->val, &x->sub, &h->positive, H_POS_SPAN, H_POS_DELTA);
        /* Nothing observed: one empty span tells it from a classic histogram. */
        if (rc == 0 && h->negative.n == 0 && h->positive.n == 0 && h->zero_threshold == 0 &&
            h->zero_count == 0) {
            rc = put_varint(&x->sub, SPAN_LENGTH, 0);
            if (rc == 0)
                rc = put_child(&x->val, H_POS_SPAN, &x->sub);
        }
        return rc ? rc : end_metric(x, M_HISTOGRAM);
    }
    /* Classic buckets; the +Inf one is implied by the count, and written
     * only to carry an exemplar. */
    uint64_t cum = 0;
    lk_buf ex;
    lk_buf_init(&ex, MAX_FAMILY_BYTES);
    for (size_t i = 0; rc == 0 && i <= h->nb; i++) {
        bool has_ex = h->exemplars != NULL && h->exemplars[i] != NULL;
        if (i == h->nb && !has_ex)
            break;
        cum += h->counts[i];
        rc = put_varint(&x->sub, B_COUNT, cum);
        if (rc == 0)
            rc = put_double(&x->sub, B_UPPER, i < h->nb ? h->bounds[i] : INFINITY);
        if (rc == 0 && has_ex)
            rc = put_exemplar(&x->sub, B_EXEMPLAR, h->exemplars[i], &ex);
        if (rc == 0)
            rc = put_child(&x->val, H_BUCKET, &x->sub);
    }
    lk_buf_fini(&ex);
    return rc ? rc : end_metric(x, M_HISTOGRAM);
}

int lk_pbexpo_family_end(lk_pbexpo *x, lk_buf *out)
{
    if (x->nmetrics == 0)
        return 0;
    int rc = lk_pb_append_varint(out, x->fam.len);
    if (rc == 0)
        rc = lk_buf_append(out, x->fam.data, x->fam.len);
    lk_buf_reset(&x->fam);
    x->nmetrics = 0;
    return rc;
}
