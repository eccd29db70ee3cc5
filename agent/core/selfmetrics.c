#include "core/selfmetrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/pbexpo.h"

/*
 * Families live in a singly linked list in registration order, each with its
 * series in creation order. Lookups scan the lists: they happen when objects
 * are set up (a few dozen families, a handful of series each), never per item.
 * Every series is its own allocation, so the pointers handed out stay valid
 * until lk_metrics_destroy.
 */

enum kind { KIND_COUNTER, KIND_FLOAT_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct lk_counter {
    uint64_t v;
};

struct lk_gauge {
    double v;
};

struct lk_histogram {
    double *bounds;   /* nbounds upper bounds, increasing, no +Inf */
    size_t nbounds;
    uint64_t *counts; /* nbounds + 1 per-bucket (not cumulative) counts */
    double sum;
    uint64_t count;
};

struct series {
    struct series *next;
    char *labels;
    union {
        struct lk_counter counter;
        struct lk_gauge gauge; /* also the value of a float counter */
        struct lk_histogram hist;
    } u;
};

struct family {
    struct family *next;
    char *name;
    char *help;
    enum kind kind;
    struct series *first, *last;
};

struct collector {
    lk_metrics_collect_cb cb;
    void *arg;
};

struct lk_metrics {
    struct family *first, *last;
    struct collector *collectors;
    size_t ncollectors;
};

lk_metrics *lk_metrics_create(void)
{
    return calloc(1, sizeof(lk_metrics));
}

static void series_free(struct series *s, enum kind kind)
{
    if (kind == KIND_HISTOGRAM) {
        free(s->u.hist.bounds);
        free(s->u.hist.counts);
    }
    free(s->labels);
    free(s);
}

void lk_metrics_destroy(lk_metrics *m)
{
    if (m == NULL)
        return;
    struct family *f = m->first;
    while (f != NULL) {
        struct family *fnext = f->next;
        struct series *s = f->first;
        while (s != NULL) {
            struct series *snext = s->next;
            series_free(s, f->kind);
            s = snext;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fnext;
    }
    free(m->collectors);
    free(m);
}

static bool name_is_valid(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '_' || c == ':';
        if (!alpha && !(p != name && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static const char *kind_type(enum kind k)
{
    switch (k) {
    case KIND_COUNTER:
    case KIND_FLOAT_COUNTER:
        return "counter";
    case KIND_GAUGE:
        return "gauge";
    case KIND_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static const char *kind_name(enum kind k)
{
    return k == KIND_FLOAT_COUNTER ? "float counter" : kind_type(k);
}

/*
 * Finds or creates the family |name|. A name already registered with another
 * kind is a programming error: it is logged and NULL returned so that the
 * exposition never carries two TYPE lines for one name.
 */
static struct family *family_get(lk_metrics *m, const char *name,
                                 const char *help, enum kind kind)
{
    for (struct family *f = m->first; f != NULL; f = f->next) {
        if (strcmp(f->name, name) != 0)
            continue;
        if (f->kind != kind) {
            lk_log(LK_LOG_ERROR, "metric registered twice with different types",
                   LK_S("name", name) LK_S("type", kind_name(f->kind))
                       LK_S("requested", kind_name(kind)));
            return NULL;
        }
        return f;
    }
    if (!name_is_valid(name)) {
        lk_log(LK_LOG_ERROR, "invalid metric name", LK_S("name", name));
        return NULL;
    }
    struct family *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->name = strdup(name);
    if (f->name == NULL)
        goto err_free;
    f->help = strdup(help != NULL ? help : "");
    if (f->help == NULL)
        goto err_name;
    f->kind = kind;
    if (m->last != NULL)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
err_name:
    free(f->name);
err_free:
    free(f);
    return NULL;
}

static struct series *series_find(struct family *f, const char *labels)
{
    for (struct series *s = f->first; s != NULL; s = s->next) {
        if (strcmp(s->labels, labels) == 0)
            return s;
    }
    return NULL;
}

static struct series *series_new(const char *labels)
{
    struct series *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->labels = strdup(labels);
    if (s->labels == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

static void series_link(struct family *f, struct series *s)
{
    if (f->last != NULL)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
}

static struct series *series_get(lk_metrics *m, const char *name,
                                 const char *help, const char *labels,
                                 enum kind kind)
{
    if (m == NULL)
        return NULL;
    if (labels == NULL)
        labels = "";
    struct family *f = family_get(m, name, help, kind);
    if (f == NULL)
        return NULL;
    struct series *s = series_find(f, labels);
    if (s != NULL)
        return s;
    s = series_new(labels);
    if (s == NULL)
        return NULL;
    series_link(f, s);
    return s;
}

lk_counter *lk_metrics_counter(lk_metrics *m, const char *name,
                               const char *help, const char *labels)
{
    struct series *s = series_get(m, name, help, labels, KIND_COUNTER);
    return s != NULL ? &s->u.counter : NULL;
}

lk_gauge *lk_metrics_gauge(lk_metrics *m, const char *name, const char *help,
                           const char *labels)
{
    struct series *s = series_get(m, name, help, labels, KIND_GAUGE);
    return s != NULL ? &s->u.gauge : NULL;
}

lk_gauge *lk_metrics_float_counter(lk_metrics *m, const char *name,
                                   const char *help, const char *labels)
{
    struct series *s = series_get(m, name, help, labels, KIND_FLOAT_COUNTER);
    return s != NULL ? &s->u.gauge : NULL;
}

lk_histogram *lk_metrics_histogram(lk_metrics *m, const char *name,
                                   const char *help, const char *labels,
                                   const double *bounds, size_t nbounds)
{
    if (m == NULL)
        return NULL;
    /* A trailing +Inf is implied; accept it from callers but do not store it. */
    if (nbounds > 0 && isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0)
        nbounds--;
    for (size_t i = 0; i < nbounds; i++) {
        if (isnan(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
            lk_log(LK_LOG_ERROR, "histogram bounds not strictly increasing",
                   LK_S("name", name));
            return NULL;
        }
    }
    if (labels == NULL)
        labels = "";
    struct family *f = family_get(m, name, help, KIND_HISTOGRAM);
    if (f == NULL)
        return NULL;
    struct series *s = series_find(f, labels);
    if (s != NULL)
        return &s->u.hist;
    s = series_new(labels);
    if (s == NULL)
        return NULL;
    struct lk_histogram *h = &s->u.hist;
    h->nbounds = nbounds;
    h->bounds = malloc((nbounds ? nbounds : 1) * sizeof(double));
    h->counts = calloc(nbounds + 1, sizeof(uint64_t));
    if (h->bounds == NULL || h->counts == NULL) {
        series_free(s, KIND_HISTOGRAM);
        return NULL;
    }
    if (nbounds > 0)
        memcpy(h->bounds, bounds, nbounds * sizeof(double));
    series_link(f, s);
    return h;
}

void lk_counter_add(lk_counter *c, uint64_t n)
{
    if (c != NULL)
        c->v += n;
}

uint64_t lk_counter_value(const lk_counter *c)
{
    return c != NULL ? c->v : 0;
}

void lk_gauge_set(lk_gauge *g, double v)
{
    if (g != NULL)
        g->v = v;
}

void lk_gauge_add(lk_gauge *g, double delta)
{
    if (g != NULL)
        g->v += delta;
}

double lk_gauge_value(const lk_gauge *g)
{
    return g != NULL ? g->v : 0.0;
}

void lk_histogram_observe(lk_histogram *h, double v)
{
    if (h == NULL)
        return;
    /* Buckets are few (about a dozen): a linear scan beats a binary search. */
    size_t i = 0;
    while (i < h->nbounds && !(v <= h->bounds[i]))
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

uint64_t lk_histogram_count(const lk_histogram *h)
{
    return h != NULL ? h->count : 0;
}

double lk_histogram_sum(const lk_histogram *h)
{
    return h != NULL ? h->sum : 0.0;
}

void lk_metrics_on_collect(lk_metrics *m, lk_metrics_collect_cb cb, void *arg)
{
    if (m == NULL || cb == NULL)
        return;
    struct collector *c =
        realloc(m->collectors, (m->ncollectors + 1) * sizeof(*c));
    if (c == NULL) {
        lk_log(LK_LOG_ERROR, "cannot register metrics collector",
               LK_S("error", lk_strerror(LK_ENOMEM)));
        return;
    }
    c[m->ncollectors].cb = cb;
    c[m->ncollectors].arg = arg;
    m->collectors = c;
    m->ncollectors++;
}

void lk_metrics_off_collect(lk_metrics *m, lk_metrics_collect_cb cb, void *arg)
{
    for (size_t i = 0; m != NULL && i < m->ncollectors; i++)
        if (m->collectors[i].cb == cb && m->collectors[i].arg == arg) {
            memmove(&m->collectors[i], &m->collectors[i + 1],
                    (m->ncollectors - i - 1) * sizeof(m->collectors[0]));
            m->ncollectors--;
            return;
        }
}

int lk_metrics_label_escape_n(lk_buf *out, const char *value, size_t n)
{
    if (n == 0)
        return 0;
    const char *run = value, *end = value + n;
    for (const char *p = value; p < end; p++) {
        const char *esc;
        switch (*p) {
        case '\\':
            esc = "\\\\";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\n':
            esc = "\\n";
            break;
        default:
            continue;
        }
        int rc = lk_buf_append(out, run, (size_t)(p - run));
        if (rc == 0)
            rc = lk_buf_append(out, esc, 2);
        if (rc < 0)
            return rc;
        run = p + 1;
    }
    return lk_buf_append(out, run, (size_t)(end - run));
}

int lk_metrics_labels_each(const char *text, size_t len, lk_buf *scratch,
                           int (*fn)(void *arg, const char *name, size_t nlen,
                                     const char *value, size_t vlen),
                           void *arg)
{
    size_t i = 0;
    while (i < len) {
        size_t n0 = i;
        while (i < len && text[i] != '=')
            i++;
        if (i == n0 || i + 1 >= len || text[i + 1] != '"')
            return LK_EINVAL;
        size_t nlen = i - n0;
        i += 2;
        size_t mark = scratch->len;
        for (;;) {
            if (i >= len)
                return LK_EINVAL;
            char ch = text[i++];
            if (ch == '"')
                break;
            if (ch == '\\') {
                if (i >= len)
                    return LK_EINVAL;
                ch = text[i++];
                if (ch == 'n')
                    ch = '\n';
                else if (ch != '\\' && ch != '"')
                    return LK_EINVAL;
            }
            int rc = lk_buf_append(scratch, &ch, 1);
            if (rc < 0)
                return rc;
        }
        /* An empty value may leave |scratch| unallocated. */
        const char *v = scratch->len > mark ? (const char *)scratch->data + mark : "";
        int rc = fn(arg, text + n0, nlen, v, scratch->len - mark);
        if (rc != 0)
            return rc;
        if (i < len && text[i++] != ',')
            return LK_EINVAL;
    }
    return 0;
}

int lk_metrics_label_escape(lk_buf *out, const char *value)
{
    return lk_metrics_label_escape_n(out, value, strlen(value));
}

int lk_metrics_help_escape(lk_buf *out, const char *help, bool openmetrics)
{
    const char *run = help;
    const char *p = help;
    for (; *p != '\0'; p++) {
        const char *esc = *p == '\\'                 ? "\\\\"
                          : *p == '\n'                ? "\\n"
                          : *p == '"' && openmetrics ? "\\\""
                                                     : NULL;
        if (esc == NULL)
            continue;
        int rc = lk_buf_append(out, run, (size_t)(p - run));
        if (rc == 0)
            rc = lk_buf_append(out, esc, 2);
        if (rc < 0)
            return rc;
        run = p + 1;
    }
    return lk_buf_append(out, run, (size_t)(p - run));
}

/* The length of |name| without one ending an exposition adds to a family's
 * name (for its samples, or OpenMetrics' counter _total). */
static size_t stem_len(const char *name, size_t len)
{
    static const char *const ends[] = {"_total", "_created", "_bucket", "_sum", "_count"};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        size_t el = strlen(ends[i]);
        if (len > el && memcmp(name + len - el, ends[i], el) == 0)
            return len - el;
    }
    return len;
}

static bool same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

bool lk_metrics_name_is_reserved(const lk_metrics *m, const char *name, size_t len)
{
    size_t ns = sizeof(LK_METRICS_NAMESPACE) - 1;
    if (len >= ns && memcmp(name, LK_METRICS_NAMESPACE, ns) == 0)
        return true;
    size_t stem = stem_len(name, len);
    for (const struct family *f = m != NULL ? m->first : NULL; f != NULL; f = f->next) {
        size_t flen = strlen(f->name), fstem = stem_len(f->name, flen);
        /* x_count_total (a counter) is the OpenMetrics family x_count: both
         * names are compared whole and without their ending. */
        if (same(name, len, f->name, flen) || same(name, stem, f->name, flen) ||
            same(name, len, f->name, fstem) || same(name, stem, f->name, fstem))
            return true;
    }
    return false;
}

/*
 * Writes |v| in the shortest %g form that reads back as the same double
 * (at most 17 significant digits), or NaN / +Inf / -Inf as the text format
 * spells them.
 */
int lk_metrics_format_double(char *dst, size_t size, double v)
{
    if (isnan(v))
        return snprintf(dst, size, "NaN");
    if (isinf(v))
        return snprintf(dst, size, v > 0 ? "+Inf" : "-Inf");
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(dst, size, "%.*g", prec, v);
        if (n < 0 || (size_t)n >= size || strtod(dst, NULL) == v)
            break;
    }
    return n;
}

static int append_double(lk_buf *out, double v)
{
    char tmp[40];
    int n = lk_metrics_format_double(tmp, sizeof(tmp), v);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return LK_EINVAL;
    return lk_buf_append(out, tmp, (size_t)n);
}

static int append_u64(lk_buf *out, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    return lk_buf_append(out, tmp, (size_t)n);
}

/* Appends `name[suffix]{labels}` (no braces when |labels| is empty). */
static int append_series_name(lk_buf *out, const char *name,
                              const char *suffix, const char *labels)
{
    int rc = lk_buf_append_str(out, name);
    if (rc == 0 && suffix != NULL)
        rc = lk_buf_append_str(out, suffix);
    if (rc == 0 && labels[0] != '\0') {
        rc = lk_buf_append(out, "{", 1);
        if (rc == 0)
            rc = lk_buf_append_str(out, labels);
        if (rc == 0)
            rc = lk_buf_append(out, "}", 1);
    }
    return rc;
}

static int render_histogram(lk_buf *out, const char *name,
                            const struct series *s)
{
    const struct lk_histogram *h = &s->u.hist;
    uint64_t cum = 0;
    int rc = 0;
    for (size_t i = 0; i <= h->nbounds && rc == 0; i++) {
        cum += h->counts[i];
        rc = lk_buf_append_str(out, name);
        if (rc == 0)
            rc = lk_buf_append(out, "_bucket{", 8);
        if (rc == 0 && s->labels[0] != '\0') {
            rc = lk_buf_append_str(out, s->labels);
            if (rc == 0)
                rc = lk_buf_append(out, ",", 1);
        }
        if (rc == 0)
            rc = lk_buf_append(out, "le=\"", 4);
        if (rc == 0)
            rc = i < h->nbounds ? append_double(out, h->bounds[i])
                                : lk_buf_append(out, "+Inf", 4);
        if (rc == 0)
            rc = lk_buf_append(out, "\"} ", 3);
        if (rc == 0)
            rc = append_u64(out, cum);
        if (rc == 0)
            rc = lk_buf_append(out, "\n", 1);
    }
    if (rc == 0)
        rc = append_series_name(out, name, "_sum", s->labels);
    if (rc == 0)
        rc = lk_buf_append(out, " ", 1);
    if (rc == 0)
        rc = append_double(out, h->sum);
    if (rc == 0)
        rc = lk_buf_append(out, "\n", 1);
    if (rc == 0)
        rc = append_series_name(out, name, "_count", s->labels);
    if (rc == 0)
        rc = lk_buf_append(out, " ", 1);
    if (rc == 0)
        rc = append_u64(out, h->count);
    if (rc == 0)
        rc = lk_buf_append(out, "\n", 1);
    return rc;
}

/* OpenMetrics names a counter family without the _total of its samples. */
static int render_family(lk_buf *out, const struct family *f, bool openmetrics)
{
    const char *type = kind_type(f->kind);
    int nlen = (int)strlen(f->name);
    bool counter = f->kind == KIND_COUNTER || f->kind == KIND_FLOAT_COUNTER;
    if (openmetrics && counter) {
        if (nlen > 6 && strcmp(f->name + nlen - 6, "_total") == 0)
            nlen -= 6;
        else
            type = "unknown";
    }
    int rc = lk_buf_printf(out, "# HELP %.*s ", nlen, f->name);
    if (rc == 0)
        rc = lk_metrics_help_escape(out, f->help, openmetrics);
    if (rc == 0)
        rc = lk_buf_printf(out, "\n# TYPE %.*s %s\n", nlen, f->name, type);
    for (const struct series *s = f->first; s != NULL && rc == 0; s = s->next) {
        if (f->kind == KIND_HISTOGRAM) {
            rc = render_histogram(out, f->name, s);
            continue;
        }
        rc = append_series_name(out, f->name, NULL, s->labels);
        if (rc == 0)
            rc = lk_buf_append(out, " ", 1);
        if (rc == 0)
            rc = f->kind == KIND_COUNTER ? append_u64(out, s->u.counter.v)
                                         : append_double(out, s->u.gauge.v);
        if (rc == 0)
            rc = lk_buf_append(out, "\n", 1);
    }
    return rc;
}

int lk_metrics_render(lk_metrics *m, lk_buf *out)
{
    return lk_metrics_render_format(m, out, false);
}

int lk_metrics_render_format(lk_metrics *m, lk_buf *out, bool openmetrics)
{
    if (m == NULL || out == NULL)
        return LK_EINVAL;
    for (size_t i = 0; i < m->ncollectors; i++)
        m->collectors[i].cb(m, m->collectors[i].arg);
    for (const struct family *f = m->first; f != NULL; f = f->next) {
        int rc = render_family(out, f, openmetrics);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int proto_family(lk_pbexpo *x, lk_buf *out, const struct family *f)
{
    static const enum lk_pbexpo_type types[] = {
        [KIND_COUNTER] = LK_PBEXPO_COUNTER,
        [KIND_FLOAT_COUNTER] = LK_PBEXPO_COUNTER,
        [KIND_GAUGE] = LK_PBEXPO_GAUGE,
        [KIND_HISTOGRAM] = LK_PBEXPO_HISTOGRAM,
    };
    int rc = lk_pbexpo_family(x, f->name, strlen(f->name), f->help, types[f->kind], NULL);
    for (const struct series *s = f->first; s != NULL && rc == 0; s = s->next) {
        rc = lk_pbexpo_metric(x);
        if (rc == 0)
            rc = lk_pbexpo_label_text(x, s->labels, strlen(s->labels));
        if (rc < 0)
            break;
        switch (f->kind) {
        case KIND_COUNTER:
            rc = lk_pbexpo_counter(x, (double)s->u.counter.v, NULL);
            break;
        case KIND_FLOAT_COUNTER:
            rc = lk_pbexpo_counter(x, s->u.gauge.v, NULL);
            break;
        case KIND_GAUGE:
            rc = lk_pbexpo_gauge(x, s->u.gauge.v);
            break;
        case KIND_HISTOGRAM: {
            const struct lk_histogram *h = &s->u.hist;
            struct lk_pbexpo_hist ph = {.count = h->count, .sum = h->sum,
                                        .bounds = h->bounds, .counts = h->counts,
                                        .nb = h->nbounds};
            rc = lk_pbexpo_histogram(x, &ph);
            break;
        }
        }
    }
    return rc ? rc : lk_pbexpo_family_end(x, out);
}

int lk_metrics_render_proto(lk_metrics *m, lk_buf *out)
{
    if (m == NULL || out == NULL)
        return LK_EINVAL;
    for (size_t i = 0; i < m->ncollectors; i++)
        m->collectors[i].cb(m, m->collectors[i].arg);
    lk_pbexpo x;
    lk_pbexpo_init(&x);
    int rc = 0;
    for (const struct family *f = m->first; f != NULL && rc == 0; f = f->next)
        rc = proto_family(&x, out, f);
    lk_pbexpo_fini(&x);
    return rc;
}
