#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/json_escape.h"

static enum lk_log_level current_level = LK_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void lk_log_level_set(enum lk_log_level lvl)
{
    current_level = lvl;
}

enum lk_log_level lk_log_level_get(void)
{
    return current_level;
}

bool lk_log_level_parse(const char *s, enum lk_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum lk_log_level)i;
            return true;
        }
    }
    return false;
}

void lk__log(enum lk_log_level lvl, const char *msg,
             const struct lk_log_field *fields)
{
    char line[2048];
    lk_buf b;
    struct timespec ts;
    struct tm tm;

    lk_buf_init(&b, 64 * 1024);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    lk_buf_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", line,
                  ts.tv_nsec / 1000000, level_names[lvl]);
    lk_json_escape(&b, msg, strlen(msg));
    for (const struct lk_log_field *f = fields; f->key != NULL; f++) {
        lk_buf_append_str(&b, ",");
        lk_json_escape(&b, f->key, strlen(f->key));
        lk_buf_append_str(&b, ":");
        switch (f->type) {
        case LK_LOG_STR:
            if (f->v.s == NULL)
                lk_buf_append_str(&b, "null");
            else
                lk_json_escape(&b, f->v.s, strlen(f->v.s));
            break;
        case LK_LOG_INT:
            lk_buf_printf(&b, "%" PRId64, f->v.i);
            break;
        case LK_LOG_UINT:
            lk_buf_printf(&b, "%" PRIu64, f->v.u);
            break;
        case LK_LOG_DBL:
            lk_buf_printf(&b, "%.6g", f->v.d);
            break;
        case LK_LOG_END:
            break;
        }
    }
    if (lk_buf_append_str(&b, "}\n") == 0)
        fwrite(b.data, 1, b.len, stderr);
    lk_buf_fini(&b);
}
