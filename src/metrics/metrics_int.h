/*
 * Private structures of the metrics core, shared with the encoders
 * (src/expose/).
 *
 * Cells: every thread that updates a counter, histogram or summary count
 * owns a block of cells (an anonymous mapping reserved once, touched
 * lazily). A series owns a range of cell indexes ("slots"), identical in
 * every block; a thread adds to its own block only, so an update is a plain
 * load/add/store on memory no other CPU writes. A scrape sums the series'
 * cells over all blocks. Blocks are never freed: when a thread exits its
 * block goes back to a pool and the next new thread continues adding to it,
 * so contributions survive thread exit and every cell only ever grows.
 */
#ifndef SONDE_METRICS_INT_H
#define SONDE_METRICS_INT_H

#include "core/internal.h"

#include <sonde/metrics.h>
#include "core/sketch.h"
#include "core/text.h"

#include <string.h>

/* ---- cells (cells.c) ---- */

/* The calling thread's cell block, NULL until its first update.
 * The shared library uses initial-exec TLS (the address from the GOT, then
 * one %fs-relative load, with no __tls_get_addr call); the static library
 * uses local-exec (a single %fs-relative load), which is valid in
 * executables; CMake's SONDE_STATIC_TLS_MODEL switches it for archives
 * linked into shared objects. */
#ifndef SONDE_TLS_MODEL
#define SONDE_TLS_MODEL "initial-exec"
#endif
extern __thread uint64_t *sonde__tls_cells __attribute__((tls_model(SONDE_TLS_MODEL)));

/* A thread's cell block. lookup_seq is odd while the owning thread is
 * inside a lock-free label lookup (see sonde__grace_period). */
struct sonde__block {
    uint64_t *cells;
    _Atomic uint64_t lookup_seq;
    _Atomic int in_use;
    _Atomic(struct sonde__block *) next;
};
extern __thread struct sonde__block *sonde__tls_block __attribute__((tls_model(SONDE_TLS_MODEL)));

/* Wait until no lookup that could have seen an object unlinked before this
 * call is still running. Returns 1 when the objects may be freed, 0 when
 * that cannot be established now (no membarrier, or a thread stuck in a
 * lookup); the caller keeps them and retries later. Never call it while
 * inside a lookup. */
int sonde__grace_period(void);

/* Attach a block to the calling thread; NULL when sonde is disabled or no
 * memory is left (the update is then dropped). */
uint64_t *sonde__cells_acquire(void);

/* Reserve n consecutive slots; returns the first or UINT32_MAX when the
 * cell space is exhausted. Cells start at zero in every block. */
uint32_t sonde__slots_alloc(uint32_t n);
/* Zero the slots in every block and make them reusable. */
void sonde__slots_free(uint32_t first, uint32_t n);
/* Slots [0, SONDE__SINK_SLOTS) are a write-only sink for series that could
 * not be created: updates land there and are never read. */
#define SONDE__SINK_SLOTS 260

/* Sum of cell `slot` over every block, as integer or double. */
uint64_t sonde__cells_sum_u64(uint32_t slot);
double sonde__cells_sum_f64(uint32_t slot);
/* Sum n consecutive integer cells starting at slot into out[0..n). */
void sonde__cells_sum_u64_n(uint32_t slot, uint32_t n, uint64_t *out);

/* Cell updates by the owning thread. Under TSan they are relaxed atomics so
 * the race detector sees the protocol; otherwise plain accesses: the cell has
 * a single writer, and an aligned 8-byte store is never torn. */
#ifdef SONDE_TSAN
#define SONDE__CELL_ADD_U64(p, v)                                                                  \
    __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)
#define SONDE__CELL_ADD_F64(p, v)                                                                  \
    do {                                                                                           \
        double d_;                                                                                 \
        uint64_t b_ = __atomic_load_n((p), __ATOMIC_RELAXED);                                      \
        memcpy(&d_, &b_, 8);                                                                       \
        d_ += (v);                                                                                 \
        memcpy(&b_, &d_, 8);                                                                       \
        __atomic_store_n((p), b_, __ATOMIC_RELAXED);                                               \
    } while (0)
