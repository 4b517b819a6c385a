/*
 * The tracing clock. On x86-64 with an invariant TSC (constant rate, not
 * stopped in sleep states: CPUID 0x80000007 EDX bit 8) durations are TSC
 * differences, the cheapest timestamp the CPU offers; the rate is measured
 * against CLOCK_MONOTONIC once at start (1 ms) and refined at every flush
 * over the whole run, so its error shrinks to parts per million. Elsewhere
 * ticks are CLOCK_MONOTONIC nanoseconds. Minutes are wall-clock minutes:
 * ticks are mapped to CLOCK_REALTIME through an anchor that every flush
 * renews, so a stepped wall clock moves minute boundaries at the next
 * flush.
 */
#include "trace_int.h"

#include "core/sketch.h"

#include <math.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

int sonde__trace_clock_mode = TRACE_CLOCK_MONO;
uint64_t (*sonde__trace_fake_clock)(void);
uint64_t sonde__trace_mult = (uint64_t)1 << 32;

uint64_t sonde__trace_idx_tab[48][64];

/* The anchor, published under a sequence count (readers: slow paths). */
static uint32_t anchor_seq;
static uint64_t anchor_ticks;
static int64_t anchor_wall;
/* First calibration point, for refining the TSC rate; real mode only. */
static uint64_t base_ticks, base_mono;
static int detected_mode = TRACE_CLOCK_MONO;
static pthread_mutex_t clock_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t clock_once = PTHREAD_ONCE_INIT;

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void publish_anchor(uint64_t ticks, int64_t wall)
{
    uint32_t s = __atomic_load_n(&anchor_seq, __ATOMIC_RELAXED);
    __atomic_store_n(&anchor_seq, s + 1, __ATOMIC_RELAXED);
    TRACE_FENCE(__ATOMIC_RELEASE);
    __atomic_store_n(&anchor_ticks, ticks, __ATOMIC_RELAXED);
    __atomic_store_n(&anchor_wall, wall, __ATOMIC_RELAXED);
    __atomic_store_n(&anchor_seq, s + 2, __ATOMIC_RELEASE);
}

static void read_anchor(uint64_t *ticks, int64_t *wall)
{
    for (;;) {
        uint32_t s = __atomic_load_n(&anchor_seq, __ATOMIC_ACQUIRE);
        *ticks = __atomic_load_n(&anchor_ticks, __ATOMIC_RELAXED);
        *wall = __atomic_load_n(&anchor_wall, __ATOMIC_RELAXED);
        TRACE_FENCE(__ATOMIC_ACQUIRE);
        if (!(s & 1) && __atomic_load_n(&anchor_seq, __ATOMIC_RELAXED) == s)
            return;
    }
}

/* The sketch index of a duration of n ns (what the table reproduces). */
static int32_t exact_index(uint64_t n)
{
    return sonde__sketch_index((double)n * 1e-9);
}

void sonde__trace_tables_init(void)
{
    for (int e = 1; e < 48; e++) {
        uint64_t base = (uint64_t)1 << e;
        for (int j = 0; j < 64; j++) {
            /* The integers of the slice: the values whose 6 bits after the
             * leading one are j (fewer than 64 integers per octave below
             * 2^6: some slices are empty). */
            uint64_t lo = base + (((uint64_t)j << e) + 63) / 64;
            uint64_t hi = base + (((uint64_t)(j + 1) << e) + 63) / 64 - 1;
            if (lo > hi) {
                sonde__trace_idx_tab[e][j] =
                    ((uint64_t)0xffffffffffffULL << 16) | (uint64_t)(TRACE_IDX_LO + TRACE_IDX_BIAS);
                continue;
            }
            int32_t i0 = exact_index(lo);
            /* Last value of bin i0 within the slice. */
            uint64_t b;
            double edge = exp((double)i0 * 0.020000666706669543 /* ln gamma */) * 1e9;
            if (edge < (double)hi)
                b = edge < (double)lo ? lo : (uint64_t)edge;
            else
                b = hi;
            while (b < hi && exact_index(b + 1) == i0)
                b++;
            while (b > lo && exact_index(b) != i0)
                b--;
            uint64_t top = b >= hi ? 0xffffffffffffULL : ((b << (63 - e)) >> 16);
            sonde__trace_idx_tab[e][j] = (top << 16) | (uint64_t)(i0 + TRACE_IDX_BIAS);
        }
    }
}

static int tsc_invariant(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000000, &a, &b, &c, &d) || a < 0x80000007)
        return 0;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d))
        return 0;
    return (d >> 8) & 1;
#else
    return 0;
#endif
}

/* Measure the TSC rate over `ns` nanoseconds of CLOCK_MONOTONIC. */
static uint64_t tsc_calibrate(uint64_t ns, uint64_t *t_end, uint64_t *m_end)
{
#if defined(__x86_64__)
    uint64_t m0 = sonde__now_mono_ns(), t0 = __builtin_ia32_rdtsc();
    uint64_t m1, t1;
    do {
        t1 = __builtin_ia32_rdtsc();
        m1 = sonde__now_mono_ns();
    } while (m1 - m0 < ns);
    *t_end = t1;
    *m_end = m1;
    if (t1 <= t0)
        return 0;
    return (uint64_t)((((unsigned __int128)(m1 - m0)) << 32) / (t1 - t0));
#else
    (void)ns;
    (void)t_end;
    (void)m_end;
    return 0;
#endif
}

