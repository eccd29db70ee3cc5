/*
 * Log line parsers for the Unix-socket line receiver: pull the time, level,
 * trace and span ids and service out of one line of JSON (zerolog, zap,
 * slog, logrus, bunyan, pino) or logfmt, without building a tree and without
 * allocating. The caller keeps the whole line as the log body; these
 * functions only extract metadata.
 */
#ifndef LK_RECEIVERS_LINEPARSE_H
#define LK_RECEIVERS_LINEPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Same order as enum lk_lines_format in config/config.h. */
enum lk_line_format { LK_LINE_AUTO, LK_LINE_JSON, LK_LINE_LOGFMT, LK_LINE_RAW };

#define LK_LINE_SERVICE_MAX 256 /* bytes kept of a service name, with NUL */
#define LK_LINE_LEVEL_MAX 32    /* bytes kept of the level text, with NUL */

/* What one line says about itself. Text fields are valid UTF-8 (bad bytes
 * become U+FFFD), cut at a code point boundary and NUL-terminated; they may
 * hold NUL bytes written as \u0000, so use the _len fields. */
struct lk_line_fields {
    enum lk_line_format format; /* what the line was parsed as: JSON, LOGFMT or RAW */
    uint64_t time_ns;           /* Unix ns from the line; 0: absent or unparseable */
    int severity_number;        /* OTLP SeverityNumber 1..24; 0: no or unknown level */
    char level[LK_LINE_LEVEL_MAX]; /* level text as written, unescaped; a JSON
                                      number level (bunyan, pino: 30) as its
                                      text ("30"); "" when absent */
    size_t level_len;
    bool has_trace_id;
    uint8_t trace_id[16]; /* from 32 hex digits (either case), not all zero */
    bool has_span_id;
    uint8_t span_id[8]; /* from 16 hex digits, not all zero */
    char service[LK_LINE_SERVICE_MAX]; /* "" when absent */
    size_t service_len;
};

/*
 * Parses |line| (|len| bytes without the newline; any bytes) as |fmt| into
 * |out|, which it fully overwrites. Never fails:
 * - LK_LINE_JSON: the line must be exactly one JSON object (RFC 8259: no
 *   raw control characters or bad escapes in strings, at most 64 levels of
 *   nesting counting the line's own object; blanks around it allowed),
 *   otherwise it is RAW. Only top-level keys count. Invalid UTF-8 inside
 *   strings does not make a line invalid; a lone \uD800-style surrogate
 *   decodes to U+FFFD.
 * - LK_LINE_LOGFMT: key=value pairs separated by blanks, values bare or
 *   double-quoted (\" \\ \n \r \t \uXXXX; other escapes kept as written);
 *   always parsed as LOGFMT, taking what it can.
 * - LK_LINE_AUTO: after leading blanks, '{' tries JSON (RAW if that fails);
 *   [A-Za-z_][A-Za-z0-9_.-]* followed by '=' is logfmt; anything else RAW.
 * - LK_LINE_RAW: nothing is extracted.
 * Keys (case-sensitive) per field, in JSON and logfmt alike:
 *   time     time ts timestamp @timestamp t
 *   level    level lvl severity log.level
 *   trace id trace_id traceId traceID trace.id
 *   span id  span_id spanId spanID span.id
 *   service  service.name service_name service; in JSON also bunyan's
 *            "name", only when the object has a top-level "v" key and no
 *            other service key.
 * Each field comes from the first key, in line order, whose value is usable:
 * a string (or for time and level a JSON number) that parses; empty strings
 * are not usable. Later keys for the same field are ignored.
 */
void lk_line_parse(enum lk_line_format fmt, const uint8_t *line, size_t len,
                   struct lk_line_fields *out);

/* "auto", "json", "logfmt", "raw" -> |*out|; false (|*out| untouched) for
 * anything else. */
bool lk_line_format_parse(const char *s, enum lk_line_format *out);

/* The name lk_line_format_parse takes for |f|; NULL for a value outside the
 * enum. */
const char *lk_line_format_name(enum lk_line_format f);

/*
 * Timestamp text (|n| bytes at |s|, not NUL-terminated) -> Unix ns in |*ns|.
 * Accepts
 * - RFC 3339: YYYY-MM-DD, then 'T', 't' or ' ', then hh:mm:ss (ss up to 60
 *   for a leap second), an optional '.' and 1 or more fraction digits
 *   (digits past the ninth are ignored), then 'Z', 'z', +hh:mm, -hh:mm,
 *   +hhmm or -hhmm;
 * - a decimal number with an optional fraction ("1700000000.123456"), read
 *   by the size of its integer part as seconds (< 1e11), milliseconds
 *   (< 1e14), microseconds (< 1e17) or else nanoseconds; the fraction is
 *   kept down to the nanosecond.
 * Returns false (|*ns| untouched) for anything else, including blanks, signs
 * and exponents, and for instants before 1970-01-01T00:00:00Z or after
 * 2262-04-11T23:47:16.854775807Z (INT64_MAX ns, the last instant Loki and
 * most OTLP backends can hold).
 */
bool lk_parse_timestamp(const char *s, size_t n, uint64_t *ns);

#endif
