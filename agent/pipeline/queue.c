#include "pipeline/queue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/membudget.h"
#include "core/log.h"
#include "storage/spool.h"

struct lk_batch {
    lk_queue *q;
    lk_batch *next; /* in the queue's list of live batches */
    lk_batch *prev;
    lk_item **items;
    int64_t *rows;      /* spool row of each item, 0 for none */
    struct iovec *iov;
    size_t n;
    uint64_t count;
    uint64_t rejected; /* of |count|, refused by the backend on success */
    size_t bytes;
    unsigned attempt;
    uint64_t first_ms;  /* loop time of the first attempt */
    uint64_t start_ns;  /* hrtime of the current attempt */
    uv_timer_t backoff; /* armed between attempts */
    bool waiting;       /* in backoff */
    void *state;        /* the exporter's, across attempts (lk_batch_set_state) */
    void (*state_free)(void *state);
    size_t charged;     /* LK_MEM_EXPORTERS, from the first attempt to the end */
};

struct lk_queue {
    uv_loop_t *loop;
    lk_exporter *exp;
    lk_metrics *metrics;
    struct lk_queue_opts o;
    struct lk_queue_config qcfg;
    struct lk_batch_config bcfg;
    struct lk_retry_config rcfg;

    /* Items waiting for a batch: a ring of item pointers, and of their spool
     * rows (0: in memory only). */
    lk_item **ring;
    int64_t *ring_row;
    size_t ring_cap;
    size_t head;
    size_t nqueued;
    uint64_t queued_items;
    size_t queued_bytes;

    /* Held = waiting + in batches (in flight or backing off). */
    uint64_t held_items;
    size_t held_bytes;

    lk_batch *batches;
    uint32_t nbatches;

    lk_spool_stream *st; /* NULL: memory only */
    bool owns;           /* reads |st| back (a replacement queue took it over) */
    bool parking;        /* shutdown: to the spool, not the backend */

    uv_timer_t timer; /* batch timeout */
    bool draining;
    bool aborted;
    const char *abort_reason; /* static: "shutdown", "reload" */
    void (*drain_done)(void *);
    void *drain_arg;
    uint64_t rng;

    lk_counter *sent;
    lk_counter *failed;
    lk_counter *retries;
    lk_gauge *size_gauge;
    lk_gauge *cap_gauge;
    lk_histogram *duration;
};

static const char *const item_word[] = {"spans", "metric_points", "log_records"};

static const double duration_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10,  30};

static void try_dispatch(lk_queue *q);
static void maybe_read(lk_queue *q);

static void update_gauge(lk_queue *q)
{
    lk_gauge_set(q->size_gauge, (double)q->held_items);
}

/* What the queue's spool stream still holds for it to send. */
static bool spool_pending(const lk_queue *q)
{
    return q->st != NULL && q->owns &&
           (lk_spool_stream_disk_rows(q->st) > 0 || lk_spool_stream_writing(q->st) > 0);
}

static void check_drained(lk_queue *q)
{
    if (q->drain_done != NULL && q->held_items == 0 && q->nbatches == 0 &&
        (q->parking || q->aborted || !spool_pending(q))) {
        void (*cb)(void *) = q->drain_done;
        q->drain_done = NULL;
        cb(q->drain_arg);
    }
}

void lk_queue_count_dropped(lk_queue *q, uint64_t count, const char *reason)
{
    char labels[512];
    snprintf(labels, sizeof(labels),
             "signal=\"%s\",reason=\"%s\",exporter=\"%s\"",
             lk_signal_name(q->o.signal), reason, q->exp->name);
    lk_counter_add(lk_metrics_counter(q->metrics, "lookout_dropped_items_total",
                                      "Items (spans, points, records) dropped, "
                                      "by reason.",
                                      labels),
                   count);
}

static bool spool_appended(void *owner, lk_item *it, int64_t row, int status);
static void spool_read(void *owner, lk_item **items, const int64_t *rows, size_t n);
static const struct lk_spool_owner_ops spool_ops = {spool_appended, spool_read};

