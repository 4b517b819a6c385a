/*
 * Private parts of the exporters (remote write, Pushgateway), shared by the
 * files of src/export/ and by their tests.
 *
 * Data path of a remote writer, all on one thread at a time (the runtime
 * worker, or a caller of sonde_remote_write_sample_now holding rw->lock):
 *   sampler (series.c): registry -> series table (sorted label sets built
 *     once per series) -> pending samples, staleness markers;
 *   encoder (rwencode.c): pending samples -> WriteRequest -> snappy block;
 *   queue (queue.c): blocks in memory, then in a segment file;
 *   sender (remote_write.c): one HTTP request at a time over curl multi.
 */
#ifndef SONDE_EXPORT_INT_H
#define SONDE_EXPORT_INT_H

#include "core/internal.h"
#include "remote.pb-c.h"

#include <sonde/export.h>

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The Prometheus staleness marker: a NaN with this exact bit pattern. */
#define SONDE__STALE_NAN_BITS UINT64_C(0x7ff0000000000002)

/* ---- sampler (series.c) ---- */

typedef struct sonde__rw_series {
    struct sonde__rw_series *next; /* hash chain, or graveyard list */
    uint64_t hash;
    uint32_t gen; /* last sampling that saw the series */
    uint32_t nlabels;
    size_t keylen;
    char *key; /* "n0\0v0\0n1\0v1\0..." sorted by name; labels point here */
    SondeRw__Label *labels;
    SondeRw__Label **label_ptrs;
} sonde__rw_series;

/* One sample waiting for its batch. */
typedef struct sonde__rw_pending {
    sonde__rw_series *series;
    double value;
    int64_t ts_ms;
} sonde__rw_pending;

typedef struct sonde__rw_sampler {
    /* configuration, owned */
    sonde_registry *reg;
    size_t nexternal;
    char **external; /* pairs */
    regex_t *keep, *drop;
    size_t nkeep, ndrop;
    /* series table */
    sonde__rw_series **buckets;
    size_t mask, count;
    uint32_t gen;
    sonde__rw_series *graveyard; /* removed, freed when nothing pending refers to them */
    /* pending samples, oldest first */
    sonde__rw_pending *pending;
    size_t npending, cap_pending;
    uint64_t first_pending_ns; /* monotonic time the oldest pending sample was queued */
    /* scratch of one sampling */
    int64_t now_ms;
    int family_wanted;
    sonde_buf key;
    uint64_t duplicates; /* same label set twice in one sampling (ignored) */
    uint64_t added;      /* samples appended by the current sampling */
} sonde__rw_sampler;

/* Copy the filter and external labels. Returns SONDE_OK, SONDE_EINVAL (bad
 * pattern or label, with sonde__set_error) or SONDE_ENOMEM. */
int sonde__rw_sampler_init(sonde__rw_sampler *s, sonde_registry *reg, const char *const *external,
                           size_t nexternal, const char *const *keep, size_t nkeep,
                           const char *const *drop, size_t ndrop);
void sonde__rw_sampler_free(sonde__rw_sampler *s);
/* Sample the registry at wall time now_ms: appends one pending sample per
 * series and one staleness marker per series gone since the previous
 * sampling. Returns the number appended or SONDE_ENOMEM. */
long sonde__rw_sample(sonde__rw_sampler *s, int64_t now_ms, uint64_t now_ns);
/* Add one sample by hand (tests, benchmarks): name and npairs label
 * pairs. Returns SONDE_OK or SONDE_ENOMEM. */
int sonde__rw_add(sonde__rw_sampler *s, const char *name, const char *const *kv, size_t npairs,
                  double v);
/* Forget the first n pending samples (encoded) and free the graveyard
 * when nothing is pending. */
void sonde__rw_consume(sonde__rw_sampler *s, size_t n);

/* ---- encoder (rwencode.c) ---- */

typedef struct sonde__rw_encoder {
    SondeRw__TimeSeries *ts;
    SondeRw__TimeSeries **ts_ptrs;
    SondeRw__Sample *smp;
    SondeRw__Sample **smp_ptrs;
    size_t cap;
    uint8_t *raw;
    size_t raw_cap;
} sonde__rw_encoder;

