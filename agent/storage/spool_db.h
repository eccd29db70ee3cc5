/*
 * The disk spool's database: one SQLite file in WAL mode holding the
 * batches queues put aside, one row each. Crash and power-loss safety is
 * SQLite's; this module only says what to store and how to recover a file
 * that is not a spool.
 *
 * Synchronous and not thread-safe: only the spool thread (storage/spool.c)
 * calls it, one connection per lk_spool_db.
 *
 * Schema (user_version 1):
 *   batches(id INTEGER PRIMARY KEY, exporter TEXT, signal INTEGER,
 *           created_ms INTEGER, attempts INTEGER, items INTEGER,
 *           form INTEGER, payload BLOB)
 *   index on (exporter, signal, id)
 * Rows of one stream (exporter, signal) are read in id order: ids grow as
 * rows are appended; lk_spool_db_insert_first gives an id below every row.
 * Appended ids are positive, those given by insert_first negative: never 0,
 * which the queues use for "not in the spool".
 * While a database is open, an appended row never gets an id given before,
 * even when the rows at the end were deleted (a reader's cursor past it
 * would miss it); after a reopen appends continue above the highest row.
 */
#ifndef LK_STORAGE_SPOOL_DB_H
#define LK_STORAGE_SPOOL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lk_spool_db lk_spool_db;

struct lk_spool_row {
    int64_t id;           /* set by the inserts; read */
    const char *exporter; /* exporter name, e.g. "otlp/jaeger" */
    int signal;           /* enum lk_signal */
    int form;             /* enum lk_item_form */
    uint32_t items;       /* spans, points or records in the payload */
    uint32_t attempts;    /* export attempts made before it was spooled */
    int64_t created_ms;   /* unix time in ms when it was received */
    const void *payload;  /* borrowed: for inserts until they return; for
                             reads until the callback returns */
    size_t len;
};

/*
 * Opens |path|, creating it (not its directory) when missing, in WAL mode
 * with synchronous FULL when |durable| (every commit reaches the disk) or
 * NORMAL (a commit may be lost on power loss, never the database).
 *
 * A file that is not a spool (not an SQLite database, fails
 * PRAGMA quick_check, another schema or user_version) is renamed to
 * "<path>.corrupt-<unix seconds>" (".N" appended when that name is taken)
 * together with its -wal, -shm and -journal files, logged at error level,
 * and a fresh database made at |path|; *moved_to is then that new name
 * (malloc'd, caller frees), else NULL. |moved_to| may be NULL. Never fails
 * because of the old file's content. quick_check reads every page, seconds
 * for a large file on a cold cache: above 32 MiB (file and WAL) open reads
 * every row's header and the whole index instead, and damage inside a
 * payload shows when that row is read (LK_EIO).
 *
 * The connection holds an exclusive lock on the file until closed: a second
 * open of the same path, in this process or another, fails with LK_EIO
 * ("database is locked") after a 1 s busy timeout.
 *
 * Returns 0, or LK_EIO / LK_ENOMEM with *err a malloc'd message (caller
 * frees) naming the path and SQLite's error when no database can be opened
 * at all (missing directory, no permission, locked, a rename that failed).
 */
int lk_spool_db_open(lk_spool_db **out, const char *path, bool durable,
                     char **moved_to, char **err);
/* NULL-safe. A transaction still open is rolled back. */
void lk_spool_db_close(lk_spool_db *db);
/* synchronous FULL (true) or NORMAL (false), for a reload. Returns 0, or
 * LK_EIO inside a transaction (SQLite refuses the change there). */
int lk_spool_db_set_durable(lk_spool_db *db, bool durable);
/* SQLite's message for the last failure on |db|, for a log line. Valid until
 * the next call on |db|. */
const char *lk_spool_db_errmsg(const lk_spool_db *db);

/* One transaction around what follows. Each returns 0, LK_EFULL (disk or
 * file-size limit full: SQLITE_FULL, ENOSPC, EFBIG) or LK_EIO (anything
 * else); after a failure in a transaction, roll it back. */
int lk_spool_db_begin(lk_spool_db *db);
int lk_spool_db_commit(lk_spool_db *db);
void lk_spool_db_rollback(lk_spool_db *db);

/* Appends |row| (payload, exporter and the other fields); sets row->id. */
int lk_spool_db_insert(lk_spool_db *db, struct lk_spool_row *row);
/* The same with an id below every row in the table: read before them. */
int lk_spool_db_insert_first(lk_spool_db *db, struct lk_spool_row *row);
/* Deletes the rows with these ids (missing ones are ignored). Outside a
 * transaction each delete commits on its own: wrap many in begin/commit. */
int lk_spool_db_delete(lk_spool_db *db, const int64_t *ids, size_t n);

/*
 * Calls |fn| for each row of stream (|exporter|, |signal|) with id > |after|,
 * in id order, until |fn| returns non-zero, |max_rows| rows were given, or
 * the payloads given reach |max_bytes| (the row that passes it is still
 * given, so at least one row comes whatever its size). |max_rows| 0 gives
 * nothing; SIZE_MAX is no limit. |fn| must not call back into |db| for
 * another read. Returns 0 or LK_EIO.
 */
int lk_spool_db_read(lk_spool_db *db, const char *exporter, int signal,
                     int64_t after, size_t max_rows, size_t max_bytes,
                     int (*fn)(void *arg, const struct lk_spool_row *row),
                     void *arg);

/* One stream's summary, for start-up and the metrics. */
struct lk_spool_stream_info {
    const char *exporter; /* valid during the callback */
    int signal;
    uint64_t rows;
    uint64_t bytes;         /* sum of payload lengths */
    uint64_t items;
    int64_t oldest_created_ms;
};
/* Calls |fn| once per stream present in the table. Returns 0 or LK_EIO. */
int lk_spool_db_streams(lk_spool_db *db,
                        void (*fn)(void *arg, const struct lk_spool_stream_info *s),
                        void *arg);

/* The highest id appended so far (0 when none): an append's id is above. */
int64_t lk_spool_db_last_id(const lk_spool_db *db);

/* created_ms of the row read first (the lowest id) in *created_ms, or -1
 * when the table is empty. Returns 0 or LK_EIO. */
int lk_spool_db_oldest(lk_spool_db *db, int64_t *created_ms);

/* Bytes the database takes on disk: the file plus its WAL. */
uint64_t lk_spool_db_file_bytes(const lk_spool_db *db);
/* Checkpoints the WAL into the database and truncates it (after deletes
 * emptied the table, so the files shrink). The file is in auto_vacuum
 * INCREMENTAL mode: when at least 256 pages (1 MiB) are free and they are a
 * quarter of the file or more, they are given back first. Outside a
 * transaction. Returns 0 or LK_EFULL / LK_EIO. */
int lk_spool_db_checkpoint(lk_spool_db *db);

/* For tests: the size (file and WAL) up to which open runs
 * PRAGMA quick_check, LK__SPOOL_DB_QUICK_CHECK_MAX unless set. */
#define LK__SPOOL_DB_QUICK_CHECK_MAX ((uint64_t)32 * 1024 * 1024)
void lk__spool_db_set_quick_check_max(uint64_t bytes);

#endif
