#include "receivers/lineparse.h"

#include <string.h>

#include "core/severity.h"
#include "core/utf8.h"

/* Nesting limit for a JSON line, counting the line's own object. */
#define MAX_DEPTH 64
#define NS_PER_S 1000000000ull

/* Which extracted field a key names. */
enum field {
    F_NONE,
    F_TIME,
    F_LEVEL,
    F_TRACE,
    F_SPAN,
    F_SERVICE,
    F_NAME, /* bunyan's "name": the service only if "v" is present too */
    F_V,    /* bunyan's format version */
};

enum vkind { VK_STRING, VK_NUMBER, VK_OTHER };

/* How the bytes of a string value are escaped. */
enum esc {
    ESC_NONE,   /* no backslash in it: bytes as they are */
    ESC_JSON,   /* a JSON string body, escapes already checked */
    ESC_LOGFMT, /* a quoted logfmt value: unknown escapes stay as written */
};

/* State of one lk_line_parse call. */
struct scan {
    struct lk_line_fields *out;
    bool have_time; /* time_ns == 0 is a valid instant, so it needs a flag */
    bool have_level;
    bool have_service;
    bool have_name; /* bunyan: first string "name", kept until the end */
    bool have_v;
    const uint8_t *name;
    size_t name_len;
    enum esc name_esc;
};

/* Bytes that end a run of plain string bytes: '"', '\\' and controls. */
static const uint8_t str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* Hex digit values plus one (0: not a hex digit). A table: ids are decoded
 * on almost every traced line. */
static const uint8_t hex_digit[256] = {
    ['0'] = 1,   ['1'] = 2,   ['2'] = 3,   ['3'] = 4,   ['4'] = 5,   ['5'] = 6,
    ['6'] = 7,   ['7'] = 8,   ['8'] = 9,   ['9'] = 10,  ['a'] = 11,  ['b'] = 12,
    ['c'] = 13,  ['d'] = 14,  ['e'] = 15,  ['f'] = 16,  ['A'] = 11,  ['B'] = 12,
    ['C'] = 13,  ['D'] = 14,  ['E'] = 15,  ['F'] = 16,
};

static int hex_val(uint8_t c)
{
    return hex_digit[c] - 1;
}

