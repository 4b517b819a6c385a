/*
 * The monitoring server over real HTTP (libcurl): every endpoint, status
 * codes, content negotiation, gzip, name filters, route prefix, HEAD,
 * 404/405/413, self-metrics, bind errors.
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>

#include "core/internal.h"
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

static char url[512];

/* Start sonde on a free loopback port with the given options patched in. */
static int start_local(sonde_start_opts *o)
{
    if (!o->listen)
        o->listen = "127.0.0.1:0";
    if (o->rate_limit_per_second == 0)
        o->rate_limit_per_second = -1;
    int rc = sonde_start(o);
    return rc;
}

static const char *U(const char *path)
{
    return url_of(url, sizeof url, "127.0.0.1", sonde_listen_port(), path);
}

static sonde_health_status always_healthy(sonde_health_result *r, void *ud)
{
    (void)ud;
    sonde_health_result_set_message(r, "all good");
    sonde_health_result_add_detail(r, "answer", "42");
    return SONDE_HEALTH_HEALTHY;
}

static sonde_health_status always_unhealthy(sonde_health_result *r, void *ud)
{
    (void)ud;
    sonde_health_result_set_message(r, "database is gone");
    return SONDE_HEALTH_UNHEALTHY;
}

static sonde_counter *demo_counter(void)
{
    sonde_counter *c = NULL;
    int rc = sonde_counter_create(NULL, "test_http_things_total", "Things.", &c);
    if (rc)
        return NULL;
    return c;
}

TEST(test_start_picks_a_free_port_and_reports_the_address)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    int port = sonde_listen_port();
    ASSERT_GT(port, 0);
    char addr[80];
    ASSERT_OK(sonde_listen_address(addr, sizeof addr));
    char want[80];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    ASSERT_STR_EQ(addr, want);
    ASSERT(sonde_running());
    ASSERT_EQ(sonde_start(&o), SONDE_ESTATE);
    sonde_stop();
    ASSERT(!sonde_running());
    ASSERT_EQ(sonde_listen_port(), 0);
    sonde_stop(); /* twice is fine */
}

TEST(test_bind_failure_is_an_error_code_not_an_abort)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(fd, 1), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    char listen_addr[64];
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", ntohs(a.sin_port));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.listen = listen_addr;
    ASSERT_EQ(sonde_start(&o), SONDE_EBIND);
    ASSERT_CONTAINS(sonde_last_error(), "cannot listen on");
    ASSERT(!sonde_running());
    close(fd);
    o.listen = "not an address:xx";
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL);
    o.listen = "127.0.0.1:0";
    o.route_prefix = "api/";
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL);
    o.route_prefix = NULL;
    o.tls_cert_file = "/nonexistent.pem";
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL); /* key file missing */
    ASSERT(!sonde_running());
}

TEST(test_listen_address_defaults_from_the_environment)
{
    setenv("SONDE_LISTEN", "127.0.0.1:0", 1);
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.rate_limit_per_second = -1;
    ASSERT_OK(sonde_start(&o));
    unsetenv("SONDE_LISTEN");
    ASSERT_GT(sonde_listen_port(), 0);
    http_resp r = http_get(U("/status"));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "ok\n");
    http_free(&r);
    sonde_stop();
}

TEST(test_metrics_serves_prometheus_text_by_default)
{
    sonde_counter *c = demo_counter();
    ASSERT(c);
    sonde_counter_add(c, 7);
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    http_resp r = http_get(U("/metrics"));
    ASSERT_EQ(r.status, 200);
    char ct[128];
    ASSERT(http_header(&r, "Content-Type", ct, sizeof ct));
    ASSERT_CONTAINS(ct, "text/plain");
    ASSERT_CONTAINS(ct, "version=0.0.4");
    ASSERT_CONTAINS(r.body, "# TYPE test_http_things_total counter");
    ASSERT_CONTAINS(r.body, "test_http_things_total 7");
    ASSERT_NOT_CONTAINS(r.body, "# EOF");
    http_free(&r);
    sonde_stop();
}

