#define _GNU_SOURCE
/* Encoders: golden files for each format, escaping, numbers, locale. */
#include "test.h"

#include "expose_fixture.h"

#include <locale.h>
#include <sys/stat.h>

TEST_MAIN()

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, fp);
    s[got] = '\0';
    fclose(fp);
    return s;
}

/* Compare with tests/data/<name>; SONDE_UPDATE_GOLDEN=1 rewrites it. */
static void check_golden(const char *name, const char *got)
{
    const char *src = getenv("SONDE_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/%s", src ? src : ".", name);
    if (getenv("SONDE_UPDATE_GOLDEN")) {
        FILE *fp = fopen(path, "wb");
        ASSERT(fp != NULL);
        fputs(got, fp);
        fclose(fp);
    }
    char *want = read_all(path);
    if (!want)
        TEST_FAIL_AT("golden file %s missing", path);
    ASSERT_STR_EQ(got, want);
    free(want);
}

TEST(test_prometheus_text_matches_golden)
{
    sonde_registry *r = fixture_build();
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    check_golden("expose.prom", txt);
    sonde_free(txt);
    sonde_registry_destroy(r);
}

TEST(test_openmetrics_text_matches_golden)
{
    sonde_registry *r = fixture_build();
    char *txt = sonde_registry_render(r, SONDE_FORMAT_OPENMETRICS, NULL);
    check_golden("expose.om", txt);
    sonde_free(txt);
    sonde_registry_destroy(r);
}

TEST(test_created_timestamps_are_opt_in)
{
    sonde_registry *r = fixture_build();
    /* Off by default (golden file above has none). */
    char *txt = sonde_registry_render(r, SONDE_FORMAT_OPENMETRICS, NULL);
    ASSERT_NOT_CONTAINS(txt, "_created");
    sonde_free(txt);
    size_t n0 = 0, n1 = 0;
    char *pb0 = sonde_registry_render(r, SONDE_FORMAT_PROTOBUF, &n0);
    ASSERT_OK(sonde_registry_set_created_timestamps(r, 1));
    txt = sonde_registry_render(r, SONDE_FORMAT_OPENMETRICS, NULL);
    ASSERT_CONTAINS(txt, "fixture_requests_created{service=\"fixture\",method=\"GET\",path=\"/a\"} "
                         "1700000000.123\n");
    ASSERT_CONTAINS(txt, "fixture_latency_seconds_created 1700000000.123\n");
    ASSERT_CONTAINS(txt, "fixture_payload_bytes_created 1700000000.123\n");
    sonde_free(txt);
    /* The 0.0.4 text format has no created lines at all. */
    txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_NOT_CONTAINS(txt, "_created");
    sonde_free(txt);
    /* Protobuf: a Timestamp{seconds=1700000000, nanos=123000000} per
     * counter, histogram and summary series (decoded field by field in
     * test_protobuf). */
    char *pb1 = sonde_registry_render(r, SONDE_FORMAT_PROTOBUF, &n1);
    ASSERT(n1 > n0);
    static const unsigned char ts[] = {0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06,
                                       0x10, 0xc0, 0xa9, 0xd3, 0x3a};
    ASSERT(memmem(pb1, n1, ts, sizeof ts) != NULL);
    ASSERT(memmem(pb0, n0, ts, sizeof ts) == NULL);
    sonde_free(pb0);
    sonde_free(pb1);
    sonde_registry_destroy(r);
}

TEST(test_json_matches_golden)
{
    sonde_registry *r = fixture_build();
    char *txt = sonde_registry_render(r, SONDE_FORMAT_JSON, NULL);
    check_golden("expose.json", txt);
    sonde_free(txt);
    sonde_registry_destroy(r);
}

TEST(test_label_values_cannot_inject_lines)
{
    sonde_registry *r = fixture_build();
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    /* The hostile value stays inside its quotes, escaped. */
    ASSERT_CONTAINS(txt, "path=\"} 999\\nfake_metric 1\"");
    ASSERT_NOT_CONTAINS(txt, "\nfake_metric 1");
    ASSERT_CONTAINS(txt, "path=\"quote\\\" back\\\\ nl\\n end\"");
    /* Invalid UTF-8 bytes are replaced, valid ones kept. */
    ASSERT_CONTAINS(txt, "bad\xef\xbf\xbd\xef\xbf\xbdutf8 \xc3\xa9t\xc3\xa9");
    sonde_free(txt);
    sonde_registry_destroy(r);
}

