/*
 * The /errors query filter. Its grammar (query parameters, durations,
 * "since" values) is core/text.h's. Bounded, allocation-free, total on any input
 * (fuzzed by fuzz/fuzz_errors_query.c).
 */
#ifndef SONDE_ERRORS_QUERY_H
#define SONDE_ERRORS_QUERY_H

#include "core/text.h"
#include "errors/errors_int.h"

/* Fill an /errors filter from a query string; type receives the type
 * filter's storage. On SONDE_EINVAL *why explains (static text). */
int sonde__errors_filter_from_query(const char *q, size_t n, double now, sonde_errors_filter *f,
                                    char *type, size_t type_cap, const char **why);

#endif
