/*
 * UTF-8 metric and label names (opt-in per registry) and the escaping
 * schemes of the Accept header's escaping= parameter: the escaper against
 * the cases Prometheus defines (underscores, dots, values = U__ hex), the
 * quoted text syntax for allow-utf-8, escaped names for every other
 * scraper, the Content-Type, and registration rules.
 */
#define _GNU_SOURCE
#include <sonde.h>

#include "core/text.h"

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

static void esc_is(const char *in, sonde_escaping scheme, const char *want)
{
    sonde_buf b;
    sonde_buf_init(&b);
    CHECK(sonde__buf_name_escape(&b, in, strlen(in), (int)scheme) == SONDE_OK);
    const char *got = b.data ? b.data : "";
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "escape(\"%s\", %d) = \"%s\", want \"%s\"\n", in, (int)scheme, got, want);
        exit(1);
    }
    sonde_buf_free(&b);
}

static char *render(sonde_registry *r, sonde_format f, sonde_escaping e)
{
    sonde_write_opts wo;
    memset(&wo, 0, sizeof wo);
    wo.escaping = e;
    sonde_buf b;
    sonde_buf_init(&b);
    CHECK(sonde_registry_write(r, f, &wo, &b) == SONDE_OK);
    return b.data;
}

static void has(const char *text, const char *needle)
{
    if (!strstr(text, needle)) {
        fprintf(stderr, "missing: %s\n--- in:\n%s\n", needle, text);
        exit(1);
    }
}

