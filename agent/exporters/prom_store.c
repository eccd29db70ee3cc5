/*
 * Series store of the prometheus exporter (see prom_store.h).
 *
 * Families live in an array kept sorted by name (there are few; binary
 * search). Series live in one chained hash table keyed by (family, label
 * set) and, for rendering, in their family's list in creation order. A
 * series is one allocation with its label text; histogram and summary
 * arrays are allocated when a series first gets them and reused after.
 */
#include "exporters/prom_store.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/membudget.h"
#include "core/pbexpo.h"
#include "core/selfmetrics.h"

#define MAX_HELP_BYTES 1024 /* of a family's HELP text (the metric's description) */

/* An exponential histogram's buckets at one scale: [0] positive, [1] negative. */
struct expstate {
    int32_t scale;
    double zero_threshold;
    uint64_t zero_count;
    int64_t off[2];
    size_t n[2];
    uint64_t *c[2];
};

struct exemplar {
    double value;
    uint64_t time_ns;
    uint8_t trace_id[16];
    uint8_t span_id[8];
    bool ids;
    bool set;
};

struct lk_prom_series {
    lk_prom_series *hnext;      /* hash chain */
    lk_prom_series *prev, *next; /* family list, creation order */
    lk_prom_family *fam;
    uint64_t hash;
    uint64_t updated_ms;
    struct lk_prom_times times;
    double value; /* gauge, counter; sum of histograms and summaries */
    uint64_t count;
    size_t n;        /* histogram bounds or summary quantiles */
    size_t cap;      /* of the arrays below */
    double *bounds;  /* histogram upper bounds; summary quantiles */
    uint64_t *counts; /* histogram: n + 1 per-bucket counts */
    double *qvalues;  /* summary: value per quantile */
    struct expstate *exp; /* exponential histograms; then bounds/counts are unused */
    struct exemplar *ex;  /* per bucket (histograms) or one (counters); NULL: none yet */
    size_t nex;
    size_t touched; /* index in the store's touched list + 1; 0: not in it */
    size_t labels_len;
    char labels[];
};

struct lk_prom_family {
    char *name;
    char *help;
    char *unit;
    enum lk_prom_kind kind;
    size_t nseries;
    lk_prom_series *head, *tail;
};

struct lk_prom_store {
    struct lk_prom_store_opts o;
    lk_prom_family **fams; /* sorted by name */
    size_t nfams, capfams;
    lk_prom_series **table;
    size_t nbuckets; /* power of two */
    size_t nseries;
    double *xb;      /* render scratch: an exponential histogram's classic bounds */
    uint64_t *xc;    /* and counts */
    size_t capx;
    uint64_t *nat[2]; /* protobuf render scratch: native buckets, [0] positive */
    size_t capnat[2];
    struct lk_pbexpo_exemplar *xv; /* and exemplar views per bucket */
    const struct lk_pbexpo_exemplar **xp;
    size_t capxv;
    uint64_t epoch;  /* counts removals of series and families */
    bool track;      /* keep the touched list */
    bool track_oom;  /* a series could not join it: report every series */
    lk_prom_series **touched;
    size_t ntouched, captouched;
};

/* Eight bytes per multiply: label sets are a few hundred bytes long. */
uint64_t lk_prom_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 32;
    }
    for (; n > 0; s++, n--)
        h = (h ^ *s) * 0x100000001b3ull;
    return h;
}

static uint64_t series_hash(const lk_prom_family *f, const char *labels, size_t len)
{
    uintptr_t fp = (uintptr_t)f;
    uint64_t h = lk_prom_hash(0xcbf29ce484222325ull, &fp, sizeof(fp));
    h = lk_prom_hash(h, labels, len);
    return h ^ (h >> 29);
}

