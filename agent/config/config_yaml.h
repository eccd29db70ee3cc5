/*
 * Internal to agent/config: YAML text -> a node tree in which every node
 * remembers its file, line and column, plus the error list that config.c
 * fills while it validates the tree. Nothing outside agent/config uses this.
 */
#ifndef LK_CONFIG_CONFIG_YAML_H
#define LK_CONFIG_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>

/* Errors: "file:line:column: message" lines, sorted by position. */
struct lk__config_err {
    unsigned line, col; /* 1-based; line 0: about the whole file */
    size_t seq;         /* insertion order, keeps the sort stable */
    char *msg;
};

/* Embedded by value; fields are private to config_yaml.c. */
typedef struct lk__config_diag {
    const char *file; /* borrowed */
    struct lk__config_err *v;
    size_t n, cap;
    size_t dropped; /* errors past LK__CONFIG_MAX_ERRORS */
    unsigned drop_line, drop_col;
    bool oom;
    char show[4][112]; /* ring of buffers for lk__config_diag_show() */
    unsigned show_next;
} lk__config_diag;

#define LK__CONFIG_MAX_ERRORS 100

void lk__config_diag_init(lk__config_diag *d, const char *file);
void lk__config_diag_fini(lk__config_diag *d);
/* Adds one error at |line|:|col|. Control characters in the message are
 * escaped so that each error stays on one line. Allocation failure sets
 * |d->oom|. */
void lk__config_diag_addf(lk__config_diag *d, unsigned line, unsigned col,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Returns |s| as a short printable string for a message: cut at 80 bytes with
 * "...", control characters escaped. Valid until four more calls. */
const char *lk__config_diag_show(lk__config_diag *d, const char *s);
/* Returns the sorted error lines as one malloc'd text, each line ending in
 * '\n' (caller frees), or NULL when there are none or memory ran out. */
char *lk__config_diag_text(lk__config_diag *d);

enum lk__ynode_kind {
    LK_YNODE_SCALAR,
    LK_YNODE_MAP,
    LK_YNODE_SEQ,
    LK_YNODE_BAD /* already reported (an alias, a NUL byte): skip silently */
};

typedef struct lk__ynode lk__ynode;
struct lk__ynode {
    enum lk__ynode_kind kind;
    const char *file;   /* owned by the document */
    unsigned line, col; /* 1-based, where the node starts */
    char *str;          /* SCALAR: the value, NUL-terminated, no NUL inside */
    size_t len;         /* SCALAR: strlen(str) */
    bool plain;         /* SCALAR: unquoted, so "", "~" and "null" mean null */
    bool dup;           /* MAP key repeating an earlier key: skip its pair */
    lk__ynode **kids;   /* MAP: key, value, key, value, ...; SEQ: items */
    size_t nkids;
    lk__ynode *all_next; /* chain of every node of the document */
};

typedef struct lk__ydoc {
    char *file;
    lk__ynode *root; /* NULL for an empty document */
    lk__ynode *all;
} lk__ydoc;

/*
 * Parses |len| bytes of |text| into |*out| (free with lk__config_ydoc_destroy).
 * Syntax errors, aliases, NUL characters, duplicate keys and extra documents
 * are added to |d|; a syntax error stops the parse, the others do not.
 * Returns 0 when the tree is usable (|d| may still hold errors about it),
 * LK_ECONFIG after a syntax error or past 64 levels of nesting (|*out| is
 * NULL), LK_ENOMEM.
 */
int lk__config_yaml_parse(lk__ydoc **out, const char *file, const char *text,
                          size_t len, lk__config_diag *d);
void lk__config_ydoc_destroy(lk__ydoc *doc); /* NULL-safe */

/* True for a plain empty, "~", "null", "Null" or "NULL" scalar. */
bool lk__config_ynode_is_null(const lk__ynode *n);
/* "a mapping", "a list", "an empty value", "a string" (for messages). */
const char *lk__config_ynode_kind_name(const lk__ynode *n);

#endif
