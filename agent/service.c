/*
 * The running agent (see service.h).
 *
 * Start-up is a reload from nothing: apply() compares the configuration it
 * is given with what runs and does only the difference, in an order that
 * keeps data flowing and can be undone until the first irreversible step:
 *
 *   1. listeners that are new or move (another endpoint or socket path) are
 *      bound, and new or changed exporters created; any failure undoes
 *      these and the old configuration stays in force;
 *   2. queues: an unchanged exporter keeps its queue per signal; a replaced
 *      one gets a new queue into which the old one's waiting items move (in
 *      order), while the old queue's batches in flight finish on the old
 *      exporter; a removed exporter's queue drains for up to
 *      shutdown_timeout and what is left is dropped (reason "reload");
 *   3. pipelines take their new queue lists (the pipeline objects stay, so
 *      receivers keep their pointers);
 *   4. kept receivers get their new limits and pipelines in place; removed
 *      and moved ones close; a lines receiver changed on the same path
 *      closes and starts again (its writers reconnect);
 *   5. exporters no longer used close once their last queue has drained.
 *
 * Configurations are kept until exit: running components may point into
 * the one they were built from.
 */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/membudget.h"
#include "exporters/loki.h"
#include "exporters/otlp.h"
#include "exporters/otlphttp.h"
#include "exporters/prometheus.h"
#include "exporters/remote_write.h"
#include "pipeline/pipeline.h"
#include "pipeline/queue.h"
#include "receivers/lines.h"
#include "receivers/otlp_grpc.h"
#include "receivers/otlp_http.h"
#include "storage/spool.h"

/* A running exporter. */
struct xslot {
    struct xslot *next;
    lk_exporter *e;
    const struct lk_exporter_config *cfg; /* in the configuration it was built from */
    int nq;       /* queues, active or retiring, that send to it */
    bool active;  /* in the configuration in force */
    bool closing;
    bool keep;    /* apply(): taken over by the new configuration */
};

/* A queue of one exporter for one signal. */
struct qslot {
    struct qslot *next;
    lk_queue *q;
    struct xslot *x;
    enum lk_signal sig;
    bool retiring; /* no longer in a pipeline: draining */
    bool keep;     /* apply(): taken over */
    uv_timer_t timer; /* retiring: the drain's deadline */
};

/* A running receiver (its listeners). */
struct rslot {
    struct rslot *next;
    const struct lk_receiver_config *cfg;
    lk_otlp_grpc *grpc;
    lk_otlp_http *http;
    lk_lines *lines;
    const struct lk_receiver_config *restart; /* lines: start this once closed */
};

static struct {
    uv_loop_t *loop;
    lk_metrics *m;
    lk_admin *admin;
    lk_config *cfg;
    lk_config **old;
    size_t nold;
    lk_pipeline *pipes[LK_SIGNAL_COUNT];
    struct xslot *xs;
    struct qslot *qs;
    struct rslot *rs;
    lk_spool *spool; /* storage: the disk spool, or NULL */
    lk_gauge *reload_ok, *reload_ts;
    lk_counter *reloads_ok, *reloads_failed;
    lk_gauge *mem_limit, *mem_peak, *mem_used[LK_MEM_KINDS];
    struct rclose *rcloses; /* receivers closing */
    int restarts;           /* lines receivers waiting to start again */
    uint64_t retire_ms; /* shutdown_timeout of the configuration being applied */
    /* shutdown */
    int stage; /* 0 running, 1 receivers closing, 2 draining, 3 exporters closing, 4 done */
    int pending;
    bool aborted;
    uv_timer_t deadline;
    void (*done)(void);
} S;

const lk_config *lk_service_config(void)
{
    return S.cfg;
}

/* ---- exporters ---- */

static int create_exporter(const struct lk_exporter_config *ec, lk_exporter **out)
{
    switch (ec->type) {
    case LK_EXPORTER_OTLPHTTP:
        return lk_otlphttp_exporter_create(out, S.loop, ec);
    case LK_EXPORTER_LOKI:
        return lk_loki_exporter_create(out, S.loop, ec, S.m);
    case LK_EXPORTER_PROMETHEUS:
        return lk_prometheus_exporter_create(out, S.loop, ec, S.m);
    case LK_EXPORTER_PROMETHEUSREMOTEWRITE:
        return lk_remote_write_exporter_create(out, S.loop, ec, S.m);
    default:
        return lk_otlp_exporter_create(out, S.loop, ec);
    }
}

static void stage_step(void);

