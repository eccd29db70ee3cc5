/* Reading the Prometheus text format into samples (see metrics_text.h). */
#include "cli/metrics_text.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

/* Longer value or timestamp tokens are not numbers anyone writes. */
#define TOKEN_MAX 63
/* One line's strings are bounded by the input's size, not by a cap of ours. */
#define SCRATCH_MAX SIZE_MAX

struct lk_metrics_text {
    struct lk_sample **samples; /* each one malloc block: sample, labels, strings */
    size_t n, cap;
    size_t invalid;       /* sample lines skipped as unreadable */
    size_t first_invalid; /* 1-based line number; 0: none */
};

struct parser {
    lk_buf strings;     /* the line's name and label strings, each NUL-terminated */
    size_t offs[2 * LK_METRICS_TEXT_MAX_LABELS]; /* label name, value offsets */
    size_t nlabels;
    lk_buf family;      /* the name of the last # TYPE line */
    enum lk_metric_type family_type;
    lk_metrics_text_keep_fn keep;
    void *arg;
};

/* A line is read with a cursor: |s| moves toward |end|. */
struct cur {
    const char *s;
    const char *end;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_name_start(char c, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool is_name_char(char c, bool colon)
{
    return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

static void skip_blanks(struct cur *c)
{
    while (c->s < c->end && is_blank(*c->s))
        c->s++;
}

/* A metric name (colons allowed) or a label name; its length, 0 if none. */
static size_t read_name(struct cur *c, bool colon)
{
    const char *start = c->s;
    if (c->s == c->end || !is_name_start(*c->s, colon))
        return 0;
    while (c->s < c->end && is_name_char(*c->s, colon))
        c->s++;
    return (size_t)(c->s - start);
}

/* The next run of non-blank bytes. */
static size_t read_token(struct cur *c, const char **tok)
{
    *tok = c->s;
    while (c->s < c->end && !is_blank(*c->s))
        c->s++;
    return (size_t)(c->s - *tok);
}

static bool parse_value(const char *tok, size_t n, double *v)
{
    char buf[TOKEN_MAX + 1];
    char *end;
    if (n == 0 || n > TOKEN_MAX)
        return false;
    memcpy(buf, tok, n);
    buf[n] = '\0';
    *v = strtod(buf, &end);
    /* Out of range reads as +-Inf or 0, as the number written means. */
    return end == buf + n;
}

static bool parse_timestamp(const char *tok, size_t n, int64_t *ts)
{
    bool neg = n > 0 && tok[0] == '-';
    size_t i = neg ? 1 : 0;
    uint64_t v = 0;
    if (i == n)
        return false;
    for (; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return false;
        uint64_t d = (uint64_t)(tok[i] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *ts = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* Appends |n| bytes and a NUL to the line's strings; the offset, or -1. */
static long push_string(struct parser *p, const char *s, size_t n)
{
    size_t off = p->strings.len;
    if (lk_buf_reserve(&p->strings, n + 1) < 0)
        return -1;
    lk_buf_append(&p->strings, s, n);
    lk_buf_append(&p->strings, "", 1);
    return (long)off;
}

/*
 * A quoted label value at |c| (after the opening quote), unescaped into the
 * line's strings up to the closing quote. 1 read, 0 malformed, LK_ENOMEM.
 */
static int read_label_value(struct parser *p, struct cur *c)
{
    for (;;) {
        const char *run = c->s;
        while (c->s < c->end && *c->s != '"' && *c->s != '\\' && *c->s != '\0')
            c->s++;
        if (lk_buf_append(&p->strings, run, (size_t)(c->s - run)) < 0)
            return LK_ENOMEM;
        if (c->s == c->end || *c->s == '\0')
            return 0;
        if (*c->s == '"') {
            c->s++;
            return lk_buf_append(&p->strings, "", 1) < 0 ? LK_ENOMEM : 1;
        }
        /* A backslash: the three escapes of the format; anything else is
         * kept as written, backslash included (as Prometheus reads it). */
        if (c->s + 1 == c->end || c->s[1] == '\0')
            return 0;
        char e = c->s[1];
        const char *rep = e == 'n' ? "\n" : e == '\\' ? "\\" : e == '"' ? "\"" : NULL;
        int rc = rep != NULL ? lk_buf_append(&p->strings, rep, 1)
                             : lk_buf_append(&p->strings, c->s, 2);
        if (rc < 0)
            return LK_ENOMEM;
        c->s += 2;
    }
}

/* The {...} after a metric name, at its '{'. 1 read, 0 malformed, LK_ENOMEM. */
static int read_labels(struct parser *p, struct cur *c)
{
    c->s++;
    for (;;) {
        skip_blanks(c);
        if (c->s < c->end && *c->s == '}') {
            c->s++;
            return 1;
        }
        const char *name = c->s;
        size_t nlen = read_name(c, false);
        if (nlen == 0 || p->nlabels == LK_METRICS_TEXT_MAX_LABELS)
            return 0;
        skip_blanks(c);
        if (c->s == c->end || *c->s != '=')
            return 0;
        c->s++;
        skip_blanks(c);
        if (c->s == c->end || *c->s != '"')
            return 0;
        c->s++;
        long noff = push_string(p, name, nlen);
        if (noff < 0)
            return LK_ENOMEM;
        size_t voff = p->strings.len;
        int rc = read_label_value(p, c);
        if (rc <= 0)
            return rc;
        p->offs[2 * p->nlabels] = (size_t)noff;
        p->offs[2 * p->nlabels + 1] = voff;
        p->nlabels++;
        skip_blanks(c);
        if (c->s < c->end && *c->s == ',') {
            c->s++;
        } else if (c->s == c->end || *c->s != '}') {
            return 0;
        }
    }
}

static bool has_suffix(const char *name, size_t nlen, const lk_buf *fam, const char *suffix)
{
    size_t sl = strlen(suffix);
    return nlen == fam->len + sl && memcmp(name, fam->data, fam->len) == 0 &&
           memcmp(name + fam->len, suffix, sl) == 0;
}

static enum lk_metric_type type_of(const struct parser *p, const char *name, size_t nlen)
{
    const lk_buf *f = &p->family;
    if (f->len == 0)
        return LK_METRIC_UNTYPED;
    if (nlen == f->len && memcmp(name, f->data, nlen) == 0)
        return p->family_type;
    switch (p->family_type) {
    case LK_METRIC_HISTOGRAM:
        if (has_suffix(name, nlen, f, "_bucket"))
            return LK_METRIC_HISTOGRAM;
        /* fall through */
    case LK_METRIC_SUMMARY:
        if (has_suffix(name, nlen, f, "_sum") || has_suffix(name, nlen, f, "_count"))
            return p->family_type;
        return LK_METRIC_UNTYPED;
    default:
        return LK_METRIC_UNTYPED;
    }
}

/* The line's strings and labels as one block: a stable lk_sample. */
static struct lk_sample *make_sample(const struct parser *p)
{
    size_t head = sizeof(struct lk_sample) + p->nlabels * sizeof(struct lk_label);
    struct lk_sample *s = malloc(head + p->strings.len);
    if (s == NULL)
        return NULL;
    struct lk_label *labels = (struct lk_label *)(s + 1);
    char *str = (char *)s + head;
    memcpy(str, p->strings.data, p->strings.len);
    for (size_t i = 0; i < p->nlabels; i++) {
        labels[i].name = str + p->offs[2 * i];
        labels[i].value = str + p->offs[2 * i + 1];
    }
    s->name = str;
    s->labels = labels;
    s->nlabels = p->nlabels;
    return s;
}

/*
 * One sample line. 1 with |*out| set, 0 when the line is not kept or not
 * readable (|*invalid| tells which), LK_ENOMEM.
 */
static int parse_sample(struct parser *p, struct cur *c, struct lk_sample **out, bool *invalid)
{
    const char *name = c->s;
    size_t nlen = read_name(c, true);
    double value;
    int64_t ts = 0;
    const char *tok;
    size_t n;

    *invalid = true;
    if (nlen == 0)
        return 0;
    if (p->keep != NULL && !p->keep(name, nlen, p->arg)) {
        *invalid = false;
        return 0;
    }
    lk_buf_reset(&p->strings);
    p->nlabels = 0;
    if (push_string(p, name, nlen) < 0)
        return LK_ENOMEM;
    const char *after_name = c->s;
    skip_blanks(c);
    if (c->s < c->end && *c->s == '{') {
        int rc = read_labels(p, c);
        if (rc <= 0)
            return rc;
    } else {
        c->s = after_name;
    }
    if (c->s == c->end || !is_blank(*c->s))
        return 0;
    skip_blanks(c);
    n = read_token(c, &tok);
    if (!parse_value(tok, n, &value))
        return 0;
    skip_blanks(c);
    bool has_ts = c->s < c->end;
    if (has_ts) {
        n = read_token(c, &tok);
        if (!parse_timestamp(tok, n, &ts))
            return 0;
        skip_blanks(c);
        if (c->s < c->end)
            return 0;
    }
    struct lk_sample *s = make_sample(p);
    if (s == NULL)
        return LK_ENOMEM;
    s->value = value;
    s->has_timestamp = has_ts;
    s->timestamp_ms = ts;
    s->type = type_of(p, name, nlen);
    *invalid = false;
    *out = s;
    return 1;
}

static enum lk_metric_type type_word(const char *w, size_t n)
{
    static const struct {
        const char *word;
        enum lk_metric_type type;
    } words[] = {
        {"counter", LK_METRIC_COUNTER},     {"gauge", LK_METRIC_GAUGE},
        {"histogram", LK_METRIC_HISTOGRAM}, {"summary", LK_METRIC_SUMMARY},
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i].word) == n && memcmp(words[i].word, w, n) == 0)
            return words[i].type;
    return LK_METRIC_UNTYPED;
}

/* A comment line (after its '#'): only "# TYPE name type" matters. */
static int parse_comment(struct parser *p, struct cur *c)
{
    const char *tok, *name;
    size_t n;

    skip_blanks(c);
    n = read_token(c, &tok);
    if (n != 4 || memcmp(tok, "TYPE", 4) != 0)
        return 0;
    lk_buf_reset(&p->family);
    p->family_type = LK_METRIC_UNTYPED;
    skip_blanks(c);
    name = c->s;
    n = read_name(c, true);
    if (n == 0 || c->s == c->end || !is_blank(*c->s))
        return 0;
    skip_blanks(c);
    size_t tn = read_token(c, &tok);
    enum lk_metric_type type = type_word(tok, tn);
    if (lk_buf_append(&p->family, name, n) < 0)
        return LK_ENOMEM;
    p->family_type = type;
    return 0;
}

static int add_sample(lk_metrics_text *t, struct lk_sample *s)
{
    if (t->n == t->cap) {
        if (t->n == LK_METRICS_TEXT_MAX_SAMPLES) {
            free(s);
            return LK_E2BIG;
        }
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct lk_sample **ns = realloc(t->samples, cap * sizeof(*ns));
        if (ns == NULL) {
            free(s);
            return LK_ENOMEM;
        }
        t->samples = ns;
        t->cap = cap;
    }
    t->samples[t->n++] = s;
    return 0;
}

static int parse_line(struct parser *p, lk_metrics_text *t, struct cur *c, size_t lineno)
{
    struct lk_sample *s = NULL;
    bool invalid;

    skip_blanks(c);
    if (c->s == c->end)
        return 0;
    if (*c->s == '#') {
        c->s++;
        return parse_comment(p, c);
    }
    int rc = parse_sample(p, c, &s, &invalid);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (invalid && t->invalid++ == 0)
            t->first_invalid = lineno;
        return 0;
    }
    return add_sample(t, s);
}

int lk_metrics_text_parse(const char *text, size_t len, lk_metrics_text_keep_fn keep,
                          void *arg, lk_metrics_text **out)
{
    struct parser p = {.keep = keep, .arg = arg};
    lk_metrics_text *t = calloc(1, sizeof(*t));
    /* |text| may be NULL when |len| is 0. */
    const char *s = text, *end = len > 0 ? text + len : text;
    size_t lineno = 0;
    int rc = 0;

    if (t == NULL)
        return LK_ENOMEM;
    lk_buf_init(&p.strings, SCRATCH_MAX);
    lk_buf_init(&p.family, SCRATCH_MAX);
    while (s < end && rc == 0) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eol = nl != NULL ? nl : end;
        struct cur c = {s, eol};
        if (eol > s && eol[-1] == '\r')
            c.end--;
        rc = parse_line(&p, t, &c, ++lineno);
        s = nl != NULL ? nl + 1 : end;
    }
    lk_buf_fini(&p.strings);
    lk_buf_fini(&p.family);
    if (rc < 0) {
        lk_metrics_text_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

void lk_metrics_text_destroy(lk_metrics_text *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->samples[i]);
    free(t->samples);
    free(t);
}

size_t lk_metrics_text_count(const lk_metrics_text *t)
{
    return t->n;
}

const struct lk_sample *lk_metrics_text_sample(const lk_metrics_text *t, size_t i)
{
    return t->samples[i];
}

size_t lk_metrics_text_invalid_lines(const lk_metrics_text *t)
{
    return t->invalid;
}

size_t lk_metrics_text_first_invalid_line(const lk_metrics_text *t)
{
    return t->first_invalid;
}

const char *lk_sample_label(const struct lk_sample *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}

const struct lk_sample *lk_metrics_text_find(const lk_metrics_text *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->samples[i]->nlabels == 0 && strcmp(t->samples[i]->name, name) == 0)
            return t->samples[i];
    return NULL;
}