int lk_queue_create(lk_queue **out, uv_loop_t *loop,
                    const struct lk_queue_opts *o, lk_exporter *exp,
                    lk_metrics *m)
{
    char labels[256], name[128], help[160];
    lk_queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return LK_ENOMEM;
    q->loop = loop;
    q->exp = exp;
    q->metrics = m;
    q->o = *o;
    q->qcfg = *o->queue;
    q->bcfg = *o->batch;
    q->rcfg = *o->retry;
    q->o.queue = &q->qcfg;
    q->o.batch = &q->bcfg;
    q->o.retry = &q->rcfg;
    if (q->o.max_concurrency == 0)
        q->o.max_concurrency = 1;
    q->ring_cap = 64;
    q->ring = malloc(q->ring_cap * sizeof(*q->ring));
    q->ring_row = malloc(q->ring_cap * sizeof(*q->ring_row));
    if (q->ring == NULL || q->ring_row == NULL) {
        free(q->ring);
        free(q->ring_row);
        free(q);
        return LK_ENOMEM;
    }
    q->rng = uv_hrtime() | 1;
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    q->o.spool = NULL;
    if (o->spool != NULL) {
        q->st = o->spool;
        q->owns = true;
        lk_spool_stream_set_owner(q->st, &spool_ops, q);
    }
    maybe_read(q); /* what an earlier run left */

    const char *word = item_word[o->signal];
    snprintf(labels, sizeof(labels), "exporter=\"%s\"", exp->name);
    snprintf(name, sizeof(name), "lookout_exporter_sent_%s_total", word);
    snprintf(help, sizeof(help), "%s the backend accepted.", word);
    q->sent = lk_metrics_counter(m, name, help, labels);
    snprintf(name, sizeof(name), "lookout_exporter_send_failed_%s_total", word);
    snprintf(help, sizeof(help),
             "%s given up on (permanent error, retries exhausted, shutdown).",
             word);
    q->failed = lk_metrics_counter(m, name, help, labels);
    snprintf(labels, sizeof(labels), "exporter=\"%s\",signal=\"%s\"", exp->name,
             lk_signal_name(o->signal));
    q->retries = lk_metrics_counter(m, "lookout_exporter_retries_total",
                                    "Export attempts that will be retried.",
                                    labels);
    q->size_gauge = lk_metrics_gauge(m, "lookout_exporter_queue_size",
                                     "Items held: waiting, in flight or "
                                     "backing off.",
                                     labels);
    q->cap_gauge = lk_metrics_gauge(m, "lookout_exporter_queue_capacity",
                                    "Most items the queue may hold.", labels);
    lk_gauge_set(q->cap_gauge, (double)q->qcfg.queue_size);
    q->duration = lk_metrics_histogram(
        m, "lookout_exporter_request_duration_seconds",
        "Duration of export attempts, by exporter.", labels, duration_bounds,
        sizeof(duration_bounds) / sizeof(duration_bounds[0]));
    *out = q;
    return 0;
}

static bool mem_room(const lk_queue *q, uint64_t count, size_t bytes)
{
    return q->held_items + count <= q->qcfg.queue_size &&
           q->held_bytes + bytes <= q->qcfg.max_bytes;
}

static bool durable(const lk_queue *q)
{
    return q->st != NULL && lk_spool_durable(lk_spool_stream_spool(q->st));
}

/* Older items are on their way to the disk or on it: new ones follow them. */
static bool spilling(const lk_queue *q)
{
    return q->st != NULL &&
           (lk_spool_stream_disk_rows(q->st) > 0 || lk_spool_stream_writing(q->st) > 0);
}

bool lk_queue_has_room(const lk_queue *q, uint64_t count, size_t bytes)
{
    if (q->st == NULL)
        return mem_room(q, count, bytes);
    if (!durable(q) && !spilling(q) && mem_room(q, count, bytes))
        return true;
    return lk_spool_stream_has_room(q->st, bytes);
}

struct lk_spool_stream *lk_queue_spool(const lk_queue *q)
{
    return q->st;
}

enum lk_overflow lk_queue_overflow(const lk_queue *q)
{
    return q->qcfg.overflow;
}

