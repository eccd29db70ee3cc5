#include "config/config_yaml.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/buf.h"
#include "core/err.h"

/* ---- errors ---- */

void lk__config_diag_init(lk__config_diag *d, const char *file)
{
    memset(d, 0, sizeof(*d));
    d->file = file;
}

void lk__config_diag_fini(lk__config_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].msg);
    free(d->v);
    d->v = NULL;
    d->n = d->cap = 0;
}

/* Copies |n| bytes of |s| to |out| (room for 4 * n + 1), escaping control
 * characters as \xNN. Returns the length written. */
static size_t escape_ctl(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
    return o;
}

void lk__config_diag_addf(lk__config_diag *d, unsigned line, unsigned col,
                          const char *fmt, ...)
{
    if (d->n >= LK__CONFIG_MAX_ERRORS) {
        if (d->dropped++ == 0) {
            d->drop_line = line;
            d->drop_col = col;
        }
        return;
    }
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 8;
        struct lk__config_err *v = realloc(d->v, ncap * sizeof(*v));
        if (v == NULL) {
            d->oom = true;
            return;
        }
        d->v = v;
        d->cap = ncap;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        d->oom = true;
        return;
    }
    char *raw = malloc((size_t)n + 1);
    char *msg = malloc(4 * (size_t)n + 1);
    if (raw == NULL || msg == NULL) {
        free(raw);
        free(msg);
        d->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(raw, (size_t)n + 1, fmt, ap);
    va_end(ap);
    escape_ctl(msg, raw, (size_t)n);
    free(raw);
    d->v[d->n].line = line;
    d->v[d->n].col = col;
    d->v[d->n].seq = d->n;
    d->v[d->n].msg = msg;
    d->n++;
}

const char *lk__config_diag_show(lk__config_diag *d, const char *s)
{
    enum { SHOW_MAX = 80 };
    char *out = d->show[d->show_next];
    d->show_next = (d->show_next + 1) % 4;
    size_t n = strlen(s);
    bool cut = n > SHOW_MAX;
    if (cut) {
        n = SHOW_MAX;
        /* Do not end in the middle of a UTF-8 sequence. */
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    /* Escapes can grow the text fourfold: stop when the buffer would not
     * hold another escaped byte plus "...". */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 4 + 4 > sizeof(d->show[0])) {
            cut = true;
            break;
        }
        o += escape_ctl(out + o, s + i, 1);
    }
    if (cut)
        memcpy(out + o, "...", 4);
    else
        out[o] = '\0';
    return out;
}

static int err_cmp(const void *a, const void *b)
{
    const struct lk__config_err *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

char *lk__config_diag_text(lk__config_diag *d)
{
    if (d->n == 0 || d->oom)
        return NULL;
    qsort(d->v, d->n, sizeof(d->v[0]), err_cmp);
    lk_buf b;
    lk_buf_init(&b, SIZE_MAX / 2);
    int rc = 0;
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        const struct lk__config_err *e = &d->v[i];
        if (e->line == 0)
            rc = lk_buf_printf(&b, "%s: %s\n", d->file, e->msg);
        else
            rc = lk_buf_printf(&b, "%s:%u:%u: %s\n", d->file, e->line, e->col,
                               e->msg);
    }
    if (rc == 0 && d->dropped > 0)
        rc = lk_buf_printf(&b, "%s:%u:%u: too many errors; %zu more not shown\n",
                           d->file, d->drop_line, d->drop_col, d->dropped);
    if (rc == 0)
        rc = lk_buf_append(&b, "", 1);
    if (rc < 0) {
        lk_buf_fini(&b);
        return NULL;
    }
    return (char *)lk_buf_detach(&b, NULL);
}

/* ---- node tree ---- */

