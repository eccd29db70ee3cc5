/*
 * The series store of the prometheus exporter: metric families (name, type,
 * help, unit) and their series (a rendered label set and its current value),
 * updated from OTLP points and rendered as the Prometheus text exposition.
 *
 * A series is found by hashing its family and label set, so updating an
 * existing series allocates nothing. Families render in name order, series in
 * the order they were created: the exposition is stable between scrapes.
 * Series not updated for the expiration time disappear; at most max_series
 * exist (a new one beyond is refused, existing ones keep updating).
 * Loop thread only.
 */
#ifndef LK_EXPORTERS_PROM_STORE_H
#define LK_EXPORTERS_PROM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/pbexpo.h" /* struct lk_pbexpo_exemplar */
#include "exporters/prom_translate.h"

typedef struct lk_prom_store lk_prom_store;
typedef struct lk_prom_family lk_prom_family;
typedef struct lk_prom_series lk_prom_series;

struct lk_prom_store_opts {
    uint64_t expiration_ms; /* 0: series never expire */
    uint64_t max_series;    /* 0: no limit */
    /* Names no family may take (another exposition in the same body has
     * them), asked when a family would be created; NULL: none. */
    bool (*reserved)(void *arg, const char *name, size_t nlen);
    void *reserved_arg;
};

lk_prom_store *lk_prom_store_create(const struct lk_prom_store_opts *o);
void lk_prom_store_destroy(lk_prom_store *s); /* NULL-safe */

/*
 * The family |name| (|nlen| bytes) of |kind|, created with |help| and |unit|
 * (both NUL-terminated, copied; the first help wins) when new. NULL with
 * *err = LK_EEXIST when the name is taken by another kind (the first keeps
 * it), LK_ERESERVED when the options' reserved() refuses a new family the
 * name, LK_E2BIG (max_series reached), or LK_ENOMEM.
 */
lk_prom_family *lk_prom_family_get(lk_prom_store *s, const char *name, size_t nlen,
                                   enum lk_prom_kind kind, const char *help,
                                   const char *unit, int *err);

/*
 * The series of |f| with the label set |labels| (|len| bytes, rendered as
 * `a="x",b="y"` in label-name order, "" for none), created empty when new
 * (*created set; a new series counts as updated at |now_ms|). NULL with
 * *err = LK_E2BIG when a new one would pass max_series, or LK_ENOMEM.
 */
lk_prom_series *lk_prom_series_get(lk_prom_store *s, lk_prom_family *f,
                                   const char *labels, size_t len, uint64_t now_ms,
                                   bool *created, int *err);

/* Marks |se| as updated at |now_ms| (expiry counts from the last point
 * taken) and, while tracking is on, puts it in the touched list. */
void lk_prom_series_touch(lk_prom_store *s, lk_prom_series *se, uint64_t now_ms);

/*
 * The touched list: the series updated since it was last cleared, each
 * once, for an exporter that pushes what changed (remote write). Off by
 * default. *incomplete is set when a series could not join it for want of
 * memory (the caller then sends everything, see lk_prom_store_each).
 * Removed and expired series leave it.
 */
void lk_prom_store_track(lk_prom_store *s, bool on);
lk_prom_series *const *lk_prom_store_touched(const lk_prom_store *s, size_t *n,
                                              bool *incomplete);
void lk_prom_store_clear_touched(lk_prom_store *s);

/* Calls |fn| for every series, family by family; stops at its first
 * non-zero return, which it returns. */
int lk_prom_store_each(lk_prom_store *s, int (*fn)(void *arg, lk_prom_series *se),
                       void *arg);

/* What an encoder needs of a family and a series. */
const char *lk_prom_family_name(const lk_prom_family *f);
enum lk_prom_kind lk_prom_family_kind(const lk_prom_family *f);
const char *lk_prom_family_help(const lk_prom_family *f); /* "" when none */
const char *lk_prom_family_unit(const lk_prom_family *f); /* "" when none */
lk_prom_family *lk_prom_series_family(const lk_prom_series *se);
/* The label text, `a="x",b="y"` (escaped as in the text format, sorted by
 * name), |*len| bytes, not NUL-terminated. */
const char *lk_prom_series_labels(const lk_prom_series *se, size_t *len);
/* time_unix_nano of the last point taken (0 for target_info). */
uint64_t lk_prom_series_time_ns(const lk_prom_series *se);

/*
 * One sample of a series, as every exposition has it: the family name plus
 * |suffix|, the series' labels plus |extra| = |extra_value| (a histogram's
 * `le`, INFINITY for +Inf; a summary's `quantile`), and the value. A counter
 * and each histogram bucket may carry the exemplar of |exemplar|.
 */
