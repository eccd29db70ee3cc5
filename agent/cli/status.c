/* Two scrapes of /metrics -> the view of `lookout top` and `lookout status`
 * (see status.h; the metric names are docs/metrics.md's). */
#include "cli/status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* The ITEMS of lookout_receiver_accepted_ITEMS_total and friends, by signal. */
static const char *const item_word[LK_SIGNAL_COUNT] = {"spans", "metric_points",
                                                       "log_records"};

/* Which series a sum takes: those named |name| whose label |k| is |v| and,
 * when |k2| is set, whose |k2| is |v2|. A NULL |k| takes all. */
struct match {
    const char *name;
    const char *k, *v;
    const char *k2, *v2;
};

static struct match by(const char *name, const char *k, const char *v)
{
    return (struct match){.name = name, .k = k, .v = v};
}

static struct match by2(const char *name, const char *k, const char *v, const char *k2,
                        const char *v2)
{
    return (struct match){.name = name, .k = k, .v = v, .k2 = k2, .v2 = v2};
}

static bool label_is(const struct lk_sample *s, const char *k, const char *v)
{
    const char *got;
    return k == NULL || ((got = lk_sample_label(s, k)) != NULL && strcmp(got, v) == 0);
}

/* The sum of the matching series; NaN when none matches. */
static double sum_of(const lk_metrics_text *t, struct match m)
{
    double sum = NAN;
    for (size_t i = 0; i < lk_metrics_text_count(t); i++) {
        const struct lk_sample *s = lk_metrics_text_sample(t, i);
        if (strcmp(s->name, m.name) != 0 || !label_is(s, m.k, m.v) || !label_is(s, m.k2, m.v2))
            continue;
        sum = isnan(sum) ? s->value : sum + s->value;
    }
    return sum;
}

static double value_of(const lk_metrics_text *t, const char *name)
{
    const struct lk_sample *s = lk_metrics_text_find(t, name);
    return s != NULL ? s->value : NAN;
}

/* A series that appeared between the scrapes counted from 0 (lookout
 * creates them with their first item); one that went down was reset (a
 * reload made its component anew) and counts from 0 too. */
static double increase(double before, double now)
{
    if (isnan(before) || now < before)
        return now;
    return now - before;
}

static struct lk_status_count count_of(const lk_metrics_text *prev, double dt,
                                       const lk_metrics_text *cur, struct match m)
{
    struct lk_status_count c = {sum_of(cur, m), NAN};
    if (prev != NULL && !isnan(c.total))
        c.rate = increase(sum_of(prev, m), c.total) / dt;
    return c;
}

/* Names in order of first appearance, each with a bit per signal seen. */
struct names {
    char **name;
    unsigned *signals;
    size_t n, cap;
};

static int names_add(struct names *ns, const char *name, unsigned bits)
{
    for (size_t i = 0; i < ns->n; i++) {
        if (strcmp(ns->name[i], name) == 0) {
            ns->signals[i] |= bits;
            return 0;
        }
    }
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 8;
        char **nn = realloc(ns->name, cap * sizeof(*nn));
        if (nn == NULL)
            return LK_ENOMEM;
        ns->name = nn;
        unsigned *nb = realloc(ns->signals, cap * sizeof(*nb));
        if (nb == NULL)
            return LK_ENOMEM;
        ns->signals = nb;
        ns->cap = cap;
    }
    if ((ns->name[ns->n] = strdup(name)) == NULL)
        return LK_ENOMEM;
    ns->signals[ns->n++] = bits;
    return 0;
}

static void names_fini(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        free(ns->name[i]);
    free(ns->name);
    free(ns->signals);
}

/* Rows: one per set bit of every name; |*n| rows of |size| bytes. */
static void *rows_for(const struct names *ns, size_t size, size_t *n)
{
    size_t rows = 0;
    for (size_t i = 0; i < ns->n; i++)
        for (int s = 0; s < LK_SIGNAL_COUNT; s++)
            rows += (ns->signals[i] >> s) & 1;
    *n = rows;
    return calloc(rows > 0 ? rows : 1, size);
}

