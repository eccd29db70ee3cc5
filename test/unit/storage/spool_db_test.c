/* The spool database (storage/spool_db.h) on real files in a temporary
 * directory: rows survive a reopen and come back in order per stream, the
 * limits of a read, insert_first, transactions, files that are not a spool
 * moved aside, and a file-size limit reported as LK_EFULL. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "storage/spool_db.h"

/* A fresh directory per test, removed (flat) at the end. */
struct tmp {
    char dir[64];
    char path[128];
};

static void tmp_init(struct tmp *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/lk-spool-db-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/spool.db", t->dir);
}

static void tmp_fini(struct tmp *t)
{
    DIR *d = opendir(t->dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(t->dir), 0);
}

/* How many entries of t->dir have a name starting with |prefix|. */
static int count_entries(const struct tmp *t, const char *prefix)
{
    int found = 0;
    DIR *d = opendir(t->dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            found++;
    closedir(d);
    return found;
}

static lk_spool_db *open_ok(const char *path)
{
    lk_spool_db *db = NULL;
    char *moved = (char *)1, *err = NULL;
    int rc = lk_spool_db_open(&db, path, false, &moved, &err);
    ck_assert_msg(rc == 0, "open: %d %s", rc, err != NULL ? err : "");
    ck_assert_ptr_null(moved);
    ck_assert_ptr_null(err);
    return db;
}

static int64_t put_at(lk_spool_db *db, const char *exporter, int signal,
                      const char *payload, int64_t created)
{
    struct lk_spool_row r = {
        .exporter = exporter,
        .signal = signal,
        .form = 2,
        .items = (uint32_t)strlen(payload),
        .attempts = 1,
        .created_ms = created,
        .payload = payload,
        .len = strlen(payload),
    };
    ck_assert_int_eq(lk_spool_db_insert(db, &r), 0);
    return r.id;
}

static int64_t put(lk_spool_db *db, const char *exporter, int signal,
                   const char *payload)
{
    return put_at(db, exporter, signal, payload, 1);
}

static int64_t put_first(lk_spool_db *db, const char *exporter, int signal,
                         const char *payload)
{
    struct lk_spool_row r = {
        .exporter = exporter,
        .signal = signal,
        .payload = payload,
        .len = strlen(payload),
        .items = 1,
    };
    ck_assert_int_eq(lk_spool_db_insert_first(db, &r), 0);
    return r.id;
}

/* What a read gave: ids and payloads joined with '|', e.g. "a|b|c|". */
struct got {
    int64_t ids[64];
    size_t n;
    char text[1024];
    int stop_after; /* the callback returns non-zero on this row (1-based) */
    struct lk_spool_row last;
};

static int collect(void *arg, const struct lk_spool_row *row)
{
    struct got *g = arg;
    ck_assert_uint_lt(g->n, 64);
    g->ids[g->n++] = row->id;
    size_t len = strlen(g->text);
    snprintf(g->text + len, sizeof(g->text) - len, "%.*s|", (int)row->len,
             (const char *)row->payload);
    g->last = *row;
    g->last.payload = NULL;
    return g->stop_after != 0 && (int)g->n == g->stop_after;
}

static void read_all(lk_spool_db *db, const char *exporter, int signal,
                     int64_t after, struct got *g)
{
    memset(g, 0, sizeof(*g));
    ck_assert_int_eq(lk_spool_db_read(db, exporter, signal, after, SIZE_MAX,
                                      SIZE_MAX, collect, g),
                     0);
}

START_TEST(rows_survive_a_reopen)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    int64_t a = put_at(db, "otlp/jaeger", 1, "first", 1000);
    int64_t b = put_at(db, "otlp/jaeger", 1, "second", 2000);
    ck_assert_int_eq(lk_spool_db_commit(db), 0);
    ck_assert_int_gt(b, a);
    lk_spool_db_close(db);

    db = open_ok(t.path);
    struct got g;
    read_all(db, "otlp/jaeger", 1, INT64_MIN, &g);
    ck_assert_uint_eq(g.n, 2);
    ck_assert_str_eq(g.text, "first|second|");
    ck_assert_int_eq(g.ids[0], a);
    ck_assert_int_eq(g.ids[1], b);
    /* Every field comes back. */
    ck_assert_str_eq(g.last.exporter, "otlp/jaeger");
    ck_assert_int_eq(g.last.signal, 1);
    ck_assert_int_eq(g.last.form, 2);
    ck_assert_uint_eq(g.last.items, 6);
    ck_assert_uint_eq(g.last.attempts, 1);
    ck_assert_int_eq(g.last.created_ms, 2000);
    ck_assert_uint_eq(g.last.len, 6);
    /* Appends after a reopen go after the rows already there. */
    int64_t c = put_at(db, "otlp/jaeger", 1, "third", 3000);
    ck_assert_int_gt(c, b);
    ck_assert_uint_gt(lk_spool_db_file_bytes(db), 0);
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

START_TEST(streams_read_in_insert_order_after_a_cursor)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    put(db, "a", 0, "a0-1");
    put(db, "b", 0, "b0-1");
    int64_t second = put(db, "a", 0, "a0-2");
    put(db, "a", 1, "a1-1");
    put(db, "a", 0, "a0-3");
    put(db, "b", 0, "b0-2");

    struct got g;
    read_all(db, "a", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "a0-1|a0-2|a0-3|");
    read_all(db, "a", 1, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "a1-1|");
    read_all(db, "b", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "b0-1|b0-2|");
    read_all(db, "a", 0, second, &g);
    ck_assert_str_eq(g.text, "a0-3|");
    read_all(db, "c", 0, INT64_MIN, &g);
    ck_assert_uint_eq(g.n, 0);
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

START_TEST(read_stops_at_rows_bytes_or_the_callback)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    put(db, "e", 0, "0123456789"); /* 10 bytes each */
    put(db, "e", 0, "abcdefghij");
    put(db, "e", 0, "ABCDEFGHIJ");
    struct got g;

    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(lk_spool_db_read(db, "e", 0, INT64_MIN, 2, SIZE_MAX, collect, &g), 0);
    ck_assert_str_eq(g.text, "0123456789|abcdefghij|");
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(lk_spool_db_read(db, "e", 0, INT64_MIN, 0, SIZE_MAX, collect, &g), 0);
    ck_assert_uint_eq(g.n, 0);
    /* 15 bytes: the second row passes it and is still given. */
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(lk_spool_db_read(db, "e", 0, INT64_MIN, SIZE_MAX, 15, collect, &g), 0);
    ck_assert_str_eq(g.text, "0123456789|abcdefghij|");
    /* Exactly reached: 20 bytes stop after two rows too. */
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(lk_spool_db_read(db, "e", 0, INT64_MIN, SIZE_MAX, 20, collect, &g), 0);
    ck_assert_uint_eq(g.n, 2);
    /* A row larger than max_bytes still comes, alone. */
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(lk_spool_db_read(db, "e", 0, INT64_MIN, SIZE_MAX, 1, collect, &g), 0);
    ck_assert_str_eq(g.text, "0123456789|");
    memset(&g, 0, sizeof(g));
    g.stop_after = 2;
    ck_assert_int_eq(lk_spool_db_read(db, "e", 0, INT64_MIN, SIZE_MAX, SIZE_MAX, collect, &g), 0);
    ck_assert_str_eq(g.text, "0123456789|abcdefghij|");
    /* The statement is reset: the next read starts over. */
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_uint_eq(g.n, 3);
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

START_TEST(insert_first_goes_before_every_row)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    /* On an empty table too; and ids are never 0 (the queues' "no row"):
     * insert_first's are negative, appends' positive even after them. */
    int64_t x = put_first(db, "e", 0, "x");
    ck_assert_int_lt(x, 0);
    ck_assert_int_gt(put(db, "e", 0, "a"), 0);
    put(db, "e", 0, "b");
    put(db, "other", 0, "o");
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    int64_t y = put_first(db, "e", 0, "y");
    int64_t z = put_first(db, "e", 0, "z");
    ck_assert_int_eq(lk_spool_db_commit(db), 0);
    ck_assert_int_lt(y, x);
    ck_assert_int_lt(z, y);
    put(db, "e", 0, "c");

    struct got g;
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "z|y|x|a|b|c|");
    ck_assert_int_eq(g.ids[0], z);
    lk_spool_db_close(db);
    db = open_ok(t.path);
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "z|y|x|a|b|c|");
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

