/*
 * The disk spool's database on SQLite (storage/spool_db.h): the schema, the
 * statements the spool thread reuses for every batch, and the check at open
 * that moves a file which is not a spool aside instead of refusing to start.
 */
#include "storage/spool_db.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"

#define SPOOL_USER_VERSION 1
/* Only a second agent on the same file waits here (the lock is exclusive):
 * long enough for one that is closing, short enough to fail start-up fast. */
#define BUSY_TIMEOUT_MS 1000
/* What a WAL file keeps after a checkpoint: 4 MiB, about one
 * autocheckpoint's worth (1000 pages of 4 KiB), so that the file falls back
 * after a large transaction and lk_spool_db_file_bytes with it. */
#define WAL_KEEP_PRAGMA "PRAGMA journal_size_limit=4194304"
/* lk_spool_db_checkpoint gives free pages back to the file system when at
 * least this many are free and they are a quarter of the file or more:
 * a spool that fills and drains in steady state reuses its free pages
 * instead of shrinking and growing on every checkpoint. */
#define VACUUM_MIN_FREE_PAGES 256

/*
 * PRAGMA quick_check reads every page in b-tree order. Measured on a Debian
 * 12 VM with a cold page cache: 4.3 s for 1 GiB of 64 KiB payloads, 21 s for
 * 1 GiB of 2 KB payloads, 1.6 s for 64 MiB of 2 KB payloads. Above this size
 * open reads sequentially instead: every row's record header in one pass
 * over the table, then the index, and the two row counts must agree (cold:
 * 2.7 s for that 1 GiB of 2 KB payloads, where the table is the whole file;
 * 0.3 s for the 64 KiB ones, whose payloads are not read). Those are the
 * pages lk_spool_db_streams reads at start-up anyway, which then finds them
 * cached. Damage inside a payload (its overflow pages) is found when that
 * row is read: LK_EIO.
 */
static uint64_t quick_check_max_bytes = LK__SPOOL_DB_QUICK_CHECK_MAX;

static const char SCHEMA_SQL[] =
    "CREATE TABLE batches(id INTEGER PRIMARY KEY, exporter TEXT,"
    " signal INTEGER, created_ms INTEGER, attempts INTEGER, items INTEGER,"
    " form INTEGER, payload BLOB);"
    "CREATE INDEX batches_stream ON batches(exporter, signal, id);"
    "PRAGMA user_version=1;";

/* What PRAGMA table_info must list for SCHEMA_SQL's table. */
#define COLUMN_COUNT 8
static const char *const COLUMN_NAMES[COLUMN_COUNT] = {
    "id", "exporter", "signal", "created_ms", "attempts", "items", "form", "payload",
};
static const char *const COLUMN_TYPES[COLUMN_COUNT] = {
    "INTEGER", "TEXT", "INTEGER", "INTEGER", "INTEGER", "INTEGER", "INTEGER", "BLOB",
};
static const char *const INDEX_COLUMNS[] = {"exporter", "signal", "id"};

/* The statements prepared once per connection. */
enum stmt {
    ST_INSERT,
    ST_INSERT_FIRST,
    ST_DELETE,
    ST_READ,
    ST_STREAMS,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

static const char *const STMT_SQL[ST_COUNT] = {
    [ST_INSERT] = "INSERT INTO batches(id, exporter, signal, created_ms,"
                  " attempts, items, form, payload)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_INSERT_FIRST] = "INSERT INTO batches(id, exporter, signal, created_ms,"
                        " attempts, items, form, payload)"
                        " VALUES((SELECT min(coalesce(min(id), 0), 0) FROM batches) - 1,"
                        " ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_DELETE] = "DELETE FROM batches WHERE id = ?1",
    [ST_READ] = "SELECT id, created_ms, attempts, items, form, payload"
                " FROM batches WHERE exporter = ?1 AND signal = ?2 AND id > ?3"
                " ORDER BY id",
    [ST_STREAMS] = "SELECT exporter, signal, count(*), sum(length(payload)),"
                   " sum(items), min(created_ms)"
                   " FROM batches GROUP BY exporter, signal",
    /* IMMEDIATE: the write lock is taken at the start, so a transaction never
     * fails half-way for a lock it could not upgrade. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

struct lk_spool_db {
    sqlite3 *conn;
    char *path;
    char *wal_path;
    /* The highest id appended. Appends take the next one, never SQLite's
     * max(id) + 1, so that an id is not given twice while the database is
     * open even after the rows at the end were deleted: a reader whose
     * cursor passed an id must not miss a row that reuses it. */
    int64_t last_id;
    int sys_errno; /* errno right after the last SQLite call (see db_step) */
    sqlite3_stmt *st[ST_COUNT];
};

/* What open found at the path. */
enum probe { PROBE_FRESH, PROBE_SPOOL, PROBE_FOREIGN };

static char *vfmt(const char *f, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, f, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, f, ap);
    return s;
}

static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = vfmt(f, ap);
    va_end(ap);
    return s;
}

