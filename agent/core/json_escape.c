#include "core/json_escape.h"

#include "core/utf8.h"

int lk_json_escape(lk_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    int rc = lk_buf_append(b, "\"", 1);
    size_t i = 0;

    while (rc == 0 && i < n) {
        /* Most bytes need nothing: append each run of them in one go. */
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' &&
               p[run] != '\\')
            run++;
        if (run > i) {
            rc = lk_buf_append(b, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t len = lk_utf8_seq_len(p + i, n - i);
            if (len == 0) {
                rc = lk_buf_append(b, "\xef\xbf\xbd", 3);
                i++;
            } else {
                rc = lk_buf_append(b, p + i, len);
                i += len;
            }
            continue;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = lk_buf_append(b, e, 2);
        } else if (c == '\n') {
            rc = lk_buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            rc = lk_buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            rc = lk_buf_append(b, "\\t", 2);
        } else {
            /* Control bytes and DEL (the run above stops at nothing else). */
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = lk_buf_append(b, e, 6);
        }
        i++;
    }
    if (rc == 0)
        rc = lk_buf_append(b, "\"", 1);
    return rc;
}
