/*
 * HTTP client: libcurl's multi_socket API on the libuv loop.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when it
 * next needs a call (CURLMOPT_TIMERFUNCTION). Each watched socket gets a
 * heap |struct sock| holding its uv_poll_t, attached to curl's socket entry
 * with curl_multi_assign. When curl says CURL_POLL_REMOVE it is about to
 * close the socket or park the connection in its cache: the poll is stopped
 * and closed at once (uv_close removes the fd from epoll/kqueue before curl
 * closes it), and the struct is freed in the close callback. curl may open a
 * new socket with the same fd number before that callback runs; it then gets
 * a new struct of its own, so a closing poll is never reused.
 *
 * User callbacks run only from deliver() and from close, never from inside a
 * curl callback, so they may post again or close the client.
 */
#include "core/http_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#define DEFAULT_MAX_CONNECTIONS 4
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_MAX_RESPONSE_BYTES (64 * 1024)
/* ms; a longer request timeout is clamped (curl takes a long). */
#define MAX_TIMEOUT_MS (INT64_C(10) * 365 * 24 * 3600 * 1000)
#define MAX_RETRY_AFTER_MS (INT64_C(365) * 24 * 3600 * 1000)
#define MAX_RETRY_AFTER_VALUE 128 /* bytes of a Retry-After value looked at */

struct sock {
    uv_poll_t poll;
    lk_http_client *c;
    struct sock *prev, *next; /* c->socks: polls not yet closing */
    curl_socket_t fd;
};

struct req {
    lk_http_client *c;
    struct req *prev, *next; /* c->reqs: transfers added to the multi */
    CURL *easy;
    struct curl_slist *hdrs;
    struct iovec *iov; /* copy of the caller's array; bytes referenced */
    size_t niov;
    size_t total; /* body bytes */
    size_t idx;   /* read position: iov[idx], |off| bytes in */
    size_t off;
    lk_buf resp;
    bool truncated;
    int64_t retry_after_ms;
    lk_http_cb cb;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
};

struct lk_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct req *reqs;
    struct sock *socks;
    unsigned handles_open; /* the timer and every sock not yet closed */
    bool closing;
    char *user_agent;
    char *ca_file;
    char *cert_file;
    char *key_file;
    bool verify;
    long connect_timeout_ms;
    size_t max_response_bytes;
    void (*done)(void *arg);
    void *done_arg;
};

/* Clients alive; libcurl is initialised while it is non-zero. Loop thread
 * only, like everything else in this file. */
static unsigned global_refs;

static int global_ref(void)
{
    if (global_refs == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lk_log(LK_LOG_ERROR, "libcurl failed to initialise");
        return LK_ESYS;
    }
    global_refs++;
    return 0;
}

static void global_unref(void)
{
    if (--global_refs == 0)
        curl_global_cleanup();
}

/* ---- validation ---- */

static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

bool lk_http_header_is_valid(const char *name, const char *value)
{
    if (name == NULL || value == NULL || name[0] == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!is_tchar((unsigned char)*p))
            return false;
    return strpbrk(value, "\r\n") == NULL;
}

static bool has_http_scheme(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 ||
           strncasecmp(url, "https://", 8) == 0;
}

bool lk_http_url_is_valid(const char *url)
{
    if (url == NULL || !has_http_scheme(url))
        return false;
    CURLU *u = curl_url();
    if (u == NULL)
        return false;
    char *host = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
              host != NULL && host[0] != '\0';
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

int64_t lk__http_retry_after_ms(const char *value, time_t now)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value == '\0')
        return -1;
    if (isdigit((unsigned char)*value)) {
        int64_t secs = 0;
        const char *p = value;
        for (; isdigit((unsigned char)*p); p++) {
            if (secs < MAX_RETRY_AFTER_MS / 1000)
                secs = secs * 10 + (*p - '0');
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0') {
            int64_t ms = secs * 1000;
            return ms > MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : ms;
        }
        /* Digits followed by more: maybe a date such as "06 Nov 1994 ...". */
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    if (t <= now)
        return 0;
    double ms = ((double)t - (double)now) * 1000.0;
    return ms > (double)MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : (int64_t)ms;
}

/* ---- curl's data callbacks (no calls back into curl from these) ---- */

