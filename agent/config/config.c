#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_yaml.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"

/* Enum fields are filled through an int, by index into their names table. */
_Static_assert(sizeof(enum lk_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lk_compression) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lk_overflow) == sizeof(int), "enum size");
_Static_assert(LK_LOG_DEBUG == 0 && LK_LOG_ERROR == 3, "log level order");

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

/* Position of errors about an empty file or a missing top-level key. */
static const lk__ynode top_pos = {.kind = LK_YNODE_MAP, .line = 1, .col = 1};

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

/* ---- small helpers ---- */

static char *xstrdup(struct ctx *c, const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        c->oom = true;
    return p;
}

static void set_str(struct ctx *c, char **dst, const char *s)
{
    char *p = xstrdup(c, s);
    if (p == NULL)
        return;
    free(*dst);
    *dst = p;
}

/* |out| (PATH_LEN bytes) = "|parent|.|key|", or |key| at the top; cut to fit. */
static void join(char *out, const char *parent, const char *key)
{
    size_t o = 0;
    for (const char *p = parent; *p != '\0' && o < PATH_LEN - 1; p++)
        out[o++] = *p;
    if (o > 0 && o < PATH_LEN - 1)
        out[o++] = '.';
    for (const char *p = key; *p != '\0' && o < PATH_LEN - 1; p++)
        out[o++] = *p;
    out[o] = '\0';
}

/* Optimal string alignment distance (edits and adjacent transpositions),
 * for "did you mean". Returns SIZE_MAX for words too long to bother. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { W = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= W || m >= W)
        return SIZE_MAX;
    size_t d[W + 1][W + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

struct suggest {
    const char *word;
    const char *best;
    size_t bestd;
};

static void suggest_init(struct suggest *s, const char *word)
{
    s->word = word;
    s->best = NULL;
    s->bestd = SIZE_MAX;
}

/* Keeps |cand| if it is the closest so far and close enough to be a typo:
 * at most two edits, and no more than half of its length. */
static void suggest_try(struct suggest *s, const char *cand)
{
    size_t dist = edit_distance(s->word, cand);
    if (dist == 0 || dist > 2 || 2 * dist > strlen(cand))
        return;
    if (dist < s->bestd) {
        s->best = cand;
        s->bestd = dist;
    }
}

/* "; did you mean 'x'?" or "". Valid until the next SHOW() calls. */
static const char *suggest_text(struct ctx *c, const struct suggest *s,
                                char *buf, size_t len)
{
    if (s->best == NULL)
        return "";
    snprintf(buf, len, "; did you mean '%s'?", SHOW(c, s->best));
    return buf;
}

/* ---- value formats ---- */

enum parse_status { P_OK, P_SYNTAX, P_NOUNIT, P_UNIT, P_OVERFLOW, P_FRACTION };

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Reads decimal digits at |*s| into |*v|. Returns how many, or -1 on overflow. */
static int read_digits(const char **s, uint64_t *v)
{
    int n = 0;
    *v = 0;
    while (is_digit(**s)) {
        unsigned dig = (unsigned)(**s - '0');
        if (*v > (UINT64_MAX - dig) / 10)
            return -1;
        *v = *v * 10 + dig;
        (*s)++;
        n++;
    }
    return n;
}

static enum parse_status parse_uint(const char *s, uint64_t *out)
{
    int n = read_digits(&s, out);
    if (n < 0)
        return P_OVERFLOW;
    if (n == 0 || *s != '\0')
        return P_SYNTAX;
    return P_OK;
}

/*
 * Go-style durations: one or more <number><unit>, units ms, s, m, h, the
 * number with an optional decimal fraction ("1m30s", "1.5s"). The result is in
 * whole milliseconds. |*unit|, |*unitlen| point at the offending unit for
 * P_UNIT.
 */
static enum parse_status parse_duration(const char *s, uint64_t *ms,
                                        const char **unit, size_t *unitlen)
{
    static const uint64_t pow10[] = {1,      10,      100,      1000,     10000,
                                     100000, 1000000, 10000000, 100000000,
                                     1000000000};
    uint64_t total = 0;
    if (*s == '\0')
        return P_SYNTAX;
    while (*s != '\0') {
        uint64_t ip = 0, frac = 0;
        int nd = read_digits(&s, &ip);
        int fd = 0;
        if (nd < 0)
            return P_OVERFLOW;
        if (*s == '.') {
            s++;
            /* Digits past the ninth may only be zeros; the rest are exact. */
            while (is_digit(*s)) {
                if (fd < 9) {
                    frac = frac * 10 + (uint64_t)(*s - '0');
                    fd++;
                } else if (*s != '0') {
                    return P_FRACTION;
                }
                s++;
                nd++;
            }
        }
        if (nd == 0)
            return P_SYNTAX;
        const char *u = s;
        while (is_alpha(*s))
            s++;
        size_t ul = (size_t)(s - u);
        uint64_t mult;
        if (ul == 0)
            return *s == '\0' ? P_NOUNIT : P_SYNTAX;
        else if (ul == 2 && memcmp(u, "ms", 2) == 0)
            mult = 1;
        else if (ul == 1 && *u == 's')
            mult = MS_S;
        else if (ul == 1 && *u == 'm')
            mult = MS_M;
        else if (ul == 1 && *u == 'h')
            mult = MS_H;
        else {
            *unit = u;
            *unitlen = ul;
            return P_UNIT;
        }
        if (ip > UINT64_MAX / mult)
            return P_OVERFLOW;
        uint64_t v = ip * mult;
        /* frac < 1e9 and mult <= 3.6e6: the product fits. */
        uint64_t fv = frac * mult;
        if (fv % pow10[fd] != 0)
            return P_FRACTION;
        fv /= pow10[fd];
        if (v > UINT64_MAX - fv || v + fv > UINT64_MAX - total)
            return P_OVERFLOW;
        total += v + fv;
    }
    *ms = total;
    return P_OK;
}

/* Bytes: a bare integer, or an integer and a unit (B, KB, MB, GB are
 * powers of 1000; KiB, MiB, GiB of 1024), optionally separated by spaces. */
static enum parse_status parse_size(const char *s, uint64_t *bytes,
                                    const char **unit)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"", 1},           {"B", 1},         {"KB", 1000},
                 {"MB", 1000000},   {"GB", 1000000000}, {"KiB", KIB},
                 {"MiB", MIB},      {"GiB", GIB}};
    uint64_t n;
    int nd = read_digits(&s, &n);
    if (nd < 0)
        return P_OVERFLOW;
    if (nd == 0)
        return P_SYNTAX;
    while (*s == ' ')
        s++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].name) == 0) {
            if (n > UINT64_MAX / units[i].mult)
                return P_OVERFLOW;
            *bytes = n * units[i].mult;
            return P_OK;
        }
    }
    *unit = s;
    return P_UNIT;
}

static bool parse_double(const char *s, double *out)
{
    if (*s == '\0')
        return false;
    /* strtod would also take "inf", "nan" and hex floats; YAML users mean
     * plain decimals. */
    for (const char *p = s; *p != '\0'; p++)
        if (!is_digit(*p) && *p != '.' && *p != 'e' && *p != 'E' && *p != '+' &&
            *p != '-')
            return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static void fmt_duration(char *buf, size_t len, uint64_t ms)
{
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    static const struct {
        uint64_t ms;
        const char *unit;
    } parts[] = {{MS_H, "h"}, {MS_M, "m"}, {MS_S, "s"}, {1, "ms"}};
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < 4 && o < len; i++) {
        uint64_t q = ms / parts[i].ms;
        ms %= parts[i].ms;
        if (q > 0) {
            int w = snprintf(buf + o, len - o, "%llu%s", (unsigned long long)q,
                             parts[i].unit);
            if (w < 0)
                return;
            o += (size_t)w;
        }
    }
}

static void fmt_size(char *buf, size_t len, uint64_t b)
{
    if (b >= GIB && b % GIB == 0)
        snprintf(buf, len, "%lluGiB", (unsigned long long)(b / GIB));
    else if (b >= MIB && b % MIB == 0)
        snprintf(buf, len, "%lluMiB", (unsigned long long)(b / MIB));
    else if (b >= KIB && b % KIB == 0)
        snprintf(buf, len, "%lluKiB", (unsigned long long)(b / KIB));
    else
        snprintf(buf, len, "%llu", (unsigned long long)b);
}

/* ---- endpoints ---- */

static bool is_host_char(char ch)
{
    return is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '.' || ch == '_';
}

/* Returns NULL when |port| (up to the end of the string) is 1..65535. */
static const char *port_problem(const char *port)
{
    uint64_t v;
    if (*port == '\0')
        return "missing port after ':'";
    if (parse_uint(port, &v) != P_OK)
        return "the port is not a number";
    if (v < 1 || v > 65535)
        return "the port must be between 1 and 65535";
    return NULL;
}

/* Returns NULL when |s| is "host:port", "[v6]:port" or (with |allow_unix|)
 * "unix:///abs/path" shorter than 100 bytes; else what is wrong with it. */
static const char *endpoint_problem(const char *s, bool allow_unix)
{
    if (strncmp(s, "unix:", 5) == 0) {
        if (!allow_unix)
            return "Unix sockets are not supported here; use host:port";
        if (strncmp(s, "unix://", 7) != 0 || s[7] != '/')
            return "write a Unix socket as unix:///absolute/path";
        if (strlen(s + 7) >= 100)
            return "the socket path must be shorter than 100 bytes";
        return NULL;
    }
    if (strstr(s, "://") != NULL)
        return "expected host:port without a scheme";
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        char addr[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        if (close == NULL)
            return "missing ']' after the IPv6 address";
        size_t n = (size_t)(close - s - 1);
        const char *zone = memchr(s + 1, '%', n);
        if (zone != NULL) {
            /* Link-local addresses carry an interface: [fe80::1%eth0]. */
            if (zone + 1 == close)
                return "empty IPv6 zone after '%'";
            for (const char *p = zone + 1; p < close; p++)
                if (!is_host_char(*p))
                    return "invalid IPv6 zone";
            n = (size_t)(zone - s - 1);
        }
        if (n == 0 || n >= sizeof(addr))
            return "invalid IPv6 address";
        memcpy(addr, s + 1, n);
        addr[n] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return "invalid IPv6 address";
        if (close[1] != ':')
            return "missing ':port' after the IPv6 address";
        return port_problem(close + 2);
    }
    const char *colon = strrchr(s, ':');
    if (colon == NULL)
        return "missing ':port'";
    if (memchr(s, ':', (size_t)(colon - s)) != NULL)
        return "put IPv6 addresses in brackets, e.g. [::1]:4317";
    if (colon == s)
        return "missing host before ':' (use 127.0.0.1, or 0.0.0.0 for every interface)";
    if (colon - s > 253)
        return "the host name is too long";
    for (const char *p = s; p < colon; p++)
        if (!is_host_char(*p))
            return "invalid character in the host name";
    return port_problem(colon + 1);
}

/* ---- ${VAR} expansion ---- */

