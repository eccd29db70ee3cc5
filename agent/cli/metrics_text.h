/*
 * The Prometheus text exposition format (0.0.4) read into a table of
 * samples: what `lookout top` and `lookout status` make of an agent's
 * /metrics. A reader, not a validator: a line it cannot read is skipped and
 * counted, so one odd series (an app's, after lookout's own) hides nothing
 * else.
 */
#ifndef LK_CLI_METRICS_TEXT_H
#define LK_CLI_METRICS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* From the family's `# TYPE` line, when one came before the sample. */
enum lk_metric_type {
    LK_METRIC_UNTYPED,
    LK_METRIC_COUNTER,
    LK_METRIC_GAUGE,
    LK_METRIC_HISTOGRAM, /* NAME_bucket, NAME_sum, NAME_count */
    LK_METRIC_SUMMARY,   /* NAME{quantile=...}, NAME_sum, NAME_count */
};

struct lk_label {
    const char *name;
    const char *value; /* unescaped; may hold any byte but NUL */
};

struct lk_sample {
    const char *name;
    const struct lk_label *labels; /* in the order written */
    size_t nlabels;
    double value; /* NaN and +-Inf as written */
    bool has_timestamp;
    int64_t timestamp_ms;
    enum lk_metric_type type;
};

typedef struct lk_metrics_text lk_metrics_text;

/* Whether to keep samples of the metric |name| (|len| bytes, not
 * NUL-terminated). NULL keeps all. */
typedef bool (*lk_metrics_text_keep_fn)(const char *name, size_t len, void *arg);

/* Samples kept at most; a text with more fails with LK_E2BIG. */
#define LK_METRICS_TEXT_MAX_SAMPLES (1u << 20)
/* Labels of one sample at most; a line with more is invalid. */
#define LK_METRICS_TEXT_MAX_LABELS 64

/*
 * Reads |len| bytes at |text| (need not be NUL-terminated; may be NULL when
 * |len| is 0). Lines end with "\n" (a "\r" before it is ignored); blank and
 * comment lines are skipped; label values are unescaped (\\, \", \n; any
 * other backslash stays as written). Lines of metrics |keep| refuses are not
 * read past the name. On success returns 0 and sets |*out|
 * (lk_metrics_text_destroy). Returns LK_ENOMEM, or LK_E2BIG past
 * LK_METRICS_TEXT_MAX_SAMPLES kept.
 */
int lk_metrics_text_parse(const char *text, size_t len, lk_metrics_text_keep_fn keep,
                          void *arg, lk_metrics_text **out);
void lk_metrics_text_destroy(lk_metrics_text *t); /* NULL-safe */

size_t lk_metrics_text_count(const lk_metrics_text *t);
/* The |i|th sample kept, in the order of the text (i < count). */
const struct lk_sample *lk_metrics_text_sample(const lk_metrics_text *t, size_t i);
/* Sample lines that could not be read (skipped), and the number of the
 * first (1-based; 0 when there was none). */
size_t lk_metrics_text_invalid_lines(const lk_metrics_text *t);
size_t lk_metrics_text_first_invalid_line(const lk_metrics_text *t);

/* The value of label |name| of |s|, or NULL when it has none. */
const char *lk_sample_label(const struct lk_sample *s, const char *name);

/* The first sample named |name| with no labels, or NULL. */
const struct lk_sample *lk_metrics_text_find(const lk_metrics_text *t, const char *name);

#endif