static int signal_of(const char *name)
{
    for (int s = 0; s < LK_SIGNAL_COUNT; s++)
        if (name != NULL && strcmp(name, lk_signal_name((enum lk_signal)s)) == 0)
            return s;
    return -1;
}

/* Each sample named |name| adds its label |key| to |ns| with the bit of
 * |sig|, or (sig < 0) of the signal in its "signal" label. */
static int collect(struct names *ns, const lk_metrics_text *t, const char *name,
                   const char *key, int sig)
{
    for (size_t i = 0; i < lk_metrics_text_count(t); i++) {
        const struct lk_sample *s = lk_metrics_text_sample(t, i);
        const char *v = lk_sample_label(s, key);
        int bit = sig >= 0 ? sig : signal_of(lk_sample_label(s, "signal"));
        if (v == NULL || bit < 0 || strcmp(s->name, name) != 0)
            continue;
        if (names_add(ns, v, 1u << bit) < 0)
            return LK_ENOMEM;
    }
    return 0;
}

/* The signals some exporter has a queue for: those a pipeline carries. */
static unsigned carried_signals(const lk_metrics_text *t)
{
    unsigned bits = 0;
    for (size_t i = 0; i < lk_metrics_text_count(t); i++) {
        const struct lk_sample *s = lk_metrics_text_sample(t, i);
        int sig = signal_of(lk_sample_label(s, "signal"));
        if (sig >= 0 && strcmp(s->name, "lookout_exporter_queue_capacity") == 0)
            bits |= 1u << sig;
    }
    return bits != 0 ? bits : ~0u;
}

/* An OTLP receiver has counters for every signal, pipeline or not: a
 * signal no pipeline carries is left out while its counters are all 0. */
static void drop_idle_signals(struct names *ns, const lk_metrics_text *cur)
{
    static const char *const kinds[] = {"accepted", "refused", "rejected"};
    unsigned carried = carried_signals(cur);
    char name[96];
    for (size_t i = 0; i < ns->n; i++) {
        for (int s = 0; s < LK_SIGNAL_COUNT; s++) {
            bool busy = false;
            if ((carried >> s) & 1 || !((ns->signals[i] >> s) & 1))
                continue;
            for (size_t k = 0; k < 3 && !busy; k++) {
                snprintf(name, sizeof(name), "lookout_receiver_%s_%s_total", kinds[k],
                         item_word[s]);
                busy = sum_of(cur, by(name, "receiver", ns->name[i])) > 0;
            }
            if (!busy)
                ns->signals[i] &= ~(1u << s);
        }
    }
}

static int build_receivers(struct lk_status *st, const lk_metrics_text *prev, double dt,
                           const lk_metrics_text *cur)
{
    struct names ns = {0};
    char acc[96], ref[96], rej[96];
    int rc = 0;

    for (int s = 0; s < LK_SIGNAL_COUNT && rc == 0; s++) {
        snprintf(acc, sizeof(acc), "lookout_receiver_accepted_%s_total", item_word[s]);
        rc = collect(&ns, cur, acc, "receiver", s);
    }
    if (rc == 0)
        drop_idle_signals(&ns, cur);
    if (rc == 0 && (st->receivers = rows_for(&ns, sizeof(*st->receivers), &st->nreceivers)) == NULL)
        rc = LK_ENOMEM;
    size_t r = 0;
    for (size_t i = 0; i < ns.n && rc == 0; i++) {
        struct match conns = by("lookout_receiver_connections", "receiver", ns.name[i]);
        for (int s = 0; s < LK_SIGNAL_COUNT && rc == 0; s++) {
            if (!((ns.signals[i] >> s) & 1))
                continue;
            struct lk_status_receiver *row = &st->receivers[r++];
            snprintf(acc, sizeof(acc), "lookout_receiver_accepted_%s_total", item_word[s]);
            snprintf(ref, sizeof(ref), "lookout_receiver_refused_%s_total", item_word[s]);
            snprintf(rej, sizeof(rej), "lookout_receiver_rejected_%s_total", item_word[s]);
            row->signal = (enum lk_signal)s;
            row->accepted = count_of(prev, dt, cur, by(acc, "receiver", ns.name[i]));
            row->refused = count_of(prev, dt, cur, by(ref, "receiver", ns.name[i]));
            row->rejected = count_of(prev, dt, cur, by(rej, "receiver", ns.name[i]));
            row->connections = sum_of(cur, conns);
            if ((row->name = strdup(ns.name[i])) == NULL)
                rc = LK_ENOMEM;
        }
    }
    names_fini(&ns);
    return rc;
}

