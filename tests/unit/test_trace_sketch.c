/* Quantile accuracy of tracing windows, the sketch codec, and the hot
 * path's bin index. */
#include "test.h"

#include <sonde.h>

#include "core/sketch.h"
#include "trace/trace_int.h"

TEST_MAIN()

/* ---- deterministic random numbers ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void)
{
    double u = rng_unit(), v = rng_unit();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Durations in ns: log-normal with median 50 ms and sigma 1. */
static uint64_t lognormal_ns(void)
{
    return (uint64_t)llround(5e7 * exp(rng_normal()));
}

/* Bimodal: 80% fast path around 5 ms (normal, sd 1 ms), 20% slow path
 * log-normal with median 300 ms. */
static uint64_t bimodal_ns(void)
{
    if (rng_unit() < 0.8) {
        double v = 5e6 + 1e6 * rng_normal();
        return v < 1000 ? 1000 : (uint64_t)llround(v);
    }
    return (uint64_t)llround(3e8 * exp(0.5 * rng_normal()));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The exact value the sketch's rank rule designates: sorted[floor(q(n-1))]. */
static double exact_q(const uint64_t *sorted, size_t n, double q)
{
    return (double)sorted[(size_t)(q * (double)(n - 1))] * 1e-9;
}

#define BOUND (SONDE_TRACE_RELATIVE_ERROR + 1e-6)

static void assert_within(const char *what, double est, double exact)
{
    double rel = fabs(est - exact) / exact;
    if (!(rel <= BOUND))
        TEST_FAIL_AT("%s: estimate %.9g vs exact %.9g: relative error %.5f > %.5f", what, est,
                     exact, rel, BOUND);
}

/* ---- a fake clock ---- */

static uint64_t fake_ns;
static uint64_t fake_clock(void)
{
    return __atomic_load_n(&fake_ns, __ATOMIC_RELAXED);
}
static void set_clock(uint64_t ns)
{
    __atomic_store_n(&fake_ns, ns, __ATOMIC_RELAXED);
}

#define MIN_NS UINT64_C(60000000000)
/* 2025-01-01T00:00:00Z, a minute boundary. */
#define EPOCH_MIN UINT64_C(28928160)

static sonde__tracer *new_tracer(sonde_registry **reg)
{
    ASSERT_OK(sonde_registry_create(NULL, reg));
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = *reg;
    sonde__tracer *tr = NULL;
    ASSERT_OK(sonde__tracer_create(&o, &tr));
    return tr;
}

static sonde_op *new_op(sonde__tracer *tr, const char *name)
{
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = name;
    sonde_op *op = NULL;
    ASSERT_OK(sonde__trace_op_create(tr, &o, &op));
    return op;
}

static void run_op(sonde_op *op, uint64_t at, uint64_t dur, int ok)
{
    set_clock(at);
    sonde_op_token t = sonde_op_begin_op(op);
    set_clock(at + dur);
    double s = sonde_op_end(t, ok);
    if (fabs(s - (double)dur * 1e-9) > 1e-12)
        TEST_FAIL_AT("duration %.12g vs %.12g", s, (double)dur * 1e-9);
}

/* 1,000,000 durations through sonde_op_end in one minute; the window's
 * quantiles against the exact ones. */
static void accuracy_through_tracing(uint64_t (*gen)(void), const char *name)
{
    const size_t n = 1000000;
    uint64_t *v = malloc(n * sizeof *v);
    ASSERT(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = gen();
    sonde__trace_set_clock(fake_clock);
    uint64_t start = (EPOCH_MIN + 10) * MIN_NS;
    set_clock(start);
    sonde_registry *reg;
    sonde__tracer *tr = new_tracer(&reg);
    sonde_op *op = new_op(tr, name);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        run_op(op, start + 1000000000, v[i], i % 10 != 0);
        sum += v[i];
    }
    /* Before the flush (the live minute) and after it (the ring). */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            set_clock(start + MIN_NS + 3000000000u);
            sonde__trace_tick(tr, 0);
        }
        sonde_op_stats st;
        ASSERT_OK(sonde__trace_stats(tr, name, 5, &st));
        ASSERT_U64_EQ(st.count, n);
        ASSERT_U64_EQ(st.errors, n / 10);
        ASSERT_DBL_NEAR(st.success_rate, 0.9, 1e-12);
        qsort(v, n, sizeof *v, cmp_u64);
        ASSERT_DBL_NEAR(st.avg_seconds, (double)sum / (double)n * 1e-9, 1e-12);
        ASSERT_DBL_EQ(st.min_seconds, (double)v[0] * 1e-9);
        ASSERT_DBL_EQ(st.max_seconds, (double)v[n - 1] * 1e-9);
        assert_within("p50", st.p50_seconds, exact_q(v, n, 0.50));
        assert_within("p90", st.p90_seconds, exact_q(v, n, 0.90));
        assert_within("p95", st.p95_seconds, exact_q(v, n, 0.95));
        assert_within("p99", st.p99_seconds, exact_q(v, n, 0.99));
    }
    /* Every quantile, from the ring's sketch. */
    const struct ring_entry *e = NULL;
    for (int i = 0; i < TRACE_RING_MINUTES; i++)
        if (op->ring[i].minute == (int64_t)(EPOCH_MIN + 10))
            e = &op->ring[i];
    ASSERT(e != NULL);
    sonde__sketch sk;
    ASSERT_OK(sonde__sketch_init(&sk, 0));
    ASSERT_OK(sonde__sketch_decode(&sk, e->blob, e->len));
    for (int k = 1; k < 1000; k++) {
        double q = k / 1000.0;
        char what[32];
        snprintf(what, sizeof what, "q%.3f", q);
        assert_within(what, sonde__sketch_quantile(&sk, q), exact_q(v, n, q));
    }
    sonde__sketch_free(&sk);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    sonde__trace_set_clock(NULL);
    free(v);
}