TEST(test_metrics_negotiates_openmetrics_from_accept)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    /* What Prometheus 2.x sends. */
    const char *h[] = {
        "Accept: application/openmetrics-text;version=1.0.0,application/"
        "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        NULL};
    http_req rq = {.headers = h};
    http_resp r = http_do(U("/metrics"), &rq);
    ASSERT_EQ(r.status, 200);
    char ct[128];
    ASSERT(http_header(&r, "Content-Type", ct, sizeof ct));
    ASSERT_CONTAINS(ct, "application/openmetrics-text");
    ASSERT(r.len > 6);
    ASSERT_STR_EQ(r.body + r.len - 6, "# EOF\n");
    http_free(&r);
    const char *h2[] = {"Accept: text/plain;q=0.9, application/openmetrics-text;q=0.2", NULL};
    rq.headers = h2;
    r = http_do(U("/metrics"), &rq);
    ASSERT(http_header(&r, "Content-Type", ct, sizeof ct));
    ASSERT_CONTAINS(ct, "text/plain");
    http_free(&r);
    sonde_stop();
}

TEST(test_metrics_is_gzipped_when_the_client_accepts_it)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    http_resp plain = http_get(U("/metrics"));
    ASSERT_EQ(plain.status, 200);
    /* Raw: ask for gzip ourselves and check the bytes are a gzip member. */
    const char *h[] = {"Accept-Encoding: gzip", NULL};
    http_req rq = {.headers = h};
    http_resp raw = http_do(U("/metrics"), &rq);
    ASSERT_EQ(raw.status, 200);
    char ce[32];
    ASSERT(http_header(&raw, "Content-Encoding", ce, sizeof ce));
    ASSERT_STR_EQ(ce, "gzip");
    ASSERT(raw.len > 2 && (unsigned char)raw.body[0] == 0x1f && (unsigned char)raw.body[1] == 0x8b);
    ASSERT_LT(raw.len, plain.len);
    /* Decoded by curl: same exposition (modulo self-metrics that moved). */
    http_req dq = {.decode_gzip = true};
    http_resp dec = http_do(U("/metrics"), &dq);
    ASSERT_EQ(dec.status, 200);
    ASSERT_CONTAINS(dec.body, "# TYPE sonde_http_requests_total counter");
    /* Refused gzip: identity. */
    const char *h2[] = {"Accept-Encoding: gzip;q=0, identity", NULL};
    rq.headers = h2;
    http_resp id = http_do(U("/metrics"), &rq);
    ASSERT(!http_header(&id, "Content-Encoding", ce, sizeof ce));
    http_free(&plain);
    http_free(&raw);
    http_free(&dec);
    http_free(&id);
    sonde_stop();
}