START_TEST(delete_removes_rows_and_ids_are_not_given_twice)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    int64_t ids[4];
    ids[0] = put(db, "e", 0, "a");
    ids[1] = put(db, "e", 0, "b");
    ids[2] = put(db, "e", 0, "c");
    int64_t del[] = {ids[0], ids[2], 999999}; /* a missing one is ignored */
    ck_assert_int_eq(lk_spool_db_delete(db, del, 3), 0);
    struct got g;
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "b|");
    ck_assert_int_eq(lk_spool_db_delete(db, &ids[1], 1), 0);
    ck_assert_int_eq(lk_spool_db_delete(db, NULL, 0), 0);
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_uint_eq(g.n, 0);
    /* The table is empty; a reader whose cursor is at ids[2] still sees
     * what comes next. */
    ids[3] = put(db, "e", 0, "d");
    ck_assert_int_gt(ids[3], ids[2]);
    read_all(db, "e", 0, ids[2], &g);
    ck_assert_str_eq(g.text, "d|");
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

struct streams {
    struct lk_spool_stream_info s[8];
    char names[8][32];
    size_t n;
};

static void on_stream(void *arg, const struct lk_spool_stream_info *s)
{
    struct streams *all = arg;
    ck_assert_uint_lt(all->n, 8);
    snprintf(all->names[all->n], sizeof(all->names[0]), "%s", s->exporter);
    all->s[all->n] = *s;
    all->s[all->n].exporter = all->names[all->n];
    all->n++;
}