static void one_done(void)
{
    if (--S.pending == 0)
        stage_step();
}

static void unlink_x(struct xslot *x)
{
    for (struct xslot **pp = &S.xs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            return;
        }
}

static void exporter_closed(void *arg)
{
    struct xslot *x = arg;
    unlink_x(x);
    free(x);
    if (S.stage == 3)
        one_done();
}

static void close_exporter(struct xslot *x)
{
    if (x->closing)
        return;
    x->closing = true;
    lk_exporter *e = x->e;
    x->e = NULL;
    e->ops->close(e, exporter_closed, x);
}

/* ---- queues ---- */

static void unlink_q(struct qslot *qs)
{
    for (struct qslot **pp = &S.qs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == qs) {
            *pp = qs->next;
            return;
        }
}

static void qslot_free(uv_handle_t *h)
{
    free(h->data);
}

/* A retiring queue is empty: it goes, and so does its exporter when no
 * longer used. */
static void retired_drained(void *arg)
{
    struct qslot *qs = arg;
    unlink_q(qs);
    lk_queue_destroy(qs->q);
    struct xslot *x = qs->x;
    uv_timer_stop(&qs->timer);
    uv_close((uv_handle_t *)&qs->timer, qslot_free);
    if (--x->nq == 0 && !x->active && x->e != NULL)
        close_exporter(x);
    if (S.stage == 2)
        one_done();
}

static void retire_deadline(uv_timer_t *t)
{
    struct qslot *qs = t->data;
    struct xslot *x = qs->x;
    lk_log(LK_LOG_WARN, "a removed exporter's queue did not drain within shutdown_timeout; "
                        "dropping what it holds",
           LK_S("exporter", x->cfg->name) LK_S("signal", lk_signal_name(qs->sig)));
    /* Every retiring queue of this exporter goes with it; the reference keeps
     * |x| while their drains end here. */
    x->nq++;
    for (struct qslot *q = S.qs, *n; q != NULL; q = n) {
        n = q->next;
        if (q->x == x && q->retiring)
            lk_queue_abort_reason(q->q, "reload");
    }
    x->nq--;
    /* Batches in flight end when their exporter closes. */
    if (!x->active && x->e != NULL)
        close_exporter(x);
}

static void retire_queue(struct qslot *qs)
{
    qs->retiring = true;
    uv_timer_init(S.loop, &qs->timer);
    qs->timer.data = qs;
    uv_timer_start(&qs->timer, retire_deadline, S.retire_ms, 0);
    lk_queue_drain(qs->q, retired_drained, qs); /* may run retired_drained at once */
}

/* Every exporter that sends to a backend uses the spool; the Prometheus
 * exposition holds its state in memory whatever happens. */
static lk_spool *spool_for(const struct lk_exporter_config *ec, lk_spool *sp)
{
    return ec->type == LK_EXPORTER_PROMETHEUS ? NULL : sp;
}

static struct qslot *new_queue(struct xslot *x, enum lk_signal sig, lk_spool *sp)
{
    struct qslot *qs = calloc(1, sizeof(*qs));
    if (qs == NULL)
        return NULL;
    struct lk_queue_opts qo = {
        .signal = sig,
        .queue = &x->cfg->queue,
        .batch = &x->cfg->batch,
        .retry = &x->cfg->retry,
        .max_concurrency = x->cfg->max_concurrency,
        .spool = sp != NULL ? lk_spool_stream_get(sp, x->cfg->name, sig) : NULL,
    };
    if ((sp != NULL && qo.spool == NULL) || lk_queue_create(&qs->q, S.loop, &qo, x->e, S.m) < 0) {
        lk_spool_stream_put(qo.spool);
        free(qs);
        return NULL;
    }
    qs->x = x;
    qs->sig = sig;
    x->nq++;
    qs->next = S.qs;
    S.qs = qs;
    return qs;
}

/* ---- receivers ---- */

static bool in_pipeline(const struct lk_pipeline_config *p, const char *name)
{
    for (size_t i = 0; i < p->nreceivers; i++)
        if (strcmp(p->receivers[i], name) == 0)
            return true;
    return false;
}

/* The pipelines |name| feeds under |c|; false when none. */
static bool membership(const lk_config *c, const char *name, lk_pipeline *mine[LK_SIGNAL_COUNT])
{
    bool used = false;
    for (int i = 0; i < LK_SIGNAL_COUNT; i++)
        mine[i] = NULL;
    for (size_t j = 0; j < c->npipelines; j++)
        if (in_pipeline(&c->pipelines[j], name)) {
            mine[c->pipelines[j].signal] = S.pipes[c->pipelines[j].signal];
            used = true;
        }
    return used;
}

