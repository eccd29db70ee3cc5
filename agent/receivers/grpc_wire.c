#include "receivers/grpc_wire.h"

#include <string.h>

#include "core/base64.h"
#include "core/err.h"
#include "core/pbwire.h"

void lk_grpc_prefix_read(const uint8_t *p, bool *compressed, uint32_t *len)
{
    *compressed = p[0] != 0;
    *len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 |
           (uint32_t)p[4];
}

void lk_grpc_prefix_write(uint8_t out[LK_GRPC_PREFIX_LEN], bool compressed,
                          uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

int lk_grpc_unary_message(const uint8_t *p, size_t n, const uint8_t **msg,
                          size_t *msglen, bool *compressed)
{
    uint32_t len;

    if (n < LK_GRPC_PREFIX_LEN || p[0] > 1)
        return LK_EPROTO;
    lk_grpc_prefix_read(p, compressed, &len);
    if ((size_t)len != n - LK_GRPC_PREFIX_LEN)
        return LK_EPROTO;
    *msg = p + LK_GRPC_PREFIX_LEN;
    *msglen = len;
    return 0;
}

int lk_grpc_message_escape(lk_buf *out, const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *s = (const unsigned char *)msg; *s; s++) {
        int rc;
        if (*s < 0x20 || *s > 0x7e || *s == '%') {
            char e[3] = {'%', hex[*s >> 4], hex[*s & 15]};
            rc = lk_buf_append(out, e, 3);
        } else {
            rc = lk_buf_append(out, s, 1);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int lk_grpc_status_details(lk_buf *out, int code, const char *message,
                           int64_t retry_delay_ms)
{
    static const char retry_type[] = "type.googleapis.com/google.rpc.RetryInfo";
    uint8_t small[64];
    lk_buf status, any, info;
    int rc;

    lk_buf_init(&status, 64 * 1024);
    lk_buf_init(&any, 1024);
    lk_buf_init(&info, 1024);
    /* google.rpc.Status: code = 1 (int32), message = 2, details = 3 (Any). */
    small[0] = 1 << 3;
    size_t n = 1 + lk_pb_put_varint(small + 1, (uint64_t)(int64_t)code);
    rc = lk_buf_append(&status, small, n);
    if (rc == 0 && message != NULL && message[0] != '\0')
        rc = lk_pb_append_len_field(&status, 2, message, strlen(message));
    if (rc == 0 && retry_delay_ms >= 0) {
        /* google.protobuf.Duration: seconds = 1, nanos = 2. */
        uint8_t d[32];
        size_t dn = 0;
        int64_t secs = retry_delay_ms / 1000;
        int64_t nanos = (retry_delay_ms % 1000) * 1000000;
        if (secs != 0) {
            d[dn++] = 1 << 3;
            dn += lk_pb_put_varint(d + dn, (uint64_t)secs);
        }
        if (nanos != 0) {
            d[dn++] = 2 << 3;
            dn += lk_pb_put_varint(d + dn, (uint64_t)nanos);
        }
        rc = lk_pb_append_len_field(&info, 1, d, dn); /* RetryInfo.retry_delay */
        if (rc == 0)
            rc = lk_pb_append_len_field(&any, 1, retry_type, sizeof(retry_type) - 1);
        if (rc == 0)
            rc = lk_pb_append_len_field(&any, 2, info.data, info.len);
        if (rc == 0)
            rc = lk_pb_append_len_field(&status, 3, any.data, any.len);
    }
    if (rc == 0)
        rc = lk_base64_append(out, status.data, status.len, false);
    lk_buf_fini(&info);
    lk_buf_fini(&any);
    lk_buf_fini(&status);
    return rc;
}

int lk_grpc_timeout_parse(const char *v, size_t n, uint64_t *ms)
{
    uint64_t x = 0;
    size_t i;

    if (n < 2 || n > 9)
        return LK_EINVAL;
    for (i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return LK_EINVAL;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    switch (v[n - 1]) {
    case 'H':
        *ms = x * 3600000;
        break;
    case 'M':
        *ms = x * 60000;
        break;
    case 'S':
        *ms = x * 1000;
        break;
    case 'm':
        *ms = x;
        break;
    case 'u':
        *ms = (x + 999) / 1000;
        break;
    case 'n':
        *ms = (x + 999999) / 1000000;
        break;
    default:
        return LK_EINVAL;
    }
    return 0;
}