static const struct lk_spool_stream_info *stream(const struct streams *all,
                                                 const char *exporter,
                                                 int signal)
{
    for (size_t i = 0; i < all->n; i++)
        if (strcmp(all->s[i].exporter, exporter) == 0 &&
            all->s[i].signal == signal)
            return &all->s[i];
    return NULL;
}

START_TEST(streams_summarise_rows_bytes_items_and_age)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    struct streams all = {0};
    ck_assert_int_eq(lk_spool_db_streams(db, on_stream, &all), 0);
    ck_assert_uint_eq(all.n, 0);

    put_at(db, "loki", 2, "abc", 5000);   /* items = length in put() */
    put_at(db, "loki", 2, "defgh", 4000);
    put_at(db, "loki", 0, "x", 7000);
    put_at(db, "otlp", 2, "0123456789", 9000);
    put_first(db, "otlp", 2, "");      /* created 0, 1 item, empty payload */
    ck_assert_int_eq(lk_spool_db_streams(db, on_stream, &all), 0);
    ck_assert_uint_eq(all.n, 3);
    const struct lk_spool_stream_info *s = stream(&all, "loki", 2);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->rows, 2);
    ck_assert_uint_eq(s->bytes, 8);
    ck_assert_uint_eq(s->items, 8);
    ck_assert_int_eq(s->oldest_created_ms, 4000);
    s = stream(&all, "loki", 0);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->rows, 1);
    ck_assert_int_eq(s->oldest_created_ms, 7000);
    s = stream(&all, "otlp", 2);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(s->rows, 2);
    ck_assert_uint_eq(s->bytes, 10);
    ck_assert_uint_eq(s->items, 11);
    ck_assert_int_eq(s->oldest_created_ms, 0);

    /* The empty payload reads back as an empty, non-NULL one. */
    struct got g;
    read_all(db, "otlp", 2, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "|0123456789|");
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

START_TEST(rollback_discards_inserts_and_deletes)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    int64_t kept = put(db, "e", 0, "kept");
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    put(db, "e", 0, "gone");
    put_first(db, "e", 0, "gone too");
    ck_assert_int_eq(lk_spool_db_delete(db, &kept, 1), 0);
    lk_spool_db_rollback(db);
    struct got g;
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "kept|");
    lk_spool_db_rollback(db); /* nothing open: a no-op */

    /* A transaction left open at close is rolled back. */
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    put(db, "e", 0, "open at close");
    lk_spool_db_close(db);
    db = open_ok(t.path);
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "kept|");
    /* A transaction inside a transaction is an error. */
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    ck_assert_int_eq(lk_spool_db_begin(db), LK_EIO);
    ck_assert_ptr_nonnull(lk_spool_db_errmsg(db));
    lk_spool_db_rollback(db);
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

START_TEST(durable_can_be_switched)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = NULL;
    char *moved = NULL, *err = NULL;
    ck_assert_int_eq(lk_spool_db_open(&db, t.path, true, &moved, &err), 0);
    put(db, "e", 0, "a");
    ck_assert_int_eq(lk_spool_db_set_durable(db, false), 0);
    put(db, "e", 0, "b");
    ck_assert_int_eq(lk_spool_db_set_durable(db, true), 0);
    put(db, "e", 0, "c");
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    ck_assert_int_eq(lk_spool_db_set_durable(db, false), LK_EIO);
    lk_spool_db_rollback(db);
    struct got g;
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "a|b|c|");
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* Opens |t->path|, which must be moved aside; checks the name, that the
 * fresh database works, and returns the moved file's path in |aside|. */