/* Closes what |r| still holds; |r| is freed when the last part is closed. */
struct rclose {
    struct rclose *next, *prev; /* S.rcloses */
    struct rslot *r;
    int parts;
    bool counted; /* part of the shutdown: one_done when closed */
};

static void rpart_closed(void *arg)
{
    struct rclose *c = arg;
    if (--c->parts > 0)
        return;
    struct rslot *r = c->r;
    bool counted = c->counted;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        S.rcloses = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
    if (r->restart != NULL) {
        S.restarts--;
        lk_lines *l = NULL;
        int rc = S.stage != 0 ? 0 /* shutting down meanwhile */
                              : lk_lines_start(&l, S.loop, r->restart->name,
                                               &r->restart->lines, S.pipes[LK_SIGNAL_LOGS],
                                               S.m);
        if (rc < 0)
            lk_log(LK_LOG_ERROR, "reload: cannot start the changed lines receiver again",
                   LK_S("receiver", r->restart->name) LK_S("error", lk_strerror(rc)));
        for (struct rslot *n = S.rs; n != NULL && l != NULL; n = n->next)
            if (n->cfg == r->restart && n->lines == NULL) {
                n->lines = l;
                l = NULL;
            }
        if (l != NULL) /* no slot wants it any more */
            lk_lines_close(l, NULL, NULL);
    }
    free(r);
    if (counted)
        one_done();
}

static void close_rslot(struct rslot *r, bool counted)
{
    struct rclose *c = calloc(1, sizeof(*c));
    if (c == NULL) { /* leak rather than crash; the loop ends anyway */
        lk_log(LK_LOG_ERROR, "out of memory closing a receiver");
        if (counted)
            one_done();
        return;
    }
    c->next = S.rcloses;
    if (S.rcloses != NULL)
        S.rcloses->prev = c;
    S.rcloses = c;
    c->r = r;
    c->parts = 1;
    c->counted = counted;
    if (r->grpc != NULL) {
        c->parts++;
        lk_otlp_grpc_close(r->grpc, rpart_closed, c);
        r->grpc = NULL;
    }
    if (r->http != NULL) {
        c->parts++;
        lk_otlp_http_close(r->http, rpart_closed, c);
        r->http = NULL;
    }
    if (r->lines != NULL) {
        c->parts++;
        lk_lines_close(r->lines, rpart_closed, c);
        r->lines = NULL;
    }
    rpart_closed(c);
}

static struct rslot *find_rslot(struct rslot *list, const char *name)
{
    for (struct rslot *r = list; r != NULL; r = r->next)
        if (strcmp(r->cfg->name, name) == 0)
            return r;
    return NULL;
}

static struct xslot *find_active_x(const char *name)
{
    for (struct xslot *x = S.xs; x != NULL; x = x->next)
        if (x->active && strcmp(x->cfg->name, name) == 0)
            return x;
    return NULL;
}

static bool exporter_used(const lk_config *c, const char *name)
{
    for (size_t i = 0; i < c->npipelines; i++)
        for (size_t j = 0; j < c->pipelines[i].nexporters; j++)
            if (strcmp(c->pipelines[i].exporters[j], name) == 0)
                return true;
    return false;
}

/* ---- apply ---- */

struct plan {
    struct rslot *rs;          /* the receivers of the new configuration */
    struct xslot **xs;         /* per new exporter config: its slot (kept or new) */
    bool *xnew;
    lk_spool *spool;           /* the spool of the new configuration */
    bool spool_new;            /* opened for it */
    bool spool_unretired;      /* a retired one taken back */
};

/* Step 1 for storage: the same file stays open; another (or a first) one
 * is opened now, so that a file that cannot be opened fails the reload. */
static int plan_storage(struct plan *p, const lk_config *nc)
{
    if (nc->storage.path == NULL)
        return 0;
    lk_spool *open = lk_spool_find(nc->storage.path);
    if (open != NULL) {
        /* The same file, or one a reload retired and that still drains. */
        p->spool = open;
        p->spool_unretired = lk_spool_retired(open);
        if (p->spool_unretired)
            lk_spool_unretire(open);
        return 0;
    }
    char *err = NULL;
    int rc = lk_spool_open(&p->spool, S.loop, &nc->storage, S.m, &err);
    if (rc < 0) {
        lk_log(LK_LOG_ERROR, "cannot open the spool", LK_S("path", nc->storage.path)
               LK_S("error", err != NULL ? err : lk_strerror(rc)));
        free(err);
        p->spool = NULL;
        return rc;
    }
    p->spool_new = true;
    return 0;
}