static size_t read_cb(char *dst, size_t size, size_t nitems, void *arg)
{
    struct req *r = arg;
    size_t room = size * nitems, done = 0;

    while (done < room && r->idx < r->niov) {
        const struct iovec *v = &r->iov[r->idx];
        size_t take = v->iov_len - r->off;
        if (take > room - done)
            take = room - done;
        if (take > 0)
            memcpy(dst + done, (const char *)v->iov_base + r->off, take);
        done += take;
        r->off += take;
        if (r->off == v->iov_len) {
            r->idx++;
            r->off = 0;
        }
    }
    return done;
}

/* curl rewinds the body when it resends a request, e.g. on a kept-alive
 * connection the server closed just as the request went out. */
static int seek_cb(void *arg, curl_off_t offset, int origin)
{
    struct req *r = arg;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->total)
        return CURL_SEEKFUNC_FAIL;
    size_t left = (size_t)offset;
    r->idx = 0;
    r->off = 0;
    while (r->idx < r->niov && left >= r->iov[r->idx].iov_len) {
        left -= r->iov[r->idx].iov_len;
        r->idx++;
    }
    r->off = left;
    return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *p, size_t size, size_t nitems, void *arg)
{
    struct req *r = arg;
    size_t len = size * nitems;
    size_t room = r->resp.max - r->resp.len;
    size_t take = len < room ? len : room;

    /* The rest is read and dropped so that the connection stays usable. */
    if (take < len)
        r->truncated = true;
    if (take > 0 && lk_buf_append(&r->resp, p, take) < 0)
        r->truncated = true;
    return len;
}

static size_t header_cb(char *p, size_t size, size_t nitems, void *arg)
{
    struct req *r = arg;
    size_t len = size * nitems;
    static const char key[] = "retry-after:";

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a 1xx): forget the previous one's headers. */
        r->retry_after_ms = -1;
    } else if (len > sizeof(key) - 1 && strncasecmp(p, key, sizeof(key) - 1) == 0) {
        char v[MAX_RETRY_AFTER_VALUE];
        size_t n = len - (sizeof(key) - 1);
        if (n >= sizeof(v))
            n = sizeof(v) - 1;
        memcpy(v, p + sizeof(key) - 1, n);
        while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' ||
                         v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        v[n] = '\0';
        r->retry_after_ms = lk__http_retry_after_ms(v, time(NULL));
    }
    return len;
}

/* ---- completion ---- */

static void req_free(struct req *r)
{
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    lk_buf_fini(&r->resp);
    free(r->iov);
    free(r);
}

static void req_unlink(struct req *r)
{
    lk_http_client *c = r->c;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Reports |r|'s outcome and frees it. |r| is out of the multi and unlinked,
 * so the callback may post or close freely. */
static void req_finish(struct req *r, CURLcode cc, int err, const char *error)
{
    struct lk_http_result res = {
        .err = err,
        .curl_code = (int)cc,
        .error = "",
        .retry_after_ms = r->retry_after_ms,
        .content_type = "",
        .body = r->resp.data != NULL ? r->resp.data : (const uint8_t *)"",
        .body_len = r->resp.len,
        .body_truncated = r->truncated,
    };
    if (cc == CURLE_OK) {
        long code = 0;
        char *ct = NULL;
        if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
            res.http_status = (int)code;
        if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
            ct != NULL)
            res.content_type = ct;
    } else {
        res.error = error != NULL ? error
                    : r->errbuf[0] != '\0' ? r->errbuf
                                           : curl_easy_strerror(cc);
    }
    r->cb(r->arg, &res);
    req_free(r);
}

/* Hands every finished transfer to its callback. Stops when a callback
 * closes the client (|c->multi| is then gone): close has delivered or
 * cancelled the rest itself. */
static void deliver(lk_http_client *c)
{
    CURLMsg *m;
    int left;

    while (c->multi != NULL && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode cc = m->data.result; /* |m| dies with remove_handle */
        char *priv = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
            priv == NULL) {
            lk_log(LK_LOG_ERROR, "http client: finished transfer without request");
            continue;
        }
        struct req *r = (struct req *)priv;
        CURLMcode mc = curl_multi_remove_handle(c->multi, easy);
        if (mc != CURLM_OK)
            lk_log(LK_LOG_ERROR, "http client: curl_multi_remove_handle failed",
                   LK_S("error", curl_multi_strerror(mc)));
        req_unlink(r);
        req_finish(r, cc, cc == CURLE_OK ? 0 : LK_EIO, NULL);
    }
}

static void drive(lk_http_client *c, curl_socket_t fd, int flags)
{
    int running;
    if (c->multi == NULL)
        return;
    CURLMcode mc = curl_multi_socket_action(c->multi, fd, flags, &running);
    if (mc != CURLM_OK)
        lk_log(LK_LOG_ERROR, "http client: curl_multi_socket_action failed",
               LK_S("error", curl_multi_strerror(mc)));
    deliver(c);
}

