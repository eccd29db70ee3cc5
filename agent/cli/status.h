/*
 * What `lookout top` and `lookout status` show of a running agent, made from
 * one or two scrapes of its /metrics (status.c), and that view laid out as
 * plain-text lines for a given width (status_render.c). No I/O here.
 */
#ifndef LK_CLI_STATUS_H
#define LK_CLI_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/metrics_text.h"
#include "config/config.h"
#include "core/buf.h"

/* A counter: its total at the last scrape and its rate since the one before
 * (per second; NaN when there is no earlier scrape to compare with). */
struct lk_status_count {
    double total;
    double rate;
};

/* One row per receiver and signal it has accepted-items series for. */
struct lk_status_receiver {
    char *name;
    enum lk_signal signal;
    struct lk_status_count accepted, refused, rejected; /* all transports */
    double connections; /* of the receiver, all transports; NaN: no series */
};

/* One row per exporter and signal it has a queue for. */
struct lk_status_exporter {
    char *name;
    enum lk_signal signal;
    struct lk_status_count sent, failed, retries;
    double queue_size, queue_capacity; /* items; NaN: no series */
    double spool_batches;              /* NaN: no spool series */
};

/* Drops summed by reason (over signals, exporters and receivers). */
struct lk_status_drop {
    char *reason;
    struct lk_status_count count;
};

enum lk_status_state {
    LK_STATUS_READY,       /* /readyz answered 200 */
    LK_STATUS_NOT_READY,   /* /readyz answered something else */
    LK_STATUS_UNREACHABLE, /* no /metrics from the admin endpoint */
};

struct lk_status {
    enum lk_status_state state;
    char error[256];    /* UNREACHABLE: why (empty otherwise) */
    const char *target; /* the admin URL, as shown; not owned */
    char *version, *os; /* lookout_build_info; NULL when absent */
    double uptime;      /* seconds; NaN: unknown */
    double rss;         /* bytes; NaN: unknown */
    double cpu;         /* percent of one core; NaN: unknown */
    double mem_used, mem_limit; /* memory budget, bytes; NaN: unknown */
    int reload_ok;      /* 1 last load succeeded, 0 failed, -1 unknown */
    double interval;    /* seconds between the two scrapes; 0: one scrape */
    bool has_spool;     /* a spool series exists: show its column */
    struct lk_status_receiver *receivers;
    size_t nreceivers;
    struct lk_status_exporter *exporters;
    size_t nexporters;
    struct lk_status_drop *drops; /* reasons with a total above 0, largest first */
    size_t ndrops;
};

/*
 * Fills |st| (which it zeroes first) from the scrape |cur| and, for rates,
 * the scrape |prev| taken |interval| seconds before it (NULL, or interval
 * <= 0: totals only). A |prev| of another process (its start time differs)
 * gives no rates either. |now| is the wall-clock time of |cur| (seconds
 * since the epoch), for the uptime. state is READY; the caller sets it from
 * /readyz, and target. Free with lk_status_fini. 0 or LK_ENOMEM.
 */
int lk_status_build(struct lk_status *st, const lk_metrics_text *prev, double interval,
                    const lk_metrics_text *cur, double now);
/* An UNREACHABLE status saying |why|. */
void lk_status_unreachable(struct lk_status *st, const char *target, const char *why);
void lk_status_fini(struct lk_status *st);

/* Whether the metric |name| is one lk_status_build reads (a keep filter for
 * lk_metrics_text_parse: lookout's and process metrics, not an app's). */
bool lk_status_wants_metric(const char *name, size_t len, void *arg);

struct lk_status_render_opts {
    int width;          /* columns; 0: no limit (every column, nothing cut) */
    const char *footer; /* a last header item, e.g. the keys of top; NULL: none */
};

/*
 * Appends the view to |out| as lines ending in "\n", plain text (no escape
 * sequences; names from the agent have control characters and invalid
 * UTF-8 replaced by '?'). With a width, no line is wider than it: columns
 * are dropped by importance, names cut with an ellipsis, and what still
 * does not fit is cut. Width counts a code point as one column, or two in
 * the East Asian wide ranges and emoji blocks. 0 or LK_ENOMEM.
 */
int lk_status_render(const struct lk_status *st, const struct lk_status_render_opts *o,
                     lk_buf *out);

/* Columns |s| (|n| bytes, sanitized text) takes, as lk_status_render counts. */
size_t lk_status_text_width(const char *s, size_t n);

#endif