/* Undoes step 1: closes what was started for the new configuration. */
static void rollback(struct plan *p, const lk_config *nc)
{
    if (p->spool_new)
        lk_spool_close(p->spool);
    if (p->spool_unretired)
        lk_spool_retire(p->spool);
    for (struct rslot *r = p->rs, *n; r != NULL; r = n) {
        n = r->next;
        struct rslot *old = find_rslot(S.rs, r->cfg->name);
        /* Close only the listeners this plan started. */
        if (old != NULL && r->grpc == old->grpc)
            r->grpc = NULL;
        if (old != NULL && r->http == old->http)
            r->http = NULL;
        if (old != NULL && r->lines == old->lines)
            r->lines = NULL;
        r->restart = NULL;
        close_rslot(r, false);
    }
    for (size_t i = 0; p->xs != NULL && i < nc->nexporters; i++)
        if (p->xnew[i] && p->xs[i] != NULL) {
            struct xslot *x = p->xs[i];
            x->next = S.xs; /* close_exporter's callback unlinks it */
            S.xs = x;
            close_exporter(x);
        }
}

/* Step 1 for receivers: a slot per receiver of |nc| that feeds a pipeline,
 * holding kept listeners or newly bound ones. */
static int plan_receivers(struct plan *p, const lk_config *nc)
{
    struct rslot **tail = &p->rs;
    for (size_t i = 0; i < nc->nreceivers; i++) {
        const struct lk_receiver_config *rc = &nc->receivers[i];
        lk_pipeline *mine[LK_SIGNAL_COUNT];
        if (!membership(nc, rc->name, mine)) {
            lk_log(LK_LOG_WARN, "receiver is in no pipeline, not started",
                   LK_S("receiver", rc->name));
            continue;
        }
        struct rslot *ns = calloc(1, sizeof(*ns));
        if (ns == NULL)
            return LK_ENOMEM;
        ns->cfg = rc;
        *tail = ns;
        tail = &ns->next;
        struct rslot *old = find_rslot(S.rs, rc->name);
        if (old != NULL && old->cfg->type != rc->type)
            old = NULL;
        int err = 0;
        if (rc->type == LK_RECEIVER_LINES) {
            if (old != NULL && old->lines != NULL &&
                lk_lines_receiver_config_equal(&old->cfg->lines, &rc->lines))
                ns->lines = old->lines;
            else if (old != NULL && old->lines != NULL &&
                     strcmp(old->cfg->lines.path, rc->lines.path) == 0)
                old->restart = rc; /* same path: after the old one closes */
            else
                err = lk_lines_start(&ns->lines, S.loop, rc->name, &rc->lines,
                                     S.pipes[LK_SIGNAL_LOGS], S.m);
        } else {
            if (rc->grpc.enabled) {
                if (old != NULL && old->grpc != NULL &&
                    strcmp(old->cfg->grpc.endpoint, rc->grpc.endpoint) == 0)
                    ns->grpc = old->grpc;
                else
                    err = lk_otlp_grpc_start(&ns->grpc, S.loop, rc->name, &rc->grpc, mine,
                                             S.m);
            }
            if (err == 0 && rc->http.enabled) {
                if (old != NULL && old->http != NULL &&
                    strcmp(old->cfg->http.endpoint, rc->http.endpoint) == 0)
                    ns->http = old->http;
                else
                    err = lk_otlp_http_start(&ns->http, S.loop, rc->name, &rc->http, mine,
                                             S.m);
            }
        }
        if (err < 0) {
            lk_log(LK_LOG_ERROR, "cannot start receiver", LK_S("receiver", rc->name)
                   LK_S("error", lk_strerror(err)));
            return err;
        }
    }
    return 0;
}

