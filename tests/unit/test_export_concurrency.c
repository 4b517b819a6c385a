/*
 * A remote writer sampling a registry that other threads change at the
 * same time: series created, incremented, removed and cleared, collectors
 * added and removed, while the worker samples every 50 ms and another
 * thread samples on demand, reads the stats and renders the self-metrics.
 * Run under TSan (label concurrency). At the end, with the mutators
 * stopped, one more sampling sees exactly the series left.
 */
#include "test.h"

#include <pthread.h>
#include <sonde.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MUTATORS 3
#define ROUNDS 300

static sonde_registry *reg;
static sonde_family *fam;
static atomic_int done;

static void coll(sonde_emitter *em, void *ud)
{
    (void)ud;
    const char *kv[2] = {"k", "v"};
    sonde_emit_family(em, SONDE_GAUGE, "conc_collected", "from a collector", NULL);
    sonde_emit_sample(em, kv, 1, 7);
}

static void *mutator(void *arg)
{
    int id = (int)(intptr_t)arg;
    char key[32], val[32], cname[32];
    snprintf(cname, sizeof cname, "coll_%d", id);
    for (int r = 0; r < ROUNDS; r++) {
        snprintf(key, sizeof key, "t%d", id);
        snprintf(val, sizeof val, "%d", r % 40);
        sonde_counter *c = sonde_family_counter(fam, key, val);
        if (c)
            sonde_counter_inc(c);
        if (r % 7 == 0) {
            snprintf(val, sizeof val, "%d", (r + 20) % 40);
            const char *v[2] = {key, val};
            sonde_family_remove(fam, v, 2);
        }
        if (r % 50 == 25 && id == 0)
            sonde_family_clear(fam);
        if (r % 10 == 0)
            sonde_registry_add_collector(reg, cname, coll, NULL);
        if (r % 10 == 5)
            sonde_registry_remove_collector(reg, cname);
        usleep(500);
    }
    sonde_registry_remove_collector(reg, cname);
    return NULL;
}

static void *reader(void *arg)
{
    sonde_remote_write *rw = arg;
    while (!atomic_load(&done)) {
        sonde_remote_write_sample_now(rw);
        sonde_remote_write_stats st;
        sonde_remote_write_get_stats(rw, &st);
        char *t = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
        sonde_free(t);
        usleep(2000);
    }
    return NULL;
}

TEST(test_remote_write_samples_while_the_registry_changes)
{
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    static const char *const lbl[] = {"thread", "n"};
    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "conc_events_total";
    mo.help = "h";
    mo.label_names = lbl;
    mo.label_count = 2;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &mo, &fam));
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    /* Nothing listens there: batches are retried and dropped past the
     * bound, which exercises the queue alongside the sampler. */
    o.url = "http://127.0.0.1:9/api/v1/write";
    o.registry = reg;
    o.interval_seconds = 0.05;
    o.batch_deadline_seconds = 0.05;
    o.max_samples_per_send = 50;
    o.queue_max_bytes = 65536;
    o.min_backoff_seconds = 0.01;
    o.max_backoff_seconds = 0.05;
    o.flush_timeout_seconds = -1;
    sonde_remote_write *rw = NULL;
    ASSERT_OK(sonde_remote_write_create(&o, &rw));
    ASSERT_OK(sonde_remote_write_start(rw));
    pthread_t m[MUTATORS], rd;
    ASSERT_EQ(pthread_create(&rd, NULL, reader, rw), 0);
    for (int i = 0; i < MUTATORS; i++)
        ASSERT_EQ(pthread_create(&m[i], NULL, mutator, (void *)(intptr_t)i), 0);
    for (int i = 0; i < MUTATORS; i++)
        pthread_join(m[i], NULL);
    atomic_store(&done, 1);
    pthread_join(rd, NULL);

    /* Quiet now: one sampling appends one sample per live series (plus
     * the cardinality counter and the writer's self-metrics) and a
     * staleness marker for each series gone since the previous one. */
    sonde_remote_write_sample_now(rw);
    int n = sonde_remote_write_sample_now(rw);
    char *t = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    int lines = 0;
    for (char *p = t; p && *p; p++)
        if ((p == t || p[-1] == '\n') && *p != '#')
            lines++;
    sonde_free(t);
    ASSERT_EQ(n, lines);
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    ASSERT_LE(st.queue_memory_peak_bytes, 65536);
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(reg);
}

TEST_MAIN()
