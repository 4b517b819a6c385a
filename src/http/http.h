/*
 * Private parts of the HTTP server: header and query parsers (fuzzed),
 * authentication helpers, the rate limiter, gzip, and the server object
 * behind sonde_start.
 */
#ifndef SONDE_HTTP_INTERNAL_H
#define SONDE_HTTP_INTERNAL_H

#include <sonde/runtime.h>

#include "core/internal.h"

#include <sys/socket.h>

/* ---- parsers: zero-allocation, bounded, total on any input ---- */

/* Whether an Accept-Encoding value allows gzip (gzip or * with q > 0, and
 * gzip not refused with q=0). */
bool sonde__http_accepts_gzip(const char *ae, size_t n);

/*
 * Extract the values of the "name[]" (or "name") parameters of a query
 * string q (n bytes, without the '?'). Values are percent-decoded ('+' is a
 * space) into scratch (cap bytes), NUL-terminated, and names[i] points into
 * it. Returns the number of names (at most max) or a negative error:
 * SONDE_ELIMIT (more than max names), SONDE_ETOOBIG (scratch too small),
 * SONDE_EPARSE (bad percent escape or a NUL byte).
 */
int sonde__http_query_names(const char *q, size_t n, char *scratch, size_t cap, const char **names,
                            size_t max);

/*
 * Split a query string q (n bytes, without the '?') into name/value pairs:
 * pairs[2i] = name, pairs[2i+1] = value ("" without '='), percent-decoded
 * ('+' is a space) and NUL-terminated in scratch (cap bytes). Empty
 * parameters ("a=1&&b") are skipped. Returns the number of pairs (at most
 * max) or SONDE_ELIMIT, SONDE_ETOOBIG, SONDE_EPARSE as
 * sonde__http_query_names.
 */
int sonde__http_query_pairs(const char *q, size_t n, char *scratch, size_t cap, const char **pairs,
                            size_t max);

/* Constant-time comparison of a[0..an) and b[0..bn): the time depends only
 * on bn (the secret's length), never on where the inputs differ. */
bool sonde__ct_equal(const char *a, size_t an, const char *b, size_t bn);

/* Decode standard base64 (with or without padding) into out (cap bytes).
 * Returns the decoded length or -1 on bad input or overflow. */
ssize_t sonde__base64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* Whether a client address is loopback (127.0.0.0/8, ::1, ::ffff:127.x). */
bool sonde__addr_is_loopback(const struct sockaddr *sa);

/*
 * Parse a listen address: ":port", "host:port", "[v6]:port", "host"
 * (port 9464). Fills host (empty for every interface; cap bytes) and *port.
 * Returns SONDE_OK or SONDE_EINVAL.
 */
int sonde__parse_listen(const char *s, char *host, size_t cap, int *port);

/* ---- rate limiter: per-client token buckets in a bounded table ---- */

typedef struct sonde__ratelimit sonde__ratelimit;
/* rate per second, burst tokens, at most max_clients tracked (oldest
 * evicted). NULL on no memory. */
sonde__ratelimit *sonde__ratelimit_create(double rate, double burst, size_t max_clients);
void sonde__ratelimit_destroy(sonde__ratelimit *rl);
/* Take a token for the client; false when empty, with *retry_after_s the
 * wait for the next token. Any thread. */
bool sonde__ratelimit_take(sonde__ratelimit *rl, const struct sockaddr *sa, uint64_t now_ns,
                           double *retry_after_s);

/* ---- gzip ---- */

/* Compress in[0..n) as a gzip member into out (appended), at level 1..12
 * (libdeflate's scale; clamped). Returns SONDE_OK,
 * SONDE_ENOMEM or SONDE_EIO. */
int sonde__gzip(const void *in, size_t n, int level, sonde_buf *out);

/* ---- redaction ---- */

/* Whether a configuration key names a secret (api_key, password, token,
 * dsn, ...): its value is never shown. */
bool sonde__key_is_secret(const char *key);

#endif
