/*
 * OTLP metrics → series store (see prom_otlp.h).
 *
 * Labels of a point are gathered as (name, value) entries in one scratch
 * buffer: first those the resource and the scope give (job, instance,
 * promoted attributes, otel_scope_*), then the point's attributes. They are
 * sorted by name; point attributes whose names sanitise alike are joined
 * with ';' in the order of their original keys; a point attribute named like
 * a resource or scope label loses to it. The sorted entries are rendered as
 * `a="x",b="y"`, which is the series key.
 */
#include "exporters/prom_otlp.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json_escape.h"
#include "core/selfmetrics.h"
#include "exporters/prom_otlp_impl.h"

#define ARENA_CHUNK (64 * 1024)

/* ---- arena for protobuf-c ---- */

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size = (size + 15) & ~(size_t)15;
    struct chunk *c = a->head;
    if (c == NULL || c->size - c->used < size) {
        size_t sz = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        c = malloc(sizeof(*c) + sz);
        if (c == NULL)
            return NULL;
        c->size = sz;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

/* The last chunk allocated is kept: the one most likely large enough next time. */
void lk__prom_arena_reset(struct arena *a)
{
    if (a->head == NULL)
        return;
    struct chunk *keep = a->head, *c = keep->next;
    while (c != NULL) {
        struct chunk *nx = c->next;
        free(c);
        c = nx;
    }
    keep->next = NULL;
    keep->used = 0;
}

static void arena_fini(struct arena *a)
{
    lk__prom_arena_reset(a);
    free(a->head);
    a->head = NULL;
}

const char *lk_prom_drop_reason(enum lk_prom_drop d)
{
    static const char *const names[LK_PROM_DROP_COUNT] = {
        "series_limit", "type_conflict", "out_of_order", "invalid_point", "reserved_name"};
    return d < LK_PROM_DROP_COUNT ? names[d] : "unknown";
}

lk_prom_mapper *lk_prom_mapper_create(const struct lk_prom_map_opts *o, lk_prom_store *s)
{
    lk_prom_mapper *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->o = *o;
    m->o.promote = NULL;
    if (o->npromote > 0) {
        char **p = calloc(o->npromote, sizeof(*p));
        if (p == NULL) {
            free(m);
            return NULL;
        }
        for (size_t i = 0; i < o->npromote; i++)
            p[i] = strdup(o->promote[i]);
        m->o.promote = p;
        for (size_t i = 0; i < o->npromote; i++)
            if (p[i] == NULL) {
                lk_prom_mapper_destroy(m);
                return NULL;
            }
    }
    m->store = s;
    m->alloc.alloc = arena_alloc;
    m->alloc.free = arena_free;
    m->alloc.allocator_data = &m->arena;
    lk_buf_init(&m->text, 64 * 1024 * 1024);
    lk_buf_init(&m->key, 64 * 1024 * 1024);
    lk_buf_init(&m->name, 64 * 1024);
    lk_buf_init(&m->tmp, 64 * 1024 * 1024);
    lk_buf_init(&m->attrs, 64 * 1024 * 1024);
    lk_buf_init(&m->strs, 64 * 1024 * 1024);
    return m;
}

void lk_prom_mapper_destroy(lk_prom_mapper *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; m->o.promote != NULL && i < m->o.npromote; i++)
        free(m->o.promote[i]);
    free((void *)m->o.promote);
    lk__prom_wire_fini(m);
    arena_fini(&m->arena);
    lk_buf_fini(&m->text);
    lk_buf_fini(&m->key);
    lk_buf_fini(&m->name);
    lk_buf_fini(&m->tmp);
    free(m->labels);
    free(m->sorted);
    free(m->counts);
    free(m->bounds);
    free(m);
}

static int append_i64(lk_buf *b, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof(t), "%" PRId64, v);
    return lk_buf_append(b, t, (size_t)n);
}

static int append_double(lk_buf *b, double v)
{
    char t[40];
    int n = lk_metrics_format_double(t, sizeof(t), v);
    if (n < 0 || (size_t)n >= sizeof(t))
        return LK_EINVAL;
    return lk_buf_append(b, t, (size_t)n);
}

