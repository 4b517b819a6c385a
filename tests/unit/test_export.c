/* Remote write sampler, encoder, queue and parsers; Pushgateway paths. */
#include "export/export_int.h"
#include "test.h"

#include <math.h>
#include <snappy-c.h>
#include <sonde.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Decode a queued block back into a WriteRequest. */
static SondeRw__WriteRequest *decode(const uint8_t *d, size_t n)
{
    size_t rawn = 0;
    if (snappy_uncompressed_length((const char *)d, n, &rawn) != SNAPPY_OK)
        return NULL;
    char *raw = malloc(rawn + 1);
    if (snappy_uncompress((const char *)d, n, raw, &rawn) != SNAPPY_OK) {
        free(raw);
        return NULL;
    }
    SondeRw__WriteRequest *r = sonde_rw__write_request__unpack(NULL, rawn, (uint8_t *)raw);
    free(raw);
    return r;
}

/* Render a series' labels as name{a="b",...} with __name__ first. */
static void series_text(const SondeRw__TimeSeries *ts, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < ts->n_labels; i++)
        if (strcmp(ts->labels[i]->name, "__name__") == 0)
            o += (size_t)snprintf(out + o, n - o, "%s{", ts->labels[i]->value);
    for (size_t i = 0; i < ts->n_labels && o < n; i++)
        if (strcmp(ts->labels[i]->name, "__name__") != 0)
            o += (size_t)snprintf(out + o, n - o, "%s=\"%s\",", ts->labels[i]->name,
                                  ts->labels[i]->value);
    if (o < n)
        snprintf(out + o, n - o, "}");
}

static const SondeRw__TimeSeries *find(SondeRw__WriteRequest *r, const char *text)
{
    char buf[512];
    for (size_t i = 0; i < r->n_timeseries; i++) {
        series_text(r->timeseries[i], buf, sizeof buf);
        if (strcmp(buf, text) == 0)
            return r->timeseries[i];
    }
    return NULL;
}

static SondeRw__WriteRequest *sample_and_encode(sonde__rw_sampler *s, long *count)
{
    *count = sonde__rw_sample(s, 1700000000000, sonde__now_mono_ns());
    sonde__rw_encoder e = {0};
    uint8_t *d = NULL;
    size_t n = 0;
    if (sonde__rw_encode(&e, s->pending, s->npending, &d, &n, NULL) != SONDE_OK)
        return NULL;
    sonde__rw_consume(s, s->npending);
    sonde__rw_encoder_free(&e);
    SondeRw__WriteRequest *r = decode(d, n);
    sonde__free(d);
    return r;
}

TEST(test_sampler_sends_every_type_with_sorted_labels_and_external_labels)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    const char *ln[] = {"path", "method"};
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "http_requests_total";
    o.label_names = ln;
    o.label_count = 2;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &o, &f));
    sonde_counter_add(sonde_family_counter(f, "/a", "GET"), 7);
    sonde_gauge *g;
    ASSERT_OK(sonde_gauge_create(reg, "temperature_celsius", "t", &g));
    sonde_gauge_set(g, -3.5);
    double b[] = {0.1, 1};
    sonde_histogram *h;
    ASSERT_OK(sonde_histogram_create(reg, "lat_seconds", "l", b, 2, &h));
    sonde_histogram_observe(h, 0.5);
    sonde_histogram_observe(h, 5);

    const char *ext[] = {"instance", "box1", "method", "ignored"};
    sonde__rw_sampler s;
    ASSERT_OK(sonde__rw_sampler_init(&s, reg, ext, 2, NULL, 0, NULL, 0));
    long n = 0;
    SondeRw__WriteRequest *r = sample_and_encode(&s, &n);
    ASSERT(r != NULL);
    ASSERT_EQ(n, (long)r->n_timeseries);
    const SondeRw__TimeSeries *ts =
        find(r, "http_requests_total{instance=\"box1\",method=\"GET\",path=\"/a\",}");
    ASSERT(ts != NULL);
    ASSERT_DBL_EQ(ts->samples[0]->value, 7);
    ASSERT_EQ(ts->samples[0]->timestamp, 1700000000000);
    /* Sorted by name, bytewise. */
    for (size_t i = 1; i < ts->n_labels; i++)
        ASSERT(strcmp(ts->labels[i - 1]->name, ts->labels[i]->name) < 0);
    ts = find(r, "temperature_celsius{instance=\"box1\",method=\"ignored\",}");
    ASSERT(ts != NULL);
    ASSERT_DBL_EQ(ts->samples[0]->value, -3.5);
    ts = find(r, "lat_seconds_bucket{instance=\"box1\",le=\"1\",method=\"ignored\",}");
    ASSERT(ts != NULL);
    ASSERT_DBL_EQ(ts->samples[0]->value, 1);
    ts = find(r, "lat_seconds_bucket{instance=\"box1\",le=\"+Inf\",method=\"ignored\",}");
    ASSERT(ts != NULL);
    ASSERT_DBL_EQ(ts->samples[0]->value, 2);
    ASSERT(find(r, "lat_seconds_sum{instance=\"box1\",method=\"ignored\",}") != NULL);
    ASSERT_DBL_EQ(
        find(r, "lat_seconds_count{instance=\"box1\",method=\"ignored\",}")->samples[0]->value, 2);
    sonde_rw__write_request__free_unpacked(r, NULL);
    sonde__rw_sampler_free(&s);
    sonde_registry_destroy(reg);
}

