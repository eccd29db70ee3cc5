/*
 * Remote write bodies (see prom_rw.h). A series' label text is split once
 * into (name, value) pairs; __name__ and the sample's extra label (le,
 * quantile) are placed among them in name order, as remote write requires
 * labels sorted by name, and each sample becomes one TimeSeries.
 */
#include "exporters/prom_rw.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/pbwire.h"
#include "core/selfmetrics.h"

/* Field numbers of proto/prometheus/prompb. */
enum {
    WR_TIMESERIES = 1, /* WriteRequest */
    WR_METADATA = 3,
    TS_LABELS = 1, /* TimeSeries */
    TS_SAMPLES = 2,
    LABEL_NAME = 1, /* Label */
    LABEL_VALUE = 2,
    SAMPLE_VALUE = 1, /* Sample: double */
    SAMPLE_TIMESTAMP = 2, /* int64 ms */
    MD_TYPE = 1, /* MetricMetadata */
    MD_NAME = 2,
    MD_HELP = 4,
    MD_UNIT = 5,
};
/* MetricMetadata.MetricType */
enum { MT_COUNTER = 1, MT_GAUGE = 2, MT_HISTOGRAM = 3, MT_SUMMARY = 5 };

struct label {
    const char *name, *value;
    size_t nlen, vlen;
    size_t value_off; /* into w->text, which may move */
};

struct lk_prom_rw {
    lk_buf text;          /* unescaped label values, the sample name */
    struct label *labels; /* of the current series, sorted, __name__ and extra included */
    size_t nlabels, cap;
    size_t name_at, extra_at; /* positions of __name__ and the extra label */
    lk_prom_family **fams;    /* families seen in this request */
    size_t nfams, capfams;
};

lk_prom_rw *lk_prom_rw_create(void)
{
    lk_prom_rw *w = calloc(1, sizeof(*w));
    if (w != NULL)
        lk_buf_init(&w->text, SIZE_MAX);
    return w;
}

void lk_prom_rw_destroy(lk_prom_rw *w)
{
    if (w == NULL)
        return;
    lk_buf_fini(&w->text);
    free(w->labels);
    free(w->fams);
    free(w);
}

static int push_label(lk_prom_rw *w, const char *name, size_t nlen, size_t value_off,
                      size_t vlen)
{
    if (w->nlabels == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct label *l = realloc(w->labels, cap * sizeof(*l));
        if (l == NULL)
            return LK_ENOMEM;
        w->labels = l;
        w->cap = cap;
    }
    w->labels[w->nlabels++] = (struct label){.name = name, .nlen = nlen,
                                             .value_off = value_off, .vlen = vlen};
    return 0;
}

/* Label values are unescaped into w->text; keep offsets while it may grow. */
static int collect_label(void *arg, const char *name, size_t nlen, const char *value,
                         size_t vlen)
{
    lk_prom_rw *w = arg;
    size_t off = vlen > 0 ? (size_t)((const uint8_t *)value - w->text.data) : 0;
    return push_label(w, name, nlen, off, vlen);
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c != 0 ? c : an < bn ? -1 : an > bn ? 1 : 0;
}

/* Inserts a label named |name| in name order; returns its index. */
static int insert_sorted(lk_prom_rw *w, const char *name, size_t *at)
{
    size_t nlen = strlen(name);
    int rc = push_label(w, name, nlen, 0, 0);
    if (rc < 0)
        return rc;
    size_t i = w->nlabels - 1;
    struct label me = w->labels[i];
    while (i > 0 && name_cmp(w->labels[i - 1].name, w->labels[i - 1].nlen, name, nlen) > 0) {
        w->labels[i] = w->labels[i - 1];
        i--;
    }
    w->labels[i] = me;
    *at = i;
    return 0;
}

static size_t len_field_size(size_t n)
{
    return 1 + lk_pb_varint_len(n) + n;
}

static size_t label_size(const struct label *l)
{
    return len_field_size(l->nlen) + len_field_size(l->vlen);
}

