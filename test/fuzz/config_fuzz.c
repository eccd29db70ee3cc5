/*
 * libFuzzer target for lk_config_parse: arbitrary bytes as a config file.
 *
 * Besides "never crash, never leak", it checks the contract of the result:
 * success gives a config and no error text, with at least one pipeline whose
 * every name is defined; failure gives an error text whose every line is
 * "fuzz.yaml:LINE:COL: message" with no control character.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define NAME "fuzz.yaml"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Give ${VAR} something to find, and leave one name unset. */
    setenv("LK_FUZZ_EP", "127.0.0.1:4317", 1);
    setenv("LK_FUZZ_EMPTY", "", 1);
    unsetenv("LK_FUZZ_UNSET");
    return 0;
}

static void fail(const char *why, const char *errors)
{
    fprintf(stderr, "config_fuzz: %s\n%s\n", why, errors ? errors : "(no errors)");
    abort();
}

static void check_errors(const char *e)
{
    size_t n = strlen(e);
    if (n == 0 || e[n - 1] != '\n')
        fail("error text is empty or does not end in a newline", e);
    for (const char *line = e; *line != '\0';) {
        const char *end = strchr(line, '\n');
        unsigned l, c;
        int used = 0;
        if (strncmp(line, NAME ":", strlen(NAME ":")) != 0 ||
            sscanf(line + strlen(NAME ":"), "%u:%u: %n", &l, &c, &used) != 2 ||
            used == 0 || l == 0 || c == 0)
            fail("error line not in file:line:column: form", e);
        for (const char *p = line; p < end; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                fail("control character in an error line", e);
        line = end + 1;
    }
}

static bool listed(char **names, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (names[i] == NULL || names[i][0] == '\0')
            return false;
    return true;
}

static void check_config(const lk_config *c)
{
    if (c->npipelines == 0 || c->npipelines > LK_SIGNAL_COUNT)
        fail("accepted config with a wrong number of pipelines", NULL);
    for (size_t i = 0; i < c->npipelines; i++)
        if (!listed(c->pipelines[i].receivers, c->pipelines[i].nreceivers) ||
            !listed(c->pipelines[i].exporters, c->pipelines[i].nexporters))
            fail("accepted pipeline with an empty list", NULL);
    for (size_t i = 0; i < c->nexporters; i++) {
        const struct lk_exporter_config *x = &c->exporters[i];
        if (x->endpoint == NULL || x->batch.send_batch_max_bytes > x->queue.max_bytes ||
            x->batch.send_batch_size > x->queue.queue_size ||
            x->retry.max_interval_ms < x->retry.initial_interval_ms)
            fail("accepted exporter that breaks a cross-check", NULL);
    }
    if (c->admin.endpoint == NULL)
        fail("no admin endpoint", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lk_config *c = NULL;
    char *errors = NULL;
    /* An exact-size copy, not NUL-terminated: ASan catches any read past it. */
    char *text = malloc(size > 0 ? size : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);

    int rc = lk_config_parse(NAME, text, size, &c, &errors);
    if (rc == 0) {
        if (c == NULL || errors != NULL)
            fail("success without a config, or with errors", errors);
        check_config(c);
    } else if (rc == LK_ECONFIG) {
        if (c != NULL || errors == NULL)
            fail("failure with a config, or without errors", errors);
        check_errors(errors);
    } else if (rc != LK_ENOMEM) {
        fail("unexpected return code", errors);
    }
    lk_config_destroy(c);
    free(errors);
    free(text);
    return 0;
}
