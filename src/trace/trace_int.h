/*
 * Private structures of performance tracing.
 *
 * Data flow. sonde_op_end writes into the calling thread's accumulator for
 * the operation (struct trace_acc): two minute slots, used by minute
 * parity. The writer is the only thread that modifies a slot; it brackets
 * every update with a sequence count (odd while writing). The flush
 * (trace_tick, on the background thread) collects a slot once its minute is
 * over plus a grace period, copying it under the sequence count, and marks
 * it harvested; the writer reuses the slot two minutes later. Nothing on the
 * writer's path is a read-modify-write instruction or a lock: plain loads
 * and stores (relaxed atomics, so the race detector sees the protocol) on
 * memory no other thread writes, except `harvested`, which only the flush
 * writes.
 *
 * Why the grace period makes the copy complete: the writer stores the odd
 * sequence number before it reads the clock, so a writer still inside an
 * update of minute m is visible as odd to a flush that reads the sequence
 * after the end of m plus the grace (seconds later); a writer that reads the
 * clock after that time gets minute m+1 or later and uses the other slot.
 *
 * The flush turns collected slots into per-minute sketches (core/sketch.h),
 * keeps the last TRACE_RING_MINUTES of them per operation in memory
 * (encoded), and queues them for the store. Queries merge the store (older
 * minutes), the memory ring and a best-effort read of the slots not yet
 * collected (the current minute).
 */
#ifndef SONDE_TRACE_INT_H
#define SONDE_TRACE_INT_H

#include "core/internal.h"
#include "core/sketch.h"
#include "store/store.h"

#include <sonde/log.h>
#include <sonde/trace.h>

/* Memory fences of the sequence protocols. TSan does not model fences
 * (GCC warns); under TSan they become compiler barriers, which on x86's
 * ordered loads and stores keep the same meaning for the test builds. */
#ifdef SONDE_TSAN
#define TRACE_FENCE(order) __asm__ __volatile__("" ::: "memory")
#else
#define TRACE_FENCE(order) __atomic_thread_fence(order)
#endif

/* ---- clock (clock.c) ----
 * Ticks are TSC cycles on x86-64 with an invariant TSC, else nanoseconds of
 * CLOCK_MONOTONIC, or nanoseconds of the test clock. */
enum { TRACE_CLOCK_TSC = 0, TRACE_CLOCK_MONO = 1, TRACE_CLOCK_FAKE = 2 };
extern int sonde__trace_clock_mode;
extern uint64_t (*sonde__trace_fake_clock)(void);
/* Nanoseconds per tick as a 32.32 fixed-point multiplier. */
extern uint64_t sonde__trace_mult;

static inline uint64_t trace_ticks(void)
{
    int mode = __atomic_load_n(&sonde__trace_clock_mode, __ATOMIC_RELAXED);
#if defined(__x86_64__)
    if (SONDE_LIKELY(mode == TRACE_CLOCK_TSC))
        return __builtin_ia32_rdtsc();
#endif
    if (mode == TRACE_CLOCK_FAKE)
        return __atomic_load_n(&sonde__trace_fake_clock, __ATOMIC_RELAXED)();
    return sonde__now_mono_ns();
}

static inline uint64_t trace_ticks_to_ns(uint64_t ticks)
{
    uint64_t mult = __atomic_load_n(&sonde__trace_mult, __ATOMIC_RELAXED);
    return (uint64_t)(((unsigned __int128)ticks * mult) >> 32);
}

/* Initialise the clock once (TSC detection and a first calibration). */
void sonde__trace_clock_init(void);
/* Re-anchor ticks to wall time and refine the TSC rate; called by every
 * flush. */
void sonde__trace_clock_update(void);
/* Wall-clock nanoseconds since the epoch of a tick value. */
int64_t sonde__trace_ticks_to_wall_ns(uint64_t ticks);
/* The tick value at a wall-clock time (inverse of the above). */
uint64_t sonde__trace_wall_ns_to_ticks(int64_t wall_ns);
/* The current wall time in nanoseconds, from the tracing clock. */
int64_t sonde__trace_now_wall_ns(void);
/* Test hook: make fn (wall-clock nanoseconds since the epoch) the clock of
 * every duration and minute; NULL restores the real clock. Not while
 * operations run. */