static void coll(sonde_emitter *em, void *ud)
{
    (void)ud;
    sonde_emit_family(em, SONDE_GAUGE, "queue_depth", "d", NULL);
    const char *kv[] = {"queue", "mail"};
    sonde_emit_sample(em, kv, 1, 42);
}

TEST(test_sampler_filters_by_name_and_reads_collectors)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_gauge *g;
    ASSERT_OK(sonde_gauge_create(reg, "keep_me", "k", &g));
    ASSERT_OK(sonde_gauge_create(reg, "keep_not_debug", "k", &g));
    ASSERT_OK(sonde_gauge_create(reg, "other", "o", &g));
    ASSERT_OK(sonde_registry_add_collector(reg, "c", coll, NULL));
    const char *keep[] = {"keep_.*", "queue_depth"};
    const char *drop[] = {".*debug"};
    sonde__rw_sampler s;
    ASSERT_OK(sonde__rw_sampler_init(&s, reg, NULL, 0, keep, 2, drop, 1));
    long n = 0;
    SondeRw__WriteRequest *r = sample_and_encode(&s, &n);
    ASSERT(r != NULL);
    ASSERT_EQ(r->n_timeseries, 2);
    ASSERT(find(r, "keep_me{}") != NULL);
    ASSERT_DBL_EQ(find(r, "queue_depth{queue=\"mail\",}")->samples[0]->value, 42);
    sonde_rw__write_request__free_unpacked(r, NULL);
    sonde__rw_sampler_free(&s);

    const char *bad[] = {"(unclosed"};
    ASSERT_EQ(sonde__rw_sampler_init(&s, reg, NULL, 0, bad, 1, NULL, 0), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "(unclosed");
    sonde__rw_sampler_free(&s);
    sonde_registry_destroy(reg);
}

TEST(test_sampler_marks_vanished_series_stale_once)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    const char *ln[] = {"job"};
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "jobs_running";
    o.label_names = ln;
    o.label_count = 1;
    sonde_family *f;
    ASSERT_OK(sonde_family_create(reg, SONDE_GAUGE, &o, &f));
    sonde_gauge_set(sonde_family_gauge(f, "a"), 1);
    sonde_gauge_set(sonde_family_gauge(f, "b"), 2);
    sonde__rw_sampler s;
    const char *keep[] = {"jobs_running"};
    ASSERT_OK(sonde__rw_sampler_init(&s, reg, NULL, 0, keep, 1, NULL, 0));
    long n;
    SondeRw__WriteRequest *r = sample_and_encode(&s, &n);
    ASSERT_EQ(r->n_timeseries, 2);
    sonde_rw__write_request__free_unpacked(r, NULL);
    const char *va[] = {"a"};
    ASSERT_OK(sonde_family_remove(f, va, 1));
    r = sample_and_encode(&s, &n);
    ASSERT_EQ(r->n_timeseries, 2);
    const SondeRw__TimeSeries *ts = find(r, "jobs_running{job=\"a\",}");
    ASSERT(ts != NULL);
    uint64_t bits;
    memcpy(&bits, &ts->samples[0]->value, 8);
    ASSERT_U64_EQ(bits, SONDE__STALE_NAN_BITS);
    sonde_rw__write_request__free_unpacked(r, NULL);
    /* Only once. */
    r = sample_and_encode(&s, &n);
    ASSERT_EQ(r->n_timeseries, 1);
    sonde_rw__write_request__free_unpacked(r, NULL);
    sonde__rw_sampler_free(&s);
    sonde_registry_destroy(reg);
}