/* ---- loop handles ---- */

static void client_free(lk_http_client *c)
{
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c->user_agent);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c);
    global_unref();
    if (done != NULL)
        done(arg);
}

static void handle_closed(lk_http_client *c)
{
    if (--c->handles_open == 0 && c->closing)
        client_free(c);
}

static void sock_closed(uv_handle_t *h)
{
    struct sock *s = h->data;
    lk_http_client *c = s->c;
    free(s);
    handle_closed(c);
}

static void sock_close(struct sock *s)
{
    lk_http_client *c = s->c;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct sock *s = h->data;
    int flags = 0;

    if (status < 0) {
        /* libuv has stopped this poll: let curl find the error itself. */
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT | CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* |s| may be closed during the call; it is freed only later. */
    drive(s->c, s->fd, flags);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    lk_http_client *c = userp;
    struct sock *s = socketp;
    int rc;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL)
            sock_close(s);
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            /* Returning -1 would kill the whole multi handle; the transfer
             * ends at its timeout instead. */
            lk_log(LK_LOG_ERROR, "http client: out of memory for a socket");
            return 0;
        }
        rc = uv_poll_init_socket(c->loop, &s->poll, fd);
        if (rc != 0) {
            lk_log(LK_LOG_ERROR, "http client: uv_poll_init_socket failed",
                   LK_S("error", uv_strerror(rc)));
            free(s);
            return 0;
        }
        s->poll.data = s;
        s->c = c;
        s->fd = fd;
        s->next = c->socks;
        if (c->socks != NULL)
            c->socks->prev = s;
        c->socks = s;
        c->handles_open++;
        CURLMcode mc = curl_multi_assign(c->multi, fd, s);
        if (mc != CURLM_OK) {
            lk_log(LK_LOG_ERROR, "http client: curl_multi_assign failed",
                   LK_S("error", curl_multi_strerror(mc)));
            sock_close(s);
            return 0;
        }
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    rc = uv_poll_start(&s->poll, events, poll_cb);
    if (rc != 0)
        lk_log(LK_LOG_ERROR, "http client: uv_poll_start failed",
               LK_S("error", uv_strerror(rc)));
    return 0;
}

