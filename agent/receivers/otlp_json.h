/* OTLP/JSON (the OTLP specification's JSON mapping of the protobuf messages)
 * to and from the protobuf wire format, so everything downstream of a
 * receiver sees one format. */
#ifndef LK_RECEIVERS_OTLP_JSON_H
#define LK_RECEIVERS_OTLP_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"

/*
 * Decodes the JSON Export<Signal>ServiceRequest in |p| (|n| bytes) and appends
 * its protobuf encoding to |out|. Mapping rules: field names in lowerCamelCase
 * (the original snake_case names are accepted too), trace and span ids as hex
 * strings, enums as integers (names accepted too), 64-bit integers as strings
 * or numbers, bytes fields other than ids as base64, unknown fields ignored.
 * Returns 0; LK_EPROTO for malformed JSON or a value of the wrong type, with a
 * reason naming the JSON path in |why| (NUL-terminated, |whylen| may be 0);
 * LK_E2BIG when the encoding would pass |out->max|; LK_ENOMEM.
 */
int lk_otlp_json_decode(enum lk_signal sig, const uint8_t *p, size_t n,
                        lk_buf *out, char *why, size_t whylen);

/*
 * Appends the JSON Export<Signal>ServiceResponse: "{}" when |rejected| is 0
 * and |error_message| is NULL or empty, else
 * {"partialSuccess":{"rejectedSpans":"N","errorMessage":"..."}} (the count
 * key follows the signal: rejectedSpans, rejectedDataPoints,
 * rejectedLogRecords; int64 written as a string per the mapping).
 */
int lk_otlp_json_response(enum lk_signal sig, uint64_t rejected,
                          const char *error_message, lk_buf *out);

/* The same response as protobuf (an empty body when nothing was rejected). */
int lk_otlp_proto_response(enum lk_signal sig, uint64_t rejected,
                           const char *error_message, lk_buf *out);

#endif