static bool is_var_name(const char *s, size_t n)
{
    if (n == 0 || is_digit(s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_')
            return false;
    return true;
}

/*
 * Returns |n|'s value with ${VAR}, ${VAR:-default} and $$ expanded (malloc'd),
 * or NULL after reporting at |n| (or on allocation failure, setting c->oom).
 */
static char *expand(struct ctx *c, const lk__ynode *n, const char *path)
{
    const char *s = n->str;
    if (strchr(s, '$') == NULL)
        return xstrdup(c, s);

    lk_buf b;
    bool bad = false;
    int rc = 0;
    lk_buf_init(&b, EXPANDED_MAX + 1);
    for (size_t i = 0; s[i] != '\0' && rc == 0;) {
        if (s[i] != '$' || (s[i + 1] != '$' && s[i + 1] != '{')) {
            rc = lk_buf_append(&b, &s[i], 1);
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            rc = lk_buf_append(&b, "$", 1);
            i += 2;
            continue;
        }
        const char *inner = s + i + 2;
        const char *close = strchr(inner, '}');
        if (close == NULL) {
            ERR(c, n, "%s: unterminated '${' in '%s'", path, SHOW(c, s));
            bad = true;
            break;
        }
        size_t inlen = (size_t)(close - inner);
        const char *dflt = NULL;
        size_t namelen = inlen, dfltlen = 0;
        const char *sep = memmem(inner, inlen, ":-", 2);
        if (sep != NULL) {
            namelen = (size_t)(sep - inner);
            dflt = sep + 2;
            dfltlen = (size_t)(close - dflt);
        }
        char name[128];
        if (!is_var_name(inner, namelen) || namelen >= sizeof(name)) {
            char ref[128];
            snprintf(ref, sizeof(ref), "%.*s", (int)(inlen < 100 ? inlen : 100), inner);
            ERR(c, n, "%s: invalid environment variable reference '${%s}' (use ${NAME} or ${NAME:-default})",
                path, SHOW(c, ref));
            bad = true;
        } else {
            memcpy(name, inner, namelen);
            name[namelen] = '\0';
            const char *val = getenv(name);
            if (dflt != NULL && (val == NULL || val[0] == '\0'))
                rc = lk_buf_append(&b, dflt, dfltlen);
            else if (val != NULL)
                rc = lk_buf_append_str(&b, val);
            else {
                ERR(c, n, "%s: environment variable '%s' is not set (set it, or write ${%s:-default})",
                    path, name, name);
                bad = true;
            }
        }
        i = (size_t)(close - s) + 1;
    }
    if (rc == LK_E2BIG) {
        ERR(c, n, "%s: value is longer than %d bytes after expansion", path,
            EXPANDED_MAX);
        bad = true;
    } else if (rc < 0) {
        c->oom = true;
        bad = true;
    }
    if (!bad && lk_buf_append(&b, "", 1) < 0) {
        c->oom = true;
        bad = true;
    }
    if (bad) {
        lk_buf_fini(&b);
        return NULL;
    }
    return (char *)lk_buf_detach(&b, NULL);
}

/* Returns the expanded value of scalar |n|, or NULL after reporting that it
 * is not one: "|path|: expected |what|, got a mapping". */
static char *scalar_value(struct ctx *c, const lk__ynode *n, const char *path,
                          const char *what)
{
    if (n->kind != LK_YNODE_SCALAR || lk__config_ynode_is_null(n)) {
        ERR(c, n, "%s: expected %s, got %s", path, what,
            lk__config_ynode_kind_name(n));
        return NULL;
    }
    return expand(c, n, path);
}

/* ---- schema-driven mapping walk ---- */

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

static void range_error(struct ctx *c, const lk__ynode *at, const char *path,
                        const struct field *f, uint64_t v)
{
    char lo[48], hi[48], got[48];
    switch (f->type) {
    case FT_DURATION:
        fmt_duration(lo, sizeof(lo), f->min);
        fmt_duration(hi, sizeof(hi), f->max);
        fmt_duration(got, sizeof(got), v);
        break;
    case FT_SIZE:
        fmt_size(lo, sizeof(lo), f->min);
        fmt_size(hi, sizeof(hi), f->max);
        fmt_size(got, sizeof(got), v);
        break;
    default:
        snprintf(lo, sizeof(lo), "%llu", (unsigned long long)f->min);
        snprintf(hi, sizeof(hi), "%llu", (unsigned long long)f->max);
        snprintf(got, sizeof(got), "%llu", (unsigned long long)v);
        break;
    }
    ERR(c, at, "%s: must be between %s and %s, got %s", path, lo, hi, got);
}

static void names_list(char *buf, size_t len, const char *const *names)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i] != NULL && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            return;
        o += (size_t)w;
    }
}

/* Converts |val| for field |f| into |base|. Returns true when it is valid. */
static bool set_field(struct ctx *c, const struct field *f, const lk__ynode *val,
                      const char *path, void *base)
{
    void *dst = (char *)base + f->off;
    const char *what;
    switch (f->type) {
    case FT_BOOL:
        what = "true or false";
        break;
    case FT_U32:
    case FT_U64:
        what = "a whole number";
        break;
    case FT_DURATION:
        what = "a duration like 200ms or 5s";
        break;
    case FT_SIZE:
        what = "a size like 64MiB or 1048576";
        break;
    case FT_DOUBLE:
        what = "a number";
        break;
    case FT_ENUM:
        what = "one of";
        break;
    case FT_ENDPOINT:
        what = f->flags & EP_UNIX ? "an endpoint like 127.0.0.1:4317 or unix:///path"
                                  : "an endpoint like 127.0.0.1:4317";
        break;
    default:
        what = "a string";
        break;
    }
    if (f->type == FT_NODE)
        return true;

    char enumbuf[128];
    if (f->type == FT_ENUM) {
        names_list(enumbuf + 7, sizeof(enumbuf) - 7, f->names);
        memcpy(enumbuf, "one of ", 7);
        what = enumbuf;
    }
    char *s = scalar_value(c, val, path, what);
    if (s == NULL)
        return false;

    bool ok = false;
    uint64_t u = 0;
    enum parse_status st;
    const char *unit = NULL;
    size_t unitlen = 0;
    switch (f->type) {
    case FT_BOOL:
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
            *(bool *)dst = s[0] == 't';
            ok = true;
        } else {
            ERR(c, val, "%s: expected true or false, got '%s'", path, SHOW(c, s));
        }
        break;
    case FT_U32:
    case FT_U64:
        st = parse_uint(s, &u);
        if (st == P_SYNTAX && !(s[0] == '-' && is_digit(s[1]))) {
            ERR(c, val, "%s: expected a whole number, got '%s'", path, SHOW(c, s));
        } else if (st != P_OK || u < f->min || u > f->max) {
            char lo[24], hi[24];
            snprintf(lo, sizeof(lo), "%llu", (unsigned long long)f->min);
            snprintf(hi, sizeof(hi), "%llu", (unsigned long long)f->max);
            ERR(c, val, "%s: must be between %s and %s, got %s", path, lo, hi,
                SHOW(c, s));
        } else {
            if (f->type == FT_U32)
                *(uint32_t *)dst = (uint32_t)u;
            else
                *(uint64_t *)dst = u;
            ok = true;
        }
        break;
    case FT_DURATION:
        st = parse_duration(s, &u, &unit, &unitlen);
        if (st == P_NOUNIT)
            ERR(c, val, "%s: duration '%s' needs a unit, e.g. 5s or 500ms (units: ms, s, m, h)",
                path, SHOW(c, s));
        else if (st == P_UNIT)
            ERR(c, val, "%s: unknown duration unit '%.*s' in '%s' (units: ms, s, m, h)",
                path, (int)(unitlen > 16 ? 16 : unitlen), unit, SHOW(c, s));
        else if (st == P_FRACTION)
            ERR(c, val, "%s: duration '%s' is finer than a millisecond", path,
                SHOW(c, s));
        else if (st == P_SYNTAX)
            ERR(c, val, "%s: expected a duration like 200ms or 5s, got '%s'", path,
                SHOW(c, s));
        else if (st == P_OVERFLOW)
            ERR(c, val, "%s: duration '%s' is too large", path, SHOW(c, s));
        else if (u < f->min || u > f->max)
            range_error(c, val, path, f, u);
        else {
            *(uint64_t *)dst = u;
            ok = true;
        }
        break;
    case FT_SIZE:
        st = parse_size(s, &u, &unit);
        if (st == P_SYNTAX)
            ERR(c, val, "%s: expected a size like 64MiB or 1048576, got '%s'", path,
                SHOW(c, s));
        else if (st == P_UNIT)
            ERR(c, val, "%s: unknown size unit '%s' (use B, KB, MB, GB, KiB, MiB or GiB)",
                path, SHOW(c, unit));
        else if (st == P_OVERFLOW)
            ERR(c, val, "%s: size '%s' is too large", path, SHOW(c, s));
        else if (u < f->min || u > f->max)
            range_error(c, val, path, f, u);
        else {
            *(uint64_t *)dst = u;
            ok = true;
        }
        break;
    case FT_DOUBLE: {
        double dv;
        if (!parse_double(s, &dv))
            ERR(c, val, "%s: expected a number, got '%s'", path, SHOW(c, s));
        else if (dv < f->dmin || dv > f->dmax)
            ERR(c, val, "%s: must be between %g and %g, got %s", path, f->dmin,
                f->dmax, SHOW(c, s));
        else {
            *(double *)dst = dv;
            ok = true;
        }
        break;
    }
    case FT_ENUM: {
        struct suggest sg;
        char sbuf[128];
        suggest_init(&sg, s);
        for (int i = 0; f->names[i] != NULL; i++) {
            if (strcmp(s, f->names[i]) == 0) {
                memcpy(dst, &i, sizeof(i));
                ok = true;
                break;
            }
            suggest_try(&sg, f->names[i]);
        }
        if (!ok)
            ERR(c, val, "%s: expected %s, got '%s'%s", path, what, SHOW(c, s),
                suggest_text(c, &sg, sbuf, sizeof(sbuf)));
        break;
    }
    case FT_STRING:
        if (s[0] == '\0' && (f->flags & STR_EMPTY_UNSET)) {
            free(*(char **)dst);
            *(char **)dst = NULL;
            ok = true;
        } else if (s[0] == '\0') {
            ERR(c, val, "%s: must not be empty", path);
        } else {
            free(*(char **)dst);
            *(char **)dst = s;
            s = NULL;
            ok = true;
        }
        break;
    case FT_ENDPOINT: {
        const char *why = endpoint_problem(s, f->flags & EP_UNIX);
        if (why != NULL) {
            ERR(c, val, "%s: invalid endpoint '%s': %s", path, SHOW(c, s), why);
        } else {
            free(*(char **)dst);
            *(char **)dst = s;
            s = NULL;
            ok = true;
        }
        break;
    }
    case FT_NODE:
        break;
    }
    free(s);
    return ok;
}

static void unknown_key(struct ctx *c, const lk__ynode *key, const char *path,
                        const struct field *f, size_t nf)
{
    struct suggest sg;
    char sbuf[128];
    suggest_init(&sg, key->str);
    for (size_t i = 0; i < nf; i++)
        suggest_try(&sg, f[i].key);
    if (path[0] == '\0')
        ERR(c, key, "unknown key '%s' at the top level%s", SHOW(c, key->str),
            suggest_text(c, &sg, sbuf, sizeof(sbuf)));
    else
        ERR(c, key, "unknown key '%s' in %s%s", SHOW(c, key->str), path,
            suggest_text(c, &sg, sbuf, sizeof(sbuf)));
}

/* True for a key that can be looked at: a scalar, not a repeat, not already
 * reported. Reports other kinds of keys. */
static bool usable_pair(struct ctx *c, const lk__ynode *key, const lk__ynode *val)
{
    if (key->dup || key->kind == LK_YNODE_BAD || val->kind == LK_YNODE_BAD)
        return false;
    if (key->kind != LK_YNODE_SCALAR) {
        ERR(c, key, "keys must be strings, not %s", lk__config_ynode_kind_name(key));
        return false;
    }
    return true;
}

/*
 * Checks that |map| (which may be NULL or null: no keys) is a mapping whose
 * keys are all in |f|, converts each value into |base| and records them in
 * |seen| (|nf| entries). Returns false when |map| is not a mapping at all.
 */