static void open_moves_aside(struct tmp *t, char *aside, size_t n)
{
    lk_spool_db *db = NULL;
    char *moved = NULL, *err = NULL;
    int rc = lk_spool_db_open(&db, t->path, false, &moved, &err);
    ck_assert_msg(rc == 0, "open: %d %s", rc, err != NULL ? err : "");
    ck_assert_ptr_nonnull(moved);
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "%s.corrupt-", t->path);
    ck_assert_msg(strncmp(moved, prefix, strlen(prefix)) == 0, "%s", moved);
    struct stat st;
    ck_assert_int_eq(stat(moved, &st), 0);
    snprintf(aside, n, "%s", moved);
    free(moved);

    struct got g;
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_uint_eq(g.n, 0);
    put(db, "e", 0, "fresh");
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "fresh|");
    lk_spool_db_close(db);
    /* The fresh one is a spool: the next open keeps it. */
    db = open_ok(t->path);
    read_all(db, "e", 0, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "fresh|");
    lk_spool_db_close(db);
}

START_TEST(a_file_that_is_not_a_database_is_moved_aside)
{
    struct tmp t;
    tmp_init(&t);
    char garbage[8192];
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (char)('a' + i % 26);
    write_file(t.path, garbage, sizeof(garbage));
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", t.path);
    write_file(wal, "not a wal", 9);

    char aside[256], buf[16384];
    open_moves_aside(&t, aside, sizeof(aside));
    ck_assert_uint_eq(read_file(aside, buf, sizeof(buf)), sizeof(garbage));
    ck_assert(memcmp(buf, garbage, sizeof(garbage)) == 0);
    /* Its WAL went with it, under the same name. */
    char aside_wal[300];
    snprintf(aside_wal, sizeof(aside_wal), "%s-wal", aside);
    ck_assert_uint_eq(read_file(aside_wal, buf, sizeof(buf)), 9);

    /* A second bad file in the same second gets a name of its own. */
    write_file(t.path, "short", 5);
    char second[256];
    open_moves_aside(&t, second, sizeof(second));
    ck_assert_str_ne(second, aside);
    ck_assert_uint_eq(read_file(second, buf, sizeof(buf)), 5);
    ck_assert_int_eq(count_entries(&t, "spool.db.corrupt-"), 3);
    tmp_fini(&t);
}
END_TEST

/* A header SQLite reads but does not support ("unsupported file format",
 * SQLITE_ERROR rather than NOTADB or CORRUPT): found by the fuzz target. */
START_TEST(an_unsupported_header_is_moved_aside)
{
    struct tmp t;
    tmp_init(&t);
    static const char head[] = "SQLite format 3\000\020\000\002\002\000@  \000\000\000\003\000"
                               "`\000SQLite \000\000\000format 3\000\020\000\002\002\000@  "
                               "\000\000\000\000\003\000\000\000\000\000\000\000\000\003\000.c"
                               "\000\003\000\001.c\001";
    write_file(t.path, head, sizeof(head) - 1);
    char aside[256];
    open_moves_aside(&t, aside, sizeof(aside));
    tmp_fini(&t);
}
END_TEST

/* An SQLite database made by someone else, with |sql| run in it. */
static void make_foreign(const char *path, const char *sql)
{
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(path, &c), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_close(c), SQLITE_OK);
}