static sonde__rw_block *blk(uint32_t id, uint32_t len)
{
    sonde__rw_block *b = calloc(1, sizeof *b);
    b->data = sonde__malloc(len);
    memset(b->data, (int)(id & 0xff), len);
    memcpy(b->data, &id, sizeof id);
    b->len = len;
    b->nsamples = id;
    return b;
}

static uint32_t id_of(sonde__rw_block *b)
{
    uint32_t id;
    memcpy(&id, b->data, sizeof id);
    return id;
}

TEST(test_queue_in_memory_drops_oldest_past_its_bound)
{
    sonde__rw_queue q;
    ASSERT_OK(sonde__rw_queue_init(&q, 10 * (1000 + SONDE__RW_BLOCK_OVERHEAD), NULL, 0));
    for (uint32_t i = 1; i <= 15; i++)
        sonde__rw_queue_push(&q, blk(i, 1000));
    ASSERT_LE(q.mem_bytes, q.mem_max);
    ASSERT_LE(q.mem_peak, q.mem_max);
    /* 1..5 dropped: their samples (id) counted. */
    ASSERT_U64_EQ(q.dropped_full, 1 + 2 + 3 + 4 + 5);
    for (uint32_t i = 6; i <= 15; i++) {
        sonde__rw_block *b = sonde__rw_queue_pop(&q);
        ASSERT(b != NULL);
        ASSERT_EQ(id_of(b), i);
        sonde__rw_block_free(b);
    }
    ASSERT(sonde__rw_queue_pop(&q) == NULL);
    sonde__rw_queue_free(&q);
}

TEST(test_queue_bound_counts_the_batch_being_sent)
{
    /* Room for 10 blocks; one is taken out to be sent (reserved): the
     * queue holds 9 more, and a push that would exceed the bound with the
     * queue empty drops the new block rather than overshoot. */
    sonde__rw_queue q;
    ASSERT_OK(sonde__rw_queue_init(&q, 10 * (1000 + SONDE__RW_BLOCK_OVERHEAD), NULL, 0));
    sonde__rw_queue_push(&q, blk(1, 1000));
    sonde__rw_block *sending = sonde__rw_queue_pop(&q);
    q.reserved = 1000 + SONDE__RW_BLOCK_OVERHEAD;
    for (uint32_t i = 2; i <= 20; i++)
        sonde__rw_queue_push(&q, blk(i, 1000));
    ASSERT_LE(q.mem_bytes + q.reserved, q.mem_max);
    ASSERT_LE(q.mem_peak, q.mem_max);
    ASSERT_U64_EQ(q.mem_samples, 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19 + 20);
    sonde__rw_queue_free(&q);
    ASSERT_OK(sonde__rw_queue_init(&q, 2000 + 2 * SONDE__RW_BLOCK_OVERHEAD, NULL, 0));
    q.reserved = 1500 + SONDE__RW_BLOCK_OVERHEAD;
    sonde__rw_queue_push(&q, blk(7, 1000));
    ASSERT(q.head == NULL);
    ASSERT_U64_EQ(q.dropped_full, 7);
    sonde__rw_queue_free(&q);
    sonde__rw_block_free(sending);
}

TEST(test_remote_write_queue_stays_within_its_bound_during_an_outage)
{
    /* 5,000 series sampled 20 times toward a port that refuses
     * connections, with the smallest bound (64 KiB): the memory held by
     * queued batches, the one being retried included, never exceeds it. */
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    static const char *const lbl[] = {"id"};
    sonde_metric_opts mo;
    sonde_metric_opts_init(&mo);
    mo.name = "outage_total";
    mo.help = "h";
    mo.label_names = lbl;
    mo.label_count = 1;
    mo.max_series = 5000;
    sonde_family *fam = NULL;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &mo, &fam));
    char id[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "%d", i);
        sonde_counter_add(sonde_family_counter(fam, id), i);
    }
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    o.url = "http://127.0.0.1:9/api/v1/write";
    o.registry = reg;
    o.interval_seconds = 86400;
    o.queue_max_bytes = 65536;
    o.min_backoff_seconds = 0.01;
    o.max_backoff_seconds = 0.02;
    o.flush_timeout_seconds = -1;
    sonde_remote_write *rw = NULL;
    ASSERT_OK(sonde_remote_write_create(&o, &rw));
    ASSERT_OK(sonde_remote_write_start(rw));
    for (int i = 0; i < 20; i++) {
        sonde_remote_write_sample_now(rw);
        usleep(20000);
        sonde_remote_write_stats st;
        sonde_remote_write_get_stats(rw, &st);
        ASSERT_LE(st.queue_memory_bytes, 65536);
    }
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    ASSERT_LE(st.queue_memory_peak_bytes, 65536);
    ASSERT_GT(st.dropped_queue_full, 0);
    ASSERT_U64_EQ(st.samples_sent, 0);
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(reg);
}

