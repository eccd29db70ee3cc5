/* Fuzzes what the gRPC receiver does with a request body and its headers:
 * message framing, gzip/deflate inflation under a cap, grpc-timeout parsing,
 * then the protobuf validator on whatever came out. */
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/gzip.h"
#include "receivers/grpc_wire.h"
#include "receivers/otlp_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *msg;
    size_t msglen;
    bool compressed;
    uint64_t ms;
    char why[128];
    struct lk_otlp_counts counts;

    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    /* The first 9 bytes double as a grpc-timeout header value. */
    (void)lk_grpc_timeout_parse((const char *)data, size < 9 ? size : 9, &ms);
    if (lk_grpc_unary_message(data, size, &msg, &msglen, &compressed) < 0)
        return 0;
    lk_buf out;
    lk_buf_init(&out, 1 << 20);
    if (compressed) {
        /* A small cap makes the bomb path reachable with small inputs. */
        size_t cap = (mode & 0x80) ? 4096 : (1 << 20);
        if (lk_gzip_inflate(msg, msglen, cap, mode & 1, &out) < 0) {
            lk_buf_fini(&out);
            return 0;
        }
        msg = out.data;
        msglen = out.len;
    }
    (void)lk_otlp_validate((enum lk_signal)((mode >> 1) % LK_SIGNAL_COUNT), msg,
                           msglen, &counts, why, sizeof(why));
    lk_buf_fini(&out);
    return 0;
}
