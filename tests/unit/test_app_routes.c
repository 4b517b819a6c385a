/*
 * Application routes on the monitoring server (sonde/app.h) over real HTTP:
 * add, remove and conflicts while the server runs, methods and 405 with
 * Allow, body limits and 413, access classes, decoded query, selected
 * headers, the request ID, gzip and the access metrics.
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>
#include <sonde/app.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static char url[512];
static const char *U(const char *path)
{
    return url_of(url, sizeof url, "127.0.0.1", sonde_listen_port(), path);
}

/* Echoes what the handler received as JSON. */
static void echo(void *ud, const sonde_route_request *rq, sonde_route_response *rs)
{
    (void)ud;
    sonde_buf_printf(&rs->body, "{\"method\":\"%s\",\"path\":", rq->method);
    sonde_buf_json_string(&rs->body, rq->path);
    sonde_buf_printf(&rs->body, ",\"sub\":");
    sonde_buf_json_string(&rs->body, rq->subpath);
    sonde_buf_printf(&rs->body, ",\"query\":{");
    for (size_t i = 0; i < rq->query_count; i++) {
        sonde_buf_printf(&rs->body, "%s", i ? "," : "");
        sonde_buf_json_string(&rs->body, rq->query[2 * i]);
        sonde_buf_printf(&rs->body, ":");
        sonde_buf_json_string(&rs->body, rq->query[2 * i + 1]);
    }
    sonde_buf_printf(&rs->body, "},\"headers\":{");
    for (size_t i = 0; i < rq->header_count; i++) {
        sonde_buf_printf(&rs->body, "%s", i ? "," : "");
        sonde_buf_json_string(&rs->body, rq->headers[2 * i]);
        sonde_buf_printf(&rs->body, ":");
        sonde_buf_json_string(&rs->body, rq->headers[2 * i + 1]);
    }
    sonde_buf_printf(&rs->body, "},\"body_len\":%zu,\"body\":", rq->body_len);
    sonde_buf_json_string(&rs->body, rq->body ? rq->body : "");
    char cid[130] = "";
    sonde_log_correlation_id(cid, sizeof cid);
    sonde_buf_printf(&rs->body, ",\"rid\":\"%s\",\"log_cid\":\"%s\"}\n", rq->request_id, cid);
    if (rq->method_bit == SONDE_HTTP_POST)
        rs->status = 201;
}

static int deny_without_token(void *ud, const sonde_route_request *rq)
{
    (void)ud;
    for (size_t i = 0; i < rq->header_count; i++)
        if (strcmp(rq->headers[2 * i + 1], "let-me-in") == 0)
            return 0;
    return 403;
}

static void start(const char *key, const char *prefix)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.api_key = key ? key : "";
    o.route_prefix = prefix ? prefix : "";
    ASSERT_OK(sonde_start(&o));
}

static http_resp req(const char *method, const char *path, const char *body,
                     const char *const *headers)
{
    http_req rq = {.method = method, .body = body, .headers = headers};
    return http_do(U(path), &rq);
}

TEST(test_route_added_while_running_answers_and_removed_route_gives_404)
{
    start(NULL, NULL);
    http_resp h = http_get(U("/app/echo"));
    ASSERT_EQ(h.status, 404);
    http_free(&h);
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/app/echo";
    o.owner = "demo";
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    h = http_get(U("/app/echo?a=1&b=x%20y&c=a+b&flag"));
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, "\"query\":{\"a\":\"1\",\"b\":\"x y\",\"c\":\"a b\",\"flag\":\"\"}");
    ASSERT_CONTAINS(h.body, "\"method\":\"GET\"");
    char v[128];
    ASSERT(http_header(&h, "X-Request-ID", v, sizeof v) != NULL);
    ASSERT_EQ(strlen(v), 32);
    ASSERT(http_header(&h, "Cache-Control", v, sizeof v) != NULL);
    ASSERT_STR_EQ(v, "no-store");
    http_free(&h);
    ASSERT_OK(sonde_route_remove("/app/echo", 0));
    ASSERT_EQ(sonde_route_remove("/app/echo", 0), SONDE_ENOTFOUND);
    h = http_get(U("/app/echo"));
    ASSERT_EQ(h.status, 404);
    http_free(&h);
    sonde_stop();
}