lk_prom_store *lk_prom_store_create(const struct lk_prom_store_opts *o)
{
    lk_prom_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->o = *o;
    s->nbuckets = 1024;
    s->table = calloc(s->nbuckets, sizeof(*s->table));
    if (s->table == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

static void exp_free(struct expstate *x)
{
    if (x != NULL) {
        free(x->c[0]);
        free(x->c[1]);
        free(x);
    }
}

static void family_free(lk_prom_family *f);

/* What a series counts in the memory budget (LK_MEM_SERIES): itself, its
 * labels and its bucket arrays; exemplars and native buckets are left out. */
static size_t arrays_bytes(size_t cap)
{
    return cap == 0 ? 0 : cap * (sizeof(double) + sizeof(uint64_t)) + sizeof(uint64_t);
}

static size_t series_bytes(const lk_prom_series *se)
{
    return sizeof(*se) + se->labels_len + 1 + arrays_bytes(se->cap);
}

static void series_free(lk_prom_series *se)
{
    lk_mem_release(LK_MEM_SERIES, series_bytes(se));
    exp_free(se->exp);
    free(se->ex);
    free(se->bounds);
    free(se->counts);
    free(se->qvalues);
    free(se);
}

void lk_prom_store_destroy(lk_prom_store *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nfams; i++) {
        lk_prom_family *f = s->fams[i];
        for (lk_prom_series *se = f->head, *nx; se != NULL; se = nx) {
            nx = se->next;
            series_free(se);
        }
        family_free(f);
    }
    free(s->fams);
    free(s->table);
    free(s->xb);
    free(s->xc);
    free(s->touched);
    free(s->nat[0]);
    free(s->nat[1]);
    free(s->xv);
    free(s->xp);
    free(s);
}

/* Index of the first family whose name is >= |name|. */
static size_t family_pos(const lk_prom_store *s, const char *name, size_t nlen, bool *found)
{
    size_t lo = 0, hi = s->nfams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = s->fams[mid]->name;
        size_t mlen = strlen(m);
        int c = memcmp(m, name, mlen < nlen ? mlen : nlen);
        if (c == 0)
            c = mlen < nlen ? -1 : mlen > nlen ? 1 : 0;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->nfams && strlen(s->fams[lo]->name) == nlen &&
             memcmp(s->fams[lo]->name, name, nlen) == 0;
    return lo;
}

static char *dup_str(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* The family named |p| (|n| bytes), or NULL. */
static const lk_prom_family *family_find(const lk_prom_store *s, const char *p, size_t n)
{
    bool found;
    size_t pos = family_pos(s, p, n, &found);
    return found ? s->fams[pos] : NULL;
}

/*
 * Whether a new family |name| of |kind| would collide in OpenMetrics, where
 * a counter family is named without _total and its samples always end with
 * it: counter x_total and any x; counter x and any x_total; a gauge (etc.) x
 * and counter x_total; a gauge x_total and counter x.
 */
static bool om_clash(const lk_prom_store *s, const char *name, size_t nlen,
                     enum lk_prom_kind kind)
{
    char other[512];
    bool total = nlen > 6 && memcmp(name + nlen - 6, "_total", 6) == 0;
    const lk_prom_family *o = NULL;
    if (total) /* x_total: look at x */
        o = family_find(s, name, nlen - 6);
    if (o != NULL && (kind == LK_PROM_COUNTER || o->kind == LK_PROM_COUNTER))
        return true;
    if (nlen + 6 <= sizeof(other)) { /* x: look at x_total */
        memcpy(other, name, nlen);
        memcpy(other + nlen, "_total", 6);
        o = family_find(s, other, nlen + 6);
        if (o != NULL && (kind == LK_PROM_COUNTER || o->kind == LK_PROM_COUNTER))
            return true;
    }
    return false;
}

lk_prom_family *lk_prom_family_get(lk_prom_store *s, const char *name, size_t nlen,
                                   enum lk_prom_kind kind, const char *help,
                                   const char *unit, int *err)
{
    bool found;
    size_t pos = family_pos(s, name, nlen, &found);
    if (found) {
        lk_prom_family *f = s->fams[pos];
        if (f->kind != kind) {
            *err = LK_EEXIST;
            return NULL;
        }
        return f;
    }
    if (s->o.reserved != NULL && s->o.reserved(s->o.reserved_arg, name, nlen)) {
        *err = LK_ERESERVED;
        return NULL;
    }
    if (om_clash(s, name, nlen, kind)) {
        *err = LK_EEXIST;
        return NULL;
    }
    /* A new family would hold a new series: past max_series it never will. */
    if (s->o.max_series != 0 && s->nseries >= s->o.max_series) {
        *err = LK_E2BIG;
        return NULL;
    }
    size_t hlen = help ? strlen(help) : 0;
    if (hlen > MAX_HELP_BYTES) { /* cut at a UTF-8 boundary */
        hlen = MAX_HELP_BYTES;
        while (hlen > 0 && ((unsigned char)help[hlen] & 0xc0) == 0x80)
            hlen--;
    }
    if (s->nfams == s->capfams) {
        size_t cap = s->capfams ? s->capfams * 2 : 16;
        lk_prom_family **nf = realloc(s->fams, cap * sizeof(*nf));
        if (nf == NULL) {
            *err = LK_ENOMEM;
            return NULL;
        }
        s->fams = nf;
        s->capfams = cap;
    }
    lk_prom_family *f = calloc(1, sizeof(*f));
    if (f != NULL) {
        f->name = dup_str(name, nlen);
        f->help = dup_str(help ? help : "", hlen);
        f->unit = dup_str(unit ? unit : "", unit ? strlen(unit) : 0);
    }
    if (f == NULL || f->name == NULL || f->help == NULL || f->unit == NULL) {
        if (f != NULL) {
            free(f->name);
            free(f->help);
            free(f->unit);
            free(f);
        }
        *err = LK_ENOMEM;
        return NULL;
    }
    f->kind = kind;
    memmove(s->fams + pos + 1, s->fams + pos, (s->nfams - pos) * sizeof(*s->fams));
    s->fams[pos] = f;
    s->nfams++;
    return f;
}

/* Doubles the hash table; on allocation failure it just stays as it is. */
static void grow_table(lk_prom_store *s)
{
    size_t nb = s->nbuckets * 2;
    lk_prom_series **t = calloc(nb, sizeof(*t));
    if (t == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (lk_prom_series *se = s->table[i], *nx; se != NULL; se = nx) {
            nx = se->hnext;
            size_t b = se->hash & (nb - 1);
            se->hnext = t[b];
            t[b] = se;
        }
    }
    free(s->table);
    s->table = t;
    s->nbuckets = nb;
}

lk_prom_series *lk_prom_series_get(lk_prom_store *s, lk_prom_family *f,
                                   const char *labels, size_t len, uint64_t now_ms,
                                   bool *created, int *err)
{
    uint64_t h = series_hash(f, labels, len);
    *created = false;
    for (lk_prom_series *se = s->table[h & (s->nbuckets - 1)]; se != NULL;
         se = se->hnext) {
        if (se->hash == h && se->fam == f && se->labels_len == len &&
            (len == 0 || memcmp(se->labels, labels, len) == 0))
            return se;
    }
    if (s->o.max_series != 0 && s->nseries >= s->o.max_series) {
        *err = LK_E2BIG;
        return NULL;
    }
    lk_prom_series *se = calloc(1, sizeof(*se) + len + 1);
    if (se == NULL) {
        *err = LK_ENOMEM;
        return NULL;
    }
    se->fam = f;
    se->hash = h;
    se->updated_ms = now_ms;
    se->labels_len = len;
    if (len > 0)
        memcpy(se->labels, labels, len);
    lk_mem_charge(LK_MEM_SERIES, series_bytes(se));
    size_t b = h & (s->nbuckets - 1);
    se->hnext = s->table[b];
    s->table[b] = se;
    se->prev = f->tail;
    if (f->tail != NULL)
        f->tail->next = se;
    else
        f->head = se;
    f->tail = se;
    f->nseries++;
    s->nseries++;
    if (s->nseries > s->nbuckets)
        grow_table(s);
    *created = true;
    return se;
}

void lk_prom_series_touch(lk_prom_store *s, lk_prom_series *se, uint64_t now_ms)
{
    se->updated_ms = now_ms;
    if (!s->track || se->touched != 0)
        return;
    if (s->ntouched == s->captouched) {
        size_t cap = s->captouched ? 2 * s->captouched : 256;
        lk_prom_series **t = realloc(s->touched, cap * sizeof(*t));
        if (t == NULL) {
            s->track_oom = true;
            return;
        }
        s->touched = t;
        s->captouched = cap;
    }
    s->touched[s->ntouched++] = se;
    se->touched = s->ntouched;
}

void lk_prom_store_track(lk_prom_store *s, bool on)
{
    s->track = on;
}

lk_prom_series *const *lk_prom_store_touched(const lk_prom_store *s, size_t *n,
                                              bool *incomplete)
{
    *n = s->ntouched;
    *incomplete = s->track_oom;
    return s->touched;
}

void lk_prom_store_clear_touched(lk_prom_store *s)
{
    for (size_t i = 0; i < s->ntouched; i++)
        s->touched[i]->touched = 0;
    s->ntouched = 0;
    s->track_oom = false;
}

/* Takes |se| out of the touched list (the last entry moves into its place). */
static void untouch(lk_prom_store *s, lk_prom_series *se)
{
    if (se->touched == 0)
        return;
    size_t i = se->touched - 1;
    lk_prom_series *last = s->touched[--s->ntouched];
    s->touched[i] = last;
    last->touched = i + 1;
    se->touched = 0;
}

struct lk_prom_times *lk_prom_series_times(lk_prom_series *se)
{
    return &se->times;
}

void lk_prom_series_set(lk_prom_series *se, double v)
{
    se->value = v;
}

void lk_prom_series_add(lk_prom_series *se, double v)
{
    se->value += v;
}

double lk_prom_series_value(const lk_prom_series *se)
{
    return se->value;
}

/* Makes room for |n| entries in the arrays this kind uses. */
static int reserve(lk_prom_series *se, size_t n, bool hist)
{
    if (n <= se->cap && (hist ? se->counts != NULL || n == 0 : se->qvalues != NULL || n == 0))
        return 0;
    size_t cap = n < 4 ? 4 : n;
    double *b = realloc(se->bounds, cap * sizeof(*b));
    if (b == NULL)
        return LK_ENOMEM;
    se->bounds = b;
    if (hist) {
        uint64_t *c = realloc(se->counts, (cap + 1) * sizeof(*c));
        if (c == NULL)
            return LK_ENOMEM;
        se->counts = c;
    } else {
        double *q = realloc(se->qvalues, cap * sizeof(*q));
        if (q == NULL)
            return LK_ENOMEM;
        se->qvalues = q;
    }
    if (cap >= se->cap)
        lk_mem_charge(LK_MEM_SERIES, arrays_bytes(cap) - arrays_bytes(se->cap));
    else
        lk_mem_release(LK_MEM_SERIES, arrays_bytes(se->cap) - arrays_bytes(cap));
    se->cap = cap;
    return 0;
}

int lk_prom_series_hist_set(lk_prom_series *se, const double *bounds, size_t nbounds,
                            const uint64_t *counts, double sum, uint64_t count)
{
    int rc = reserve(se, nbounds, true);
    if (rc < 0)
        return rc;
    exp_free(se->exp); /* a classic point replaces an exponential state */
    se->exp = NULL;
    if (nbounds != se->n || (nbounds > 0 && se->bounds != NULL &&
                             memcmp(se->bounds, bounds, nbounds * sizeof(*bounds)) != 0)) {
        /* bucket indices change meaning */
        free(se->ex);
        se->ex = NULL;
        se->nex = 0;
    }
    if (se->counts == NULL) { /* nbounds == 0 and never reserved */
        se->counts = calloc(1, sizeof(*se->counts));
        if (se->counts == NULL)
            return LK_ENOMEM;
    }
    if (nbounds > 0)
        memcpy(se->bounds, bounds, nbounds * sizeof(*bounds));
    memcpy(se->counts, counts, (nbounds + 1) * sizeof(*counts));
    se->n = nbounds;
    se->value = sum;
    se->count = count;
    return 0;
}

int lk_prom_series_hist_add(lk_prom_series *se, const double *bounds, size_t nbounds,
                            const uint64_t *counts, double sum, uint64_t count)
{
    if (se->counts == NULL && se->exp == NULL)
        return lk_prom_series_hist_set(se, bounds, nbounds, counts, sum, count);
    if (se->exp != NULL || nbounds != se->n ||
        (nbounds > 0 && memcmp(bounds, se->bounds, nbounds * sizeof(*bounds)) != 0))
        return LK_EINVAL;
    for (size_t i = 0; i <= nbounds; i++)
        se->counts[i] += counts[i];
    se->value += sum;
    se->count += count;
    return 0;
}

int lk_prom_series_exemplar(lk_prom_series *se, size_t i, const struct lk_pbexpo_exemplar *x)
{
    if (i >= se->nex) {
        struct exemplar *e = realloc(se->ex, (i + 1) * sizeof(*e));
        if (e == NULL)
            return LK_ENOMEM;
        memset(e + se->nex, 0, (i + 1 - se->nex) * sizeof(*e));
        se->ex = e;
        se->nex = i + 1;
    }
    struct exemplar *e = &se->ex[i];
    if (e->set && x->time_ns < e->time_ns)
        return 0;
    e->set = true;
    e->value = x->value;
    e->time_ns = x->time_ns;
    e->ids = x->trace_id != NULL && x->span_id != NULL;
    if (e->ids) {
        memcpy(e->trace_id, x->trace_id, 16);
        memcpy(e->span_id, x->span_id, 8);
    }
    return 0;
}

/* floor(v / 2^d), whatever the sign. */
static int64_t shr(int64_t v, int d)
{
    return v >= 0 ? v >> d : -((-v - 1) >> d) - 1;
}

/* Bucket index range [lo, hi] of one side after downscaling by |d|; false when empty. */
static bool side_range(int64_t off, size_t n, int d, int64_t *lo, int64_t *hi)
{
    if (n == 0)
        return false;
    *lo = shr(off, d);
    *hi = shr(off + (int64_t)n - 1, d);
    return true;
}

/* Adds |e| to |x| at the coarser of both scales, lowered further until the
 * buckets fit LK_PROM_EXP_MAX_BUCKETS. */
static int exp_merge(struct expstate *x, const struct lk_prom_exp *e)
{
    int32_t sc = x->scale < e->scale ? x->scale : e->scale;
    int64_t lo[2], hi[2];
    bool any[2];
    for (;;) {
        size_t total = 0;
        for (int k = 0; k < 2; k++) {
            int64_t l1 = 0, h1 = 0, l2 = 0, h2 = 0;
            bool a = side_range(x->off[k], x->n[k], x->scale - sc, &l1, &h1);
            bool b = side_range(e->offset[k], e->n[k], e->scale - sc, &l2, &h2);
            any[k] = a || b;
            lo[k] = a && b ? (l1 < l2 ? l1 : l2) : a ? l1 : l2;
            hi[k] = a && b ? (h1 > h2 ? h1 : h2) : a ? h1 : h2;
            if (any[k])
                total += (size_t)(hi[k] - lo[k] + 1);
        }
        if (total <= LK_PROM_EXP_MAX_BUCKETS)
            break;
        if (sc <= -10)
            return LK_EINVAL; /* buckets too far apart even at the coarsest scale */
        sc--;
    }
    /* Every bound base^index (and base^(index+1)) must be a finite, normal
     * double: |index| * 2^-scale within the exponent range. */
    for (int k = 0; k < 2; k++) {
        if (!any[k])
            continue;
        double e_lo = ldexp((double)lo[k], -sc), e_hi = ldexp((double)hi[k] + 1, -sc);
        if (e_lo <= -1021 || e_hi >= 1023)
            return LK_EINVAL;
    }
    for (int k = 0; k < 2; k++) {
        uint64_t *c = NULL;
        size_t n = any[k] ? (size_t)(hi[k] - lo[k] + 1) : 0;
        if (n > 0 && (c = calloc(n, sizeof(*c))) == NULL)
            return LK_ENOMEM;
        for (size_t i = 0; i < x->n[k]; i++)
            c[shr(x->off[k] + (int64_t)i, x->scale - sc) - lo[k]] += x->c[k][i];
        for (size_t i = 0; i < e->n[k]; i++)
            c[shr(e->offset[k] + (int64_t)i, e->scale - sc) - lo[k]] += e->counts[k][i];
        free(x->c[k]);
        x->c[k] = c;
        x->n[k] = n;
        x->off[k] = n > 0 ? lo[k] : 0;
    }
    x->scale = sc;
    x->zero_count += e->zero_count;
    if (e->zero_threshold > x->zero_threshold)
        x->zero_threshold = e->zero_threshold;
    return 0;
}

int lk_prom_series_exp_add(lk_prom_series *se, const struct lk_prom_exp *e, double sum,
                           uint64_t count)
{
    if (e->scale < -10 || e->scale > 20)
        return LK_EINVAL;
    bool fresh = se->exp == NULL;
    if (fresh) {
        se->exp = calloc(1, sizeof(*se->exp));
        if (se->exp == NULL)
            return LK_ENOMEM;
        se->exp->scale = e->scale;
    }
    int rc = exp_merge(se->exp, e);
    if (rc == 0 && fresh) {
        se->value = 0;
        se->count = 0;
    }
    if (rc == 0) {
        se->value += sum;
        se->count += count;
    } else if (fresh) { /* nothing taken: no state either */
        exp_free(se->exp);
        se->exp = NULL;
    }
    return rc;
}

int lk_prom_series_exp_set(lk_prom_series *se, const struct lk_prom_exp *e, double sum,
                           uint64_t count)
{
    if (e->scale < -10 || e->scale > 20)
        return LK_EINVAL;
    /* Into a fresh state first: a refused point leaves the series as it was. */
    struct expstate *old = se->exp;
    double old_value = se->value;
    uint64_t old_count = se->count;
    se->exp = NULL;
    int rc = lk_prom_series_exp_add(se, e, sum, count);
    if (rc < 0) {
        se->exp = old;
        se->value = old_value;
        se->count = old_count;
        return rc;
    }
    exp_free(old);
    return 0;
}

int lk_prom_series_summary_set(lk_prom_series *se, const double *quantiles,
                               const double *values, size_t n, double sum,
                               uint64_t count)
{
    int rc = reserve(se, n, false);
    if (rc < 0)
        return rc;
    if (n > 0) {
        memcpy(se->bounds, quantiles, n * sizeof(*quantiles));
        memcpy(se->qvalues, values, n * sizeof(*values));
    }
    se->n = n;
    se->value = sum;
    se->count = count;
    return 0;
}

static void series_unlink(lk_prom_store *s, lk_prom_series *se)
{
    s->epoch++;
    lk_prom_series **pp = &s->table[se->hash & (s->nbuckets - 1)];
    while (*pp != se)
        pp = &(*pp)->hnext;
    *pp = se->hnext;
    lk_prom_family *f = se->fam;
    if (se->prev != NULL)
        se->prev->next = se->next;
    else
        f->head = se->next;
    if (se->next != NULL)
        se->next->prev = se->prev;
    else
        f->tail = se->prev;
    f->nseries--;
    s->nseries--;
}

static void family_free(lk_prom_family *f)
{
    free(f->name);
    free(f->help);
    free(f->unit);
    free(f);
}

size_t lk_prom_store_expire(lk_prom_store *s, uint64_t now_ms)
{
    uint64_t cutoff = s->o.expiration_ms == 0 || now_ms < s->o.expiration_ms
                          ? 0
                          : now_ms - s->o.expiration_ms;
    size_t gone = 0, kept = 0;
    for (size_t i = 0; i < s->nfams; i++) {
        lk_prom_family *f = s->fams[i];
        for (lk_prom_series *se = f->head, *nx; cutoff != 0 && se != NULL; se = nx) {
            nx = se->next;
            if (se->updated_ms < cutoff) {
                untouch(s, se);
                series_unlink(s, se);
                series_free(se);
                gone++;
            }
        }
        /* Families without series go too (names that churn, points refused). */
        if (f->nseries == 0) {
            family_free(f);
            s->epoch++;
        }
        else
            s->fams[kept++] = f;
    }
    s->nfams = kept;
    return gone;
}

void lk_prom_store_remove(lk_prom_store *s, lk_prom_series *se)
{
    untouch(s, se);
    series_unlink(s, se);
    series_free(se);
}

size_t lk_prom_store_series_count(const lk_prom_store *s)
{
    return s->nseries;
}

/* ---- rendering ---- */

/* Integral values (most counters) skip the printf search for the shortest form. */
static int append_value(lk_buf *out, double v)
{
    char tmp[40];
    int n;
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        char *p = tmp + sizeof(tmp);
        uint64_t u = (uint64_t)fabs(v);
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (v < 0)
            *--p = '-';
        return lk_buf_append(out, p, (size_t)(tmp + sizeof(tmp) - p));
    }
    n = lk_metrics_format_double(tmp, sizeof(tmp), v);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return LK_EINVAL;
    return lk_buf_append(out, tmp, (size_t)n);
}

/* `name suffix {labels[,extra]} ` */
static int append_sample_start(lk_buf *out, const lk_prom_family *f, const char *suffix,
                               const lk_prom_series *se, const char *extra)
{
    int rc = lk_buf_append_str(out, f->name);
    if (rc == 0 && suffix != NULL)
        rc = lk_buf_append_str(out, suffix);
    bool any = se->labels_len > 0 || extra != NULL;
    if (rc == 0 && any) {
        rc = lk_buf_append(out, "{", 1);
        if (rc == 0)
            rc = lk_buf_append(out, se->labels, se->labels_len);
        if (rc == 0 && extra != NULL) {
            if (se->labels_len > 0)
                rc = lk_buf_append(out, ",", 1);
            if (rc == 0)
                rc = lk_buf_append_str(out, extra);
        }
        if (rc == 0)
            rc = lk_buf_append(out, "}", 1);
    }
    if (rc == 0)
        rc = lk_buf_append(out, " ", 1);
    return rc;
}

static int append_hex(lk_buf *out, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char t[32];
    for (size_t i = 0; i < n; i++) {
        t[2 * i] = hex[p[i] >> 4];
        t[2 * i + 1] = hex[p[i] & 15];
    }
    return lk_buf_append(out, t, 2 * n);
}

/* A sample's value, then (OpenMetrics) ` # {trace_id="..",span_id=".."} value ts`. */
static int append_value_exemplar(lk_buf *out, double v, const struct lk_pbexpo_exemplar *e)
{
    int rc = append_value(out, v);
    if (rc == 0 && e != NULL) {
        rc = lk_buf_append_str(out, " # {");
        if (rc == 0 && e->trace_id != NULL) {
            rc = lk_buf_append_str(out, "trace_id=\"");
            if (rc == 0)
                rc = append_hex(out, e->trace_id, 16);
            if (rc == 0)
                rc = lk_buf_append_str(out, "\",span_id=\"");
            if (rc == 0)
                rc = append_hex(out, e->span_id, 8);
            if (rc == 0)
                rc = lk_buf_append(out, "\"", 1);
        }
        if (rc == 0)
            rc = lk_buf_append_str(out, "} ");
        if (rc == 0)
            rc = append_value(out, e->value);
        if (rc == 0 && e->time_ns != 0)
            rc = lk_buf_printf(out, " %llu.%09llu",
                               (unsigned long long)(e->time_ns / 1000000000u),
                               (unsigned long long)(e->time_ns % 1000000000u));
    }
    return rc == 0 ? lk_buf_append(out, "\n", 1) : rc;
}

/*
 * |x| as classic buckets in s->xb (*nb bounds) and s->xc (*nb + 1 counts):
 * negative buckets (upper bounds -base^index, most negative first), the zero
 * bucket (upper bound zero_threshold, or 0 when that does not fit below the
 * first positive bound), positive buckets (upper bounds base^(index+1)), +Inf
 * (empty).
 */
static int exp_classic(lk_prom_store *s, const struct expstate *x, size_t *nb)
{
    size_t n = x->n[1] + 1 + x->n[0];
    if (n + 1 > s->capx) {
        double *b = realloc(s->xb, (n + 1) * sizeof(*b));
        if (b == NULL)
            return LK_ENOMEM;
        s->xb = b;
        uint64_t *c = realloc(s->xc, (n + 1) * sizeof(*c));
        if (c == NULL)
            return LK_ENOMEM;
        s->xc = c;
        s->capx = n + 1;
    }
    double base = pow(2.0, pow(2.0, -x->scale));
    size_t k = 0;
    for (size_t i = x->n[1]; i-- > 0;) {
        s->xb[k] = -pow(base, (double)(x->off[1] + (int64_t)i));
        s->xc[k++] = x->c[1][i];
    }
    double first_pos = x->n[0] > 0 ? pow(base, (double)(x->off[0] + 1)) : INFINITY;
    s->xb[k] = x->zero_threshold > 0 && x->zero_threshold < first_pos ? x->zero_threshold : 0;
    s->xc[k++] = x->zero_count;
    for (size_t i = 0; i < x->n[0]; i++) {
        s->xb[k] = pow(base, (double)(x->off[0] + (int64_t)i + 1));
        s->xc[k++] = x->c[0][i];
    }
    s->xc[k] = 0;
    *nb = n;
    return 0;
}

/* The exemplar of bucket (or counter) |i| of |se| as callers see it, in |v|. */
static const struct lk_pbexpo_exemplar *exemplar_view(const lk_prom_series *se, size_t i,
                                                    struct lk_pbexpo_exemplar *v)
{
    if (i >= se->nex || !se->ex[i].set)
        return NULL;
    const struct exemplar *e = &se->ex[i];
    v->value = e->value;
    v->time_ns = e->time_ns;
    v->trace_id = e->ids ? e->trace_id : NULL;
    v->span_id = e->ids ? e->span_id : NULL;
    return v;
}

int lk_prom_series_samples(lk_prom_store *s, const lk_prom_series *se, bool exemplars,
                           bool om, int (*fn)(void *arg, const struct lk_prom_sample *smp),
                           void *arg)
{
    const lk_prom_family *f = se->fam;
    struct lk_pbexpo_exemplar xv;
    struct lk_prom_sample smp = {0};
    int rc = 0;
    switch (f->kind) {
    case LK_PROM_GAUGE:
        smp.value = se->value;
        return fn(arg, &smp);
    case LK_PROM_COUNTER:
        smp.value = se->value;
        smp.exemplar = exemplars ? exemplar_view(se, 0, &xv) : NULL;
        return fn(arg, &smp);
    case LK_PROM_HISTOGRAM: {
        const double *bounds = se->bounds;
        const uint64_t *counts = se->counts;
        size_t nb = se->n;
        if (se->exp != NULL) {
            rc = exp_classic(s, se->exp, &nb);
            bounds = s->xb;
            counts = s->xc;
        }
        if (rc < 0 || counts == NULL)
            return rc;
        uint64_t cum = 0;
        smp.suffix = "_bucket";
        smp.extra = "le";
        for (size_t i = 0; rc == 0 && i <= nb; i++) {
            cum += counts[i];
            smp.extra_value = i < nb ? bounds[i] : INFINITY;
            smp.value = (double)cum;
            smp.exemplar = exemplars && se->exp == NULL ? exemplar_view(se, i, &xv) : NULL;
            rc = fn(arg, &smp);
        }
        break;
    }
    case LK_PROM_SUMMARY:
        smp.extra = "quantile";
        for (size_t i = 0; rc == 0 && i < se->n; i++) {
            smp.extra_value = se->bounds[i];
            smp.value = se->qvalues[i];
            rc = fn(arg, &smp);
        }
        break;
    }
    smp.extra = NULL;
    smp.exemplar = NULL;
    /* OpenMetrics: a histogram with negative observations has no _sum. */
    bool negative = f->kind == LK_PROM_HISTOGRAM &&
                    ((se->exp != NULL && se->exp->n[1] > 0) ||
                     (se->exp == NULL && se->n > 0 && se->bounds[0] < 0 && se->counts[0] > 0));
    if (rc == 0 && !(om && negative)) {
        smp.suffix = "_sum";
        smp.value = se->value;
        rc = fn(arg, &smp);
    }
    if (rc == 0) {
        smp.suffix = "_count";
        smp.value = (double)se->count;
        rc = fn(arg, &smp);
    }
    return rc;
}

/* Renders one series' samples in the text formats. */
struct text_sink {
    lk_buf *out;
    const lk_prom_family *f;
    const lk_prom_series *se;
    const char *counter_suffix;
};

static int text_sample(void *arg, const struct lk_prom_sample *smp)
{
    struct text_sink *t = arg;
    char extra[64];
    const char *suffix = smp->suffix;
    if (t->f->kind == LK_PROM_COUNTER)
        suffix = t->counter_suffix;
    if (smp->extra != NULL) {
        char v[40];
        int n = lk_metrics_format_double(v, sizeof(v), smp->extra_value);
        if (n < 0 || (size_t)n >= sizeof(v))
            return LK_EINVAL;
        snprintf(extra, sizeof(extra), "%s=\"%s\"", smp->extra, v);
    }
    int rc = append_sample_start(t->out, t->f, suffix, t->se,
                                 smp->extra != NULL ? extra : NULL);
    return rc ? rc : append_value_exemplar(t->out, smp->value, smp->exemplar);
}

/* |counter_suffix|: what OpenMetrics adds to a counter family's name for its
 * samples ("_total", or "" when the name already ends with it). */
static int render_series(lk_prom_store *s, lk_buf *out, const lk_prom_family *f,
                         const lk_prom_series *se, bool om, const char *counter_suffix)
{
    struct text_sink t = {.out = out, .f = f, .se = se,
                          .counter_suffix = om ? counter_suffix : NULL};
    return lk_prom_series_samples(s, se, om, om, text_sample, &t);
}

static const char *const kind_names[] = {"gauge", "counter", "histogram", "summary"};

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

int lk_prom_store_render(lk_prom_store *s, lk_buf *out, bool om)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->nfams; i++) {
        const lk_prom_family *f = s->fams[i];
        if (f->nseries == 0)
            continue;
        /* OpenMetrics: a counter family's name lacks the _total of its samples;
         * target_info is the sample of the info family "target". */
        int nlen = (int)strlen(f->name);
        const char *type = kind_names[f->kind], *csuffix = "";
        if (om && f->kind == LK_PROM_COUNTER) {
            if (ends_with(f->name, (size_t)nlen, "_total"))
                nlen -= 6;
            csuffix = "_total";
        } else if (om && strcmp(f->name, "target_info") == 0) {
            nlen -= 5;
            type = "info";
        }
        if (f->help[0] != '\0') {
            rc = lk_buf_printf(out, "# HELP %.*s ", nlen, f->name);
            if (rc == 0)
                rc = lk_metrics_help_escape(out, f->help, om);
            if (rc == 0)
                rc = lk_buf_append(out, "\n", 1);
        }
        if (rc == 0)
            rc = lk_buf_printf(out, "# TYPE %.*s %s\n", nlen, f->name, type);
        if (rc == 0 && om && f->unit[0] != '\0') {
            char suffix[128];
            snprintf(suffix, sizeof(suffix), "_%s", f->unit);
            if (ends_with(f->name, (size_t)nlen, suffix))
                rc = lk_buf_printf(out, "# UNIT %.*s %s\n", nlen, f->name, f->unit);
        }
        /* Counter samples: the family name (text) or the OpenMetrics family name
         * plus _total, which is the same string when the name had it. */
        const char *cs = om && f->kind == LK_PROM_COUNTER &&
                                 !ends_with(f->name, strlen(f->name), "_total")
                             ? csuffix
                             : "";
        for (const lk_prom_series *se = f->head; rc == 0 && se != NULL; se = se->next)
            rc = render_series(s, out, f, se, om, cs);
    }
    return rc;
}