static uint8_t *put_len_field(uint8_t *p, uint32_t field, const void *data, size_t n)
{
    *p++ = (uint8_t)(field << 3 | LK_PB_LEN);
    p += lk_pb_put_varint(p, n);
    memcpy(p, data, n);
    return p + n;
}

/* One TimeSeries: the labels as they stand, one sample. */
static int write_timeseries(lk_prom_rw *w, lk_buf *out, double value, int64_t ts_ms)
{
    size_t labels = 0;
    for (size_t i = 0; i < w->nlabels; i++)
        labels += len_field_size(label_size(&w->labels[i]));
    size_t sample = 1 + 8 + 1 + lk_pb_varint_len((uint64_t)ts_ms);
    size_t ts = labels + len_field_size(sample);
    size_t total = len_field_size(ts);
    int rc = lk_buf_reserve(out, total);
    if (rc < 0)
        return rc;
    uint8_t *p = out->data + out->len;
    *p++ = WR_TIMESERIES << 3 | LK_PB_LEN;
    p += lk_pb_put_varint(p, ts);
    for (size_t i = 0; i < w->nlabels; i++) {
        const struct label *l = &w->labels[i];
        *p++ = TS_LABELS << 3 | LK_PB_LEN;
        p += lk_pb_put_varint(p, label_size(l));
        p = put_len_field(p, LABEL_NAME, l->name, l->nlen);
        p = put_len_field(p, LABEL_VALUE, l->value, l->vlen);
    }
    *p++ = TS_SAMPLES << 3 | LK_PB_LEN;
    p += lk_pb_put_varint(p, sample);
    *p++ = SAMPLE_VALUE << 3 | LK_PB_I64;
    uint64_t bits;
    memcpy(&bits, &value, 8);
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(bits >> (8 * i));
    *p++ = SAMPLE_TIMESTAMP << 3 | LK_PB_VARINT;
    p += lk_pb_put_varint(p, (uint64_t)ts_ms);
    out->len = (size_t)(p - out->data);
    return 0;
}

struct series_ctx {
    lk_prom_rw *w;
    lk_buf *out;
    const char *fname;
    size_t fnlen;
    size_t name_off; /* of the family name in w->text, room for a suffix after */
    int64_t ts_ms;
    struct lk_prom_rw_stats *st;
};

static int rw_sample(void *arg, const struct lk_prom_sample *smp)
{
    struct series_ctx *c = arg;
    lk_prom_rw *w = c->w;
    size_t mark = w->text.len;
    int rc = lk_buf_append(&w->text, c->fname, c->fnlen);
    if (rc == 0 && smp->suffix != NULL)
        rc = lk_buf_append_str(&w->text, smp->suffix);
    size_t vmark = w->text.len;
    if (rc == 0 && smp->extra != NULL) {
        char v[40];
        int n = lk_metrics_format_double(v, sizeof(v), smp->extra_value);
        rc = n < 0 || (size_t)n >= sizeof(v) ? LK_EINVAL : lk_buf_append(&w->text, v, (size_t)n);
    }
    if (rc < 0)
        return rc;
    /* Every pointer into w->text now, after its last growth for this sample. */
    for (size_t i = 0; i < w->nlabels; i++)
        w->labels[i].value = (const char *)w->text.data + w->labels[i].value_off;
    struct label *nm = &w->labels[w->name_at];
    nm->value = (const char *)w->text.data + mark;
    nm->vlen = vmark - mark;
    if (smp->extra != NULL) {
        struct label *ex = &w->labels[w->extra_at];
        ex->value = (const char *)w->text.data + vmark;
        ex->vlen = w->text.len - vmark;
    }
    rc = write_timeseries(w, c->out, smp->value, c->ts_ms);
    lk_buf_truncate(&w->text, mark);
    if (rc == 0)
        c->st->timeseries++;
    return rc;
}

