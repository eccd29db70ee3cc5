/*
 * The Prometheus protobuf exposition: a stream of io.prometheus.client
 * MetricFamily messages, each preceded by its varint length
 * (application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
 * encoding=delimited). Prometheus asks for it to scrape native histograms.
 *
 * Written by hand (field numbers from proto/prometheus/io/prometheus/client):
 * a family is built in |fam|, its metric being built in |met|, a metric's
 * value in |val|, and the value's nested parts in |sub|; each is appended to
 * its parent with its length when done. Usage per family:
 *
 *   lk_pbexpo_family(x, ...);
 *   for each series: lk_pbexpo_metric(x); lk_pbexpo_label(x, ...)...;
 *                    lk_pbexpo_gauge(x, v) (or counter, summary, histogram);
 *   lk_pbexpo_family_end(x, out);
 *
 * Every function returns 0, LK_ENOMEM or LK_E2BIG.
 */
#ifndef LK_CORE_PBEXPO_H
#define LK_CORE_PBEXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define LK_PBEXPO_CONTENT_TYPE                                                           \
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "         \
    "encoding=delimited"

/* io.prometheus.client.MetricType */
enum lk_pbexpo_type {
    LK_PBEXPO_COUNTER = 0,
    LK_PBEXPO_GAUGE = 1,
    LK_PBEXPO_SUMMARY = 2,
    LK_PBEXPO_UNTYPED = 3,
    LK_PBEXPO_HISTOGRAM = 4,
};

typedef struct lk_pbexpo {
    lk_buf fam, met, val, sub;
    lk_buf labels; /* unescaped label values (lk_pbexpo_label_text) */
    size_t nmetrics;
} lk_pbexpo;

struct lk_pbexpo_exemplar {
    double value;
    uint64_t time_ns;        /* 0: none */
    const uint8_t *trace_id; /* 16 bytes, or NULL (then no labels) */
    const uint8_t *span_id;  /* 8 bytes */
};

/* Native (exponential) buckets of one side: |n| counts from bucket index
 * |offset| on (Prometheus' index: bucket i covers (base^(i-1), base^i]). */
struct lk_pbexpo_side {
    int32_t offset;
    size_t n;
    const uint64_t *counts;
};

struct lk_pbexpo_hist {
    uint64_t count;
    double sum;
    /* classic: |nb| upper bounds, nb + 1 per-bucket counts (the last +Inf) */
    const double *bounds;
    const uint64_t *counts;
    size_t nb;
    const struct lk_pbexpo_exemplar *const *exemplars; /* per bucket, may be NULL */
    /* native, when |native|: schema -4..8, the zero bucket, both sides */
    bool native;
    int32_t schema;
    double zero_threshold;
    uint64_t zero_count;
    struct lk_pbexpo_side positive, negative;
};

void lk_pbexpo_init(lk_pbexpo *x);
void lk_pbexpo_fini(lk_pbexpo *x);

/* Starts a family (|help| and |unit| may be "" or NULL). */
int lk_pbexpo_family(lk_pbexpo *x, const char *name, size_t nlen, const char *help,
                     enum lk_pbexpo_type type, const char *unit);
/* Starts a metric (a series) of the family. */
int lk_pbexpo_metric(lk_pbexpo *x);
int lk_pbexpo_label(lk_pbexpo *x, const char *name, size_t nlen, const char *value,
                    size_t vlen);
/* Adds the labels of a text-format label set `a="x",b="y"` (escaped);
 * LK_EINVAL when malformed. */
int lk_pbexpo_label_text(lk_pbexpo *x, const char *text, size_t len);
/* End the metric with its value. */
int lk_pbexpo_gauge(lk_pbexpo *x, double v);
int lk_pbexpo_untyped(lk_pbexpo *x, double v);
int lk_pbexpo_counter(lk_pbexpo *x, double v, const struct lk_pbexpo_exemplar *ex);
int lk_pbexpo_summary(lk_pbexpo *x, uint64_t count, double sum, const double *quantiles,
                      const double *values, size_t n);
int lk_pbexpo_histogram(lk_pbexpo *x, const struct lk_pbexpo_hist *h);
/* Appends the family, length-delimited, to |out| (nothing when it got no
 * metric). */
int lk_pbexpo_family_end(lk_pbexpo *x, lk_buf *out);

#endif