int lk_prom_store_each(lk_prom_store *s, int (*fn)(void *arg, lk_prom_series *se), void *arg)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->nfams; i++)
        for (lk_prom_series *se = s->fams[i]->head; rc == 0 && se != NULL; se = se->next)
            rc = fn(arg, se);
    return rc;
}

const char *lk_prom_family_name(const lk_prom_family *f)
{
    return f->name;
}

enum lk_prom_kind lk_prom_family_kind(const lk_prom_family *f)
{
    return f->kind;
}

const char *lk_prom_family_help(const lk_prom_family *f)
{
    return f->help;
}

const char *lk_prom_family_unit(const lk_prom_family *f)
{
    return f->unit;
}

lk_prom_family *lk_prom_series_family(const lk_prom_series *se)
{
    return se->fam;
}

const char *lk_prom_series_labels(const lk_prom_series *se, size_t *len)
{
    *len = se->labels_len;
    return se->labels;
}

uint64_t lk_prom_series_time_ns(const lk_prom_series *se)
{
    return se->times.time_ns;
}

/* ---- the protobuf exposition ---- */

/*
 * |x| as a native histogram in |h|: Prometheus' schemas are OpenTelemetry's
 * scales (base 2^2^-scale) from -4 to 8, so finer scales are downscaled to
 * 8; its bucket i is OpenTelemetry's i - 1. False when the scale is below -4
 * (the histogram then goes as classic buckets).
 */
