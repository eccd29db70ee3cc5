#include "core/base64.h"

int lk_base64_append(lk_buf *b, const uint8_t *p, size_t n, bool pad)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n == 0)
        return 0;
    int rc = lk_buf_reserve(b, (n + 2) / 3 * 4);
    if (rc < 0)
        return rc;
    char *o = (char *)b->data + b->len;
    size_t i = 0, k = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[k++] = tbl[v >> 18];
        o[k++] = tbl[(v >> 12) & 63];
        o[k++] = tbl[(v >> 6) & 63];
        o[k++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        o[k++] = tbl[v >> 18];
        o[k++] = tbl[(v >> 12) & 63];
        if (pad) {
            o[k++] = '=';
            o[k++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        o[k++] = tbl[v >> 18];
        o[k++] = tbl[(v >> 12) & 63];
        o[k++] = tbl[(v >> 6) & 63];
        if (pad)
            o[k++] = '=';
    }
    b->len += k;
    return 0;
}