/* Step 1 for exporters: kept when unchanged, else created. */
static int plan_exporters(struct plan *p, const lk_config *nc)
{
    p->xs = calloc(nc->nexporters + 1, sizeof(*p->xs));
    p->xnew = calloc(nc->nexporters + 1, sizeof(*p->xnew));
    if (p->xs == NULL || p->xnew == NULL)
        return LK_ENOMEM;
    for (size_t i = 0; i < nc->nexporters; i++) {
        const struct lk_exporter_config *ec = &nc->exporters[i];
        if (!exporter_used(nc, ec->name))
            continue;
        struct xslot *old = find_active_x(ec->name);
        if (old != NULL && !old->closing && lk_exporter_config_equal(old->cfg, ec)) {
            p->xs[i] = old;
            continue;
        }
        struct xslot *x = calloc(1, sizeof(*x));
        if (x == NULL)
            return LK_ENOMEM;
        x->cfg = ec;
        int rc = create_exporter(ec, &x->e);
        if (rc < 0) {
            lk_log(LK_LOG_ERROR, "cannot create exporter", LK_S("exporter", ec->name)
                   LK_S("error", lk_strerror(rc)));
            free(x);
            return rc;
        }
        p->xs[i] = x;
        p->xnew[i] = true;
    }
    return 0;
}

static size_t exporter_index(const lk_config *c, const char *name)
{
    for (size_t i = 0; i < c->nexporters; i++)
        if (strcmp(c->exporters[i].name, name) == 0)
            return i;
    return c->nexporters;
}

/* The item forms besides OTLP that every exporter of |sig|'s pipeline
 * takes: Loki entries when each is a Loki exporter that sends them as they
 * are. */
static uint32_t pipeline_forms(const lk_config *c, enum lk_signal sig)
{
    for (size_t i = 0; i < c->npipelines; i++) {
        const struct lk_pipeline_config *pc = &c->pipelines[i];
        if (pc->signal != sig || pc->nexporters == 0)
            continue;
        for (size_t j = 0; j < pc->nexporters; j++) {
            size_t k = exporter_index(c, pc->exporters[j]);
            if (k == c->nexporters || !lk_loki_takes_entries_config(&c->exporters[k]))
                return 0;
        }
        return 1u << LK_FORM_LOKI_ENTRIES;
    }
    return 0;
}

static struct qslot *find_active_q(const char *exporter, enum lk_signal sig)
{
    for (struct qslot *q = S.qs; q != NULL; q = q->next)
        if (!q->retiring && q->sig == sig && strcmp(q->x->cfg->name, exporter) == 0)
            return q;
    return NULL;
}