static int exp_native(lk_prom_store *s, const struct expstate *x, struct lk_pbexpo_hist *h,
                      bool *native)
{
    *native = false;
    if (x->scale < -4)
        return 0;
    int d = x->scale > 8 ? x->scale - 8 : 0;
    struct lk_pbexpo_side *sides[2] = {&h->positive, &h->negative};
    for (int k = 0; k < 2; k++) {
        int64_t lo, hi;
        if (!side_range(x->off[k], x->n[k], d, &lo, &hi)) {
            *sides[k] = (struct lk_pbexpo_side){0};
            continue;
        }
        size_t m = (size_t)(hi - lo + 1);
        if (m > s->capnat[k]) {
            uint64_t *c = realloc(s->nat[k], m * sizeof(*c));
            if (c == NULL)
                return LK_ENOMEM;
            s->nat[k] = c;
            s->capnat[k] = m;
        }
        memset(s->nat[k], 0, m * sizeof(uint64_t));
        for (size_t i = 0; i < x->n[k]; i++)
            s->nat[k][shr(x->off[k] + (int64_t)i, d) - lo] += x->c[k][i];
        *sides[k] = (struct lk_pbexpo_side){.offset = (int32_t)(lo + 1), .n = m,
                                            .counts = s->nat[k]};
    }
    h->native = true;
    h->schema = x->scale - d;
    h->zero_threshold = x->zero_threshold;
    h->zero_count = x->zero_count;
    *native = true;
    return 0;
}