TEST(test_queue_overflows_to_disk_in_order_and_survives_reopen)
{
    char dir[] = "/tmp/sonde-rwq-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/q", dir);
    sonde__rw_queue q;
    size_t mem = 3 * (1000 + SONDE__RW_BLOCK_OVERHEAD);
    ASSERT_OK(sonde__rw_queue_init(&q, mem, path, 1 << 20));
    for (uint32_t i = 1; i <= 20; i++)
        sonde__rw_queue_push(&q, blk(i, 1000));
    ASSERT_LE(q.mem_peak, mem);
    ASSERT_U64_EQ(q.dropped_full, 0);
    ASSERT_U64_EQ(sonde__rw_queue_samples(&q), 210);
    for (uint32_t i = 1; i <= 5; i++) {
        sonde__rw_block *b = sonde__rw_queue_pop(&q);
        ASSERT_EQ(id_of(b), i);
        sonde__rw_block_free(b);
    }
    /* Memory blocks go back to disk on shutdown; a new queue sees all. */
    ASSERT_OK(sonde__rw_queue_spill(&q));
    sonde__rw_queue_free(&q);
    ASSERT_OK(sonde__rw_queue_init(&q, mem, path, 1 << 20));
    ASSERT_U64_EQ(sonde__rw_queue_samples(&q), 210 - 15);
    for (uint32_t i = 6; i <= 20; i++) {
        sonde__rw_block *b = sonde__rw_queue_pop(&q);
        ASSERT(b != NULL);
        ASSERT_EQ(id_of(b), i);
        sonde__rw_block_free(b);
    }
    ASSERT(sonde__rw_queue_pop(&q) == NULL);
    sonde__rw_queue_free(&q);

    /* Past the disk bound the oldest go, counted. */
    ASSERT_OK(sonde__rw_queue_init(&q, mem, path, 5 * 1012));
    for (uint32_t i = 1; i <= 20; i++)
        sonde__rw_queue_push(&q, blk(i, 1000));
    ASSERT_LE(sonde__rw_queue_disk_bytes(&q), 5 * 1012);
    ASSERT_GT(q.dropped_full, 0);
    sonde__rw_block *b = sonde__rw_queue_pop(&q);
    uint32_t first = id_of(b);
    sonde__rw_block_free(b);
    ASSERT_U64_EQ(q.dropped_full, (uint64_t)(first - 1) * first / 2);
    uint32_t prev = first;
    while ((b = sonde__rw_queue_pop(&q))) {
        ASSERT_EQ(id_of(b), prev + 1);
        prev = id_of(b);
        sonde__rw_block_free(b);
    }
    ASSERT_EQ(prev, 20);
    sonde__rw_queue_free(&q);

    /* A damaged record ends the replay there. */
    ASSERT_OK(sonde__rw_queue_init(&q, 65536, path, 1 << 20));
    ASSERT_OK(sonde__rw_queue_spill(&q)); /* nothing in memory: no-op */
    sonde__rw_queue_free(&q);
    unlink(path);
    ASSERT_OK(sonde__rw_queue_init(&q, 1100, path, 1 << 20));
    for (uint32_t i = 1; i <= 4; i++)
        sonde__rw_queue_push(&q, blk(i, 1000));
    sonde__rw_queue_free(&q);
    FILE *fp = fopen(path, "r+b");
    ASSERT(fp != NULL);
    fseek(fp, 16 + 2 * 1012 + 12 + 100, SEEK_SET); /* inside the third disk record */
    fputc('X', fp);
    fclose(fp);
    ASSERT_OK(sonde__rw_queue_init(&q, 1100, path, 1 << 20));
    ASSERT_GT(q.disk_errors, 0);
    ASSERT_U64_EQ(q.disk_samples, 2 + 3);
    sonde__rw_queue_free(&q);
    unlink(path);
    rmdir(dir);
}