TEST(test_metrics_name_filter_selects_families)
{
    sonde_counter *c = demo_counter();
    ASSERT(c);
    sonde_gauge *g = NULL;
    ASSERT_OK(sonde_gauge_create(NULL, "test_http_level", "Level.", &g));
    sonde_gauge_set(g, 3);
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    http_resp r = http_get(U("/metrics?name[]=test_http_level"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "test_http_level 3");
    ASSERT_NOT_CONTAINS(r.body, "test_http_things_total");
    ASSERT_NOT_CONTAINS(r.body, "sonde_http_requests_total");
    http_free(&r);
    /* Percent-encoded brackets, two names. */
    r = http_get(U("/metrics?name%5B%5D=test_http_level&name%5B%5D=test_http_things_total"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "test_http_level 3");
    ASSERT_CONTAINS(r.body, "test_http_things_total");
    http_free(&r);
    r = http_get(U("/metrics?name[]=%zz"));
    ASSERT_EQ(r.status, 400);
    ASSERT_CONTAINS(r.body, "\"error\"");
    http_free(&r);
    sonde_stop();
}

TEST(test_metrics_json_answers_loopback_without_key)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    http_resp r = http_get(U("/metrics/json"));
    ASSERT_EQ(r.status, 200);
    char ct[64];
    ASSERT(http_header(&r, "Content-Type", ct, sizeof ct));
    ASSERT_CONTAINS(ct, "application/json");
    ASSERT(r.body[0] == '{' || r.body[0] == '[');
    ASSERT_CONTAINS(r.body, "sonde_http_requests_total");
    http_free(&r);
    sonde_stop();
}

TEST(test_health_endpoints_follow_check_results)
{
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_health_opts ho = {.registry = reg};
    sonde_health *h = NULL;
    ASSERT_OK(sonde_health_create(&ho, &h));
    sonde_health_check_opts co;
    sonde_health_check_opts_init(&co);
    co.name = "good";
    ASSERT_OK(sonde_health_add(h, &co, always_healthy, NULL));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.health = h;
    o.registry = reg;
    o.service_name = "svc";
    ASSERT_OK(start_local(&o));
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));

    http_resp r = http_get(U("/health"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"status\":\"healthy\"");
    ASSERT_CONTAINS(r.body, "\"health_percentage\":100");
    ASSERT_CONTAINS(r.body, "\"good\":{\"status\":\"healthy\"");
    ASSERT_CONTAINS(r.body, "\"service\":\"svc\"");
    ASSERT_NOT_CONTAINS(r.body, "all good"); /* messages only in detailed */
    http_free(&r);

    const char *ready_paths[] = {"/health/ready", "/health/readiness", "/readyz"};
    for (int i = 0; i < 3; i++) {
        r = http_get(U(ready_paths[i]));
        ASSERT_EQ(r.status, 200);
        ASSERT_CONTAINS(r.body, "\"status\":\"ready\"");
        http_free(&r);
    }
    const char *live_paths[] = {"/health/live", "/health/liveness", "/healthz", "/livez"};
    for (int i = 0; i < 4; i++) {
        r = http_get(U(live_paths[i]));
        ASSERT_EQ(r.status, 200);
        ASSERT_CONTAINS(r.body, "alive");
        http_free(&r);
    }

    /* A critical failure: overall 503, not ready, still alive. */
    co.name = "db";
    ASSERT_OK(sonde_health_add(h, &co, always_unhealthy, NULL));
    ASSERT_OK(sonde_health_wait(h, "db", 5000));
    r = http_get(U("/health"));
    ASSERT_EQ(r.status, 503);
    ASSERT_CONTAINS(r.body, "\"status\":\"unhealthy\"");
    ASSERT_CONTAINS(r.body, "\"health_percentage\":50");
    http_free(&r);
    r = http_get(U("/health/ready"));
    ASSERT_EQ(r.status, 503);
    ASSERT_CONTAINS(r.body, "not_ready");
    ASSERT_CONTAINS(r.body, "\"db\":{\"status\":\"unhealthy\"");
    http_free(&r);
    r = http_get(U("/health/live"));
    ASSERT_EQ(r.status, 200);
    http_free(&r);

    /* Informational failure: degraded, 200, ready. */
    ASSERT_OK(sonde_health_remove(h, "db"));
    co.informational = 1;
    co.name = "optional";
    ASSERT_OK(sonde_health_add(h, &co, always_unhealthy, NULL));
    ASSERT_OK(sonde_health_wait(h, "optional", 5000));
    r = http_get(U("/health"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"status\":\"degraded\"");
    http_free(&r);
    r = http_get(U("/readyz"));
    ASSERT_EQ(r.status, 200);
    http_free(&r);

    /* The health metrics are exported in the served registry. */
    r = http_get(U("/metrics?name[]=sonde_health_status&name[]=sonde_health_overall"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "sonde_health_status{check=\"good\"} 1");
    ASSERT_CONTAINS(r.body, "sonde_health_status{check=\"optional\"} 0");
    ASSERT_CONTAINS(r.body, "sonde_health_overall 50");
    http_free(&r);
    sonde_stop();
    sonde_health_destroy(h);
    sonde_registry_destroy(reg);
}

TEST(test_health_detailed_reports_checks_and_host_figures)
{
    sonde_health *h = NULL;
    ASSERT_OK(sonde_health_create(NULL, &h));
    sonde_health_check_opts co;
    sonde_health_check_opts_init(&co);
    co.name = "good";
    ASSERT_OK(sonde_health_add(h, &co, always_healthy, NULL));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.health = h;
    ASSERT_OK(start_local(&o));
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    http_resp r = http_get(U("/health/detailed"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"message\":\"all good\"");
    ASSERT_CONTAINS(r.body, "\"details\":{\"answer\":\"42\"}");
    ASSERT_CONTAINS(r.body, "\"duration_seconds\":");
    ASSERT_CONTAINS(r.body, "\"last_run\":\"20");
    ASSERT_CONTAINS(r.body, "\"system\":{\"cpu\":{\"count\":");
    ASSERT_CONTAINS(r.body, "\"memory\":{\"total_bytes\":");
    ASSERT_CONTAINS(r.body, "\"disk\":{\"path\":\"/\"");
    ASSERT_CONTAINS(r.body, "\"process\":{\"pid\":");
    ASSERT_CONTAINS(r.body, "\"resident_memory_bytes\":");
    http_free(&r);
    sonde_stop();
    sonde_health_destroy(h);
}

TEST(test_info_shows_configuration_with_secrets_redacted)
{
    const char *info[] = {"database_password", "hunter2", "region",    "eu-west",
                          "github_token",      "ghp_abc", "redis_dsn", "redis://:pw@host"};
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.service_name = "inventory";
    o.service_version = "1.4.2";
    o.service_build = "abc123";
    o.info = info;
    o.info_count = 4;
    ASSERT_OK(start_local(&o));
    http_resp r = http_get(U("/info"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"name\":\"inventory\"");
    ASSERT_CONTAINS(r.body, "\"version\":\"1.4.2\"");
    ASSERT_CONTAINS(r.body, "\"build\":\"abc123\"");
    ASSERT_CONTAINS(r.body, "\"start_time\":\"20");
    ASSERT_CONTAINS(r.body, "\"uptime_seconds\":");
    ASSERT_CONTAINS(r.body, "\"region\":\"eu-west\"");
    ASSERT_CONTAINS(r.body, "\"database_password\":\"<redacted>\"");
    ASSERT_CONTAINS(r.body, "\"github_token\":\"<redacted>\"");
    ASSERT_CONTAINS(r.body, "\"redis_dsn\":\"<redacted>\"");
    ASSERT_NOT_CONTAINS(r.body, "hunter2");
    ASSERT_NOT_CONTAINS(r.body, "ghp_abc");
    ASSERT_NOT_CONTAINS(r.body, ":pw@");
    http_free(&r);
    sonde_stop();
}

TEST(test_status_is_one_line_ok)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    http_resp r = http_get(U("/status"));
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "ok\n");
    http_free(&r);
    sonde_stop();
}

TEST(test_unknown_path_is_404_with_json_body)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    http_resp r = http_get(U("/nope"));
    ASSERT_EQ(r.status, 404);
    char ct[64];
    ASSERT(http_header(&r, "Content-Type", ct, sizeof ct));
    ASSERT_CONTAINS(ct, "application/json");
    ASSERT_STR_EQ(r.body, "{\"error\":\"not found\",\"status\":404}\n");
    http_free(&r);
    r = http_get(U("/metrics/"));
    ASSERT_EQ(r.status, 404);
    http_free(&r);
    sonde_stop();
}

TEST(test_other_methods_are_405_and_bodies_are_refused)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (int i = 0; i < 5; i++) {
        http_req rq = {.method = methods[i]};
        http_resp r = http_do(U("/metrics"), &rq);
        ASSERT_EQ(r.status, 405);
        char allow[64];
        ASSERT(http_header(&r, "Allow", allow, sizeof allow));
        ASSERT_STR_EQ(allow, "GET, HEAD");
        ASSERT_CONTAINS(r.body, "method not allowed");
        http_free(&r);
    }
    /* GET with a body. */
    http_req rq = {.method = "GET", .body = "x=1"};
    http_resp r = http_do(U("/health"), &rq);
    ASSERT_EQ(r.status, 413);
    ASSERT_CONTAINS(r.body, "request bodies are not accepted");
    http_free(&r);
    /* The server still answers afterwards. */
    r = http_get(U("/status"));
    ASSERT_EQ(r.status, 200);
    http_free(&r);
    sonde_stop();
}

