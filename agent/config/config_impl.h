/*
 * Inside the configuration loader: what config.c (the schema walk, value
 * formats, endpoints, ${VAR} expansion, listeners, the top level) shares
 * with the files holding each component's keys: config_receivers.c,
 * config_exporters.c and config_pipelines.c. Not for other modules.
 */
#ifndef LK_CONFIG_CONFIG_IMPL_H
#define LK_CONFIG_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/config_yaml.h"

#define MS_S 1000ULL
#define MS_M (60 * MS_S)
#define MS_H (60 * MS_M)
/* Longest duration accepted anywhere: one year. Keeps every later sum of a
 * timestamp and a duration, and any conversion to int64 ns, far from overflow. */
#define DUR_MAX (8760 * MS_H)

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

/* A pipeline names at most this many receivers or exporters. */
#define LIST_MAX 64
/* Config files larger than this are refused before parsing. */
#define FILE_MAX (1024 * 1024)
/* Longest scalar after ${VAR} expansion. */
#define EXPANDED_MAX (64 * 1024)
/* Longest dotted key path kept for messages. */
#define PATH_LEN 200

#define ERR(c, at, ...) lk__config_diag_addf((c)->d, (at)->line, (at)->col, __VA_ARGS__)
#define SHOW(c, s) lk__config_diag_show((c)->d, (s))


struct listener {
    char endpoint[PATH_LEN + 8];
    char owner[PATH_LEN];
    unsigned line, col;
};

struct ctx {
    lk__config_diag *d;
    lk_config *cfg;
    bool oom;
    const lk__ynode *receivers; /* the receivers: mapping, for references */
    const lk__ynode *exporters;
    struct listener *listeners;
    size_t nlisteners, caplisteners;
};


struct suggest {
    const char *word;
    const char *best;
    size_t bestd;
};

enum ftype {
    FT_BOOL,
    FT_U32,
    FT_U64,
    FT_DURATION, /* uint64_t ms */
    FT_SIZE,     /* uint64_t bytes */
    FT_DOUBLE,
    FT_ENUM,     /* int: index into names */
    FT_STRING,   /* char *, replaced */
    FT_ENDPOINT, /* char *, replaced; flags say which forms */
    FT_NODE      /* only recorded; the caller handles it */
};

#define EP_UNIX 1u
#define STR_EMPTY_UNSET 8u /* FT_STRING: "" means "not set" (NULL) */

/* Table rows. Offsets are into the struct that the walk fills. */
#define F_NODE(k) {.key = (k), .type = FT_NODE}
#define F_VAL(k, t, st, m) {.key = (k), .type = (t), .off = offsetof(st, m)}
#define F_INT(k, t, st, m, lo, hi)                                             \
    {.key = (k), .type = (t), .off = offsetof(st, m), .min = (lo), .max = (hi)}
#define F_DBL(k, st, m, lo, hi)                                                \
    {.key = (k), .type = FT_DOUBLE, .off = offsetof(st, m), .dmin = (lo),      \
     .dmax = (hi)}
#define F_ENUM(k, st, m, n)                                                    \
    {.key = (k), .type = FT_ENUM, .off = offsetof(st, m), .names = (n)}

struct field {
    const char *key;
    enum ftype type;
    size_t off; /* into the struct the walk fills */
    uint64_t min, max;
    double dmin, dmax;
    const char *const *names; /* FT_ENUM, NULL-terminated */
    unsigned flags;
};

/* What a walk found for each field of its table, by index. */

struct seen {
    const lk__ynode *key, *val; /* NULL: absent */
    bool ok;                    /* present and valid */
};

#define NF(t) (sizeof(t) / sizeof((t)[0]))
#define SEEN(t, s, k) cfg_seen_get((t), NF(t), (s), (k))

/* Position of errors about an empty file or a missing top-level key. */
extern const lk__ynode cfg_top_pos;

/* config.c */
char *cfg_xstrdup(struct ctx *c, const char *s);
void cfg_set_str(struct ctx *c, char **dst, const char *s);
void cfg_join(char *out, const char *parent, const char *key);
void cfg_suggest_init(struct suggest *s, const char *word);
void cfg_suggest_try(struct suggest *s, const char *cand);
const char *cfg_suggest_text(struct ctx *c, const struct suggest *s, char *buf, size_t len);
bool cfg_is_digit(char ch);
bool cfg_is_alpha(char ch);
void cfg_fmt_duration(char *buf, size_t len, uint64_t ms);
void cfg_fmt_size(char *buf, size_t len, uint64_t b);
const char *cfg_endpoint_problem(const char *s, bool allow_unix);
char *cfg_scalar_value(struct ctx *c, const lk__ynode *n, const char *path, const char *what);
bool cfg_set_field(struct ctx *c, const struct field *f, const lk__ynode *val, const char *path, void *base);
bool cfg_usable_pair(struct ctx *c, const lk__ynode *key, const lk__ynode *val);
bool cfg_walk_map(struct ctx *c, const lk__ynode *map, const char *path, const struct field *f, size_t nf, void *base, struct seen *seen);
const struct seen *cfg_seen_get(const struct field *f, size_t nf, const struct seen *s, const char *key);
void cfg_add_listener(struct ctx *c, const char *endpoint, const char *owner, const lk__ynode *at);
void cfg_check_listeners(struct ctx *c);
int cfg_check_component_name(struct ctx *c, const lk__ynode *key, const char *kind, const char *const *types);
/* the components */
void cfg_do_exporters(struct ctx *c, const lk__ynode *map);
void cfg_do_pipelines(struct ctx *c, const lk__ynode *pkey, const lk__ynode *map, const lk__ynode *root);
const char *cfg_label_name_problem(const char *s);
void cfg_do_receivers(struct ctx *c, const lk__ynode *map);

#endif
