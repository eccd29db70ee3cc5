/*
 * lk_prom_mapper_apply: a walk over the wire bytes of an
 * ExportMetricsServiceRequest instead of unpacking it whole.
 *
 * Apps send the same series again and again, and the labels of a number
 * point depend only on its family, its resource and scope (the context) and
 * its attribute bytes. So the walk keeps a cache from (family, context, raw
 * attribute bytes) to the series, and a gauge or sum point whose attributes
 * are in it goes straight to its series: no unpacking, no label building.
 * Everything else takes the label path of prom_otlp.c on messages unpacked
 * by protobuf-c into the arena: a point missing from the cache (which then
 * joins it), a point with exemplars, resources and scopes (once per request),
 * and whole metrics of the other kinds.
 *
 * The cache holds series pointers, so it is emptied whenever the store's
 * epoch says something was removed. Contexts are compared by their bytes.
 *
 * Receivers validate requests before they get here; a malformed body is
 * applied up to the first error found and then refused with LK_EPROTO.
 */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/pbwire.h"
#include "exporters/prom_otlp_impl.h"

#define MAX_CTXS 256             /* distinct resource + scope pairs remembered */
#define MAX_ENTRIES (1u << 20)   /* cached attribute sets */
#define MIN_ENTRIES_CAP 1024

/* Field numbers (opentelemetry/proto/...). */
enum {
    REQ_RESOURCE_METRICS = 1,
    RM_RESOURCE = 1, RM_SCOPE_METRICS = 2,
    SM_SCOPE = 1, SM_METRICS = 2,
    MT_NAME = 1, MT_DESCRIPTION = 2, MT_UNIT = 3, MT_GAUGE = 5, MT_SUM = 7,
    MT_HISTOGRAM = 9, MT_EXP_HISTOGRAM = 10, MT_SUMMARY = 11,
    DATA_POINTS = 1, SUM_TEMPORALITY = 2, SUM_MONOTONIC = 3,
    NP_LABELS = 1, NP_START = 2, NP_TIME = 3, NP_AS_DOUBLE = 4, NP_EXEMPLARS = 5,
    NP_AS_INT = 6, NP_ATTRIBUTES = 7, NP_FLAGS = 8,
};

/* One field as read from the wire. */
struct field {
    uint32_t num;
    unsigned wt;
    uint64_t v;           /* varint, fixed64 and fixed32 values */
    const uint8_t *start; /* the tag */
    const uint8_t *data;  /* length-delimited: the bytes */
    size_t len;
};

static bool read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            *pp = p;
            return true;
        }
    }
    return false;
}