#else
#define SONDE__CELL_ADD_U64(p, v) (*(p) += (v))
#define SONDE__CELL_ADD_F64(p, v) (*(double *)(void *)(p) += (v))
#endif

/* ---- families and series ---- */

#define SONDE__RAW_ESCAPE 0x80000000u
#define SONDE__RAW_LEN(s) ((s)->raw_len & ~SONDE__RAW_ESCAPE)

typedef struct sonde_series sonde_series;
typedef struct summary_state summary_state;

struct sonde_series {
    uint32_t slot;    /* first cell; counters: [u64 incs, f64 adds];
                         histograms: [nb+1 bucket counts, f64 sum];
                         summaries: [u64 count, f64 sum] */
    uint32_t raw_len; /* bytes of raw values "v0\0v1\0..." at data, or'd
                         with SONDE__RAW_ESCAPE when a value needs
                         escaping in the text formats */
    struct sonde_family *fam;
    sonde_series *next; /* creation order */
    uint64_t hash;
    uint64_t created_ms; /* wall clock, ms since the epoch */
    union {
        _Atomic uint64_t gauge; /* double bits: gauges, state index */
        summary_state *summary;
    } u;
    struct sonde__exemplars *ex; /* NULL unless the family keeps exemplars */
    /* Series TTL (families with series_ttl_seconds): the coarse clock
     * (sonde__coarse_now) at the last update, stored by the hot path only
     * when it changed. An expired series is "dormant": out of the
     * exposition and the live list, its cells freed (updates through a kept
     * handle go to the sink), but still in the table and still allocated,
     * so handles stay valid; a lookup of its labels, or an update through
     * a kept handle seen by the next sweep, revives it from zero. */
    _Atomic uint32_t touched;
    _Atomic uint8_t dormant;
    uint8_t in_dlist;    /* on the family's dormant list, under lock */
    uint32_t expired_at; /* coarse clock at expiry, under lock */
    sonde_series *dnext; /* dormant list, under lock */
    char data[];
};

/* ---- series TTL ---- */

/* Coarse monotonic clock in seconds (never 0 once running), advanced by
 * the TTL sweep on the runtime worker; 0 while no family has a TTL. */
extern _Atomic uint32_t sonde__coarse_now;

/* Hot path: note that s was updated now. A relaxed load of the clock and
 * of s->touched, and a relaxed store at most once per second per series,
 * so threads updating the same series do not keep writing its line. */
#define SONDE__TOUCH(s)                                                                            \
    do {                                                                                           \
        uint32_t now_ = atomic_load_explicit(&sonde__coarse_now, memory_order_relaxed);            \
        if (SONDE_UNLIKELY(atomic_load_explicit(&(s)->touched, memory_order_relaxed) != now_))     \
            atomic_store_explicit(&(s)->touched, now_, memory_order_relaxed);                      \
    } while (0)

/* Test hooks: stop the worker from advancing the clock and sweeping
 * (manual != 0), set the clock, and sweep every TTL family as at `now`. */
void sonde__ttl_manual_clock(int manual);
void sonde__ttl_set_clock(uint32_t now);
void sonde__ttl_sweep(uint32_t now);

/* ---- exemplars (exemplar.c) ---- */

/* One exemplar: "name\0value\0..." in w, written by one thread at a time
 * (seq odd while it writes; a second writer gives up) and read with a
 * sequence check. Words are accessed atomically so readers never tear. */
#define SONDE__EX_WORDS 72
struct sonde__exemplar {
    _Atomic uint64_t seq;
    _Atomic uint64_t value; /* double bits */
    _Atomic uint64_t ts_ms;
    _Atomic uint64_t len;
    _Atomic uint64_t w[SONDE__EX_WORDS];
};
struct sonde__exemplars {
    int from_log;
    uint32_t n;
    struct sonde__exemplar slot[];
};
/* Allocate the exemplar slots a series of f needs (NULL when none). */
struct sonde__exemplars *sonde__exemplars_new(const struct sonde_family *f);
/* Record an exemplar; returns 0 or -1 when dropped (counted). */
int sonde__exemplar_put(struct sonde__exemplar *e, double v, const char *const *kv, size_t npairs);
/* Plain update on a series with exemplars: attach the log context's
 * correlation ID when the family asks for it. */
