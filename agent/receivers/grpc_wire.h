/* gRPC over HTTP/2 wire details that need no socket: message framing,
 * grpc-message escaping, status details, grpc-timeout. */
#ifndef LK_RECEIVERS_GRPC_WIRE_H
#define LK_RECEIVERS_GRPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#include "core/grpc_status.h"

#define LK_GRPC_PREFIX_LEN 5

/* Reads the 5-byte prefix at |p| (n >= 5): compressed flag and message length. */
void lk_grpc_prefix_read(const uint8_t *p, bool *compressed, uint32_t *len);
void lk_grpc_prefix_write(uint8_t out[LK_GRPC_PREFIX_LEN], bool compressed,
                          uint32_t len);

/*
 * Splits a complete unary request body into its one message. Returns 0 and
 * sets |msg|, |msglen|, |compressed|; LK_EPROTO when the body is shorter than
 * its prefix says, carries a flag other than 0/1, or holds more than one
 * message.
 */
int lk_grpc_unary_message(const uint8_t *p, size_t n, const uint8_t **msg,
                          size_t *msglen, bool *compressed);

/* Appends |msg| percent-encoded as grpc-message requires (RFC 3986 style for
 * bytes outside 0x20..0x7e and '%'). */
int lk_grpc_message_escape(lk_buf *out, const char *msg);

/*
 * Appends the unpadded base64 of a google.rpc.Status {code, message,
 * details: [RetryInfo{retry_delay}]} for the grpc-status-details-bin trailer.
 * |retry_delay_ms| < 0 leaves out the RetryInfo detail.
 */
int lk_grpc_status_details(lk_buf *out, int code, const char *message,
                           int64_t retry_delay_ms);

/* Parses a grpc-timeout value ("100m", "5S", at most 8 digits and one unit
 * of H M S m u n) into milliseconds, rounding up. LK_EINVAL if malformed. */
int lk_grpc_timeout_parse(const char *v, size_t n, uint64_t *ms);

#endif