uint64_t lk_queue_held_items(const lk_queue *q)
{
    return q->held_items;
}

static int ring_grow(lk_queue *q)
{
    size_t ncap = q->ring_cap * 2;
    lk_item **r = malloc(ncap * sizeof(*r));
    int64_t *rr = malloc(ncap * sizeof(*rr));
    if (r == NULL || rr == NULL) {
        free(r);
        free(rr);
        return LK_ENOMEM;
    }
    for (size_t i = 0; i < q->nqueued; i++) {
        r[i] = q->ring[(q->head + i) % q->ring_cap];
        rr[i] = q->ring_row[(q->head + i) % q->ring_cap];
    }
    free(q->ring);
    free(q->ring_row);
    q->ring = r;
    q->ring_row = rr;
    q->ring_cap = ncap;
    q->head = 0;
    return 0;
}

void lk_queue_limits(const lk_queue *q, uint64_t *items, size_t *bytes)
{
    *items = q->qcfg.queue_size;
    *bytes = q->qcfg.max_bytes;
}

/* Puts |it| (a new reference) at the end of the ring. */
static int ring_push(lk_queue *q, lk_item *it, int64_t row)
{
    if (q->nqueued == q->ring_cap && ring_grow(q) < 0)
        return LK_ENOMEM;
    size_t at = (q->head + q->nqueued) % q->ring_cap;
    q->ring[at] = lk_item_ref(it);
    q->ring_row[at] = row;
    q->nqueued++;
    q->queued_items += it->count;
    q->queued_bytes += it->len;
    q->held_items += it->count;
    q->held_bytes += it->len;
    return 0;
}

/* Reads the spool back while memory has room for more. */
static void maybe_read(lk_queue *q)
{
    if (q->st == NULL || !q->owns || q->parking || q->aborted ||
        q->held_items >= q->qcfg.queue_size / 2 || q->held_bytes >= q->qcfg.max_bytes / 2)
        return;
    size_t room = q->qcfg.max_bytes / 2 - q->held_bytes;
    (void)lk_spool_stream_read(q->st, room < 8u << 20 ? room : 8u << 20);
}

/* With a spool: to the disk when the item must wait behind what is there,
 * or does not fit in memory, or the spool is durable. 1: not for the spool. */
static int push_spool(lk_queue *q, lk_item *it, bool over, lk_ack *ack)
{
    bool dur = durable(q);
    /* Memory may take it without passing anything on disk; |over|: past
     * the caps, as without a spool. */
    if (!dur && !q->parking && !spilling(q) && (over || mem_room(q, it->count, it->len)))
        return 1;
    if (!over && !lk_spool_stream_has_room(q->st, it->len)) {
        lk_queue_count_dropped(q, it->count, "spool_full");
        return LK_EAGAIN;
    }
    lk_spool_stream_append(q->st, it, dur ? ack : NULL);
    return 0;
}

static int push(lk_queue *q, lk_item *it, bool over, lk_ack *ack)
{
    if (q->st != NULL) {
        int rc = push_spool(q, it, over, ack);
        if (rc <= 0)
            return rc;
    }
    if (q->aborted || (!over && !lk_queue_has_room(q, it->count, it->len)) ||
        ring_push(q, it, 0) < 0) {
        lk_queue_count_dropped(q, it->count, q->aborted ? q->abort_reason : "queue_full");
        return LK_EAGAIN;
    }
    update_gauge(q);
    try_dispatch(q);
    return 0;
}

int lk_queue_push(lk_queue *q, lk_item *it)
{
    return push(q, it, false, NULL);
}

int lk_queue_push_acked(lk_queue *q, lk_item *it, lk_ack *ack)
{
    return push(q, it, false, ack);
}

int lk_queue_push_over(lk_queue *q, lk_item *it)
{
    return push(q, it, true, NULL);
}

/* Storage changed: what |from| holds only in memory moves (on to |to|'s
 * spool, as it decides); what it has on its own spool stays with it. */