void sonde__trace_set_clock(uint64_t (*fn)(void));

/* ---- bin index ----
 * Durations (integer nanoseconds) map to the sketch's bins, index
 * ceil(ln(seconds) / ln gamma), without floating point: the leading bit
 * (the octave, 1 to 47) and the next 6 bits select one of 64 slices of the
 * octave; a slice (1/64 of an octave, at most 1.1% wide) holds at most one
 * bin edge (bins are 2% wide). sonde__trace_idx_tab[octave][slice] packs the
 * bin of the slice's first value (low 16 bits, biased by 2048) and the
 * slice's last value of that bin, normalised like the input (high 48 bits;
 * all ones when the whole slice is one bin). Normalised durations below
 * 2^48 ns have at most 48 significant bits, so the comparison is exact:
 * the result is the sketch index of the duration (sonde__sketch_index),
 * computed once per table entry with log() at start. Durations of 0 or 1 ns
 * count as zero; above 2^47 ns (39 hours) go to the top bin (their exact
 * max is kept). */
#define TRACE_IDX_LO (-1002)
#define TRACE_IDX_HI 594
#define TRACE_NBINS (TRACE_IDX_HI - TRACE_IDX_LO + 1)
#define TRACE_IDX_BIAS 2048
extern uint64_t sonde__trace_idx_tab[48][64];

static inline int32_t trace_bin_index(uint64_t ns)
{
    if (ns > ((uint64_t)1 << 47))
        ns = (uint64_t)1 << 47;
    /* ns >= 2: the callers count 0 and 1 as zero. */
    int lz = __builtin_clzll(ns);
    uint64_t m = ns << lz; /* leading one at bit 63 */
    uint64_t v = sonde__trace_idx_tab[63 - lz][(m >> 57) & 63];
    return (int32_t)(v & 0xffff) - TRACE_IDX_BIAS + ((m >> 16) > (v >> 16));
}
void sonde__trace_tables_init(void);

/* ---- per-thread accumulators ---- */

#define TRACE_NO_MINUTE INT64_MIN

struct trace_slot {
    int64_t tag;           /* minute of the data, TRACE_NO_MINUTE when none */
    int64_t harvested;     /* minute the flush collected (flush writes) */
    uint64_t t_lo, t_span; /* ticks of the tag minute (the flush zeroes t_span) */
    uint64_t count, errors, sum_ns, min_ns, max_ns, zero;
    uint32_t bins[TRACE_NBINS];
};

enum { ACC_LIVE = 0, ACC_DEAD = 1, ACC_ORPHAN = 2 };

struct trace_acc {
    uint32_t seq;       /* odd while the writer updates (either slot) */
    uint32_t cur;       /* writer only: slot of its current minute */
    uint64_t late_seen; /* flush only: `late` already counted */
    struct trace_slot slot[2];
    int state;              /* ACC_*: see trace.c, thread exit */
    struct trace_acc *next; /* the operation's list (lock-free push) */
    uint64_t late;          /* writer: operations dropped (slot unharvested) */
};

/* ---- minute ring (memory history) ---- */

#define TRACE_RING_MINUTES 64 /* power of two; windows up to 62 minutes from memory */

struct ring_entry {
    int64_t minute; /* TRACE_NO_MINUTE when empty */
    uint64_t errors;
    uint8_t *blob; /* encoded sketch (count, sum, min, max, bins) */
    size_t len;
};

/* ---- operations ---- */

struct sonde_op {
    uint32_t id; /* global, never reused: index of thread tables */
    uint32_t name_len;
    struct sonde__tracer *tr;
    sonde_histogram *hist;
    sonde_counter *ok, *fail;
    sonde_gauge *anomaly_gauge;
    sonde_logger *lg;       /* "sonde.trace" */
    int log_mode;           /* sonde_trace_opts.log_context */
    struct trace_acc *accs; /* atomic head; pushes by writers, unlinks by flush */
    char *duration_metric;  /* dedicated histogram name or NULL */
    sonde_op *next;         /* tracer's list, creation order */
    /* Under the tracer lock: */
    struct ring_entry ring[TRACE_RING_MINUTES];
    int has_baseline;
    sonde_baseline baseline;
    int anomalous; /* atomic: read lock-free by get_anomaly */
    char name[];
};