/* Sets *err (when wanted) and returns |rc|. */
static int fail(char **err, int rc, const char *f, ...)
{
    if (err != NULL && *err == NULL) {
        va_list ap;
        va_start(ap, f);
        *err = vfmt(f, ap);
        va_end(ap);
    }
    return rc;
}

/* SQLite's message for the last failure on |c|, with the errno behind it. */
static void describe(sqlite3 *c, char *out, size_t n)
{
    int e = c != NULL ? sqlite3_system_errno(c) : 0;
    const char *msg = c != NULL ? sqlite3_errmsg(c) : "out of memory";
    if (e != 0)
        snprintf(out, n, "%s (%s)", msg, strerror(e));
    else
        snprintf(out, n, "%s", msg);
}

/* What a user can act on, beyond SQLite's words (malloc'd, or NULL):
 * SQLite falls back to a read-only open when it may not create the file,
 * and then reports that fallback's ENOENT, not the EACCES behind it. */
static char *hint(const char *path, int src)
{
    if ((src & 0xff) == SQLITE_BUSY)
        return fmt("; is another lookout using this spool?");
    if ((src & 0xff) != SQLITE_CANTOPEN)
        return NULL;
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? fmt(".")
                              : fmt("%.*s", (int)(slash == path ? 1 : slash - path), path);
    char *more = NULL;
    if (dir != NULL && access(dir, F_OK) == 0 && access(dir, W_OK | X_OK) != 0)
        more = fmt("; cannot write in %s: %s", dir, strerror(errno));
    free(dir);
    return more;
}

static int open_failure(char **err, const char *path, sqlite3 *c, int src,
                        const char *what)
{
    char why[512];
    describe(c, why, sizeof(why));
    char *more = hint(path, src);
    int rc = fail(err, (src & 0xff) == SQLITE_NOMEM ? LK_ENOMEM : LK_EIO,
                  "spool %s: %s: %s%s", path, what, why, more != NULL ? more : "");
    free(more);
    return rc;
}

static bool is_full_errno(int e)
{
    return e == ENOSPC || e == EFBIG;
}

/* A full disk, or a file-size limit reached, is LK_EFULL: the caller falls
 * back to its overflow policy, and tries again later. */
static int map_rc(const lk_spool_db *db, int src)
{
    switch (src & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_FULL:
        return LK_EFULL;
    case SQLITE_IOERR:
        if (is_full_errno(sqlite3_system_errno(db->conn)) ||
            is_full_errno(db->sys_errno))
            return LK_EFULL;
        return LK_EIO;
    default:
        return LK_EIO;
    }
}

static int exec(sqlite3 *c, const char *sql)
{
    return sqlite3_exec(c, sql, NULL, NULL, NULL);
}

/*
 * The calls below keep errno as the failed call left it: SQLite 3.40 gives
 * no system errno (sqlite3_system_errno 0) for a WAL write that failed with
 * EFBIG during a commit, only SQLITE_IOERR_WRITE; errno still holds it.
 * errno is cleared first so that an older failure is not taken for this one.
 */
static int db_step(lk_spool_db *db, sqlite3_stmt *st)
{
    errno = 0;
    int src = sqlite3_step(st);
    db->sys_errno = errno;
    return src;
}

static int db_exec(lk_spool_db *db, const char *sql)
{
    errno = 0;
    int src = exec(db->conn, sql);
    db->sys_errno = errno;
    return src;
}

