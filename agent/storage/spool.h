/*
 * The disk spool (storage: in the config): batches an exporter's queue
 * cannot hold in memory, or, when durable, everything it is given before it
 * is acknowledged, kept in an SQLite database (storage/spool_db.h).
 *
 * SQLite runs on one thread of the spool's own; the loop hands it
 * operations and gets their results back through a uv_async, in order. What
 * the loop asks for while a commit runs waits and goes in the next one, so
 * commits group themselves: one per loop turn at most, or one per
 * storage.commit_interval.
 *
 * A stream is one exporter's rows of one signal. Its queue (pipeline/queue.c)
 * appends to it, reads its oldest rows back when memory has room, and
 * deletes rows once their batch is sent. Streams outlive a queue that a
 * reload replaces; a spool that a reload removes or moves stays open, read
 * only, until its streams are empty. Loop thread only, but for the thread
 * inside.
 */
#ifndef LK_STORAGE_SPOOL_H
#define LK_STORAGE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "core/selfmetrics.h"
#include "pipeline/ack.h"
#include "pipeline/item.h"

typedef struct lk_spool lk_spool;
typedef struct lk_spool_stream lk_spool_stream;

/*
 * Opens |cfg->path| (blocking: at start-up or in a reload before anything
 * changes), learns what each stream holds and starts the thread. A file that
 * is not a spool is moved aside and a fresh one made (logged). Returns 0, or
 * LK_EIO / LK_ENOMEM with *err a malloc'd message when no database can be
 * opened at |path| at all.
 */
int lk_spool_open(lk_spool **out, uv_loop_t *loop, const struct lk_storage_config *cfg,
                  lk_metrics *m, char **err);
/* max_bytes, durable and commit_interval of a reload (same path). */
void lk_spool_update(lk_spool *s, const struct lk_storage_config *cfg);
const char *lk_spool_path(const lk_spool *s);
/* Logs the streams that hold rows and that no queue uses (an exporter
 * renamed or removed since they were written). */
void lk_spool_warn_unused(const lk_spool *s);
bool lk_spool_durable(const lk_spool *s);
/* The spool's configuration no longer names it: it takes no more appends
 * and closes itself once its streams are empty and released. */
void lk_spool_retire(lk_spool *s);
/* The open spool of |path|, retired or not, or NULL: a reload that names a
 * file a retired spool still has open (and locked) takes that spool back. */
lk_spool *lk_spool_find(const char *path);
bool lk_spool_retired(const lk_spool *s);
void lk_spool_unretire(lk_spool *s);
/* Writes what is queued, stops the thread (joins it) and frees the spool;
 * every stream must have been released. For the end of shutdown. */
void lk_spool_close(lk_spool *s);

/* ---- streams ---- */

/* What the spool tells a stream's queue, on the loop. */
struct lk_spool_owner_ops {
    /* An append committed as |row|, and nothing older of the stream waits on
     * disk: true when the queue took |it| (a reference of its own) into
     * memory; false leaves it on disk, to be read back. */
    bool (*appended)(void *owner, lk_item *it, int64_t row, int status);
    /* Rows read back, oldest first; the queue takes the items' references
     * over. */
    void (*read)(void *owner, lk_item **items, const int64_t *rows, size_t n);
};

/* The stream of (|exporter|, |sig|), made when new; one more reference. */
lk_spool_stream *lk_spool_stream_get(lk_spool *s, const char *exporter, enum lk_signal sig);
void lk_spool_stream_put(lk_spool_stream *st);
lk_spool *lk_spool_stream_spool(const lk_spool_stream *st);
/* The queue results go to (NULL: none; results then wait for the next). */
void lk_spool_stream_set_owner(lk_spool_stream *st, const struct lk_spool_owner_ops *ops,
                               void *owner);

/* No results for |owner| any more, unless another queue took the stream. */
void lk_spool_stream_release_owner(lk_spool_stream *st, void *owner);
/* Whether |bytes| more fit: the spool takes appends (not retired, no write
 * failing) and max_bytes allows them. */
bool lk_spool_stream_has_room(const lk_spool_stream *st, size_t bytes);
/* Appends |it| (a reference is taken) after everything the stream holds;
 * |ack| (may be NULL) waits for the commit. */
void lk_spool_stream_append(lk_spool_stream *st, lk_item *it, lk_ack *ack);
/* Puts |it| before every row (a batch that could not be sent at shutdown);
 * |attempts| made so far. */
void lk_spool_stream_prepend(lk_spool_stream *st, lk_item *it, uint32_t attempts);
/* Rows committed and not yet read back, and appends not yet committed
 * (including those waiting to be written again after a failure). */
uint64_t lk_spool_stream_disk_rows(const lk_spool_stream *st);
uint64_t lk_spool_stream_writing(const lk_spool_stream *st);
/* Asks for the oldest rows not read yet, up to |max_bytes| (at least one);
 * they come through ops->read. One read at a time: false when one is in
 * flight or nothing is on disk. */
bool lk_spool_stream_read(lk_spool_stream *st, size_t max_bytes);
/* |row| (of |len| payload bytes) was sent or given up: deleted in the next commit. */
void lk_spool_stream_delete(lk_spool_stream *st, int64_t row, size_t len);

#endif