/* An AnyValue as text: strings as they are, arrays and maps as JSON. */
static int any_text(lk_buf *b, const AnyValue *v, bool json)
{
    if (v == NULL)
        return 0;
    int rc = 0;
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        if (!json)
            return lk_buf_append_str(b, v->string_value);
        rc = lk_buf_append(b, "\"", 1);
        if (rc == 0)
            rc = lk_json_escape(b, v->string_value, strlen(v->string_value));
        return rc ? rc : lk_buf_append(b, "\"", 1);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        return lk_buf_append_str(b, v->bool_value ? "true" : "false");
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        return append_i64(b, v->int_value);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        if (json && !isfinite(v->double_value)) {
            rc = lk_buf_append(b, "\"", 1);
            if (rc == 0)
                rc = append_double(b, v->double_value);
            return rc ? rc : lk_buf_append(b, "\"", 1);
        }
        return append_double(b, v->double_value);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        if (json)
            rc = lk_buf_append(b, "\"", 1);
        if (rc == 0)
            rc = lk_base64_append(b, v->bytes_value.data, v->bytes_value.len, true);
        return rc == 0 && json ? lk_buf_append(b, "\"", 1) : rc;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        rc = lk_buf_append(b, "[", 1);
        for (size_t i = 0; rc == 0 && v->array_value && i < v->array_value->n_values; i++) {
            if (i > 0)
                rc = lk_buf_append(b, ",", 1);
            if (rc == 0)
                rc = any_text(b, v->array_value->values[i], true);
        }
        return rc ? rc : lk_buf_append(b, "]", 1);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        rc = lk_buf_append(b, "{", 1);
        for (size_t i = 0; rc == 0 && v->kvlist_value && i < v->kvlist_value->n_values; i++) {
            const KeyValue *kv = v->kvlist_value->values[i];
            if (i > 0)
                rc = lk_buf_append(b, ",", 1);
            if (rc == 0)
                rc = lk_buf_append(b, "\"", 1);
            if (rc == 0)
                rc = lk_json_escape(b, kv->key, strlen(kv->key));
            if (rc == 0)
                rc = lk_buf_append(b, "\":", 2);
            if (rc == 0)
                rc = kv->value ? any_text(b, kv->value, true) : lk_buf_append(b, "null", 4);
        }
        return rc ? rc : lk_buf_append(b, "}", 1);
    default:
        return json ? lk_buf_append(b, "null", 4) : 0;
    }
}

static int push_label(lk_prom_mapper *m, struct label **out)
{
    if (m->nlabels == m->caplabels) {
        size_t cap = m->caplabels ? m->caplabels * 2 : 32;
        struct label *l = realloc(m->labels, cap * sizeof(*l));
        if (l == NULL)
            return LK_ENOMEM;
        m->labels = l;
        l = realloc(m->sorted, cap * sizeof(*l));
        if (l == NULL)
            return LK_ENOMEM;
        m->sorted = l;
        m->caplabels = cap;
    }
    *out = &m->labels[m->nlabels++];
    return 0;
}

/* Adds a label with an already sanitised |name| and a raw value. */
static int add_label_raw(lk_prom_mapper *m, const char *name, const char *val, size_t vlen,
                         const char *key, int prio)
{
    struct label *l;
    int rc = push_label(m, &l);
    if (rc < 0)
        return rc;
    l->key = key;
    l->prio = prio;
    l->name_off = m->text.len;
    rc = lk_buf_append_str(&m->text, name);
    l->name_len = m->text.len - l->name_off;
    l->val_off = m->text.len;
    if (rc == 0)
        rc = lk_metrics_label_escape_n(&m->text, val, vlen);
    l->val_len = m->text.len - l->val_off;
    return rc;
}

/*
 * Label name of |key|: the common shape of semantic-convention keys (ASCII
 * letters, digits, '_' and single '.' between them, starting with a letter)
 * only needs '.' turned into '_'; anything else goes through
 * lk_prom_label_name.
 */
static int label_name(lk_buf *out, const char *key)
{
    size_t n = 0;
    bool simple = (key[0] >= 'a' && key[0] <= 'z') || (key[0] >= 'A' && key[0] <= 'Z');
    for (; simple && key[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)key[n];
        bool word = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9');
        if (!word && ch != '_' && ch != '.')
            simple = false;
        else if (!word && (key[n + 1] == '_' || key[n + 1] == '.' || key[n + 1] == '\0'))
            simple = false; /* runs collapse, trailing separators: the full rules */
    }
    if (!simple)
        return lk_prom_label_name(out, key, strlen(key));
    size_t at = out->len;
    int rc = lk_buf_append(out, key, n);
    for (size_t i = at; rc == 0 && i < out->len; i++)
        if (out->data[i] == '.')
            out->data[i] = '_';
    return rc;
}

/* Adds attribute |kv| as a label with a sanitised name. */
static int add_label_kv(lk_prom_mapper *m, const KeyValue *kv, int prio)
{
    struct label *l;
    int rc = push_label(m, &l);
    if (rc < 0)
        return rc;
    l->key = kv->key;
    l->prio = prio;
    l->name_off = m->text.len;
    rc = label_name(&m->text, kv->key);
    l->name_len = m->text.len - l->name_off;
    l->val_off = m->text.len;
    const AnyValue *v = kv->value;
    if (rc == 0 && v != NULL &&
        v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
        /* Most values: escaped straight from the string. */
        rc = lk_metrics_label_escape_n(&m->text, v->string_value, strlen(v->string_value));
    } else if (rc == 0) {
        lk_buf_reset(&m->tmp);
        rc = any_text(&m->tmp, v, false);
        if (rc == 0)
            rc = lk_metrics_label_escape_n(&m->text, (const char *)m->tmp.data, m->tmp.len);
    }
    l->val_len = m->text.len - l->val_off;
    return rc;
}