/* The first column of |sql|'s first row as an integer (0 without a row). */
static int query_int(sqlite3 *c, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    *out = 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* The first column of |sql|'s first row as text ("" without a row). */
static int query_text(sqlite3 *c, const char *sql, char *out, size_t n)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    out[0] = '\0';
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, n, "%s", t != NULL ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Whether the rows of PRAGMA |sql| list |n| names, in order, in column
 * |col|; with |types|, their declared types in column 2 as well. */
static int pragma_lists(sqlite3 *c, const char *sql, int col,
                        const char *const *names, const char *const *types,
                        size_t n, bool *same)
{
    sqlite3_stmt *st;
    size_t i = 0;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    *same = true;
    while (*same && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, col);
        const char *type = (const char *)sqlite3_column_text(st, 2);
        *same = i < n && name != NULL && strcmp(name, names[i]) == 0 &&
                (types == NULL ||
                 (type != NULL && strcasecmp(type, types[i]) == 0));
        i++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    *same = *same && i == n;
    return SQLITE_OK;
}

/* Whether the batches table and its index are the ones SCHEMA_SQL makes;
 * *same false with |reason| when not. */
static int check_schema(sqlite3 *c, bool *same, char *reason, size_t n)
{
    int rc = pragma_lists(c, "PRAGMA table_info(batches)", 1, COLUMN_NAMES,
                          COLUMN_TYPES, COLUMN_COUNT, same);
    if (rc != SQLITE_OK)
        return rc;
    if (!*same) {
        snprintf(reason, n, "the batches table is missing or has other columns");
        return SQLITE_OK;
    }
    /* The rowid alias "id" is listed by its name too. */
    rc = pragma_lists(c, "PRAGMA index_info(batches_stream)", 2, INDEX_COLUMNS,
                      NULL, sizeof(INDEX_COLUMNS) / sizeof(INDEX_COLUMNS[0]),
                      same);
    if (rc == SQLITE_OK && !*same)
        snprintf(reason, n, "the batches_stream index is missing or differs");
    return rc;
}

/* Reads what the file holds (see quick_check_max_bytes); *ok false with
 * |reason| when the content is damaged in a way SQLite reports as a result
 * rather than as an error. */
static int check_content(sqlite3 *c, const char *path, const char *wal_path,
                         bool *ok, char *reason, size_t n)
{
    char text[256];
    int64_t rows, indexed;
    int rc;

    *ok = true;
    if (file_size(path) + file_size(wal_path) <= quick_check_max_bytes) {
        rc = query_text(c, "PRAGMA quick_check(1)", text, sizeof(text));
        if (rc == SQLITE_OK && strcmp(text, "ok") != 0) {
            *ok = false;
            snprintf(reason, n, "quick_check: %s", text);
        }
        return rc;
    }
    /* The sum makes SQLite decode every row's record header. */
    rc = query_int(c,
                   "SELECT count(*), sum(length(payload)), sum(items)"
                   " FROM batches NOT INDEXED",
                   &rows);
    if (rc == SQLITE_OK)
        rc = query_int(c, "SELECT count(*) FROM batches INDEXED BY batches_stream",
                       &indexed);
    if (rc == SQLITE_OK && rows != indexed) {
        *ok = false;
        snprintf(reason, n, "the table has %lld rows, its index %lld",
                 (long long)rows, (long long)indexed);
    }
    return rc;
}

static int probe_steps(lk_spool_db *db, enum probe *kind, char *reason,
                       size_t n)
{
    sqlite3 *c = db->conn;
    int64_t objects, version;
    bool ok;

    /* The first read of the file: SQLITE_NOTADB here for anything that is
     * not an SQLite database. */
    int rc = query_int(c, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc == SQLITE_OK)
        rc = query_int(c, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK)
        return rc;
    if (objects == 0 && version == 0) {
        *kind = PROBE_FRESH;
        return SQLITE_OK;
    }
    *kind = PROBE_FOREIGN;
    if (version != SPOOL_USER_VERSION) {
        snprintf(reason, n, "user_version %lld, expected %d",
                 (long long)version, SPOOL_USER_VERSION);
        return SQLITE_OK;
    }
    rc = check_schema(c, &ok, reason, n);
    if (rc != SQLITE_OK || !ok)
        return rc;
    rc = check_content(c, db->path, db->wal_path, &ok, reason, n);
    if (rc != SQLITE_OK || !ok)
        return rc;
    *kind = PROBE_SPOOL;
    return SQLITE_OK;
}

/* Returns SQLITE_OK with *kind set, or the SQLite error that keeps any
 * database from being used at the path (I/O, permissions, a lock). */
/* Errors that come from the machine (I/O, permissions, locks, memory), not
 * from what the file holds: those keep a spool from opening; any other
 * error while probing (NOTADB, CORRUPT, or "unsupported file format" for a
 * header SQLite does not know) means the content is not a spool we can use. */
static bool is_environment(int src)
{
    switch (src & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_FULL:
    case SQLITE_AUTH:
        return true;
    default:
        return false;
    }
}

static int probe(lk_spool_db *db, enum probe *kind, char *reason, size_t n)
{
    int rc = probe_steps(db, kind, reason, n);
    if (rc != SQLITE_OK && !is_environment(rc)) {
        *kind = PROBE_FOREIGN;
        snprintf(reason, n, "%s", sqlite3_errmsg(db->conn));
        return SQLITE_OK;
    }
    return rc;
}

static int set_synchronous(sqlite3 *c, bool durable)
{
    return exec(c, durable ? "PRAGMA synchronous=FULL"
                           : "PRAGMA synchronous=NORMAL");
}

/* Settings of the connection, and the schema in a fresh file. */
static int setup(lk_spool_db *db, bool durable, bool fresh, char **err)
{
    sqlite3 *c = db->conn;
    char mode[32];
    int rc = SQLITE_OK;

    /* Incremental: the file can shrink after a backlog drained (see
     * lk_spool_db_checkpoint) without FULL's page moves on every commit.
     * It only takes effect before the first table is created. */
    if (fresh)
        rc = exec(c, "PRAGMA auto_vacuum=INCREMENTAL");
    if (rc == SQLITE_OK)
        rc = query_text(c, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
    if (rc != SQLITE_OK)
        return open_failure(err, db->path, c, rc, "cannot switch to WAL mode");
    if (strcmp(mode, "wal") != 0)
        return fail(err, LK_EIO, "spool %s: journal_mode stays %s, not wal",
                    db->path, mode);
    rc = set_synchronous(c, durable);
    if (rc == SQLITE_OK)
        rc = exec(c, WAL_KEEP_PRAGMA);
    if (rc != SQLITE_OK)
        return open_failure(err, db->path, c, rc, "cannot configure");
    if (!fresh)
        return 0;
    rc = exec(c, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK)
        rc = exec(c, SCHEMA_SQL);
    if (rc == SQLITE_OK)
        rc = exec(c, "COMMIT");
    if (rc != SQLITE_OK) {
        int r = open_failure(err, db->path, c, rc, "cannot create the schema");
        if (!sqlite3_get_autocommit(c))
            exec(c, "ROLLBACK");
        return r;
    }
    return 0;
}

static int prepare_all(lk_spool_db *db, char **err)
{
    for (int i = 0; i < ST_COUNT; i++) {
        int rc = sqlite3_prepare_v3(db->conn, STMT_SQL[i], -1,
                                    SQLITE_PREPARE_PERSISTENT, &db->st[i], NULL);
        if (rc != SQLITE_OK)
            return open_failure(err, db->path, db->conn, rc,
                                "cannot prepare a statement");
    }
    return 0;
}

static void disconnect(lk_spool_db *db)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(db->st[i]);
        db->st[i] = NULL;
    }
    if (db->conn != NULL && !sqlite3_get_autocommit(db->conn))
        exec(db->conn, "ROLLBACK");
    sqlite3_close(db->conn);
    db->conn = NULL;
}

