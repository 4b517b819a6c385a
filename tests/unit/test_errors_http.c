/*
 * The /errors and /alerts endpoints over HTTP (libcurl against sonde_start
 * on a loopback port): JSON content, filters, bad filters, and protection
 * as sensitive endpoints (Bearer key).
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>

TEST_MAIN()

/* Keep the test output readable: no log lines on stderr (tests that look
 * at log lines add their own sink). */
__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static char url[256];
static const char *U(const char *path)
{
    return url_of(url, sizeof url, "127.0.0.1", sonde_listen_port(), path);
}

static http_resp get_with_key(const char *path, const char *key)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *headers[] = {auth, NULL};
    http_req rq = {.headers = key ? headers : NULL};
    return http_do(U(path), &rq);
}

TEST(test_errors_and_alerts_endpoints_serve_json_behind_the_key)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = reg;
    eo.no_env_notifiers = 1;
    eo.no_log = 1;
    eo.tick_ms = 5;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&eo, &t));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "AnyCritical";
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_CRITICAL;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));

    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.api_key = "secret-key";
    o.errors = t;
    ASSERT_OK(sonde_start(&o));

    sonde_error_capturef(t, SONDE_SEVERITY_CRITICAL, "DiskFull", "store.c", 12, "flush",
                         "no space left writing segment %d", 17);
    sonde_error_capturef(t, SONDE_SEVERITY_LOW, "CacheMiss", "cache.c", 5, "get", "miss for %s",
                         "user:1");
    sonde_errors_process(t);

    http_resp h = http_get(U("/errors"));
    ASSERT_EQ(h.status, 401);
    http_free(&h);
    h = get_with_key("/errors", "wrong");
    ASSERT_EQ(h.status, 401);
    http_free(&h);

    h = get_with_key("/errors", "secret-key");
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, "\"total_groups\":2");
    ASSERT_CONTAINS(h.body, "\"title\":\"DiskFull: no space left writing segment <n>\"");
    ASSERT_CONTAINS(h.body, "\"title\":\"CacheMiss: miss for user:<n>\"");
    char ct[128];
    ASSERT_STR_EQ(http_header(&h, "Content-Type", ct, sizeof ct), "application/json");
    http_free(&h);

    h = get_with_key("/errors?severity=high&since=1h", "secret-key");
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, "DiskFull");
    ASSERT_NOT_CONTAINS(h.body, "CacheMiss");
    http_free(&h);

    h = get_with_key("/errors?type=CacheMiss", "secret-key");
    ASSERT_EQ(h.status, 200);
    ASSERT_NOT_CONTAINS(h.body, "DiskFull");
    ASSERT_CONTAINS(h.body, "CacheMiss");
    http_free(&h);

    h = get_with_key("/errors?severity=bogus", "secret-key");
    ASSERT_EQ(h.status, 400);
    ASSERT_CONTAINS(h.body, "\"error\":\"severity");
    http_free(&h);
    h = get_with_key("/errors?since=yesterday", "secret-key");
    ASSERT_EQ(h.status, 400);
    http_free(&h);

    h = get_with_key("/alerts", "secret-key");
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, "\"firing\":[{\"rule\":\"AnyCritical\"");
    ASSERT_CONTAINS(h.body, "\"pending\":[]");
    ASSERT_CONTAINS(h.body, "\"recent\":[{\"rule\":\"AnyCritical\",\"state\":\"firing\"");
    http_free(&h);

    /* The endpoints are listed by the index. */
    h = http_get(U("/"));
    ASSERT_CONTAINS(h.body, "/errors");
    ASSERT_CONTAINS(h.body, "/alerts");
    http_free(&h);

    sonde_stop();
    /* Gone after stop. */
    ASSERT_EQ(sonde_listen_port(), 0);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}

TEST(test_errors_endpoint_answers_loopback_without_a_key)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = reg;
    eo.no_env_notifiers = 1;
    eo.no_log = 1;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&eo, &t));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.api_key = "";
    o.errors = t;
    ASSERT_OK(sonde_start(&o));
    http_resp h = http_get(U("/errors"));
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, "\"groups\":[]");
    http_free(&h);
    sonde_stop();
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}
