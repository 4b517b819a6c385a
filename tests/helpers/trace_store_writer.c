/*
 * Helper of tests/integration/test_store_kill9.sh.
 *
 *   trace_store_writer write PATH   trace operations minute after minute
 *                                   (a clock running from 7 days ago, one
 *                                   minute per step) into the SQLite store
 *                                   at PATH, writing every minute; prints
 *                                   "ready" once the first rows are
 *                                   committed; runs until killed
 *   trace_store_writer read PATH    print the last 8 days as the store's
 *                                   reader sees them: "total COUNT ERRORS"
 *                                   then one "op NAME COUNT ERRORS P95" line
 *                                   per operation
 */
#include <sonde.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace/trace_int.h"

static uint64_t fake_ns;
static uint64_t fake_clock(void)
{
    return __atomic_load_n(&fake_ns, __ATOMIC_RELAXED);
}

#define SEC UINT64_C(1000000000)
#define MIN_NS (60 * SEC)

static int do_write(const char *path)
{
    uint64_t now_min = (uint64_t)time(NULL) / 60;
    uint64_t start = now_min - 7 * 1440;
    sonde__trace_set_clock(fake_clock);
    fake_ns = start * MIN_NS;
    sonde_registry *reg;
    sonde__tracer *tr;
    sonde_trace_opts o;
    if (sonde_registry_create(NULL, &reg) != SONDE_OK)
        return 1;
    sonde_trace_opts_init(&o);
    o.registry = reg;
    if (sonde__tracer_create(&o, &tr) != SONDE_OK)
        return 1;
    char err[256];
    if (sonde__store_create(path, NULL, &tr->store, err, sizeof err) != SONDE_OK) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }
    tr->retention_hours = 720;
    const char *names[3] = {"clone", "fetch", "push"};
    sonde_op *ops[3];
    for (int k = 0; k < 3; k++) {
        sonde_op_opts oo;
        sonde_op_opts_init(&oo);
        oo.name = names[k];
        if (sonde__trace_op_create(tr, &oo, &ops[k]) != SONDE_OK)
            return 1;
    }
    int ready = 0;
    for (uint64_t m = start;; m++) {
        if (m >= now_min)
            m = start; /* wrap: more delta rows for the same minutes */
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < 20; j++) {
                fake_ns = m * MIN_NS + (uint64_t)(j + 1) * SEC;
                sonde_op_token t = sonde_op_begin_op(ops[k]);
                fake_ns += (uint64_t)(1 + (m + (uint64_t)j * 7) % 300) * 1000000u;
                sonde_op_end(t, (j + k) % 10 != 0);
            }
        fake_ns = (m + 1) * MIN_NS + 3 * SEC;
        sonde__trace_tick(tr, 0);
        if (!ready && sonde__store_pending(tr->store) == 0 && sonde__store_errors(tr->store) == 0) {
            printf("ready\n");
            fflush(stdout);
            ready = 1;
        }
    }
}

static int do_read(const char *path)
{
    sonde_op_stats *v;
    size_t n;
    int rc = sonde_trace_read_store(path, NULL, 8 * 1440, &v, &n);
    if (rc != SONDE_OK) {
        fprintf(stderr, "read: %s: %s\n", sonde_strerror(rc), sonde_last_error());
        return 1;
    }
    unsigned long long count = 0, errors = 0;
    for (size_t i = 0; i < n; i++) {
        count += v[i].count;
        errors += v[i].errors;
    }
    printf("total %llu %llu\n", count, errors);
    for (size_t i = 0; i < n; i++)
        printf("op %s %llu %llu %.6f\n", v[i].operation, (unsigned long long)v[i].count,
               (unsigned long long)v[i].errors, v[i].p95_seconds);
    sonde_free(v);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2]);
    if (argc == 3 && strcmp(argv[1], "read") == 0)
        return do_read(argv[2]);
    fprintf(stderr, "usage: trace_store_writer write|read PATH\n");
    return 2;
}