static void move_unspooled(lk_queue *from, lk_queue *to)
{
    size_t keep = 0, n = from->nqueued;
    for (size_t i = 0; i < n; i++) {
        size_t at = (from->head + i) % from->ring_cap;
        lk_item *it = from->ring[at];
        int64_t row = from->ring_row[at];
        if (row != 0) {
            size_t to_at = (from->head + keep++) % from->ring_cap;
            from->ring[to_at] = it;
            from->ring_row[to_at] = row;
            continue;
        }
        from->queued_items -= it->count;
        from->queued_bytes -= it->len;
        from->held_items -= it->count;
        from->held_bytes -= it->len;
        (void)push(to, it, true, NULL); /* counted there if it cannot be held */
        lk_item_unref(it);
    }
    from->nqueued = keep;
    update_gauge(from);
    check_drained(from);
}

void lk_queue_attach_spool(lk_queue *q, struct lk_spool_stream *st)
{
    q->st = st;
    q->owns = true;
    lk_spool_stream_set_owner(st, &spool_ops, q);
    maybe_read(q);
}

void lk_queue_move_waiting(lk_queue *from, lk_queue *to)
{
    if (from->st != to->st) {
        move_unspooled(from, to);
        return;
    }
    uv_timer_stop(&from->timer);
    if (from->st != NULL) {
        from->owns = false;
        to->owns = true;
        lk_spool_stream_set_owner(to->st, &spool_ops, to);
    }
    while (from->nqueued > 0) {
        lk_item *it = from->ring[from->head];
        int64_t row = from->ring_row[from->head];
        from->head = (from->head + 1) % from->ring_cap;
        from->nqueued--;
        from->queued_items -= it->count;
        from->queued_bytes -= it->len;
        from->held_items -= it->count;
        from->held_bytes -= it->len;
        if (ring_push(to, it, row) < 0) /* the caps do not apply here */
            lk_queue_count_dropped(to, it->count, "queue_full");
        lk_item_unref(it);
    }
    update_gauge(to);
    try_dispatch(to);
    update_gauge(from);
    check_drained(from);
}

static void batch_free_cb(uv_handle_t *h)
{
    lk_batch *b = h->data;
    if (b->state_free != NULL)
        b->state_free(b->state);
    lk_mem_release(LK_MEM_EXPORTERS, b->charged);
    free(b->items);
    free(b->rows);
    free(b->iov);
    free(b);
}

/* Unlinks |b|, releases what it holds and frees it (after its timer closes).
 * Its spool rows are deleted: it was sent or given up, unless |keep_rows|. */
static void batch_release_rows(lk_batch *b, bool keep_rows)
{
    lk_queue *q = b->q;
    for (size_t i = 0; i < b->n; i++) {
        if (b->rows[i] != 0 && !keep_rows)
            lk_spool_stream_delete(q->st, b->rows[i], b->items[i]->len);
        lk_item_unref(b->items[i]);
    }
    q->held_items -= b->count;
    q->held_bytes -= b->bytes;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        q->batches = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    q->nbatches--;
    uv_close((uv_handle_t *)&b->backoff, batch_free_cb);
    update_gauge(q);
    maybe_read(q);
}

static void batch_release(lk_batch *b)
{
    batch_release_rows(b, false);
}

/* Writes the batch's items that are not on disk before everything in the
 * spool, last item first so that they keep their order; keeps its rows. */
static void batch_park(lk_batch *b)
{
    for (size_t i = b->n; i-- > 0;)
        if (b->rows[i] == 0)
            lk_spool_stream_prepend(b->q->st, b->items[i], b->attempt);
    batch_release_rows(b, true);
}

static void batch_send(lk_batch *b)
{
    lk_queue *q = b->q;
    b->attempt++;
    b->start_ns = uv_hrtime();
    if (b->attempt == 1) {
        /* What the exporter makes of the batch (an encoded, maybe
         * compressed, body kept for retries; gRPC core's copy) is charged
         * at the batch's own size, an upper estimate, whatever the limit. */
        b->charged = b->bytes;
        lk_mem_charge(LK_MEM_EXPORTERS, b->charged);
    }
    int rc = q->exp->ops->send(q->exp, b);
    if (rc < 0)
        lk_batch_done(b, LK_EXPORT_RETRY, -1, "send_error");
}

