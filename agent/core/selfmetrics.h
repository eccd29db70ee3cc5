/* Self-metrics registry rendered in the Prometheus text format 0.0.4.
 * Single-threaded: every call happens on the loop thread. */
#ifndef LK_CORE_SELFMETRICS_H
#define LK_CORE_SELFMETRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct lk_metrics lk_metrics;
typedef struct lk_counter lk_counter;
typedef struct lk_gauge lk_gauge;
typedef struct lk_histogram lk_histogram;

lk_metrics *lk_metrics_create(void);
/* NULL-safe. Invalidates every series pointer handed out. */
void lk_metrics_destroy(lk_metrics *m);

/*
 * Series lookup-or-create. |name| and |help| are copied; |labels| is the
 * rendered label set without braces, e.g. `exporter="otlp/jaeger",reason="full"`,
 * or "" for none. The same (name, labels) returns the same series, so an object
 * re-created on config reload keeps counting where its predecessor stopped.
 * Returns NULL only on allocation failure; the update functions accept NULL.
 * (Also NULL, with an error log, for a programming error: an invalid metric
 * name, a name already registered with another type, or histogram bounds that
 * are not strictly increasing.)
 */
lk_counter *lk_metrics_counter(lk_metrics *m, const char *name,
                               const char *help, const char *labels);
lk_gauge *lk_metrics_gauge(lk_metrics *m, const char *name, const char *help,
                           const char *labels);
/* |bounds| are the upper bounds in increasing order (no +Inf), copied. */
lk_histogram *lk_metrics_histogram(lk_metrics *m, const char *name,
                                   const char *help, const char *labels,
                                   const double *bounds, size_t nbounds);

/*
 * A counter whose value is fractional (e.g. process_cpu_seconds_total): it is
 * an lk_gauge for updates (lk_gauge_set / lk_gauge_add) but rendered with
 * `# TYPE name counter`. The caller keeps it monotonic. A name is either a
 * float counter or an integer counter, never both.
 */
lk_gauge *lk_metrics_float_counter(lk_metrics *m, const char *name,
                                   const char *help, const char *labels);

void lk_counter_add(lk_counter *c, uint64_t n);
uint64_t lk_counter_value(const lk_counter *c);
void lk_gauge_set(lk_gauge *g, double v);
void lk_gauge_add(lk_gauge *g, double delta);
double lk_gauge_value(const lk_gauge *g);
void lk_histogram_observe(lk_histogram *h, double v);
uint64_t lk_histogram_count(const lk_histogram *h); /* observations so far */
double lk_histogram_sum(const lk_histogram *h);

/* Called at the start of every render, e.g. to refresh process_* gauges. */
typedef void (*lk_metrics_collect_cb)(lk_metrics *m, void *arg);
void lk_metrics_on_collect(lk_metrics *m, lk_metrics_collect_cb cb, void *arg);
/* Removes what lk_metrics_on_collect(|m|, |cb|, |arg|) added. */
void lk_metrics_off_collect(lk_metrics *m, lk_metrics_collect_cb cb, void *arg);

/*
 * Appends |value| to |out| escaped for use inside a label value's quotes
 * (backslash, double quote and newline), without the quotes themselves.
 * Returns 0 or the lk_buf error (LK_E2BIG, LK_ENOMEM).
 */
int lk_metrics_label_escape(lk_buf *out, const char *value);
/* The same for |n| bytes at |value| (not NUL-terminated; NULL when n is 0). */
int lk_metrics_label_escape_n(lk_buf *out, const char *value, size_t n);
/* Appends HELP text escaped: backslash and newline, and with |openmetrics|
 * also the double quote, as OpenMetrics requires. 0 or the lk_buf error. */
int lk_metrics_help_escape(lk_buf *out, const char *help, bool openmetrics);
/*
 * The reverse of the label escape above: splits a label set as the text format
 * writes it (`a="x",b="y"`) into names and unescaped values (appended to
 * |scratch|), calling |fn| for each in order; stops at its first non-zero
 * return. LK_EINVAL when the text is malformed.
 */
int lk_metrics_labels_each(const char *text, size_t len, lk_buf *scratch,
                           int (*fn)(void *arg, const char *name, size_t nlen,
                                     const char *value, size_t vlen),
                           void *arg);

/* Formats |v| as the exposition writes sample values: the shortest %g form
 * that reads back as the same double, or NaN, +Inf, -Inf. Returns what
 * snprintf returns (40 bytes always suffice). */
int lk_metrics_format_double(char *dst, size_t size, double v);

/*
 * Every self-metric lookout registers is named with this prefix, but for the
 * standard process_* ones (core/platform.c), which are registered at start-up.
 */
#define LK_METRICS_NAMESPACE "lookout_"

/*
 * Whether a metric family named |name| (|len| bytes, as the text format names
 * it) rendered after |m|'s exposition, in the same body, could clash with one
 * of |m|'s families: when the two names are the same, or one is the other
 * plus an ending an exposition adds (_total, _created, _bucket, _sum, _count),
 * or both are one name with such endings. That covers OpenMetrics, which names
 * a counter family without its _total. Every name in LK_METRICS_NAMESPACE is
 * reserved as well, registered yet or not: families there come and go with
 * the config (a reload adding a spool or an exporter). Conservative: a name
 * that merely looks like one of lookout's counts. Scans every family (a few
 * dozen): for new names, not per item.
 */
bool lk_metrics_name_is_reserved(const lk_metrics *m, const char *name, size_t len);

/* Appends the exposition (families in registration order, one HELP/TYPE each). */
int lk_metrics_render(lk_metrics *m, lk_buf *out);
/* The same, or with |openmetrics| as OpenMetrics 1.0 metric families: a
 * counter family is named without its samples' _total (one whose name lacks
 * it is declared `unknown`). The caller appends `# EOF`. */
int lk_metrics_render_format(lk_metrics *m, lk_buf *out, bool openmetrics);
/* The same as delimited io.prometheus.client.MetricFamily messages (the
 * protobuf exposition, core/pbexpo). */
int lk_metrics_render_proto(lk_metrics *m, lk_buf *out);

#endif
