/* The view of status.h as lines of plain text that fit a width. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/status.h"
#include "core/err.h"
#include "core/utf8.h"

/* Spaces between columns, and between header items. */
#define GAP 2
/* A name column is never cut narrower than this; and not narrower than
 * NAME_FAIR (or a fifth of the width) to make room for optional columns. */
#define NAME_MIN 4
#define NAME_FAIR 12
/* Most columns a table has. */
#define MAX_COLS 12
/* "…", U+2026, one column. */
#define ELLIPSIS "\xe2\x80\xa6"

/* ---- text: sanitizing, measuring, cutting ---- */

/* The code point of the valid sequence at |p| (|n| bytes, 1..4). */
static unsigned decode(const unsigned char *p, size_t n)
{
    static const unsigned char lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    unsigned cp = p[0] & lead_mask[n];
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (p[i] & 0x3f);
    return cp;
}

/* Two columns for the East Asian wide and fullwidth ranges (Hangul, CJK,
 * fullwidth forms) and the main emoji blocks; one for the rest. Combining
 * marks count one (the line comes out narrower); the odd symbol elsewhere
 * that a terminal draws wide is counted one, a risk names of receivers and
 * exporters hardly run. */
static unsigned cp_width(unsigned cp)
{
    static const unsigned wide[][2] = {
        {0x1100, 0x115f},   {0x2e80, 0x303e},   {0x3041, 0x33ff},   {0x3400, 0x4dbf},
        {0x4e00, 0x9fff},   {0xa000, 0xa4cf},   {0xac00, 0xd7a3},   {0xf900, 0xfaff},
        {0xfe30, 0xfe4f},   {0xff00, 0xff60},   {0xffe0, 0xffe6},   {0x1f300, 0x1f64f},
        {0x1f900, 0x1f9ff}, {0x20000, 0x3fffd},
    };
    for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++)
        if (cp >= wide[i][0] && cp <= wide[i][1])
            return 2;
    return 1;
}

size_t lk_status_text_width(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t l = lk_utf8_seq_len(p + i, n - i);
        if (l == 0)
            l = 1;
        w += l == 1 ? 1 : cp_width(decode(p + i, l));
        i += l;
    }
    return w;
}

/* A copy of |s| a terminal shows as it is: each invalid byte and each
 * control character (C0, DEL, C1) becomes '?'. NULL on ENOMEM. */
static char *clean(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t l = lk_utf8_seq_len(p + i, n - i);
        unsigned cp = l > 0 ? decode(p + i, l) : 0;
        if (l == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
            out[o++] = '?';
            i += l > 0 ? l : 1;
            continue;
        }
        memcpy(out + o, p + i, l);
        o += l;
        i += l;
    }
    out[o] = '\0';
    return out;
}

/* Appends clean text |s| in at most |w| columns: cut with an ellipsis
 * (|ellipsis|) or not, then padded to |w| on the side |left| says when
 * |pad|. */
static int put_fit(lk_buf *out, const char *s, size_t w, bool left, bool pad, bool ellipsis)
{
    size_t n = strlen(s), sw = lk_status_text_width(s, n);
    size_t keep = n, kw = sw;
    bool cut = w > 0 && sw > w;
    if (cut) {
        size_t room = ellipsis ? w - 1 : w;
        const unsigned char *p = (const unsigned char *)s;
        keep = kw = 0;
        while (keep < n) {
            size_t l = lk_utf8_seq_len(p + keep, n - keep);
            size_t cw = l == 0 ? 1 : l == 1 ? 1 : cp_width(decode(p + keep, l));
            if (kw + cw > room)
                break;
            keep += l == 0 ? 1 : l;
            kw += cw;
        }
        if (ellipsis)
            kw++;
    }
    size_t fill = pad && w > kw ? w - kw : 0;
    int rc = 0;
    for (size_t i = 0; i < fill && !left && rc == 0; i++)
        rc = lk_buf_append(out, " ", 1);
    if (rc == 0)
        rc = lk_buf_append(out, s, keep);
    if (rc == 0 && cut && ellipsis)
        rc = lk_buf_append_str(out, ELLIPSIS);
    for (size_t i = 0; i < fill && left && rc == 0; i++)
        rc = lk_buf_append(out, " ", 1);
    return rc;
}

