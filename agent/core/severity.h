/* Log levels: the names and numbers logging libraries write, mapped onto
 * OTLP SeverityNumber (1..24), and SeverityNumber onto Loki's level names. */
#ifndef LK_CORE_SEVERITY_H
#define LK_CORE_SEVERITY_H

#include <stddef.h>
#include <stdint.h>

/* Base SeverityNumber of each band (OTLP logs data model). */
enum {
    LK_SEV_TRACE = 1,
    LK_SEV_DEBUG = 5,
    LK_SEV_INFO = 9,
    LK_SEV_WARN = 13,
    LK_SEV_ERROR = 17,
    LK_SEV_FATAL = 21,
};

/*
 * Level text as written by zerolog, zap, slog, logrus, bunyan, log4j, syslog
 * and friends (any case, surrounding blanks ignored) -> SeverityNumber; 0
 * when unknown. slog's "INFO+2" / "WARN-4" style offsets move within and
 * across bands. Text that is a number goes through lk_level_number_to_severity.
 */
int lk_level_to_severity(const char *s, size_t n);

/* Numeric levels of bunyan and pino: 10 trace, 20 debug, 30 info, 40 warn,
 * 50 error, 60 fatal; values in between take the band below; anything
 * under 10 or above 69 is unknown (0). */
int lk_level_number_to_severity(int64_t v);

/* SeverityNumber -> Loki level name: "trace", "debug", "info", "warn",
 * "error", "fatal"; NULL outside 1..24. */
const char *lk_severity_level_name(int severity_number);

/* The normalised level of a record with |severity_number| and severity text
 * |text| (|n| bytes): the number's name, else the text's, else NULL. */
const char *lk_severity_level_norm(int severity_number, const char *text, size_t n);

#endif
