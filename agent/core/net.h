/* Listening sockets on the loop from endpoint strings. */
#ifndef LK_CORE_NET_H
#define LK_CORE_NET_H

#include <uv.h>

#include "core/selfmetrics.h"

/* A listener is a TCP or Unix stream server handle, embedded by value. */
typedef struct lk_listener {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    int is_unix;
    char *path; /* unix socket path (owned), removed on close */
} lk_listener;

/*
 * Binds and listens on |endpoint|: "host:port" (IPv4 or a name resolved
 * synchronously at start-up), "[v6addr]:port", or "unix:///abs/path" (an
 * existing socket file at that path is replaced). |l->h| gets |data| in its
 * data field and |on_conn| as the connection callback.
 * Returns 0, LK_EINVAL for a malformed endpoint (no handle initialised), or
 * LK_ESYS (with a log line naming the endpoint and the system error). After
 * LK_ESYS the handle is initialised and still open: the caller closes it with
 * lk_listener_close() and frees the memory holding |l| in its callback.
 * lk_listener_is_open() tells the two failures apart.
 */
int lk_listener_start(lk_listener *l, uv_loop_t *loop, const char *endpoint,
                      int backlog, uv_connection_cb on_conn, void *data);
/* The backlog every listener asks for (the kernel caps it at somaxconn). A
 * burst of connections (hundreds of clients reconnecting at once, or a flood
 * of idle ones) must not overflow it: a SYN dropped there costs the client
 * the kernel's 1 s retransmit, for a connection lookout would have accepted
 * (or evicted an idle one for) within a loop turn. */
#define LK_LISTEN_BACKLOG 1024
/* True once the handle is initialised (after LK_ESYS too) and not closing. */
int lk_listener_is_open(const lk_listener *l);
/* Closes the handle; |close_cb| gets the handle (may be NULL). Frees |path|. */
void lk_listener_close(lk_listener *l, uv_close_cb close_cb);
/* Accepts one pending connection into a new heap stream handle (tcp or pipe
 * to match the listener), initialised on |loop|. NULL on failure. Free the
 * returned handle in its close callback. */
uv_stream_t *lk_listener_accept(lk_listener *l, uv_loop_t *loop);
/* Why a server closed a client connection on its own: the `reason` label of
 * lookout_receiver_connections_closed_total and its admin twin. */
enum lk_conn_close_reason {
    LK_CONN_CLOSED_HANDSHAKE, /* no complete first request within handshake_timeout */
    LK_CONN_CLOSED_IDLE,      /* no request (or, lines: no end of line) within idle_timeout */
    LK_CONN_CLOSED_EVICTED,   /* idle longest when a new connection needed its slot */
    LK_CONN_CLOSE_REASONS
};
/* "handshake_timeout", "idle_timeout", "evicted". */
const char *lk_conn_close_reason_name(enum lk_conn_close_reason why);
/* Registers the counter |name| for each reason, with |labels| (may be "")
 * and reason="..." as labels, into |out|. */
void lk_conn_close_counters(lk_metrics *m, const char *name, const char *help,
                            const char *labels, lk_counter *out[LK_CONN_CLOSE_REASONS]);

/* Splits "host:port" / "[v6]:port" into |host| (size |hostlen|) and |port|. */
int lk_endpoint_split(const char *endpoint, char *host, size_t hostlen,
                      int *port);

#endif
