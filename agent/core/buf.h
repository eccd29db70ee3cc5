/* A growable byte buffer with a hard cap, embedded by value. */
#ifndef LK_CORE_BUF_H
#define LK_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Fields are read-only for users; change them only through the functions. */
typedef struct lk_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* bytes; growth past this fails with LK_E2BIG */
} lk_buf;

void lk_buf_init(lk_buf *b, size_t max);
/* Makes room for |extra| more bytes. LK_E2BIG past |max|, LK_ENOMEM. */
int lk_buf_reserve(lk_buf *b, size_t extra);
int lk_buf_append(lk_buf *b, const void *p, size_t n);
int lk_buf_append_str(lk_buf *b, const char *s);
/* printf-style append; not for hot paths. */
int lk_buf_printf(lk_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drops the first |n| bytes (n <= len). */
void lk_buf_consume(lk_buf *b, size_t n);
void lk_buf_reset(lk_buf *b);
/* Keeps the first |n| bytes (n <= len); the memory stays. */
void lk_buf_truncate(lk_buf *b, size_t n);
/* Transfers ownership of the bytes to the caller (free() them); |b| becomes empty. */
uint8_t *lk_buf_detach(lk_buf *b, size_t *len);
void lk_buf_fini(lk_buf *b);

#endif