static void timer_fired(uv_timer_t *t)
{
    drive(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* curl asks to be called in |timeout_ms| (-1: never). It must not be called
 * from here, so even 0 goes through the timer, on the next loop turn. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    lk_http_client *c = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    int rc = uv_timer_start(&c->timer, timer_fired, (uint64_t)timeout_ms, 0);
    if (rc != 0) {
        lk_log(LK_LOG_ERROR, "http client: uv_timer_start failed",
               LK_S("error", uv_strerror(rc)));
        return -1;
    }
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* ---- public ---- */

static int check_readable(const char *what, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        lk_log(LK_LOG_ERROR, "http client: cannot read TLS file",
               LK_S("file", what) LK_S("path", path));
        return LK_EIO;
    }
    fclose(f);
    return 0;
}

static int dup_opt(char **dst, const char *src)
{
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst == NULL ? LK_ENOMEM : 0;
}

#define MSET(c, opt, val)                                                      \
    (curl_multi_setopt((c)->multi, (opt), (val)) == CURLM_OK)

int lk_http_client_create(lk_http_client **out, uv_loop_t *loop,
                          const struct lk_http_client_opts *o)
{
    const struct lk_tls_config *tls = o->tls;
    int rc;

    if (tls != NULL && (tls->cert_file == NULL) != (tls->key_file == NULL)) {
        lk_log(LK_LOG_ERROR, "http client: cert_file and key_file go together");
        return LK_EINVAL;
    }
    if (tls != NULL) {
        if ((tls->ca_file != NULL && (rc = check_readable("ca_file", tls->ca_file)) < 0) ||
            (tls->cert_file != NULL && (rc = check_readable("cert_file", tls->cert_file)) < 0) ||
            (tls->key_file != NULL && (rc = check_readable("key_file", tls->key_file)) < 0))
            return rc;
    }
    lk_http_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return LK_ENOMEM;
    c->loop = loop;
    c->verify = tls == NULL || !tls->insecure_skip_verify;
    c->connect_timeout_ms = o->connect_timeout_ms == 0 ? DEFAULT_CONNECT_TIMEOUT_MS
                            : o->connect_timeout_ms > INT32_MAX ? INT32_MAX
                                                                : (long)o->connect_timeout_ms;
    c->max_response_bytes = o->max_response_bytes != 0 ? o->max_response_bytes
                                                       : DEFAULT_MAX_RESPONSE_BYTES;
    if (dup_opt(&c->user_agent, o->user_agent) < 0 ||
        (tls != NULL && (dup_opt(&c->ca_file, tls->ca_file) < 0 ||
                         dup_opt(&c->cert_file, tls->cert_file) < 0 ||
                         dup_opt(&c->key_file, tls->key_file) < 0))) {
        rc = LK_ENOMEM;
        goto err_strings;
    }
    rc = global_ref();
    if (rc < 0)
        goto err_strings;
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        rc = LK_ENOMEM;
        goto err_global;
    }
    long per_host = o->max_connections != 0 ? (long)o->max_connections
                                            : DEFAULT_MAX_CONNECTIONS;
    if (!MSET(c, CURLMOPT_SOCKETFUNCTION, socket_cb) ||
        !MSET(c, CURLMOPT_SOCKETDATA, c) ||
        !MSET(c, CURLMOPT_TIMERFUNCTION, timer_cb) ||
        !MSET(c, CURLMOPT_TIMERDATA, c) ||
        !MSET(c, CURLMOPT_MAX_HOST_CONNECTIONS, per_host) ||
        /* Idle connections kept for reuse, across hosts. */
        !MSET(c, CURLMOPT_MAXCONNECTS, per_host * 4) ||
        !MSET(c, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING)) {
        lk_log(LK_LOG_ERROR, "http client: curl_multi_setopt failed");
        rc = LK_ESYS;
        goto err_multi;
    }
    rc = uv_timer_init(loop, &c->timer);
    if (rc != 0) {
        lk_log(LK_LOG_ERROR, "http client: uv_timer_init failed",
               LK_S("error", uv_strerror(rc)));
        rc = LK_ESYS;
        goto err_multi;
    }
    c->timer.data = c;
    c->handles_open = 1;
    *out = c;
    return 0;
err_multi:
    curl_multi_cleanup(c->multi);
err_global:
    global_unref();
err_strings:
    free(c->user_agent);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    free(c);
    return rc;
}

static bool has_header(const struct lk_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return true;
    return false;
}

/* Appends "Name: value" to |*list| (copied by curl). A value-less header is
 * written "Name;", which curl sends as "Name:"; "Name:" alone would remove
 * the header instead. */
