/* The agent's own logs: one JSON object per line on stderr. */
#ifndef LK_CORE_LOG_H
#define LK_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum lk_log_level { LK_LOG_DEBUG, LK_LOG_INFO, LK_LOG_WARN, LK_LOG_ERROR };

enum lk_log_type { LK_LOG_END, LK_LOG_STR, LK_LOG_INT, LK_LOG_UINT, LK_LOG_DBL };

struct lk_log_field {
    const char *key;
    enum lk_log_type type;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
    } v;
};

/* Field constructors, each followed by a comma, used only inside lk_log(). */
#define LK_S(k, val) {.key = (k), .type = LK_LOG_STR, .v.s = (val)},
#define LK_I(k, val) {.key = (k), .type = LK_LOG_INT, .v.i = (int64_t)(val)},
#define LK_U(k, val) {.key = (k), .type = LK_LOG_UINT, .v.u = (uint64_t)(val)},
#define LK_D(k, val) {.key = (k), .type = LK_LOG_DBL, .v.d = (double)(val)},

/*
 * lk_log(LK_LOG_WARN, "export failed", LK_S("exporter", name) LK_I("status", st))
 * writes {"ts":"...","level":"warn","msg":"export failed","exporter":"...","status":14}.
 * Fields are written without commas between them; messages below the level are skipped
 * before any formatting.
 */
#define lk_log(lvl, msg, ...)                                                  \
    do {                                                                       \
        if ((lvl) >= lk_log_level_get()) {                                     \
            const struct lk_log_field lk__f[] = {__VA_ARGS__{.key = 0}};       \
            lk__log((lvl), (msg), lk__f);                                      \
        }                                                                      \
    } while (0)

void lk__log(enum lk_log_level lvl, const char *msg,
             const struct lk_log_field *fields);
void lk_log_level_set(enum lk_log_level lvl);
enum lk_log_level lk_log_level_get(void);
/* Parses "debug", "info", "warn", "error". Returns false for anything else. */
bool lk_log_level_parse(const char *s, enum lk_log_level *out);

#endif