static int proto_histogram(lk_prom_store *s, lk_pbexpo *px, const lk_prom_series *se)
{
    struct lk_pbexpo_hist h = {.count = se->count, .sum = se->value};
    if (se->exp != NULL) {
        bool native;
        int rc = exp_native(s, se->exp, &h, &native);
        if (rc < 0 || native)
            return rc ? rc : lk_pbexpo_histogram(px, &h);
        size_t nb;
        if ((rc = exp_classic(s, se->exp, &nb)) < 0)
            return rc;
        h.bounds = s->xb;
        h.counts = s->xc;
        h.nb = nb;
        return lk_pbexpo_histogram(px, &h);
    }
    if (se->counts == NULL)
        return 0;
    h.bounds = se->bounds;
    h.counts = se->counts;
    h.nb = se->n;
    if (se->nex > 0) {
        size_t nb = se->n + 1; /* buckets, +Inf included */
        if (nb > s->capxv) {
            struct lk_pbexpo_exemplar *v = realloc(s->xv, nb * sizeof(*v));
            if (v == NULL)
                return LK_ENOMEM;
            s->xv = v;
            const struct lk_pbexpo_exemplar **p = realloc(s->xp, nb * sizeof(*p));
            if (p == NULL)
                return LK_ENOMEM;
            s->xp = p;
            s->capxv = nb;
        }
        for (size_t i = 0; i < nb; i++)
            s->xp[i] = exemplar_view(se, i, &s->xv[i]); /* NULL past se->nex */
        h.exemplars = s->xp;
    }
    return lk_pbexpo_histogram(px, &h);
}