/* Takes items from the head of the ring into a new batch and sends it. */
static int cut_batch(lk_queue *q)
{
    size_t n = 0;
    uint64_t count = 0;
    size_t bytes = 0;

    while (n < q->nqueued) {
        lk_item *it = q->ring[(q->head + n) % q->ring_cap];
        if (n > 0 && (count + it->count > q->bcfg.send_batch_size ||
                      bytes + it->len > q->bcfg.send_batch_max_bytes))
            break;
        count += it->count;
        bytes += it->len;
        n++;
    }
    lk_batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return LK_ENOMEM;
    b->items = malloc(n * sizeof(*b->items));
    b->rows = malloc(n * sizeof(*b->rows));
    b->iov = malloc(n * sizeof(*b->iov));
    if (b->items == NULL || b->rows == NULL || b->iov == NULL) {
        free(b->items);
        free(b->rows);
        free(b->iov);
        free(b);
        return LK_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        lk_item *it = q->ring[q->head];
        b->rows[i] = q->ring_row[q->head];
        q->head = (q->head + 1) % q->ring_cap;
        b->items[i] = it;
        b->iov[i].iov_base = it->data;
        b->iov[i].iov_len = it->len;
    }
    q->nqueued -= n;
    q->queued_items -= count;
    q->queued_bytes -= bytes;
    b->n = n;
    b->count = count;
    b->bytes = bytes;
    b->q = q;
    b->first_ms = uv_now(q->loop);
    uv_timer_init(q->loop, &b->backoff);
    b->backoff.data = b;
    b->next = q->batches;
    if (q->batches != NULL)
        q->batches->prev = b;
    q->batches = b;
    q->nbatches++;
    batch_send(b);
    return 0;
}

static void batch_timer_cb(uv_timer_t *t)
{
    try_dispatch(t->data);
}

static void try_dispatch(lk_queue *q)
{
    while (q->nqueued > 0 && q->nbatches < q->o.max_concurrency) {
        lk_item *oldest = q->ring[q->head];
        uint64_t age = uv_now(q->loop) - oldest->arrived_ms;
        bool full = q->queued_items >= q->bcfg.send_batch_size ||
                    q->queued_bytes >= q->bcfg.send_batch_max_bytes;
        if (!full && !q->draining && age < q->bcfg.timeout_ms) {
            if (!uv_is_active((uv_handle_t *)&q->timer))
                uv_timer_start(&q->timer, batch_timer_cb,
                               q->bcfg.timeout_ms - age, 0);
            return;
        }
        if (cut_batch(q) < 0) {
            /* Out of memory: try again on the next timer tick. */
            uv_timer_start(&q->timer, batch_timer_cb, 100, 0);
            return;
        }
    }
    if (q->nqueued == 0)
        uv_timer_stop(&q->timer);
}

static uint64_t next_random(lk_queue *q)
{
    q->rng ^= q->rng << 13;
    q->rng ^= q->rng >> 7;
    q->rng ^= q->rng << 17;
    return q->rng;
}

static uint64_t backoff_ms(lk_queue *q, unsigned attempt)
{
    double d = (double)q->rcfg.initial_interval_ms *
               pow(q->rcfg.multiplier, (double)(attempt - 1));
    if (d > (double)q->rcfg.max_interval_ms)
        d = (double)q->rcfg.max_interval_ms;
    double unit = (double)(next_random(q) >> 11) / 9007199254740992.0; /* [0,1) */
    d *= 1.0 + q->rcfg.randomization_factor * (2.0 * unit - 1.0);
    return d < 1 ? 1 : (uint64_t)d;
}

static void backoff_cb(uv_timer_t *t)
{
    lk_batch *b = t->data;
    b->waiting = false;
    batch_send(b);
}

static void give_up(lk_batch *b, const char *reason)
{
    lk_queue *q = b->q;
    if (q->st != NULL && (q->aborted || q->parking)) {
        batch_park(b); /* sent after the next start */
        return;
    }
    lk_counter_add(q->failed, b->count);
    /* Items the backend refused were counted as dropped then. */
    lk_queue_count_dropped(q, b->count - b->rejected, reason);
    batch_release(b);
}