/* The next field at *pp; false at a malformed one. */
static bool next_field(const uint8_t **pp, const uint8_t *end, struct field *f)
{
    uint64_t tag;
    f->start = *pp;
    if (!read_varint(pp, end, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1fffffff)
        return false;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (unsigned)(tag & 7);
    const uint8_t *p = *pp;
    switch (f->wt) {
    case LK_PB_VARINT:
        return read_varint(pp, end, &f->v);
    case LK_PB_I64:
        if (end - p < 8)
            return false;
        f->v = 0;
        for (int i = 7; i >= 0; i--)
            f->v = f->v << 8 | p[i];
        *pp = p + 8;
        return true;
    case LK_PB_I32:
        if (end - p < 4)
            return false;
        f->v = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
               (uint64_t)p[3] << 24;
        *pp = p + 4;
        return true;
    case LK_PB_LEN:
        if (!read_varint(pp, end, &f->v) || f->v > (uint64_t)(end - *pp))
            return false;
        f->data = *pp;
        f->len = (size_t)f->v;
        *pp += f->len;
        return true;
    default:
        return false; /* groups */
    }
}

/* ---- the cache ---- */

static void clear_entries(lk_prom_mapper *m)
{
    for (size_t i = 0; i < m->capentries; i++) {
        free(m->entries[i].bytes);
        m->entries[i] = (struct wire_entry){0};
    }
    m->nentries = 0;
}

void lk__prom_wire_fini(lk_prom_mapper *m)
{
    clear_entries(m);
    free(m->entries);
    for (size_t i = 0; i < m->nctxs; i++)
        free(m->ctxs[i].bytes);
    free(m->ctxs);
    lk_buf_fini(&m->attrs);
    lk_buf_fini(&m->strs);
}

/* The id of the context of these resource and scope bytes, added when new;
 * UINT32_MAX when it cannot be remembered (then nothing is cached). */
static uint32_t context_id(lk_prom_mapper *m, const uint8_t *r, size_t rlen, const uint8_t *sc,
                           size_t slen)
{
    uint64_t h = lk_prom_hash(lk_prom_hash(rlen, r, rlen), sc, slen) | 1;
    for (size_t i = 0; i < m->nctxs; i++) {
        const struct wire_ctx *c = &m->ctxs[i];
        if (c->hash == h && c->rlen == rlen && c->len == rlen + slen &&
            (rlen == 0 || memcmp(c->bytes, r, rlen) == 0) &&
            (slen == 0 || memcmp(c->bytes + rlen, sc, slen) == 0))
            return (uint32_t)i;
    }
    if (m->ctxs == NULL) {
        m->ctxs = calloc(MAX_CTXS, sizeof(*m->ctxs));
        if (m->ctxs == NULL)
            return UINT32_MAX;
    }
    if (m->nctxs == MAX_CTXS) { /* many apps or churning scopes: start over */
        clear_entries(m);
        for (size_t i = 0; i < m->nctxs; i++)
            free(m->ctxs[i].bytes);
        m->nctxs = 0;
    }
    uint8_t *b = malloc(rlen + slen + 1);
    if (b == NULL)
        return UINT32_MAX;
    if (rlen > 0)
        memcpy(b, r, rlen);
    if (slen > 0)
        memcpy(b + rlen, sc, slen);
    m->ctxs[m->nctxs] = (struct wire_ctx){.hash = h, .len = rlen + slen, .bytes = b,
                                          .rlen = rlen};
    return (uint32_t)m->nctxs++;
}

static struct wire_entry *find_entry(lk_prom_mapper *m, uint64_t h, const lk_prom_family *f,
                                     uint32_t ctx, const uint8_t *a, size_t alen)
{
    if (m->capentries == 0)
        return NULL;
    size_t mask = m->capentries - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct wire_entry *e = &m->entries[i];
        if (e->hash == 0)
            return NULL;
        if (e->hash == h && e->fam == f && e->ctx == ctx && e->len == alen &&
            (alen == 0 || memcmp(e->bytes, a, alen) == 0))
            return e;
    }
}

static void put_entry(lk_prom_mapper *m, uint64_t h, lk_prom_family *f, uint32_t ctx,
                      const uint8_t *a, size_t alen, lk_prom_series *se)
{
    if (alen > UINT32_MAX)
        return;
    if (m->nentries >= MAX_ENTRIES)
        clear_entries(m);
    if (2 * (m->nentries + 1) > m->capentries) {
        size_t cap = m->capentries ? 2 * m->capentries : MIN_ENTRIES_CAP;
        struct wire_entry *t = calloc(cap, sizeof(*t));
        if (t == NULL)
            return; /* not cached: the label path still works */
        for (size_t i = 0; i < m->capentries; i++) {
            struct wire_entry *e = &m->entries[i];
            if (e->hash == 0)
                continue;
            size_t j = e->hash & (cap - 1);
            while (t[j].hash != 0)
                j = (j + 1) & (cap - 1);
            t[j] = *e;
        }
        free(m->entries);
        m->entries = t;
        m->capentries = cap;
    }
    uint8_t *b = malloc(alen + 1);
    if (b == NULL)
        return;
    if (alen > 0)
        memcpy(b, a, alen);
    size_t mask = m->capentries - 1, i = h & mask;
    while (m->entries[i].hash != 0)
        i = (i + 1) & mask;
    m->entries[i] = (struct wire_entry){.hash = h, .fam = f, .se = se, .ctx = ctx,
                                        .len = (uint32_t)alen, .bytes = b};
    m->nentries++;
}

/* ---- the walk ---- */

struct metric_ctx {
    lk_prom_family *fam;
    uint32_t ctx;
    bool delta, counter;
    uint64_t now_ms;
    struct lk_prom_map_stats *st;
};

