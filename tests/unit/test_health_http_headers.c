/*
 * The HTTP health check with request headers, against sonde's own server:
 * the token a service validates goes in a header, from the agent's YAML
 * (with ${VAR} substitution); the value never shows in the results.
 */
#include "test.h"

#include <sonde.h>

#include <unistd.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static char *report(sonde_health *h)
{
    ASSERT_OK(sonde_health_start(h));
    ASSERT_OK(sonde_health_wait(h, NULL, 10000));
    sonde_health_stop(h);
    sonde_buf b = {0};
    ASSERT_OK(sonde_health_write_json(h, 1, &b));
    return b.data;
}

TEST(test_http_check_sends_request_headers_and_never_shows_them)
{
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    so.api_key = "tok-4711";
    ASSERT_OK(sonde_start(&so));
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics/json", sonde_listen_port());

    sonde_health *h;
    ASSERT_OK(sonde_health_create(NULL, &h));
    sonde_health_check_opts o;
    sonde_health_check_opts_init(&o);
    o.name = "with_token";
    const char *hdr[] = {"Authorization", "Bearer tok-4711", "X-Extra", "1"};
    ASSERT_OK(sonde_health_add_http_headers(h, &o, url, 200, hdr, 2));
    o.name = "without_token";
    ASSERT_OK(sonde_health_add_http(h, &o, url, 200));
    const char *bad[] = {"Bad Name", "x"};
    o.name = "bad";
    ASSERT_EQ(sonde_health_add_http_headers(h, &o, url, 200, bad, 1), SONDE_EINVAL);
    const char *crlf[] = {"X-A", "a\r\nX-Injected: 1"};
    ASSERT_EQ(sonde_health_add_http_headers(h, &o, url, 200, crlf, 1), SONDE_EINVAL);

    char *j = report(h);
    ASSERT_CONTAINS(j, "answered 200");
    ASSERT_CONTAINS(j, "answered 401, expected 200");
    ASSERT_NOT_CONTAINS(j, "tok-4711");
    free(j);
    sonde_health_destroy(h);

    /* From the agent's YAML, the token from the environment. */
    setenv("SONDE_TEST_CHECK_TOKEN", "tok-4711", 1);
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "checks:\n  - name: api\n    type: http\n    url: \"%s\"\n    headers:\n"
             "      Authorization: \"Bearer ${SONDE_TEST_CHECK_TOKEN}\"\n",
             url);
    sonde_config *cfg = NULL;
    sonde_config_error errs[4];
    size_t nerrs = 0;
    ASSERT_OK(sonde_config_load_string(yaml, strlen(yaml), &cfg, errs, 4, &nerrs));
    ASSERT_OK(sonde_health_create(NULL, &h));
    ASSERT_OK(sonde_config_add_checks(cfg, h));
    j = report(h);
    ASSERT_CONTAINS(j, "answered 200");
    ASSERT_NOT_CONTAINS(j, "tok-4711");
    free(j);
    sonde_health_destroy(h);
    sonde_config_destroy(cfg);
    const char *badyaml = "checks:\n  - name: api\n    type: http\n    url: \"http://x/\"\n"
                          "    headers:\n      \"Bad Name\": v\n";
    ASSERT_EQ(sonde_config_load_string(badyaml, strlen(badyaml), &cfg, errs, 4, &nerrs),
              SONDE_EPARSE);
    ASSERT_CONTAINS(errs[0].message, "not a valid header name");
    unsetenv("SONDE_TEST_CHECK_TOKEN");
    sonde_stop();
}
