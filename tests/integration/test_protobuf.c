/*
 * Protobuf exposition against the official schema: a registry with every
 * metric type (labels, constant labels, units, classic and native
 * histograms, a bucket limit that lowers the schema, collectors) is
 * rendered as the delimited MetricFamily stream, and check_protobuf.py
 * decodes every message field by field with python3-protobuf, using
 * tests/data/metrics.proto compiled by protoc at test time. The native
 * buckets are recomputed in Python from the values observed here.
 */
#include <sonde.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #c,              \
                    sonde_last_error());                                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void collect(sonde_emitter *em, void *ud)
{
    (void)ud;
    sonde_emit_family(em, SONDE_UNTYPED, "pb_coll_untyped", "From a collector.", NULL);
    const char *kv[] = {"k", "v"};
    sonde_emit_sample(em, kv, 1, 7);
    sonde_emit_family(em, SONDE_HISTOGRAM, "pb_coll_hist", "Collector histogram.", NULL);
    const double b[] = {1, 2};
    const uint64_t cum[] = {1, 3, 4};
    sonde_emit_histogram(em, NULL, 0, b, cum, 2, 9.5);
}

int main(void)
{
    const char *dir = getenv("SONDE_TEST_DIR");
    const char *src = getenv("SONDE_SOURCE_DIR");
    CHECK(dir && src);
    sonde_registry *r;
    CHECK(sonde_registry_create(NULL, &r) == SONDE_OK);
    sonde_metric_opts o;

    sonde_metric_opts_init(&o);
    const char *ml[] = {"method"};
    const char *cl[] = {"svc", "t"};
    o.name = "pb_requests_total";
    o.help = "Requests.";
    o.label_names = ml;
    o.label_count = 1;
    o.const_labels = cl;
    o.const_label_count = 1;
    o.exemplars = SONDE_EXEMPLARS_ON;
    sonde_family *req;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &req) == SONDE_OK);
    sonde_counter_add(sonde_family_counter(req, "GET"), 3);
    const char *ex1[] = {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"};
    sonde_counter_add_exemplar(sonde_family_counter(req, "GET"), 1, ex1, 1);
    sonde_counter_add(sonde_family_counter(req, "POST"), 2.5);

    sonde_metric_opts_init(&o);
    o.name = "pb_temperature_celsius";
    o.help = "Temperature.";
    o.unit = "celsius";
    sonde_family *temp;
    CHECK(sonde_family_create(r, SONDE_GAUGE, &o, &temp) == SONDE_OK);
    sonde_gauge_set(sonde_family_as_gauge(temp), -1.5);

    sonde_metric_opts_init(&o);
    const double lb[] = {0.1, 1};
    o.name = "pb_latency_seconds";
    o.help = "Classic.";
    o.buckets = lb;
    o.bucket_count = 2;
    o.exemplars = SONDE_EXEMPLARS_ON;
    sonde_family *lat;
    CHECK(sonde_family_create(r, SONDE_HISTOGRAM, &o, &lat) == SONDE_OK);
    sonde_histogram *lh = sonde_family_as_histogram(lat);
    sonde_histogram_observe(lh, 0.05);
    sonde_histogram_observe(lh, 0.5);
    sonde_histogram_observe(lh, 2);
    const char *ex2[] = {"trace_id", "t2", "span_id", "s2"};
    sonde_histogram_observe_exemplar(lh, 0.5, ex2, 2);
    const char *ex3[] = {"trace_id", "inf"};
    sonde_histogram_observe_exemplar(lh, 5, ex3, 1);

    /* Native only, schema 3: values across magnitudes, signs, zero. */
    sonde_metric_opts_init(&o);
    o.name = "pb_native_seconds";
    o.help = "Native.";
    o.native_bucket_factor = 1.1;
    sonde_family *nat;
    CHECK(sonde_family_create(r, SONDE_HISTOGRAM, &o, &nat) == SONDE_OK);
    sonde_histogram *nh = sonde_family_as_histogram(nat);
    char path[1024];
    snprintf(path, sizeof path, "%s/pb_observed.txt", dir);
    FILE *obs = fopen(path, "w");
    CHECK(obs);
    double vals1[] = {0,    1,   2,      0.5, 1.5,  3,  1e-3,  0.1, 0.25,
                      7.77, 100, 1234.5, -1,  -0.3, -8, 1e-12, 1e12};
    for (size_t i = 0; i < sizeof vals1 / sizeof vals1[0]; i++) {
        sonde_histogram_observe(nh, vals1[i]);
        fprintf(obs, "native %.17g\n", vals1[i]);
    }
    /* Native with classic buckets and a limit of 4 buckets: the exposed
     * schema goes down from 8 until the populated buckets fit. */
    sonde_metric_opts_init(&o);
    o.name = "pb_mixed_bytes";
    o.help = "Native and classic.";
    o.unit = "bytes";
    o.buckets = lb;
    o.bucket_count = 2;
    o.native_bucket_factor = 1.005;
    o.native_max_buckets = 4;
    sonde_family *mix;
    CHECK(sonde_family_create(r, SONDE_HISTOGRAM, &o, &mix) == SONDE_OK);
    sonde_histogram *mh = sonde_family_as_histogram(mix);
    for (int i = 1; i <= 40; i++) {
        double v = 0.01 * i * i;
        sonde_histogram_observe(mh, v);
        fprintf(obs, "mixed %.17g\n", v);
    }
    fclose(obs);

    sonde_metric_opts_init(&o);
    const double q[] = {0.5};
    o.name = "pb_size_bytes";
    o.help = "Summary.";
    o.quantiles = q;
    o.quantile_count = 1;
    sonde_family *sum;
    CHECK(sonde_family_create(r, SONDE_SUMMARY, &o, &sum) == SONDE_OK);
    for (int i = 1; i <= 100; i++)
        sonde_summary_observe(sonde_family_as_summary(sum), i);

    sonde_metric_opts_init(&o);
    const char *st[] = {"a", "b"};
    o.name = "pb_state";
    o.help = "State.";
    o.states = st;
    o.state_count = 2;
    sonde_stateset *ss;
    CHECK(sonde_stateset_create(r, &o, &ss) == SONDE_OK);
    sonde_stateset_set(ss, 1);
    const char *ikv[] = {"version", "1.2"};
    CHECK(sonde_info_create(r, "pb_build", "Build.", ikv, 1) == SONDE_OK);
    CHECK(sonde_registry_add_collector(r, "c", collect, NULL) == SONDE_OK);

    sonde_buf b;
    sonde_buf_init(&b);
    CHECK(sonde_registry_write(r, SONDE_FORMAT_PROTOBUF, NULL, &b) == SONDE_OK);
    snprintf(path, sizeof path, "%s/pb_out.bin", dir);
    FILE *out = fopen(path, "wb");
    CHECK(out && fwrite(b.data, 1, b.len, out) == b.len);
    fclose(out);
    sonde_buf_free(&b);
    sonde_registry_destroy(r);

    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tests/integration/check_protobuf.py %s/tests/data/metrics.proto "
             "%s/pb_out.bin %s/pb_observed.txt",
             src, src, dir, dir);
    int rc = system(cmd);
    CHECK(rc == 0);
    printf("protobuf exposition decodes with the official schema\n");
    return 0;
}