TEST(test_route_conflicts_name_both_owners)
{
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/metrics";
    o.owner = "demo";
    ASSERT_EQ(sonde_route_add(&o, echo, NULL), SONDE_ECONFLICT);
    ASSERT_CONTAINS(sonde_last_error(), "/metrics of demo conflicts with /metrics of sonde");
    o.path = "/api/v1/artifacts/metrics/discovery";
    o.absolute = 1;
    o.owner = "discovery";
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    o.owner = "importer";
    ASSERT_EQ(sonde_route_add(&o, echo, NULL), SONDE_ECONFLICT);
    ASSERT_CONTAINS(sonde_last_error(), "of importer conflicts with");
    ASSERT_CONTAINS(sonde_last_error(), "of discovery");
    ASSERT_OK(sonde_route_remove("/api/v1/artifacts/metrics/discovery", 1));
    o.path = "relative";
    ASSERT_EQ(sonde_route_add(&o, echo, NULL), SONDE_EINVAL);
}

TEST(test_absolute_route_sits_beside_the_prefix_and_relative_route_under_it)
{
    start(NULL, "/api/v1/monitoring");
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/api/v1/artifacts/metrics/discovery";
    o.absolute = 1;
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    sonde_route_opts_init(&o);
    o.path = "/stats";
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    http_resp h = http_get(U("/api/v1/artifacts/metrics/discovery"));
    ASSERT_EQ(h.status, 200);
    http_free(&h);
    h = http_get(U("/api/v1/monitoring/stats"));
    ASSERT_EQ(h.status, 200);
    http_free(&h);
    h = http_get(U("/stats"));
    ASSERT_EQ(h.status, 404);
    http_free(&h);
    h = http_get(U("/api/v1/monitoring/metrics"));
    ASSERT_EQ(h.status, 200);
    http_free(&h);
    ASSERT_OK(sonde_route_remove("/api/v1/artifacts/metrics/discovery", 1));
    ASSERT_OK(sonde_route_remove("/stats", 0));
    sonde_stop();
}

TEST(test_unknown_method_gets_405_with_allow_and_post_reads_the_body)
{
    start(NULL, NULL);
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/app/items";
    o.methods = SONDE_HTTP_GET | SONDE_HTTP_POST;
    o.max_body_bytes = 64;
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    http_resp h = req("DELETE", "/app/items", NULL, NULL);
    ASSERT_EQ(h.status, 405);
    char v[128];
    ASSERT(http_header(&h, "Allow", v, sizeof v) != NULL);
    ASSERT_STR_EQ(v, "GET, HEAD, POST");
    http_free(&h);
    h = req("POST", "/app/items", "{\"name\":\"x\"}", NULL);
    ASSERT_EQ(h.status, 201);
    ASSERT_CONTAINS(h.body, "\"body_len\":12,\"body\":\"{\\\"name\\\":\\\"x\\\"}\"");
    http_free(&h);
    /* 65 bytes: one past the limit. */
    char big[66];
    memset(big, 'a', 65);
    big[65] = '\0';
    h = req("POST", "/app/items", big, NULL);
    ASSERT_EQ(h.status, 413);
    ASSERT_CONTAINS(h.body, "larger than 64 bytes");
    http_free(&h);
    /* Exactly the limit passes. */
    big[64] = '\0';
    h = req("POST", "/app/items", big, NULL);
    ASSERT_EQ(h.status, 201);
    http_free(&h);
    /* Chunked (no Content-Length) past the limit: 413 after reading. */
    char huge[4097];
    memset(huge, 'b', 4096);
    huge[4096] = '\0';
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    h = req("POST", "/app/items", huge, chunked);
    ASSERT_EQ(h.status, 413);
    http_free(&h);
    /* A GET with a body is refused. */
    h = req("GET", "/app/items", "x", NULL);
    ASSERT_EQ(h.status, 413);
    http_free(&h);
    h = req("HEAD", "/app/items", NULL, NULL);
    ASSERT_EQ(h.status, 200);
    http_free(&h);
    ASSERT_OK(sonde_route_remove("/app/items", 0));
    sonde_stop();
}