static uint64_t key_hash(const struct metric_ctx *c, const uint8_t *a, size_t alen)
{
    uintptr_t fp = (uintptr_t)c->fam;
    uint64_t h = lk_prom_hash((uint64_t)fp * 31 + c->ctx, a, alen);
    return h != 0 ? h : 1;
}

/* A number point through the label path; it joins the cache. */
static int slow_point(lk_prom_mapper *m, const struct metric_ctx *c, const uint8_t *p,
                      size_t len, const uint8_t *a, size_t alen, bool cache)
{
    NumberPoint *np = opentelemetry__proto__metrics__v1__number_data_point__unpack(&m->alloc,
                                                                                   len, p);
    if (np == NULL)
        return LK_EPROTO;
    lk_prom_series *se = lk__prom_number_point(m, c->fam, np, c->delta, c->counter, c->now_ms,
                                               c->st);
    if (se != NULL && cache && c->ctx != UINT32_MAX &&
        m->epoch == lk_prom_store_epoch(m->store))
        put_entry(m, key_hash(c, a, alen), c->fam, c->ctx, a, alen, se);
    return 0;
}

static int number_point(lk_prom_mapper *m, const struct metric_ctx *c, const uint8_t *p,
                        size_t len)
{
    const uint8_t *q = p, *end = p + len;
    uint64_t start = 0, time = 0, flags = 0, bits = 0;
    int value = 0; /* 1 double, 2 int */
    const uint8_t *a0 = NULL, *a1 = NULL; /* attribute fields, when contiguous */
    bool contiguous = true, plain = true;
    struct field f;
    while (q < end) {
        if (!next_field(&q, end, &f))
            return LK_EPROTO;
        switch (f.num) {
        case NP_START:
        case NP_TIME:
        case NP_AS_DOUBLE:
        case NP_AS_INT:
            if (f.wt != LK_PB_I64) {
                plain = false;
                break;
            }
            if (f.num == NP_START)
                start = f.v;
            else if (f.num == NP_TIME)
                time = f.v;
            else {
                bits = f.v;
                value = f.num == NP_AS_DOUBLE ? 1 : 2;
            }
            break;
        case NP_FLAGS:
            if (f.wt != LK_PB_VARINT)
                plain = false;
            flags = f.v;
            break;
        case NP_ATTRIBUTES:
            if (f.wt != LK_PB_LEN) {
                plain = false;
                break;
            }
            if (a0 == NULL)
                a0 = f.start;
            else if (a1 != f.start)
                contiguous = false;
            a1 = q;
            break;
        default: /* exemplars, the old labels, unknown fields */
            plain = false;
            break;
        }
    }
    /* The attribute fields' bytes (tags included): the cache key. */
    const uint8_t *a = a0;
    size_t alen = a0 != NULL ? (size_t)(a1 - a0) : 0;
    if (!contiguous) {
        lk_buf_reset(&m->attrs);
        for (q = p; q < end;) {
            (void)next_field(&q, end, &f);
            if (f.num == NP_ATTRIBUTES && lk_buf_append(&m->attrs, f.start,
                                                        (size_t)(q - f.start)) < 0)
                return slow_point(m, c, p, len, NULL, 0, false);
        }
        a = m->attrs.data;
        alen = m->attrs.len;
    }
    if (!plain)
        return slow_point(m, c, p, len, a, alen, true);
    if (flags & FLAG_NO_RECORDED_VALUE)
        return 0;
    if (value == 0) {
        c->st->dropped[LK_PROM_DROP_INVALID]++;
        return 0;
    }
    if (m->epoch != lk_prom_store_epoch(m->store)) {
        clear_entries(m);
        m->epoch = lk_prom_store_epoch(m->store);
    }
    struct wire_entry *e = c->ctx == UINT32_MAX
                               ? NULL
                               : find_entry(m, key_hash(c, a, alen), c->fam, c->ctx, a, alen);
    if (e == NULL)
        return slow_point(m, c, p, len, a, alen, true);
    double v;
    if (value == 1)
        memcpy(&v, &bits, 8);
    else
        v = (double)(int64_t)bits;
    lk__prom_number_into(m, e->se, start, time, v, c->delta, c->now_ms, c->st);
    return 0;
}