/* ---- numbers ---- */

/* 3 significant digits and a suffix: 1.23M, 12.3G, 123k. */
static void fmt_si(char *buf, size_t len, double v)
{
    static const char *const units[] = {"", "k", "M", "G", "T", "P", "E"};
    size_t u = 0;
    while (v >= 999.5 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        u++;
    }
    snprintf(buf, len, v < 9.995 ? "%.2f%s" : v < 99.95 ? "%.1f%s" : "%.0f%s", v, units[u]);
}

/* |exact|: every digit, for scripts (no width); else at most 6 columns. */
static void fmt_total(char *buf, size_t len, double v, bool exact)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else if (v < 1e6 || exact)
        snprintf(buf, len, "%.0f", v);
    else
        fmt_si(buf, len, v);
}

static void fmt_rate(char *buf, size_t len, double v, bool exact)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else if (v == 0)
        snprintf(buf, len, "0");
    else if (exact)
        snprintf(buf, len, "%.1f", v);
    else if (v < 0.05)
        snprintf(buf, len, "<0.1");
    else if (v < 99.95)
        snprintf(buf, len, "%.1f", v);
    else if (v < 9999.5)
        snprintf(buf, len, "%.0f", v);
    else
        fmt_si(buf, len, v);
}

static void fmt_bytes(char *buf, size_t len, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    if (isnan(v)) {
        snprintf(buf, len, "-");
        return;
    }
    while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u == 0 || v >= 99.95 ? "%.0f%s" : "%.1f%s", v, units[u]);
}

static void fmt_duration(char *buf, size_t len, double secs)
{
    unsigned long s = (unsigned long)secs;
    if (s < 60)
        snprintf(buf, len, "%lus", s);
    else if (s < 3600)
        snprintf(buf, len, "%lum%02lus", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%luh%02lum", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%lud%02luh", s / 86400, s % 86400 / 3600);
}