struct lk_prom_sample {
    const char *suffix;  /* NULL, "_bucket", "_sum" or "_count" */
    const char *extra;   /* "le", "quantile" or NULL */
    double extra_value;
    double value;
    const struct lk_pbexpo_exemplar *exemplar; /* NULL: none (or not asked for) */
};
/*
 * Calls |fn| for each sample of |se| in exposition order. |exemplars| asks
 * for them; |openmetrics| leaves out the _sum of histograms with negative
 * observations, as OpenMetrics requires. Stops at the first non-zero return
 * of |fn| and returns it; LK_ENOMEM.
 */
int lk_prom_series_samples(lk_prom_store *s, const lk_prom_series *se, bool exemplars,
                           bool openmetrics,
                           int (*fn)(void *arg, const struct lk_prom_sample *smp),
                           void *arg);

/* What the last point of a series said about time (for reset and order checks). */
struct lk_prom_times {
    uint64_t start_ns; /* start_time_unix_nano of the last point taken */
    uint64_t time_ns;  /* time_unix_nano of the last point taken */
};
struct lk_prom_times *lk_prom_series_times(lk_prom_series *se);

/* Gauges and counters. */
void lk_prom_series_set(lk_prom_series *se, double v);
void lk_prom_series_add(lk_prom_series *se, double v);
double lk_prom_series_value(const lk_prom_series *se);

/*
 * Histograms: |nbounds| explicit upper bounds and nbounds + 1 per-bucket
 * counts (not cumulative; the last one is +Inf). set replaces the buckets;
 * add accumulates them when the bounds are the same, and returns LK_EINVAL
 * without changing anything when they differ (the caller starts the series
 * anew with set). LK_ENOMEM.
 */
int lk_prom_series_hist_set(lk_prom_series *se, const double *bounds, size_t nbounds,
                            const uint64_t *counts, double sum, uint64_t count);
int lk_prom_series_hist_add(lk_prom_series *se, const double *bounds, size_t nbounds,
                            const uint64_t *counts, double sum, uint64_t count);

/*
 * Exponential histograms are kept as such, so that deltas whose bucket
 * ranges or scales differ still add up (the finer one is downscaled); at
 * most LK_PROM_EXP_MAX_BUCKETS buckets are held (the scale is lowered until
 * they fit). They render as classic buckets: bounds base^i of the scale,
 * negative buckets, the zero bucket, positive buckets. LK_ENOMEM, LK_EINVAL
 * (a scale outside -10..20).
 */
#define LK_PROM_EXP_MAX_BUCKETS 160
struct lk_prom_exp {
    int32_t scale;
    double zero_threshold;
    uint64_t zero_count;
    int32_t offset[2]; /* [0] positive, [1] negative buckets */
    size_t n[2];
    const uint64_t *counts[2];
};
int lk_prom_series_exp_set(lk_prom_series *se, const struct lk_prom_exp *e, double sum,
                           uint64_t count);
int lk_prom_series_exp_add(lk_prom_series *se, const struct lk_prom_exp *e, double sum,
                           uint64_t count);

/* Summaries: |n| quantiles in [0, 1] with their values. LK_ENOMEM. */
int lk_prom_series_summary_set(lk_prom_series *se, const double *quantiles,
                               const double *values, size_t n, double sum,
                               uint64_t count);

/*
 * Exemplars (rendered in OpenMetrics only): |i| is the bucket of a
 * histogram (0..nbounds, the last one +Inf) or 0 for a counter. The newest
 * exemplar of each wins. A histogram whose bounds change loses its exemplars.
 * LK_ENOMEM.
 */
int lk_prom_series_exemplar(lk_prom_series *se, size_t i, const struct lk_pbexpo_exemplar *x);

/* Grows whenever a series or a family is removed (removed, expired): a
 * pointer to either taken before is valid while the epoch stays. */
uint64_t lk_prom_store_epoch(const lk_prom_store *s);

/* The store's hash: |n| bytes at |p| mixed into |h|. */
uint64_t lk_prom_hash(uint64_t h, const void *p, size_t n);

/* Removes |se| (e.g. one just created for a point that turned out invalid). */
void lk_prom_store_remove(lk_prom_store *s, lk_prom_series *se);

/* Removes the series not updated since |now_ms| - expiration, and the
 * families left without series; returns how many series went. */
size_t lk_prom_store_expire(lk_prom_store *s, uint64_t now_ms);
size_t lk_prom_store_series_count(const lk_prom_store *s);

/*
 * Appends every family with series in the text format 0.0.4, or, with
 * |openmetrics|, as OpenMetrics 1.0 families (counters named without
 * _total, # UNIT where the name ends with the unit, target_info as an info
 * metric, exemplars on counters and buckets; no # EOF).
 */
int lk_prom_store_render(lk_prom_store *s, lk_buf *out, bool openmetrics);

/*
 * Appends every family with series as delimited io.prometheus.client
 * MetricFamily messages (the protobuf exposition): exponential histograms as
 * native histograms (schema = scale, at most 8; below -4 as classic
 * buckets), classic histograms with their exemplars, counters with theirs.
 */
int lk_prom_store_render_proto(lk_prom_store *s, lk_buf *out);

#endif