/* Steps 2 to 5; nothing here fails but for memory, which is logged. */
static void commit(struct plan *p, lk_config *nc)
{
    /* Exporters: the new set is active; the rest becomes inactive. */
    for (struct xslot *x = S.xs; x != NULL; x = x->next)
        x->keep = false;
    for (size_t i = 0; i < nc->nexporters; i++)
        if (p->xs[i] != NULL) {
            struct xslot *x = p->xs[i];
            if (p->xnew[i]) {
                x->next = S.xs;
                S.xs = x;
            }
            x->cfg = &nc->exporters[i];
            x->keep = true;
        }

    /* Queues and pipelines. */
    S.retire_ms = nc->shutdown_timeout_ms;
    for (struct qslot *q = S.qs; q != NULL; q = q->next)
        q->keep = false;
    lk_queue **lists[LK_SIGNAL_COUNT] = {0};
    size_t nlist[LK_SIGNAL_COUNT] = {0};
    for (size_t i = 0; i < nc->npipelines; i++) {
        const struct lk_pipeline_config *pc = &nc->pipelines[i];
        lists[pc->signal] = calloc(pc->nexporters + 1, sizeof(lk_queue *));
        for (size_t j = 0; j < pc->nexporters && lists[pc->signal] != NULL; j++) {
            struct xslot *x = p->xs[exporter_index(nc, pc->exporters[j])];
            struct qslot *old = find_active_q(pc->exporters[j], pc->signal);
            struct qslot *qs = old;
            lk_spool *sp = spool_for(x->cfg, p->spool);
            lk_spool_stream *ost = old != NULL ? lk_queue_spool(old->q) : NULL;
            if (old != NULL && old->x == x && ost == NULL && sp != NULL) {
                /* Storage added: the queue keeps what it holds and spills from now on. */
                lk_spool_stream *st = lk_spool_stream_get(sp, x->cfg->name, pc->signal);
                if (st != NULL)
                    lk_queue_attach_spool(old->q, st);
                ost = st;
            }
            if (old == NULL || old->x != x ||
                (ost != NULL ? lk_spool_stream_spool(ost) : NULL) != sp) {
                qs = new_queue(x, pc->signal, sp);
                if (qs == NULL) {
                    lk_log(LK_LOG_ERROR, "reload: out of memory for a queue",
                           LK_S("exporter", pc->exporters[j]));
                    continue;
                }
                if (old != NULL)
                    lk_queue_move_waiting(old->q, qs->q);
            }
            qs->keep = true;
            lists[pc->signal][nlist[pc->signal]++] = qs->q;
        }
    }
    for (int s = 0; s < LK_SIGNAL_COUNT; s++) {
        lk_pipeline_set_durable(S.pipes[s], p->spool != NULL && nc->storage.durable);
        if (lk_pipeline_set_queues(S.pipes[s], lists[s], nlist[s]) == 0) {
            lk_pipeline_set_forms(S.pipes[s], pipeline_forms(nc, (enum lk_signal)s));
        } else {
            lk_log(LK_LOG_ERROR, "reload: out of memory for a pipeline; it keeps its queues",
                   LK_S("signal", lk_signal_name((enum lk_signal)s)));
            for (struct qslot *q = S.qs; q != NULL; q = q->next)
                if (q->sig == (enum lk_signal)s && !q->retiring)
                    q->keep = true; /* the pipeline still sends to the old ones */
        }
        free(lists[s]);
    }
    for (struct qslot *q = S.qs, *n; q != NULL; q = n) {
        n = q->next; /* retire_queue may free q */
        if (!q->keep && !q->retiring)
            retire_queue(q);
    }
    /* The spool: the same one takes the new limits; one no longer named
     * closes once the queues that use it have drained. */
    if (p->spool != NULL && !p->spool_new)
        lk_spool_update(p->spool, &nc->storage);
    if (S.spool != NULL && S.spool != p->spool)
        lk_spool_retire(S.spool);
    if (p->spool != NULL && p->spool != S.spool)
        lk_spool_warn_unused(p->spool);
    S.spool = p->spool;
    p->spool_new = false;

    /* Receivers: kept listeners get the new limits and pipelines; the rest close. */
    for (struct rslot *r = p->rs; r != NULL; r = r->next) {
        lk_pipeline *mine[LK_SIGNAL_COUNT];
        (void)membership(nc, r->cfg->name, mine);
        struct rslot *old = find_rslot(S.rs, r->cfg->name);
        if (old != NULL && r->grpc != NULL && r->grpc == old->grpc) {
            lk_otlp_grpc_update(r->grpc, &r->cfg->grpc, mine);
            old->grpc = NULL;
        }
        if (old != NULL && r->http != NULL && r->http == old->http) {
            lk_otlp_http_update(r->http, &r->cfg->http, mine);
            old->http = NULL;
        }
        if (old != NULL && r->lines != NULL && r->lines == old->lines)
            old->lines = NULL;
        if (r->lines != NULL)
            lk_lines_set_pipeline(r->lines, S.pipes[LK_SIGNAL_LOGS]);
    }
    struct rslot *olds = S.rs;
    S.rs = p->rs;
    p->rs = NULL;
    for (struct rslot *r = olds, *n; r != NULL; r = n) {
        n = r->next;
        if (r->restart != NULL)
            S.restarts++;
        close_rslot(r, false);
    }

    /* Exporters no longer used close once their queues drained. */
    for (struct xslot *x = S.xs, *n; x != NULL; x = n) {
        n = x->next;
        x->active = x->keep;
        if (!x->active && x->nq == 0 && !x->closing)
            close_exporter(x);
    }
    const struct xslot *render = NULL;
    for (const struct xslot *x = S.xs; x != NULL; x = x->next)
        if (x->active && x->cfg->type == LK_EXPORTER_PROMETHEUS && x->cfg->endpoint == NULL)
            render = x;
    if (S.admin != NULL)
        lk_admin_set_renderer(S.admin, render ? lk_prometheus_exporter_render : NULL,
                              render ? render->e : NULL);

    lk_log_level_set(nc->log_level);
    lk_mem_set_limit((size_t)nc->memory_limit);
    if (S.cfg != NULL) {
        lk_config **o = realloc(S.old, (S.nold + 1) * sizeof(*o));
        if (o != NULL) {
            S.old = o;
            S.old[S.nold++] = S.cfg;
        } /* else: leaked rather than freed under running components */
    }
    S.cfg = nc;
}

static int apply(lk_config *nc)
{
    struct plan p = {0};
    int rc = plan_storage(&p, nc);
    if (rc == 0)
        rc = plan_receivers(&p, nc);
    if (rc == 0)
        rc = plan_exporters(&p, nc);
    if (rc < 0) {
        rollback(&p, nc);
        for (struct rslot *r = S.rs; r != NULL; r = r->next)
            r->restart = NULL;
        free(p.xs);
        free(p.xnew);
        return rc;
    }
    commit(&p, nc);
    free(p.xs);
    free(p.xnew);
    return 0;
}

