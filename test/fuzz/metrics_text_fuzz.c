/*
 * libFuzzer target for lk_metrics_text_parse (the Prometheus text format,
 * as `lookout top` and `lookout status` read an agent's /metrics), and for
 * what is made of the result: lk_status_build and lk_status_render.
 *
 * Besides "never crash, never leak": every sample kept has a name and label
 * names of the format's characters; the samples written back in the text
 * format (label values escaped) read back the same, with no line invalid;
 * and the view of the samples, rendered at widths 1 to 100, has no line
 * wider than the width and no control character.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/metrics_text.h"
#include "cli/status.h"
#include "core/buf.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *why)
{
    fprintf(stderr, "metrics_text_fuzz: %s\n", why);
    abort();
}

static bool is_name(const char *s, bool colon)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return s[0] != '\0';
}

static void put_value(lk_buf *b, double v)
{
    if (isnan(v))
        lk_buf_append_str(b, "NaN");
    else if (isinf(v))
        lk_buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
    else
        lk_buf_printf(b, "%.17g", v);
}

/* The samples of |t| in the text format. */
static void write_back(const lk_metrics_text *t, lk_buf *b)
{
    for (size_t i = 0; i < lk_metrics_text_count(t); i++) {
        const struct lk_sample *s = lk_metrics_text_sample(t, i);
        lk_buf_append_str(b, s->name);
        if (s->nlabels > 0) {
            lk_buf_append_str(b, "{");
            for (size_t l = 0; l < s->nlabels; l++) {
                lk_buf_printf(b, "%s%s=\"", l ? "," : "", s->labels[l].name);
                for (const char *p = s->labels[l].value; *p != '\0'; p++) {
                    if (*p == '\\' || *p == '"')
                        lk_buf_printf(b, "\\%c", *p);
                    else if (*p == '\n')
                        lk_buf_append_str(b, "\\n");
                    else
                        lk_buf_append(b, p, 1);
                }
                lk_buf_append_str(b, "\"");
            }
            lk_buf_append_str(b, "}");
        }
        lk_buf_append_str(b, " ");
        put_value(b, s->value);
        if (s->has_timestamp)
            lk_buf_printf(b, " %lld", (long long)s->timestamp_ms);
        lk_buf_append_str(b, "\n");
    }
}

static bool same_value(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof(a)) == 0;
}

static void check_same(const lk_metrics_text *a, const lk_metrics_text *b)
{
    if (lk_metrics_text_count(a) != lk_metrics_text_count(b) ||
        lk_metrics_text_invalid_lines(b) != 0)
        fail("written back, the samples read back otherwise");
    for (size_t i = 0; i < lk_metrics_text_count(a); i++) {
        const struct lk_sample *x = lk_metrics_text_sample(a, i);
        const struct lk_sample *y = lk_metrics_text_sample(b, i);
        if (strcmp(x->name, y->name) != 0 || x->nlabels != y->nlabels ||
            !same_value(x->value, y->value) || x->has_timestamp != y->has_timestamp ||
            (x->has_timestamp && x->timestamp_ms != y->timestamp_ms))
            fail("a sample changed on the round trip");
        for (size_t l = 0; l < x->nlabels; l++)
            if (strcmp(x->labels[l].name, y->labels[l].name) != 0 ||
                strcmp(x->labels[l].value, y->labels[l].value) != 0)
                fail("a label changed on the round trip");
    }
}

static void check_render(const struct lk_status *st, int width)
{
    lk_buf out;
    lk_buf_init(&out, SIZE_MAX);
    struct lk_status_render_opts o = {.width = width, .footer = "q: quit"};
    if (lk_status_render(st, &o, &out) == 0) {
        const char *s = (const char *)out.data, *end = s + out.len;
        while (s < end) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            if (nl == NULL)
                fail("rendered text does not end in a newline");
            if (width > 0 && lk_status_text_width(s, (size_t)(nl - s)) > (size_t)width)
                fail("a rendered line is wider than the width");
            for (const char *p = s; p < nl; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    fail("a control character in the rendered text");
            s = nl + 1;
        }
    }
    lk_buf_fini(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lk_metrics_text *t = NULL, *again = NULL;
    /* An exact-size copy: ASan catches any read past it. */
    char *text = malloc(size > 0 ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);

    int rc = lk_metrics_text_parse(text, size, NULL, NULL, &t);
    if (rc == LK_ENOMEM) {
        free(text);
        return 0;
    }
    if (rc != 0 || t == NULL)
        fail("unexpected failure");
    for (size_t i = 0; i < lk_metrics_text_count(t); i++) {
        const struct lk_sample *s = lk_metrics_text_sample(t, i);
        if (!is_name(s->name, true))
            fail("a metric name out of the format's characters");
        for (size_t l = 0; l < s->nlabels; l++)
            if (!is_name(s->labels[l].name, false))
                fail("a label name out of the format's characters");
    }
    if ((lk_metrics_text_invalid_lines(t) == 0) != (lk_metrics_text_first_invalid_line(t) == 0))
        fail("invalid line count and first invalid line disagree");

    lk_buf back;
    lk_buf_init(&back, SIZE_MAX);
    write_back(t, &back);
    if (lk_metrics_text_parse((const char *)back.data, back.len, NULL, NULL, &again) == 0) {
        check_same(t, again);
        lk_metrics_text_destroy(again);
    }
    lk_buf_fini(&back);

    /* The input as two scrapes of one agent, one second apart. */
    struct lk_status st;
    if (lk_status_build(&st, t, 1.0, t, 1e9) == 0) {
        st.target = "http://127.0.0.1:9464";
        check_render(&st, 0);
        for (int w = 1; w <= 100; w += (w < 20 ? 1 : 9))
            check_render(&st, w);
        lk_status_fini(&st);
    }
    lk_metrics_text_destroy(t);
    free(text);
    return 0;
}
