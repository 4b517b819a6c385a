/*
 * Request instrumentation (sonde_http_begin/end): metrics by method, route
 * template and status under the namespace, in-flight gauge, sizes,
 * security events, template matching, correlation ID adoption, 5xx
 * captured as errors with the request context.
 */
#include "test.h"

#include <sonde.h>
#include <sonde/app.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static char *scrape(sonde_registry *reg)
{
    sonde_buf b = {0};
    ASSERT_OK(sonde_registry_write_prometheus(reg, &b));
    return b.data;
}

TEST(test_begin_end_records_requests_by_method_route_and_status)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    const char *routes[] = {"/items/{id}", "/static/*", "/health"};
    const double buckets[] = {0.1, 1};
    sonde_http_instr_opts o;
    sonde_http_instr_opts_init(&o);
    o.registry = reg;
    o.metric_namespace = "shop";
    o.routes = routes;
    o.route_count = 3;
    o.buckets = buckets;
    o.bucket_count = 2;
    o.no_errors = 1;
    o.no_trace = 1;
    sonde_http_instr *in;
    ASSERT_OK(sonde_http_instr_create(&o, &in));

    ASSERT_STR_EQ(sonde_http_route_template(sonde_http_instr_match(in, "/items/42")),
                  "/items/{id}");
    ASSERT_STR_EQ(sonde_http_route_template(sonde_http_instr_match(in, "/items/42?x=1")),
                  "/items/{id}");
    ASSERT_STR_EQ(sonde_http_route_template(sonde_http_instr_match(in, "/items/")), "other");
    ASSERT_STR_EQ(sonde_http_route_template(sonde_http_instr_match(in, "/items/4/x")), "other");
    ASSERT_STR_EQ(sonde_http_route_template(sonde_http_instr_match(in, "/static/css/a.css")),
                  "/static/*");
    ASSERT_STR_EQ(sonde_http_route_template(sonde_http_instr_match(in, "/health")), "/health");
    ASSERT_STR_EQ(sonde_http_route_template(sonde_http_instr_match(in, "/secret/raw/path")),
                  "other");

    sonde_http_req q;
    sonde_http_begin_info bi = {.request_bytes = 300};
    sonde_http_begin(in, &q, sonde_http_instr_match(in, "/items/1"), SONDE_HTTP_GET, &bi);
    char *t = scrape(reg);
    ASSERT_CONTAINS(t, "shop_http_requests_in_flight 1");
    free(t);
    sonde_http_end(&q, 200, 2000);
    sonde_http_begin(in, &q, sonde_http_instr_match(in, "/items/2"), SONDE_HTTP_GET, NULL);
    sonde_http_end(&q, 200, 0);
    sonde_http_begin(in, &q, sonde_http_instr_match(in, "/items/3"), SONDE_HTTP_POST, NULL);
    sonde_http_end(&q, 401, 0);
    sonde_http_begin(in, &q, NULL, SONDE_HTTP_GET, NULL);
    sonde_http_end(&q, 429, 0);
    sonde_http_begin(in, &q, sonde_http_instr_route(in, "/upload"), SONDE_HTTP_PUT, NULL);
    sonde_http_end(&q, 413, 0);

    t = scrape(reg);
    ASSERT_CONTAINS(
        t, "shop_http_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 2");
    ASSERT_CONTAINS(
        t, "shop_http_requests_total{method=\"POST\",route=\"/items/{id}\",status=\"401\"} 1");
    ASSERT_CONTAINS(t, "shop_http_requests_total{method=\"GET\",route=\"other\",status=\"429\"} 1");
    ASSERT_CONTAINS(t, "shop_http_request_duration_seconds_bucket{method=\"GET\",route=\"/items/"
                       "{id}\",le=\"0.1\"} 2");
    ASSERT_CONTAINS(t, "shop_http_request_duration_seconds_bucket{method=\"GET\",route=\"/items/"
                       "{id}\",le=\"1\"} 2");
    ASSERT_CONTAINS(t,
                    "shop_http_request_size_bytes_count{method=\"GET\",route=\"/items/{id}\"} 1");
    ASSERT_CONTAINS(t,
                    "shop_http_response_size_bytes_sum{method=\"GET\",route=\"/items/{id}\"} 2000");
    ASSERT_CONTAINS(t, "shop_http_requests_in_flight 0");
    ASSERT_CONTAINS(t, "shop_http_security_events_total{kind=\"unauthorized\"} 1");
    ASSERT_CONTAINS(t, "shop_http_security_events_total{kind=\"rate_limited\"} 1");
    ASSERT_CONTAINS(t, "shop_http_security_events_total{kind=\"oversized\"} 1");
    ASSERT_CONTAINS(t, "shop_http_security_events_total{kind=\"forbidden\"} 0");
    ASSERT_NOT_CONTAINS(t, "/items/1");
    free(t);
    sonde_http_instr_destroy(in);
    sonde_registry_destroy(reg);
}

TEST(test_request_id_is_adopted_and_5xx_is_captured_with_context)
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
    sonde_http_instr_opts o;
    sonde_http_instr_opts_init(&o);
    o.registry = reg;
    o.errors = t;
    o.no_trace = 1;
    sonde_http_instr *in;
    ASSERT_OK(sonde_http_instr_create(&o, &in));

    sonde_http_req q;
    sonde_http_begin_info bi = {.x_request_id = "abc-123"};
    sonde_http_begin(in, &q, sonde_http_instr_route(in, "/pay"), SONDE_HTTP_POST, &bi);
    ASSERT_STR_EQ(q.request_id, "abc-123");
    char cid[130];
    sonde_log_correlation_id(cid, sizeof cid);
    ASSERT_STR_EQ(cid, "abc-123");
    sonde_http_end(&q, 503, 0);
    ASSERT_EQ(sonde_log_correlation_id(cid, sizeof cid), 0);

    bi = (sonde_http_begin_info){.traceparent =
                                     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"};
    sonde_http_begin(in, &q, sonde_http_instr_route(in, "/pay"), SONDE_HTTP_GET, &bi);
    ASSERT_STR_EQ(q.request_id, "0af7651916cd43dd8448eb211c80319c");
    sonde_http_end(&q, 200, 0);

    sonde_errors_process(t);
    sonde_buf b = {0};
    ASSERT_OK(sonde_errors_write_json(t, NULL, &b));
    ASSERT_CONTAINS(b.data, "\"type\":\"HTTP5xx\"");
    ASSERT_CONTAINS(b.data, "POST /pay answered 503");
    ASSERT_CONTAINS(b.data, "\"request_id\":\"abc-123\"");
    ASSERT_CONTAINS(b.data, "\"route\":\"/pay\"");
    ASSERT_CONTAINS(b.data, "\"correlation_id\":\"abc-123\"");
    sonde_buf_free(&b);
    sonde_http_instr_destroy(in);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}

TEST(test_instrumentation_rejects_bad_templates)
{
    const char *routes[] = {"items"};
    sonde_http_instr_opts o;
    sonde_http_instr_opts_init(&o);
    o.routes = routes;
    o.route_count = 1;
    sonde_http_instr *in = NULL;
    ASSERT_EQ(sonde_http_instr_create(&o, &in), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "items");
}