static bool walk_map(struct ctx *c, const lk__ynode *map, const char *path,
                     const struct field *f, size_t nf, void *base,
                     struct seen *seen)
{
    memset(seen, 0, nf * sizeof(*seen));
    if (lk__config_ynode_is_null(map))
        return true;
    if (map->kind == LK_YNODE_BAD)
        return false;
    if (map->kind != LK_YNODE_MAP) {
        if (path[0] == '\0')
            ERR(c, map, "the configuration must be a mapping of keys to values, got %s",
                lk__config_ynode_kind_name(map));
        else
            ERR(c, map, "%s: expected a mapping, got %s", path,
                lk__config_ynode_kind_name(map));
        return false;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!usable_pair(c, key, val))
            continue;
        size_t j = 0;
        while (j < nf && strcmp(f[j].key, key->str) != 0)
            j++;
        if (j == nf) {
            unknown_key(c, key, path, f, nf);
            continue;
        }
        char sub[PATH_LEN];
        join(sub, path, key->str);
        seen[j].key = key;
        seen[j].val = val;
        seen[j].ok = set_field(c, &f[j], val, sub, base);
    }
    return true;
}

static const struct seen *seen_get(const struct field *f, size_t nf,
                                   const struct seen *s, const char *key)
{
    for (size_t i = 0; i < nf; i++)
        if (strcmp(f[i].key, key) == 0)
            return &s[i];
    return NULL; /* not reached: keys come from the same table */
}

#define NF(t) (sizeof(t) / sizeof((t)[0]))
#define SEEN(t, s, k) seen_get((t), NF(t), (s), (k))

/* ---- listeners: one endpoint, one owner ---- */

static void add_listener(struct ctx *c, const char *endpoint, const char *owner,
                         const lk__ynode *at)
{
    if (endpoint == NULL)
        return;
    if (c->nlisteners == c->caplisteners) {
        size_t ncap = c->caplisteners ? 2 * c->caplisteners : 4;
        struct listener *l = realloc(c->listeners, ncap * sizeof(*l));
        if (l == NULL) {
            c->oom = true;
            return;
        }
        c->listeners = l;
        c->caplisteners = ncap;
    }
    struct listener *l = &c->listeners[c->nlisteners++];
    snprintf(l->endpoint, sizeof(l->endpoint), "%s", endpoint);
    snprintf(l->owner, sizeof(l->owner), "%s", owner);
    l->line = at->line;
    l->col = at->col;
}

static bool before(const struct listener *a, const struct listener *b)
{
    return a->line < b->line || (a->line == b->line && a->col < b->col);
}

/* Reports two listeners on the same endpoint, at the later of the two. */
static void check_listeners(struct ctx *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        for (size_t j = i + 1; j < c->nlisteners; j++) {
            const struct listener *a = &c->listeners[i], *b = &c->listeners[j];
            if (strcmp(a->endpoint, b->endpoint) != 0)
                continue;
            if (before(b, a)) {
                const struct listener *t = a;
                a = b;
                b = t;
            }
            lk__config_diag_addf(c->d, b->line, b->col,
                                 "%s: endpoint '%s' is already used by %s", b->owner,
                                 SHOW(c, b->endpoint), a->owner);
        }
    }
}

/* ---- component names ---- */

/* Indexed by enum lk_receiver_type. */
static const char *const receiver_types[] = {"otlp", "lines", NULL};
/* Indexed by enum lk_exporter_type. */
static const char *const exporter_types[] = {"otlp", "otlphttp", "loki", "prometheus",
                                             "prometheusremotewrite", NULL};

/* Checks "<type>" or "<type>/<suffix>" with a type from |types| (NULL-
 * terminated). |kind| is "receiver" or "exporter". Returns the index of the
 * type, or -1 after reporting the problem. */
static int check_component_name(struct ctx *c, const lk__ynode *key,
                                const char *kind, const char *const *types)
{
    const char *name = key->str;
    const char *slash = strchr(name, '/');
    size_t tlen = slash ? (size_t)(slash - name) : strlen(name);
    char type[64];

    snprintf(type, sizeof(type), "%.*s", (int)(tlen < 63 ? tlen : 63), name);
    int known = -1;
    struct suggest sg;
    char sbuf[128], list[64];
    suggest_init(&sg, type);
    for (int i = 0; types[i] != NULL; i++) {
        if (tlen == strlen(types[i]) && memcmp(name, types[i], tlen) == 0)
            known = i;
        suggest_try(&sg, types[i]);
    }
    if (known < 0) {
        names_list(list, sizeof(list), types);
        ERR(c, key, "unknown %s type '%s' (known: %s)%s", kind, SHOW(c, type), list,
            suggest_text(c, &sg, sbuf, sizeof(sbuf)));
        return -1;
    }
    if (slash == NULL)
        return known;
    if (slash[1] == '\0') {
        ERR(c, key, "%s name '%s' needs a name after the '/'", kind, SHOW(c, name));
        return -1;
    }
    for (const char *p = slash + 1; *p != '\0'; p++) {
        if (!is_host_char(*p)) {
            ERR(c, key, "%s name '%s' may only use letters, digits, '_', '-' and '.' after the '/'",
                kind, SHOW(c, name));
            return -1;
        }
    }
    return known;
}

/* ---- receivers ---- */

static const struct field grpc_fields[] = {
    {.key = "endpoint", .type = FT_ENDPOINT,
     .off = offsetof(struct lk_grpc_receiver_config, endpoint), .flags = EP_UNIX},
    F_INT("max_recv_msg_size", FT_SIZE, struct lk_grpc_receiver_config,
          max_recv_msg_size, KIB, GIB),
    F_INT("max_concurrent_streams", FT_U32, struct lk_grpc_receiver_config,
          max_concurrent_streams, 1, INT32_MAX),
    F_INT("max_connections", FT_U32, struct lk_grpc_receiver_config,
          max_connections, 1, 1000000),
    F_INT("idle_timeout", FT_DURATION, struct lk_grpc_receiver_config,
          idle_timeout_ms, 0, DUR_MAX),
};

static const struct field http_fields[] = {
    {.key = "endpoint", .type = FT_ENDPOINT,
     .off = offsetof(struct lk_http_receiver_config, endpoint), .flags = EP_UNIX},
    F_INT("max_request_body_size", FT_SIZE, struct lk_http_receiver_config,
          max_request_body_size, KIB, GIB),
    F_INT("max_connections", FT_U32, struct lk_http_receiver_config,
          max_connections, 1, 1000000),
    F_INT("max_header_bytes", FT_SIZE, struct lk_http_receiver_config,
          max_header_bytes, KIB, MIB),
    /* Zero is not "never" here: the HTTP server has no such mode. */
    F_INT("idle_timeout", FT_DURATION, struct lk_http_receiver_config,
          idle_timeout_ms, 1, DUR_MAX),
    F_INT("read_timeout", FT_DURATION, struct lk_http_receiver_config,
          read_timeout_ms, 1, DUR_MAX),
};

static const struct field protocols_fields[] = {F_NODE("grpc"), F_NODE("http")};
static const struct field receiver_fields[] = {F_NODE("protocols")};

static void receiver_defaults(struct ctx *c, struct lk_receiver_config *r)
{
    r->grpc.enabled = false;
    r->grpc.endpoint = xstrdup(c, "127.0.0.1:4317");
    r->grpc.max_recv_msg_size = 64 * MIB;
    r->grpc.max_concurrent_streams = 100;
    r->grpc.max_connections = 256;
    r->grpc.idle_timeout_ms = 5 * MS_M;
    r->http.enabled = false;
    r->http.endpoint = xstrdup(c, "127.0.0.1:4318");
    r->http.max_request_body_size = 64 * MIB;
    r->http.max_connections = 256;
    r->http.max_header_bytes = 64 * KIB;
    r->http.idle_timeout_ms = 60 * MS_S;
    r->http.read_timeout_ms = 30 * MS_S;
}

static void do_receiver(struct ctx *c, const lk__ynode *key, const lk__ynode *val,
                        struct lk_receiver_config *r)
{
    char path[PATH_LEN], ppath[PATH_LEN], gpath[PATH_LEN], hpath[PATH_LEN];
    struct seen rs[NF(receiver_fields)], ps[NF(protocols_fields)],
        gs[NF(grpc_fields)], hs[NF(http_fields)];

    join(path, "receivers", key->str);
    if (!walk_map(c, val, path, receiver_fields, NF(receiver_fields), r, rs))
        return;
    const struct seen *protocols = SEEN(receiver_fields, rs, "protocols");
    join(ppath, path, "protocols");
    if (!walk_map(c, protocols->val, ppath, protocols_fields, NF(protocols_fields),
                  r, ps))
        return;
    const struct seen *grpc = SEEN(protocols_fields, ps, "grpc");
    const struct seen *http = SEEN(protocols_fields, ps, "http");
    if (grpc->key == NULL && http->key == NULL) {
        ERR(c, key, "%s: no protocol enabled; add 'protocols: grpc:' or 'protocols: http:'",
            path);
        return;
    }
    /* Present means enabled, even as "grpc:" with nothing under it. */
    if (grpc->key != NULL) {
        r->grpc.enabled = true;
        join(gpath, ppath, "grpc");
        walk_map(c, grpc->val, gpath, grpc_fields, NF(grpc_fields), &r->grpc, gs);
        const struct seen *ep = SEEN(grpc_fields, gs, "endpoint");
        if (ep->val == NULL || ep->ok)
            add_listener(c, r->grpc.endpoint, gpath, ep->val ? ep->val : grpc->key);
    }
    if (http->key != NULL) {
        r->http.enabled = true;
        join(hpath, ppath, "http");
        walk_map(c, http->val, hpath, http_fields, NF(http_fields), &r->http, hs);
        const struct seen *ep = SEEN(http_fields, hs, "endpoint");
        if (ep->val == NULL || ep->ok)
            add_listener(c, r->http.endpoint, hpath, ep->val ? ep->val : http->key);
    }
}

/* ---- receivers: lines ---- */

static const char *const lines_format_names[] = {"auto", "json", "logfmt", "raw", NULL};
static const char *const lines_overflow_names[] = {"block", "drop", NULL};
static const char *const socket_type_names[] = {"stream", "datagram", NULL};

struct lines_raw {
    int socket_type;
};

static const struct field lines_fields[] = {
    F_VAL("path", FT_STRING, struct lk_lines_receiver_config, path),
    F_NODE("socket_type"),
    F_NODE("mode"),
    {.key = "owner", .type = FT_STRING, .flags = STR_EMPTY_UNSET,
     .off = offsetof(struct lk_lines_receiver_config, owner)},
    {.key = "group", .type = FT_STRING, .flags = STR_EMPTY_UNSET,
     .off = offsetof(struct lk_lines_receiver_config, group)},
    F_ENUM("format", struct lk_lines_receiver_config, format, lines_format_names),
    {.key = "service_name", .type = FT_STRING, .flags = STR_EMPTY_UNSET,
     .off = offsetof(struct lk_lines_receiver_config, service_name)},
    F_NODE("labels"),
    F_INT("max_line_bytes", FT_SIZE, struct lk_lines_receiver_config, max_line_bytes,
          256, 16 * MIB),
    F_INT("max_connections", FT_U32, struct lk_lines_receiver_config, max_connections,
          1, 1000000),
    F_ENUM("overflow", struct lk_lines_receiver_config, overflow, lines_overflow_names),
};

static void lines_defaults(struct ctx *c, struct lk_lines_receiver_config *l)
{
    l->path = xstrdup(c, "/tmp/lookout.sock");
    l->datagram = false;
    l->mode = 0600;
    l->format = LK_LINES_AUTO;
    l->max_line_bytes = 256 * KIB;
    l->max_connections = 256;
    l->overflow = LK_LINES_BLOCK;
}