static const char *text_at(const lk_prom_mapper *m, size_t off)
{
    return (const char *)m->text.data + off;
}

static int label_cmp(const lk_prom_mapper *m, const struct label *a, const struct label *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(text_at(m, a->name_off), text_at(m, b->name_off), n);
    if (c != 0)
        return c;
    if (a->name_len != b->name_len)
        return a->name_len < b->name_len ? -1 : 1;
    if (a->prio != b->prio)
        return a->prio - b->prio;
    return strcmp(a->key, b->key);
}

/* Sorts a copy of the labels (insertion sort: a handful per point) and
 * renders the series key into m->key. */
static int render_key(lk_prom_mapper *m)
{
    struct label *l = m->sorted;
    if (m->nlabels > 0)
        memcpy(l, m->labels, m->nlabels * sizeof(*l));
    for (size_t i = 1; i < m->nlabels; i++) {
        struct label t = l[i];
        size_t j = i;
        while (j > 0 && label_cmp(m, &l[j - 1], &t) > 0) {
            l[j] = l[j - 1];
            j--;
        }
        l[j] = t;
    }
    /* Written into a stack buffer and appended once (small appends
     * dominated); a label set that does not fit goes straight to the buffer. */
    char stack[2048];
    size_t n = 0;
    bool fits = true;
    lk_buf_reset(&m->key);
    int rc = 0;
    int run_prio = 1; /* of the first label of the current run of one name */
#define KEY_PUT(p, len)                                                          \
    do {                                                                         \
        size_t len_ = (len);                                                     \
        if (fits && n + len_ <= sizeof(stack)) {                                 \
            memcpy(stack + n, (p), len_);                                        \
            n += len_;                                                           \
        } else {                                                                 \
            if (fits) {                                                          \
                fits = false;                                                    \
                rc = lk_buf_append(&m->key, stack, n);                           \
            }                                                                    \
            if (rc == 0)                                                         \
                rc = lk_buf_append(&m->key, (p), len_);                          \
        }                                                                        \
    } while (0)
    for (size_t i = 0; rc == 0 && i < m->nlabels; i++) {
        const struct label *a = &l[i];
        bool same = i > 0 && l[i - 1].name_len == a->name_len &&
                    memcmp(text_at(m, l[i - 1].name_off), text_at(m, a->name_off),
                           a->name_len) == 0;
        if (!same)
            run_prio = a->prio;
        if (same) {
            /* A resource or scope label (sorted first) wins over attributes;
             * attributes that sanitise alike are joined: the closing quote
             * written last becomes ';' and the value follows. */
            if (run_prio == 0)
                continue;
            if (fits)
                n--;
            else
                lk_buf_truncate(&m->key, m->key.len - 1);
            KEY_PUT(";", 1);
            KEY_PUT(text_at(m, a->val_off), a->val_len);
            KEY_PUT("\"", 1);
            continue;
        }
        if (i > 0 && (n > 0 || !fits))
            KEY_PUT(",", 1);
        KEY_PUT(text_at(m, a->name_off), a->name_len);
        KEY_PUT("=\"", 2);
        KEY_PUT(text_at(m, a->val_off), a->val_len);
        KEY_PUT("\"", 1);
    }
#undef KEY_PUT
    if (rc == 0 && fits)
        rc = lk_buf_append(&m->key, stack, n);
    return rc == 0 && m->key.len > MAX_KEY_BYTES ? LK_E2BIG : rc;
}

/* Drops the point labels, keeping the resource and scope ones. */
static void reset_point_labels(lk_prom_mapper *m)
{
    m->nlabels = m->nfixed;
    if (m->nfixed == 0)
        lk_buf_reset(&m->text);
    else
        lk_buf_truncate(&m->text,
                        m->labels[m->nfixed - 1].val_off + m->labels[m->nfixed - 1].val_len);
}

static const AnyValue *resource_attr(const Opentelemetry__Proto__Resource__V1__Resource *r,
                                     const char *key)
{
    for (size_t i = 0; r != NULL && i < r->n_attributes; i++)
        if (strcmp(r->attributes[i]->key, key) == 0)
            return r->attributes[i]->value;
    return NULL;
}

/* job and instance of a resource, into |out| as raw text; false when absent. */
static bool resource_job(lk_buf *out, const Opentelemetry__Proto__Resource__V1__Resource *r)
{
    const AnyValue *name = resource_attr(r, "service.name");
    const AnyValue *ns = resource_attr(r, "service.namespace");
    lk_buf_reset(out);
    if (name == NULL)
        return false;
    if (ns != NULL) {
        any_text(out, ns, false);
        lk_buf_append(out, "/", 1);
    }
    return any_text(out, name, false) == 0;
}

/* ---- series updates ---- */