TEST(test_head_answers_headers_without_body)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    ASSERT_OK(start_local(&o));
    http_req rq = {.method = "HEAD"};
    http_resp r = http_do(U("/status"), &rq);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.len, 0);
    char cl[32];
    ASSERT(http_header(&r, "Content-Length", cl, sizeof cl));
    ASSERT_STR_EQ(cl, "3");
    http_free(&r);
    r = http_do(U("/metrics"), &rq);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.len, 0);
    http_free(&r);
    sonde_stop();
}

TEST(test_route_prefix_mounts_every_endpoint)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.route_prefix = "/api/v1/monitoring";
    ASSERT_OK(start_local(&o));
    const char *ok_paths[] = {"/api/v1/monitoring/metrics",     "/api/v1/monitoring/health",
                              "/api/v1/monitoring/health/live", "/api/v1/monitoring/status",
                              "/api/v1/monitoring/info",        "/api/v1/monitoring"};
    for (int i = 0; i < 6; i++) {
        http_resp r = http_get(U(ok_paths[i]));
        ASSERT_EQ(r.status, 200);
        http_free(&r);
    }
    const char *missing[] = {"/metrics", "/health", "/api/v1/monitoringx/metrics", "/api/v1"};
    for (int i = 0; i < 4; i++) {
        http_resp r = http_get(U(missing[i]));
        ASSERT_EQ(r.status, 404);
        http_free(&r);
    }
    http_resp r = http_get(U("/api/v1/monitoring/"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"/api/v1/monitoring/health/ready\"");
    http_free(&r);
    sonde_stop();
}