void sonde__exemplar_from_log(struct sonde__exemplars *ex, uint32_t slot, double v);
/* A consistent copy: blob into buf (cap bytes), its length, value and
 * time. Returns 1, or 0 when the slot is empty or busy. */
int sonde__exemplar_read(const struct sonde__exemplar *e, char *buf, size_t cap, size_t *len,
                         double *v, uint64_t *ts_ms);
/* Exemplars dropped (process-wide). */
extern _Atomic uint64_t sonde__exemplars_dropped;

struct series_table {
    size_t mask;
    struct series_table *retired_next;
    _Atomic(sonde_series *) slots[];
};

struct sonde_family {
    sonde_metric_type type;
    struct sonde_registry *reg;
    char *name;    /* full name as registered */
    char *om_name; /* OpenMetrics family name (counter without _total) */
    char *help;
    char *unit;
    size_t nlabels;
    char **label_names;
    size_t nconst;
    char **const_kv;  /* raw pairs */
    char *const_text; /* rendered: a="x",b="y" (no braces) */
    size_t const_text_len;
    size_t max_series;
    /* histogram */
    size_t nb; /* finite buckets */
    double *bounds;
    char **le_text;    /* Prometheus form, nb + 1 (+Inf) */
    char **le_text_om; /* OpenMetrics form */
    /* summary */
    size_t nq;
    double *quantiles;
    char **q_text, **q_text_om;
    double max_age;
    unsigned age_buckets;
    /* stateset */
    size_t nstates;
    char **states;
    /* callback */
    sonde_value_fn cb;
    void *cb_ud;
    /* info */
    int is_info;
    int exemplars; /* SONDE_EXEMPLARS_*, 0 none */
    int utf8;      /* a metric or label name is outside the legacy set */
    /* Render views (src/expose): a copy of a family with its names
     * escaped or quoted; base is the real family (its lock and series),
     * state_label the stateset label name. NULL in real families. */
    struct sonde_family *base;
    char *state_label;
    /* native histogram (native_hist.c); nat_schema is meaningful only
     * when native is set */
    int native;
    int nat_schema;
    uint32_t nat_base;      /* cell of the zero bucket; sum is the cell before */
    uint32_t nat_width;     /* cells per sign */
    int32_t nat_lo;         /* bucket index of the first window cell */
    int32_t nat_hi;         /* bucket index of the last window cell */
    uint64_t nat_zero_bits; /* |v| bits at or below which v is a zero */
    double nat_zero_threshold;
    size_t nat_max_buckets;
    const struct sonde__nat_table *nat_table; /* schema > 0 */

    uint32_t cells_per_series;
    pthread_mutex_t lock; /* creation/removal; scrape walks */
    _Atomic(struct series_table *) table;
    struct series_table *retired_tables;
    sonde_series *head, *tail; /* creation order, under lock */
    sonde_series *retired;     /* removed, awaiting a grace period */
    size_t nretired;
    _Atomic size_t nseries;
    size_t table_used;        /* live + tombstones, under lock */
    _Atomic uint64_t dropped; /* refused by the cardinality limit */
    uint32_t ttl_s;           /* series TTL in seconds, 0 none */
    int ttl_listed;           /* on the sweep list (ttl_lock) */
    struct sonde_family *ttl_next;
    sonde_series *dormant;     /* expired series (dnext), under lock */
    size_t ndormant;           /* dormant series still in the table */
    _Atomic uint64_t expired;  /* sonde_metrics_series_expired_total */
    sonde_series *sink;        /* returned when a lookup fails */
    sonde_series *single;      /* label-less families */
    struct sonde_family *next; /* registry order */
};

struct collector {
    char *name;
    sonde_collect_fn fn;
    void *ud;
    struct collector *next;
};

struct sonde_registry {
    /* Families list and collectors: written under the write lock;
     * scrapes hold the read lock, so several can render at once. */
    pthread_rwlock_t lock;
    struct sonde_family *head, *tail;
    size_t nfamilies;
    struct collector *collectors;
    int is_default;
    _Atomic uint64_t collector_errors; /* sonde_metrics_collector_errors_total */
    char *ns;                          /* registry-wide namespace, NULL for none (under lock) */
    _Atomic int utf8_names;            /* UTF-8 metric and label names allowed */
    _Atomic int created_timestamps;    /* expose _created / created_timestamp */
};

