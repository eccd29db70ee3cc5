/* Appending formatted text to a caller's fixed char buffer, truncating
 * silently: used to build error reasons on failure paths. */
#ifndef LK_CORE_TEXT_H
#define LK_CORE_TEXT_H

#include <stddef.h>

struct lk_text {
    char *buf;  /* NUL-terminated while cap > 0 */
    size_t cap; /* bytes at buf; 0 makes every append a no-op */
    size_t len; /* < cap */
};

/* Appends printf-style; output past the capacity is dropped. */
void lk_text_put(struct lk_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
