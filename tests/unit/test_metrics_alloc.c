/*
 * The hot path never allocates: this executable replaces malloc, calloc and
 * realloc to count calls, warms each operation up once (a thread's first
 * update attaches its cell block), then requires zero allocations over many
 * updates. Not built with sanitizers, which supply their own allocator.
 */
#include "test.h"

#include <sonde.h>

#include <dlfcn.h>
#include <stdatomic.h>

TEST_MAIN()

static atomic_long allocs;
static int counting;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t n)
{
    if (counting)
        atomic_fetch_add(&allocs, 1);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (counting)
        atomic_fetch_add(&allocs, 1);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (counting)
        atomic_fetch_add(&allocs, 1);
    return __libc_realloc(p, n);
}

TEST(test_hot_path_updates_do_not_allocate)
{
    sonde_registry *r;
    ASSERT_OK(sonde_registry_create(NULL, &r));
    sonde_counter *c;
    sonde_gauge *g;
    sonde_histogram *h;
    ASSERT_OK(sonde_counter_create(r, "a_total", "", &c));
    ASSERT_OK(sonde_gauge_create(r, "g", "", &g));
    ASSERT_OK(sonde_histogram_create(r, "h", "", NULL, 0, &h));
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *ln[] = {"method", "code"};
    o.name = "req_total";
    o.label_names = ln;
    o.label_count = 2;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(r, SONDE_COUNTER, &o, &f));
    sonde_counter *child = sonde_family_counter(f, "GET", "200");
    sonde_family_counter(f, "POST", "500");
    sonde_metric_opts_init(&o);
    const double q[] = {0.5, 0.99};
    o.name = "s";
    o.quantiles = q;
    o.quantile_count = 2;
    sonde_family *sf;
    ASSERT_OK(sonde_family_create(r, SONDE_SUMMARY, &o, &sf));
    sonde_summary *sm = sonde_family_as_summary(sf);

    /* warm-up: attaches this thread's cells */
    sonde_counter_inc(c);

    atomic_store(&allocs, 0);
    counting = 1;
    for (int i = 0; i < 100000; i++) {
        sonde_counter_inc(c);
        sonde_counter_add(c, 2.5);
        sonde_gauge_set(g, i);
        sonde_gauge_add(g, 1);
        sonde_histogram_observe(h, i * 0.001);
        sonde_counter_inc(child);
        sonde_counter_inc(sonde_family_counter(f, i % 2 ? "GET" : "POST", i % 2 ? "200" : "500"));
        sonde_summary_observe(sm, i % 1000);
    }
    counting = 0;
    ASSERT_EQ(atomic_load(&allocs), 0);
    /* and the counting really works: a render allocates */
    counting = 1;
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    counting = 0;
    ASSERT_GT(atomic_load(&allocs), 0);
    sonde_free(txt);
    ASSERT_DBL_EQ(sonde_counter_get(c), 1 + 100000 * 3.5);
    sonde_registry_destroy(r);
}