/* The 16-bit value of 4 hex digits at |p|, or -1. */
static int32_t hex4(const uint8_t *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_val(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static void reset(struct lk_line_fields *o, enum lk_line_format f)
{
    o->format = f;
    o->time_ns = 0;
    o->severity_number = 0;
    o->level[0] = '\0';
    o->level_len = 0;
    o->has_trace_id = false;
    memset(o->trace_id, 0, sizeof(o->trace_id));
    o->has_span_id = false;
    memset(o->span_id, 0, sizeof(o->span_id));
    o->service[0] = '\0';
    o->service_len = 0;
}

/* ---- text: unescape, repair UTF-8, truncate ---- */

/* Appends code point |cp| to |dst| (|*o| bytes used of |cap|, one kept for
 * the NUL); false when it does not fit whole. */
static bool put_cp(char *dst, size_t *o, size_t cap, uint32_t cp)
{
    uint8_t b[4];
    size_t k;

    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 4;
    }
    if (*o + k > cap - 1)
        return false;
    memcpy(dst + *o, b, k);
    *o += k;
    return true;
}

/* Decodes the \u escape at |s| (|n| bytes left, s[0] == '\\', s[1] == 'u')
 * into |*cp|, joining a surrogate pair; a lone surrogate becomes U+FFFD.
 * Returns the bytes used, or 0 when the escape is malformed (possible only
 * in logfmt: JSON escapes were checked while scanning). */
static size_t unescape_u(const uint8_t *s, size_t n, uint32_t *cp)
{
    int32_t hi, lo;

    if (n < 6 || (hi = hex4(s + 2)) < 0)
        return 0;
    if (hi < 0xd800 || hi > 0xdfff) {
        *cp = (uint32_t)hi;
        return 6;
    }
    if (hi <= 0xdbff && n >= 12 && s[6] == '\\' && s[7] == 'u' &&
        (lo = hex4(s + 8)) >= 0xdc00 && lo <= 0xdfff) {
        *cp = 0x10000 + ((uint32_t)(hi - 0xd800) << 10) + (uint32_t)(lo - 0xdc00);
        return 12;
    }
    *cp = 0xfffd;
    return 6;
}

/*
 * Writes the text of the |n| bytes at |s|, escaped as |esc|, to |dst| as
 * valid UTF-8 (each byte of an invalid sequence becomes U+FFFD), at most
 * |cap| - 1 bytes cut at a code point boundary, then a NUL. Returns the
 * length; |*cut| tells whether text was left out.
 */
static size_t put_text(char *dst, size_t cap, const uint8_t *s, size_t n,
                       enum esc esc, bool *cut)
{
    size_t i = 0, o = 0;

    *cut = false;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t adv = 1;

        if (c < 0x80 && (c != '\\' || esc == ESC_NONE)) {
            if (o + 1 > cap - 1)
                goto cut;
            dst[o++] = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = lk_utf8_seq_len(s + i, n - i);
            if (k == 0) {
                if (!put_cp(dst, &o, cap, 0xfffd))
                    goto cut;
                i++;
                continue;
            }
            if (o + k > cap - 1)
                goto cut;
            memcpy(dst + o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        /* A backslash in an escaped string. In logfmt, one that starts no
         * known escape stays as written and the byte after it is read as
         * itself. */
        cp = '\\';
        if (i + 1 < n) {
            switch (s[i + 1]) {
            case '"':
            case '\\':
                cp = s[i + 1];
                adv = 2;
                break;
            case 'n':
                cp = '\n';
                adv = 2;
                break;
            case 'r':
                cp = '\r';
                adv = 2;
                break;
            case 't':
                cp = '\t';
                adv = 2;
                break;
            case '/':
            case 'b':
            case 'f':
                if (esc == ESC_JSON) {
                    cp = s[i + 1] == '/' ? '/' : s[i + 1] == 'b' ? '\b' : '\f';
                    adv = 2;
                }
                break;
            case 'u':
                adv = unescape_u(s + i, n - i, &cp);
                if (adv == 0) {
                    cp = '\\';
                    adv = 1;
                }
                break;
            default:
                break;
            }
        }
        if (!put_cp(dst, &o, cap, cp))
            goto cut;
        i += adv;
    }
    dst[o] = '\0';
    return o;
cut:
    *cut = true;
    dst[o] = '\0';
    return o;
}

/* The unescaped bytes of a string value for a parser that needs them
 * whole: |v| itself when unescaped, else decoded into |buf|; NULL when the
 * text does not fit |cap| - 1 bytes. */
static const uint8_t *plain_text(const uint8_t *v, size_t *n, enum esc esc,
                                 char *buf, size_t cap)
{
    bool cut;

    if (esc == ESC_NONE)
        return v;
    *n = put_text(buf, cap, v, *n, esc, &cut);
    return cut ? NULL : (const uint8_t *)buf;
}

/* ---- timestamps ---- */

/* The value of the |n| decimal digits at |s|, or -1. */
static int fixed_digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((uint8_t)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Leap years in [1, y). */
static int64_t leaps_before(int y)
{
    return (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400;
}

/* Days from 1970-01-01 to a valid date of year >= 1970. */
static int64_t days_since_epoch(int y, int m, int d)
{
    static const int before_month[12] = {0,   31,  59,  90,  120, 151,
                                         181, 212, 243, 273, 304, 334};
    int64_t days = (int64_t)(y - 1970) * 365 + leaps_before(y) - leaps_before(1970);

    days += before_month[m - 1] + (m > 2 && is_leap(y)) + d - 1;
    return days;
}

/* |secs| s + |frac| ns since the epoch into |*ns|, if within 0..INT64_MAX. */
static bool store_ns(int64_t secs, uint64_t frac, uint64_t *ns)
{
    if (secs < 0 || (uint64_t)secs > ((uint64_t)INT64_MAX - frac) / NS_PER_S)
        return false;
    *ns = (uint64_t)secs * NS_PER_S + frac;
    return true;
}

static bool parse_rfc3339(const char *s, size_t n, uint64_t *ns)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
    uint64_t frac = 0;
    int fd = 0;
    size_t i;

    /* "YYYY-MM-DDThh:mm:ss" then at least the zone. */
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return false;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return false;
    /* Lines of one writer share their date: the last valid one is kept
     * (per thread) with its day number. */
    static _Thread_local struct {
        char date[10];
        int64_t days;
    } last;
    int64_t days;
    h = fixed_digits(s + 11, 2);
    mi = fixed_digits(s + 14, 2);
    se = fixed_digits(s + 17, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60)
        return false;
    if (memcmp(s, last.date, 10) == 0) {
        days = last.days;
    } else {
        y = fixed_digits(s, 4);
        mo = fixed_digits(s + 5, 2);
        d = fixed_digits(s + 8, 2);
        if (y < 1970 || y > 2262 || mo < 1 || mo > 12 || d < 1)
            return false;
        if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
            return false;
        days = days_since_epoch(y, mo, d);
        memcpy(last.date, s, 10);
        last.days = days;
    }
    i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < n && is_digit((uint8_t)s[i])) {
            if (fd < 9) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                fd++;
            }
            i++;
        }
        if (i == start)
            return false;
    }
    for (; fd < 9; fd++)
        frac *= 10;
    if (i == n)
        return false;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        /* +hh:mm is 6 bytes, +hhmm 5. */
        if (n - i == 6 && s[i + 3] == ':') {
            oh = fixed_digits(s + i + 1, 2);
            om = fixed_digits(s + i + 4, 2);
        } else if (n - i == 5) {
            oh = fixed_digits(s + i + 1, 2);
            om = fixed_digits(s + i + 3, 2);
        } else {
            return false;
        }
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return false;
        i = n;
    }
    if (i != n)
        return false;
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se -
                   sign * (oh * 3600 + om * 60);
    return store_ns(secs, frac, ns);
}