static void collect_memory(lk_metrics *m, void *arg)
{
    (void)m;
    (void)arg;
    lk_gauge_set(S.mem_limit, (double)lk_mem_limit());
    lk_gauge_set(S.mem_peak, (double)lk_mem_peak());
    for (int k = LK_MEM_NONE + 1; k < LK_MEM_KINDS; k++)
        lk_gauge_set(S.mem_used[k], (double)lk_mem_used_by((enum lk_mem_kind)k));
}

static void register_metrics(void)
{
    char labels[64];
    S.mem_limit = lk_metrics_gauge(S.m, "lookout_memory_limit_bytes",
                                   "memory_limit: the budget for the data lookout holds.", "");
    S.mem_peak = lk_metrics_gauge(S.m, "lookout_memory_peak_bytes",
                                  "The most the budget has been charged since start.", "");
    for (int k = LK_MEM_NONE + 1; k < LK_MEM_KINDS; k++) {
        snprintf(labels, sizeof(labels), "kind=\"%s\"", lk_mem_kind_name((enum lk_mem_kind)k));
        S.mem_used[k] = lk_metrics_gauge(S.m, "lookout_memory_used_bytes",
                                         "Bytes charged to memory_limit, by what holds them.",
                                         labels);
    }
    lk_metrics_on_collect(S.m, collect_memory, NULL);
    S.reload_ok = lk_metrics_gauge(S.m, "lookout_config_last_reload_successful",
                                   "1 when the last configuration load succeeded.", "");
    S.reload_ts = lk_metrics_gauge(S.m, "lookout_config_last_reload_success_timestamp_seconds",
                                   "Unix time of the last successful configuration load.", "");
    S.reloads_ok = lk_metrics_counter(S.m, "lookout_config_reloads_total",
                                      "Configuration reloads, by result.",
                                      "result=\"success\"");
    S.reloads_failed = lk_metrics_counter(S.m, "lookout_config_reloads_total",
                                          "Configuration reloads, by result.",
                                          "result=\"failure\"");
}

int lk_service_start(uv_loop_t *loop, lk_config *cfg, lk_metrics *m, lk_admin *admin)
{
    S.loop = loop;
    S.m = m;
    S.admin = admin;
    register_metrics();
    uv_timer_init(loop, &S.deadline);
    S.cfg = cfg; /* until apply() takes it, for lk_service_fini and shutdown */
    for (int s = 0; s < LK_SIGNAL_COUNT; s++)
        if (lk_pipeline_create(&S.pipes[s], (enum lk_signal)s, NULL, 0) < 0)
            return LK_ENOMEM;
    /* The components point into |cfg|; a failed start keeps it for lk_service_fini. */
    S.cfg = NULL;
    int rc = apply(cfg);
    if (rc < 0) {
        S.cfg = cfg;
        return rc;
    }
    lk_gauge_set(S.reload_ok, 1);
    lk_gauge_set(S.reload_ts, (double)time(NULL));
    return 0;
}

int lk_service_reload(char **errors)
{
    *errors = NULL;
    if (S.stage != 0)
        return LK_ECLOSED;
    if (S.restarts > 0) /* the last reload is still moving a line socket */
        return LK_EAGAIN;
    lk_config *nc = NULL;
    char *why = NULL;
    int rc = lk_config_load(S.cfg->path, &nc, &why);
    if (rc == 0 && strcmp(nc->admin.endpoint, S.cfg->admin.endpoint) != 0)
        lk_log(LK_LOG_WARN, "reload: admin.endpoint needs a restart; the admin listener stays "
                            "where it is",
               LK_S("endpoint", S.cfg->admin.endpoint) LK_S("new", nc->admin.endpoint));
    if (rc == 0)
        rc = apply(nc);
    else
        nc = NULL;
    if (rc < 0) {
        lk_config_destroy(nc);
        lk_gauge_set(S.reload_ok, 0);
        lk_counter_add(S.reloads_failed, 1);
        if (why != NULL) {
            /* One log line per error, as in the file. */
            for (char *line = why, *nl; line != NULL && *line != '\0'; line = nl) {
                nl = strchr(line, '\n');
                if (nl != NULL)
                    *nl++ = '\0';
                lk_log(LK_LOG_ERROR, "reload: invalid configuration, the running one stays",
                       LK_S("error", line));
                if (nl != NULL)
                    nl[-1] = '\n';
            }
        } else {
            lk_log(LK_LOG_ERROR, "reload failed, the running configuration stays",
                   LK_S("error", lk_strerror(rc)));
            size_t n = strlen(lk_strerror(rc)) + 2;
            why = malloc(n);
            if (why != NULL)
                snprintf(why, n, "%s\n", lk_strerror(rc));
        }
        *errors = why;
        return rc;
    }
    free(why);
    lk_gauge_set(S.reload_ok, 1);
    lk_gauge_set(S.reload_ts, (double)time(NULL));
    lk_counter_add(S.reloads_ok, 1);
    lk_log(LK_LOG_INFO, "configuration reloaded", LK_S("config", S.cfg->path));
    return 0;
}