struct sonde__tracer {
    pthread_mutex_t lock; /* ops list writes, flush, queries, baselines */
    sonde_registry *reg;
    char *ns, *duration_name, *total_name, *anomaly_name, *op_label, *result_label;
    double *buckets;
    size_t nbuckets;
    size_t max_ops;
    sonde_logger *lg;
    int log_mode;
    sonde_family *hist_fam, *total_fam, *anomaly_fam;
    /* Lock-free name table: open addressing, capacity a power of two at
     * least twice max_ops, never resized; slots written once under lock. */
    sonde_op **table; /* atomic pointers */
    size_t table_mask;
    sonde_op *ops_head, *ops_tail;
    size_t nops; /* atomic */
    /* Defaults for baselines. */
    double factor;
    unsigned window_minutes;
    uint64_t min_count;
    /* Store and flush. */
    sonde__store *store;
    double retention_hours;
    int64_t start_minute; /* first minute this process collected */
    int64_t last_prune_minute;
    int64_t prune_before; /* a prune in progress (bounded per tick), or NO_MINUTE */
    int64_t grace_ns;
    uint64_t late_reported;          /* late drops already counted */
    sonde__sketch scratch, scratch2; /* flush-only working sketches */
    sonde_buf enc;                   /* flush-only encoding buffer */
    /* Self-metrics. */
    sonde_family *dropped_fam;
    sonde_counter *dropped_late, *dropped_limit, *dropped_invalid;
};
typedef struct sonde__tracer sonde__tracer;

/* Options of a tracer, validated: tracer.c. */
int sonde__tracer_create(const sonde_trace_opts *opts, sonde__tracer **out);
void sonde__tracer_destroy(sonde__tracer *tr);
/* The process's tracer, created with defaults at first use (NULL when
 * disabled or out of memory). */
sonde__tracer *sonde__trace_default(void);
/* The process's tracer if it exists (never creates it). */
sonde__tracer *sonde__trace_peek(void);

/* Operations of a tracer. */
int sonde__trace_op_create(sonde__tracer *tr, const sonde_op_opts *opts, sonde_op **out);
sonde_op *sonde__trace_op_find(sonde__tracer *tr, const char *name);

/* One flush step at the tracing clock's current time: collect closed
 * minutes, update the ring, queue and write store rows, evaluate baselines,
 * prune when due. force: also collect the current minute (shutdown). */
void sonde__trace_tick(sonde__tracer *tr, int force);

/* Window figures of one operation / of all; see sonde_trace_get_stats. */
int sonde__trace_stats(sonde__tracer *tr, const char *name, unsigned minutes, sonde_op_stats *out);
int sonde__trace_list(sonde__tracer *tr, unsigned minutes, sonde_op_stats **out, size_t *n);
int sonde__trace_set_baseline(sonde__tracer *tr, const char *name, const sonde_baseline *b);

/* Fill the figures of st from a merged sketch plus error count, and judge
 * it against a baseline (NULL: none) with the tracer defaults. */
void sonde__stats_fill(sonde_op_stats *st, const sonde__sketch *sk, uint64_t errors,
                       const sonde_baseline *b, double def_factor, uint64_t def_min_count);

/* The flush's timer on the runtime worker: schedule.c. */
int sonde__trace_bg_start(sonde__tracer *tr, unsigned interval_ms);
void sonde__trace_bg_stop(void);

/* The /performance query (query.c); its handler is http/route_performance.c. */
typedef struct sonde__perf_query {
    char operation[SONDE_OP_NAME_MAX + 1];
    int has_operation;
    unsigned minutes; /* default 24 h */
} sonde__perf_query;
/* Parse the query string q[0..n) of /performance: operation=NAME,
 * hours=N or minutes=N (percent-decoded). SONDE_OK or SONDE_EINVAL with a
 * reason in err. Fuzzed. */
int sonde__perf_query_parse(const char *q, size_t n, sonde__perf_query *out, char *err,
                            size_t errlen);
/* Register /performance with the HTTP server (servers started later). */

/* For tests: the logging context frame token t pushed on this thread (0
 * when none). */
int sonde__trace_log_ctx(sonde_op_token t);

/* Internal to the trace component. */
void sonde__trace_anomaly_notify(const sonde_op_stats *st, int anomalous);

#endif
