/*
 * Small text helpers shared by every component (core/text.c): query
 * parameters and percent-decoding, the one duration grammar, RFC 3339
 * times, the exposition escapers and name rules, UTF-8 validation, varints
 * and hashing. All are bounded, allocation-free (except growing the
 * caller's buffer), total on any input and safe from any thread.
 */
#ifndef SONDE_CORE_TEXT_H
#define SONDE_CORE_TEXT_H

#include "core/internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- query strings ---- */

/* Percent-decode s[0..n) ('+' is a space) into out (cap bytes, not
 * NUL-terminated). Returns the length, SONDE_EPARSE (bad escape, NUL byte)
 * or SONDE_ETOOBIG. */
ssize_t sonde__pct_decode(const char *s, size_t n, char *out, size_t cap);

/* Find parameter `name` in the query q[0..n) (no '?'; '&' or ';'
 * separated) and percent-decode its value ('+' is a space) into out
 * (NUL-terminated, cap bytes). Returns the value's length, SONDE_ENOTFOUND,
 * SONDE_EPARSE (bad escape, NUL byte) or SONDE_ETOOBIG. */
int sonde__query_get(const char *q, size_t n, const char *name, char *out, size_t cap);

/* ---- durations and times ---- */

/* "90", "90s", "250ms", "15m", "1h30m", "7d", "2w" -> seconds. SONDE_OK or
 * SONDE_EPARSE. */
int sonde__parse_duration(const char *s, double *out);

/* "2024-05-01T12:00:00Z", with optional fraction and +hh:mm offset ->
 * seconds since the epoch. SONDE_OK or SONDE_EPARSE. */
int sonde__parse_rfc3339(const char *s, double *out);

/* A "since" value: RFC 3339, Unix seconds (a bare number >= 1e9), or a
 * duration before now. SONDE_OK or SONDE_EPARSE. */
int sonde__parse_since(const char *s, double now, double *out);

/* Append wall (seconds since the epoch; negative or not finite gives the
 * epoch) as "2024-05-01T12:00:00.250Z", unquoted. */
int sonde__buf_rfc3339(sonde_buf *b, double wall_seconds);
/* The same as a quoted JSON string. */
int sonde__buf_json_time(sonde_buf *b, double wall_seconds);

/* ---- exposition names and escaping ---- */

/* Prometheus name rules: [a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*. */
int sonde__valid_metric_name(const char *s);
int sonde__valid_label_name(const char *s);

/* Whether s[0..n) is a legacy name: [a-zA-Z_:][a-zA-Z0-9_:]* (the rule the
 * name escaping schemes use for metric and label names alike). */
int sonde__legacy_name(const char *s, size_t n);
/* Non-empty valid UTF-8 (the rule for names in a registry that allows
 * UTF-8 names). */
int sonde__valid_utf8_name(const char *s);
/* Append name s[0..n) escaped per scheme (a sonde_escaping), as Prometheus
 * defines the schemes: underscores (every character outside the legacy set
 * becomes _), dots (_ -> __, . -> _dot_, others -> __), values (U__
 * prefix, _ -> __, others -> _<hex code point>_, invalid UTF-8 ->
 * _FFFD_); allow-utf-8 appends s as it is. Legacy names are appended as
 * they are by every scheme but dots. Total on any bytes. */
int sonde__buf_name_escape(sonde_buf *b, const char *s, size_t n, int scheme);

/* Label text escaping for the text formats: backslash, quote, newline. */
int sonde__buf_label_escape(sonde_buf *b, const char *s, size_t n);
/* The same, choosing whether '"' is escaped (help text in 0.0.4 keeps it). */
int sonde__buf_text_escape(sonde_buf *b, const char *s, size_t n, int quote);

/* ---- UTF-8 ---- */

/* Whether s[0..n) is valid UTF-8 (no overlong forms, surrogates or code
 * points above U+10FFFF). */
bool sonde__utf8_ok(const char *s, size_t n);

/* ---- varints (unsigned LEB128, at most 10 bytes) ---- */

/* Write v at p (room for 10 bytes); returns the bytes written. */
size_t sonde__put_varint(uint8_t *p, uint64_t v);
/* Read a varint of at most 10 bytes whose value fits 64 bits. Returns the
 * bytes read, 0 on truncation or overflow. */
size_t sonde__get_varint(const uint8_t *p, size_t n, uint64_t *out);

/* ---- hashing ---- */

/* A 64-bit hash over 8-byte words: each word is mixed with two
 * multiplications, the tail is read byte by byte, and the murmur3
 * finaliser spreads the result. Not cryptographic; fingerprints only need
 * to be stable and well spread. */
uint64_t sonde__hash64(const void *p, size_t n, uint64_t seed);
/* The murmur3 64-bit finaliser. */
uint64_t sonde__hash64_mix(uint64_t h);

#endif