static int build_exporters(struct lk_status *st, const lk_metrics_text *prev, double dt,
                           const lk_metrics_text *cur)
{
    struct names ns = {0};
    char sent[96], failed[96];
    int rc = collect(&ns, cur, "lookout_exporter_queue_capacity", "exporter", -1);

    for (int s = 0; s < LK_SIGNAL_COUNT && rc == 0; s++) {
        snprintf(sent, sizeof(sent), "lookout_exporter_sent_%s_total", item_word[s]);
        rc = collect(&ns, cur, sent, "exporter", s);
    }
    if (rc == 0 && (st->exporters = rows_for(&ns, sizeof(*st->exporters), &st->nexporters)) == NULL)
        rc = LK_ENOMEM;
    size_t r = 0;
    for (size_t i = 0; i < ns.n && rc == 0; i++) {
        const char *x = ns.name[i];
        for (int s = 0; s < LK_SIGNAL_COUNT && rc == 0; s++) {
            if (!((ns.signals[i] >> s) & 1))
                continue;
            struct lk_status_exporter *row = &st->exporters[r++];
            const char *sig = lk_signal_name((enum lk_signal)s);
            snprintf(sent, sizeof(sent), "lookout_exporter_sent_%s_total", item_word[s]);
            snprintf(failed, sizeof(failed), "lookout_exporter_send_failed_%s_total",
                     item_word[s]);
            row->signal = (enum lk_signal)s;
            row->sent = count_of(prev, dt, cur, by(sent, "exporter", x));
            row->failed = count_of(prev, dt, cur, by(failed, "exporter", x));
            row->retries = count_of(prev, dt, cur,
                                    by2("lookout_exporter_retries_total",
                                                    "exporter", x, "signal", sig));
            row->queue_size = sum_of(cur, by2("lookout_exporter_queue_size",
                                                          "exporter", x, "signal", sig));
            row->queue_capacity = sum_of(
                cur, by2("lookout_exporter_queue_capacity", "exporter", x,
                                     "signal", sig));
            row->spool_batches = sum_of(cur, by2("lookout_spool_batches",
                                                             "exporter", x, "signal", sig));
            if ((row->name = strdup(x)) == NULL)
                rc = LK_ENOMEM;
        }
    }
    names_fini(&ns);
    return rc;
}

static int build_drops(struct lk_status *st, const lk_metrics_text *prev, double dt,
                       const lk_metrics_text *cur)
{
    static const char *const name = "lookout_dropped_items_total";
    struct names ns = {0};
    int rc = 0;

    for (size_t i = 0; i < lk_metrics_text_count(cur) && rc == 0; i++) {
        const struct lk_sample *s = lk_metrics_text_sample(cur, i);
        const char *reason = lk_sample_label(s, "reason");
        if (reason != NULL && s->value > 0 && strcmp(s->name, name) == 0)
            rc = names_add(&ns, reason, 0);
    }
    if (rc == 0 && (st->drops = calloc(ns.n > 0 ? ns.n : 1, sizeof(*st->drops))) == NULL)
        rc = LK_ENOMEM;
    for (size_t i = 0; i < ns.n && rc == 0; i++) {
        struct lk_status_drop d = {
            .count = count_of(prev, dt, cur, by(name, "reason", ns.name[i])),
        };
        if ((d.reason = strdup(ns.name[i])) == NULL) {
            rc = LK_ENOMEM;
            break;
        }
        /* Largest total first; ties keep the agent's order. */
        size_t j = st->ndrops++;
        for (; j > 0 && st->drops[j - 1].count.total < d.count.total; j--)
            st->drops[j] = st->drops[j - 1];
        st->drops[j] = d;
    }
    names_fini(&ns);
    return rc;
}