static lk_prom_series *series_for(lk_prom_mapper *m, lk_prom_family *f, uint64_t now_ms,
                                  struct lk_prom_map_stats *st, bool *created)
{
    int err = 0;
    if (render_key(m) < 0) {
        st->dropped[LK_PROM_DROP_INVALID]++;
        return NULL;
    }
    lk_prom_series *se = lk_prom_series_get(m->store, f, (const char *)m->key.data,
                                            m->key.len, now_ms, created, &err);
    if (se == NULL)
        st->dropped[err == LK_E2BIG ? LK_PROM_DROP_SERIES_LIMIT : LK_PROM_DROP_INVALID]++;
    else if (*created)
        st->new_series++;
    return se;
}

/* Decides what a point does to its series: 1 take it as it is (cumulative, or
 * the first of a series), 2 add it (delta), 0 drop it (counted). A
 * cumulative point with another start time begins the series anew. */
static int order_point(struct lk_prom_times *t, bool created, bool delta, uint64_t start,
                       uint64_t time, struct lk_prom_map_stats *st)
{
    if (created) {
        t->start_ns = start;
        t->time_ns = time;
        return 1;
    }
    if (delta) {
        /* Deltas must follow each other: a start before the last end
         * overlaps (or is a replay); without start times, order by time. */
        bool ok = start != 0 ? start >= t->time_ns : time > t->time_ns;
        if (!ok) {
            st->dropped[LK_PROM_DROP_OUT_OF_ORDER]++;
            return 0;
        }
        t->start_ns = start;
        t->time_ns = time;
        return 2;
    }
    if (start != t->start_ns && start > t->start_ns) { /* restarted */
        t->start_ns = start;
        t->time_ns = time;
        return 1;
    }
    if (time < t->time_ns) {
        st->dropped[LK_PROM_DROP_OUT_OF_ORDER]++;
        return 0;
    }
    t->time_ns = time;
    return 1;
}

typedef Opentelemetry__Proto__Metrics__V1__Exemplar Exemplar;

/* An OTLP exemplar as the store keeps it (ids only when they have the right length). */
static struct lk_pbexpo_exemplar exemplar_of(const Exemplar *x)
{
    struct lk_pbexpo_exemplar e = {
        .value = x->value_case == OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_INT
                     ? (double)x->as_int
                     : x->as_double,
        .time_ns = x->time_unix_nano,
    };
    if (x->trace_id.len == 16 && x->span_id.len == 8) {
        e.trace_id = x->trace_id.data;
        e.span_id = x->span_id.data;
    }
    return e;
}

/* Counters keep their newest exemplar; histograms one per bucket (the
 * bucket its value falls in). Exemplars without a value are skipped. */
static void take_exemplars(lk_prom_series *se, Exemplar **xs, size_t n, const double *bounds,
                           size_t nb, bool histogram)
{
    for (size_t i = 0; i < n; i++) {
        if (xs[i]->value_case == OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE__NOT_SET)
            continue;
        struct lk_pbexpo_exemplar e = exemplar_of(xs[i]);
        size_t b = 0;
        if (histogram)
            while (b < nb && !(e.value <= bounds[b]))
                b++;
        (void)lk_prom_series_exemplar(se, b, &e);
    }
}

/*
 * After add_label_kv (the text was |mark| bytes long before it): a label
 * with an empty value is taken back, as Prometheus treats it as absent; a
 * name the series format reserves (`__...`, or |reserved|: `le` of
 * histograms, `quantile` of summaries) gets the prefix `key_` instead of
 * clashing.
 */
static int settle_label(lk_prom_mapper *m, size_t mark, const char *reserved)
{
    struct label *l = &m->labels[m->nlabels - 1];
    const char *name = text_at(m, l->name_off);
    bool clash = (l->name_len >= 2 && name[0] == '_' && name[1] == '_') ||
                 (reserved != NULL && l->name_len == strlen(reserved) &&
                  memcmp(name, reserved, l->name_len) == 0);
    if (l->val_len == 0) {
        m->nlabels--;
        lk_buf_truncate(&m->text, mark);
        return 0;
    }
    if (!clash)
        return 0;
    size_t name_len = l->name_len;
    /* Through m->tmp: appending to m->text may move it. */
    lk_buf_reset(&m->tmp);
    int rc = lk_buf_append(&m->tmp, text_at(m, l->name_off), name_len);
    if (rc == 0)
        rc = lk_buf_append(&m->tmp, text_at(m, l->val_off), l->val_len);
    size_t no = m->text.len;
    if (rc == 0)
        rc = lk_buf_append(&m->text, "key_", 4);
    size_t vo = no + 4 + name_len;
    if (rc == 0)
        rc = lk_buf_append(&m->text, m->tmp.data, m->tmp.len);
    l = &m->labels[m->nlabels - 1];
    l->name_off = no;
    l->name_len = name_len + 4;
    l->val_off = vo;
    return rc;
}

/* The point's attributes as labels (settled as above). More than
 * MAX_POINT_ATTRS is refused (LK_E2BIG: the point is invalid), which also
 * bounds the label sort. */