TEST(test_retry_after_parses_seconds_and_http_dates)
{
    double s = -1;
    ASSERT_EQ(sonde__parse_retry_after("120", 3, 0, &s), 0);
    ASSERT_DBL_EQ(s, 120);
    ASSERT_EQ(sonde__parse_retry_after(" 2 \r\n", 5, 0, &s), 0);
    ASSERT_DBL_EQ(s, 2);
    /* 784111777 = Sun, 06 Nov 1994 08:49:37 GMT */
    const char *d1 = "Sun, 06 Nov 1994 08:49:37 GMT";
    ASSERT_EQ(sonde__parse_retry_after(d1, strlen(d1), 784111777 - 30, &s), 0);
    ASSERT_DBL_EQ(s, 30);
    const char *d2 = "Sunday, 06-Nov-94 08:49:37 GMT";
    ASSERT_EQ(sonde__parse_retry_after(d2, strlen(d2), 784111777 - 5, &s), 0);
    ASSERT_DBL_EQ(s, 5);
    const char *d3 = "Sun Nov  6 08:49:37 1994";
    ASSERT_EQ(sonde__parse_retry_after(d3, strlen(d3), 784111777 + 100, &s), 0);
    ASSERT_DBL_EQ(s, 0);
    const char *bad[] = {"",
                         "abc",
                         "12a",
                         "-1",
                         "Sun, 06 Nov 1994 08:49:37",
                         "Sun, 06 Foo 1994 08:49:37 GMT",
                         "Sun, 32 Nov 1994 08:49:37 GMT"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_EQ(sonde__parse_retry_after(bad[i], strlen(bad[i]), 0, &s), -1);
}

TEST(test_push_path_encodes_grouping_key)
{
    char out[256];
    const char *g[] = {"instance", "host:9/x", "empty", "", "zone", "eu west"};
    int n = sonde_push_path("backup", g, 3, out, sizeof out);
    ASSERT_GT(n, 0);
    ASSERT_STR_EQ(out, "/metrics/job/backup/instance@base64/aG9zdDo5L3g=/empty@base64/=/zone/"
                       "eu%20west");
    ASSERT_EQ(sonde_push_path("a/b", NULL, 0, out, sizeof out), 24);
    ASSERT_STR_EQ(out, "/metrics/job@base64/YS9i");
    const char *badname[] = {"1x", "v"};
    ASSERT_EQ(sonde_push_path("j", badname, 1, out, sizeof out), SONDE_EINVAL);
    ASSERT_EQ(sonde_push_path("", NULL, 0, out, sizeof out), SONDE_EINVAL);
    ASSERT_EQ(sonde_push_path("job", NULL, 0, out, 8), SONDE_ETOOBIG);
}

TEST(test_remote_write_create_rejects_bad_options)
{
    sonde_remote_write *rw = NULL;
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    ASSERT_EQ(sonde_remote_write_create(&o, &rw), SONDE_EINVAL);
    o.url = "ftp://x";
    ASSERT_EQ(sonde_remote_write_create(&o, &rw), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "http://");
    o.url = "http://127.0.0.1:1/api/v1/write";
    o.bearer_token = "a";
    o.basic_auth_user = "u";
    ASSERT_EQ(sonde_remote_write_create(&o, &rw), SONDE_EINVAL);
    o.bearer_token = NULL;
    o.basic_auth_user = NULL;
    const char *ext[] = {"__bad", "x"};
    o.external_labels = ext;
    o.external_label_count = 1;
    ASSERT_EQ(sonde_remote_write_create(&o, &rw), SONDE_EINVAL);
    o.external_label_count = 0;
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    o.registry = reg;
    o.flush_timeout_seconds = -1;
    ASSERT_OK(sonde_remote_write_create(&o, &rw));
    /* Self-metrics are in the registry. */
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_remote_write_samples_dropped_total{remote=\"http://127.0.0.1:1/"
                          "api/v1/write\",reason=\"queue_full\"} 0");
    sonde_free(text);
    ASSERT_GT(sonde_remote_write_sample_now(rw), 5);
    sonde_remote_write_stats st;
    sonde_remote_write_get_stats(rw, &st);
    ASSERT_GT(st.samples_pending, 5);
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(reg);
}

TEST_MAIN()