bool lk__config_ynode_is_null(const lk__ynode *n)
{
    if (n == NULL)
        return true;
    if (n->kind != LK_YNODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 ||
           strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
           strcmp(n->str, "NULL") == 0;
}

const char *lk__config_ynode_kind_name(const lk__ynode *n)
{
    if (lk__config_ynode_is_null(n))
        return "an empty value";
    switch (n->kind) {
    case LK_YNODE_MAP:
        return "a mapping";
    case LK_YNODE_SEQ:
        return "a list";
    default:
        return "a string";
    }
}

void lk__config_ydoc_destroy(lk__ydoc *doc)
{
    if (doc == NULL)
        return;
    /* The chain, not the tree, is walked: freeing never recurses, however
     * deeply the input nests. */
    lk__ynode *n = doc->all;
    while (n != NULL) {
        lk__ynode *next = n->all_next;
        free(n->str);
        free(n->kids);
        free(n);
        n = next;
    }
    free(doc->file);
    free(doc);
}

struct builder {
    lk__ydoc *doc;
    lk__config_diag *d;
    lk__ynode **stack; /* open mappings and sequences */
    size_t depth, cap;
    unsigned ndocs;
};

static lk__ynode *node_new(struct builder *b, enum lk__ynode_kind kind,
                           yaml_mark_t mark)
{
    lk__ynode *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->file = b->doc->file;
    /* libyaml counts from 0; editors and compilers count from 1. */
    n->line = (unsigned)mark.line + 1;
    n->col = (unsigned)mark.column + 1;
    n->all_next = b->doc->all;
    b->doc->all = n;
    return n;
}

static int kid_append(lk__ynode *parent, lk__ynode *kid)
{
    /* Capacity is implicit: powers of two from 4. */
    size_t n = parent->nkids;
    if (n >= 4 && (n & (n - 1)) == 0) {
        lk__ynode **k = realloc(parent->kids, 2 * n * sizeof(*k));
        if (k == NULL)
            return LK_ENOMEM;
        parent->kids = k;
    } else if (n == 0) {
        parent->kids = malloc(4 * sizeof(*parent->kids));
        if (parent->kids == NULL)
            return LK_ENOMEM;
    }
    parent->kids[parent->nkids++] = kid;
    return 0;
}

static int attach(struct builder *b, lk__ynode *n)
{
    if (b->depth == 0) {
        b->doc->root = n;
        return 0;
    }
    return kid_append(b->stack[b->depth - 1], n);
}

/* Deeper input is refused. A config needs six levels; libyaml spends time
 * quadratic in the depth, so without a bound "[[[[..." of 1 MB runs for hours. */
#define MAX_DEPTH 64

static int push(struct builder *b, lk__ynode *n)
{
    if (b->depth >= MAX_DEPTH) {
        lk__config_diag_addf(b->d, n->line, n->col,
                             "nesting deeper than %d levels", MAX_DEPTH);
        return LK_ECONFIG;
    }
    if (b->depth == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        lk__ynode **s = realloc(b->stack, ncap * sizeof(*s));
        if (s == NULL)
            return LK_ENOMEM;
        b->stack = s;
        b->cap = ncap;
    }
    b->stack[b->depth++] = n;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    const lk__ynode *x = *(const lk__ynode *const *)a;
    const lk__ynode *y = *(const lk__ynode *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->col < y->col ? -1 : x->col > y->col;
}

/* Marks every repeat of a key and reports it. Sorting keeps this
 * O(n log n) for mappings with very many keys. */
static int find_duplicates(struct builder *b, lk__ynode *map)
{
    size_t nkeys = map->nkids / 2;
    if (nkeys < 2)
        return 0;
    lk__ynode **keys = malloc(nkeys * sizeof(*keys));
    if (keys == NULL)
        return LK_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i + 1 < map->nkids; i += 2)
        if (map->kids[i]->kind == LK_YNODE_SCALAR)
            keys[n++] = map->kids[i];
    qsort(keys, n, sizeof(*keys), key_cmp);
    size_t first = 0;
    for (size_t i = 1; i < n; i++) {
        if (keys[i]->len == keys[first]->len &&
            memcmp(keys[i]->str, keys[first]->str, keys[i]->len) == 0) {
            keys[i]->dup = true;
            lk__config_diag_addf(b->d, keys[i]->line, keys[i]->col,
                                 "duplicate key '%s' (first at line %u, column %u)",
                                 lk__config_diag_show(b->d, keys[i]->str),
                                 keys[first]->line, keys[first]->col);
        } else {
            first = i;
        }
    }
    free(keys);
    return 0;
}

/* Line and column (1-based, in characters) of byte |off| of |text|. */
static void offset_position(const char *text, size_t len, size_t off,
                            unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void syntax_error(struct builder *b, yaml_parser_t *p, const char *text,
                         size_t len)
{
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_READER_ERROR) {
        unsigned line, col;
        offset_position(text, len, p->problem_offset, &line, &col);
        lk__config_diag_addf(b->d, line, col, "YAML syntax error: %s", problem);
        return;
    }
    unsigned line = (unsigned)p->problem_mark.line + 1;
    unsigned col = (unsigned)p->problem_mark.column + 1;
    if (p->context != NULL)
        lk__config_diag_addf(b->d, line, col,
                             "YAML syntax error: %s (%s that starts at line %u, column %u)",
                             problem, p->context,
                             (unsigned)p->context_mark.line + 1,
                             (unsigned)p->context_mark.column + 1);
    else
        lk__config_diag_addf(b->d, line, col, "YAML syntax error: %s", problem);
}

/* Handles one event. Returns 0, 1 at the end of the stream or of the first
 * document, LK_ECONFIG when the input nests too deeply, LK_ENOMEM. */
static int on_event(struct builder *b, yaml_event_t *ev)
{
    lk__ynode *n;
    int rc;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1) {
            lk__config_diag_addf(b->d, (unsigned)ev->start_mark.line + 1,
                                 (unsigned)ev->start_mark.column + 1,
                                 "only one YAML document is allowed in a config file");
            return 1;
        }
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_ALIAS_EVENT:
        n = node_new(b, LK_YNODE_BAD, ev->start_mark);
        if (n == NULL)
            return LK_ENOMEM;
        lk__config_diag_addf(b->d, n->line, n->col,
                             "YAML aliases ('*%s') are not supported; repeat the value instead",
                             lk__config_diag_show(b->d, (const char *)ev->data.alias.anchor));
        return attach(b, n);
    case YAML_SCALAR_EVENT:
        n = node_new(b, LK_YNODE_SCALAR, ev->start_mark);
        if (n == NULL)
            return LK_ENOMEM;
        n->len = ev->data.scalar.length;
        n->str = malloc(n->len + 1);
        if (n->str == NULL)
            return LK_ENOMEM;
        memcpy(n->str, ev->data.scalar.value, n->len);
        n->str[n->len] = '\0';
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (memchr(n->str, '\0', n->len) != NULL) {
            /* A "\0" escape: C strings cannot carry it. */
            n->kind = LK_YNODE_BAD;
            lk__config_diag_addf(b->d, n->line, n->col,
                                 "value contains a NUL character");
        }
        return attach(b, n);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        n = node_new(b,
                     ev->type == YAML_MAPPING_START_EVENT ? LK_YNODE_MAP
                                                          : LK_YNODE_SEQ,
                     ev->start_mark);
        if (n == NULL)
            return LK_ENOMEM;
        rc = attach(b, n);
        if (rc < 0)
            return rc;
        return push(b, n);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth == 0)
            return 0; /* libyaml never sends an unbalanced end */
        n = b->stack[--b->depth];
        if (n->kind == LK_YNODE_MAP)
            return find_duplicates(b, n);
        return 0;
    default:
        return 0;
    }
}

int lk__config_yaml_parse(lk__ydoc **out, const char *file, const char *text,
                          size_t len, lk__config_diag *d)
{
    struct builder b = {.d = d};
    yaml_parser_t p;
    int rc;

    *out = NULL;
    b.doc = calloc(1, sizeof(*b.doc));
    if (b.doc == NULL)
        return LK_ENOMEM;
    b.doc->file = strdup(file);
    if (b.doc->file == NULL) {
        rc = LK_ENOMEM;
        goto err_doc;
    }
    if (!yaml_parser_initialize(&p)) {
        rc = LK_ENOMEM;
        goto err_doc;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR) {
                rc = LK_ENOMEM;
            } else {
                syntax_error(&b, &p, text, len);
                rc = LK_ECONFIG;
            }
            goto err_parser;
        }
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (rc < 0)
            goto err_parser;
        if (rc == 1)
            break;
    }
    yaml_parser_delete(&p);
    free(b.stack);
    *out = b.doc;
    return 0;

err_parser:
    yaml_parser_delete(&p);
    free(b.stack);
err_doc:
    lk__config_ydoc_destroy(b.doc);
    return rc;
}
