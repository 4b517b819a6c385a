/*
 * A mergeable quantile sketch with a relative-error guarantee (the DDSketch
 * idea): positive values fall into logarithmic bins of ratio
 * gamma = (1 + a) / (1 - a); answering a quantile with the bin's midpoint
 * (2 gamma^i / (gamma + 1)) is within relative error a of the exact value of
 * that rank. sonde uses a = 0.01 (1%).
 *
 * Bins live in a fixed window of `cap` counters allocated at init, so adding
 * never allocates. When the values span more than gamma^cap (about 8e8 for
 * 1024 bins at 1%), the lowest bins are collapsed into one: the low
 * quantiles lose accuracy first, the high ones (p90, p99) keep it.
 * Zero and negative values are counted in a zero bin (quantile 0); their sum
 * stays exact.
 *
 * Not thread-safe: callers lock.
 */
#ifndef SONDE_CORE_SKETCH_H
#define SONDE_CORE_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define SONDE_SKETCH_ALPHA 0.01
#define SONDE_SKETCH_DEFAULT_BINS 1024

typedef struct sonde__sketch {
    uint64_t *bins; /* cap counters; bins[i] counts index offset + i */
    uint32_t cap;
    int32_t offset; /* bin index of bins[0] */
    int32_t lo, hi; /* lowest and highest used indexes (valid if npos) */
    uint64_t npos;  /* values counted in bins */
    uint64_t zero;  /* values <= 0 (and below the smallest indexable) */
    uint64_t count;
    double sum, min, max;
} sonde__sketch;

/* Allocate the bins (cap 0: SONDE_SKETCH_DEFAULT_BINS). Returns SONDE_OK or
 * SONDE_ENOMEM. Free with sonde__sketch_free. */
int sonde__sketch_init(sonde__sketch *s, uint32_t cap);
void sonde__sketch_free(sonde__sketch *s);
/* Forget every value, keep the memory. */
void sonde__sketch_reset(sonde__sketch *s);
/* Count v (NaN ignored). Never allocates. */
void sonde__sketch_add(sonde__sketch *s, double v);
/* Count v n times. */
void sonde__sketch_add_n(sonde__sketch *s, double v, uint64_t n);
/* Add every value of src into dst (same cap not required). */
void sonde__sketch_merge(sonde__sketch *dst, const sonde__sketch *src);
/* Estimate of quantile q in [0,1]; NaN when empty. Exact min and max are
 * returned for q = 0 and q = 1. */
double sonde__sketch_quantile(const sonde__sketch *s, double q);
/* The bin index of v > 0, and the value bin index i represents. */
int32_t sonde__sketch_index(double v);
double sonde__sketch_bin_value(int32_t i);

/* ---- serialization (for stores) ----
 * Format, version 1, little-endian:
 *   u8 version (1); varint count; varint zero; f64 sum, min, max;
 *   varint k (non-empty bins); k times: varint index step, varint count.
 * The first index step is the zigzag-encoded index, later ones are the
 * distance to the previous index minus one (indexes strictly increase).
 * Every count is at least 1 and the counts add up to count - zero.
 * An empty sketch encodes in 30 bytes; each non-empty bin adds 2 to about
 * 8 bytes. */
#define SONDE_SKETCH_CODEC_VERSION 1
/* Largest encoding of a sketch of `bins` non-empty bins. */
#define SONDE_SKETCH_ENCODED_MAX(bins) (1 + 10 + 10 + 24 + 10 + (size_t)(bins)*15)

/* Append the encoding of s to out. Returns SONDE_OK, SONDE_ENOMEM or
 * SONDE_ETOOBIG (out->max reached; out->len is then unchanged). */
struct sonde_buf;
int sonde__sketch_encode(const sonde__sketch *s, struct sonde_buf *out);
/* Add the sketch encoded in p[0..n) into s (reset s first for a plain
 * decode). The whole input is validated before s is touched: on
 * SONDE_EPARSE (bad version, truncated, trailing bytes, inconsistent
 * counts, out-of-range index or value) s is unchanged. Never allocates. */
int sonde__sketch_decode(sonde__sketch *s, const void *p, size_t n);

#endif
