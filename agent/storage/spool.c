/*
 * The disk spool: the loop side and the thread that owns the database (see
 * spool.h).
 *
 * The loop collects operations (append, prepend, delete, read) in a list;
 * when the thread is idle the whole list goes to it as one job: one
 * transaction for the writes, then the reads. The job comes back through
 * the async handle with each operation's result, and the loop hands them
 * out in order. The thread touches nothing but the database, the payload
 * bytes of items the loop keeps alive for it, and items it makes for reads.
 */
#include "storage/spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "storage/spool_db.h"

enum op_kind { OP_APPEND, OP_PREPEND, OP_DELETE, OP_READ, OP_CHECKPOINT, OP_DURABLE };

static bool is_write(enum op_kind k)
{
    return k == OP_APPEND || k == OP_PREPEND || k == OP_DELETE;
}

struct op {
    struct op *next;
    enum op_kind kind;
    lk_spool_stream *st;
    lk_item *it;      /* APPEND, PREPEND: a reference held for the thread */
    lk_ack *ack;      /* APPEND */
    int64_t row;      /* APPEND, PREPEND: the result; DELETE: which */
    size_t len;       /* payload bytes */
    uint32_t attempts;
    int64_t created_ms;
    int status;
    /* READ */
    int64_t after;
    size_t max_bytes;
    uint64_t now_ms;
    lk_item **items;
    int64_t *rows;
    size_t n, cap;
};

struct oplist {
    struct op *head, *tail;
};

struct lk_spool_stream {
    lk_spool_stream *next;
    lk_spool *s;
    char *exporter;
    enum lk_signal sig;
    int refs;
    const struct lk_spool_owner_ops *ops;
    void *owner;
    uint64_t rows;       /* in the database */
    uint64_t disk_rows;  /* of those, not read back (ids above |cursor|) */
    uint64_t disk_bytes;
    uint64_t writing;    /* appends not committed, |retry| included */
    int64_t cursor;
    int64_t max_row;     /* the highest id appended this run */
    bool reading;
    struct oplist retry; /* appends that failed, to be written again */
    lk_gauge *rows_gauge;
    lk_counter *written, *read;
};

struct lk_spool {
    lk_spool *next_open; /* the spools open in this process */
    uv_loop_t *loop;
    lk_metrics *m;
    char *path;
    uint64_t max_bytes;
    bool durable;
    uint64_t commit_interval_ms;
    bool retired;
    bool failing;  /* the last commit failed: no appends taken until one succeeds */
    bool recovering; /* failing cleared to try again; not yet written */
    uint64_t bytes; /* payloads in the database and on their way there */
    lk_spool_stream *streams;

    lk_spool_db *db; /* the thread's once it runs */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    struct oplist todo; /* guarded: the job given to the thread */
    struct oplist done; /* guarded: jobs it finished */
    uint64_t done_ns;   /* guarded: how long the finished commits took */
    uint64_t done_commits;
    uint64_t file_bytes; /* guarded */
    int64_t oldest_ms;   /* guarded: created_ms of the next row to send, -1 none */
    bool quit;          /* guarded */
    bool thread_started;

    struct oplist pending; /* loop: for the next job */
    bool busy;             /* a job is with the thread */
    bool closing;
    bool in_cb; /* handing results out: not the time to close */
    int64_t oldest_seen_ms; /* loop's copy of |oldest_ms|, for the age gauge */
    uv_async_t async;
    uv_prepare_t prepare;
    uv_timer_t timer; /* commit_interval */
    uv_timer_t retry_timer;
    int handles; /* open, for lk_spool_close */

    lk_gauge *g_bytes, *g_max, *g_file, *g_age, *g_accepting;
    lk_counter *c_commits, *c_err_full, *c_err_io, *c_restored, *c_moved, *c_unreadable;
    int64_t start_last_id; /* the highest id at open */
    lk_histogram *h_commit;
};

/* Open spools, retired ones included, so that a reload naming a file again
 * takes the spool that still has it open (the file is locked). Loop only. */
static lk_spool *open_spools;

static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    2.5};