START_TEST(another_user_version_or_schema_is_moved_aside)
{
    struct tmp t;
    tmp_init(&t);
    char aside[256];
    make_foreign(t.path, "CREATE TABLE batches(id INTEGER PRIMARY KEY, exporter TEXT,"
                         " signal INTEGER, created_ms INTEGER, attempts INTEGER,"
                         " items INTEGER, form INTEGER, payload BLOB);"
                         "CREATE INDEX batches_stream ON batches(exporter, signal, id);"
                         "PRAGMA user_version=7;");
    open_moves_aside(&t, aside, sizeof(aside));
    /* The moved file is the other database, intact. */
    sqlite3 *c;
    ck_assert_int_eq(sqlite3_open(aside, &c), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(c, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 7);
    sqlite3_finalize(st);
    sqlite3_close(c);
    unlink(t.path);

    /* user_version 1 with other columns. */
    make_foreign(t.path, "CREATE TABLE batches(id INTEGER PRIMARY KEY, payload BLOB);"
                         "PRAGMA user_version=1;");
    open_moves_aside(&t, aside, sizeof(aside));
    unlink(t.path);
    /* Some other application's database, user_version 0. */
    make_foreign(t.path, "CREATE TABLE notes(body TEXT);");
    open_moves_aside(&t, aside, sizeof(aside));
    /* An empty file is simply a new database. */
    unlink(t.path);
    write_file(t.path, "", 0);
    lk_spool_db_close(open_ok(t.path));
    tmp_fini(&t);
}
END_TEST

/* A spool with enough rows to span many pages, then cut to half its size. */
static void make_truncated(const struct tmp *t)
{
    lk_spool_db *db = open_ok(t->path);
    char payload[1500];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    for (int i = 0; i < 400; i++)
        put_at(db, "e", i % 3, payload, i);
    ck_assert_int_eq(lk_spool_db_commit(db), 0);
    ck_assert_int_eq(lk_spool_db_checkpoint(db), 0);
    lk_spool_db_close(db);
    struct stat st;
    ck_assert_int_eq(stat(t->path, &st), 0);
    ck_assert_int_gt(st.st_size, 500 * 1024);
    ck_assert_int_eq(truncate(t->path, st.st_size / 2), 0);
}

START_TEST(a_truncated_database_is_moved_aside)
{
    struct tmp t;
    tmp_init(&t);
    char aside[256];
    /* Checked with quick_check (a small file). */
    make_truncated(&t);
    open_moves_aside(&t, aside, sizeof(aside));
    unlink(t.path);
    /* Checked by the scan that replaces quick_check for large files. */
    lk__spool_db_set_quick_check_max(0);
    make_truncated(&t);
    open_moves_aside(&t, aside, sizeof(aside));
    lk__spool_db_set_quick_check_max(LK__SPOOL_DB_QUICK_CHECK_MAX);
    tmp_fini(&t);
}
END_TEST

START_TEST(the_scan_check_accepts_a_good_spool)
{
    struct tmp t;
    tmp_init(&t);
    lk__spool_db_set_quick_check_max(0);
    lk_spool_db *db = open_ok(t.path);
    put(db, "e", 0, "a");
    put(db, "e", 1, "b");
    lk_spool_db_close(db);
    db = open_ok(t.path);
    struct got g;
    read_all(db, "e", 1, INT64_MIN, &g);
    ck_assert_str_eq(g.text, "b|");
    lk_spool_db_close(db);
    lk__spool_db_set_quick_check_max(LK__SPOOL_DB_QUICK_CHECK_MAX);
    tmp_fini(&t);
}
END_TEST

START_TEST(no_directory_is_an_error_with_a_message)
{
    lk_spool_db *db = (lk_spool_db *)1;
    char *moved = NULL, *err = NULL;
    const char *path = "/nonexistent-lookout-dir/spool.db";
    ck_assert_int_eq(lk_spool_db_open(&db, path, false, &moved, &err), LK_EIO);
    ck_assert_ptr_null(db);
    ck_assert_ptr_null(moved);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, path) != NULL, "%s", err);
    ck_assert_msg(strstr(err, "unable to open") != NULL, "%s", err);
    free(err);
}
END_TEST

START_TEST(a_second_open_of_the_same_file_is_refused)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    put(db, "e", 0, "a");
    lk_spool_db *other = NULL;
    char *moved = NULL, *err = NULL;
    ck_assert_int_eq(lk_spool_db_open(&other, t.path, false, &moved, &err), LK_EIO);
    ck_assert_ptr_null(other);
    ck_assert_ptr_null(moved); /* a locked file is not moved aside */
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "locked") != NULL, "%s", err);
    free(err);
    ck_assert_int_eq(count_entries(&t, "spool.db.corrupt-"), 0);
    lk_spool_db_close(db);
    db = open_ok(t.path);
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

START_TEST(checkpoint_shrinks_the_files_after_a_drain)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db *db = open_ok(t.path);
    static char payload[64 * 1024];
    memset(payload, 'q', sizeof(payload) - 1);
    int64_t ids[64];
    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    for (int i = 0; i < 64; i++)
        ids[i] = put_at(db, "e", 0, payload, i); /* 4 MiB */
    ck_assert_int_eq(lk_spool_db_commit(db), 0);
    ck_assert_int_eq(lk_spool_db_checkpoint(db), 0);
    uint64_t full = lk_spool_db_file_bytes(db);
    ck_assert_uint_gt(full, 4u * 1024 * 1024);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", t.path);
    struct stat st;
    ck_assert(stat(wal, &st) != 0 || st.st_size == 0);

    ck_assert_int_eq(lk_spool_db_begin(db), 0);
    ck_assert_int_eq(lk_spool_db_delete(db, ids, 64), 0);
    ck_assert_int_eq(lk_spool_db_commit(db), 0);
    ck_assert_int_eq(lk_spool_db_checkpoint(db), 0);
    uint64_t drained = lk_spool_db_file_bytes(db);
    ck_assert_msg(drained < full / 8, "%llu of %llu bytes left",
                  (unsigned long long)drained, (unsigned long long)full);
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