/* ---- native histograms (native_hist.c) ---- */

/* Bucket index lookup for a schema s > 0: the top 10 mantissa bits pick a
 * slice of [1,2) holding at most one bucket boundary. */
struct sonde__nat_table {
    uint16_t cnt[1024]; /* boundaries below the slice */
    uint64_t bnd[1024]; /* mantissa of the boundary in the slice, or ~0 */
};

/* Validate o's native options and fill f's native fields and cell count
 * (after the classic part is set up). Returns SONDE_OK or SONDE_EINVAL
 * with the error set. */
int sonde__native_setup(struct sonde_family *f, const sonde_metric_opts *o);

/* A native histogram's exposed state: populated buckets at the exposed
 * schema, ascending by index, after reduction to the bucket limit. */
struct sonde__nat_snapshot {
    int schema;
    double zero_threshold;
    uint64_t zero_count, count;
    double sum;
    size_t npos, nneg;
    int32_t *pos_idx, *neg_idx;
    uint64_t *pos_cnt, *neg_cnt;
};
/* Read series s of native family f. Allocates the arrays; free with
 * sonde__native_snapshot_free. Returns SONDE_OK or SONDE_ENOMEM. */
int sonde__native_snapshot(const struct sonde_family *f, const sonde_series *s,
                           struct sonde__nat_snapshot *out);
void sonde__native_snapshot_free(struct sonde__nat_snapshot *snap);

/* Hot path: count v in the native buckets of the series whose cells start
 * at c (the sum is added by the caller). */
static inline void sonde__native_observe(const struct sonde_family *f, uint64_t *c, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    uint64_t a = bits & 0x7fffffffffffffffull;
    uint64_t *z = c + f->nat_base;
    if (a <= f->nat_zero_bits) {
        SONDE__CELL_ADD_U64(z, 1);
        return;
    }
    if (SONDE_UNLIKELY(a >= 0x7ff0000000000000ull)) {
        if (a > 0x7ff0000000000000ull) { /* NaN: count and sum only */
            SONDE__CELL_ADD_U64(z + 1, 1);
            return;
        }
    }
    int32_t e = (int32_t)(a >> 52) - 1023;
    uint64_t mant = a & 0xfffffffffffffull;
    int32_t idx;
    int s = f->nat_schema;
    if (s > 0) {
        const struct sonde__nat_table *t = f->nat_table;
        unsigned sl = (unsigned)(mant >> 42);
        idx = e * (1 << s) + t->cnt[sl] + (mant > t->bnd[sl]);
    } else {
        int32_t i0 = e + (mant != 0);
        idx = (i0 + ((1 << -s) - 1)) >> -s;
    }
    if (idx > f->nat_hi)
        idx = f->nat_hi;
    if (idx < f->nat_lo)
        idx = f->nat_lo;
    uint64_t *b = z + 2 + (uint32_t)(idx - f->nat_lo) + ((bits >> 63) ? f->nat_width : 0);
    SONDE__CELL_ADD_U64(b, 1);
}

/* Value of a series for text encoders. */
double sonde__counter_value(const sonde_series *s);

/* Summaries (summary.c). */
summary_state *sonde__summary_new(const struct sonde_family *f);
void sonde__summary_free(summary_state *st);
/* Snapshot quantiles (fam->nq of them) into out, and count/sum. */
void sonde__summary_snapshot(summary_state *st, const struct sonde_family *f, double *out,
                             uint64_t *count, double *sum);

/* Process collector (process.c). */
void sonde__process_collect(sonde_emitter *em, void *ud);
/* Parse a /proc/<pid>/stat line into utime+stime ticks, num_threads, vsize,
 * rss pages and starttime ticks; robust to spaces and parentheses in the
 * command name. Returns 0 or -1. Exposed for tests. */
int sonde__parse_proc_stat(const char *line, uint64_t *cpu_ticks, uint64_t *threads,
                           uint64_t *vsize, uint64_t *rss_pages, uint64_t *start_ticks);

#endif
