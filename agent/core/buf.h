/* A growable byte buffer with a hard cap, embedded by value. */
#ifndef LK_CORE_BUF_H
#define LK_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fields are read-only for users; change them only through the functions. */
typedef struct lk_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max; /* bytes; growth past this fails with LK_E2BIG */
    uint8_t charge; /* enum lk_mem_kind its capacity is charged to; 0: none */
    uint8_t strict; /* growth past the memory limit fails (LK_EMEMLIMIT) */
} lk_buf;

void lk_buf_init(lk_buf *b, size_t max);
/*
 * From now on the buffer's capacity counts in the memory budget
 * (core/membudget.h) as |kind|, what it holds already included. |strict|:
 * growth that would pass the limit fails with LK_EMEMLIMIT (data a client is
 * sending: refuse it); otherwise it is charged whatever the limit (data
 * lookout holds already). lk_buf_fini and lk_buf_detach release the charge.
 */
void lk_buf_charge(lk_buf *b, int kind, bool strict);
/* A new cap for growth, keeping the buffer's charge (lk_buf_charge); memory
 * past |max| is given back. The buffer must hold at most |max| bytes. */
void lk_buf_set_max(lk_buf *b, size_t max);
/* Gives back capacity past |keep| bytes (and past len), e.g. a scratch
 * buffer that grew for one large request. */
void lk_buf_shrink(lk_buf *b, size_t keep);
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
/* Transfers ownership of the bytes to the caller (free() them); |b| becomes
 * empty (and its memory uncharged). */
uint8_t *lk_buf_detach(lk_buf *b, size_t *len);
void lk_buf_fini(lk_buf *b);

#endif