static bool parse_epoch(const char *s, size_t n, uint64_t *ns)
{
    uint64_t ip = 0, frac = 0, scale;
    int fd = 0, keep;
    size_t i = 0;

    if (n == 0 || !is_digit((uint8_t)s[0]))
        return false;
    for (; i < n && is_digit((uint8_t)s[i]); i++) {
        unsigned dv = (unsigned)(s[i] - '0');
        if (ip > (UINT64_MAX - dv) / 10)
            return false;
        ip = ip * 10 + dv;
    }
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        for (; i < n && is_digit((uint8_t)s[i]); i++) {
            if (fd < 9) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                fd++;
            }
        }
        if (i == start)
            return false;
    }
    if (i != n)
        return false;
    for (; fd < 9; fd++)
        frac *= 10;
    /* The unit follows from the size of the integer part; keep as many
     * fraction digits as that unit has below the nanosecond. */
    if (ip < 100000000000ull) {
        scale = NS_PER_S;
        keep = 9;
    } else if (ip < 100000000000000ull) {
        scale = 1000000;
        keep = 6;
    } else if (ip < 100000000000000000ull) {
        scale = 1000;
        keep = 3;
    } else {
        scale = 1;
        keep = 0;
    }
    for (int k = keep; k < 9; k++)
        frac /= 10;
    if (ip > ((uint64_t)INT64_MAX - frac) / scale)
        return false;
    *ns = ip * scale + frac;
    return true;
}

bool lk_parse_timestamp(const char *s, size_t n, uint64_t *ns)
{
    if (n > 4 && s[4] == '-')
        return parse_rfc3339(s, n, ns);
    return parse_epoch(s, n, ns);
}

/* ---- fields ---- */

static bool key_is(const uint8_t *k, const char *name, size_t n)
{
    return memcmp(k, name, n) == 0;
}