static void clock_init_once(void)
{
    sonde__trace_tables_init();
    uint64_t t, m;
    uint64_t mult = 0;
    if (tsc_invariant())
        mult = tsc_calibrate(1000000, &t, &m);
    pthread_mutex_lock(&clock_lock);
    /* A rate outside 100 MHz .. 20 GHz is not a TSC we trust. */
    if (mult && mult < ((uint64_t)10 << 32) && mult > ((uint64_t)1 << 32) / 20) {
        detected_mode = TRACE_CLOCK_TSC;
        base_ticks = t;
        base_mono = m;
        __atomic_store_n(&sonde__trace_mult, mult, __ATOMIC_RELAXED);
        publish_anchor(t, realtime_ns());
    } else {
        detected_mode = TRACE_CLOCK_MONO;
        __atomic_store_n(&sonde__trace_mult, (uint64_t)1 << 32, __ATOMIC_RELAXED);
        publish_anchor(sonde__now_mono_ns(), realtime_ns());
    }
    if (__atomic_load_n(&sonde__trace_clock_mode, __ATOMIC_RELAXED) != TRACE_CLOCK_FAKE)
        __atomic_store_n(&sonde__trace_clock_mode, detected_mode, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&clock_lock);
}

void sonde__trace_clock_init(void)
{
    pthread_once(&clock_once, clock_init_once);
}

void sonde__trace_clock_update(void)
{
    sonde__trace_clock_init();
    pthread_mutex_lock(&clock_lock);
    int mode = __atomic_load_n(&sonde__trace_clock_mode, __ATOMIC_RELAXED);
    if (mode == TRACE_CLOCK_TSC) {
#if defined(__x86_64__)
        uint64_t t = __builtin_ia32_rdtsc();
        uint64_t m = sonde__now_mono_ns();
        int64_t w = realtime_ns();
        /* Refine the rate once the baseline is long enough to beat the
         * first 1 ms measurement. */
        if (m - base_mono > 1000000000u && t > base_ticks) {
            uint64_t mult =
                (uint64_t)((((unsigned __int128)(m - base_mono)) << 32) / (t - base_ticks));
            if (mult)
                __atomic_store_n(&sonde__trace_mult, mult, __ATOMIC_RELAXED);
        }
        publish_anchor(t, w);
#endif
    } else if (mode == TRACE_CLOCK_MONO) {
        publish_anchor(sonde__now_mono_ns(), realtime_ns());
    }
    pthread_mutex_unlock(&clock_lock);
}

int64_t sonde__trace_ticks_to_wall_ns(uint64_t ticks)
{
    uint64_t at;
    int64_t aw;
    read_anchor(&at, &aw);
    if (ticks >= at)
        return aw + (int64_t)trace_ticks_to_ns(ticks - at);
    return aw - (int64_t)trace_ticks_to_ns(at - ticks);
}

uint64_t sonde__trace_wall_ns_to_ticks(int64_t wall_ns)
{
    uint64_t at;
    int64_t aw;
    read_anchor(&at, &aw);
    uint64_t mult = __atomic_load_n(&sonde__trace_mult, __ATOMIC_RELAXED);
    if (!mult)
        mult = 1;
    if (wall_ns >= aw) {
        uint64_t d = (uint64_t)(wall_ns - aw);
        return at + (uint64_t)(((unsigned __int128)d << 32) / mult);
    }
    uint64_t d = (uint64_t)(aw - wall_ns);
    uint64_t dt = (uint64_t)(((unsigned __int128)d << 32) / mult);
    return dt > at ? 0 : at - dt;
}

int64_t sonde__trace_now_wall_ns(void)
{
    sonde__trace_clock_init();
    return sonde__trace_ticks_to_wall_ns(trace_ticks());
}

void sonde__trace_set_clock(uint64_t (*fn)(void))
{
    sonde__trace_clock_init();
    pthread_mutex_lock(&clock_lock);
    if (fn) {
        __atomic_store_n(&sonde__trace_fake_clock, fn, __ATOMIC_RELAXED);
        __atomic_store_n(&sonde__trace_mult, (uint64_t)1 << 32, __ATOMIC_RELAXED);
        publish_anchor(0, 0);
        __atomic_store_n(&sonde__trace_clock_mode, TRACE_CLOCK_FAKE, __ATOMIC_RELEASE);
    } else {
        __atomic_store_n(&sonde__trace_clock_mode, detected_mode, __ATOMIC_RELEASE);
        if (detected_mode == TRACE_CLOCK_TSC) {
#if defined(__x86_64__)
            uint64_t t = __builtin_ia32_rdtsc();
            uint64_t m = sonde__now_mono_ns();
            uint64_t mult =
                m - base_mono > 1000000u && t > base_ticks
                    ? (uint64_t)((((unsigned __int128)(m - base_mono)) << 32) / (t - base_ticks))
                    : 0;
            if (!mult)
                mult = tsc_calibrate(1000000, &t, &m);
            __atomic_store_n(&sonde__trace_mult, mult ? mult : (uint64_t)1 << 32, __ATOMIC_RELAXED);
            publish_anchor(t, realtime_ns());
#endif
        } else {
            __atomic_store_n(&sonde__trace_mult, (uint64_t)1 << 32, __ATOMIC_RELAXED);
            publish_anchor(sonde__now_mono_ns(), realtime_ns());
        }
    }
    pthread_mutex_unlock(&clock_lock);
}