int main(void)
{
    /* The escaping schemes, on the cases Prometheus documents. */
    esc_is("", SONDE_ESCAPING_UNDERSCORES, "");
    esc_is("no:escaping_required", SONDE_ESCAPING_UNDERSCORES, "no:escaping_required");
    esc_is("no:escaping_required", SONDE_ESCAPING_DOTS, "no:escaping__required");
    esc_is("no:escaping_required", SONDE_ESCAPING_VALUES, "no:escaping_required");
    esc_is("mysystem.prod.west.cpu.load", SONDE_ESCAPING_DOTS,
           "mysystem_dot_prod_dot_west_dot_cpu_dot_load");
    esc_is("mysystem.prod.west.cpu.load_total", SONDE_ESCAPING_DOTS,
           "mysystem_dot_prod_dot_west_dot_cpu_dot_load__total");
    esc_is("http.status:sum", SONDE_ESCAPING_DOTS, "http_dot_status:sum");
    esc_is("label with \xf0\x9f\x98\xb1", SONDE_ESCAPING_UNDERSCORES, "label_with__");
    esc_is("label with \xf0\x9f\x98\xb1", SONDE_ESCAPING_DOTS, "label__with____");
    esc_is("label with \xf0\x9f\x98\xb1", SONDE_ESCAPING_VALUES, "U__label_20_with_20__1f631_");
    esc_is("\xe8\x8a\xb1\xe7\x81\xab", SONDE_ESCAPING_UNDERSCORES, "__"); /* 花火 */
    esc_is("\xe8\x8a\xb1\xe7\x81\xab", SONDE_ESCAPING_DOTS, "____");
    esc_is("\xe8\x8a\xb1\xe7\x81\xab", SONDE_ESCAPING_VALUES, "U___82b1__706b_");
    esc_is("label with \xc4\x80", SONDE_ESCAPING_VALUES, "U__label_20_with_20__100_");
    esc_is("mysystem.prod.west.cpu.load", SONDE_ESCAPING_UNDERSCORES,
           "mysystem_prod_west_cpu_load");
    esc_is("mysystem.prod.west.cpu.load_total", SONDE_ESCAPING_VALUES,
           "U__mysystem_2e_prod_2e_west_2e_cpu_2e_load__total");
    esc_is("http.status:sum", SONDE_ESCAPING_VALUES, "U__http_2e_status:sum");
    /* A leading digit is outside the legacy set; later ones are not. */
    esc_is("1st.try", SONDE_ESCAPING_UNDERSCORES, "_st_try");
    esc_is("1st.try", SONDE_ESCAPING_VALUES, "U___31_st_2e_try");
    /* Invalid UTF-8 (never registered, but the escaper is total). */
    esc_is("a\xff", SONDE_ESCAPING_VALUES, "U__a_FFFD_");
    esc_is("a.b", SONDE_ESCAPING_ALLOW_UTF8, "a.b");

    /* Registration: refused by default, accepted when the registry allows. */
    sonde_registry *legacy, *r;
    CHECK(sonde_registry_create(NULL, &legacy) == SONDE_OK);
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "http.server.requests_total";
    o.help = "Requests.";
    sonde_family *f;
    CHECK(sonde_family_create(legacy, SONDE_COUNTER, &o, &f) == SONDE_EBADNAME);
    CHECK(strstr(sonde_registry_last_error(), "UTF-8"));
    sonde_registry_opts ro;
    sonde_registry_opts_init(&ro);
    ro.utf8_names = 1;
    CHECK(sonde_registry_create(&ro, &r) == SONDE_OK);
    o.name = "bad\xff";
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_EBADNAME);
    const char *badln[] = {"x\xc0"};
    o.name = "ok_total";
    o.label_names = badln;
    o.label_count = 1;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_EBADLABEL);
    const char *reserved[] = {"__x.y"};
    o.label_names = reserved;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_EBADLABEL);
    /* The setter works on an existing registry. */
    CHECK(sonde_registry_set_utf8_names(legacy, 1) == SONDE_OK);
    o.name = "late.metric";
    o.label_names = NULL;
    o.label_count = 0;
    CHECK(sonde_family_create(legacy, SONDE_GAUGE, &o, &f) == SONDE_OK);
    sonde_registry_destroy(legacy);

    const char *ln[] = {"http.method", "code"};
    const char *cl[] = {"service.name", "shop"};
    o.name = "http.server.requests_total";
    o.label_names = ln;
    o.label_count = 2;
    o.const_labels = cl;
    o.const_label_count = 1;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &f) == SONDE_OK);
    sonde_counter_inc(sonde_family_counter(f, "GET", "200"));
    sonde_metric_opts_init(&o);
    o.name = "plain_total";
    const char *lp[] = {"région"};
    o.label_names = lp;
    o.label_count = 1;
    sonde_family *pf;
    CHECK(sonde_family_create(r, SONDE_COUNTER, &o, &pf) == SONDE_OK);
    sonde_counter_add(sonde_family_counter(pf, "île"), 2);
    sonde_metric_opts_init(&o);
    o.name = "latency.seconds";
    const double bk[] = {0.1, 1};
    o.buckets = bk;
    o.bucket_count = 2;
    sonde_family *hf;
    CHECK(sonde_family_create(r, SONDE_HISTOGRAM, &o, &hf) == SONDE_OK);
    sonde_histogram_observe(sonde_family_as_histogram(hf), 0.5);

    /* allow-utf-8: quoted syntax in the 1.0.0 text formats. */
    char *t = render(r, SONDE_FORMAT_PROMETHEUS_1_0_0, SONDE_ESCAPING_ALLOW_UTF8);
    has(t, "# HELP \"http.server.requests_total\" Requests.\n");
    has(t, "# TYPE \"http.server.requests_total\" counter\n");
    has(t, "{\"http.server.requests_total\",\"service.name\"=\"shop\",\"http.method\"=\"GET\","
           "code=\"200\"} 1\n");
    has(t, "plain_total{\"région\"=\"île\"} 2\n");
    has(t, "{\"latency.seconds_bucket\",le=\"1\"} 1\n");
    has(t, "{\"latency.seconds_count\"} 1\n");
    sonde_free(t);
    t = render(r, SONDE_FORMAT_OPENMETRICS, SONDE_ESCAPING_ALLOW_UTF8);
    has(t, "# TYPE \"http.server.requests\" counter\n");
    has(t, "{\"http.server.requests_total\",\"service.name\"=\"shop\",\"http.method\"=\"GET\","
           "code=\"200\"} 1\n");
    has(t, "# EOF\n");
    sonde_free(t);

    /* Every other scraper: escaped per scheme, never quoted. */
    t = render(r, SONDE_FORMAT_PROMETHEUS, SONDE_ESCAPING_UNDERSCORES);
    has(t, "# TYPE http_server_requests_total counter\n");
    has(t, "http_server_requests_total{service_name=\"shop\",http_method=\"GET\",code=\"200\"} "
           "1\n");
    has(t, "plain_total{r_gion=\"île\"} 2\n");
    has(t, "latency_seconds_bucket{le=\"1\"} 1\n");
    CHECK(!strstr(t, "{\"") && !strstr(t, "\"="));
    sonde_free(t);
    /* allow-utf-8 cannot be honoured by 0.0.4: underscores. */
    t = render(r, SONDE_FORMAT_PROMETHEUS, SONDE_ESCAPING_ALLOW_UTF8);
    has(t, "http_server_requests_total{service_name=\"shop\"");
    sonde_free(t);
    t = render(r, SONDE_FORMAT_PROMETHEUS_1_0_0, SONDE_ESCAPING_DOTS);
    has(t, "http_dot_server_dot_requests__total{service_dot_name=\"shop\",http_dot_method=\"GET\","
           "code=\"200\"} 1\n");
    has(t, "latency_dot_seconds_count 1\n");
    sonde_free(t);
    t = render(r, SONDE_FORMAT_OPENMETRICS, SONDE_ESCAPING_VALUES);
    has(t, "# TYPE U__http_2e_server_2e_requests counter\n");
    has(t, "U__http_2e_server_2e_requests_total{U__service_2e_name=\"shop\","
           "U__http_2e_method=\"GET\",code=\"200\"} 1\n");
    has(t, "plain_total{U__r_e9_gion=\"île\"} 2\n");
    sonde_free(t);
    /* JSON keeps the names as registered. */
    t = render(r, SONDE_FORMAT_JSON, SONDE_ESCAPING_UNDERSCORES);
    has(t, "\"name\":\"http.server.requests_total\"");
    has(t, "\"service.name\":\"shop\"");
    sonde_free(t);
    /* Protobuf: names as they are with allow-utf-8, escaped otherwise. */
    sonde_buf pb;
    sonde_buf_init(&pb);
    sonde_write_opts wo;
    memset(&wo, 0, sizeof wo);
    wo.escaping = SONDE_ESCAPING_ALLOW_UTF8;
    CHECK(sonde_registry_write(r, SONDE_FORMAT_PROTOBUF, &wo, &pb) == SONDE_OK);
    CHECK(memmem(pb.data, pb.len, "http.server.requests_total", 26));
    CHECK(memmem(pb.data, pb.len, "service.name", 12));
    sonde_buf_reset(&pb);
    wo.escaping = SONDE_ESCAPING_VALUES;
    CHECK(sonde_registry_write(r, SONDE_FORMAT_PROTOBUF, &wo, &pb) == SONDE_OK);
    CHECK(memmem(pb.data, pb.len, "U__http_2e_server_2e_requests__total", 36));
    CHECK(memmem(pb.data, pb.len, "U__service_2e_name", 18));
    CHECK(!memmem(pb.data, pb.len, "service.name", 12));
    sonde_buf_free(&pb);

    /* The negotiated Content-Type names the escaping of 1.0.0 formats. */
    sonde_escaping e;
    const char *acc = "text/plain;version=1.0.0;escaping=dots";
    CHECK(sonde_format_negotiate(acc, strlen(acc), &e) == SONDE_FORMAT_PROMETHEUS_1_0_0);
    CHECK(e == SONDE_ESCAPING_DOTS);
    CHECK(strstr(sonde_format_content_type_escaped(SONDE_FORMAT_PROMETHEUS_1_0_0, e),
                 "escaping=dots"));
    sonde_registry_destroy(r);
    printf("test_utf8_names: ok\n");
    return 0;
}