void lk_batch_done(lk_batch *b, enum lk_export_result r, int64_t retry_after_ms,
                   const char *reason)
{
    lk_queue *q = b->q;
    double secs = (double)(uv_hrtime() - b->start_ns) / 1e9;
    lk_histogram_observe(q->duration, secs);

    if (r == LK_EXPORT_OK) {
        lk_counter_add(q->sent, b->count - b->rejected);
        lk_counter_add(q->failed, b->rejected);
        batch_release(b);
    } else if (r == LK_EXPORT_PERMANENT) {
        lk_log(LK_LOG_WARN, "export refused by backend, dropping batch",
               LK_S("exporter", q->exp->name) LK_S("reason", reason)
               LK_U("items", b->count));
        give_up(b, reason != NULL ? reason : "permanent_error");
    } else {
        uint64_t delay = backoff_ms(q, b->attempt);
        uint64_t now = uv_now(q->loop);
        if (retry_after_ms > 0 && (uint64_t)retry_after_ms > delay)
            delay = (uint64_t)retry_after_ms;
        if (q->aborted || !q->rcfg.enabled) {
            give_up(b, q->aborted ? q->abort_reason : "retry_disabled");
        } else if (q->parking) {
            give_up(b, "shutdown");
        } else if (q->st == NULL && q->rcfg.max_elapsed_time_ms != 0 &&
                   now - b->first_ms + delay > q->rcfg.max_elapsed_time_ms) {
            lk_log(LK_LOG_WARN, "export retries exhausted, dropping batch",
                   LK_S("exporter", q->exp->name) LK_S("reason", reason)
                   LK_U("items", b->count) LK_U("attempts", b->attempt));
            give_up(b, "retries_exhausted");
        } else {
            lk_counter_add(q->retries, 1);
            if (b->attempt == 1 || b->attempt % 10 == 0)
                lk_log(LK_LOG_INFO, "export failed, will retry",
                       LK_S("exporter", q->exp->name) LK_S("reason", reason)
                       LK_U("attempt", b->attempt) LK_U("delay_ms", delay)
                       LK_U("items", b->count));
            b->waiting = true;
            uv_timer_start(&b->backoff, backoff_cb, delay, 0);
            return;
        }
    }
    try_dispatch(q);
    check_drained(q);
}

void lk_batch_count_rejected(lk_batch *b, uint64_t n, const char *reason)
{
    if (n > b->count - b->rejected)
        n = b->count - b->rejected;
    b->rejected += n;
    lk_queue_count_dropped(b->q, n, reason);
}

enum lk_signal lk_batch_signal(const lk_batch *b)
{
    return b->q->o.signal;
}

uint8_t lk_batch_item_form(const lk_batch *b, size_t i)
{
    return b->items[i]->form;
}

void lk_batch_iov(lk_batch *b, const struct iovec **iov, size_t *iovcnt,
                  size_t *total_bytes)
{
    *iov = b->iov;
    *iovcnt = b->n;
    *total_bytes = b->bytes;
}

void lk_batch_set_state(lk_batch *b, void *state, void (*state_free)(void *state))
{
    if (b->state_free != NULL && b->state != state)
        b->state_free(b->state);
    b->state = state;
    b->state_free = state_free;
}

void *lk_batch_state(const lk_batch *b)
{
    return b->state;
}

lk_exporter *lk_batch_exporter(const lk_batch *b)
{
    return b->q->exp;
}

uint64_t lk_batch_items(const lk_batch *b)
{
    return b->count;
}

void lk_queue_drain(lk_queue *q, void (*done)(void *arg), void *arg)
{
    q->draining = true;
    q->drain_done = done;
    q->drain_arg = arg;
    /* Batches backing off are sent again now rather than after their delay. */
    for (lk_batch *b = q->batches; b != NULL;) {
        lk_batch *next = b->next;
        if (b->waiting) {
            uv_timer_stop(&b->backoff);
            b->waiting = false;
            batch_send(b);
        }
        b = next;
    }
    try_dispatch(q);
    check_drained(q);
}

