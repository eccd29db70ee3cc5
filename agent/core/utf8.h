/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, max U+10FFFF). */
#ifndef LK_CORE_UTF8_H
#define LK_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when all |n| bytes at |p| are valid UTF-8. */
bool lk_utf8_is_valid(const uint8_t *p, size_t n);
/* Length of the valid sequence starting at |p| (1..4), or 0 if it is invalid
 * or truncated within |n|. */
size_t lk_utf8_seq_len(const uint8_t *p, size_t n);

#endif