/* The child's checks, as an exit code: 0 when all held, else the step. */
static int full_disk_child(const char *path)
{
    static char big[2 * 1024 * 1024];
    lk_spool_db *db = NULL;
    char *moved = NULL, *err = NULL;
    if (lk_spool_db_open(&db, path, false, &moved, &err) != 0)
        return 10;
    struct lk_spool_row r = {.exporter = "e", .payload = big, .len = sizeof(big)};
    memset(big, 'z', sizeof(big));
    struct rlimit lim = {.rlim_cur = 512 * 1024, .rlim_max = RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 11;
    if (lk_spool_db_insert(db, &r) != LK_EFULL)
        return 12;
    if (lk_spool_db_begin(db) != 0)
        return 13;
    int rc = lk_spool_db_insert(db, &r);
    if (rc == 0)
        rc = lk_spool_db_commit(db);
    if (rc != LK_EFULL)
        return 14;
    lk_spool_db_rollback(db);
    lim.rlim_cur = RLIM_INFINITY;
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 15;
    if (lk_spool_db_insert(db, &r) != 0)
        return 16;
    struct got g = {0};
    if (lk_spool_db_read(db, "e", 0, INT64_MIN, SIZE_MAX, SIZE_MAX, collect, &g) != 0)
        return 17;
    if (g.n != 1 || g.last.len != sizeof(big))
        return 18;
    lk_spool_db_close(db);
    return 0;
}

START_TEST(a_file_size_limit_is_efull_until_lifted)
{
    struct tmp t;
    tmp_init(&t);
    lk_spool_db_close(open_ok(t.path));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* As the agent does: a write past the limit fails with EFBIG
         * instead of killing the process. */
        signal(SIGXFSZ, SIG_IGN);
        _exit(full_disk_child(t.path));
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died: status %d", status);
    ck_assert_msg(WEXITSTATUS(status) == 0, "child failed at step %d",
                  WEXITSTATUS(status));
    /* What the child committed after the limit was lifted is there. */
    lk_spool_db *db = open_ok(t.path);
    struct got g;
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(lk_spool_db_read(db, "e", 0, INT64_MIN, SIZE_MAX, SIZE_MAX, collect, &g), 0);
    ck_assert_uint_eq(g.n, 1);
    lk_spool_db_close(db);
    tmp_fini(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spool_db");
    TCase *rows = tcase_create("rows");
    tcase_add_test(rows, rows_survive_a_reopen);
    tcase_add_test(rows, streams_read_in_insert_order_after_a_cursor);
    tcase_add_test(rows, read_stops_at_rows_bytes_or_the_callback);
    tcase_add_test(rows, insert_first_goes_before_every_row);
    tcase_add_test(rows, delete_removes_rows_and_ids_are_not_given_twice);
    tcase_add_test(rows, streams_summarise_rows_bytes_items_and_age);
    suite_add_tcase(s, rows);
    TCase *tx = tcase_create("transactions");
    tcase_add_test(tx, rollback_discards_inserts_and_deletes);
    tcase_add_test(tx, durable_can_be_switched);
    tcase_add_test(tx, checkpoint_shrinks_the_files_after_a_drain);
    suite_add_tcase(s, tx);
    TCase *bad = tcase_create("bad files");
    tcase_add_test(bad, a_file_that_is_not_a_database_is_moved_aside);
    tcase_add_test(bad, an_unsupported_header_is_moved_aside);
    tcase_add_test(bad, another_user_version_or_schema_is_moved_aside);
    tcase_add_test(bad, a_truncated_database_is_moved_aside);
    tcase_add_test(bad, the_scan_check_accepts_a_good_spool);
    tcase_add_test(bad, no_directory_is_an_error_with_a_message);
    tcase_add_test(bad, a_second_open_of_the_same_file_is_refused);
    suite_add_tcase(s, bad);
    TCase *full = tcase_create("full");
    tcase_add_test(full, a_file_size_limit_is_efull_until_lifted);
    suite_add_tcase(s, full);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