/* The field named by top-level key |k| (|n| bytes, unescaped); bunyan's
 * keys only count in JSON. */
static enum field key_field(const uint8_t *k, size_t n, bool json)
{
    switch (n) {
    case 1:
        if (k[0] == 't')
            return F_TIME;
        if (k[0] == 'v' && json)
            return F_V;
        return F_NONE;
    case 2:
        return key_is(k, "ts", 2) ? F_TIME : F_NONE;
    case 3:
        return key_is(k, "lvl", 3) ? F_LEVEL : F_NONE;
    case 4:
        if (key_is(k, "time", 4))
            return F_TIME;
        return json && key_is(k, "name", 4) ? F_NAME : F_NONE;
    case 5:
        return key_is(k, "level", 5) ? F_LEVEL : F_NONE;
    case 6:
        return key_is(k, "spanId", 6) || key_is(k, "spanID", 6) ? F_SPAN : F_NONE;
    case 7:
        if (key_is(k, "service", 7))
            return F_SERVICE;
        if (key_is(k, "span_id", 7) || key_is(k, "span.id", 7))
            return F_SPAN;
        if (key_is(k, "traceId", 7) || key_is(k, "traceID", 7))
            return F_TRACE;
        return F_NONE;
    case 8:
        if (key_is(k, "severity", 8))
            return F_LEVEL;
        if (key_is(k, "trace_id", 8) || key_is(k, "trace.id", 8))
            return F_TRACE;
        return F_NONE;
    case 9:
        if (key_is(k, "timestamp", 9))
            return F_TIME;
        return key_is(k, "log.level", 9) ? F_LEVEL : F_NONE;
    case 10:
        return key_is(k, "@timestamp", 10) ? F_TIME : F_NONE;
    case 12:
        return key_is(k, "service.name", 12) || key_is(k, "service_name", 12)
                   ? F_SERVICE
                   : F_NONE;
    default:
        return F_NONE;
    }
}

/* |n| hex digits at |s| -> |n| / 2 bytes at |id|, unless they are all zero
 * (an invalid id in OTLP). */
static bool parse_id(const uint8_t *s, size_t n, uint8_t *id, size_t id_len)
{
    uint8_t tmp[16];
    uint8_t any = 0, bad = 0;

    if (s == NULL || n != 2 * id_len)
        return false;
    for (size_t i = 0; i < id_len; i++) {
        uint8_t hi = hex_digit[s[2 * i]], lo = hex_digit[s[2 * i + 1]];
        /* One test after the loop: a zero entry marks a non-hex byte. */
        bad |= (uint8_t)(hi == 0) | (uint8_t)(lo == 0);
        tmp[i] = (uint8_t)(((hi - 1) & 0xf) << 4 | ((lo - 1) & 0xf));
        any |= tmp[i];
    }
    if (bad || any == 0)
        return false;
    memcpy(id, tmp, id_len);
    return true;
}

/* The severity of a JSON number level: integers only, the rest unknown. */
static int number_severity(const uint8_t *v, size_t n)
{
    size_t i = 0;
    int64_t x = 0;
    bool neg = n > 0 && v[0] == '-';

    if (neg)
        i++;
    for (; i < n; i++) {
        if (!is_digit(v[i]))
            return 0;
        /* Past the known range the exact value no longer matters. */
        if (x < 1000000)
            x = x * 10 + (v[i] - '0');
    }
    return lk_level_number_to_severity(neg ? -x : x);
}

/* Offers value |v| (|n| bytes, a string body escaped as |esc| or a number's
 * text) of kind |vk| to field |f|; the first usable value of a field wins. */