static int add_point_attrs(lk_prom_mapper *m, KeyValue **attrs, size_t n,
                           const char *reserved)
{
    if (n > MAX_POINT_ATTRS)
        return LK_E2BIG;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t mark = m->text.len;
        rc = add_label_kv(m, attrs[i], 1);
        if (rc == 0)
            rc = settle_label(m, mark, reserved);
    }
    return rc;
}

/*
 * The series of a point with attributes |attrs| (|reserved| as for
 * settle_label) and what its times decide (order_point: 1 set, 2 add, 0
 * drop). NULL when the point can have no series (counted in |st|).
 */
static lk_prom_series *point_series(lk_prom_mapper *m, lk_prom_family *f, KeyValue **attrs,
                                    size_t nattrs, const char *reserved, uint64_t start,
                                    uint64_t time, bool delta, uint64_t now_ms,
                                    struct lk_prom_map_stats *st, bool *created, int *what,
                                    struct lk_prom_times *prev)
{
    reset_point_labels(m);
    if (add_point_attrs(m, attrs, nattrs, reserved) < 0) {
        st->dropped[LK_PROM_DROP_INVALID]++;
        return NULL;
    }
    lk_prom_series *se = series_for(m, f, now_ms, st, created);
    if (se != NULL) {
        *prev = *lk_prom_series_times(se);
        *what = order_point(lk_prom_series_times(se), *created, delta, start, time, st);
    }
    return se;
}

/* After a point's value went into |se| or not (|rc| < 0: refused as invalid,
 * counted): a taken point keeps the series alive; a refused one leaves it as
 * it was (times restored; a series made for it removed). */
static void point_done(lk_prom_mapper *m, lk_prom_series *se, bool created,
                       const struct lk_prom_times *prev, int what, int rc, uint64_t now_ms,
                       struct lk_prom_map_stats *st)
{
    if (rc < 0) {
        st->dropped[LK_PROM_DROP_INVALID]++;
        if (created)
            lk_prom_store_remove(m->store, se);
        else
            *lk_prom_series_times(se) = *prev;
    } else if (what != 0) {
        lk_prom_series_touch(m->store, se, now_ms);
        st->points++;
    }
}

lk_prom_series *lk__prom_number_point(lk_prom_mapper *m, lk_prom_family *f,
                                      const NumberPoint *p, bool delta, bool counter,
                                      uint64_t now_ms, struct lk_prom_map_stats *st)
{
    if (p->flags & FLAG_NO_RECORDED_VALUE)
        return NULL;
    double v;
    if (p->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE)
        v = p->as_double;
    else if (p->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT)
        v = (double)p->as_int;
    else {
        st->dropped[LK_PROM_DROP_INVALID]++;
        return NULL;
    }
    bool created;
    int what = 0;
    struct lk_prom_times prev;
    lk_prom_series *se = point_series(m, f, p->attributes, p->n_attributes, NULL,
                                      p->start_time_unix_nano, p->time_unix_nano, delta,
                                      now_ms, st, &created, &what, &prev);
    if (se == NULL)
        return NULL;
    if (what == 1)
        lk_prom_series_set(se, v);
    else if (what == 2)
        lk_prom_series_add(se, v);
    point_done(m, se, created, &prev, what, 0, now_ms, st);
    if (what != 0 && counter && p->n_exemplars > 0)
        take_exemplars(se, p->exemplars, p->n_exemplars, NULL, 0, false);
    return se;
}

void lk__prom_number_into(lk_prom_mapper *m, lk_prom_series *se, uint64_t start,
                          uint64_t time, double v, bool delta, uint64_t now_ms,
                          struct lk_prom_map_stats *st)
{
    struct lk_prom_times prev = *lk_prom_series_times(se);
    int what = order_point(lk_prom_series_times(se), false, delta, start, time, st);
    if (what == 1)
        lk_prom_series_set(se, v);
    else if (what == 2)
        lk_prom_series_add(se, v);
    point_done(m, se, false, &prev, what, 0, now_ms, st);
}

static void number_points(lk_prom_mapper *m, lk_prom_family *f, NumberPoint **pts, size_t n,
                          bool delta, bool counter, uint64_t now_ms,
                          struct lk_prom_map_stats *st)
{
    for (size_t i = 0; i < n; i++)
        (void)lk__prom_number_point(m, f, pts[i], delta, counter, now_ms, st);
}

static int reserve_buckets(lk_prom_mapper *m, size_t n)
{
    if (n <= m->capb)
        return 0;
    uint64_t *c = realloc(m->counts, (n + 1) * sizeof(*c));
    if (c == NULL)
        return LK_ENOMEM;
    m->counts = c;
    double *b = realloc(m->bounds, (n + 1) * sizeof(*b));
    if (b == NULL)
        return LK_ENOMEM;
    m->bounds = b;
    m->capb = n;
    return 0;
}