static int open_conn(lk_spool_db *db, char **err)
{
    int rc = sqlite3_open_v2(db->path, &db->conn,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK)
        return open_failure(err, db->path, db->conn, rc, "cannot open");
    sqlite3_extended_result_codes(db->conn, 1);
    /* READWRITE quietly opens a write-protected file read-only. */
    if (sqlite3_db_readonly(db->conn, "main") == 1)
        return fail(err, LK_EIO, "spool %s: the file is read-only", db->path);
    sqlite3_busy_timeout(db->conn, BUSY_TIMEOUT_MS);
    /* Until the file is known to be a spool, closing must not write into
     * it: a checkpoint would carry its WAL into a damaged file and delete
     * the WAL, which then could not be moved aside with it. */
    sqlite3_db_config(db->conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    /* Exclusive before the first read: a second agent pointed at the same
     * spool fails to open it instead of sending its rows a second time; and
     * in WAL mode no -shm file is needed. */
    rc = exec(db->conn, "PRAGMA locking_mode=EXCLUSIVE");
    if (rc != SQLITE_OK)
        return open_failure(err, db->path, db->conn, rc, "cannot lock");
    return 0;
}

/* Opens the connection, checks the file and makes it ready: 0, a negative
 * LK_E* with *err, or 1 when the file is not a spool (|reason| says why;
 * the connection is left for the caller to close). */
static int attach(lk_spool_db *db, bool durable, char *reason, size_t n,
                  char **err)
{
    enum probe kind;
    int rc = open_conn(db, err);
    if (rc < 0)
        return rc;
    int src = probe(db, &kind, reason, n);
    if (src != SQLITE_OK)
        return open_failure(err, db->path, db->conn, src, "cannot read");
    if (kind == PROBE_FOREIGN)
        return 1;
    /* A clean close checkpoints and removes the WAL. */
    sqlite3_db_config(db->conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    rc = setup(db, durable, kind == PROBE_FRESH, err);
    if (rc < 0)
        return rc;
    src = query_int(db->conn, "SELECT max(coalesce(max(id), 0), 0) FROM batches",
                    &db->last_id);
    if (src != SQLITE_OK)
        return open_failure(err, db->path, db->conn, src, "cannot read");
    return prepare_all(db, err);
}

static bool exists(const char *path, const char *suffix)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s%s", path, suffix);
    return lstat(p, &st) == 0;
}

static const char *const COMPANIONS[] = {"-wal", "-shm", "-journal"};

/* "<path>.corrupt-<unix seconds>", with ".N" when that name is taken (a
 * second move in the same second must not replace the first file). */
static char *aside_name(const char *path)
{
    long long now = (long long)time(NULL);
    for (int i = 0;; i++) {
        char *to = i == 0 ? fmt("%s.corrupt-%lld", path, now)
                          : fmt("%s.corrupt-%lld.%d", path, now, i);
        if (to == NULL || i == 1000 || !exists(to, ""))
            return to;
        free(to);
    }
}

/*
 * Renames |path| and its companions. The -wal and -journal files go too:
 * left behind, SQLite would play them into the fresh database at |path|.
 */
static int move_aside(const char *path, const char *reason, char **moved_to,
                      char **err)
{
    char *to = aside_name(path);
    if (to == NULL)
        return LK_ENOMEM;
    if (rename(path, to) != 0) {
        int e = errno;
        int rc = fail(err, LK_EIO,
                      "spool %s is not usable (%s) and cannot be moved to %s: %s",
                      path, reason, to, strerror(e));
        free(to);
        return rc;
    }
    for (size_t i = 0; i < sizeof(COMPANIONS) / sizeof(COMPANIONS[0]); i++) {
        char *from = fmt("%s%s", path, COMPANIONS[i]);
        char *dst = fmt("%s%s", to, COMPANIONS[i]);
        int rc = 0;
        if (from == NULL || dst == NULL)
            rc = LK_ENOMEM;
        else if (rename(from, dst) != 0 && errno != ENOENT)
            rc = fail(err, LK_EIO, "spool %s: cannot move %s to %s: %s", path,
                      from, dst, strerror(errno));
        free(from);
        free(dst);
        if (rc < 0) {
            free(to);
            return rc;
        }
    }
    lk_log(LK_LOG_ERROR,
           "spool database is not usable: moved aside, starting an empty one",
           LK_S("path", path) LK_S("moved_to", to) LK_S("reason", reason));
    *moved_to = to;
    return 0;
}

int lk_spool_db_open(lk_spool_db **out, const char *path, bool durable,
                     char **moved_to, char **err)
{
    char reason[512] = "";
    char *to = NULL;
    int rc;

    *out = NULL;
    if (moved_to != NULL)
        *moved_to = NULL;
    if (err != NULL)
        *err = NULL;
    lk_spool_db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return LK_ENOMEM;
    db->path = fmt("%s", path);
    db->wal_path = fmt("%s-wal", path);
    if (db->path == NULL || db->wal_path == NULL) {
        rc = LK_ENOMEM;
        goto err_free;
    }
    rc = attach(db, durable, reason, sizeof(reason), err);
    if (rc == 1) {
        disconnect(db);
        rc = move_aside(path, reason, &to, err);
        if (rc < 0)
            goto err_free;
        rc = attach(db, durable, reason, sizeof(reason), err);
        if (rc == 1)
            rc = fail(err, LK_EIO, "spool %s: a new database is not usable: %s",
                      path, reason);
    }
    if (rc < 0)
        goto err_free;
    if (moved_to != NULL)
        *moved_to = to;
    else
        free(to);
    *out = db;
    return 0;
err_free:
    free(to);
    lk_spool_db_close(db);
    if (rc == LK_ENOMEM)
        fail(err, rc, "spool %s: out of memory", path);
    return rc;
}

void lk_spool_db_close(lk_spool_db *db)
{
    if (db == NULL)
        return;
    disconnect(db);
    free(db->path);
    free(db->wal_path);
    free(db);
}

const char *lk_spool_db_errmsg(const lk_spool_db *db)
{
    return sqlite3_errmsg(db->conn);
}

int lk_spool_db_set_durable(lk_spool_db *db, bool durable)
{
    errno = 0;
    int src = set_synchronous(db->conn, durable);
    db->sys_errno = errno;
    return map_rc(db, src);
}

/* Steps a statement that returns no rows, and resets it for the next use. */
static int run(lk_spool_db *db, sqlite3_stmt *st)
{
    int src = db_step(db, st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return src == SQLITE_DONE ? 0 : map_rc(db, src);
}

int lk_spool_db_begin(lk_spool_db *db)
{
    return run(db, db->st[ST_BEGIN]);
}

int lk_spool_db_commit(lk_spool_db *db)
{
    return run(db, db->st[ST_COMMIT]);
}

void lk_spool_db_rollback(lk_spool_db *db)
{
    /* After SQLITE_FULL or an I/O error SQLite may have rolled back on its
     * own; a ROLLBACK then would only fail. */
    if (!sqlite3_get_autocommit(db->conn))
        run(db, db->st[ST_ROLLBACK]);
}

static int insert(lk_spool_db *db, sqlite3_stmt *st,
                  const struct lk_spool_row *row)
{
    int src = sqlite3_bind_text(st, 2, row->exporter, -1, SQLITE_STATIC);
    src |= sqlite3_bind_int(st, 3, row->signal);
    src |= sqlite3_bind_int64(st, 4, row->created_ms);
    src |= sqlite3_bind_int64(st, 5, row->attempts);
    src |= sqlite3_bind_int64(st, 6, row->items);
    src |= sqlite3_bind_int(st, 7, row->form);
    /* A NULL pointer would bind SQL NULL; an empty payload is a blob. */
    if (row->len == 0)
        src |= sqlite3_bind_zeroblob(st, 8, 0);
    else
        src |= sqlite3_bind_blob64(st, 8, row->payload, row->len, SQLITE_STATIC);
    /* A payload over SQLite's length limit (1e9 bytes) is refused here; a
     * parameter left unbound would store NULL. */
    if (src != SQLITE_OK) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return LK_EIO;
    }
    return run(db, st);
}

int lk_spool_db_insert(lk_spool_db *db, struct lk_spool_row *row)
{
    sqlite3_stmt *st = db->st[ST_INSERT];
    int64_t id = db->last_id + 1;
    sqlite3_bind_int64(st, 1, id);
    int rc = insert(db, st, row);
    if (rc < 0)
        return rc;
    db->last_id = id;
    row->id = id;
    return 0;
}

int lk_spool_db_insert_first(lk_spool_db *db, struct lk_spool_row *row)
{
    int rc = insert(db, db->st[ST_INSERT_FIRST], row);
    if (rc < 0)
        return rc;
    row->id = sqlite3_last_insert_rowid(db->conn);
    return 0;
}

int lk_spool_db_delete(lk_spool_db *db, const int64_t *ids, size_t n)
{
    sqlite3_stmt *st = db->st[ST_DELETE];
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, ids[i]);
        int rc = run(db, st);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int lk_spool_db_read(lk_spool_db *db, const char *exporter, int signal,
                     int64_t after, size_t max_rows, size_t max_bytes,
                     int (*fn)(void *arg, const struct lk_spool_row *row),
                     void *arg)
{
    sqlite3_stmt *st = db->st[ST_READ];
    size_t rows = 0, bytes = 0;
    int src = SQLITE_DONE;

    sqlite3_bind_text(st, 1, exporter, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, signal);
    sqlite3_bind_int64(st, 3, after);
    while (rows < max_rows && (src = db_step(db, st)) == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(st, 5);
        struct lk_spool_row row = {
            .id = sqlite3_column_int64(st, 0),
            .exporter = exporter,
            .signal = signal,
            .created_ms = sqlite3_column_int64(st, 1),
            .attempts = (uint32_t)sqlite3_column_int64(st, 2),
            .items = (uint32_t)sqlite3_column_int64(st, 3),
            .form = sqlite3_column_int(st, 4),
            .payload = p != NULL ? p : "",
            .len = (size_t)sqlite3_column_bytes(st, 5),
        };
        /* column_blob returns NULL for an empty blob and when it ran out of
         * memory; only the error code tells them apart. */
        if (p == NULL && sqlite3_errcode(db->conn) == SQLITE_NOMEM) {
            src = SQLITE_NOMEM;
            break;
        }
        rows++;
        bytes += row.len;
        if (fn(arg, &row) != 0 || bytes >= max_bytes)
            break;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? 0 : map_rc(db, src);
}

int lk_spool_db_streams(lk_spool_db *db,
                        void (*fn)(void *arg, const struct lk_spool_stream_info *s),
                        void *arg)
{
    sqlite3_stmt *st = db->st[ST_STREAMS];
    int src;
    while ((src = db_step(db, st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 0);
        struct lk_spool_stream_info s = {
            .exporter = name != NULL ? (const char *)name : "",
            .signal = sqlite3_column_int(st, 1),
            .rows = (uint64_t)sqlite3_column_int64(st, 2),
            .bytes = (uint64_t)sqlite3_column_int64(st, 3),
            .items = (uint64_t)sqlite3_column_int64(st, 4),
            .oldest_created_ms = sqlite3_column_int64(st, 5),
        };
        fn(arg, &s);
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : map_rc(db, src);
}

uint64_t lk_spool_db_file_bytes(const lk_spool_db *db)
{
    return file_size(db->path) + file_size(db->wal_path);
}

/* Gives the free pages back to the file system when they are many (see
 * VACUUM_MIN_FREE_PAGES). The moves land in the WAL; the checkpoint that
 * follows carries them into the file, which it then truncates. */
static int maybe_vacuum(lk_spool_db *db)
{
    int64_t free_pages, pages;
    int src = query_int(db->conn, "PRAGMA freelist_count", &free_pages);
    if (src == SQLITE_OK)
        src = query_int(db->conn, "PRAGMA page_count", &pages);
    if (src == SQLITE_OK && free_pages >= VACUUM_MIN_FREE_PAGES &&
        free_pages * 4 >= pages)
        src = db_exec(db, "PRAGMA incremental_vacuum");
    return map_rc(db, src);
}

int lk_spool_db_checkpoint(lk_spool_db *db)
{
    int64_t busy;
    int rc = maybe_vacuum(db);
    if (rc < 0)
        return rc;
    /* The first column is 1 when the checkpoint could not finish; with the
     * exclusive lock no other connection can be in its way. */
    errno = 0;
    int src = query_int(db->conn, "PRAGMA wal_checkpoint(TRUNCATE)", &busy);
    db->sys_errno = errno;
    if (src != SQLITE_OK)
        return map_rc(db, src);
    return busy != 0 ? LK_EIO : 0;
}

void lk__spool_db_set_quick_check_max(uint64_t bytes)
{
    quick_check_max_bytes = bytes;
}

int lk_spool_db_oldest(lk_spool_db *db, int64_t *created_ms)
{
    /* -1 stands for "no row": created_ms is never negative. */
    int src = query_int(db->conn,
                        "SELECT coalesce((SELECT created_ms FROM batches ORDER BY id LIMIT 1), -1)",
                        created_ms);
    return map_rc(db, src);
}

int64_t lk_spool_db_last_id(const lk_spool_db *db)
{
    return db->last_id;
}