static void list_add(struct oplist *l, struct op *o)
{
    o->next = NULL;
    if (l->tail != NULL)
        l->tail->next = o;
    else
        l->head = o;
    l->tail = o;
}

static void list_cat(struct oplist *l, struct oplist *more)
{
    if (more->head == NULL)
        return;
    if (l->tail != NULL)
        l->tail->next = more->head;
    else
        l->head = more->head;
    l->tail = more->tail;
    more->head = more->tail = NULL;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the thread ---- */

struct reader {
    struct op *o;
    int oom;
};

static int read_row(void *arg, const struct lk_spool_row *row)
{
    struct reader *r = arg;
    struct op *o = r->o;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        lk_item **items = realloc(o->items, cap * sizeof(*items));
        if (items != NULL)
            o->items = items;
        int64_t *rows = realloc(o->rows, cap * sizeof(*rows));
        if (rows != NULL)
            o->rows = rows;
        if (items == NULL || rows == NULL) {
            r->oom = 1;
            return 1;
        }
        o->cap = cap;
    }
    lk_item *it = lk_item_create((enum lk_signal)row->signal, row->items, o->now_ms,
                                 row->payload, row->len);
    if (it == NULL) {
        r->oom = 1;
        return 1;
    }
    it->form = (uint8_t)row->form;
    o->items[o->n] = it;
    o->rows[o->n] = row->id;
    o->n++;
    return 0;
}

static int run_writes(lk_spool_db *db, struct op *job)
{
    int rc = lk_spool_db_begin(db);
    for (struct op *o = job; o != NULL && rc == 0; o = o->next) {
        struct lk_spool_row row = {
            .exporter = o->st != NULL ? o->st->exporter : NULL,
            .signal = o->st != NULL ? (int)o->st->sig : 0,
            .attempts = o->attempts,
            .created_ms = o->created_ms,
        };
        if (o->kind == OP_APPEND || o->kind == OP_PREPEND) {
            row.form = o->it->form;
            row.items = o->it->count;
            row.payload = o->it->data;
            row.len = o->it->len;
            rc = o->kind == OP_APPEND ? lk_spool_db_insert(db, &row)
                                      : lk_spool_db_insert_first(db, &row);
            o->row = row.id;
        } else if (o->kind == OP_DELETE) {
            rc = lk_spool_db_delete(db, &o->row, 1);
        }
    }
    if (rc == 0)
        rc = lk_spool_db_commit(db);
    if (rc < 0)
        lk_spool_db_rollback(db);
    return rc;
}

static void run_job(lk_spool *s, struct op *job, uint64_t *ns, bool *committed)
{
    bool writes = false, checkpoint = false;
    for (struct op *o = job; o != NULL; o = o->next) {
        writes |= is_write(o->kind);
        checkpoint |= o->kind == OP_CHECKPOINT;
        if (o->kind == OP_DURABLE) /* before the commits it is meant for */
            (void)lk_spool_db_set_durable(s->db, o->row != 0);
    }
    int rc = 0;
    if (writes) {
        uint64_t t0 = uv_hrtime();
        rc = run_writes(s->db, job);
        *ns = uv_hrtime() - t0;
        *committed = true;
    }
    if (checkpoint && rc == 0)
        (void)lk_spool_db_checkpoint(s->db);
    for (struct op *o = job; o != NULL; o = o->next) {
        if (o->kind == OP_READ) {
            struct reader r = {.o = o};
            o->status = lk_spool_db_read(s->db, o->st->exporter, (int)o->st->sig, o->after,
                                         4096, o->max_bytes, read_row, &r);
            if (r.oom && o->n == 0)
                o->status = LK_ENOMEM;
        } else {
            o->status = rc;
        }
    }
}