/* Takes a histogram point (bounds, per-bucket counts) into its series. */
static void hist_update(lk_prom_mapper *m, lk_prom_family *f, KeyValue **attrs, size_t nattrs,
                        uint64_t start, uint64_t time, const double *bounds, size_t nb,
                        const uint64_t *counts, double sum, uint64_t count, bool delta,
                        Exemplar **xs, size_t nxs, uint64_t now_ms,
                        struct lk_prom_map_stats *st)
{
    bool created;
    int what = 0;
    struct lk_prom_times prev;
    lk_prom_series *se = point_series(m, f, attrs, nattrs, "le", start, time, delta, now_ms,
                                      st, &created, &what, &prev);
    if (se == NULL)
        return;
    int rc = 0;
    if (what == 1)
        rc = lk_prom_series_hist_set(se, bounds, nb, counts, sum, count);
    else if (what == 2 && lk_prom_series_hist_add(se, bounds, nb, counts, sum, count) < 0)
        rc = lk_prom_series_hist_set(se, bounds, nb, counts, sum, count); /* new bounds */
    point_done(m, se, created, &prev, what, rc, now_ms, st);
    if (rc == 0 && what != 0)
        take_exemplars(se, xs, nxs, bounds, nb, true);
}

static void hist_points(lk_prom_mapper *m, lk_prom_family *f, HistPoint **pts, size_t n,
                        bool delta, uint64_t now_ms, struct lk_prom_map_stats *st)
{
    for (size_t i = 0; i < n; i++) {
        const HistPoint *p = pts[i];
        if (p->flags & FLAG_NO_RECORDED_VALUE)
            continue;
        size_t nb = p->n_explicit_bounds;
        uint64_t zero = 0;
        const uint64_t *counts = p->bucket_counts;
        if (p->n_bucket_counts == 0 && nb == 0) {
            counts = &p->count; /* only a count: one +Inf bucket */
        } else if (p->n_bucket_counts != nb + 1) {
            st->dropped[LK_PROM_DROP_INVALID]++;
            continue;
        }
        /* Finite and increasing: +Inf is the implicit last bucket, and a
         * second le="+Inf" (or NaN) would make the exposition invalid. */
        bool sorted = true;
        for (size_t k = 0; k < nb; k++)
            sorted = sorted && isfinite(p->explicit_bounds[k]) &&
                     (k == 0 || p->explicit_bounds[k - 1] < p->explicit_bounds[k]);
        if (!sorted) {
            st->dropped[LK_PROM_DROP_INVALID]++;
            continue;
        }
        (void)zero;
        double sum = p->_sum_case == OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM
                         ? p->sum
                         : 0;
        hist_update(m, f, p->attributes, p->n_attributes, p->start_time_unix_nano,
                    p->time_unix_nano, p->explicit_bounds, nb, counts, sum, p->count, delta,
                    p->exemplars, p->n_exemplars, now_ms, st);
    }
}

static void exp_points(lk_prom_mapper *m, lk_prom_family *f, ExpPoint **pts, size_t n,
                       bool delta, uint64_t now_ms, struct lk_prom_map_stats *st)
{
    for (size_t i = 0; i < n; i++) {
        const ExpPoint *p = pts[i];
        if (p->flags & FLAG_NO_RECORDED_VALUE)
            continue;
        struct lk_prom_exp e = {
            .scale = p->scale,
            .zero_threshold = p->zero_threshold,
            .zero_count = p->zero_count,
            .offset = {p->positive ? p->positive->offset : 0,
                       p->negative ? p->negative->offset : 0},
            .n = {p->positive ? p->positive->n_bucket_counts : 0,
                  p->negative ? p->negative->n_bucket_counts : 0},
            .counts = {p->positive ? p->positive->bucket_counts : NULL,
                       p->negative ? p->negative->bucket_counts : NULL},
        };
        /* Offsets near the int32 limits would overflow the index arithmetic. */
        bool ok = e.scale >= -10 && e.scale <= 20;
        for (int k = 0; k < 2; k++)
            ok = ok && e.offset[k] > INT32_MIN / 2 && e.offset[k] < INT32_MAX / 2 &&
                 e.n[k] < (size_t)1 << 24;
        if (!ok) {
            st->dropped[LK_PROM_DROP_INVALID]++;
            continue;
        }
        bool created;
        int what = 0;
        struct lk_prom_times prev;
        lk_prom_series *se = point_series(m, f, p->attributes, p->n_attributes, "le",
                                          p->start_time_unix_nano, p->time_unix_nano, delta,
                                          now_ms, st, &created, &what, &prev);
        if (se == NULL)
            continue;
        double sum = p->_sum_case ? p->sum : 0;
        int rc = 0;
        if (what == 1)
            rc = lk_prom_series_exp_set(se, &e, sum, p->count);
        else if (what == 2)
            rc = lk_prom_series_exp_add(se, &e, sum, p->count);
        point_done(m, se, created, &prev, what, rc, now_ms, st);
    }
}

