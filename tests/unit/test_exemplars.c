/*
 * Exemplars: explicit ones on counters and histogram buckets (the latest
 * per bucket wins), automatic ones from the logging context's correlation
 * ID, the 128-character limit and invalid labels (dropped and counted),
 * and their OpenMetrics rendering (never in the 0.0.4 text format).
 */
#include <sonde.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static char *render(sonde_registry *r, sonde_format f)
{
    char *s = sonde_registry_render(r, f, NULL);
    CHECK(s);
    return s;
}

int main(void)
{
    sonde_registry *r;
    CHECK(sonde_registry_create(NULL, &r) == SONDE_OK);
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "ex_requests_total";
    o.help = "Requests.";
    o.exemplars = SONDE_EXEMPLARS_FROM_LOG;
    sonde_family *cf;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &cf) == SONDE_OK);
    sonde_counter *c = sonde_family_as_counter(cf);

    /* Outside a logging context, a plain increment attaches nothing. */
    sonde_counter_inc(c);
    char *om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_requests_total 1\n"));
    sonde_free(om);

    /* Inside one, the correlation ID becomes the exemplar. */
    int tok = sonde_log_context_push("req-0001", NULL, 0);
    CHECK(tok > 0);
    sonde_counter_inc(c);
    sonde_log_context_pop(tok);
    om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_requests_total 2 # {trace_id=\"req-0001\"} 1 "));
    sonde_free(om);

    /* An explicit exemplar replaces it (latest wins), with its value. */
    const char *kv[] = {"trace_id", "abc", "note", "q\"uote"};
    sonde_counter_add_exemplar(c, 2, kv, 2);
    om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_requests_total 4 # {trace_id=\"abc\",note=\"q\\\"uote\"} 2 "));
    sonde_free(om);
    char *text = render(r, SONDE_FORMAT_PROMETHEUS);
    CHECK(!strstr(text, "trace_id"));
    sonde_free(text);

    /* 128 characters of names and values pass; 129 are dropped (the
     * increment still counts). Multi-byte characters count once. */
    char v[600];
    memset(v, 'x', 120);
    v[120] = '\0'; /* "trace_id" (8) + 120 = 128 */
    const char *ok[] = {"trace_id", v};
    sonde_counter_add_exemplar(c, 1, ok, 1);
    om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_requests_total 5 # {trace_id=\"xxxxxxxx"));
    sonde_free(om);
    v[120] = 'x';
    v[121] = '\0';
    sonde_counter_add_exemplar(c, 1, ok, 1);
    om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_requests_total 6 # {trace_id=\""
                     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    CHECK(strstr(om, "sonde_metrics_exemplars_dropped_total 1\n"));
    sonde_free(om);
    for (int i = 0; i < 120; i++)
        memcpy(v + 2 * i, "\xc3\xa9", 2); /* é: 2 bytes, 1 character */
    v[240] = '\0';
    sonde_counter_add_exemplar(c, 1, ok, 1);
    om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_requests_total 7 # {trace_id=\"\xc3\xa9\xc3\xa9"));
    CHECK(strstr(om, "sonde_metrics_exemplars_dropped_total 1\n"));
    sonde_free(om);
    const char *bad[] = {"bad-name", "x"};
    sonde_counter_add_exemplar(c, 1, bad, 1);
    om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_requests_total 8 # {trace_id=\"\xc3\xa9"));
    CHECK(strstr(om, "sonde_metrics_exemplars_dropped_total 2\n"));
    sonde_free(om);

    /* Histograms: one per bucket, the latest. */
    sonde_metric_opts_init(&o);
    const double b[] = {1, 10};
    o.name = "ex_latency_seconds";
    o.help = "Latency.";
    o.buckets = b;
    o.bucket_count = 2;
    o.exemplars = SONDE_EXEMPLARS_ON;
    sonde_family *hf;
    CHECK(sonde_family_create(r, SONDE_HISTOGRAM, &o, &hf) == SONDE_OK);
    sonde_histogram *h = sonde_family_as_histogram(hf);
    const char *a1[] = {"trace_id", "first"}, *a2[] = {"trace_id", "second"},
               *a3[] = {"trace_id", "big"};
    sonde_histogram_observe_exemplar(h, 0.5, a1, 1);
    sonde_histogram_observe_exemplar(h, 0.7, a2, 1);
    sonde_histogram_observe_exemplar(h, 50, a3, 1);
    sonde_histogram_observe(h, 5); /* no exemplar: ON does not read the log */
    om = render(r, SONDE_FORMAT_OPENMETRICS);
    CHECK(strstr(om, "ex_latency_seconds_bucket{le=\"1.0\"} 2 # {trace_id=\"second\"} 0.7 "));
    CHECK(strstr(om, "ex_latency_seconds_bucket{le=\"10.0\"} 3\n"));
    CHECK(strstr(om, "ex_latency_seconds_bucket{le=\"+Inf\"} 4 # {trace_id=\"big\"} 50 "));
    sonde_free(om);

    /* Exemplars on a gauge are refused at registration. */
    sonde_metric_opts_init(&o);
    o.name = "ex_gauge";
    o.exemplars = SONDE_EXEMPLARS_ON;
    sonde_family *g;
    CHECK(sonde_family_create(r, SONDE_GAUGE, &o, &g) == SONDE_EINVAL);
    sonde_registry_destroy(r);
    printf("exemplars: all checks pass\n");
    return 0;
}