static int build_process(struct lk_status *st, const lk_metrics_text *prev, double dt,
                         const lk_metrics_text *cur, double now)
{
    for (size_t i = 0; i < lk_metrics_text_count(cur); i++) {
        const struct lk_sample *s = lk_metrics_text_sample(cur, i);
        if (strcmp(s->name, "lookout_build_info") != 0)
            continue;
        const char *v = lk_sample_label(s, "version"), *os = lk_sample_label(s, "os");
        if ((v != NULL && (st->version = strdup(v)) == NULL) ||
            (os != NULL && (st->os = strdup(os)) == NULL))
            return LK_ENOMEM;
        break;
    }
    double start = value_of(cur, "process_start_time_seconds");
    st->uptime = start > 0 ? fmax(now - start, 0) : NAN;
    st->rss = value_of(cur, "process_resident_memory_bytes");
    double cpu = value_of(cur, "process_cpu_seconds_total");
    if (prev != NULL && !isnan(cpu))
        st->cpu = increase(value_of(prev, "process_cpu_seconds_total"), cpu) / dt * 100;
    st->mem_used = sum_of(cur, by("lookout_memory_used_bytes", NULL, NULL));
    st->mem_limit = value_of(cur, "lookout_memory_limit_bytes");
    double ok = value_of(cur, "lookout_config_last_reload_successful");
    st->reload_ok = isnan(ok) ? -1 : ok == 1;
    return 0;
}

static bool same_process(const lk_metrics_text *a, const lk_metrics_text *b)
{
    double sa = value_of(a, "process_start_time_seconds");
    double sb = value_of(b, "process_start_time_seconds");
    return isnan(sa) || isnan(sb) || sa == sb;
}

int lk_status_build(struct lk_status *st, const lk_metrics_text *prev, double interval,
                    const lk_metrics_text *cur, double now)
{
    memset(st, 0, sizeof(*st));
    st->state = LK_STATUS_READY;
    st->uptime = st->rss = st->cpu = st->mem_used = st->mem_limit = NAN;
    st->reload_ok = -1;
    if (prev != NULL && (interval <= 0 || !same_process(prev, cur)))
        prev = NULL;
    st->interval = prev != NULL ? interval : 0;
    st->has_spool = lk_metrics_text_find(cur, "lookout_spool_max_bytes") != NULL;
    for (size_t i = 0; i < lk_metrics_text_count(cur) && !st->has_spool; i++)
        st->has_spool = strcmp(lk_metrics_text_sample(cur, i)->name, "lookout_spool_batches") == 0;
    int rc = build_process(st, prev, interval, cur, now);
    if (rc == 0)
        rc = build_receivers(st, prev, interval, cur);
    if (rc == 0)
        rc = build_exporters(st, prev, interval, cur);
    if (rc == 0)
        rc = build_drops(st, prev, interval, cur);
    if (rc < 0)
        lk_status_fini(st);
    return rc;
}

void lk_status_unreachable(struct lk_status *st, const char *target, const char *why)
{
    memset(st, 0, sizeof(*st));
    st->state = LK_STATUS_UNREACHABLE;
    st->target = target;
    snprintf(st->error, sizeof(st->error), "%s", why);
    st->uptime = st->rss = st->cpu = st->mem_used = st->mem_limit = NAN;
    st->reload_ok = -1;
}

void lk_status_fini(struct lk_status *st)
{
    for (size_t i = 0; i < st->nreceivers; i++)
        free(st->receivers[i].name);
    for (size_t i = 0; i < st->nexporters; i++)
        free(st->exporters[i].name);
    for (size_t i = 0; i < st->ndrops; i++)
        free(st->drops[i].reason);
    free(st->receivers);
    free(st->exporters);
    free(st->drops);
    free(st->version);
    free(st->os);
    st->receivers = NULL;
    st->exporters = NULL;
    st->drops = NULL;
    st->version = st->os = NULL;
    st->nreceivers = st->nexporters = st->ndrops = 0;
}

bool lk_status_wants_metric(const char *name, size_t len, void *arg)
{
    (void)arg;
    return (len > 8 && memcmp(name, "lookout_", 8) == 0) ||
           (len > 8 && memcmp(name, "process_", 8) == 0);
}