void sonde__rw_encoder_free(sonde__rw_encoder *e);
/* Encode n pending samples as one WriteRequest compressed with snappy into
 * a fresh malloc'ed buffer (*out, *out_len; free with sonde__free).
 * *raw_len (may be NULL) gets the uncompressed size. Returns SONDE_OK or
 * SONDE_ENOMEM. */
int sonde__rw_encode(sonde__rw_encoder *e, const sonde__rw_pending *p, size_t n, uint8_t **out,
                     size_t *out_len, size_t *raw_len);

/* ---- queue (queue.c) ---- */

/* A compressed batch. */
typedef struct sonde__rw_block {
    struct sonde__rw_block *next;
    uint32_t nsamples;
    uint32_t len;
    uint8_t *data;
} sonde__rw_block;

/*
 * FIFO of blocks: the older ones in memory, the newer ones in the segment
 * file once memory is full (and while the file holds anything, so order is
 * kept). The segment file: a 16-byte header ("SNDRWQ1\0" and the read
 * offset, rewritten when the head advances), then records
 * [u32 len][u32 nsamples][u32 crc32][len bytes]. Opening replays the
 * records from the read offset and truncates at the first damaged one.
 */
typedef struct sonde__rw_queue {
    sonde__rw_block *head, *tail;
    size_t mem_bytes, mem_max, mem_peak;
    /* Bytes of the batch taken out to be sent (the writer's in-flight
     * batch): outside the list, inside the memory bound. */
    size_t reserved;
    uint64_t mem_samples;
    /* disk */
    int fd; /* -1: no disk */
    char *path;
    uint64_t rd, wr; /* offsets: next record to read, end of records */
    uint64_t disk_samples;
    size_t disk_max;
    uint64_t dropped_full;    /* samples */
    uint64_t dropped_too_big; /* samples */
    uint64_t disk_errors;
} sonde__rw_queue;

#define SONDE__RW_BLOCK_OVERHEAD 64 /* bytes charged per block besides its data */

/* Set up; path NULL: memory only. Returns SONDE_OK, SONDE_EIO (with
 * sonde__set_error) or SONDE_ENOMEM. */
int sonde__rw_queue_init(sonde__rw_queue *q, size_t mem_max, const char *path, size_t disk_max);
void sonde__rw_queue_free(sonde__rw_queue *q);
/* Take ownership of blk (malloc'ed with its data) and append it, dropping
 * the oldest blocks when the bound is reached. */
void sonde__rw_queue_push(sonde__rw_queue *q, sonde__rw_block *blk);
/* Detach the oldest block (memory, else disk); NULL when empty. The caller
 * owns it (sonde__rw_block_free). */
sonde__rw_block *sonde__rw_queue_pop(sonde__rw_queue *q);
/* Drop the oldest block to make room; returns its sample count or 0. */
uint64_t sonde__rw_queue_drop_oldest(sonde__rw_queue *q);
/* Move every memory block to the front of the disk segment (shutdown).
 * Returns SONDE_OK or SONDE_EIO; without disk SONDE_ESTATE. */
int sonde__rw_queue_spill(sonde__rw_queue *q);
uint64_t sonde__rw_queue_samples(const sonde__rw_queue *q);
uint64_t sonde__rw_queue_disk_bytes(const sonde__rw_queue *q);
void sonde__rw_block_free(sonde__rw_block *b);

/* ---- parsers (parse.c) ---- */

/* Parse a Retry-After value: delta-seconds or an HTTP-date (IMF-fixdate,
 * RFC 850 or asctime form) relative to now (Unix seconds). *seconds gets
 * the wait, 0 for a date in the past. Returns 0 or -1 when unparsable. */
int sonde__parse_retry_after(const char *s, size_t n, int64_t now, double *seconds);

/* base64url (RFC 4648 section 5, with '=' padding as the Pushgateway
 * expects) of n bytes into out (size at least 4*((n+2)/3)+1). Returns the
 * length. */
size_t sonde__base64url(const unsigned char *in, size_t n, char *out);

#endif
