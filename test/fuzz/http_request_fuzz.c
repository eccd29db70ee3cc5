/*
 * libFuzzer target: arbitrary bytes through the HTTP/1.1 request parser as
 * httpd.c drives it (its parser callbacks, limits, header storage and
 * request-target splitting), without sockets. httpd.c is included to reach
 * its static functions; nothing in it runs on a loop here.
 *
 * Input: the first byte picks the read size (1..64 bytes per feed, so that
 * every item straddles reads); the rest is the byte stream of a connection.
 */
#include "core/httpd.c"

#include <stdio.h>

#define FUZZ_MAX_HEADER_BYTES 512
#define FUZZ_MAX_BODY_BYTES 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const struct lk_httpd_req *r)
{
    if (r->method == NULL || r->path == NULL || r->query == NULL)
        abort();
    if (r->hbuf.len > FUZZ_MAX_HEADER_BYTES || r->body.len > FUZZ_MAX_BODY_BYTES)
        abort();
    size_t sum = strlen(r->path) + strlen(r->query);
    for (size_t i = 0; i < lk_httpd_req_header_count(r); i++) {
        const char *name, *value;
        if (!lk_httpd_req_header_at(r, i, &name, &value))
            abort();
        sum += strlen(name) + strlen(value);
        if (lk_httpd_req_header(r, name) == NULL)
            abort();
    }
    size_t blen;
    const uint8_t *body = lk_httpd_req_body(r, &blen);
    if (blen > 0 && body == NULL)
        abort();
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 64) + 1;
    data++;
    size--;

    lk_httpd h;
    memset(&h, 0, sizeof(h));
    h.name = "fuzz";
    h.max_header_bytes = FUZZ_MAX_HEADER_BYTES;
    h.max_body_bytes = FUZZ_MAX_BODY_BYTES;
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return 0;
    c->h = &h;
    c->req.c = c;
    lk_buf_init(&c->req.hbuf, h.max_header_bytes);
    lk_buf_init(&c->req.body, h.max_body_bytes);
    req_reset(&c->req);
    lk_hp_init(&c->parser, &parser_settings, c);

    bool dead = false;
    for (size_t off = 0; off < size && !dead; off += step) {
        size_t n = size - off < step ? size - off : step;
        /* An exact-size copy: reads past the piece are caught by ASan. */
        char *piece = malloc(n);
        if (piece == NULL)
            break;
        memcpy(piece, data + off, n);
        size_t pos = 0;
        while (pos < n) {
            size_t used;
            enum lk_hp_status st =
                lk_hp_execute(&c->parser, piece + pos, n - pos, &used);
            if (used > n - pos)
                abort();
            pos += used;
            if (st == LK_HP_OK)
                break;
            if (st == LK_HP_PAUSED) {
                check_request(&c->req);
                if (!c->req.keep_alive) {
                    dead = true; /* the server would close here */
                    break;
                }
                req_reset(&c->req);
                lk_hp_resume(&c->parser);
                continue;
            }
            /* What the server would answer; a status must always exist. */
            int status = c->req.err_status;
            if (status == 0)
                status = lk_hp_error_is_header_overflow(&c->parser) ? 431 : 400;
            if (lk_httpd_reason(status)[0] == '\0')
                abort();
            dead = true;
            break;
        }
        free(piece);
    }
    req_fini(&c->req);
    free(c);
    return 0;
}
