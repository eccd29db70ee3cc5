/*
 * Configuration: YAML file -> validated lk_config (see config.h). This file
 * holds the machinery: the schema-driven walk of a mapping, value formats,
 * endpoints, ${VAR} expansion, listener ownership, the top level and
 * loading; each component's keys live beside it in config_receivers.c,
 * config_exporters.c and config_pipelines.c.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_impl.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"


/* Enum fields are filled through an int, by index into their names table. */
_Static_assert(sizeof(enum lk_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lk_compression) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lk_overflow) == sizeof(int), "enum size");
_Static_assert(LK_LOG_DEBUG == 0 && LK_LOG_ERROR == 3, "log level order");

/* Position of errors about an empty file or a missing top-level key. */
const lk__ynode cfg_top_pos = {.kind = LK_YNODE_MAP, .line = 1, .col = 1};

/* ---- small helpers ---- */

char *cfg_xstrdup(struct ctx *c, const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        c->oom = true;
    return p;
}

void cfg_set_str(struct ctx *c, char **dst, const char *s)
{
    char *p = cfg_xstrdup(c, s);
    if (p == NULL)
        return;
    free(*dst);
    *dst = p;
}

/* |out| (PATH_LEN bytes) = "|parent|.|key|", or |key| at the top; cut to fit. */
void cfg_join(char *out, const char *parent, const char *key)
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


void cfg_suggest_init(struct suggest *s, const char *word)
{
    s->word = word;
    s->best = NULL;
    s->bestd = SIZE_MAX;
}

/* Keeps |cand| if it is the closest so far and close enough to be a typo:
 * at most two edits, and no more than half of its length. */
void cfg_suggest_try(struct suggest *s, const char *cand)
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
const char *cfg_suggest_text(struct ctx *c, const struct suggest *s,
                                char *buf, size_t len)
{
    if (s->best == NULL)
        return "";
    snprintf(buf, len, "; did you mean '%s'?", SHOW(c, s->best));
    return buf;
}

/* ---- value formats ---- */

enum parse_status { P_OK, P_SYNTAX, P_NOUNIT, P_UNIT, P_OVERFLOW, P_FRACTION };

bool cfg_is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