static void take(struct scan *sc, enum field f, enum vkind vk, const uint8_t *v,
                 size_t n, enum esc esc)
{
    struct lk_line_fields *o = sc->out;
    char buf[64];
    bool cut;

    switch (f) {
    case F_TIME:
        if (sc->have_time || vk == VK_OTHER)
            break;
        v = plain_text(v, &n, esc, buf, sizeof(buf));
        if (v != NULL && lk_parse_timestamp((const char *)v, n, &o->time_ns))
            sc->have_time = true;
        break;
    case F_LEVEL:
        if (sc->have_level || vk == VK_OTHER || n == 0)
            break;
        o->level_len = put_text(o->level, sizeof(o->level), v, n, esc, &cut);
        o->severity_number = vk == VK_NUMBER
                                 ? number_severity(v, n)
                                 : lk_level_to_severity(o->level, o->level_len);
        sc->have_level = true;
        break;
    case F_TRACE:
        if (o->has_trace_id || vk != VK_STRING)
            break;
        v = plain_text(v, &n, esc, buf, sizeof(buf));
        o->has_trace_id = parse_id(v, n, o->trace_id, sizeof(o->trace_id));
        break;
    case F_SPAN:
        if (o->has_span_id || vk != VK_STRING)
            break;
        v = plain_text(v, &n, esc, buf, sizeof(buf));
        o->has_span_id = parse_id(v, n, o->span_id, sizeof(o->span_id));
        break;
    case F_SERVICE:
        if (sc->have_service || vk != VK_STRING || n == 0)
            break;
        o->service_len = put_text(o->service, sizeof(o->service), v, n, esc, &cut);
        sc->have_service = true;
        break;
    case F_NAME:
        if (sc->have_name || vk != VK_STRING || n == 0)
            break;
        sc->name = v;
        sc->name_len = n;
        sc->name_esc = esc;
        sc->have_name = true;
        break;
    case F_V:
        sc->have_v = true;
        break;
    case F_NONE:
        break;
    }
}

/* ---- JSON ---- */

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Scans a string body starting at |p| (after the opening quote): returns
 * the closing quote, or NULL for a control byte, a bad escape or no end.
 * Sets |*esc| when the body holds an escape. */
static const uint8_t *scan_string(const uint8_t *p, const uint8_t *end, bool *esc)
{
    *esc = false;
    for (;;) {
        /* Message text is most of a line: test eight bytes at a time for
         * '"', '\\' or a control byte before looking at each one. */
        while (end - p >= 8) {
            const uint64_t ones = 0x0101010101010101ull, highs = ones << 7;
            uint64_t w, q, b;
            memcpy(&w, p, 8);
            q = w ^ ('"' * ones);  /* bytes equal to '"' become 0 */
            b = w ^ ('\\' * ones); /* bytes equal to '\\' become 0 */
            /* Nonzero when some byte of w is below 0x20 or some byte of q
             * or b is 0: subtracting borrows into bit 7 of such a byte
             * (the first one exactly; later ones may be false alarms,
             * which the byte loop below sorts out). */
            if ((((w - 0x20 * ones) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) &
                highs)
                break;
            p += 8;
        }
        while (p < end && !str_stop[*p])
            p++;
        if (p == end)
            return NULL;
        if (*p == '"')
            return p;
        if (*p != '\\')
            return NULL;
        *esc = true;
        if (end - p < 2)
            return NULL;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;
        case 'u':
            if (end - p < 6 || hex4(p + 2) < 0)
                return NULL;
            p += 6;
            break;
        default:
            return NULL;
        }
    }
}

/* Scans an RFC 8259 number at |p|: returns its end or NULL. */
static const uint8_t *scan_number(const uint8_t *p, const uint8_t *end)
{
    if (p < end && *p == '-')
        p++;
    if (p == end)
        return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p))
            p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    return p;
}

static const uint8_t *scan_literal(const uint8_t *p, const uint8_t *end,
                                   const char *word, size_t n)
{
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0)
        return NULL;
    return p + n;
}

/* Scans a string, number or literal at |p| (p < end): returns its end. */
static const uint8_t *skip_scalar(const uint8_t *p, const uint8_t *end)
{
    bool esc;

    switch (*p) {
    case '"':
        p = scan_string(p + 1, end, &esc);
        return p != NULL ? p + 1 : NULL;
    case 't':
        return scan_literal(p, end, "true", 4);
    case 'f':
        return scan_literal(p, end, "false", 5);
    case 'n':
        return scan_literal(p, end, "null", 4);
    default:
        return scan_number(p, end);
    }
}