TEST(test_lognormal_quantiles_of_a_million_operations_are_within_one_percent)
{
    rng_state = 1;
    accuracy_through_tracing(lognormal_ns, "lognormal");
}

TEST(test_bimodal_quantiles_of_a_million_operations_are_within_one_percent)
{
    rng_state = 2;
    accuracy_through_tracing(bimodal_ns, "bimodal");
}

/* A million samples spread over 60 minutes: the merged 60-minute window
 * answers exactly what one sketch of every sample does. */
TEST(test_merged_window_is_as_accurate_as_one_sketch)
{
    const size_t n = 1000000, minutes = 60;
    uint64_t *v = malloc(n * sizeof *v);
    ASSERT(v != NULL);
    rng_state = 3;
    for (size_t i = 0; i < n; i++)
        v[i] = i % 2 ? lognormal_ns() : bimodal_ns();
    sonde__trace_set_clock(fake_clock);
    uint64_t start = (EPOCH_MIN + 100) * MIN_NS;
    set_clock(start);
    sonde_registry *reg;
    sonde__tracer *tr = new_tracer(&reg);
    sonde_op *op = new_op(tr, "merged");
    sonde__sketch one;
    ASSERT_OK(sonde__sketch_init(&one, 0));
    size_t per = n / minutes;
    for (size_t m = 0; m < minutes; m++) {
        uint64_t at = start + m * MIN_NS + 1000000000u;
        for (size_t i = m * per; i < (m + 1) * per; i++) {
            run_op(op, at, v[i], 1);
            sonde__sketch_add(&one, sonde__sketch_bin_value(trace_bin_index(v[i])));
        }
        set_clock(start + (m + 1) * MIN_NS + 3000000000u);
        sonde__trace_tick(tr, 0);
    }
    size_t total = per * minutes;
    sonde_op_stats st;
    ASSERT_OK(sonde__trace_stats(tr, "merged", 60, &st));
    ASSERT_U64_EQ(st.count, total);
    qsort(v, total, sizeof *v, cmp_u64);
    one.min = (double)v[0] * 1e-9;
    one.max = (double)v[total - 1] * 1e-9;
    ASSERT_DBL_EQ(st.p50_seconds, sonde__sketch_quantile(&one, 0.50));
    ASSERT_DBL_EQ(st.p90_seconds, sonde__sketch_quantile(&one, 0.90));
    ASSERT_DBL_EQ(st.p95_seconds, sonde__sketch_quantile(&one, 0.95));
    ASSERT_DBL_EQ(st.p99_seconds, sonde__sketch_quantile(&one, 0.99));
    assert_within("merged p50", st.p50_seconds, exact_q(v, total, 0.50));
    assert_within("merged p90", st.p90_seconds, exact_q(v, total, 0.90));
    assert_within("merged p95", st.p95_seconds, exact_q(v, total, 0.95));
    assert_within("merged p99", st.p99_seconds, exact_q(v, total, 0.99));
    /* A 10-minute window is the last 10 minutes (plus the current one). */
    ASSERT_OK(sonde__trace_stats(tr, "merged", 10, &st));
    ASSERT_U64_EQ(st.count, per * 10);
    sonde__sketch_free(&one);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    sonde__trace_set_clock(NULL);
    free(v);
}