/* Copies a string field into m->strs, NUL-terminated; returns its offset. */
static size_t put_str(lk_prom_mapper *m, const struct field *f, bool set, int *rc)
{
    size_t off = m->strs.len;
    if (*rc == 0 && set && f->len > 0)
        *rc = lk_buf_append(&m->strs, f->data, f->len);
    if (*rc == 0)
        *rc = lk_buf_append(&m->strs, "", 1);
    return off;
}

static int whole_metric(lk_prom_mapper *m, const uint8_t *p, size_t len, uint64_t now_ms,
                        struct lk_prom_map_stats *st)
{
    Metric *mt = opentelemetry__proto__metrics__v1__metric__unpack(&m->alloc, len, p);
    if (mt == NULL)
        return LK_EPROTO;
    lk__prom_apply_metric(m, mt, now_ms, st);
    return 0;
}

static int metric(lk_prom_mapper *m, uint32_t ctx, const uint8_t *p, size_t len,
                  uint64_t now_ms, struct lk_prom_map_stats *st)
{
    const uint8_t *q = p, *end = p + len;
    struct field f, name = {0}, desc = {0}, unit = {0}, data = {0};
    bool has_name = false, has_desc = false, has_unit = false, merged = false;
    while (q < end) {
        if (!next_field(&q, end, &f))
            return LK_EPROTO;
        bool len_field = f.wt == LK_PB_LEN;
        switch (f.num) {
        case MT_NAME:
            name = f;
            has_name = len_field;
            break;
        case MT_DESCRIPTION:
            desc = f;
            has_desc = len_field;
            break;
        case MT_UNIT:
            unit = f;
            has_unit = len_field;
            break;
        case MT_GAUGE:
        case MT_SUM:
        case MT_HISTOGRAM:
        case MT_EXP_HISTOGRAM:
        case MT_SUMMARY:
            /* The last member of the oneof wins; the same member twice is
             * merged (its points joined), which protobuf-c does for us. */
            merged = merged || data.num == f.num;
            data = f;
            break;
        default:
            break;
        }
        if (!len_field && f.num <= MT_SUMMARY)
            return whole_metric(m, p, len, now_ms, st); /* let protobuf-c judge */
    }
    if ((data.num != MT_GAUGE && data.num != MT_SUM) || merged)
        return whole_metric(m, p, len, now_ms, st);

    /* Temporality and monotonicity come after the points on the wire. */
    bool delta = false, monotonic = false;
    size_t npoints = 0;
    for (q = data.data, end = data.data + data.len; q < end;) {
        if (!next_field(&q, end, &f))
            return LK_EPROTO;
        if (f.num == DATA_POINTS && f.wt == LK_PB_LEN)
            npoints++;
        else if (data.num == MT_SUM && f.num == SUM_TEMPORALITY && f.wt == LK_PB_VARINT)
            delta = f.v == DELTA;
        else if (data.num == MT_SUM && f.num == SUM_MONOTONIC && f.wt == LK_PB_VARINT)
            monotonic = f.v != 0;
        else if (f.num <= SUM_MONOTONIC)
            return whole_metric(m, p, len, now_ms, st);
    }
    enum lk_prom_kind kind = data.num == MT_SUM && monotonic ? LK_PROM_COUNTER : LK_PROM_GAUGE;
    int rc = 0;
    lk_buf_reset(&m->strs);
    size_t no = put_str(m, &name, has_name, &rc);
    size_t uo = put_str(m, &unit, has_unit, &rc);
    size_t dof = put_str(m, &desc, has_desc, &rc);
    if (rc < 0)
        return rc;
    const char *s = (const char *)m->strs.data;
    struct metric_ctx c = {
        .ctx = ctx,
        .delta = data.num == MT_SUM && delta,
        .counter = kind == LK_PROM_COUNTER,
        .now_ms = now_ms,
        .st = st,
    };
    c.fam = lk__prom_family(m, s + no, s + uo, s + dof, kind, npoints, st);
    if (c.fam == NULL)
        return 0;
    for (q = data.data, end = data.data + data.len; rc == 0 && q < end;) {
        (void)next_field(&q, end, &f); /* checked above */
        if (f.num == DATA_POINTS)
            rc = number_point(m, &c, f.data, f.len);
    }
    return rc;
}

