#include "core/inflate_pool.h"

#include "core/err.h"
#include "core/gzip.h"
#include "core/membudget.h"

void lk_inflate_pool_init(lk_inflate_pool *p, uv_loop_t *loop)
{
    p->loop = loop;
    p->running = 0;
    p->pending = 0;
    p->head = p->tail = NULL;
    p->nspare = 0;
}

void lk_inflate_pool_fini(lk_inflate_pool *p)
{
    while (p->nspare > 0)
        lk_buf_fini(&p->spare[--p->nspare]);
}

void lk_inflate_pool_recycle(lk_inflate_pool *p, lk_buf *b)
{
    if (b->data != NULL && b->cap <= LK_INFLATE_KEEP_BYTES &&
        p->nspare < LK_INFLATE_MAX_RUNNING) {
        lk_buf_reset(b);
        p->spare[p->nspare++] = *b;
        lk_buf_init(b, 0);
        return;
    }
    lk_buf_fini(b);
}

/* An empty output buffer capped at |max|: a kept one when it has that cap.
 * Its growth is charged to the memory budget as it inflates (a bomb stops at
 * the budget as well as at |max|: LK_EMEMLIMIT). */
static void take_buffer(lk_inflate_pool *p, lk_buf *out, size_t max)
{
    while (p->nspare > 0) {
        lk_buf *b = &p->spare[--p->nspare];
        if (b->max == max) {
            *out = *b;
            return;
        }
        lk_buf_fini(b); /* the limit changed (a reload) */
    }
    lk_buf_init(out, max);
    lk_buf_charge(out, LK_MEM_RECEIVERS, true);
}

bool lk_inflate_pool_wants(size_t compressed_len)
{
    return compressed_len >= LK_INFLATE_OFFLOOP_BYTES;
}

static void inflate_job(struct lk_inflate_job *j)
{
    j->rc = lk_gzip_inflate(j->in, j->in_len, j->max, j->raw_zlib, &j->out);
}

/* A thread of the pool: touches only the job's own buffers. */
static void work_cb(uv_work_t *w)
{
    inflate_job(w->data);
}

/* The pool's bookkeeping is done before |done| runs: |done| may free the
 * pool's owner, and the pool with it. */
static void finish(struct lk_inflate_job *j)
{
    j->pool->pending--;
    j->done(j);
}

static void after_work_cb(uv_work_t *w, int status);

/* Only a job on its way to a thread gets an output buffer: at most
 * LK_INFLATE_MAX_RUNNING are in use, which the kept ones cover. */
static int launch(lk_inflate_pool *p, struct lk_inflate_job *j)
{
    take_buffer(p, &j->out, j->max);
    j->work.data = j;
    if (uv_queue_work(p->loop, &j->work, work_cb, after_work_cb) != 0) {
        lk_inflate_pool_recycle(p, &j->out);
        return LK_ESYS;
    }
    j->running = true;
    p->running++;
    return 0;
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct lk_inflate_job *j = w->data;
    lk_inflate_pool *p = j->pool;
    (void)status; /* never UV_ECANCELED: nothing calls uv_cancel on it */
    j->running = false;
    p->running--;
    while (p->head != NULL && p->running < LK_INFLATE_MAX_RUNNING) {
        struct lk_inflate_job *n = p->head;
        p->head = n->next;
        if (p->head == NULL)
            p->tail = NULL;
        n->next = NULL;
        if (launch(p, n) < 0) {
            /* libuv refuses work only without a work callback, so this
             * does not happen; should it, the job still ends. */
            inflate_job(n);
            finish(n); /* |j| is still pending: the owner stays */
        }
    }
    finish(j);
}

int lk_inflate_pool_submit(lk_inflate_pool *p, struct lk_inflate_job *j)
{
    j->pool = p;
    j->rc = 0;
    j->next = NULL;
    j->running = false;
    lk_buf_init(&j->out, j->max); /* empty until launch */
    if (p->running < LK_INFLATE_MAX_RUNNING) {
        int rc = launch(p, j);
        if (rc < 0)
            return rc;
    } else if (p->tail != NULL) {
        p->tail->next = j;
        p->tail = j;
    } else {
        p->head = p->tail = j;
    }
    p->pending++;
    return 0;
}

bool lk_inflate_pool_cancel(lk_inflate_pool *p, struct lk_inflate_job *j)
{
    if (j->running)
        return false;
    struct lk_inflate_job **pp = &p->head, *prev = NULL;
    while (*pp != NULL && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return false; /* not this pool's: cannot happen */
    *pp = j->next;
    if (p->tail == j)
        p->tail = prev;
    j->next = NULL;
    p->pending--;
    return true;
}

void lk_inflate_pool_cancel_all(lk_inflate_pool *p)
{
    while (p->head != NULL) {
        struct lk_inflate_job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        j->next = NULL;
        j->rc = LK_ECANCELED;
        finish(j);
    }
}

bool lk_inflate_pool_is_idle(const lk_inflate_pool *p)
{
    return p->pending == 0;
}