/* Scans `"key" :` at |p| and the blanks after it: returns the value's
 * first byte, or NULL. */
static const uint8_t *skip_key(const uint8_t *p, const uint8_t *end)
{
    bool esc;

    if (p == end || *p != '"')
        return NULL;
    p = scan_string(p + 1, end, &esc);
    if (p == NULL)
        return NULL;
    p = skip_ws(p + 1, end);
    if (p == end || *p != ':')
        return NULL;
    p = skip_ws(p + 1, end);
    return p < end ? p : NULL;
}

/*
 * Checks and skips the object or array at |p| (a '{' or '[' inside the
 * line's object): returns its end, or NULL when it is not well-formed or
 * nests deeper than MAX_DEPTH. Iterative, with one bit per open level
 * telling objects from arrays.
 */
static const uint8_t *skip_nested(const uint8_t *p, const uint8_t *end)
{
    uint64_t objs = 0;
    int depth = 0; /* open levels here; the line's object is one more */

    for (;;) {
        /* |p| is at a value. */
        if (*p == '{' || *p == '[') {
            bool obj = *p == '{';
            if (depth + 1 >= MAX_DEPTH)
                return NULL;
            if (obj)
                objs |= 1ull << depth;
            else
                objs &= ~(1ull << depth);
            depth++;
            p = skip_ws(p + 1, end);
            if (p == end)
                return NULL;
            if (*p != (obj ? '}' : ']')) {
                if (obj && (p = skip_key(p, end)) == NULL)
                    return NULL;
                continue;
            }
            p++;
            depth--;
        } else if ((p = skip_scalar(p, end)) == NULL) {
            return NULL;
        }
        /* After a value: close levels until a ',' starts the next one. */
        for (;;) {
            if (depth == 0)
                return p;
            bool obj = objs >> (depth - 1) & 1;
            p = skip_ws(p, end);
            if (p == end)
                return NULL;
            if (*p == ',') {
                p = skip_ws(p + 1, end);
                if (p == end || (obj && (p = skip_key(p, end)) == NULL))
                    return NULL;
                break;
            }
            if (*p != (obj ? '}' : ']'))
                return NULL;
            p++;
            depth--;
        }
    }
}

/* The field of a key that holds escapes: decoded first, as no field name
 * is longer than 12 bytes. */
static enum field escaped_key_field(const uint8_t *k, size_t n)
{
    char buf[16];
    bool cut;
    size_t len = put_text(buf, sizeof(buf), k, n, ESC_JSON, &cut);

    return cut ? F_NONE : key_field((const uint8_t *)buf, len, true);
}

static bool parse_json(struct scan *sc, const uint8_t *p, const uint8_t *end)
{
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return false;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            const uint8_t *k, *v;
            bool kesc, vesc;
            enum field f;

            if (p == end || *p != '"')
                return false;
            k = p + 1;
            p = scan_string(k, end, &kesc);
            if (p == NULL)
                return false;
            f = kesc ? escaped_key_field(k, (size_t)(p - k))
                     : key_field(k, (size_t)(p - k), true);
            p = skip_ws(p + 1, end);
            if (p == end || *p != ':')
                return false;
            p = skip_ws(p + 1, end);
            if (p == end)
                return false;
            v = p;
            if (*p == '"') {
                p = scan_string(v + 1, end, &vesc);
                if (p == NULL)
                    return false;
                take(sc, f, VK_STRING, v + 1, (size_t)(p - v - 1),
                     vesc ? ESC_JSON : ESC_NONE);
                p++;
            } else if (*p == '{' || *p == '[') {
                p = skip_nested(p, end);
                if (p == NULL)
                    return false;
                take(sc, f, VK_OTHER, v, (size_t)(p - v), ESC_NONE);
            } else if (*p == '-' || is_digit(*p)) {
                p = scan_number(p, end);
                if (p == NULL)
                    return false;
                take(sc, f, VK_NUMBER, v, (size_t)(p - v), ESC_NONE);
            } else {
                p = skip_scalar(p, end);
                if (p == NULL)
                    return false;
                take(sc, f, VK_OTHER, v, (size_t)(p - v), ESC_NONE);
            }
            p = skip_ws(p, end);
            if (p == end)
                return false;
            if (*p == '}') {
                p++;
                break;
            }
            if (*p != ',')
                return false;
            p = skip_ws(p + 1, end);
        }
    }
    if (skip_ws(p, end) != end)
        return false;
    if (sc->have_v && sc->have_name && !sc->have_service) {
        bool cut;
        sc->out->service_len = put_text(sc->out->service, sizeof(sc->out->service),
                                        sc->name, sc->name_len, sc->name_esc, &cut);
    }
    return true;
}