static void thread_main(void *arg)
{
    lk_spool *s = arg;
    uv_mutex_lock(&s->mu);
    for (;;) {
        while (s->todo.head == NULL && !s->quit)
            uv_cond_wait(&s->cv, &s->mu);
        if (s->todo.head == NULL)
            break;
        struct op *job = s->todo.head;
        s->todo.head = s->todo.tail = NULL;
        uv_mutex_unlock(&s->mu);

        uint64_t ns = 0;
        bool committed = false;
        run_job(s, job, &ns, &committed);
        uint64_t file = lk_spool_db_file_bytes(s->db);
        int64_t oldest = -1;
        (void)lk_spool_db_oldest(s->db, &oldest);

        uv_mutex_lock(&s->mu);
        struct oplist l = {job, job};
        while (l.tail->next != NULL)
            l.tail = l.tail->next;
        list_cat(&s->done, &l);
        s->done_ns += ns;
        s->done_commits += committed;
        s->file_bytes = file;
        s->oldest_ms = oldest;
        uv_mutex_unlock(&s->mu);
        uv_async_send(&s->async);
        uv_mutex_lock(&s->mu);
    }
    uv_mutex_unlock(&s->mu);
}

/* ---- the loop side ---- */

static void schedule(lk_spool *s);
static void maybe_close(lk_spool *s);

static void kick(lk_spool *s)
{
    if (s->busy || s->pending.head == NULL)
        return;
    uv_mutex_lock(&s->mu);
    list_cat(&s->todo, &s->pending);
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    s->busy = true;
}

static void prepare_cb(uv_prepare_t *h)
{
    lk_spool *s = h->data;
    uv_prepare_stop(h);
    kick(s);
}

static void timer_cb(uv_timer_t *t)
{
    kick(t->data);
}

