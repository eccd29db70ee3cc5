/*
 * libFuzzer target for the line receiver's framing and OTLP encoding: the
 * input is a byte stream written to a line socket, cut into reads at places
 * chosen by its first bytes, framed with a small max_line, and every line
 * encoded as the receiver does.
 *
 * Besides "never crash": the framer never offers 0 bytes of space and never
 * holds more than max_line + 1 bytes; no line it hands over is empty or longer
 * than max_line; and every request the encoder produces passes the OTLP
 * validator (valid UTF-8 in every string, ids of the right length) with
 * exactly as many log records as lines went in, so the receiver can never
 * queue an item a backend would refuse. When the first byte asks for Loki
 * entries (LK_FORM_LOKI_ENTRIES), the item must become a push body that
 * protobuf-c unpacks with one entry per line, and turned back into OTLP it
 * must pass the validator likewise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/loki_encode.h"
#include "loki/push.pb-c.h"
#include "pipeline/item.h"
#include "pipeline/loki_entries.h"
#include "receivers/lines.h"
#include "receivers/otlp_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINE 300

struct sink {
    struct lk_lines_encoder *enc;
    struct lk_lines_origin origin;
    uint32_t lines;
};

static void on_line(void *arg, const uint8_t *line, size_t len, bool truncated)
{
    struct sink *s = arg;
    if (len == 0 || len > MAX_LINE) {
        fprintf(stderr, "framer handed over a line of %zu bytes\n", len);
        abort();
    }
    if (lk_lines_encoder_add(s->enc, &s->origin, line, len, 1764064800000000000ull) == 0)
        s->lines++;
}

static void check_push(const uint8_t *item, size_t len, uint32_t n)
{
    static const char *const labels[] = {"service_name", "host", "source"};
    static struct lk_loki_encoder *enc;
    struct lk_loki_encode_opts o = {.format = LK_LOKI_PROTOBUF, .labels = labels, .nlabels = 3};
    struct iovec iov = {(void *)item, len};
    uint8_t form = LK_FORM_LOKI_ENTRIES;
    uint64_t records, streams, entries = 0;
    lk_buf out;
    if (enc == NULL && lk_loki_encoder_create(&enc) != 0)
        abort();
    lk_buf_init(&out, 1u << 30);
    if (lk_loki_encode_forms(enc, &o, &iov, &form, 1, &out, &records, &streams) != 0 ||
        records != n) {
        fprintf(stderr, "entries item does not encode\n");
        abort();
    }
    Logproto__PushRequest *p = logproto__push_request__unpack(NULL, out.len, out.data);
    if (p == NULL) {
        fprintf(stderr, "push body of entries does not unpack\n");
        abort();
    }
    for (size_t i = 0; i < p->n_streams; i++)
        entries += p->streams[i]->n_entries;
    if (entries != n) {
        fprintf(stderr, "%llu entries for %u lines\n", (unsigned long long)entries, n);
        abort();
    }
    logproto__push_request__free_unpacked(p, NULL);
    lk_buf_fini(&out);
}

static void flush(struct sink *s)
{
    const uint8_t *req;
    size_t len;
    uint32_t n = lk_lines_encoder_finish(s->enc, &req, &len);
    if (n != s->lines) {
        fprintf(stderr, "encoder holds %u records for %u lines\n", n, s->lines);
        abort();
    }
    lk_buf otlp, scratch;
    lk_buf_init(&otlp, 1u << 30);
    lk_buf_init(&scratch, 1u << 30);
    if (n > 0 && s->enc->form == LK_FORM_LOKI_ENTRIES) {
        check_push(req, len, n);
        if (lk_loki_entries_to_otlp(req, len, &otlp, &scratch) != 0) {
            fprintf(stderr, "entries do not turn back into OTLP\n");
            abort();
        }
        req = otlp.data;
        len = otlp.len;
    }
    if (n > 0) {
        struct lk_otlp_counts c;
        char why[256];
        int rc = lk_otlp_validate(LK_SIGNAL_LOGS, req, len, &c, why, sizeof(why));
        if (rc != 0 || c.items != n) {
            fprintf(stderr, "encoder output invalid (%d, %llu items of %u): %s\n", rc,
                    (unsigned long long)c.items, n, why);
            abort();
        }
    }
    lk_buf_fini(&otlp);
    lk_buf_fini(&scratch);
    lk_lines_encoder_reset(s->enc);
    s->lines = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct lk_header labels[] = {{"team", "fuzz"}};
    struct lk_lines_receiver_config cfg = {
        .format = LK_LINES_AUTO,
        .labels = (struct lk_header *)labels,
        .nlabels = 1,
        .max_line_bytes = MAX_LINE,
    };
    struct lk_lines_encoder enc;
    if (size < 2 || lk_lines_encoder_init(&enc, &cfg, "host", "lines/fuzz") < 0)
        return 0;
    /* A process name cut inside a UTF-8 sequence, as the kernel may. */
    struct sink s = {.enc = &enc,
                     .origin = {.cred = {.pid = 42, .uid = 1000, .gid = 1000},
                                .process_name = "\xd0\xbf\xd1"}};
    unsigned step = data[0] % 64 + 1; /* bytes per read */
    enc.want_entries = (data[0] & 0x40) != 0;
    data++;
    size--;

    struct lk_line_framer f;
    lk_line_framer_init(&f, MAX_LINE);
    size_t pos = 0;
    while (pos < size) {
        uint8_t *p;
        size_t room;
        if (lk_line_framer_space(&f, &p, &room) < 0)
            break;
        if (room == 0) {
            fprintf(stderr, "framer offered no space\n");
            abort();
        }
        size_t k = size - pos < step ? size - pos : step;
        if (k > room)
            k = room;
        memcpy(p, data + pos, k);
        pos += k;
        lk_line_framer_commit(&f, k, false, on_line, &s);
        if (f.len > MAX_LINE + 1) {
            fprintf(stderr, "framer holds %zu bytes\n", f.len);
            abort();
        }
        if (pos % 512 < step)
            flush(&s); /* requests of a few reads each */
    }
    lk_line_framer_commit(&f, 0, true, on_line, &s);
    flush(&s);
    lk_line_framer_fini(&f);
    lk_lines_encoder_fini(&enc);
    return 0;
}