static int slist_add(struct curl_slist **list, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char stack[512];
    char *line = len <= sizeof(stack) ? stack : malloc(len);
    if (line == NULL)
        return LK_ENOMEM;
    if (value[0] == '\0')
        snprintf(line, len, "%s;", name);
    else
        snprintf(line, len, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(*list, line);
    if (line != stack)
        free(line);
    if (l == NULL)
        return LK_ENOMEM;
    *list = l;
    return 0;
}

#define ESET(e, opt, val) (curl_easy_setopt((e), (opt), (val)) == CURLE_OK)

int lk_http_client_post(lk_http_client *c, const char *url,
                        const struct lk_header *headers, size_t nheaders,
                        const struct iovec *body, size_t n,
                        uint64_t timeout_ms, lk_http_cb cb, void *arg)
{
    int rc = LK_ENOMEM;

    if (c->closing)
        return LK_ECLOSED;
    if (url == NULL || !has_http_scheme(url))
        return LK_EINVAL;
    for (size_t i = 0; i < nheaders; i++)
        if (!lk_http_header_is_valid(headers[i].name, headers[i].value))
            return LK_EINVAL;

    struct req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return LK_ENOMEM;
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    r->retry_after_ms = -1;
    lk_buf_init(&r->resp, c->max_response_bytes);
    if (n > 0) {
        r->iov = malloc(n * sizeof(*r->iov));
        if (r->iov == NULL)
            goto err_req;
        memcpy(r->iov, body, n * sizeof(*r->iov));
        r->niov = n;
        for (size_t i = 0; i < n; i++)
            r->total += body[i].iov_len;
    }
    /* No "Expect: 100-continue" round trip before large bodies, and no
     * form-urlencoded Content-Type that curl would add to a POST. */
    r->hdrs = curl_slist_append(NULL, "Expect:");
    if (r->hdrs == NULL)
        goto err_req;
    if (!has_header(headers, nheaders, "Content-Type")) {
        struct curl_slist *l = curl_slist_append(r->hdrs, "Content-Type:");
        if (l == NULL)
            goto err_req;
        r->hdrs = l;
    }
    for (size_t i = 0; i < nheaders; i++)
        if (slist_add(&r->hdrs, headers[i].name, headers[i].value) < 0)
            goto err_req;

    r->easy = curl_easy_init();
    if (r->easy == NULL)
        goto err_req;
    CURL *e = r->easy;
    long tmo = timeout_ms > (uint64_t)MAX_TIMEOUT_MS ? (long)MAX_TIMEOUT_MS
                                                     : (long)timeout_ms;
    bool ok = ESET(e, CURLOPT_URL, url) && ESET(e, CURLOPT_PRIVATE, (void *)r) &&
              ESET(e, CURLOPT_NOSIGNAL, 1L) &&
              ESET(e, CURLOPT_ERRORBUFFER, r->errbuf) &&
              ESET(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) &&
#if LIBCURL_VERSION_NUM >= 0x075500
              ESET(e, CURLOPT_PROTOCOLS_STR, "http,https") &&
#else
              ESET(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) &&
#endif
              ESET(e, CURLOPT_POST, 1L) &&
              ESET(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->total) &&
              ESET(e, CURLOPT_READFUNCTION, read_cb) && ESET(e, CURLOPT_READDATA, r) &&
              ESET(e, CURLOPT_SEEKFUNCTION, seek_cb) && ESET(e, CURLOPT_SEEKDATA, r) &&
              ESET(e, CURLOPT_WRITEFUNCTION, write_cb) && ESET(e, CURLOPT_WRITEDATA, r) &&
              ESET(e, CURLOPT_HEADERFUNCTION, header_cb) &&
              ESET(e, CURLOPT_HEADERDATA, r) && ESET(e, CURLOPT_HTTPHEADER, r->hdrs) &&
              ESET(e, CURLOPT_TIMEOUT_MS, tmo) &&
              ESET(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms) &&
              ESET(e, CURLOPT_TCP_KEEPALIVE, 1L) &&
              ESET(e, CURLOPT_SSL_VERIFYPEER, c->verify ? 1L : 0L) &&
              ESET(e, CURLOPT_SSL_VERIFYHOST, c->verify ? 2L : 0L) &&
              (c->user_agent == NULL || ESET(e, CURLOPT_USERAGENT, c->user_agent)) &&
              (c->ca_file == NULL || ESET(e, CURLOPT_CAINFO, c->ca_file)) &&
              (c->cert_file == NULL || ESET(e, CURLOPT_SSLCERT, c->cert_file)) &&
              (c->key_file == NULL || ESET(e, CURLOPT_SSLKEY, c->key_file));
    if (!ok) {
        lk_log(LK_LOG_ERROR, "http client: curl_easy_setopt failed",
               LK_S("url", url));
        rc = LK_EIO;
        goto err_req;
    }
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        lk_log(LK_LOG_ERROR, "http client: curl_multi_add_handle failed",
               LK_S("url", url) LK_S("error", curl_multi_strerror(mc)));
        rc = mc == CURLM_OUT_OF_MEMORY ? LK_ENOMEM : LK_EIO;
        goto err_req;
    }
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    return 0;
err_req:
    req_free(r);
    return rc;
}

void lk_http_client_close(lk_http_client *c, void (*done)(void *arg),
                          void *arg)
{
    if (c->closing) {
        lk_log(LK_LOG_ERROR, "http client: closed twice");
        return;
    }
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    /* Transfers that already finished report their real outcome. Their
     * callbacks see a closing client: posts fail, a second close is refused. */
    deliver(c);
    while (c->reqs != NULL) {
        struct req *r = c->reqs;
        CURLMcode mc = curl_multi_remove_handle(c->multi, r->easy);
        if (mc != CURLM_OK)
            lk_log(LK_LOG_ERROR, "http client: curl_multi_remove_handle failed",
                   LK_S("error", curl_multi_strerror(mc)));
        req_unlink(r);
        req_finish(r, CURLE_ABORTED_BY_CALLBACK, LK_ECANCELED, "canceled");
    }
    /* Closes the cached connections; curl reports their sockets removed. */
    CURLMcode mc = curl_multi_cleanup(c->multi);
    if (mc != CURLM_OK)
        lk_log(LK_LOG_ERROR, "http client: curl_multi_cleanup failed",
               LK_S("error", curl_multi_strerror(mc)));
    c->multi = NULL;
    while (c->socks != NULL)
        sock_close(c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}