static void schedule(lk_spool *s)
{
    if (s->pending.head == NULL || s->busy || s->closing)
        return;
    if (s->commit_interval_ms == 0)
        uv_prepare_start(&s->prepare, prepare_cb);
    else if (!uv_is_active((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, timer_cb, s->commit_interval_ms, 0);
}

static struct op *op_new(lk_spool_stream *st, enum op_kind kind)
{
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->kind = kind;
    o->st = st;
    if (st != NULL)
        st->refs++;
    return o;
}

static void op_free(struct op *o)
{
    if (o->st != NULL)
        lk_spool_stream_put(o->st);
    lk_item_unref(o->it);
    for (size_t i = 0; i < o->n; i++)
        lk_item_unref(o->items[i]);
    free(o->items);
    free(o->rows);
    free(o);
}

static void pend(lk_spool *s, struct op *o)
{
    list_add(&s->pending, o);
    schedule(s);
}

static void update_gauges(lk_spool *s)
{
    lk_gauge_set(s->g_bytes, (double)s->bytes);
    lk_gauge_set(s->g_accepting, s->failing || s->retired ? 0 : 1);
}

/* A second after a failed write: what failed is written again; with
 * nothing to write again (durable appends were refused to their clients),
 * the spool takes appends again, and the next commit tells. */
static void retry_cb(uv_timer_t *t)
{
    lk_spool *s = t->data;
    bool again = false;
    for (lk_spool_stream *st = s->streams; st != NULL; st = st->next) {
        again |= st->retry.head != NULL;
        list_cat(&s->pending, &st->retry);
    }
    if (!again && s->failing) {
        s->failing = false;
        s->recovering = true;
        update_gauges(s);
    }
    schedule(s);
}

static void write_failed(lk_spool *s, int status)
{
    if (!s->failing && !s->recovering)
        lk_log(LK_LOG_ERROR, "spool: cannot write; the queues' overflow policy applies "
                             "until a write succeeds",
               LK_S("path", s->path) LK_S("error", lk_strerror(status)));
    s->failing = true;
    lk_counter_add(status == LK_EFULL ? s->c_err_full : s->c_err_io, 1);
    if (!uv_is_active((uv_handle_t *)&s->retry_timer) && !s->closing)
        uv_timer_start(&s->retry_timer, retry_cb, 1000, 0);
}

/* An append's result, handed to its stream's queue. */
static void appended(lk_spool *s, struct op *o)
{
    lk_spool_stream *st = o->st;
    if (o->status < 0 && o->ack == NULL && !s->closing) {
        /* Nobody waits to refuse it: write it again later, in order. */
        list_add(&st->retry, o);
        return;
    }
    st->writing--;
    if (o->status < 0) {
        s->bytes -= o->len;
        lk_ack_release(o->ack, o->status);
    } else {
        st->rows++;
        if (o->row > st->max_row)
            st->max_row = o->row;
        lk_counter_add(st->written, 1);
        /* Read back already, the queue has it: not expected, as the writes'
         * results are handed out before the reads'. */
        bool loaded = o->row <= st->cursor;
        bool taken = false;
        if (!loaded && st->disk_rows == 0 && !st->reading && st->ops != NULL)
            taken = st->ops->appended(st->owner, o->it, o->row, 0);
        if (taken) {
            st->cursor = o->row;
        } else if (!loaded) {
            st->disk_rows++;
            st->disk_bytes += o->len;
        }
        if (o->ack != NULL)
            lk_ack_release(o->ack, 0);
    }
    op_free(o);
}

static void read_done(lk_spool *s, struct op *o)
{
    lk_spool_stream *st = o->st;
    st->reading = false;
    if (o->status < 0 && o->n == 0) {
        /* A row SQLite cannot read (damage inside the file): skip what is on
         * disk now rather than fail on it forever. It stays in the file. */
        lk_log(LK_LOG_ERROR, "spool: cannot read back; skipping the batches on disk",
               LK_S("exporter", st->exporter) LK_S("signal", lk_signal_name(st->sig))
               LK_U("batches", st->disk_rows) LK_S("error", lk_strerror(o->status)));
        lk_counter_add(s->c_unreadable, st->disk_rows);
        st->cursor = st->max_row > s->start_last_id ? st->max_row : s->start_last_id;
        st->disk_rows = 0;
        st->disk_bytes = 0;
        op_free(o);
        return;
    }
    if (o->n == 0) {
        /* Counted rows that are not there: trust the database. */
        st->disk_rows = 0;
        st->disk_bytes = 0;
        op_free(o);
        return;
    }
    if (st->ops == NULL) {
        op_free(o); /* read again by the next owner */
        return;
    }
    for (size_t i = 0; i < o->n; i++) {
        size_t len = o->items[i]->len;
        st->disk_rows -= st->disk_rows > 0;
        st->disk_bytes -= st->disk_bytes >= len ? len : st->disk_bytes;
        st->cursor = o->rows[i];
    }
    lk_counter_add(st->read, o->n);
    size_t n = o->n;
    o->n = 0; /* the items go to the queue */
    st->ops->read(st->owner, o->items, o->rows, n);
    op_free(o);
}

static void finish(lk_spool *s, struct op *o)
{
    switch (o->kind) {
    case OP_APPEND:
        appended(s, o);
        return;
    case OP_READ:
        read_done(s, o);
        return;
    case OP_PREPEND:
    case OP_DELETE:
        if (o->status < 0 && !s->closing) {
            list_add(&o->st->retry, o); /* again with the next retry */
            return;
        }
        if (o->status == 0 && o->kind == OP_PREPEND)
            o->st->rows++;
        op_free(o);
        return;
    case OP_CHECKPOINT:
    case OP_DURABLE:
        op_free(o);
        return;
    }
}

static void update_rows_gauges(lk_spool *s)
{
    for (lk_spool_stream *st = s->streams; st != NULL; st = st->next)
        lk_gauge_set(st->rows_gauge, (double)st->rows);
}

static void async_cb(uv_async_t *h)
{
    lk_spool *s = h->data;
    uv_mutex_lock(&s->mu);
    struct op *job = s->done.head;
    s->done.head = s->done.tail = NULL;
    uint64_t ns = s->done_ns, commits = s->done_commits;
    s->done_ns = 0;
    s->done_commits = 0;
    uint64_t file = s->file_bytes;
    int64_t oldest = s->oldest_ms;
    uv_mutex_unlock(&s->mu);
    if (job == NULL)
        return;
    s->busy = false;
    s->in_cb = true;

    int wrote = 0; /* 1: a write committed, -1: failed */
    for (struct op *o = job; o != NULL; o = o->next)
        if (is_write(o->kind)) {
            if (o->status < 0)
                write_failed(s, o->status);
            wrote = o->status < 0 ? -1 : 1;
            break;
        }
    if (wrote > 0 && (s->failing || s->recovering)) {
        lk_log(LK_LOG_INFO, "spool: writing again", LK_S("path", s->path));
        s->failing = false;
        s->recovering = false;
    }
    if (commits > 0) {
        lk_counter_add(s->c_commits, commits);
        lk_histogram_observe(s->h_commit, (double)ns / 1e9 / (double)commits);
    }
    /* The thread ran the job's writes, then its reads, so a read may return
     * a row appended in the same job: the writes' results go first (that
     * row is then counted on disk, as a read was in flight), the reads'
     * after, in order. */
    struct op *reads = NULL, **tail = &reads;
    for (struct op *o = job, *next; o != NULL; o = next) {
        next = o->next;
        if (o->kind == OP_READ) {
            o->next = NULL;
            *tail = o;
            tail = &o->next;
        } else {
            finish(s, o);
        }
    }
    for (struct op *o = reads, *next; o != NULL; o = next) {
        next = o->next;
        finish(s, o);
    }
    lk_gauge_set(s->g_file, (double)file);
    s->oldest_seen_ms = oldest;
    update_rows_gauges(s);
    update_gauges(s);
    s->in_cb = false;
    schedule(s);
    maybe_close(s); /* last: it may free |s| */
}

/* ---- streams ---- */

static lk_spool_stream *stream_find(lk_spool *s, const char *exporter, enum lk_signal sig)
{
    for (lk_spool_stream *st = s->streams; st != NULL; st = st->next)
        if (st->sig == sig && strcmp(st->exporter, exporter) == 0)
            return st;
    return NULL;
}

static lk_spool_stream *stream_new(lk_spool *s, const char *exporter, enum lk_signal sig)
{
    lk_spool_stream *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->exporter = strdup(exporter)) == NULL) {
        free(st);
        return NULL;
    }
    st->s = s;
    st->sig = sig;
    st->cursor = INT64_MIN;
    char labels[256];
    snprintf(labels, sizeof(labels), "exporter=\"%s\",signal=\"%s\"", exporter,
             lk_signal_name(sig));
    st->rows_gauge = lk_metrics_gauge(s->m, "lookout_spool_batches",
                                      "Batches held in the spool, by exporter and signal.",
                                      labels);
    st->written = lk_metrics_counter(s->m, "lookout_spool_written_batches_total",
                                     "Batches committed to the spool.", labels);
    st->read = lk_metrics_counter(s->m, "lookout_spool_read_batches_total",
                                  "Batches read back from the spool to be sent.", labels);
    st->next = s->streams;
    s->streams = st;
    return st;
}