static int proto_series(lk_prom_store *s, lk_pbexpo *px, const lk_prom_family *f,
                        const lk_prom_series *se)
{
    int rc = lk_pbexpo_metric(px);
    if (rc == 0)
        rc = lk_pbexpo_label_text(px, se->labels, se->labels_len);
    if (rc < 0)
        return rc;
    struct lk_pbexpo_exemplar xv;
    switch (f->kind) {
    case LK_PROM_GAUGE:
        return lk_pbexpo_gauge(px, se->value);
    case LK_PROM_COUNTER: {
        const struct lk_pbexpo_exemplar *v = exemplar_view(se, 0, &xv);
        return lk_pbexpo_counter(px, se->value, v);
    }
    case LK_PROM_HISTOGRAM:
        return proto_histogram(s, px, se);
    case LK_PROM_SUMMARY:
        return lk_pbexpo_summary(px, se->count, se->value, se->bounds, se->qvalues, se->n);
    }
    return LK_EINVAL;
}

int lk_prom_store_render_proto(lk_prom_store *s, lk_buf *out)
{
    static const enum lk_pbexpo_type types[] = {
        [LK_PROM_GAUGE] = LK_PBEXPO_GAUGE,
        [LK_PROM_COUNTER] = LK_PBEXPO_COUNTER,
        [LK_PROM_HISTOGRAM] = LK_PBEXPO_HISTOGRAM,
        [LK_PROM_SUMMARY] = LK_PBEXPO_SUMMARY,
    };
    lk_pbexpo px;
    lk_pbexpo_init(&px);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->nfams; i++) {
        const lk_prom_family *f = s->fams[i];
        if (f->nseries == 0)
            continue;
        rc = lk_pbexpo_family(&px, f->name, strlen(f->name), f->help, types[f->kind],
                              f->unit);
        for (const lk_prom_series *se = f->head; rc == 0 && se != NULL; se = se->next)
            rc = proto_series(s, &px, f, se);
        if (rc == 0)
            rc = lk_pbexpo_family_end(&px, out);
    }
    lk_pbexpo_fini(&px);
    return rc;
}

uint64_t lk_prom_store_epoch(const lk_prom_store *s)
{
    return s->epoch;
}