/* A Loki / Prometheus label name: [A-Za-z_][A-Za-z0-9_]*, not "__" reserved. */
static const char *label_name_problem(const char *s)
{
    if (s[0] == '\0')
        return "must not be empty";
    if (is_digit(s[0]))
        return "must not start with a digit";
    for (const char *p = s; *p != '\0'; p++)
        if (!is_alpha(*p) && !is_digit(*p) && *p != '_')
            return "may only use letters, digits and '_'";
    if (strncmp(s, "__", 2) == 0)
        return "must not start with '__' (reserved)";
    return NULL;
}

static void do_static_labels(struct ctx *c, const lk__ynode *map, const char *path,
                             struct lk_lines_receiver_config *l)
{
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "%s: expected a mapping of label names to values, got %s", path,
            lk__config_ynode_kind_name(map));
        return;
    }
    if (map->nkids < 2)
        return;
    if (map->nkids / 2 > 15) {
        ERR(c, map, "%s: at most 15 labels (Loki's default limit per stream)", path);
        return;
    }
    l->labels = calloc(map->nkids / 2, sizeof(*l->labels));
    if (l->labels == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!usable_pair(c, key, val))
            continue;
        char sub[PATH_LEN];
        join(sub, path, key->str);
        const char *why = label_name_problem(key->str);
        if (why != NULL) {
            ERR(c, key, "%s: label name '%s' %s", path, SHOW(c, key->str), why);
            continue;
        }
        /* These labels come from each line and lookout itself. */
        static const char *const own[] = {"service_name", "service_namespace",
                                           "deployment_environment", "host", "source",
                                           "level"};
        bool taken = false;
        for (size_t k = 0; k < NF(own) && !taken; k++)
            taken = strcmp(key->str, own[k]) == 0;
        if (taken) {
            ERR(c, key, "%s: label '%s' is set by lookout%s", path, SHOW(c, key->str),
                strcmp(key->str, "service_name") == 0
                    ? "; use the receiver's service_name key for lines that name no service"
                    : "");
            continue;
        }
        char *v = scalar_value(c, val, sub, "a string");
        if (v == NULL)
            continue;
        if (!lk_utf8_is_valid((const uint8_t *)v, strlen(v))) {
            ERR(c, val, "%s: the value must be valid UTF-8", sub);
            free(v);
            continue;
        }
        char *name = xstrdup(c, key->str);
        if (name == NULL) {
            free(v);
            continue;
        }
        l->labels[l->nlabels].name = name;
        l->labels[l->nlabels].value = v;
        l->nlabels++;
    }
}

static void do_lines_receiver(struct ctx *c, const lk__ynode *key,
                              const lk__ynode *val, struct lk_receiver_config *r)
{
    char path[PATH_LEN], sub[PATH_LEN];
    struct seen ls[NF(lines_fields)];
    struct lk_lines_receiver_config *l = &r->lines;

    join(path, "receivers", key->str);
    if (!walk_map(c, val, path, lines_fields, NF(lines_fields), l, ls))
        return;

    const struct seen *p = SEEN(lines_fields, ls, "path");
    if (p->ok && l->path[0] != '/')
        ERR(c, p->val, "%s.path: must be an absolute path, got '%s'", path,
            SHOW(c, l->path));
    else if (p->ok && strlen(l->path) >= 100)
        /* sockaddr_un.sun_path: 108 bytes on Linux, 104 on macOS, and the
         * socket is first bound under the path plus ".~". */
        ERR(c, p->val, "%s.path: must be shorter than 100 bytes (a Unix socket limit)",
            path);

    const struct seen *st = SEEN(lines_fields, ls, "socket_type");
    if (st->val != NULL) {
        struct field f = F_ENUM("socket_type", struct lines_raw, socket_type,
                                socket_type_names);
        struct lines_raw raw = {0};
        join(sub, path, "socket_type");
        if (set_field(c, &f, st->val, sub, &raw))
            l->datagram = raw.socket_type == 1;
    }

    const struct seen *mode = SEEN(lines_fields, ls, "mode");
    if (mode->val != NULL) {
        join(sub, path, "mode");
        char *m = scalar_value(c, mode->val, sub, "octal permission bits like \"0600\"");
        if (m != NULL) {
            unsigned v = 0;
            bool ok = m[0] != '\0' && strlen(m) <= 4;
            for (const char *q = m; *q != '\0' && ok; q++) {
                if (*q < '0' || *q > '7')
                    ok = false;
                else
                    v = v * 8 + (unsigned)(*q - '0');
            }
            if (!ok || v > 0777)
                ERR(c, mode->val, "%s: expected octal permission bits like \"0600\" or \"0660\", got '%s'",
                    sub, SHOW(c, m));
            else if ((v & 0600) != 0600)
                ERR(c, mode->val, "%s: the owner must keep read and write (0600), got '%s'",
                    sub, SHOW(c, m));
            else
                l->mode = v;
            free(m);
        }
    }

    join(sub, path, "labels");
    do_static_labels(c, SEEN(lines_fields, ls, "labels")->val, sub, l);

    if (p->ok || p->val == NULL) {
        /* Reported against a unix:// gRPC or HTTP endpoint on the same file. */
        char ep[PATH_LEN + 8];
        snprintf(ep, sizeof(ep), "unix://%s", l->path);
        add_listener(c, ep, path, p->val ? p->val : key);
    }
}

static void do_receivers(struct ctx *c, const lk__ynode *map)
{
    lk_config *cfg = c->cfg;
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "receivers: expected a mapping of receiver names to settings, got %s",
            lk__config_ynode_kind_name(map));
        return;
    }
    c->receivers = map;
    if (map->nkids < 2)
        return;
    cfg->receivers = calloc(map->nkids / 2, sizeof(*cfg->receivers));
    if (cfg->receivers == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!usable_pair(c, key, val))
            continue;
        int type = check_component_name(c, key, "receiver", receiver_types);
        if (type < 0)
            continue;
        struct lk_receiver_config *r = &cfg->receivers[cfg->nreceivers++];
        r->name = xstrdup(c, key->str);
        r->type = (enum lk_receiver_type)type;
        if (r->type == LK_RECEIVER_LINES) {
            lines_defaults(c, &r->lines);
            do_lines_receiver(c, key, val, r);
        } else {
            receiver_defaults(c, r);
            do_receiver(c, key, val, r);
        }
    }
}

/* ---- exporters ---- */

static const char *const compression_names[] = {"none", "gzip", NULL};
static const char *const overflow_names[] = {"refuse", "drop", NULL};

/* Exporter keys that only one type knows carry its bit in .flags. */
#define EX_OTLPHTTP 2u
#define EX_LOKI 4u
#define EX_PROM 16u
#define EX_PRW 64u
/* Keys of exporters that send somewhere, which a prometheus exporter (it is
 * scraped) does not have. */
#define EX_SENDS 32u
static const char *const loki_format_names[] = {"protobuf", "json", NULL};

static const struct field exporter_fields[] = {
    {.key = "endpoint", .type = FT_NODE, .flags = EX_SENDS},
    {.key = "timeout", .type = FT_DURATION, .flags = EX_SENDS, .min = 1, .max = DUR_MAX,
     .off = offsetof(struct lk_exporter_config, timeout_ms)},
    {.key = "compression", .type = FT_ENUM, .flags = EX_SENDS, .names = compression_names,
     .off = offsetof(struct lk_exporter_config, compression)},
    {.key = "headers", .type = FT_NODE, .flags = EX_SENDS},
    {.key = "tls", .type = FT_NODE, .flags = EX_SENDS},
    {.key = "retry", .type = FT_NODE, .flags = EX_SENDS},
    F_NODE("queue"),
    F_NODE("batch"),
    {.key = "max_concurrency", .type = FT_U32, .flags = EX_SENDS, .min = 1, .max = 1024,
     .off = offsetof(struct lk_exporter_config, max_concurrency)},
    {.key = "traces_endpoint", .type = FT_NODE, .flags = EX_OTLPHTTP},
    {.key = "metrics_endpoint", .type = FT_NODE, .flags = EX_OTLPHTTP},
    {.key = "logs_endpoint", .type = FT_NODE, .flags = EX_OTLPHTTP},
    {.key = "format", .type = FT_ENUM, .names = loki_format_names, .flags = EX_LOKI,
     .off = offsetof(struct lk_exporter_config, loki.format)},
    {.key = "tenant_id", .type = FT_STRING, .flags = EX_LOKI | EX_PRW | STR_EMPTY_UNSET,
     .off = offsetof(struct lk_exporter_config, auth.tenant_id)},
    {.key = "bearer_token", .type = FT_STRING, .flags = EX_LOKI | EX_PRW | STR_EMPTY_UNSET,
     .off = offsetof(struct lk_exporter_config, auth.bearer_token)},
    {.key = "auth", .type = FT_NODE, .flags = EX_LOKI | EX_PRW},
    {.key = "labels", .type = FT_NODE, .flags = EX_LOKI},
    {.key = "add_metric_suffixes", .type = FT_BOOL, .flags = EX_PROM | EX_PRW,
     .off = offsetof(struct lk_exporter_config, prometheus.add_metric_suffixes)},
    {.key = "promote_resource_attributes", .type = FT_NODE, .flags = EX_PROM | EX_PRW},
    {.key = "metric_expiration", .type = FT_DURATION, .flags = EX_PROM | EX_PRW, .min = 0,
     .max = DUR_MAX, .off = offsetof(struct lk_exporter_config, prometheus.metric_expiration_ms)},
    {.key = "max_series", .type = FT_U64, .flags = EX_PROM | EX_PRW, .min = 0, .max = 100000000,
     .off = offsetof(struct lk_exporter_config, prometheus.max_series)},
};

/* Reports keys of |es| that exporters of |type| do not know. */
static void check_type_keys(struct ctx *c, const char *path, enum lk_exporter_type type,
                            const struct seen *es)
{
    unsigned mine = type == LK_EXPORTER_OTLPHTTP                ? EX_OTLPHTTP
                    : type == LK_EXPORTER_LOKI                  ? EX_LOKI
                    : type == LK_EXPORTER_PROMETHEUS            ? EX_PROM
                    : type == LK_EXPORTER_PROMETHEUSREMOTEWRITE ? EX_PRW
                                                                : 0;
    for (size_t i = 0; i < NF(exporter_fields); i++) {
        unsigned f = exporter_fields[i].flags;
        if (es[i].key == NULL)
            continue;
        if ((f & EX_SENDS) && type == LK_EXPORTER_PROMETHEUS &&
            strcmp(exporter_fields[i].key, "endpoint") != 0) {
            ERR(c, es[i].key, "unknown key '%s' in %s (a prometheus exporter is scraped "
                              "on the admin listener; it sends nothing)",
                exporter_fields[i].key, path);
            continue;
        }
        unsigned only = f & (EX_OTLPHTTP | EX_LOKI | EX_PROM | EX_PRW);
        if (only == 0 || (only & mine) != 0)
            continue;
        char types[96] = "";
        static const struct {
            unsigned bit;
            const char *name;
        } names[] = {{EX_OTLPHTTP, "otlphttp"}, {EX_LOKI, "loki"}, {EX_PROM, "prometheus"},
                     {EX_PRW, "prometheusremotewrite"}};
        for (size_t k = 0; k < NF(names); k++)
            if (only & names[k].bit)
                snprintf(types + strlen(types), sizeof(types) - strlen(types), "%s%s",
                         types[0] ? " and " : "", names[k].name);
        ERR(c, es[i].key, "unknown key '%s' in %s (only %s exporters have it)",
            exporter_fields[i].key, path, types);
    }
}