bool cfg_is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Reads decimal digits at |*s| into |*v|. Returns how many, or -1 on overflow. */
static int read_digits(const char **s, uint64_t *v)
{
    int n = 0;
    *v = 0;
    while (cfg_is_digit(**s)) {
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
            while (cfg_is_digit(*s)) {
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
        while (cfg_is_alpha(*s))
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
        if (!cfg_is_digit(*p) && *p != '.' && *p != 'e' && *p != 'E' && *p != '+' &&
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

void cfg_fmt_duration(char *buf, size_t len, uint64_t ms)
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

void cfg_fmt_size(char *buf, size_t len, uint64_t b)
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
    return cfg_is_alpha(ch) || cfg_is_digit(ch) || ch == '-' || ch == '.' || ch == '_';
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
const char *cfg_endpoint_problem(const char *s, bool allow_unix)
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
    if (n == 0 || cfg_is_digit(s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!cfg_is_alpha(s[i]) && !cfg_is_digit(s[i]) && s[i] != '_')
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
        return cfg_xstrdup(c, s);

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
char *cfg_scalar_value(struct ctx *c, const lk__ynode *n, const char *path,
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


static void range_error(struct ctx *c, const lk__ynode *at, const char *path,
                        const struct field *f, uint64_t v)
{
    char lo[48], hi[48], got[48];
    switch (f->type) {
    case FT_DURATION:
        cfg_fmt_duration(lo, sizeof(lo), f->min);
        cfg_fmt_duration(hi, sizeof(hi), f->max);
        cfg_fmt_duration(got, sizeof(got), v);
        break;
    case FT_SIZE:
        cfg_fmt_size(lo, sizeof(lo), f->min);
        cfg_fmt_size(hi, sizeof(hi), f->max);
        cfg_fmt_size(got, sizeof(got), v);
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
bool cfg_set_field(struct ctx *c, const struct field *f, const lk__ynode *val,
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
    char *s = cfg_scalar_value(c, val, path, what);
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
        if (st == P_SYNTAX && !(s[0] == '-' && cfg_is_digit(s[1]))) {
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
        cfg_suggest_init(&sg, s);
        for (int i = 0; f->names[i] != NULL; i++) {
            if (strcmp(s, f->names[i]) == 0) {
                memcpy(dst, &i, sizeof(i));
                ok = true;
                break;
            }
            cfg_suggest_try(&sg, f->names[i]);
        }
        if (!ok)
            ERR(c, val, "%s: expected %s, got '%s'%s", path, what, SHOW(c, s),
                cfg_suggest_text(c, &sg, sbuf, sizeof(sbuf)));
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
        const char *why = cfg_endpoint_problem(s, f->flags & EP_UNIX);
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
    cfg_suggest_init(&sg, key->str);
    for (size_t i = 0; i < nf; i++)
        cfg_suggest_try(&sg, f[i].key);
    if (path[0] == '\0')
        ERR(c, key, "unknown key '%s' at the top level%s", SHOW(c, key->str),
            cfg_suggest_text(c, &sg, sbuf, sizeof(sbuf)));
    else
        ERR(c, key, "unknown key '%s' in %s%s", SHOW(c, key->str), path,
            cfg_suggest_text(c, &sg, sbuf, sizeof(sbuf)));
}

/* True for a key that can be looked at: a scalar, not a repeat, not already
 * reported. Reports other kinds of keys. */
bool cfg_usable_pair(struct ctx *c, const lk__ynode *key, const lk__ynode *val)
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
bool cfg_walk_map(struct ctx *c, const lk__ynode *map, const char *path,
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
        if (!cfg_usable_pair(c, key, val))
            continue;
        size_t j = 0;
        while (j < nf && strcmp(f[j].key, key->str) != 0)
            j++;
        if (j == nf) {
            unknown_key(c, key, path, f, nf);
            continue;
        }
        char sub[PATH_LEN];
        cfg_join(sub, path, key->str);
        seen[j].key = key;
        seen[j].val = val;
        seen[j].ok = cfg_set_field(c, &f[j], val, sub, base);
    }
    return true;
}

const struct seen *cfg_seen_get(const struct field *f, size_t nf,
                                   const struct seen *s, const char *key)
{
    for (size_t i = 0; i < nf; i++)
        if (strcmp(f[i].key, key) == 0)
            return &s[i];
    return NULL; /* not reached: keys come from the same table */
}


/* ---- listeners: one endpoint, one owner ---- */

void cfg_add_listener(struct ctx *c, const char *endpoint, const char *owner,
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
void cfg_check_listeners(struct ctx *c)
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
/* Indexed by enum lk_exporter_type. */

/* Checks "<type>" or "<type>/<suffix>" with a type from |types| (NULL-
 * terminated). |kind| is "receiver" or "exporter". Returns the index of the
 * type, or -1 after reporting the problem. */
int cfg_check_component_name(struct ctx *c, const lk__ynode *key,
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
    cfg_suggest_init(&sg, type);
    for (int i = 0; types[i] != NULL; i++) {
        if (tlen == strlen(types[i]) && memcmp(name, types[i], tlen) == 0)
            known = i;
        cfg_suggest_try(&sg, types[i]);
    }
    if (known < 0) {
        names_list(list, sizeof(list), types);
        ERR(c, key, "unknown %s type '%s' (known: %s)%s", kind, SHOW(c, type), list,
            cfg_suggest_text(c, &sg, sbuf, sizeof(sbuf)));
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

/* ---- top level ---- */

static const char *const log_level_names[] = {"debug", "info", "warn", "error",
                                              NULL};
static const struct field admin_fields[] = {
    F_VAL("endpoint", FT_ENDPOINT, struct lk_admin_config, endpoint),
};
static const struct field storage_fields[] = {
    F_VAL("path", FT_STRING, struct lk_storage_config, path),
    F_INT("max_bytes", FT_SIZE, struct lk_storage_config, max_bytes, 1 * MIB, 1024 * GIB),
    F_VAL("durable", FT_BOOL, struct lk_storage_config, durable),
    F_INT("commit_interval", FT_DURATION, struct lk_storage_config, commit_interval_ms, 0,
          10 * MS_S),
};
static const struct field root_fields[] = {
    F_ENUM("log_level", lk_config, log_level, log_level_names),
    F_INT("shutdown_timeout", FT_DURATION, lk_config, shutdown_timeout_ms, 0, DUR_MAX),
    F_VAL("watch_config", FT_BOOL, lk_config, watch_config),
    F_INT("memory_limit", FT_SIZE, lk_config, memory_limit, 16 * MIB, 1024 * GIB),
    F_NODE("admin"),
    F_NODE("storage"),
    F_NODE("receivers"),
    F_NODE("exporters"),
    F_NODE("pipelines"),
};

static void validate(struct ctx *c, const lk__ynode *root)
{
    lk_config *cfg = c->cfg;
    struct seen rs[NF(root_fields)], as[NF(admin_fields)], ss[NF(storage_fields)];

    if (!cfg_walk_map(c, root, "", root_fields, NF(root_fields), cfg, rs))
        return;
    const struct seen *admin = SEEN(root_fields, rs, "admin");
    if (cfg_walk_map(c, admin->val, "admin", admin_fields, NF(admin_fields), &cfg->admin,
                 as)) {
        const struct seen *ep = SEEN(admin_fields, as, "endpoint");
        if (ep->val == NULL || ep->ok)
            cfg_add_listener(c, cfg->admin.endpoint, "admin",
                         ep->val ? ep->val : admin->key ? admin->key : &cfg_top_pos);
    }
    const struct seen *st = SEEN(root_fields, rs, "storage");
    if (st->val != NULL) {
        cfg->storage.max_bytes = 1 * GIB;
        if (cfg_walk_map(c, st->val, "storage", storage_fields, NF(storage_fields),
                         &cfg->storage, ss)) {
            const struct seen *path = SEEN(storage_fields, ss, "path");
            if (path->val == NULL)
                ERR(c, st->key, "storage needs a path (the spool's SQLite file)");
            else if (path->ok && cfg->storage.path[0] == '\0')
                ERR(c, path->val, "storage.path must not be empty");
        }
    }
    /* Pipelines come last whatever the order in the file: they refer to the
     * receivers and exporters. */
    cfg_do_receivers(c, SEEN(root_fields, rs, "receivers")->val);
    cfg_do_exporters(c, SEEN(root_fields, rs, "exporters")->val);
    const struct seen *pl = SEEN(root_fields, rs, "pipelines");
    cfg_do_pipelines(c, pl->key, pl->val, root);
    cfg_check_listeners(c);
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
    free(c->storage.path);
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
    c.cfg->path = cfg_xstrdup(&c, name);
    c.cfg->log_level = LK_LOG_INFO;
    c.cfg->shutdown_timeout_ms = 5 * MS_S;
    c.cfg->memory_limit = 256 * MIB;
    c.cfg->admin.endpoint = cfg_xstrdup(&c, LK_CONFIG_ADMIN_DEFAULT);

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

/* Reads |path| whole (at most FILE_MAX bytes) into a malloc'd |*text|. */
static int read_config_file(const char *path, char **text, size_t *len, char **errors)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        file_error(errors, path, strerror(errno));
        return LK_EIO;
    }
    /* One byte more than the limit tells a file at the limit from a larger one. */
    char *t = malloc(FILE_MAX + 1);
    if (t == NULL) {
        fclose(f);
        return LK_ENOMEM;
    }
    size_t n = fread(t, 1, FILE_MAX + 1, f);
    int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (rerr != 0) {
        free(t);
        file_error(errors, path, strerror(rerr));
        return LK_EIO;
    }
    if (n > FILE_MAX) {
        free(t);
        file_error(errors, path, "the config file is larger than 1 MiB");
        return LK_ECONFIG;
    }
    *text = t;
    *len = n;
    return 0;
}

int lk_config_load(const char *path, lk_config **out, char **errors)
{
    char *text;
    size_t n;

    *out = NULL;
    if (errors != NULL)
        *errors = NULL;
    int rc = read_config_file(path, &text, &n, errors);
    if (rc < 0)
        return rc;
    rc = lk_config_parse(path, text, n, out, errors);
    free(text);
    return rc;
}

/* The value of |key| in mapping |map|, or NULL. */
static const lk__ynode *map_value(const lk__ynode *map, const char *key)
{
    if (map == NULL || map->kind != LK_YNODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const lk__ynode *k = map->kids[i];
        if (!k->dup && k->kind == LK_YNODE_SCALAR && strcmp(k->str, key) == 0)
            return map->kids[i + 1];
    }
    return NULL;
}

int lk_config_load_admin_endpoint(const char *path, char **endpoint, char **errors)
{
    lk__config_diag d;
    lk__ydoc *doc = NULL;
    struct ctx c = {0};
    char *text, *ep = NULL;
    size_t n;

    *endpoint = NULL;
    if (errors != NULL)
        *errors = NULL;
    int rc = read_config_file(path, &text, &n, errors);
    if (rc < 0)
        return rc;
    lk__config_diag_init(&d, path);
    c.d = &d;
    rc = lk__config_yaml_parse(&doc, path, text, n, &d);
    free(text);
    if (rc == 0) {
        const lk__ynode *v = map_value(map_value(doc->root, "admin"), "endpoint");
        if (lk__config_ynode_is_null(v))
            ep = cfg_xstrdup(&c, LK_CONFIG_ADMIN_DEFAULT);
        else
            ep = cfg_scalar_value(&c, v, "admin.endpoint", "host:port");
    }
    if (rc == LK_ENOMEM || c.oom || d.oom)
        rc = LK_ENOMEM;
    else if (rc == LK_ECONFIG || d.n > 0 || d.dropped > 0 || ep == NULL)
        rc = LK_ECONFIG;
    lk__config_ydoc_destroy(doc);
    if (rc == 0)
        *endpoint = ep;
    else {
        free(ep);
        if (rc == LK_ECONFIG && errors != NULL)
            *errors = lk__config_diag_text(&d);
    }
    lk__config_diag_fini(&d);
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
