#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

void lk_buf_init(lk_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

int lk_buf_reserve(lk_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return LK_E2BIG;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max)
        ncap = b->max;
    uint8_t *p = realloc(b->data, ncap);
    if (p == NULL)
        return LK_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

int lk_buf_append(lk_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = lk_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int lk_buf_append_str(lk_buf *b, const char *s)
{
    return lk_buf_append(b, s, strlen(s));
}

int lk_buf_printf(lk_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return LK_EINVAL;
    if ((size_t)n < sizeof(small))
        return lk_buf_append(b, small, (size_t)n);
    int rc = lk_buf_reserve(b, (size_t)n + 1);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void lk_buf_consume(lk_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void lk_buf_reset(lk_buf *b)
{
    b->len = 0;
}

uint8_t *lk_buf_detach(lk_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void lk_buf_fini(lk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void lk_buf_truncate(lk_buf *b, size_t n)
{
    if (n < b->len)
        b->len = n;
}