TEST(test_self_metrics_count_requests_by_handler_and_code)
{
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.registry = reg;
    ASSERT_OK(start_local(&o));
    for (int i = 0; i < 3; i++) {
        http_resp r = http_get(U("/status"));
        http_free(&r);
    }
    http_resp r = http_get(U("/nope"));
    http_free(&r);
    r = http_get(U("/metrics"));
    http_free(&r);
    r = http_get(U("/metrics"));
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "sonde_http_requests_total{handler=\"status\",code=\"200\"} 3");
    ASSERT_CONTAINS(r.body, "sonde_http_requests_total{handler=\"not_found\",code=\"404\"} 1");
    ASSERT_CONTAINS(r.body, "sonde_http_requests_total{handler=\"metrics\",code=\"200\"} 1");
    ASSERT_CONTAINS(r.body, "sonde_http_request_duration_seconds_count{handler=\"status\"} 3");
    ASSERT_CONTAINS(r.body, "# TYPE sonde_scrape_duration_seconds histogram");
    ASSERT_CONTAINS(r.body, "sonde_scrape_duration_seconds_count ");
    ASSERT_CONTAINS(r.body, "# TYPE sonde_scrape_bytes gauge");
    http_free(&r);
    sonde_stop();
    sonde_registry_destroy(reg);
}

static void errors_handler(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    (void)rq;
    snprintf((char *)ud, 8, "called");
    /* rs->body starts empty; the server owns and frees it afterwards. */
    sonde__buf_puts(&rs->body, "{\"errors\":[]}\n");
}

TEST(test_extension_routes_get_auth_limits_and_self_metrics)
{
    char called[8] = "";
    ASSERT_EQ(sonde__http_route_add("/metrics", "x", 0, errors_handler, called), SONDE_ECONFLICT);
    ASSERT_EQ(sonde__http_route_add("extension", "x", 0, errors_handler, called), SONDE_EINVAL);
    ASSERT_OK(sonde__http_route_add("/extension", "extension", SONDE__ROUTE_SENSITIVE,
                                    errors_handler, called));
    ASSERT_EQ(sonde__http_route_add("/extension", "extension", 0, errors_handler, called),
              SONDE_ECONFLICT);
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.registry = reg;
    o.api_key = "k";
    ASSERT_OK(start_local(&o));
    http_resp r = http_get(U("/extension"));
    ASSERT_EQ(r.status, 401);
    http_free(&r);
    ASSERT_STR_EQ(called, "");
    const char *h[] = {"Authorization: Bearer k", NULL};
    http_req rq = {.headers = h};
    r = http_do(U("/extension"), &rq);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(r.body, "{\"errors\":[]}\n");
    ASSERT_STR_EQ(called, "called");
    http_free(&r);
    http_req post = {.method = "POST", .headers = h};
    r = http_do(U("/extension"), &post);
    ASSERT_EQ(r.status, 405);
    http_free(&r);
    r = http_get(U("/metrics?name[]=sonde_http_requests_total"));
    ASSERT_CONTAINS(r.body, "sonde_http_requests_total{handler=\"extension\",code=\"200\"} 1");
    ASSERT_CONTAINS(r.body, "sonde_http_requests_total{handler=\"extension\",code=\"401\"} 1");
    http_free(&r);
    sonde_stop();
    sonde__http_route_remove("/extension");
    ASSERT_OK(start_local(&o));
    r = http_get(U("/extension"));
    ASSERT_EQ(r.status, 404);
    http_free(&r);
    sonde_stop();
    sonde_registry_destroy(reg);
}

TEST_MAIN()
