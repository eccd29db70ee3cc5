/* Base64 (RFC 4648 standard alphabet) encoding. */
#ifndef LK_CORE_BASE64_H
#define LK_CORE_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Appends the base64 of the |n| bytes at |p| to |b|, with '=' padding when
 * |pad| (unpadded is what gRPC binary metadata wants). No NUL is appended.
 * 0, LK_E2BIG or LK_ENOMEM. */
int lk_base64_append(lk_buf *b, const uint8_t *p, size_t n, bool pad);

#endif