static void summary_points(lk_prom_mapper *m, lk_prom_family *f, SummaryPoint **pts,
                           size_t n, uint64_t now_ms, struct lk_prom_map_stats *st)
{
    for (size_t i = 0; i < n; i++) {
        const SummaryPoint *p = pts[i];
        if (p->flags & FLAG_NO_RECORDED_VALUE)
            continue;
        size_t nq = p->n_quantile_values;
        if (reserve_buckets(m, nq) < 0) {
            st->dropped[LK_PROM_DROP_INVALID]++;
            continue;
        }
        double *vals = (double *)m->counts; /* same size as uint64_t */
        for (size_t k = 0; k < nq; k++) {
            m->bounds[k] = p->quantile_values[k]->quantile;
            vals[k] = p->quantile_values[k]->value;
        }
        bool created;
        int what = 0;
        struct lk_prom_times prev;
        lk_prom_series *se = point_series(m, f, p->attributes, p->n_attributes, "quantile",
                                          p->start_time_unix_nano, p->time_unix_nano, false,
                                          now_ms, st, &created, &what, &prev);
        if (se == NULL || what == 0)
            continue;
        int rc = lk_prom_series_summary_set(se, m->bounds, vals, nq, p->sum, p->count);
        point_done(m, se, created, &prev, what, rc, now_ms, st);
    }
}

static size_t metric_points(const Metric *mt)
{
    switch (mt->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        return mt->gauge ? mt->gauge->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        return mt->sum ? mt->sum->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        return mt->histogram ? mt->histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        return mt->exponential_histogram ? mt->exponential_histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        return mt->summary ? mt->summary->n_data_points : 0;
    default:
        return 0;
    }
}

lk_prom_family *lk__prom_family(lk_prom_mapper *m, const char *name, const char *unit,
                                const char *description, enum lk_prom_kind kind,
                                size_t npoints, struct lk_prom_map_stats *st)
{
    lk_buf_reset(&m->name);
    lk_buf_reset(&m->tmp);
    int err = lk_prom_metric_name(&m->name, name, unit, kind, m->o.add_suffixes);
    /* target_info (and "target", its OpenMetrics family) are lookout's. */
    if (err == 0 && ((m->name.len == 11 && memcmp(m->name.data, "target_info", 11) == 0) ||
                     (m->name.len == 6 && memcmp(m->name.data, "target", 6) == 0))) {
        st->dropped[LK_PROM_DROP_TYPE_CONFLICT] += npoints;
        return NULL;
    }
    if (err == 0)
        err = lk_prom_unit(&m->tmp, unit);
    if (err == 0)
        err = lk_buf_append(&m->tmp, "", 1);
    lk_prom_family *f = NULL;
    if (err == 0)
        f = lk_prom_family_get(m->store, (const char *)m->name.data, m->name.len, kind,
                               description, (const char *)m->tmp.data, &err);
    if (f == NULL)
        st->dropped[err == LK_EEXIST      ? LK_PROM_DROP_TYPE_CONFLICT
                    : err == LK_ERESERVED ? LK_PROM_DROP_RESERVED
                    : err == LK_E2BIG     ? LK_PROM_DROP_SERIES_LIMIT
                                          : LK_PROM_DROP_INVALID] += npoints;
    return f;
}

void lk__prom_apply_metric(lk_prom_mapper *m, const Metric *mt, uint64_t now_ms,
                           struct lk_prom_map_stats *st)
{
    enum lk_prom_kind kind;
    bool delta = false;
    switch (mt->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        kind = LK_PROM_GAUGE;
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        kind = mt->sum->is_monotonic ? LK_PROM_COUNTER : LK_PROM_GAUGE;
        delta = mt->sum->aggregation_temporality == DELTA;
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        kind = LK_PROM_HISTOGRAM;
        delta = mt->histogram->aggregation_temporality == DELTA;
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        kind = LK_PROM_HISTOGRAM;
        delta = mt->exponential_histogram->aggregation_temporality == DELTA;
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        kind = LK_PROM_SUMMARY;
        break;
    default:
        return;
    }
    lk_prom_family *f = lk__prom_family(m, mt->name, mt->unit, mt->description, kind,
                                        metric_points(mt), st);
    if (f == NULL)
        return;
    switch (mt->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        number_points(m, f, mt->gauge->data_points, mt->gauge->n_data_points, false, false,
                      now_ms, st);
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        number_points(m, f, mt->sum->data_points, mt->sum->n_data_points, delta,
                      kind == LK_PROM_COUNTER, now_ms, st);
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        hist_points(m, f, mt->histogram->data_points, mt->histogram->n_data_points, delta,
                    now_ms, st);
        break;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        exp_points(m, f, mt->exponential_histogram->data_points,
                   mt->exponential_histogram->n_data_points, delta, now_ms, st);
        break;
    default:
        summary_points(m, f, mt->summary->data_points, mt->summary->n_data_points, now_ms, st);
        break;
    }
}

static bool identifying(const char *key)
{
    return strcmp(key, "service.name") == 0 || strcmp(key, "service.namespace") == 0 ||
           strcmp(key, "service.instance.id") == 0;
}

/* Labels of the resource (job, instance, promoted) as the fixed labels; and
 * its target_info series. */
