#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/membudget.h"

void lk_buf_init(lk_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->charge = LK_MEM_NONE;
    b->strict = 0;
}

void lk_buf_charge(lk_buf *b, int kind, bool strict)
{
    if (b->charge != LK_MEM_NONE)
        lk_mem_release(b->charge, b->cap);
    b->charge = (uint8_t)kind;
    b->strict = strict;
    if (kind != LK_MEM_NONE)
        lk_mem_charge(kind, b->cap);
}

static void uncharge(lk_buf *b)
{
    if (b->charge != LK_MEM_NONE)
        lk_mem_release(b->charge, b->cap);
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
    if (b->charge != LK_MEM_NONE) {
        size_t more = ncap - b->cap;
        if (!b->strict)
            lk_mem_charge(b->charge, more);
        else if (!lk_mem_try(b->charge, more)) {
            /* Exactly what is needed may still fit where doubling does not. */
            ncap = need;
            more = ncap - b->cap;
            if (!lk_mem_try(b->charge, more))
                return LK_EMEMLIMIT;
        }
        uint8_t *p = realloc(b->data, ncap);
        if (p == NULL) {
            lk_mem_release(b->charge, more);
            return LK_ENOMEM;
        }
        b->data = p;
        b->cap = ncap;
        return 0;
    }
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
    uncharge(b);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void lk_buf_fini(lk_buf *b)
{
    uncharge(b);
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

void lk_buf_shrink(lk_buf *b, size_t keep)
{
    if (keep < b->len)
        keep = b->len;
    if (b->cap <= keep)
        return;
    if (keep == 0) {
        uncharge(b);
        free(b->data);
        b->data = NULL;
        b->cap = 0;
        return;
    }
    uint8_t *p = realloc(b->data, keep);
    if (p == NULL)
        return;
    if (b->charge != LK_MEM_NONE)
        lk_mem_release(b->charge, b->cap - keep);
    b->data = p;
    b->cap = keep;
}

void lk_buf_set_max(lk_buf *b, size_t max)
{
    lk_buf_shrink(b, max);
    b->max = max;
}
