#include "core/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"

int lk_endpoint_split(const char *endpoint, char *host, size_t hostlen,
                      int *port)
{
    const char *colon;
    const char *h = endpoint;
    size_t hlen;

    if (endpoint[0] == '[') {
        const char *end = strchr(endpoint, ']');
        if (end == NULL || end[1] != ':')
            return LK_EINVAL;
        h = endpoint + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(endpoint, ':');
        if (colon == NULL)
            return LK_EINVAL;
        hlen = (size_t)(colon - endpoint);
    }
    if (hlen == 0 || hlen >= hostlen)
        return LK_EINVAL;
    char *endp;
    long p = strtol(colon + 1, &endp, 10);
    if (colon[1] == '\0' || *endp != '\0' || p < 0 || p > 65535)
        return LK_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

static int resolve(uv_loop_t *loop, const char *host, int port,
                   struct sockaddr_storage *ss)
{
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    /* A name such as "localhost": resolved once, synchronously, at start-up. */
    uv_getaddrinfo_t req;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (uv_getaddrinfo(loop, &req, NULL, host, portstr, &hints) != 0 ||
        req.addrinfo == NULL)
        return LK_EINVAL;
    memcpy(ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
    return 0;
}

int lk_listener_start(lk_listener *l, uv_loop_t *loop, const char *endpoint,
                      int backlog, uv_connection_cb on_conn, void *data)
{
    int rc;
    const char *what = "bind";

    memset(l, 0, sizeof(*l));
    if (strncmp(endpoint, "unix://", 7) == 0) {
        const char *path = endpoint + 7;
        if (path[0] != '/')
            return LK_EINVAL;
        l->path = strdup(path);
        if (l->path == NULL)
            return LK_ENOMEM;
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            free(l->path);
            l->path = NULL;
            return LK_EINVAL;
        }
        l->is_unix = 1;
        uv_pipe_init(loop, &l->h.pipe, 0);
        l->h.pipe.data = data;
        unlink(path); /* a stale socket from an earlier run */
        rc = uv_pipe_bind(&l->h.pipe, path);
    } else {
        char host[256];
        int port;
        struct sockaddr_storage ss;
        if (lk_endpoint_split(endpoint, host, sizeof(host), &port) < 0 ||
            resolve(loop, host, port, &ss) < 0)
            return LK_EINVAL;
        uv_tcp_init(loop, &l->h.tcp);
        l->h.tcp.data = data;
        rc = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&ss, 0);
    }
    if (rc == 0) {
        what = "listen";
        rc = uv_listen((uv_stream_t *)&l->h, backlog, on_conn);
    }
    if (rc != 0) {
        lk_log(LK_LOG_ERROR, "cannot listen", LK_S("endpoint", endpoint)
               LK_S("op", what) LK_S("error", uv_strerror(rc)));
        return LK_ESYS; /* the caller closes the handle, with its own callback */
    }
    return 0;
}

int lk_listener_is_open(const lk_listener *l)
{
    const uv_handle_t *h = (const uv_handle_t *)&l->h;
    return uv_handle_get_type(h) != UV_UNKNOWN_HANDLE && !uv_is_closing(h);
}

void lk_listener_close(lk_listener *l, uv_close_cb close_cb)
{
    if (l->path != NULL) {
        unlink(l->path);
        free(l->path);
        l->path = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&l->h))
        uv_close((uv_handle_t *)&l->h, close_cb);
}

uv_stream_t *lk_listener_accept(lk_listener *l, uv_loop_t *loop)
{
    uv_stream_t *s;

    if (l->is_unix) {
        uv_pipe_t *p = malloc(sizeof(*p));
        if (p == NULL)
            return NULL;
        uv_pipe_init(loop, p, 0);
        s = (uv_stream_t *)p;
    } else {
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t == NULL)
            return NULL;
        uv_tcp_init(loop, t);
        s = (uv_stream_t *)t;
    }
    if (uv_accept((uv_stream_t *)&l->h, s) != 0) {
        uv_close((uv_handle_t *)s, (uv_close_cb)free);
        return NULL;
    }
    if (!l->is_unix)
        uv_tcp_nodelay((uv_tcp_t *)s, 1);
    return s;
}

const char *lk_conn_close_reason_name(enum lk_conn_close_reason why)
{
    static const char *const names[LK_CONN_CLOSE_REASONS] = {"handshake_timeout",
                                                             "idle_timeout", "evicted"};
    return (unsigned)why < LK_CONN_CLOSE_REASONS ? names[why] : "unknown";
}

void lk_conn_close_counters(lk_metrics *m, const char *name, const char *help,
                            const char *labels, lk_counter *out[LK_CONN_CLOSE_REASONS])
{
    for (int i = 0; i < LK_CONN_CLOSE_REASONS; i++) {
        char l[320];
        snprintf(l, sizeof(l), "%s%sreason=\"%s\"", labels, labels[0] != '\0' ? "," : "",
                 lk_conn_close_reason_name((enum lk_conn_close_reason)i));
        out[i] = lk_metrics_counter(m, name, help, l);
    }
}
