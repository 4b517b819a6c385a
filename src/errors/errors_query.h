/*
 * Parsers of the /errors query and the CLI's options: query parameters,
 * durations, "since" values. Bounded, allocation-free, total on any input
 * (fuzzed by fuzz/fuzz_errors_query.c).
 */
#ifndef SONDE_ERRORS_QUERY_H
#define SONDE_ERRORS_QUERY_H

#include "errors/errors_int.h"

/* Find parameter `name` in the query q[0..n) (no '?'; '&' or ';'
 * separated) and percent-decode its value ('+' is a space) into out
 * (NUL-terminated, cap bytes). Returns the value's length, SONDE_ENOTFOUND,
 * SONDE_EPARSE (bad escape, NUL byte) or SONDE_ETOOBIG. */
int sonde__query_get(const char *q, size_t n, const char *name, char *out, size_t cap);

/* "90", "90s", "250ms", "15m", "1h30m", "7d", "2w" -> seconds. SONDE_OK or
 * SONDE_EPARSE. */
int sonde__parse_duration(const char *s, double *out);

/* "2024-05-01T12:00:00Z", with optional fraction and +hh:mm offset ->
 * seconds since the epoch. SONDE_OK or SONDE_EPARSE. */
int sonde__parse_rfc3339(const char *s, double *out);

/* A "since" value: RFC 3339, Unix seconds (a bare number >= 1e9), or a
 * duration before now. SONDE_OK or SONDE_EPARSE. */
int sonde__parse_since(const char *s, double now, double *out);

/* Fill an /errors filter from a query string; type receives the type
 * filter's storage. On SONDE_EINVAL *why explains (static text). */
int sonde__errors_filter_from_query(const char *q, size_t n, double now, sonde_errors_filter *f,
                                    char *type, size_t type_cap, const char **why);

#endif