static void fmt_fill(char *buf, size_t len, double size, double cap)
{
    if (isnan(size) || isnan(cap) || cap <= 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.0f%%", fmin(size / cap * 100, 999));
}

/* ---- the header: items packed into lines ---- */

#define MAX_ITEMS 12

struct items {
    char text[MAX_ITEMS][320];
    int n;
};

static void item(struct items *it, const char *fmt, const char *a, const char *b)
{
    if (it->n < MAX_ITEMS)
        snprintf(it->text[it->n++], sizeof(it->text[0]), fmt, a, b ? b : "");
}

/* Items in order, as many on a line as |width| allows (one at least, cut);
 * with no width, as many as 80 columns hold, none cut. */
static int put_items(lk_buf *out, const struct items *it, int width)
{
    size_t used = 0, wrap = width > 0 ? (size_t)width : 80;
    int rc = 0;
    for (int i = 0; i < it->n && rc == 0; i++) {
        char *t = clean(it->text[i]);
        if (t == NULL)
            return LK_ENOMEM;
        size_t w = lk_status_text_width(t, strlen(t));
        if (used > 0 && used + GAP + w > wrap) {
            rc = lk_buf_append(out, "\n", 1);
            used = 0;
        }
        if (rc == 0 && used > 0) {
            rc = lk_buf_append(out, "  ", GAP);
            used += GAP;
        }
        if (rc == 0)
            rc = put_fit(out, t, width > 0 ? (size_t)width - used : 0, true, false, true);
        used += width > 0 && w > (size_t)width - used ? (size_t)width - used : w;
        free(t);
    }
    return rc == 0 && used > 0 ? lk_buf_append(out, "\n", 1) : rc;
}

/* The agent's own state as items, most telling first: at a narrow width
 * they wrap onto more lines rather than being cut. */
static int render_header(const struct lk_status *st, const struct lk_status_render_opts *o,
                         lk_buf *out)
{
    struct items it = {0};
    char n1[32], n2[32], n3[32], mem[80];

    if (st->version != NULL)
        item(&it, st->os ? "lookout %s (%s)" : "lookout %s%s", st->version, st->os);
    else
        item(&it, "lookout%s%s", "", NULL);
    if (st->target != NULL)
        item(&it, "%s%s", st->target, NULL);
    if (st->state == LK_STATUS_UNREACHABLE) {
        item(&it, "UNREACHABLE: %s%s", st->error, NULL);
    } else {
        item(&it, "%s%s", st->state == LK_STATUS_READY ? "ready" : "NOT READY", NULL);
        if (!isnan(st->uptime)) {
            fmt_duration(n1, sizeof(n1), st->uptime);
            item(&it, "up %s%s", n1, NULL);
        }
        fmt_bytes(n1, sizeof(n1), st->rss);
        item(&it, "rss %s%s", n1, NULL);
        if (isnan(st->cpu))
            snprintf(n1, sizeof(n1), "-");
        else
            snprintf(n1, sizeof(n1), "%.1f%%", st->cpu);
        item(&it, "cpu %s%s", n1, NULL);
        fmt_bytes(n1, sizeof(n1), st->mem_used);
        fmt_bytes(n2, sizeof(n2), st->mem_limit);
        fmt_fill(n3, sizeof(n3), st->mem_used, st->mem_limit);
        snprintf(mem, sizeof(mem), "%s/%s", n1, n2);
        item(&it, "memory %s (%s)", mem, n3);
        if (st->reload_ok >= 0)
            item(&it, "%s%s", st->reload_ok ? "reload ok" : "reload FAILED", NULL);
        if (st->interval > 0) {
            snprintf(n1, sizeof(n1), "%.3gs", st->interval);
            item(&it, "rates over %s%s", n1, NULL);
        } else {
            item(&it, "totals only%s%s", "", NULL);
        }
    }
    if (o->footer != NULL)
        item(&it, "%s%s", o->footer, NULL);
    return put_items(out, &it, o->width);
}

/* ---- tables ---- */

struct col {
    const char *head;
    bool left; /* aligned left (names), else right (numbers) */
    int prio;  /* 0: always shown; higher numbers go first when space is short */
};

struct table {
    struct col cols[MAX_COLS];
    int ncols;
    size_t nrows;
    char **cells; /* nrows x ncols, clean text */
};

static int table_init(struct table *t, const struct col *cols, int ncols, size_t nrows)
{
    memset(t, 0, sizeof(*t));
    memcpy(t->cols, cols, (size_t)ncols * sizeof(*cols));
    t->ncols = ncols;
    t->nrows = nrows;
    t->cells = calloc(nrows * (size_t)ncols + 1, sizeof(char *));
    return t->cells == NULL ? LK_ENOMEM : 0;
}

static void table_fini(struct table *t)
{
    for (size_t i = 0; t->cells != NULL && i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
}

static int set_cell(struct table *t, size_t r, int c, const char *text)
{
    char **cell = &t->cells[r * (size_t)t->ncols + (size_t)c];
    *cell = clean(text);
    return *cell == NULL ? LK_ENOMEM : 0;
}

/* Widths of the columns shown, 0 for those left out, for |width|. */
static void layout(const struct table *t, int width, size_t *w)
{
    size_t total = 0;
    int shown = 0;
    for (int c = 0; c < t->ncols; c++) {
        w[c] = lk_status_text_width(t->cols[c].head, strlen(t->cols[c].head));
        for (size_t r = 0; r < t->nrows; r++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
            size_t sw = lk_status_text_width(s, strlen(s));
            w[c] = sw > w[c] ? sw : w[c];
        }
    }
    if (width <= 0)
        return;
    /* A long name gives way before any column does, and gets back what the
     * columns leave. */
    size_t natural = w[0], cap = (size_t)width / 5 > NAME_FAIR ? (size_t)width / 5 : NAME_FAIR;
    if (w[0] > cap)
        w[0] = cap > NAME_MIN ? cap : NAME_MIN;
    for (;;) {
        total = 0;
        shown = 0;
        int drop = -1;
        for (int c = 0; c < t->ncols; c++) {
            if (w[c] == 0)
                continue;
            total += w[c] + (shown++ > 0 ? GAP : 0);
            if (t->cols[c].prio > 0 && (drop < 0 || t->cols[c].prio >= t->cols[drop].prio))
                drop = c;
        }
        if (total <= (size_t)width || drop < 0)
            break;
        w[drop] = 0;
    }
    if (total > (size_t)width) {
        size_t over = total - (size_t)width;
        w[0] = w[0] > NAME_MIN + over ? w[0] - over : NAME_MIN;
    } else if (w[0] < natural) {
        size_t room = (size_t)width - total;
        w[0] = w[0] + room < natural ? w[0] + room : natural;
    }
}

/* Ends the line that starts at |start|: trailing spaces off, cut to
 * |width| columns (what layout could not make fit), newline. */
static int end_line(lk_buf *out, size_t start, int width)
{
    while (out->len > start && out->data[out->len - 1] == ' ')
        out->len--;
    if (width > 0) {
        const char *s = (const char *)out->data + start;
        size_t n = out->len - start, keep = 0, cols = 0;
        while (keep < n) {
            size_t l = lk_utf8_seq_len((const uint8_t *)s + keep, n - keep);
            size_t cw = l <= 1 ? 1 : cp_width(decode((const unsigned char *)s + keep, l));
            if (cols + cw > (size_t)width)
                break;
            keep += l == 0 ? 1 : l;
            cols += cw;
        }
        lk_buf_truncate(out, start + keep);
    }
    return lk_buf_append(out, "\n", 1);
}

static int put_row(lk_buf *out, const struct table *t, const size_t *w, size_t r, int width)
{
    size_t start = out->len;
    bool first = true;
    int rc = 0;
    for (int c = 0; c < t->ncols && rc == 0; c++) {
        if (w[c] == 0)
            continue;
        if (!first)
            rc = lk_buf_append(out, "  ", GAP);
        first = false;
        const char *s = r == (size_t)-1 ? t->cols[c].head : t->cells[r * (size_t)t->ncols + (size_t)c];
        if (rc == 0)
            rc = put_fit(out, s, w[c], t->cols[c].left, true, true);
    }
    return rc == 0 ? end_line(out, start, width) : rc;
}

static int put_table(lk_buf *out, const struct table *t, int width)
{
    size_t w[MAX_COLS];
    layout(t, width, w);
    int rc = put_row(out, t, w, (size_t)-1, width);
    for (size_t r = 0; r < t->nrows && rc == 0; r++)
        rc = put_row(out, t, w, r, width);
    return rc;
}

static int receivers_table(const struct lk_status *st, bool exact, struct table *t)
{
    static const struct col cols[] = {
        {"RECEIVER", true, 0},  {"SIGNAL", true, 0},     {"ACCEPTED/s", false, 0},
        {"ACCEPTED", false, 0}, {"REFUSED/s", false, 1}, {"REJECTED/s", false, 2},
        {"CONNS", false, 2},    {"REFUSED", false, 3},   {"REJECTED", false, 3},
    };
    char v[9][32];
    int rc = table_init(t, cols, 9, st->nreceivers);
    for (size_t r = 0; r < st->nreceivers && rc == 0; r++) {
        const struct lk_status_receiver *x = &st->receivers[r];
        snprintf(v[1], sizeof(v[1]), "%s", lk_signal_name(x->signal));
        fmt_rate(v[2], sizeof(v[2]), x->accepted.rate, exact);
        fmt_total(v[3], sizeof(v[3]), x->accepted.total, exact);
        fmt_rate(v[4], sizeof(v[4]), x->refused.rate, exact);
        fmt_rate(v[5], sizeof(v[5]), x->rejected.rate, exact);
        fmt_total(v[6], sizeof(v[6]), x->connections, exact);
        fmt_total(v[7], sizeof(v[7]), x->refused.total, exact);
        fmt_total(v[8], sizeof(v[8]), x->rejected.total, exact);
        rc = set_cell(t, r, 0, x->name);
        for (int c = 1; c < 9 && rc == 0; c++)
            rc = set_cell(t, r, c, v[c]);
    }
    return rc;
}

static int exporters_table(const struct lk_status *st, bool exact, struct table *t)
{
    static const struct col cols[] = {
        {"EXPORTER", true, 0},  {"SIGNAL", true, 0},    {"SENT/s", false, 0},
        {"SENT", false, 0},     {"QUEUE", false, 1},    {"FAILED/s", false, 1},
        {"RETRIES/s", false, 2}, {"FAILED", false, 3},   {"RETRIES", false, 3},
        {"QUEUED", false, 3},   {"SPOOL", false, 2},
    };
    /* The spool column only where a spool is configured. */
    int ncols = st->has_spool ? 11 : 10;
    char v[11][64], a[32], b[32];
    int rc = table_init(t, cols, ncols, st->nexporters);
    for (size_t r = 0; r < st->nexporters && rc == 0; r++) {
        const struct lk_status_exporter *x = &st->exporters[r];
        snprintf(v[1], sizeof(v[1]), "%s", lk_signal_name(x->signal));
        fmt_rate(v[2], sizeof(v[2]), x->sent.rate, exact);
        fmt_total(v[3], sizeof(v[3]), x->sent.total, exact);
        fmt_fill(v[4], sizeof(v[4]), x->queue_size, x->queue_capacity);
        fmt_rate(v[5], sizeof(v[5]), x->failed.rate, exact);
        fmt_rate(v[6], sizeof(v[6]), x->retries.rate, exact);
        fmt_total(v[7], sizeof(v[7]), x->failed.total, exact);
        fmt_total(v[8], sizeof(v[8]), x->retries.total, exact);
        fmt_total(a, sizeof(a), x->queue_size, exact);
        fmt_total(b, sizeof(b), x->queue_capacity, exact);
        snprintf(v[9], sizeof(v[9]), "%s/%s", a, b);
        fmt_total(v[10], sizeof(v[10]), x->spool_batches, exact);
        rc = set_cell(t, r, 0, x->name);
        for (int c = 1; c < ncols && rc == 0; c++)
            rc = set_cell(t, r, c, v[c]);
    }
    return rc;
}

static int drops_table(const struct lk_status *st, bool exact, struct table *t)
{
    static const struct col cols[] = {
        {"DROP REASON", true, 0},
        {"DROPPED/s", false, 0},
        {"DROPPED", false, 0},
    };
    char rate[32], total[32];
    int rc = table_init(t, cols, 3, st->ndrops);
    for (size_t r = 0; r < st->ndrops && rc == 0; r++) {
        fmt_rate(rate, sizeof(rate), st->drops[r].count.rate, exact);
        fmt_total(total, sizeof(total), st->drops[r].count.total, exact);
        rc = set_cell(t, r, 0, st->drops[r].reason);
        if (rc == 0)
            rc = set_cell(t, r, 1, rate);
        if (rc == 0)
            rc = set_cell(t, r, 2, total);
    }
    return rc;
}

static int render_table(lk_buf *out, const struct lk_status *st, int width,
                        int (*fill)(const struct lk_status *, bool, struct table *))
{
    struct table t = {0};
    int rc = lk_buf_append(out, "\n", 1);
    if (rc == 0)
        rc = fill(st, width == 0, &t);
    if (rc == 0)
        rc = put_table(out, &t, width);
    table_fini(&t);
    return rc;
}

int lk_status_render(const struct lk_status *st, const struct lk_status_render_opts *o,
                     lk_buf *out)
{
    int rc = render_header(st, o, out);
    if (rc < 0 || st->state == LK_STATUS_UNREACHABLE)
        return rc;
    rc = render_table(out, st, o->width, receivers_table);
    if (rc == 0)
        rc = render_table(out, st, o->width, exporters_table);
    if (rc == 0 && st->ndrops > 0)
        rc = render_table(out, st, o->width, drops_table);
    if (rc == 0 && st->ndrops == 0) {
        size_t start = out->len;
        rc = lk_buf_append(out, "\nno items dropped", 17);
        if (rc == 0)
            rc = end_line(out, start + 1, o->width);
    }
    return rc;
}
