/*
 * libFuzzer target for lk_spool_db_open on a file of arbitrary bytes: what
 * lookout finds at storage.path after a crash, a full disk or another
 * program's write.
 *
 * The contract checked: open never fails because of the content (the file
 * is used, or moved aside and a fresh one made); an opened spool can be
 * summarised, read, appended to and read back, and whatever it held before,
 * the row appended last is read last with its bytes intact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "storage/spool_db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char dir[64];
static char path[128];

static void remove_dir(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "/tmp/lookout-spool-fuzz-%ld", (long)getpid());
    if (mkdir(dir, 0700) != 0)
        abort();
    snprintf(path, sizeof(path), "%s/spool.db", dir);
    lk_log_level_set(LK_LOG_ERROR); /* a moved-aside line per damaged input */
    atexit(remove_dir);
    return 0;
}

static void clean(void);

static void remove_dir(void)
{
    clean();
    rmdir(dir);
}

static void fail(const char *why)
{
    fprintf(stderr, "spool_db_fuzz: %s\n", why);
    abort();
}

struct last {
    int64_t id;
    char payload[16];
    size_t len;
    size_t rows;
};

static int keep_last(void *arg, const struct lk_spool_row *row)
{
    struct last *l = arg;
    l->id = row->id;
    l->len = row->len < sizeof(l->payload) ? row->len : sizeof(l->payload);
    memcpy(l->payload, row->payload, l->len);
    l->rows++;
    return 0;
}

static void count_stream(void *arg, const struct lk_spool_stream_info *s)
{
    (void)s;
    (*(int *)arg)++;
}

static void clean(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -f %s/spool.db*", dir);
    if (system(cmd) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clean();
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    lk_spool_db *db = NULL;
    char *moved = NULL, *err = NULL;
    if (lk_spool_db_open(&db, path, false, &moved, &err) != 0)
        fail(err != NULL ? err : "open failed on content");
    free(moved);
    int streams = 0;
    (void)lk_spool_db_streams(db, count_stream, &streams);
    struct last l = {0};
    /* Damage inside a row may show here (LK_EIO); nothing else may go wrong. */
    (void)lk_spool_db_read(db, "fuzz", 0, INT64_MIN, SIZE_MAX, SIZE_MAX, keep_last, &l);
    struct lk_spool_row row = {.exporter = "fuzz", .signal = 0, .items = 1,
                               .payload = "appended", .len = 8};
    int rc = lk_spool_db_begin(db);
    if (rc == 0)
        rc = lk_spool_db_insert(db, &row);
    if (rc == 0)
        rc = lk_spool_db_commit(db);
    else
        lk_spool_db_rollback(db);
    if (rc == 0) {
        memset(&l, 0, sizeof(l));
        if (lk_spool_db_read(db, "fuzz", 0, row.id - 1, SIZE_MAX, SIZE_MAX, keep_last, &l) == 0) {
            if (l.rows != 1 || l.id != row.id || l.len != 8 || memcmp(l.payload, "appended", 8))
                fail("the row appended last is not read back as written");
        }
    }
    lk_spool_db_close(db);
    return 0;
}