/* Indexed by enum lk_signal. */
static const char *const signal_endpoint_keys[LK_SIGNAL_COUNT] = {
    "traces_endpoint", "metrics_endpoint", "logs_endpoint"};
static const char *const signal_paths[LK_SIGNAL_COUNT] = {"/v1/traces", "/v1/metrics",
                                                          "/v1/logs"};

static const struct field tls_fields[] = {
    F_VAL("enabled", FT_BOOL, struct lk_tls_config, enabled),
    F_VAL("insecure_skip_verify", FT_BOOL, struct lk_tls_config, insecure_skip_verify),
    F_VAL("ca_file", FT_STRING, struct lk_tls_config, ca_file),
    F_VAL("cert_file", FT_STRING, struct lk_tls_config, cert_file),
    F_VAL("key_file", FT_STRING, struct lk_tls_config, key_file),
};

static const struct field retry_fields[] = {
    F_VAL("enabled", FT_BOOL, struct lk_retry_config, enabled),
    F_INT("initial_interval", FT_DURATION, struct lk_retry_config,
          initial_interval_ms, 1, DUR_MAX),
    F_INT("max_interval", FT_DURATION, struct lk_retry_config, max_interval_ms, 1,
          DUR_MAX),
    F_INT("max_elapsed_time", FT_DURATION, struct lk_retry_config,
          max_elapsed_time_ms, 0, DUR_MAX),
    F_DBL("multiplier", struct lk_retry_config, multiplier, 1, 100),
    F_DBL("randomization_factor", struct lk_retry_config, randomization_factor, 0, 1),
};

static const struct field queue_fields[] = {
    F_INT("queue_size", FT_U64, struct lk_queue_config, queue_size, 1, 1000000000),
    F_INT("max_bytes", FT_SIZE, struct lk_queue_config, max_bytes, KIB, 1024 * GIB),
    F_ENUM("overflow", struct lk_queue_config, overflow, overflow_names),
};

static const struct field batch_fields[] = {
    /* Bounded like queue_size, which it may not exceed. */
    F_INT("send_batch_size", FT_U32, struct lk_batch_config, send_batch_size, 1,
          1000000000),
    F_INT("send_batch_max_bytes", FT_SIZE, struct lk_batch_config,
          send_batch_max_bytes, KIB, GIB),
    F_INT("timeout", FT_DURATION, struct lk_batch_config, timeout_ms, 1, DUR_MAX),
};

static void exporter_defaults(struct lk_exporter_config *e)
{
    e->timeout_ms = 10 * MS_S;
    e->compression = LK_COMPRESSION_GZIP;
    e->tls.enabled = false;
    e->tls.insecure_skip_verify = false;
    e->retry.enabled = true;
    e->retry.initial_interval_ms = 1 * MS_S;
    e->retry.max_interval_ms = 30 * MS_S;
    e->retry.max_elapsed_time_ms = 5 * MS_M;
    e->retry.multiplier = 1.5;
    e->retry.randomization_factor = 0.5;
    e->queue.queue_size = 100000;
    e->queue.max_bytes = 32 * MIB;
    e->queue.overflow = LK_OVERFLOW_REFUSE;
    e->batch.send_batch_size = 8192;
    e->batch.send_batch_max_bytes = 4 * MIB;
    e->batch.timeout_ms = 200;
    e->max_concurrency = 4;
}

/* Request headers that describe the body or the connection, which the
 * exporter and its HTTP client own. (Host may be set: virtual hosting.) */
static const char *const http_reserved_headers[] = {
    "content-length", "content-type", "content-encoding", "transfer-encoding",
    "connection", "keep-alive", "te", "upgrade", NULL};

/* Returns NULL when |name| is a valid HTTP header name (RFC 9110 token) that
 * the OTLP/HTTP exporter lets users set. */
static const char *http_header_name_problem(const char *name)
{
    if (name[0] == '\0')
        return "must not be empty";
    for (const char *p = name; *p != '\0'; p++)
        if (!is_alpha(*p) && !is_digit(*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL)
            return "may only use letters, digits and !#$%&'*+-.^_`|~";
    for (int i = 0; http_reserved_headers[i] != NULL; i++)
        if (strcasecmp(name, http_reserved_headers[i]) == 0)
            return "is set by lookout itself";
    return NULL;
}

/* Returns NULL when |name| is a valid gRPC metadata key for us. */
static const char *header_name_problem(const char *name)
{
    bool upper = false;
    if (name[0] == '\0')
        return "must not be empty";
    for (const char *p = name; *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z')
            upper = true;
        else if (!(*p >= 'a' && *p <= 'z') && !is_digit(*p) && *p != '-' &&
                 *p != '_' && *p != '.')
            return "may only use a-z, 0-9, '-', '_' and '.'";
    }
    if (upper)
        return "must be lowercase (gRPC metadata keys are lowercase)";
    if (strncmp(name, "grpc-", 5) == 0)
        return "names starting with 'grpc-' are reserved by gRPC";
    return NULL;
}

static void do_headers(struct ctx *c, const lk__ynode *map, const char *path,
                       struct lk_exporter_config *e)
{
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "%s: expected a mapping of header names to values, got %s", path,
            lk__config_ynode_kind_name(map));
        return;
    }
    if (map->nkids < 2)
        return;
    e->headers = calloc(map->nkids / 2, sizeof(*e->headers));
    if (e->headers == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!usable_pair(c, key, val))
            continue;
        char hpath[PATH_LEN];
        bool http = e->type != LK_EXPORTER_OTLP;
        join(hpath, path, key->str);
        const char *why = http ? http_header_name_problem(key->str)
                               : header_name_problem(key->str);
        if (why != NULL) {
            ERR(c, key, "%s: header name '%s' %s", path, SHOW(c, key->str), why);
            continue;
        }
        if (http) {
            /* HTTP header names are case-insensitive; YAML keys are not. */
            bool dup = false;
            for (size_t j = 0; j < e->nheaders && !dup; j++)
                dup = strcasecmp(e->headers[j].name, key->str) == 0;
            if (dup) {
                ERR(c, key, "%s: header '%s' is set twice (names are case-insensitive)",
                    path, SHOW(c, key->str));
                continue;
            }
        }
        /* Values are often secrets (tokens): never quote them in messages. */
        char *v = scalar_value(c, val, hpath, "a string");
        if (v == NULL)
            continue;
        bool bin = !http && strlen(key->str) >= 4 &&
                   strcmp(key->str + strlen(key->str) - 4, "-bin") == 0;
        bool printable = true;
        for (const char *p = v; *p != '\0' && !bin; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                printable = false;
        if (!printable) {
            ERR(c, val, http ? "%s: the value must be printable ASCII"
                             : "%s: the value must be printable ASCII (or name the header '...-bin')",
                hpath);
            free(v);
            continue;
        }
        char *name = xstrdup(c, key->str);
        if (name == NULL) {
            free(v);
            continue;
        }
        e->headers[e->nheaders].name = name;
        e->headers[e->nheaders].value = v;
        e->nheaders++;
    }
}

/* Sets |e->endpoint| from "host:port", "http://host:port" (TLS off) or
 * "https://host:port" (TLS on). |*scheme_tls| gets -1 (no scheme), 0 or 1. */
static bool do_exporter_endpoint(struct ctx *c, const lk__ynode *val,
                                 const char *path, struct lk_exporter_config *e,
                                 int *scheme_tls)
{
    char *s = scalar_value(c, val, path, "an endpoint like 127.0.0.1:4317");
    if (s == NULL)
        return false;
    const char *hp = s;
    *scheme_tls = -1;
    if (strncmp(s, "http://", 7) == 0) {
        hp = s + 7;
        *scheme_tls = 0;
    } else if (strncmp(s, "https://", 8) == 0) {
        hp = s + 8;
        *scheme_tls = 1;
    }
    size_t n = strlen(hp);
    if (*scheme_tls >= 0 && n > 0 && hp[n - 1] == '/')
        s[(size_t)(hp - s) + n - 1] = '\0'; /* "http://host:port/" */
    const char *why = *scheme_tls >= 0 && strchr(hp, '/') != NULL
                          ? "an OTLP/gRPC endpoint has no path"
                          : endpoint_problem(hp, false);
    bool ok = why == NULL;
    if (!ok)
        ERR(c, val, "%s: invalid endpoint '%s': %s", path, SHOW(c, s), why);
    else
        set_str(c, &e->endpoint, hp);
    free(s);
    return ok;
}

/*
 * Returns NULL when |s| is "http://" or "https://" followed by a host, an
 * optional ":port" and an optional path, with no user info, query or
 * fragment; else what is wrong with it. |*tls| gets 0 (http) or 1 (https).
 */
static const char *url_problem(const char *s, int *tls)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0) {
        *tls = 0;
        rest = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        *tls = 1;
        rest = s + 8;
    } else if (strstr(s, "://") != NULL) {
        return "the scheme must be http:// or https://";
    } else {
        return "expected a URL starting with http:// or https://";
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0)
        return "missing host after the scheme";
    if (memchr(rest, '@', alen) != NULL)
        return "user info in the URL is not supported; put credentials in headers";
    /* host[:port] as a listener endpoint, with the scheme's port if none. */
    char hp[320];
    if (alen > 260)
        return "the host name is too long";
    memcpy(hp, rest, alen);
    hp[alen] = '\0';
    const char *close = hp[0] == '[' ? strchr(hp, ']') : NULL;
    bool has_port = hp[0] == '[' ? close != NULL && close[1] != '\0'
                                 : strchr(hp, ':') != NULL;
    if (!has_port)
        strcat(hp, *tls ? ":443" : ":80");
    const char *why = endpoint_problem(hp, false);
    if (why != NULL)
        return why;
    for (const char *p = rest + alen; *p != '\0'; p++) {
        if (*p == '?' || *p == '#')
            return "a query or fragment is not supported";
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "the URL must not contain spaces or control characters";
    }
    return NULL;
}

/* "http" or "https" for messages. */
static const char *scheme_name(int tls)
{
    return tls ? "https" : "http";
}

/*
 * otlphttp: reads the base URL |ep| (may be absent) and the per-signal URLs
 * into |e|, and sets |*scheme_tls| from their common scheme (-1 when none is
 * valid). |es| is what the walk of exporter_fields found.
 */