lk_spool_stream *lk_spool_stream_get(lk_spool *s, const char *exporter, enum lk_signal sig)
{
    lk_spool_stream *st = stream_find(s, exporter, sig);
    if (st == NULL)
        st = stream_new(s, exporter, sig);
    if (st != NULL)
        st->refs++;
    return st;
}

void lk_spool_stream_put(lk_spool_stream *st)
{
    if (st != NULL && --st->refs == 0)
        maybe_close(st->s);
}

lk_spool *lk_spool_stream_spool(const lk_spool_stream *st)
{
    return st->s;
}

void lk_spool_stream_set_owner(lk_spool_stream *st, const struct lk_spool_owner_ops *ops,
                               void *owner)
{
    st->ops = ops;
    st->owner = owner;
}

void lk_spool_stream_release_owner(lk_spool_stream *st, void *owner)
{
    if (st->owner == owner) {
        st->ops = NULL;
        st->owner = NULL;
    }
}

bool lk_spool_stream_has_room(const lk_spool_stream *st, size_t bytes)
{
    const lk_spool *s = st->s;
    return !s->retired && !s->failing && !s->closing && s->bytes + bytes <= s->max_bytes;
}

void lk_spool_stream_append(lk_spool_stream *st, lk_item *it, lk_ack *ack)
{
    lk_spool *s = st->s;
    struct op *o = op_new(st, OP_APPEND);
    if (o == NULL) {
        /* As a failed write: the ack's holder refuses, or it is lost. */
        if (ack != NULL) {
            lk_ack_hold(ack);
            lk_ack_release(ack, LK_ENOMEM);
        }
        return;
    }
    o->it = lk_item_ref(it);
    o->len = it->len;
    o->ack = ack;
    if (ack != NULL)
        lk_ack_hold(ack);
    o->created_ms = unix_ms() - (int64_t)(uv_now(s->loop) - it->arrived_ms);
    st->writing++;
    s->bytes += it->len;
    update_gauges(s);
    pend(s, o);
}