static int scope_metrics(lk_prom_mapper *m, size_t rn, const struct field *res,
                         const uint8_t *p, size_t len, uint64_t now_ms,
                         struct lk_prom_map_stats *st)
{
    const uint8_t *q = p, *end = p + len;
    struct field f, scope = {0};
    bool has_scope = false, merged = false;
    while (q < end) {
        if (!next_field(&q, end, &f))
            return LK_EPROTO;
        if (f.num == SM_SCOPE) {
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            merged = has_scope;
            scope = f;
            has_scope = true;
        }
    }
    if (merged) { /* two scope fields: protobuf merges them */
        Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm =
            opentelemetry__proto__metrics__v1__scope_metrics__unpack(&m->alloc, len, p);
        if (sm == NULL)
            return LK_EPROTO;
        lk__prom_scope_metrics_unpacked(m, rn, sm, now_ms, st);
        return 0;
    }
    const Scope *sc = NULL;
    if (has_scope) {
        sc = opentelemetry__proto__common__v1__instrumentation_scope__unpack(&m->alloc,
                                                                             scope.len,
                                                                             scope.data);
        if (sc == NULL)
            return LK_EPROTO;
    }
    int rc = lk__prom_scope_labels(m, rn, sc);
    uint32_t ctx = context_id(m, res->data, res->len, scope.data, has_scope ? scope.len : 0);
    for (q = p; rc == 0 && q < end;) {
        (void)next_field(&q, end, &f);
        if (f.num == SM_METRICS) {
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            rc = metric(m, ctx, f.data, f.len, now_ms, st);
        }
    }
    return rc;
}

static int resource_metrics(lk_prom_mapper *m, const uint8_t *p, size_t len, uint64_t now_ms,
                            struct lk_prom_map_stats *st)
{
    const uint8_t *q = p, *end = p + len;
    struct field f, res = {0};
    bool has_res = false, merged = false;
    while (q < end) {
        if (!next_field(&q, end, &f))
            return LK_EPROTO;
        if (f.num == RM_RESOURCE) {
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            merged = has_res;
            res = f;
            has_res = true;
        }
    }
    if (merged) { /* two resource fields: protobuf merges them */
        Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm =
            opentelemetry__proto__metrics__v1__resource_metrics__unpack(&m->alloc, len, p);
        return rm == NULL ? LK_EPROTO
                          : lk__prom_resource_metrics_unpacked(m, rm, now_ms, st);
    }
    const Resource *r = NULL;
    if (has_res) {
        r = opentelemetry__proto__resource__v1__resource__unpack(&m->alloc, res.len, res.data);
        if (r == NULL)
            return LK_EPROTO;
    }
    int rc = lk__prom_resource_labels(m, r, now_ms, st);
    size_t rn = m->nlabels;
    for (q = p; rc == 0 && q < end;) {
        (void)next_field(&q, end, &f);
        if (f.num == RM_SCOPE_METRICS) {
            if (f.wt != LK_PB_LEN)
                return LK_EPROTO;
            rc = scope_metrics(m, rn, &res, f.data, f.len, now_ms, st);
        }
    }
    return rc;
}

int lk_prom_mapper_apply(lk_prom_mapper *m, const uint8_t *body, size_t len,
                         uint64_t now_ms, struct lk_prom_map_stats *st)
{
    if (m->epoch != lk_prom_store_epoch(m->store)) {
        clear_entries(m);
        m->epoch = lk_prom_store_epoch(m->store);
    }
    const uint8_t *q = body, *end = body + len;
    struct field f;
    int rc = 0;
    while (rc == 0 && q < end) {
        if (!next_field(&q, end, &f)) {
            rc = LK_EPROTO;
            break;
        }
        if (f.num == REQ_RESOURCE_METRICS) {
            if (f.wt != LK_PB_LEN)
                rc = LK_EPROTO;
            else
                rc = resource_metrics(m, f.data, f.len, now_ms, st);
        }
        lk__prom_arena_reset(&m->arena);
    }
    lk__prom_arena_reset(&m->arena);
    return rc;
}