static void do_http_endpoints(struct ctx *c, const lk__ynode *key, const char *path,
                              const struct seen *es, struct lk_exporter_config *e,
                              int *scheme_tls)
{
    char sub[PATH_LEN];
    const char *first = NULL; /* key whose scheme the others must share */
    const struct seen *ep = seen_get(exporter_fields, NF(exporter_fields), es, "endpoint");
    size_t nsig = 0;

    *scheme_tls = -1;
    for (int i = 0; i < LK_SIGNAL_COUNT + 1; i++) {
        bool base = i == 0;
        const char *k = base ? "endpoint" : signal_endpoint_keys[i - 1];
        const struct seen *sn =
            base ? ep : seen_get(exporter_fields, NF(exporter_fields), es, k);
        if (sn->key == NULL)
            continue;
        nsig += !base;
        join(sub, path, k);
        char *s = scalar_value(c, sn->val, sub, "a URL like http://127.0.0.1:4318");
        if (s == NULL)
            continue;
        int tls = -1;
        const char *why = url_problem(s, &tls);
        if (why != NULL) {
            ERR(c, sn->val, "%s: invalid URL '%s': %s", sub, SHOW(c, s), why);
            free(s);
            continue;
        }
        if (base) {
            /* A base URL gets "/v1/traces" etc. appended: drop trailing
             * slashes, and catch a full signal URL given as the base. */
            size_t n = strlen(s), plen = (size_t)(strchr(s, '/') + 2 - s);
            const char *path_start = strchr(s + plen, '/');
            while (path_start != NULL && n > 0 && s[n - 1] == '/')
                s[--n] = '\0';
            int full = -1;
            for (int j = 0; j < LK_SIGNAL_COUNT && full < 0 && path_start != NULL; j++) {
                size_t sl = strlen(signal_paths[j]);
                if (n >= sl && n - sl >= (size_t)(path_start - s) &&
                    strcmp(s + n - sl, signal_paths[j]) == 0)
                    full = j;
            }
            if (full >= 0) {
                ERR(c, sn->val, "%s: '%s' already ends in %s, which is appended to the base "
                                "URL; remove it, or give the full URL as %s",
                    sub, SHOW(c, s), signal_paths[full], signal_endpoint_keys[full]);
                free(s);
                continue;
            }
        }
        if (*scheme_tls < 0) {
            *scheme_tls = tls;
            first = k;
        } else if (tls != *scheme_tls) {
            ERR(c, sn->val, "%s: uses %s:// but %s uses %s://; TLS is on or off for all of an exporter's URLs",
                sub, scheme_name(tls), first, scheme_name(*scheme_tls));
            free(s);
            continue;
        }
        char **dst = base ? &e->endpoint : &e->signal_endpoints[i - 1];
        free(*dst);
        *dst = s;
    }
    if (ep->key == NULL && nsig < LK_SIGNAL_COUNT)
        ERR(c, key, "%s: missing required key 'endpoint' (a base URL like "
                    "http://127.0.0.1:4318), unless traces_endpoint, metrics_endpoint and "
                    "logs_endpoint are all set",
            path);
}

static void do_tls(struct ctx *c, const lk__ynode *node, const char *path,
                   int scheme_tls, struct lk_exporter_config *e)
{
    struct seen ts[NF(tls_fields)];
    if (!walk_map(c, node, path, tls_fields, NF(tls_fields), &e->tls, ts))
        return;
    const struct seen *enabled = SEEN(tls_fields, ts, "enabled");
    if (scheme_tls >= 0) {
        if (enabled->ok && e->tls.enabled != (scheme_tls == 1))
            ERR(c, enabled->val, "%s.enabled: is %s but the endpoint uses %s://", path,
                e->tls.enabled ? "true" : "false", scheme_tls ? "https" : "http");
        else if (!enabled->ok)
            e->tls.enabled = scheme_tls == 1;
    }
    const struct seen *cert = SEEN(tls_fields, ts, "cert_file");
    const struct seen *key = SEEN(tls_fields, ts, "key_file");
    if (cert->ok != key->ok) {
        const struct seen *has = cert->ok ? cert : key;
        ERR(c, has->key, "%s: cert_file and key_file go together; %s is missing", path,
            cert->ok ? "key_file" : "cert_file");
    }
    if (e->tls.enabled || (enabled->key != NULL && !enabled->ok))
        return;
    /* TLS is off: any TLS setting is most likely a forgotten "enabled". */
    static const char *const tls_only[] = {"insecure_skip_verify", "ca_file",
                                           "cert_file", "key_file"};
    for (size_t i = 0; i < NF(tls_only); i++) {
        const struct seen *s = SEEN(tls_fields, ts, tls_only[i]);
        if (!s->ok || (strcmp(tls_only[i], "insecure_skip_verify") == 0 &&
                       !e->tls.insecure_skip_verify))
            continue;
        ERR(c, s->key, "%s.%s: has no effect while TLS is off; set tls.enabled: true or use an https:// endpoint",
            path, tls_only[i]);
    }
}

/* ---- prometheus ---- */

static void prometheus_defaults(struct lk_exporter_config *e)
{
    e->prometheus.add_metric_suffixes = true;
    e->prometheus.metric_expiration_ms = 5 * MS_M;
    e->prometheus.max_series = 100000;
}

static void do_promote(struct ctx *c, const lk__ynode *node, const char *path,
                       struct lk_prometheus_config *p)
{
    if (node == NULL || lk__config_ynode_is_null(node) || node->kind == LK_YNODE_BAD)
        return;
    if (node->kind != LK_YNODE_SEQ) {
        ERR(c, node, "%s: expected a list of resource attribute keys like "
                     "[deployment.environment], got %s",
            path, lk__config_ynode_kind_name(node));
        return;
    }
    if (node->nkids == 0)
        return;
    p->promote_resource_attributes = calloc(node->nkids, sizeof(char *));
    if (p->promote_resource_attributes == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < node->nkids; i++) {
        char *k = scalar_value(c, node->kids[i], path, "an attribute key");
        if (k == NULL)
            continue;
        if (k[0] == '\0') {
            ERR(c, node->kids[i], "%s: an empty attribute key", path);
            free(k);
            continue;
        }
        p->promote_resource_attributes[p->npromote++] = k;
    }
}

/* Remote write receivers reject samples older than what they hold for a
 * series: one request at a time keeps them in order. */
static void remote_write_defaults(struct lk_exporter_config *e)
{
    prometheus_defaults(e);
    e->compression = LK_COMPRESSION_NONE;
    e->max_concurrency = 1;
}

/* ---- loki ---- */

/* Loki keeps entries of a stream in order only if one push at a time is in
 * flight; its pushes are also smaller than an OTLP gateway's. */
static void loki_defaults(struct ctx *c, struct lk_exporter_config *e)
{
    static const char *const labels[] = {"service_name", "service_namespace",
                                         "deployment_environment", "host", "source"};
    e->endpoint = xstrdup(c, "http://127.0.0.1:3100/loki/api/v1/push");
    e->compression = LK_COMPRESSION_NONE;
    e->max_concurrency = 1;
    e->batch.send_batch_max_bytes = 1 * MIB;
    e->loki.format = LK_LOKI_BODY_PROTOBUF;
    e->loki.labels = calloc(NF(labels), sizeof(*e->loki.labels));
    if (e->loki.labels == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < NF(labels); i++)
        if ((e->loki.labels[i] = xstrdup(c, labels[i])) != NULL)
            e->loki.nlabels++;
}



static const struct field auth_fields[] = {
    F_VAL("username", FT_STRING, struct lk_http_auth_config, username),
    F_VAL("password", FT_STRING, struct lk_http_auth_config, password),
};

static void do_loki_labels(struct ctx *c, const lk__ynode *node, const char *path,
                           struct lk_loki_config *l)
{
    if (node->kind == LK_YNODE_BAD)
        return;
    if (node->kind != LK_YNODE_SEQ) {
        ERR(c, node, "%s: expected a list of label names like [service_name, host], got %s",
            path, lk__config_ynode_kind_name(node));
        return;
    }
    if (node->nkids > 15) {
        ERR(c, node, "%s: at most 15 labels (Loki's default limit per stream)", path);
        return;
    }
    for (size_t i = 0; i < l->nlabels; i++)
        free(l->labels[i]);
    free(l->labels);
    l->labels = NULL;
    l->nlabels = 0;
    if (node->nkids == 0)
        return;
    l->labels = calloc(node->nkids, sizeof(*l->labels));
    if (l->labels == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < node->nkids; i++) {
        char *name = scalar_value(c, node->kids[i], path, "a label name");
        if (name == NULL)
            continue;
        const char *why = label_name_problem(name);
        bool dup = false;
        for (size_t j = 0; j < l->nlabels && !dup; j++)
            dup = strcmp(l->labels[j], name) == 0;
        if (why != NULL)
            ERR(c, node->kids[i], "%s: label name '%s' %s (attribute keys map to names "
                                  "with '_' for '.', e.g. service_name)",
                path, SHOW(c, name), why);
        else if (dup)
            ERR(c, node->kids[i], "%s: '%s' is listed twice", path, SHOW(c, name));
        if (why != NULL || dup) {
            free(name);
            continue;
        }
        l->labels[l->nlabels++] = name;
    }
}

/* The endpoint of an exporter that POSTs to one URL (loki, remote write). */
static void do_url_endpoint(struct ctx *c, const struct seen *es, const char *path,
                            const char *example, struct lk_exporter_config *e,
                            int *scheme_tls)
{
    char sub[PATH_LEN];
    const struct seen *ep = SEEN(exporter_fields, es, "endpoint");
    *scheme_tls = 0;
    if (ep->key == NULL)
        return;
    join(sub, path, "endpoint");
    char *s = scalar_value(c, ep->val, sub, example);
    if (s == NULL)
        return;
    int tls = -1;
    const char *why = url_problem(s, &tls);
    if (why != NULL) {
        ERR(c, ep->val, "%s: invalid URL '%s': %s", sub, SHOW(c, s), why);
        *scheme_tls = -1;
        free(s);
        return;
    }
    free(e->endpoint);
    e->endpoint = s;
    *scheme_tls = tls;
}

/* tenant_id, auth (basic) and bearer_token, and the headers they would
 * contradict. */
static void do_http_auth(struct ctx *c, const lk__ynode *key, const struct seen *es,
                         const char *path, struct lk_exporter_config *e)
{
    char sub[PATH_LEN];
    struct lk_http_auth_config *a = &e->auth;
    const struct seen *auth = SEEN(exporter_fields, es, "auth");
    if (auth->val != NULL) {
        struct seen as[NF(auth_fields)];
        join(sub, path, "auth");
        if (walk_map(c, auth->val, sub, auth_fields, NF(auth_fields), a, as)) {
            const struct seen *u = SEEN(auth_fields, as, "username");
            const struct seen *pw = SEEN(auth_fields, as, "password");
            if (u->ok && strchr(a->username, ':') != NULL)
                ERR(c, u->val, "%s.username: must not contain ':'", sub);
            if ((u->val == NULL) != (pw->val == NULL))
                ERR(c, auth->key, "%s: username and password go together; %s is missing",
                    sub, u->val == NULL ? "username" : "password");
        }
    }
    const struct seen *bt = SEEN(exporter_fields, es, "bearer_token");
    if (bt->ok && auth->val != NULL)
        ERR(c, bt->key, "%s: set auth (basic) or bearer_token, not both", path);
    const char *const secrets[] = {"tenant_id", "bearer_token"};
    for (size_t i = 0; i < NF(secrets); i++) {
        const struct seen *sn = SEEN(exporter_fields, es, secrets[i]);
        const char *v = i == 0 ? a->tenant_id : a->bearer_token;
        if (!sn->ok || v == NULL)
            continue;
        for (const char *q = v; *q != '\0'; q++)
            if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e) {
                ERR(c, sn->val, "%s.%s: must be printable ASCII", path, secrets[i]);
                break;
            }
    }
    for (size_t i = 0; i < e->nheaders; i++)
        if (strcasecmp(e->headers[i].name, "authorization") == 0 &&
            (a->bearer_token != NULL || a->username != NULL))
            ERR(c, key, "%s: an Authorization header and auth/bearer_token both set it",
                path);
        else if (strcasecmp(e->headers[i].name, "x-scope-orgid") == 0 &&
                 a->tenant_id != NULL)
            ERR(c, key, "%s: an X-Scope-OrgID header and tenant_id both set it", path);
}

/* loki: the push URL, body format and labels. */
static void do_loki(struct ctx *c, const char *path, const struct seen *es,
                    struct lk_exporter_config *e, int *scheme_tls)
{
    char sub[PATH_LEN];
    struct lk_loki_config *l = &e->loki;