/* ---- the spool's side ---- */

static bool spool_appended(void *owner, lk_item *it, int64_t row, int status)
{
    lk_queue *q = owner;
    if (status < 0 || q->parking || q->aborted || !mem_room(q, it->count, it->len) ||
        ring_push(q, it, row) < 0)
        return false;
    update_gauge(q);
    try_dispatch(q);
    return true;
}

static void spool_read(void *owner, lk_item **items, const int64_t *rows, size_t n)
{
    lk_queue *q = owner;
    for (size_t i = 0; i < n; i++) {
        /* Out of memory: the row stays on disk, sent after a restart. */
        (void)ring_push(q, items[i], rows[i]);
        lk_item_unref(items[i]);
    }
    update_gauge(q);
    try_dispatch(q);
    maybe_read(q);
    check_drained(q);
}

/* Writes what waits in memory and is not on disk yet to the spool, before
 * what it holds, newest first so that the order is kept: the ring, then the
 * batches backing off (the list is newest first). */
static void park_waiting(lk_queue *q)
{
    uv_timer_stop(&q->timer);
    for (size_t i = q->nqueued; i-- > 0;) {
        size_t at = (q->head + i) % q->ring_cap;
        if (q->ring_row[at] == 0)
            lk_spool_stream_prepend(q->st, q->ring[at], 0);
        lk_item_unref(q->ring[at]);
    }
    q->held_items -= q->queued_items;
    q->held_bytes -= q->queued_bytes;
    q->nqueued = 0;
    q->queued_items = 0;
    q->queued_bytes = 0;
    for (lk_batch *b = q->batches, *next; b != NULL; b = next) {
        next = b->next;
        if (b->waiting) {
            uv_timer_stop(&b->backoff);
            b->waiting = false;
            batch_park(b);
        }
    }
    update_gauge(q);
}

void lk_queue_park(lk_queue *q, void (*done)(void *arg), void *arg)
{
    if (q->st == NULL) {
        lk_queue_drain(q, done, arg);
        return;
    }
    q->parking = true;
    q->draining = true;
    q->drain_done = done;
    q->drain_arg = arg;
    park_waiting(q);
    check_drained(q);
}

void lk_queue_abort(lk_queue *q)
{
    lk_queue_abort_reason(q, "shutdown");
}

void lk_queue_abort_reason(lk_queue *q, const char *reason)
{
    q->aborted = true;
    q->abort_reason = reason;
    if (q->st != NULL) {
        /* Nothing is dropped: it waits in the spool. */
        park_waiting(q);
        check_drained(q);
        return;
    }
    uv_timer_stop(&q->timer);
    while (q->nqueued > 0) {
        lk_item *it = q->ring[q->head];
        q->head = (q->head + 1) % q->ring_cap;
        q->nqueued--;
        lk_counter_add(q->failed, it->count);
        lk_queue_count_dropped(q, it->count, reason);
        q->held_items -= it->count;
        q->held_bytes -= it->len;
        lk_item_unref(it);
    }
    q->queued_items = 0;
    q->queued_bytes = 0;
    for (lk_batch *b = q->batches; b != NULL;) {
        lk_batch *next = b->next;
        if (b->waiting) {
            uv_timer_stop(&b->backoff);
            give_up(b, reason);
        }
        b = next;
    }
    update_gauge(q);
    check_drained(q);
}

static void queue_free_cb(uv_handle_t *h)
{
    lk_queue *q = h->data;
    free(q->ring);
    free(q->ring_row);
    free(q);
}

void lk_queue_destroy(lk_queue *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->nqueued; i++)
        lk_item_unref(q->ring[(q->head + i) % q->ring_cap]);
    q->nqueued = 0;
    if (q->st != NULL) {
        lk_spool_stream_release_owner(q->st, q);
        lk_spool_stream_put(q->st);
        q->st = NULL;
    }
    uv_close((uv_handle_t *)&q->timer, queue_free_cb);
}