TEST(test_numbers_are_shortest_round_trip)
{
    char b[40];
    sonde__fmt_double(b, 0.1);
    ASSERT_STR_EQ(b, "0.1");
    sonde__fmt_double(b, 1.0 / 3.0);
    ASSERT_STR_EQ(b, "0.3333333333333333");
    sonde__fmt_double(b, 0.16);
    ASSERT_STR_EQ(b, "0.16");
    sonde__fmt_double(b, 2.5);
    ASSERT_STR_EQ(b, "2.5");
    sonde__fmt_double(b, 1e6);
    ASSERT_STR_EQ(b, "1e+06");
    sonde__fmt_double(b, 123456);
    ASSERT_STR_EQ(b, "123456");
    sonde__fmt_double(b, 1.5e-7);
    ASSERT_STR_EQ(b, "1.5e-07");
    sonde__fmt_double(b, 0.0001);
    ASSERT_STR_EQ(b, "0.0001");
    sonde__fmt_double(b, 1e21);
    ASSERT_STR_EQ(b, "1e+21");
    sonde__fmt_double(b, -2.5);
    ASSERT_STR_EQ(b, "-2.5");
    sonde__fmt_double(b, NAN);
    ASSERT_STR_EQ(b, "NaN");
    sonde__fmt_double(b, -NAN);
    ASSERT_STR_EQ(b, "NaN");
    sonde__fmt_double(b, INFINITY);
    ASSERT_STR_EQ(b, "+Inf");
    sonde__fmt_double(b, -INFINITY);
    ASSERT_STR_EQ(b, "-Inf");
    sonde__fmt_double(b, 5e-324);
    ASSERT_STR_EQ(b, "5e-324");
    sonde__fmt_double(b, 1.7976931348623157e308);
    ASSERT_STR_EQ(b, "1.7976931348623157e+308");
    /* OpenMetrics canonical form for le/quantile */
    sonde__fmt_double_om(b, 1);
    ASSERT_STR_EQ(b, "1.0");
    sonde__fmt_double_om(b, 0.005);
    ASSERT_STR_EQ(b, "0.005");
    sonde__fmt_double_om(b, 1e6);
    ASSERT_STR_EQ(b, "1e+06");
    sonde__fmt_double_om(b, INFINITY);
    ASSERT_STR_EQ(b, "+Inf");
    /* Every double of a sweep reads back exactly. */
    unsigned s = 12345;
    for (int i = 0; i < 100000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 1103515245u + 12345u;
            bits = (bits << 16) | (s >> 16);
        }
        double v;
        memcpy(&v, &bits, 8);
        if (isnan(v) || isinf(v))
            continue;
        sonde__fmt_double(b, v);
        double back = sonde__strtod(b, NULL);
        if (back != v)
            TEST_FAIL_AT("%.17g formatted as %s reads back as %.17g", v, b, back);
    }
}

TEST(test_host_locale_with_decimal_comma_does_not_change_output)
{
    /* Build a German locale in a private directory: its decimal point is a
     * comma. */
    char dir[] = "/tmp/sonde-locale-XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 2>/dev/null", dir);
    ASSERT_EQ(system(cmd), 0);
    setenv("LOCPATH", dir, 1);
    ASSERT(setlocale(LC_ALL, "de_DE.UTF-8") != NULL);
    char probe[32];
    snprintf(probe, sizeof probe, "%g", 0.16);
    ASSERT_STR_EQ(probe, "0,16"); /* the locale is really active */
    sonde_registry *r = fixture_build();
    char *txt = sonde_registry_render(r, SONDE_FORMAT_PROMETHEUS, NULL);
    setlocale(LC_ALL, "C");
    ASSERT_CONTAINS(txt, "fixture_cache_hit_ratio 0.16\n");
    ASSERT_CONTAINS(txt, "fixture_latency_seconds_bucket{le=\"2.5\"} 4\n");
    ASSERT_NOT_CONTAINS(txt, "0,16");
    sonde_free(txt);
    sonde_registry_destroy(r);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

TEST(test_name_filter_selects_families)
{
    sonde_registry *r = fixture_build();
    const char *names[] = {"fixture_requests", "fixture_table_rows"};
    sonde_write_opts wo = {names, 2};
    sonde_buf b;
    sonde_buf_init(&b);
    ASSERT_OK(sonde_registry_write(r, SONDE_FORMAT_PROMETHEUS, &wo, &b));
    ASSERT_CONTAINS(b.data, "fixture_requests_total{");
    ASSERT_CONTAINS(b.data, "fixture_table_rows{");
    ASSERT_NOT_CONTAINS(b.data, "fixture_latency");
    ASSERT_NOT_CONTAINS(b.data, "fixture_breaker");
    sonde_buf_free(&b);
    sonde_registry_destroy(r);
}

TEST(test_buffer_limit_fails_cleanly)
{
    sonde_registry *r = fixture_build();
    sonde_buf b;
    sonde_buf_init(&b);
    b.max = 100;
    ASSERT_EQ(sonde_registry_write(r, SONDE_FORMAT_PROMETHEUS, NULL, &b), SONDE_ETOOBIG);
    ASSERT(b.len <= 100);
    sonde_buf_free(&b);
    sonde_registry_destroy(r);
}