    do_url_endpoint(c, es, path, "a URL like http://127.0.0.1:3100/loki/api/v1/push", e,
                    scheme_tls);
    const struct seen *comp = SEEN(exporter_fields, es, "compression");
    if (comp->ok && l->format == LK_LOKI_BODY_PROTOBUF &&
        e->compression != LK_COMPRESSION_NONE)
        ERR(c, comp->val, "%s.compression: protobuf bodies are always snappy-compressed; "
                          "compression applies to format: json",
            path);
    const struct seen *labels = SEEN(exporter_fields, es, "labels");
    if (labels->val != NULL) {
        join(sub, path, "labels");
        do_loki_labels(c, labels->val, sub, l);
    }
}

/* prometheusremotewrite: the write URL (required); bodies are snappy. */
static void do_remote_write(struct ctx *c, const lk__ynode *key, const char *path,
                            const struct seen *es, struct lk_exporter_config *e,
                            int *scheme_tls)
{
    if (SEEN(exporter_fields, es, "endpoint")->key == NULL)
        ERR(c, key, "%s: missing required key 'endpoint' (the remote write URL, e.g. "
                    "http://127.0.0.1:9090/api/v1/write)",
            path);
    do_url_endpoint(c, es, path, "a URL like http://127.0.0.1:9090/api/v1/write", e,
                    scheme_tls);
    const struct seen *comp = SEEN(exporter_fields, es, "compression");
    if (comp->ok && e->compression != LK_COMPRESSION_NONE)
        ERR(c, comp->val, "%s.compression: remote write bodies are always "
                          "snappy-compressed",
            path);
}

static void do_exporter(struct ctx *c, const lk__ynode *key, const lk__ynode *val,
                        struct lk_exporter_config *e)
{
    char path[PATH_LEN], sub[PATH_LEN];
    struct seen es[NF(exporter_fields)], rs[NF(retry_fields)], qs[NF(queue_fields)],
        bs[NF(batch_fields)];
    int scheme_tls = -1;

    join(path, "exporters", key->str);
    if (!walk_map(c, val, path, exporter_fields, NF(exporter_fields), e, es))
        return;
    check_type_keys(c, path, e->type, es);

    const struct seen *ep = SEEN(exporter_fields, es, "endpoint");
    if (e->type == LK_EXPORTER_PROMETHEUS || e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE) {
        join(sub, path, "promote_resource_attributes");
        do_promote(c, SEEN(exporter_fields, es, "promote_resource_attributes")->val, sub,
                   &e->prometheus);
    }
    if (e->type == LK_EXPORTER_PROMETHEUS) {
        if (ep->key != NULL && !lk__config_ynode_is_null(ep->val)) {
            /* A listener of its own, as the admin one. */
            static const struct field listen = {
                .key = "endpoint", .type = FT_ENDPOINT, .flags = EP_UNIX,
                .off = offsetof(struct lk_exporter_config, endpoint)};
            join(sub, path, "endpoint");
            if (set_field(c, &listen, ep->val, sub, e))
                add_listener(c, e->endpoint, e->name, ep->val);
        }
    } else if (e->type == LK_EXPORTER_OTLPHTTP) {
        do_http_endpoints(c, key, path, es, e, &scheme_tls);
    } else if (e->type == LK_EXPORTER_LOKI) {
        do_loki(c, path, es, e, &scheme_tls);
    } else if (e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE) {
        do_remote_write(c, key, path, es, e, &scheme_tls);
    } else if (ep->key == NULL) {
        ERR(c, key, "%s: missing required key 'endpoint'", path);
    } else {
        join(sub, path, "endpoint");
        do_exporter_endpoint(c, ep->val, sub, e, &scheme_tls);
    }

    join(sub, path, "headers");
    do_headers(c, SEEN(exporter_fields, es, "headers")->val, sub, e);
    if (e->type == LK_EXPORTER_LOKI || e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE)
        do_http_auth(c, key, es, path, e);

    join(sub, path, "tls");
    do_tls(c, SEEN(exporter_fields, es, "tls")->val, sub, scheme_tls, e);

    join(sub, path, "retry");
    if (walk_map(c, SEEN(exporter_fields, es, "retry")->val, sub, retry_fields,
                 NF(retry_fields), &e->retry, rs)) {
        const struct seen *ini = SEEN(retry_fields, rs, "initial_interval");
        const struct seen *max = SEEN(retry_fields, rs, "max_interval");
        if ((ini->ok || max->ok) && (ini->ok || !ini->val) && (max->ok || !max->val) &&
            e->retry.max_interval_ms < e->retry.initial_interval_ms) {
            char a[48], b[48];
            fmt_duration(a, sizeof(a), e->retry.max_interval_ms);
            fmt_duration(b, sizeof(b), e->retry.initial_interval_ms);
            const struct seen *at = max->ok ? max : ini;
            ERR(c, at->val, "%s: max_interval (%s) must be at least initial_interval (%s)",
                sub, a, b);
        }
    }

    join(sub, path, "queue");
    bool queue_ok = walk_map(c, SEEN(exporter_fields, es, "queue")->val, sub,
                             queue_fields, NF(queue_fields), &e->queue, qs);
    join(sub, path, "batch");
    bool batch_ok = walk_map(c, SEEN(exporter_fields, es, "batch")->val, sub,
                             batch_fields, NF(batch_fields), &e->batch, bs);
    if (queue_ok && batch_ok) {
        const struct seen *mb = SEEN(queue_fields, qs, "max_bytes");
        const struct seen *qsz = SEEN(queue_fields, qs, "queue_size");
        const struct seen *bmb = SEEN(batch_fields, bs, "send_batch_max_bytes");
        const struct seen *bsz = SEEN(batch_fields, bs, "send_batch_size");
        if ((mb->ok || !mb->val) && (bmb->ok || !bmb->val) &&
            e->batch.send_batch_max_bytes > e->queue.max_bytes) {
            char a[48], b[48];
            fmt_size(a, sizeof(a), e->batch.send_batch_max_bytes);
            fmt_size(b, sizeof(b), e->queue.max_bytes);
            const lk__ynode *at = bmb->ok ? bmb->val : mb->ok ? mb->val : key;
            ERR(c, at, "%s: batch.send_batch_max_bytes (%s) must not exceed queue.max_bytes (%s)",
                path, a, b);
        }
        if ((qsz->ok || !qsz->val) && (bsz->ok || !bsz->val) &&
            e->batch.send_batch_size > e->queue.queue_size) {
            const lk__ynode *at = bsz->ok ? bsz->val : qsz->ok ? qsz->val : key;
            ERR(c, at, "%s: batch.send_batch_size (%u) must not exceed queue.queue_size (%llu)",
                path, (unsigned)e->batch.send_batch_size,
                (unsigned long long)e->queue.queue_size);
        }
    }
}

static void do_exporters(struct ctx *c, const lk__ynode *map)
{
    lk_config *cfg = c->cfg;
    if (lk__config_ynode_is_null(map) || map->kind == LK_YNODE_BAD)
        return;
    if (map->kind != LK_YNODE_MAP) {
        ERR(c, map, "exporters: expected a mapping of exporter names to settings, got %s",
            lk__config_ynode_kind_name(map));
        return;
    }
    c->exporters = map;
    if (map->nkids < 2)
        return;
    cfg->exporters = calloc(map->nkids / 2, sizeof(*cfg->exporters));
    if (cfg->exporters == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!usable_pair(c, key, val))
            continue;
        int type = check_component_name(c, key, "exporter", exporter_types);
        if (type < 0)
            continue;
        struct lk_exporter_config *e = &cfg->exporters[cfg->nexporters++];
        e->name = xstrdup(c, key->str);
        exporter_defaults(e);
        e->type = (enum lk_exporter_type)type;
        if (e->type == LK_EXPORTER_LOKI)
            loki_defaults(c, e);
        if (e->type == LK_EXPORTER_PROMETHEUS)
            prometheus_defaults(e);
        if (e->type == LK_EXPORTER_PROMETHEUSREMOTEWRITE)
            remote_write_defaults(e);
        do_exporter(c, key, val, e);
    }
    /* A prometheus exporter without an endpoint renders on the admin
     * listener's one /metrics: one of them at most. */
    const char *first = NULL;
    for (size_t i = 0; i < cfg->nexporters; i++) {
        if (cfg->exporters[i].type != LK_EXPORTER_PROMETHEUS || cfg->exporters[i].endpoint)
            continue;
        if (first != NULL)
            ERR(c, map, "exporters: '%s' and '%s': one prometheus exporter without an "
                        "endpoint at most (both would be served on the admin listener's "
                        "/metrics)",
                SHOW(c, first), SHOW(c, cfg->exporters[i].name));
        first = cfg->exporters[i].name;
    }
}

/* ---- pipelines ---- */

static const char *const signal_names[] = {"traces", "metrics", "logs", NULL};
static const struct field pipeline_fields[] = {
    F_NODE("receivers"),
    F_NODE("exporters"),
};

/* True when |defs| (a receivers: or exporters: mapping) defines |name|. Any
 * key counts, even one with errors of its own, so that one mistake is not
 * reported twice. */
static bool is_defined(const lk__ynode *defs, const char *name)
{
    if (defs == NULL || defs->kind != LK_YNODE_MAP)
        return false;
    for (size_t i = 0; i + 1 < defs->nkids; i += 2) {
        const lk__ynode *k = defs->kids[i];
        if (k->kind == LK_YNODE_SCALAR && !k->dup && strcmp(k->str, name) == 0)
            return true;
    }
    return false;
}

/* Fills |*out| / |*n| from the list of names |node| (|kind|: "receiver" or
 * "exporter"), each defined in |defs|. */
static void do_name_list(struct ctx *c, const lk__ynode *node, const char *path,
                         const char *kind, const lk__ynode *defs, char ***out,
                         size_t *n)
{
    if (node->kind == LK_YNODE_BAD)
        return;
    if (node->kind != LK_YNODE_SEQ) {
        ERR(c, node, "%s: expected a list of %s names like [otlp], got %s", path, kind,
            lk__config_ynode_kind_name(node));
        return;
    }
    if (node->nkids == 0) {
        ERR(c, node, "%s: must name at least one %s", path, kind);
        return;
    }
    if (node->nkids > LIST_MAX) {
        ERR(c, node, "%s: at most %d %ss can be listed", path, LIST_MAX, kind);
        return;
    }
    *out = calloc(node->nkids, sizeof(**out));
    if (*out == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < node->nkids; i++) {
        const lk__ynode *item = node->kids[i];
        if (item->kind == LK_YNODE_BAD)
            continue;
        char *name = scalar_value(c, item, path, "a name");
        if (name == NULL)
            continue;
        bool dup = false;
        for (size_t j = 0; j < *n && !dup; j++)
            dup = strcmp((*out)[j], name) == 0;
        if (dup) {
            ERR(c, item, "%s: '%s' is listed twice", path, SHOW(c, name));
            free(name);
            continue;
        }
        if (!is_defined(defs, name)) {
            struct suggest sg;
            char sbuf[160];
            suggest_init(&sg, name);
            for (size_t k = 0; defs && defs->kind == LK_YNODE_MAP && k + 1 < defs->nkids;
                 k += 2)
                if (defs->kids[k]->kind == LK_YNODE_SCALAR)
                    suggest_try(&sg, defs->kids[k]->str);
            const char *hint = suggest_text(c, &sg, sbuf, sizeof(sbuf));
            if (hint[0] == '\0' && (defs == NULL || defs->nkids == 0))
                hint = kind[0] == 'r' ? "; no receivers are defined"
                                      : "; no exporters are defined";
            ERR(c, item, "%s: unknown %s '%s'%s", path, kind, SHOW(c, name), hint);
            free(name);
            continue;
        }
        (*out)[(*n)++] = name;
    }
}

/* lines receivers produce logs only and loki exporters take logs only;
 * prometheus and prometheusremotewrite exporters take metrics only. */