/* ---- the hot path's bin index ---- */

TEST(test_fast_bin_index_agrees_with_the_sketch_index)
{
    sonde__trace_tables_init();
    /* Every duration up to 300 us, then random log-uniform ones up to
     * 2^47 ns and the integers on both sides of every bin edge. */
    for (uint64_t ns = 2; ns <= 300000; ns++)
        if (trace_bin_index(ns) != sonde__sketch_index((double)ns * 1e-9))
            TEST_FAIL_AT("ns %llu: fast %d exact %d", (unsigned long long)ns, trace_bin_index(ns),
                         sonde__sketch_index((double)ns * 1e-9));
    rng_state = 4;
    for (int i = 0; i < 2000000; i++) {
        uint64_t ns = (uint64_t)llround(exp(log(2.0) + rng_unit() * (47 * log(2.0) - log(2.0))));
        if (ns < 2)
            ns = 2;
        if (trace_bin_index(ns) != sonde__sketch_index((double)ns * 1e-9))
            TEST_FAIL_AT("ns %llu: fast %d exact %d", (unsigned long long)ns, trace_bin_index(ns),
                         sonde__sketch_index((double)ns * 1e-9));
    }
    for (int32_t k = -1000; k < 593; k++) {
        uint64_t edge = (uint64_t)(exp((double)k * 0.020000666706669543) * 1e9);
        for (uint64_t ns = edge > 4 ? edge - 2 : 2; ns <= edge + 2; ns++)
            if (trace_bin_index(ns) != sonde__sketch_index((double)ns * 1e-9))
                TEST_FAIL_AT("edge %d, ns %llu: fast %d exact %d", k, (unsigned long long)ns,
                             trace_bin_index(ns), sonde__sketch_index((double)ns * 1e-9));
    }
    ASSERT_EQ(trace_bin_index(UINT64_MAX), trace_bin_index((uint64_t)1 << 47));
    ASSERT_EQ(trace_bin_index((uint64_t)1 << 47),
              sonde__sketch_index((double)((uint64_t)1 << 47) * 1e-9));
    ASSERT_LE(trace_bin_index(UINT64_MAX), TRACE_IDX_HI);
    ASSERT_GE(trace_bin_index(2), TRACE_IDX_LO);
}

/* ---- the codec ---- */

static void fill_sample(sonde__sketch *s)
{
    rng_state = 5;
    for (int i = 0; i < 5000; i++)
        sonde__sketch_add(s, (double)bimodal_ns() * 1e-9);
    sonde__sketch_add(s, 0);
    sonde__sketch_add(s, -3);
    sonde__sketch_add(s, 1e-12);
    sonde__sketch_add(s, 12345.0);
}

static void assert_same(const sonde__sketch *a, const sonde__sketch *b)
{
    ASSERT_U64_EQ(a->count, b->count);
    ASSERT_U64_EQ(a->zero, b->zero);
    ASSERT_U64_EQ(a->npos, b->npos);
    ASSERT_DBL_EQ(a->sum, b->sum);
    ASSERT_DBL_EQ(a->min, b->min);
    ASSERT_DBL_EQ(a->max, b->max);
    for (int k = 0; k <= 1000; k++)
        ASSERT_DBL_EQ(sonde__sketch_quantile(a, k / 1000.0), sonde__sketch_quantile(b, k / 1000.0));
}

