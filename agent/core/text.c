#include "core/text.h"

#include <stdarg.h>
#include <stdio.h>

void lk_text_put(struct lk_text *t, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (t->cap == 0 || t->len + 1 >= t->cap)
        return;
    va_start(ap, fmt);
    r = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    t->len += (size_t)r;
    if (t->len >= t->cap)
        t->len = t->cap - 1;
}
