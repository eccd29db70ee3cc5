/*
 * libFuzzer target for lk_loki_encode: the input is one
 * ExportLogsServiceRequest body, encoded in both formats with the default
 * labels plus `level` and a host.
 *
 * Besides "never crash": a success must be a well-formed body. Protobuf
 * output must unpack with protobuf-c (an independent decoder) into as many
 * streams and entries as the encoder reported; JSON output must parse with
 * jansson into as many streams. Any failure must be LK_EPROTO (the output
 * cap is far above what a fuzz input can produce), and both formats must
 * agree on it. The input is also fed as an LK_FORM_LOKI_ENTRIES item
 * (pipeline/loki_entries.h), as it is and turned back into OTLP. Both forms
 * are encoded once more without structured metadata (no entry may carry
 * any) and with small metadata limits (no entry may pass them).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "exporters/loki_encode.h"
#include "pipeline/item.h"
#include "loki/push.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const labels[] = {"service_name", "service_namespace",
                                     "deployment_environment", "host",
                                     "source", "level"};

static void check_protobuf(const lk_buf *out, uint64_t records,
                           uint64_t streams)
{
    Logproto__PushRequest *p =
        logproto__push_request__unpack(NULL, out->len, out->data);
    uint64_t entries = 0;

    if (p == NULL) {
        fprintf(stderr, "protobuf output does not unpack\n");
        abort();
    }
    for (size_t s = 0; s < p->n_streams; s++)
        entries += p->streams[s]->n_entries;
    if (p->n_streams != streams || entries != records) {
        fprintf(stderr, "streams %zu/%llu, entries %llu/%llu\n", p->n_streams,
                (unsigned long long)streams, (unsigned long long)entries,
                (unsigned long long)records);
        abort();
    }
    logproto__push_request__free_unpacked(p, NULL);
}

/* No entry of the protobuf body at |out| carries more than |max_n| pairs or
 * |max_bytes| bytes of structured metadata. */
static void check_md(const lk_buf *out, size_t max_n, size_t max_bytes)
{
    Logproto__PushRequest *p =
        logproto__push_request__unpack(NULL, out->len, out->data);

    if (p == NULL) {
        fprintf(stderr, "protobuf output does not unpack\n");
        abort();
    }
    for (size_t s = 0; s < p->n_streams; s++) {
        for (size_t k = 0; k < p->streams[s]->n_entries; k++) {
            const Logproto__EntryAdapter *e = p->streams[s]->entries[k];
            size_t bytes = 0;
            for (size_t m = 0; m < e->n_structuredmetadata; m++)
                bytes += strlen(e->structuredmetadata[m]->name) +
                         strlen(e->structuredmetadata[m]->value);
            if (e->n_structuredmetadata > max_n || bytes > max_bytes) {
                fprintf(stderr, "metadata: %zu pairs, %zu bytes\n",
                        e->n_structuredmetadata, bytes);
                abort();
            }
        }
    }
    logproto__push_request__free_unpacked(p, NULL);
}

static void check_json(const lk_buf *out, uint64_t streams)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)out->data, out->len, JSON_ALLOW_NUL,
                          &err);

    if (j == NULL || json_array_size(json_object_get(j, "streams")) != streams) {
        fprintf(stderr, "JSON output: %s\n", j == NULL ? err.text : "streams");
        abort();
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lk_loki_encoder *enc;
    struct lk_loki_encode_opts o = {
        .labels = labels,
        .nlabels = sizeof(labels) / sizeof(labels[0]),
        .host = "fuzzhost",
        .now_ns = 1700000000000000000ull,
    };
    struct iovec iov;
    uint64_t records, streams;
    uint8_t *body;
    lk_buf out;
    int rc, first_rc = 0;

    /* One encoder for the whole run, as the exporter keeps one: reuse
     * across inputs is part of what is fuzzed. */
    if (enc == NULL && lk_loki_encoder_create(&enc) != 0)
        abort();
    /* An exact-size copy lets ASan catch any read past the body. */
    body = malloc(size > 0 ? size : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    iov.iov_base = body;
    iov.iov_len = size;
    lk_buf_init(&out, 1u << 30);

    for (int f = 0; f < 2; f++) {
        o.format = f == 0 ? LK_LOKI_PROTOBUF : LK_LOKI_JSON;
        lk_buf_reset(&out);
        rc = lk_loki_encode(enc, &o, &iov, 1, &out, &records, &streams);
        if ((rc != 0 && rc != LK_EPROTO) || (f == 1 && rc != first_rc)) {
            fprintf(stderr, "unexpected result %d (protobuf: %d)\n", rc,
                    first_rc);
            abort();
        }
        first_rc = rc;
        if (rc == 0 && o.format == LK_LOKI_PROTOBUF)
            check_protobuf(&out, records, streams);
        else if (rc == 0)
            check_json(&out, streams);
    }

    /* The same bytes as an LK_FORM_LOKI_ENTRIES item: taken as they are
     * (the cores are the producer's to get right, so only "no crash" and a
     * clean error), then with a `level` label, which turns them back into
     * OTLP first: that body must be well-formed. */
    uint8_t form = LK_FORM_LOKI_ENTRIES;
    for (int f = 0; f < 2; f++) {
        o.format = LK_LOKI_PROTOBUF;
        o.nlabels = f == 0 ? sizeof(labels) / sizeof(labels[0]) - 1 : sizeof(labels) / sizeof(labels[0]);
        lk_buf_reset(&out);
        rc = lk_loki_encode_forms(enc, &o, &iov, &form, 1, &out, &records, &streams);
        if (rc != 0 && rc != LK_EPROTO) {
            fprintf(stderr, "entries: unexpected result %d\n", rc);
            abort();
        }
        if (rc == 0 && f == 1)
            check_protobuf(&out, records, streams);
    }

    /* Without structured metadata, and with small limits, in both forms. */
    for (int m = 0; m < 4; m++) {
        o.format = LK_LOKI_PROTOBUF;
        o.nlabels = sizeof(labels) / sizeof(labels[0]) - 1;
        o.no_metadata = (m & 1) == 0;
        o.md_max_entries = o.no_metadata ? 0 : 2;
        o.md_max_bytes = o.no_metadata ? 0 : 64;
        lk_buf_reset(&out);
        rc = lk_loki_encode_forms(enc, &o, &iov, m < 2 ? NULL : &form, 1, &out, &records,
                                  &streams);
        if (rc != 0 && rc != LK_EPROTO) {
            fprintf(stderr, "metadata mode %d: unexpected result %d\n", m, rc);
            abort();
        }
        if (m < 2 && rc != first_rc) {
            fprintf(stderr, "metadata mode %d: %d, with metadata %d\n", m, rc, first_rc);
            abort();
        }
        if (rc == 0 && m < 2)
            check_protobuf(&out, records, streams);
        /* An entry's core is the producer's: one holding more than level,
         * trace_id and span_id goes as it is when its bytes fit. */
        if (rc == 0)
            check_md(&out, o.no_metadata ? 0 : m < 2 ? 2 : SIZE_MAX, o.no_metadata ? 0 : 64);
    }
    lk_buf_fini(&out);
    free(body);
    return 0;
}