TEST(test_sketch_encoding_round_trips_exactly)
{
    sonde__sketch a, b;
    ASSERT_OK(sonde__sketch_init(&a, 0));
    ASSERT_OK(sonde__sketch_init(&b, 0));
    fill_sample(&a);
    sonde_buf buf = {0};
    ASSERT_OK(sonde__sketch_encode(&a, &buf));
    ASSERT_LT(buf.len, 2000); /* compact: a few bytes per used bin */
    ASSERT_OK(sonde__sketch_decode(&b, buf.data, buf.len));
    assert_same(&a, &b);
    /* Decoding adds: twice the data. */
    ASSERT_OK(sonde__sketch_decode(&b, buf.data, buf.len));
    sonde__sketch c;
    ASSERT_OK(sonde__sketch_init(&c, 0));
    sonde__sketch_merge(&c, &a);
    sonde__sketch_merge(&c, &a);
    assert_same(&b, &c);
    /* An empty sketch. */
    sonde__sketch e, f;
    ASSERT_OK(sonde__sketch_init(&e, 0));
    ASSERT_OK(sonde__sketch_init(&f, 0));
    sonde_buf_reset(&buf);
    ASSERT_OK(sonde__sketch_encode(&e, &buf));
    ASSERT_OK(sonde__sketch_decode(&f, buf.data, buf.len));
    ASSERT_U64_EQ(f.count, 0);
    ASSERT(isnan(sonde__sketch_quantile(&f, 0.5)));
    sonde_buf_free(&buf);
    sonde__sketch_free(&a);
    sonde__sketch_free(&b);
    sonde__sketch_free(&c);
    sonde__sketch_free(&e);
    sonde__sketch_free(&f);
}

TEST(test_sketch_decode_refuses_corrupt_input_and_leaves_the_sketch_alone)
{
    sonde__sketch a, b;
    ASSERT_OK(sonde__sketch_init(&a, 0));
    ASSERT_OK(sonde__sketch_init(&b, 0));
    fill_sample(&a);
    sonde_buf buf = {0};
    ASSERT_OK(sonde__sketch_encode(&a, &buf));
    sonde__sketch_add(&b, 1.0);
    /* Every truncation. */
    for (size_t n = 0; n < buf.len; n++)
        ASSERT_EQ(sonde__sketch_decode(&b, buf.data, n), SONDE_EPARSE);
    /* Trailing byte. */
    uint8_t *p = malloc(buf.len + 1);
    memcpy(p, buf.data, buf.len);
    p[buf.len] = 0;
    ASSERT_EQ(sonde__sketch_decode(&b, p, buf.len + 1), SONDE_EPARSE);
    /* Wrong version. */
    p[0] = 2;
    ASSERT_EQ(sonde__sketch_decode(&b, p, buf.len), SONDE_EPARSE);
    p[0] = 1;
    /* Every single-byte change either still decodes to a consistent sketch
     * or is refused; never a crash, never counts that do not add up. */
    for (size_t i = 1; i < buf.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            p[i] ^= (uint8_t)(1 << bit);
            sonde__sketch t;
            ASSERT_OK(sonde__sketch_init(&t, 0));
            if (sonde__sketch_decode(&t, p, buf.len) == SONDE_OK)
                ASSERT_U64_EQ(t.count, t.zero + t.npos);
            sonde__sketch_free(&t);
            p[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* Count that does not match the bins: header count + 1. */
    ASSERT_U64_EQ(b.count, 1);
    ASSERT_DBL_EQ(b.sum, 1.0);
    /* Hand-made: version, count 1, zero 0, sum/min/max, 1 bin, index huge. */
    uint8_t bad[64];
    size_t k = 0;
    bad[k++] = 1;
    bad[k++] = 1;
    bad[k++] = 0;
    memset(bad + k, 0, 24);
    k += 24;
    bad[k++] = 1;
    bad[k++] = 0xff; /* index step: 0x3fff... */
    bad[k++] = 0xff;
    bad[k++] = 0x7f;
    bad[k++] = 1;
    ASSERT_EQ(sonde__sketch_decode(&b, bad, k), SONDE_EPARSE);
    ASSERT_U64_EQ(b.count, 1);
    free(p);
    sonde_buf_free(&buf);
    sonde__sketch_free(&a);
    sonde__sketch_free(&b);
}

/* Regression: a value far above a full window used to read past the bins
 * while folding (make_room). */
TEST(test_sketch_folds_a_huge_jump_without_reading_past_its_bins)
{
    sonde__sketch s;
    ASSERT_OK(sonde__sketch_init(&s, 64));
    sonde__sketch_add(&s, 1e-8);
    sonde__sketch_add(&s, 2e-8);
    sonde__sketch_add(&s, 1e300);
    ASSERT_U64_EQ(s.count, 3);
    ASSERT_U64_EQ(s.npos, 3);
    ASSERT_DBL_EQ(sonde__sketch_quantile(&s, 1), 1e300);
    /* The two small values were folded into the new lowest bin. */
    uint64_t total = 0;
    for (int32_t i = s.lo; i <= s.hi; i++)
        total += s.bins[i - s.offset];
    ASSERT_U64_EQ(total, 3);
    sonde__sketch_free(&s);
}