void lk_spool_stream_prepend(lk_spool_stream *st, lk_item *it, uint32_t attempts)
{
    lk_spool *s = st->s;
    struct op *o = op_new(st, OP_PREPEND);
    if (o == NULL)
        return;
    o->it = lk_item_ref(it);
    o->len = it->len;
    o->attempts = attempts;
    o->created_ms = unix_ms() - (int64_t)(uv_now(s->loop) - it->arrived_ms);
    s->bytes += it->len;
    pend(s, o);
}

uint64_t lk_spool_stream_disk_rows(const lk_spool_stream *st)
{
    return st->disk_rows;
}

uint64_t lk_spool_stream_writing(const lk_spool_stream *st)
{
    return st->writing;
}

bool lk_spool_stream_read(lk_spool_stream *st, size_t max_bytes)
{
    if (st->reading || st->disk_rows == 0 || st->s->closing)
        return false;
    struct op *o = op_new(st, OP_READ);
    if (o == NULL)
        return false;
    o->after = st->cursor;
    o->max_bytes = max_bytes > 0 ? max_bytes : 1;
    o->now_ms = uv_now(st->s->loop);
    st->reading = true;
    pend(st->s, o);
    return true;
}

void lk_spool_stream_delete(lk_spool_stream *st, int64_t row, size_t len)
{
    lk_spool *s = st->s;
    struct op *o = op_new(st, OP_DELETE);
    if (o == NULL)
        return; /* sent again after a restart */
    o->row = row;
    st->rows -= st->rows > 0;
    s->bytes -= s->bytes >= len ? len : s->bytes;
    if (s->bytes == 0) {
        /* Empty again: give the disk back. */
        struct op *c = op_new(NULL, OP_CHECKPOINT);
        list_add(&s->pending, o);
        if (c != NULL)
            list_add(&s->pending, c);
        schedule(s);
        update_gauges(s);
        return;
    }
    update_gauges(s);
    pend(s, o);
}

/* ---- the spool ---- */

static void found_stream(void *arg, const struct lk_spool_stream_info *i)
{
    lk_spool *s = arg;
    if (i->signal < 0 || i->signal >= LK_SIGNAL_COUNT)
        return;
    lk_spool_stream *st = stream_find(s, i->exporter, (enum lk_signal)i->signal);
    if (st == NULL)
        st = stream_new(s, i->exporter, (enum lk_signal)i->signal);
    if (st == NULL)
        return;
    st->rows += i->rows;
    st->disk_rows += i->rows;
    st->disk_bytes += i->bytes;
    s->bytes += i->bytes;
    lk_counter_add(s->c_restored, i->rows);
    lk_log(LK_LOG_INFO, "spool: batches from before",
           LK_S("exporter", i->exporter) LK_S("signal", lk_signal_name(st->sig))
           LK_U("batches", i->rows) LK_U("items", i->items) LK_U("bytes", i->bytes));
}

/* The age is the scrape's: now minus the oldest row's time. */
static void collect(lk_metrics *m, void *arg)
{
    (void)m;
    lk_spool *s = arg;
    if (s->closing)
        return;
    lk_gauge_set(s->g_age, s->oldest_seen_ms < 0 || s->bytes == 0
                               ? 0
                               : (double)(unix_ms() - s->oldest_seen_ms) / 1000.0);
}