static void check_signal_only(struct ctx *c, const struct lk_pipeline_config *p,
                              const lk__ynode *rnode, const lk__ynode *xnode,
                              const char *path)
{
    const lk_config *cfg = c->cfg;
    for (size_t i = 0; p->signal != LK_SIGNAL_LOGS && i < p->nreceivers; i++)
        for (size_t j = 0; j < cfg->nreceivers; j++)
            if (cfg->receivers[j].type == LK_RECEIVER_LINES &&
                strcmp(cfg->receivers[j].name, p->receivers[i]) == 0)
                ERR(c, rnode, "%s.receivers: '%s' receives log lines; list it in the logs pipeline",
                    path, SHOW(c, p->receivers[i]));
    for (size_t i = 0; i < p->nexporters; i++)
        for (size_t j = 0; j < cfg->nexporters; j++)
            if (p->signal != LK_SIGNAL_LOGS && cfg->exporters[j].type == LK_EXPORTER_LOKI &&
                strcmp(cfg->exporters[j].name, p->exporters[i]) == 0)
                ERR(c, xnode, "%s.exporters: '%s' sends to Loki, which takes logs only",
                    path, SHOW(c, p->exporters[i]));
            else if (p->signal != LK_SIGNAL_METRICS &&
                     cfg->exporters[j].type == LK_EXPORTER_PROMETHEUS &&
                     strcmp(cfg->exporters[j].name, p->exporters[i]) == 0)
                ERR(c, xnode, "%s.exporters: '%s' exposes metrics for Prometheus; list it "
                              "in the metrics pipeline",
                    path, SHOW(c, p->exporters[i]));
            else if (p->signal != LK_SIGNAL_METRICS &&
                     cfg->exporters[j].type == LK_EXPORTER_PROMETHEUSREMOTEWRITE &&
                     strcmp(cfg->exporters[j].name, p->exporters[i]) == 0)
                ERR(c, xnode, "%s.exporters: '%s' sends Prometheus remote write, which takes "
                              "metrics only",
                    path, SHOW(c, p->exporters[i]));
}

static void do_pipelines(struct ctx *c, const lk__ynode *pkey, const lk__ynode *map,
                         const lk__ynode *root)
{
    lk_config *cfg = c->cfg;
    if (map != NULL && map->kind == LK_YNODE_BAD)
        return;
    if (map != NULL && !lk__config_ynode_is_null(map) && map->kind != LK_YNODE_MAP) {
        ERR(c, map, "pipelines: expected a mapping of signals (traces, metrics, logs) to pipelines, got %s",
            lk__config_ynode_kind_name(map));
        return;
    }
    if (lk__config_ynode_is_null(map) || map->nkids < 2) {
        const lk__ynode *at = pkey ? pkey : root ? root : &top_pos;
        ERR(c, at, "no pipelines defined; at least one is required, e.g. pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}");
        return;
    }
    cfg->pipelines = calloc(map->nkids / 2, sizeof(*cfg->pipelines));
    if (cfg->pipelines == NULL) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *key = map->kids[i], *val = map->kids[i + 1];
        if (!usable_pair(c, key, val))
            continue;
        int sig = -1;
        struct suggest sg;
        char sbuf[128];
        suggest_init(&sg, key->str);
        for (int j = 0; signal_names[j] != NULL; j++) {
            if (strcmp(key->str, signal_names[j]) == 0)
                sig = j;
            suggest_try(&sg, signal_names[j]);
        }
        if (sig < 0) {
            ERR(c, key, "unknown pipeline '%s' (known: traces, metrics, logs)%s",
                SHOW(c, key->str), suggest_text(c, &sg, sbuf, sizeof(sbuf)));
            continue;
        }
        struct lk_pipeline_config *p = &cfg->pipelines[cfg->npipelines++];
        p->signal = (enum lk_signal)sig;
        char path[PATH_LEN], sub[PATH_LEN];
        struct seen ps[NF(pipeline_fields)];
        join(path, "pipelines", key->str);
        if (!walk_map(c, val, path, pipeline_fields, NF(pipeline_fields), p, ps))
            continue;
        const struct seen *rs = SEEN(pipeline_fields, ps, "receivers");
        const struct seen *xs = SEEN(pipeline_fields, ps, "exporters");
        if (rs->key == NULL)
            ERR(c, key, "%s: missing required key 'receivers'", path);
        else {
            join(sub, path, "receivers");
            do_name_list(c, rs->val, sub, "receiver", c->receivers, &p->receivers,
                         &p->nreceivers);
        }
        if (xs->key == NULL)
            ERR(c, key, "%s: missing required key 'exporters'", path);
        else {
            join(sub, path, "exporters");
            do_name_list(c, xs->val, sub, "exporter", c->exporters, &p->exporters,
                         &p->nexporters);
        }
        check_signal_only(c, p, rs->val, xs->val, path);
    }
}

/* ---- top level ---- */

static const char *const log_level_names[] = {"debug", "info", "warn", "error",
                                              NULL};
static const struct field admin_fields[] = {
    F_VAL("endpoint", FT_ENDPOINT, struct lk_admin_config, endpoint),
};
static const struct field root_fields[] = {
    F_ENUM("log_level", lk_config, log_level, log_level_names),
    F_INT("shutdown_timeout", FT_DURATION, lk_config, shutdown_timeout_ms, 0, DUR_MAX),
    F_VAL("watch_config", FT_BOOL, lk_config, watch_config),
    F_NODE("admin"),
    F_NODE("receivers"),
    F_NODE("exporters"),
    F_NODE("pipelines"),
};

static void validate(struct ctx *c, const lk__ynode *root)
{
    lk_config *cfg = c->cfg;
    struct seen rs[NF(root_fields)], as[NF(admin_fields)];

    if (!walk_map(c, root, "", root_fields, NF(root_fields), cfg, rs))
        return;
    const struct seen *admin = SEEN(root_fields, rs, "admin");
    if (walk_map(c, admin->val, "admin", admin_fields, NF(admin_fields), &cfg->admin,
                 as)) {
        const struct seen *ep = SEEN(admin_fields, as, "endpoint");
        if (ep->val == NULL || ep->ok)
            add_listener(c, cfg->admin.endpoint, "admin",
                         ep->val ? ep->val : admin->key ? admin->key : &top_pos);
    }
    /* Pipelines come last whatever the order in the file: they refer to the
     * receivers and exporters. */
    do_receivers(c, SEEN(root_fields, rs, "receivers")->val);
    do_exporters(c, SEEN(root_fields, rs, "exporters")->val);
    const struct seen *pl = SEEN(root_fields, rs, "pipelines");
    do_pipelines(c, pl->key, pl->val, root);
    check_listeners(c);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void lk_config_destroy(lk_config *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->admin.endpoint);
    for (size_t i = 0; i < c->nreceivers; i++) {
        free(c->receivers[i].name);
        free(c->receivers[i].grpc.endpoint);
        free(c->receivers[i].http.endpoint);
        struct lk_lines_receiver_config *l = &c->receivers[i].lines;
        free(l->path);
        free(l->owner);
        free(l->group);
        free(l->service_name);
        for (size_t j = 0; j < l->nlabels; j++) {
            free(l->labels[j].name);
            free(l->labels[j].value);
        }
        free(l->labels);
    }
    free(c->receivers);
    for (size_t i = 0; i < c->nexporters; i++) {
        struct lk_exporter_config *e = &c->exporters[i];
        free(e->name);
        free(e->endpoint);
        for (int j = 0; j < LK_SIGNAL_COUNT; j++)
            free(e->signal_endpoints[j]);
        for (size_t j = 0; j < e->nheaders; j++) {
            free(e->headers[j].name);
            free(e->headers[j].value);
        }
        free(e->headers);
        free(e->tls.ca_file);
        free(e->tls.cert_file);
        free(e->tls.key_file);
        free(e->auth.tenant_id);
        free(e->auth.username);
        free(e->auth.password);
        free(e->auth.bearer_token);
        free_strv(e->loki.labels, e->loki.nlabels);
        free_strv(e->prometheus.promote_resource_attributes, e->prometheus.npromote);
    }
    free(c->exporters);
    for (size_t i = 0; i < c->npipelines; i++) {
        free_strv(c->pipelines[i].receivers, c->pipelines[i].nreceivers);
        free_strv(c->pipelines[i].exporters, c->pipelines[i].nexporters);
    }
    free(c->pipelines);
    free(c);
}

int lk_config_parse(const char *name, const char *text, size_t len,
                    lk_config **out, char **errors)
{
    lk__config_diag d;
    lk__ydoc *doc = NULL;
    struct ctx c = {0};
    int rc;

    *out = NULL;
    if (errors != NULL)
        *errors = NULL;
    if (name == NULL)
        name = "<config>";
    lk__config_diag_init(&d, name);
    c.d = &d;
    c.cfg = calloc(1, sizeof(*c.cfg));
    if (c.cfg == NULL) {
        rc = LK_ENOMEM;
        goto out_diag;
    }
    c.cfg->path = xstrdup(&c, name);
    c.cfg->log_level = LK_LOG_INFO;
    c.cfg->shutdown_timeout_ms = 5 * MS_S;
    c.cfg->admin.endpoint = xstrdup(&c, "127.0.0.1:9464");

    rc = lk__config_yaml_parse(&doc, name, text, len, &d);
    if (rc == 0)
        validate(&c, doc->root);
    if (rc == LK_ENOMEM || c.oom || d.oom)
        rc = LK_ENOMEM;
    else if (rc == LK_ECONFIG || d.n > 0 || d.dropped > 0)
        rc = LK_ECONFIG;

    lk__config_ydoc_destroy(doc);
    free(c.listeners);
    if (rc == 0) {
        *out = c.cfg;
        goto out_diag;
    }
    lk_config_destroy(c.cfg);
    if (rc == LK_ECONFIG && errors != NULL)
        *errors = lk__config_diag_text(&d);
out_diag:
    lk__config_diag_fini(&d);
    return rc;
}

/* "|path|: |what|" as the only error line: there is no line to point at. */
static void file_error(char **errors, const char *path, const char *what)
{
    if (errors == NULL)
        return;
    lk_buf b;
    lk_buf_init(&b, SIZE_MAX / 2);
    if (lk_buf_printf(&b, "%s: %s\n", path, what) < 0 ||
        lk_buf_append(&b, "", 1) < 0) {
        lk_buf_fini(&b);
        return;
    }
    *errors = (char *)lk_buf_detach(&b, NULL);
}

int lk_config_load(const char *path, lk_config **out, char **errors)
{
    *out = NULL;
    if (errors != NULL)
        *errors = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        file_error(errors, path, strerror(errno));
        return LK_EIO;
    }
    /* One byte more than the limit tells a file at the limit from a larger one. */
    char *text = malloc(FILE_MAX + 1);
    if (text == NULL) {
        fclose(f);
        return LK_ENOMEM;
    }
    size_t n = fread(text, 1, FILE_MAX + 1, f);
    int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (rerr != 0) {
        free(text);
        file_error(errors, path, strerror(rerr));
        return LK_EIO;
    }
    if (n > FILE_MAX) {
        free(text);
        file_error(errors, path, "the config file is larger than 1 MiB");
        return LK_ECONFIG;
    }
    int rc = lk_config_parse(path, text, n, out, errors);
    free(text);
    return rc;
}

const char *lk_signal_name(enum lk_signal s)
{
    switch (s) {
    case LK_SIGNAL_TRACES:
        return "traces";
    case LK_SIGNAL_METRICS:
        return "metrics";
    case LK_SIGNAL_LOGS:
        return "logs";
    default:
        return "unknown";
    }
}