/* ---- logfmt ---- */

static void parse_logfmt(struct scan *sc, const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        const uint8_t *k, *v;
        bool esc = false;
        size_t kn, vn;

        while (p < end && is_blank(*p))
            p++;
        k = p;
        while (p < end && *p != '=' && !is_blank(*p))
            p++;
        kn = (size_t)(p - k);
        /* A key without '=' is a flag; nothing to take. */
        if (p == end || *p != '=')
            continue;
        p++;
        if (p < end && *p == '"') {
            v = ++p;
            while (p < end && *p != '"') {
                if (*p == '\\') {
                    esc = true;
                    if (p + 1 < end)
                        p++;
                }
                p++;
            }
            vn = (size_t)(p - v);
            if (p < end)
                p++;
        } else {
            v = p;
            while (p < end && !is_blank(*p))
                p++;
            vn = (size_t)(p - v);
        }
        if (kn > 0)
            take(sc, key_field(k, kn, false), VK_STRING, v, vn,
                 esc ? ESC_LOGFMT : ESC_NONE);
    }
}

/* AUTO's logfmt test: [A-Za-z_][A-Za-z0-9_.-]* then '=' at |p|. */
static bool looks_like_logfmt(const uint8_t *p, const uint8_t *end)
{
    if (p == end || !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_'))
        return false;
    for (p++; p < end; p++) {
        uint8_t c = *p;
        if (c == '=')
            return true;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return false;
}

void lk_line_parse(enum lk_line_format fmt, const uint8_t *line, size_t len,
                   struct lk_line_fields *out)
{
    const uint8_t *end;
    struct scan sc = {.out = out};

    reset(out, LK_LINE_RAW);
    if (len == 0) {
        /* An empty logfmt line is still logfmt: that mode never fails. */
        if (fmt == LK_LINE_LOGFMT)
            out->format = LK_LINE_LOGFMT;
        return;
    }
    end = line + len;
    if (fmt == LK_LINE_AUTO) {
        const uint8_t *p = line;
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p == '{')
            fmt = LK_LINE_JSON;
        else if (looks_like_logfmt(p, end))
            fmt = LK_LINE_LOGFMT;
        else
            return;
    }
    switch (fmt) {
    case LK_LINE_JSON:
        if (parse_json(&sc, line, end))
            out->format = LK_LINE_JSON;
        else
            reset(out, LK_LINE_RAW);
        break;
    case LK_LINE_LOGFMT:
        parse_logfmt(&sc, line, end);
        out->format = LK_LINE_LOGFMT;
        break;
    default:
        break;
    }
}

static const char *const format_names[] = {
    [LK_LINE_AUTO] = "auto",
    [LK_LINE_JSON] = "json",
    [LK_LINE_LOGFMT] = "logfmt",
    [LK_LINE_RAW] = "raw",
};

bool lk_line_format_parse(const char *s, enum lk_line_format *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(s, format_names[i]) == 0) {
            *out = (enum lk_line_format)i;
            return true;
        }
    }
    return false;
}

const char *lk_line_format_name(enum lk_line_format f)
{
    if ((unsigned)f >= sizeof(format_names) / sizeof(format_names[0]))
        return NULL;
    return format_names[f];
}