static void register_metrics(lk_spool *s)
{
    lk_metrics *m = s->m;
    s->g_bytes = lk_metrics_gauge(m, "lookout_spool_bytes",
                                  "Payload bytes in the spool and being written to it.", "");
    s->g_max = lk_metrics_gauge(m, "lookout_spool_max_bytes", "storage.max_bytes.", "");
    s->g_file = lk_metrics_gauge(m, "lookout_spool_file_bytes",
                                 "Bytes the spool's database and WAL take on disk.", "");
    s->g_age = lk_metrics_gauge(m, "lookout_spool_oldest_age_seconds",
                                "Age of the oldest batch in the spool; 0 when empty.", "");
    s->g_accepting = lk_metrics_gauge(m, "lookout_spool_accepting",
                                      "1 while the spool takes batches, 0 after a failed "
                                      "write until one succeeds.",
                                      "");
    s->c_commits = lk_metrics_counter(m, "lookout_spool_commits_total",
                                      "Spool transactions committed.", "");
    s->h_commit = lk_metrics_histogram(m, "lookout_spool_commit_duration_seconds",
                                       "Duration of spool commits.", "", commit_bounds,
                                       sizeof(commit_bounds) / sizeof(commit_bounds[0]));
    s->c_err_full = lk_metrics_counter(m, "lookout_spool_write_errors_total",
                                       "Spool commits that failed, by reason.",
                                       "reason=\"disk_full\"");
    s->c_err_io = lk_metrics_counter(m, "lookout_spool_write_errors_total",
                                     "Spool commits that failed, by reason.",
                                     "reason=\"io_error\"");
    s->c_unreadable = lk_metrics_counter(m, "lookout_spool_unreadable_batches_total",
                                         "Batches skipped because SQLite could not read "
                                         "them back (damage inside the file).",
                                         "");
    s->c_restored = lk_metrics_counter(m, "lookout_spool_restored_batches_total",
                                       "Batches found in the spool at start-up.", "");
    lk_metrics_on_collect(m, collect, s);
    s->c_moved = lk_metrics_counter(m, "lookout_spool_moved_aside_total",
                                    "Spool files that were not usable and were moved aside.",
                                    "");
}

int lk_spool_open(lk_spool **out, uv_loop_t *loop, const struct lk_storage_config *cfg,
                  lk_metrics *m, char **err)
{
    *err = NULL;
    lk_spool *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(cfg->path)) == NULL) {
        free(s);
        return LK_ENOMEM;
    }
    s->loop = loop;
    s->m = m;
    s->oldest_ms = -1;
    char *moved = NULL;
    int rc = lk_spool_db_open(&s->db, cfg->path, cfg->durable, &moved, err);
    if (rc < 0) {
        free(s->path);
        free(s);
        return rc;
    }
    register_metrics(s);
    if (moved != NULL) { /* spool_db logged it */
        lk_counter_add(s->c_moved, 1);
        free(moved);
    }
    lk_spool_update(s, cfg);
    (void)lk_spool_db_streams(s->db, found_stream, s);
    s->start_last_id = lk_spool_db_last_id(s->db);
    (void)lk_spool_db_oldest(s->db, &s->oldest_ms);
    s->file_bytes = lk_spool_db_file_bytes(s->db);
    lk_gauge_set(s->g_file, (double)s->file_bytes);
    s->oldest_seen_ms = s->oldest_ms;
    update_rows_gauges(s);
    update_gauges(s);

    uv_mutex_init(&s->mu);
    uv_cond_init(&s->cv);
    uv_async_init(loop, &s->async, async_cb);
    s->async.data = s;
    uv_prepare_init(loop, &s->prepare);
    s->prepare.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_init(loop, &s->retry_timer);
    s->retry_timer.data = s;
    s->handles = 4;
    if (uv_thread_create(&s->thread, thread_main, s) != 0) {
        *err = strdup("cannot start the spool thread");
        s->closing = true;
        lk_spool_close(s);
        return LK_ESYS;
    }
    s->thread_started = true;
    s->next_open = open_spools;
    open_spools = s;
    *out = s;
    return 0;
}