int lk__prom_resource_labels(lk_prom_mapper *m, const Resource *r, uint64_t now_ms,
                             struct lk_prom_map_stats *st)
{
    m->nlabels = 0;
    m->nfixed = 0;
    lk_buf_reset(&m->text);
    int rc = 0;
    if (resource_job(&m->tmp, r))
        rc = add_label_raw(m, "job", (const char *)m->tmp.data, m->tmp.len, "job", 0);
    const AnyValue *inst = resource_attr(r, "service.instance.id");
    if (rc == 0 && inst != NULL) {
        lk_buf_reset(&m->tmp);
        rc = any_text(&m->tmp, inst, false);
        if (rc == 0)
            rc = add_label_raw(m, "instance", (const char *)m->tmp.data, m->tmp.len,
                               "instance", 0);
    }
    size_t ident = m->nlabels;
    /* target_info: the other resource attributes, when there are any. */
    bool others = false;
    for (size_t i = 0; r != NULL && i < r->n_attributes; i++)
        others = others || !identifying(r->attributes[i]->key);
    if (rc == 0 && others && r->n_attributes > MAX_POINT_ATTRS)
        others = false; /* no target_info for an absurd resource */
    if (rc == 0 && others) {
        for (size_t i = 0; rc == 0 && i < r->n_attributes; i++) {
            if (identifying(r->attributes[i]->key))
                continue;
            size_t mark = m->text.len;
            rc = add_label_kv(m, r->attributes[i], 1);
            if (rc == 0)
                rc = settle_label(m, mark, NULL);
        }
        int err = 0;
        lk_prom_family *f = NULL;
        if (rc == 0)
            f = lk_prom_family_get(m->store, "target_info", 11, LK_PROM_GAUGE,
                                   "Target metadata", "", &err);
        bool created;
        lk_prom_series *se = f ? series_for(m, f, now_ms, st, &created) : NULL;
        if (se != NULL) {
            lk_prom_series_set(se, 1);
            lk_prom_series_touch(m->store, se, now_ms);
        }
        m->nlabels = ident;
        lk_buf_truncate(&m->text,
                        ident ? m->labels[ident - 1].val_off + m->labels[ident - 1].val_len : 0);
    }
    for (size_t k = 0; rc == 0 && k < m->o.npromote; k++)
        for (size_t i = 0; rc == 0 && r != NULL && i < r->n_attributes; i++)
            if (strcmp(r->attributes[i]->key, m->o.promote[k]) == 0 &&
                !identifying(r->attributes[i]->key)) {
                size_t mark = m->text.len;
                rc = add_label_kv(m, r->attributes[i], 0);
                if (rc == 0)
                    rc = settle_label(m, mark, NULL);
            }
    m->nfixed = m->nlabels;
    return rc;
}

int lk__prom_scope_labels(lk_prom_mapper *m, size_t resource_n, const Scope *sc)
{
    m->nlabels = resource_n;
    m->nfixed = resource_n;
    reset_point_labels(m);
    int rc = 0;
    if (sc != NULL && sc->name != NULL && sc->name[0] != '\0')
        rc = add_label_raw(m, "otel_scope_name", sc->name, strlen(sc->name), "otel_scope_name", 0);
    if (rc == 0 && sc != NULL && sc->version != NULL && sc->version[0] != '\0')
        rc = add_label_raw(m, "otel_scope_version", sc->version, strlen(sc->version),
                           "otel_scope_version", 0);
    m->nfixed = m->nlabels;
    return rc;
}

void lk__prom_scope_metrics_unpacked(lk_prom_mapper *m, size_t rn,
                                     const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm,
                                     uint64_t now_ms, struct lk_prom_map_stats *st)
{
    if (lk__prom_scope_labels(m, rn, sm->scope) < 0)
        return;
    for (size_t k = 0; k < sm->n_metrics; k++)
        lk__prom_apply_metric(m, sm->metrics[k], now_ms, st);
}

int lk__prom_resource_metrics_unpacked(
    lk_prom_mapper *m, const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm,
    uint64_t now_ms, struct lk_prom_map_stats *st)
{
    int rc = lk__prom_resource_labels(m, rm->resource, now_ms, st);
    size_t rn = m->nlabels;
    for (size_t j = 0; rc == 0 && j < rm->n_scope_metrics; j++)
        lk__prom_scope_metrics_unpacked(m, rn, rm->scope_metrics[j], now_ms, st);
    return rc;
}

int lk__prom_mapper_apply_unpacked(lk_prom_mapper *m, const uint8_t *body, size_t len,
                                   uint64_t now_ms, struct lk_prom_map_stats *st)
{
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *req =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
            &m->alloc, len, body);
    if (req == NULL) {
        lk__prom_arena_reset(&m->arena);
        return LK_EPROTO;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < req->n_resource_metrics; i++)
        rc = lk__prom_resource_metrics_unpacked(m, req->resource_metrics[i], now_ms, st);
    lk__prom_arena_reset(&m->arena);
    return rc;
}
