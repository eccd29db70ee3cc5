/*
 * Large compressed request bodies inflated on libuv's thread pool, so that
 * the loop goes on receiving meanwhile; the receivers (OTLP/gRPC and
 * OTLP/HTTP) each embed one lk_inflate_pool. Loop thread only: the pool's
 * threads run nothing but lk_gzip_inflate on the job's own buffers.
 *
 * At most LK_INFLATE_MAX_RUNNING jobs of one pool are on the thread pool at
 * once; later ones wait their turn in submission order (backpressure, never
 * inline: the loop stays free however many large bodies arrive, and each
 * waiting job holds only the compressed body its request had buffered
 * anyway, within the receiver's connection and stream limits).
 */
#ifndef LK_CORE_INFLATE_POOL_H
#define LK_CORE_INFLATE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"

/* Compressed bodies of at least this many bytes are inflated off the loop;
 * smaller ones inline, where the inflate costs less than the hop to a
 * thread and back. */
#define LK_INFLATE_OFFLOOP_BYTES (64 * 1024)
/* Jobs of one pool on the thread pool at once: libuv's default pool size
 * (UV_THREADPOOL_SIZE), which other work (exporter compression, file
 * system calls) shares. */
#define LK_INFLATE_MAX_RUNNING 4
/* Output buffers up to this capacity are kept for the next jobs (at most
 * LK_INFLATE_MAX_RUNNING of them): a fresh buffer per body costs its page
 * faults every time. Larger ones are freed. */
#define LK_INFLATE_KEEP_BYTES (1024 * 1024)

struct lk_inflate_pool;

/* One body to inflate. The submitter fills the first group and owns the
 * struct (usually embedded in a larger one) until |done| runs. */
struct lk_inflate_job {
    const uint8_t *in; /* compressed bytes; must stay valid and unchanged
                          until |done| (the thread reads them) */
    size_t in_len;
    size_t max;        /* bytes; output cap (lk_gzip_inflate's |max|) */
    bool raw_zlib;     /* zlib "deflate" wrapper instead of gzip */
    /* Runs on the loop once the job is over: |rc| and |out| hold the
     * result, or |rc| is LK_ECANCELED (lk_inflate_pool_cancel_all; |out|
     * empty). It owns |out| (lk_inflate_pool_recycle or lk_buf_fini it) and
     * the job from then on, and may free the pool's owner: the pool touches
     * neither afterwards. */
    void (*done)(struct lk_inflate_job *j);
    /* Results. */
    int rc;     /* lk_gzip_inflate's */
    lk_buf out; /* the inflated bytes */
    /* Private. */
    uv_work_t work;
    struct lk_inflate_pool *pool;
    struct lk_inflate_job *next; /* in the pool's waiting list */
    bool running;
};

/* Embedded by value; fields are private. */
typedef struct lk_inflate_pool {
    uv_loop_t *loop;
    unsigned running;                  /* jobs on the thread pool */
    unsigned pending;                  /* submitted jobs whose |done| has not run */
    struct lk_inflate_job *head, *tail; /* waiting for a thread, FIFO */
    lk_buf spare[LK_INFLATE_MAX_RUNNING]; /* output buffers to reuse, empty */
    unsigned nspare;
} lk_inflate_pool;

void lk_inflate_pool_init(lk_inflate_pool *p, uv_loop_t *loop);
/* Frees the buffers kept for reuse. |p| must be idle. */
void lk_inflate_pool_fini(lk_inflate_pool *p);

/* Whether a body of |compressed_len| bytes is worth inflating off the loop. */
bool lk_inflate_pool_wants(size_t compressed_len);

/*
 * Starts |j| on the thread pool, or queues it behind the running ones.
 * |j->done| runs later on the loop, never from within this call. Returns 0,
 * or LK_ESYS when libuv refused the work (nothing queued, |done| will not
 * run: inflate inline instead).
 */
int lk_inflate_pool_submit(lk_inflate_pool *p, struct lk_inflate_job *j);

/*
 * Withdraws |j| when it is still waiting: returns true, and its |done| will
 * not run (the caller frees it). Returns false when it is on a thread: its
 * |done| runs when the thread is through; discard the result there.
 */
bool lk_inflate_pool_cancel(lk_inflate_pool *p, struct lk_inflate_job *j);

/* Ends every waiting job at once: each |done| runs from within this call
 * with rc LK_ECANCELED. Jobs on a thread finish as usual. */
void lk_inflate_pool_cancel_all(lk_inflate_pool *p);

/* Takes back a job's |out| once its bytes are used, to give to a later job
 * (or frees it, past LK_INFLATE_KEEP_BYTES or when enough are kept); |b|
 * is left empty. */
void lk_inflate_pool_recycle(lk_inflate_pool *p, lk_buf *b);

/* True when no submitted job is waiting, running or yet to see its |done|:
 * the owner may be freed. */
bool lk_inflate_pool_is_idle(const lk_inflate_pool *p);

#endif