/* ---- shutdown ---- */

static void deadline_cb(uv_timer_t *t)
{
    (void)t;
    lk_log(LK_LOG_WARN, "shutdown_timeout reached, dropping what is still queued",
           LK_U("shutdown_timeout_ms", S.cfg->shutdown_timeout_ms));
    S.aborted = true;
    /* Held so that what ends synchronously below cannot move the shutdown
     * to its next stage while these loops run. */
    S.pending++;
    for (struct qslot *q = S.qs, *n; q != NULL; q = n) {
        n = q->next;
        lk_queue_abort(q->q);
    }
    /* Batches still in flight end when their exporter closes. */
    if (S.stage <= 2) {
        if (S.admin != NULL)
            lk_admin_set_renderer(S.admin, NULL, NULL);
        for (struct xslot *x = S.xs, *n; x != NULL; x = n) {
            n = x->next;
            if (x->e != NULL)
                close_exporter(x);
        }
    }
    one_done();
}

static void queue_drained(void *arg)
{
    (void)arg;
    one_done();
}

static void stage_step(void)
{
    S.stage++;
    if (S.stage == 2) {
        S.pending = 1;
        for (struct qslot *q = S.qs; q != NULL; q = q->next) {
            S.pending++;
            if (!q->retiring) /* with a spool: to disk, not to the backend */
                lk_queue_park(q->q, queue_drained, NULL);
            else if (lk_queue_spool(q->q) != NULL)
                lk_queue_park(q->q, retired_drained, q);
            /* retiring ones call one_done from retired_drained */
        }
        one_done();
    } else if (S.stage == 3) {
        uv_timer_stop(&S.deadline);
        if (S.admin != NULL) /* a scrape must not render a closed exporter */
            lk_admin_set_renderer(S.admin, NULL, NULL);
        S.pending = 1;
        for (struct xslot *x = S.xs, *n; x != NULL; x = n) {
            n = x->next;
            S.pending++; /* closing ones call one_done when closed */
            close_exporter(x);
        }
        one_done();
    } else if (S.stage == 4) {
        for (struct qslot *q = S.qs, *n; q != NULL; q = n) {
            n = q->next;
            lk_queue_destroy(q->q);
            free(q);
        }
        S.qs = NULL;
        if (S.spool != NULL) /* what was parked is written before it closes */
            lk_spool_close(S.spool);
        S.spool = NULL;
        uv_close((uv_handle_t *)&S.deadline, NULL);
        if (S.done != NULL)
            S.done();
    }
}

void lk_service_shutdown(void (*done)(void))
{
    if (S.stage != 0) {
        if (!S.aborted) {
            lk_log(LK_LOG_WARN, "second signal, not waiting for the queues");
            deadline_cb(&S.deadline);
        }
        return;
    }
    S.done = done;
    uv_timer_start(&S.deadline, deadline_cb, S.cfg->shutdown_timeout_ms, 0);
    S.stage = 1;
    S.pending = 1;
    for (struct rclose *c = S.rcloses; c != NULL; c = c->next)
        if (!c->counted) { /* closed by a reload, not closed yet */
            c->counted = true;
            S.pending++;
        }
    for (struct rslot *r = S.rs, *n; r != NULL; r = n) {
        n = r->next;
        S.pending++;
        r->restart = NULL;
        close_rslot(r, true);
    }
    S.rs = NULL;
    one_done();
}

void lk_service_fini(void)
{
    for (int s = 0; s < LK_SIGNAL_COUNT; s++) {
        lk_pipeline_destroy(S.pipes[s]);
        S.pipes[s] = NULL;
    }
    for (size_t i = 0; i < S.nold; i++)
        lk_config_destroy(S.old[i]);
    free(S.old);
    S.old = NULL;
    S.nold = 0;
    lk_config_destroy(S.cfg);
    S.cfg = NULL;
}