static int note_family(lk_prom_rw *w, lk_prom_family *f)
{
    for (size_t i = 0; i < w->nfams; i++)
        if (w->fams[i] == f)
            return 0;
    if (w->nfams == w->capfams) {
        size_t cap = w->capfams ? 2 * w->capfams : 32;
        lk_prom_family **p = realloc(w->fams, cap * sizeof(*p));
        if (p == NULL)
            return LK_ENOMEM;
        w->fams = p;
        w->capfams = cap;
    }
    w->fams[w->nfams++] = f;
    return 0;
}

static int write_metadata(lk_buf *out, const lk_prom_family *f)
{
    static const uint8_t types[] = {
        [LK_PROM_GAUGE] = MT_GAUGE,
        [LK_PROM_COUNTER] = MT_COUNTER,
        [LK_PROM_HISTOGRAM] = MT_HISTOGRAM,
        [LK_PROM_SUMMARY] = MT_SUMMARY,
    };
    const char *name = lk_prom_family_name(f), *help = lk_prom_family_help(f),
               *unit = lk_prom_family_unit(f);
    size_t nl = strlen(name), hl = strlen(help), ul = strlen(unit);
    size_t md = 2 + len_field_size(nl) + (hl ? len_field_size(hl) : 0) +
                (ul ? len_field_size(ul) : 0);
    int rc = lk_buf_reserve(out, len_field_size(md));
    if (rc < 0)
        return rc;
    uint8_t *p = out->data + out->len;
    *p++ = WR_METADATA << 3 | LK_PB_LEN;
    p += lk_pb_put_varint(p, md);
    *p++ = MD_TYPE << 3 | LK_PB_VARINT;
    *p++ = types[lk_prom_family_kind(f)];
    p = put_len_field(p, MD_NAME, name, nl);
    if (hl)
        p = put_len_field(p, MD_HELP, help, hl);
    if (ul)
        p = put_len_field(p, MD_UNIT, unit, ul);
    out->len = (size_t)(p - out->data);
    return 0;
}

static int encode_series(lk_prom_rw *w, lk_prom_store *s, lk_prom_series *se,
                         uint64_t now_ms, lk_buf *out, struct lk_prom_rw_stats *st)
{
    lk_prom_family *f = lk_prom_series_family(se);
    enum lk_prom_kind kind = lk_prom_family_kind(f);
    size_t llen;
    const char *ltext = lk_prom_series_labels(se, &llen);
    lk_buf_reset(&w->text);
    w->nlabels = 0;
    int rc = lk_metrics_labels_each(ltext, llen, &w->text, collect_label, w);
    if (rc == 0)
        rc = insert_sorted(w, "__name__", &w->name_at);
    const char *extra = kind == LK_PROM_HISTOGRAM ? "le"
                        : kind == LK_PROM_SUMMARY ? "quantile"
                                                  : NULL;
    if (rc == 0 && extra != NULL) {
        rc = insert_sorted(w, extra, &w->extra_at);
        if (rc == 0 && w->extra_at <= w->name_at)
            w->name_at++;
    }
    if (rc == 0)
        rc = note_family(w, f);
    if (rc < 0)
        return rc;
    uint64_t t = lk_prom_series_time_ns(se);
    const char *fname = lk_prom_family_name(f);
    struct series_ctx c = {
        .w = w,
        .out = out,
        .fname = fname,
        .fnlen = strlen(fname),
        .ts_ms = (int64_t)(t != 0 ? t / 1000000u : now_ms),
        .st = st,
    };
    return lk_prom_series_samples(s, se, false, false, rw_sample, &c);
}

int lk_prom_rw_encode(lk_prom_rw *w, lk_prom_store *s, lk_prom_series *const *series,
                      size_t n, uint64_t now_ms, lk_buf *out, struct lk_prom_rw_stats *st)
{
    w->nfams = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = encode_series(w, s, series[i], now_ms, out, st);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < w->nfams; i++) {
        int rc = write_metadata(out, w->fams[i]);
        if (rc < 0)
            return rc;
        st->families++;
    }
    return 0;
}
