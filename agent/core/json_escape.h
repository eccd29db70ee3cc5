/* JSON string escaping shared by logs and encoders. */
#ifndef LK_CORE_JSON_ESCAPE_H
#define LK_CORE_JSON_ESCAPE_H

#include <stddef.h>

#include "core/buf.h"

/* Appends |s| (|n| bytes) to |b| as a quoted JSON string. Invalid UTF-8 bytes
 * are written as U+FFFD. Returns 0 or the lk_buf error. */
int lk_json_escape(lk_buf *b, const char *s, size_t n);

#endif