void lk_spool_update(lk_spool *s, const struct lk_storage_config *cfg)
{
    s->max_bytes = cfg->max_bytes;
    s->commit_interval_ms = cfg->commit_interval_ms;
    if (s->thread_started && s->durable != cfg->durable) {
        /* The thread owns the connection: it switches before its next job. */
        struct op *o = op_new(NULL, OP_DURABLE);
        if (o != NULL) {
            o->row = cfg->durable;
            pend(s, o);
        }
    }
    s->durable = cfg->durable;
    lk_gauge_set(s->g_max, (double)s->max_bytes);
    update_gauges(s);
}

void lk_spool_warn_unused(const lk_spool *s)
{
    for (const lk_spool_stream *st = s->streams; st != NULL; st = st->next)
        if (st->refs == 0 && st->rows > 0)
            lk_log(LK_LOG_WARN, "spool: batches of an exporter the configuration does not "
                                "have; kept until an exporter of that name sends them",
                   LK_S("path", s->path) LK_S("exporter", st->exporter)
                   LK_S("signal", lk_signal_name(st->sig)) LK_U("batches", st->rows));
}

const char *lk_spool_path(const lk_spool *s)
{
    return s->path;
}

bool lk_spool_durable(const lk_spool *s)
{
    return s->durable;
}

static void maybe_close(lk_spool *s)
{
    if (!s->retired || s->closing || s->in_cb || s->busy || s->pending.head != NULL)
        return;
    uint64_t left = 0;
    for (lk_spool_stream *st = s->streams; st != NULL; st = st->next) {
        if (st->refs > 0 || st->retry.head != NULL)
            return;
        left += st->rows;
    }
    if (left > 0)
        lk_log(LK_LOG_WARN, "spool: closed with batches left; they are sent when storage "
                            "names this file again",
               LK_S("path", s->path) LK_U("batches", left));
    lk_spool_close(s);
}

void lk_spool_retire(lk_spool *s)
{
    s->retired = true;
    update_gauges(s);
    maybe_close(s);
}

static void handle_closed(uv_handle_t *h)
{
    lk_spool *s = h->data;
    if (--s->handles == 0) {
        for (lk_spool_stream *st = s->streams, *n; st != NULL; st = n) {
            n = st->next;
            free(st->exporter);
            free(st);
        }
        free(s->path);
        free(s);
    }
}

lk_spool *lk_spool_find(const char *path)
{
    for (lk_spool *s = open_spools; s != NULL; s = s->next_open)
        if (!s->closing && strcmp(s->path, path) == 0)
            return s;
    return NULL;
}

bool lk_spool_retired(const lk_spool *s)
{
    return s->retired;
}

void lk_spool_unretire(lk_spool *s)
{
    s->retired = false;
    update_gauges(s);
}

void lk_spool_close(lk_spool *s)
{
    s->closing = true;
    for (lk_spool **pp = &open_spools; *pp != NULL; pp = &(*pp)->next_open)
        if (*pp == s) {
            *pp = s->next_open;
            break;
        }
    lk_metrics_off_collect(s->m, collect, s);
    uv_prepare_stop(&s->prepare);
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->retry_timer);
    if (s->thread_started) {
        /* Failed writes get one more try, then the thread ends. */
        for (lk_spool_stream *st = s->streams; st != NULL; st = st->next)
            list_cat(&s->pending, &st->retry);
        uv_mutex_lock(&s->mu);
        list_cat(&s->todo, &s->pending);
        s->quit = true;
        uv_cond_signal(&s->cv);
        uv_mutex_unlock(&s->mu);
        uv_thread_join(&s->thread);
        async_cb(&s->async); /* results: closing, so nothing is retried */
    }
    lk_spool_db_close(s->db);
    s->db = NULL;
    uv_mutex_destroy(&s->mu);
    uv_cond_destroy(&s->cv);
    uv_close((uv_handle_t *)&s->async, handle_closed);
    uv_close((uv_handle_t *)&s->prepare, handle_closed);
    uv_close((uv_handle_t *)&s->timer, handle_closed);
    uv_close((uv_handle_t *)&s->retry_timer, handle_closed);
}
