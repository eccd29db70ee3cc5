#include "core/severity.h"

#include <stdbool.h>
#include <string.h>

struct level_word {
    const char *word;
    size_t len;
    int sev;
};

#define W(w, sev) {w, sizeof(w) - 1, sev}

/* Compared case-insensitively. Words from the common Go, Java, Node and
 * syslog loggers; "dpanic" (zap: panics in development) counts as error. */
static const struct level_word words[] = {
    W("trace", LK_SEV_TRACE),    W("trc", LK_SEV_TRACE),
    W("finest", LK_SEV_TRACE),   W("debug", LK_SEV_DEBUG),
    W("dbg", LK_SEV_DEBUG),      W("d", LK_SEV_DEBUG),
    W("fine", LK_SEV_DEBUG),     W("info", LK_SEV_INFO),
    W("inf", LK_SEV_INFO),       W("i", LK_SEV_INFO),
    W("information", LK_SEV_INFO), W("informational", LK_SEV_INFO),
    W("notice", LK_SEV_INFO + 1), W("warn", LK_SEV_WARN),
    W("warning", LK_SEV_WARN),   W("wrn", LK_SEV_WARN),
    W("w", LK_SEV_WARN),         W("error", LK_SEV_ERROR),
    W("err", LK_SEV_ERROR),      W("eror", LK_SEV_ERROR),
    W("e", LK_SEV_ERROR),        W("dpanic", LK_SEV_ERROR + 1),
    W("severe", LK_SEV_ERROR),   W("fatal", LK_SEV_FATAL),
    W("ftl", LK_SEV_FATAL),      W("f", LK_SEV_FATAL),
    W("panic", LK_SEV_FATAL + 1), W("critical", LK_SEV_FATAL),
    W("crit", LK_SEV_FATAL),     W("alert", LK_SEV_FATAL + 2),
    W("emerg", LK_SEV_FATAL + 3), W("emergency", LK_SEV_FATAL + 3),
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int lk_level_number_to_severity(int64_t v)
{
    if (v < 10 || v > 69)
        return 0;
    static const int band[] = {LK_SEV_TRACE, LK_SEV_DEBUG, LK_SEV_INFO,
                               LK_SEV_WARN,  LK_SEV_ERROR, LK_SEV_FATAL};
    return band[v / 10 - 1];
}

static int word_severity(const char *s, size_t n)
{
    /* Hot: once per log line. Compare the first letter before anything else. */
    char first = (char)(s[0] | 0x20);
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (words[i].len != n || words[i].word[0] != first)
            continue;
        /* ASCII case folding in line: the words are lowercase letters,
         * and only a letter's two cases have |0x20 equal to it. */
        size_t k = 1;
        while (k < n && (char)(s[k] | 0x20) == words[i].word[k])
            k++;
        if (k == n)
            return words[i].sev;
    }
    return 0;
}

int lk_level_to_severity(const char *s, size_t n)
{
    while (n > 0 && is_blank(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    if (n == 0 || n > 16)
        return 0;
    if (s[0] >= '0' && s[0] <= '9') {
        int64_t v = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return 0;
            v = v * 10 + (s[i] - '0');
        }
        return lk_level_number_to_severity(v);
    }
    /* slog: "INFO+2", "DEBUG-4". slog's own levels are 4 apart (DEBUG -4,
     * INFO 0, WARN 4, ERROR 8), so an offset of 4 is one whole band. */
    size_t base = 0;
    while (base < n && s[base] != '+' && s[base] != '-')
        base++;
    int sev = word_severity(s, base);
    if (sev == 0 || base == n)
        return sev;
    int sign = s[base] == '+' ? 1 : -1;
    int off = 0;
    for (size_t i = base + 1; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || off > 100)
            return 0;
        off = off * 10 + (s[i] - '0');
    }
    if (base + 1 == n)
        return 0;
    /* Snap to a band base, move off/4 bands, keep the remainder within it. */
    int band = (sev - 1) / 4 + sign * (off / 4);
    int within = sign > 0 ? off % 4 : 0;
    if (band < 0)
        return LK_SEV_TRACE;
    if (band > 5)
        return 24;
    return band * 4 + 1 + within;
}

const char *lk_severity_level_name(int severity_number)
{
    static const char *const names[] = {"trace", "debug", "info",
                                        "warn",  "error", "fatal"};
    if (severity_number < 1 || severity_number > 24)
        return NULL;
    return names[(severity_number - 1) / 4];
}

const char *lk_severity_level_norm(int severity_number, const char *text, size_t n)
{
    const char *name = lk_severity_level_name(severity_number);

    if (name == NULL && n > 0)
        name = lk_severity_level_name(lk_level_to_severity(text, n));
    return name;
}
