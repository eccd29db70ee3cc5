/*
 * Outbound unary gRPC calls over gRPC C core, bridged into the libuv loop.
 *
 * This is the only module that calls gRPC C core (its C API changes between
 * minor releases). Threads: all functions below run on the loop thread, and so
 * do the callbacks. gRPC runs its own threads; one thread of ours blocks on the
 * client's completion queue and hands each finished call to the loop through a
 * uv_async_t.
 */
#ifndef LK_EXPORTERS_GRPC_CLIENT_H
#define LK_EXPORTERS_GRPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <uv.h>

#include "config/config.h"
#include "core/grpc_status.h" /* enum lk_grpc_status: lk_grpc_result.status */

typedef struct lk_grpc_client lk_grpc_client;

struct lk_grpc_client_opts {
    const char *target;              /* "host:port"; copied */
    const struct lk_tls_config *tls; /* NULL or !enabled: plaintext */
    const struct lk_header *headers; /* metadata sent on every call; copied */
    size_t nheaders;
    /* Requests go out with grpc-encoding: gzip, and the caller compresses
     * each message itself: lk_grpc_client_call's bytes are one gzip member,
     * sent as they are (gRPC core would deflate on the calling thread, the
     * loop, at a level of its own). */
    bool gzip;
    const char *user_agent; /* user-agent prefix ("lookout/0.1.0"), or NULL */
};

/* Pointers are valid during the callback only. */
struct lk_grpc_result {
    int status;          /* gRPC status code 0..16 */
    const char *message; /* grpc-message; "" if none */
    /* ms, from google.rpc.RetryInfo in grpc-status-details-bin; -1 if none */
    int64_t retry_after_ms;
    const uint8_t *response; /* response message (status 0 only) */
    size_t response_len;
};

typedef void (*lk_grpc_call_cb)(void *arg, const struct lk_grpc_result *r);

/*
 * Creates a client for |o->target| on |loop|. Nothing of gRPC runs until the
 * first call, which creates the channel and the poller thread (and takes
 * gRPC's own threads into the process); nothing connects until then either.
 * TLS files (ca_file, cert_file, key_file) are read here. On success sets
 * |*out| (release with lk_grpc_client_close) and returns 0. Errors: LK_EINVAL
 * (no target, only one of cert_file / key_file, a TLS file with no PEM block,
 * a header name or value gRPC would refuse), LK_EUNSUPPORTED
 * (tls.insecure_skip_verify), LK_EIO (a TLS file unreadable), LK_ENOMEM,
 * LK_ESYS (async handle). Each failure is logged, with the file's path where
 * there is one.
 */
int lk_grpc_client_create(lk_grpc_client **out, uv_loop_t *loop,
                          const struct lk_grpc_client_opts *o);

/*
 * Starts a unary call of |method| ("/pkg.Service/Method"). The request message
 * is the concatenation of |iov| (gzip-compressed already when the client was
 * created with |gzip|, unless empty); its bytes are copied before this returns, so the
 * caller may free them at once. The first call creates the channel and the
 * poller thread. The deadline is |timeout_ms| from now
 * (0: no deadline). The call does not wait for a connection: a target that is
 * down fails with UNAVAILABLE.
 * On success returns 0, and |cb(arg, result)| runs exactly once, later, on the
 * loop thread (never from inside this function). A status 0 without a
 * response message is reported as INTERNAL. Errors (|cb| never runs):
 * LK_ECLOSED after lk_grpc_client_close, LK_EINVAL (|method| does not start
 * with '/', gRPC refused to start the call or the TLS credentials), LK_ENOMEM,
 * LK_ESYS (the poller thread of the first call). A call that fails to set the
 * client up leaves it as it was: the next one tries again.
 */
int lk_grpc_client_call(lk_grpc_client *c, const char *method,
                        const struct iovec *iov, size_t iovcnt,
                        uint64_t timeout_ms, lk_grpc_call_cb cb, void *arg);

/*
 * Cancels the calls in flight (their callbacks run on the loop with status
 * CANCELLED, unless a call had already finished with another status), shuts
 * down the channel, the completion queue and the poller thread, and then runs
 * |done(arg)| on the loop once every resource is released (the async handle
 * closed and this client's gRPC reference dropped); |c| is freed before |done|
 * runs. Call it once; it may be called from inside a call's callback. |done|
 * may be NULL.
 */
void lk_grpc_client_close(lk_grpc_client *c, void (*done)(void *arg),
                          void *arg);

/* Internal, for tests: whether the first call has set gRPC up. */
bool lk__grpc_client_is_started(const lk_grpc_client *c);

/*
 * Internal, exposed for tests and fuzzing: reads a serialized google.rpc.Status
 * (the value of grpc-status-details-bin) and returns the retry delay of its
 * first google.rpc.RetryInfo detail in ms (rounded up, negative delays as 0,
 * saturating), or -1 if there is none or the bytes are malformed. Reads only
 * |p[0..len)|.
 */
int64_t lk__grpc_status_retry_after_ms(const uint8_t *p, size_t len);

#endif