TEST(test_access_classes_public_sensitive_and_own_check)
{
    start("k3y", NULL);
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/app/public";
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    o.path = "/app/secret";
    o.access = SONDE_ACCESS_SENSITIVE;
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    const char *hdr[] = {"X-Token"};
    o.path = "/app/checked";
    o.access = SONDE_ACCESS_CHECK;
    o.check = deny_without_token;
    o.headers = hdr;
    o.header_count = 1;
    ASSERT_OK(sonde_route_add(&o, echo, NULL));

    http_resp h = http_get(U("/app/public"));
    ASSERT_EQ(h.status, 200);
    http_free(&h);
    h = http_get(U("/app/secret"));
    ASSERT_EQ(h.status, 401);
    char v[128];
    ASSERT(http_header(&h, "WWW-Authenticate", v, sizeof v) != NULL);
    http_free(&h);
    const char *key[] = {"Authorization: Bearer k3y", NULL};
    h = req(NULL, "/app/secret", NULL, key);
    ASSERT_EQ(h.status, 200);
    http_free(&h);
    h = http_get(U("/app/checked"));
    ASSERT_EQ(h.status, 403);
    http_free(&h);
    const char *tok[] = {"X-Token: let-me-in", "X-Other: no", NULL};
    h = req(NULL, "/app/checked", NULL, tok);
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, "\"headers\":{\"X-Token\":\"let-me-in\"}");
    http_free(&h);
    ASSERT_OK(sonde_route_remove("/app/public", 0));
    ASSERT_OK(sonde_route_remove("/app/secret", 0));
    ASSERT_OK(sonde_route_remove("/app/checked", 0));
    sonde_stop();
}

TEST(test_request_id_is_adopted_into_the_handler_context_and_answered)
{
    start(NULL, NULL);
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/app/ids";
    o.prefix = 1;
    o.metric_label = "ids";
    ASSERT_OK(sonde_route_add(&o, echo, NULL));
    const char *rid[] = {"X-Request-ID: req-42", NULL};
    http_resp h = req(NULL, "/app/ids/a/b", NULL, rid);
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, "\"sub\":\"a/b\"");
    ASSERT_CONTAINS(h.body, "\"rid\":\"req-42\",\"log_cid\":\"req-42\"");
    char v[128];
    ASSERT(http_header(&h, "X-Request-ID", v, sizeof v) != NULL);
    ASSERT_STR_EQ(v, "req-42");
    http_free(&h);
    const char *tp[] = {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                        NULL};
    h = req(NULL, "/app/ids", NULL, tp);
    ASSERT(http_header(&h, "X-Request-ID", v, sizeof v) != NULL);
    ASSERT_STR_EQ(v, "4bf92f3577b34da6a3ce929d0e0e4736");
    http_free(&h);
    h = http_get(U("/metrics"));
    ASSERT_CONTAINS(h.body, "sonde_http_requests_total{handler=\"ids\",code=\"200\"} 2");
    http_free(&h);
    ASSERT_OK(sonde_route_remove("/app/ids", 0));
    sonde_stop();
}

static void big_body(void *ud, const sonde_route_request *rq, sonde_route_response *rs)
{
    (void)ud;
    (void)rq;
    rs->content_type = "text/plain";
    for (int i = 0; i < 200; i++)
        sonde_buf_printf(&rs->body, "line %d of a long body\n", i);
}

TEST(test_large_answers_are_gzipped_when_accepted)
{
    start(NULL, NULL);
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/app/big";
    ASSERT_OK(sonde_route_add(&o, big_body, NULL));
    http_req rq = {.decode_gzip = true};
    http_resp h = http_do(U("/app/big"), &rq);
    ASSERT_EQ(h.status, 200);
    char v[64];
    ASSERT(http_header(&h, "Content-Encoding", v, sizeof v) != NULL);
    ASSERT_STR_EQ(v, "gzip");
    ASSERT_CONTAINS(h.body, "line 199 of a long body");
    http_free(&h);
    ASSERT_OK(sonde_route_remove("/app/big", 0));
    sonde_stop();
}
