/*
 * The libmicrohttpd adapter against real requests: an application server
 * started with sonde_mhd_start_daemon, queried with libcurl. Metrics by
 * route template and status, the correlation ID inside the handler and in
 * the answer, 5xx captured as errors, the application's own completion
 * callback and per-request pointer.
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>
#include <sonde/mhd.h>

#include <stdatomic.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static atomic_int completed;
static char seen_cid[130];

static void app_done(void *cls, struct MHD_Connection *c, void **req_cls,
                     enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    if (*req_cls)
        atomic_fetch_add(&completed, 1);
}

static enum MHD_Result app(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                           const char *version, const char *upload, size_t *upload_size,
                           void **req_cls)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)upload;
    static int marker;
    if (*req_cls == NULL) { /* the usual first-call pattern */
        *req_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    sonde_log_correlation_id(seen_cid, sizeof seen_cid);
    int status = strncmp(url, "/boom", 5) == 0 ? 500 : strcmp(url, "/private") == 0 ? 401 : 200;
    static const char body[] = "{\"ok\":true}\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    sonde_mhd_add_request_id(r);
    sonde_mhd_set_response_size(sizeof body - 1);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

TEST(test_mhd_adapter_instruments_real_requests_in_one_call)
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
    const char *routes[] = {"/items/{id}", "/boom"};
    sonde_http_instr_opts o;
    sonde_http_instr_opts_init(&o);
    o.registry = reg;
    o.metric_namespace = "app";
    o.routes = routes;
    o.route_count = 2;
    o.errors = t;
    o.no_trace = 1;
    sonde_http_instr *in;
    ASSERT_OK(sonde_http_instr_create(&o, &in));

    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)app_done, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *d =
        sonde_mhd_start_daemon(in, MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, app, NULL, opts);
    ASSERT(d != NULL);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di->port;
    char url[256];

    const char *rid[] = {"X-Request-ID: order-77", NULL};
    http_req rq = {.headers = rid};
    http_resp h = http_do(url_of(url, sizeof url, "127.0.0.1", port, "/items/42?x=1"), &rq);
    ASSERT_EQ(h.status, 200);
    char v[128];
    ASSERT(http_header(&h, "X-Request-ID", v, sizeof v) != NULL);
    ASSERT_STR_EQ(v, "order-77");
    ASSERT_STR_EQ(seen_cid, "order-77");
    http_free(&h);
    h = http_get(url_of(url, sizeof url, "127.0.0.1", port, "/items/43"));
    ASSERT_EQ(h.status, 200);
    ASSERT(http_header(&h, "X-Request-ID", v, sizeof v) != NULL);
    ASSERT_EQ(strlen(v), 32);
    http_free(&h);
    http_req post = {.method = "POST", .body = "hello"};
    h = http_do(url_of(url, sizeof url, "127.0.0.1", port, "/boom"), &post);
    ASSERT_EQ(h.status, 500);
    http_free(&h);
    h = http_get(url_of(url, sizeof url, "127.0.0.1", port, "/private"));
    ASSERT_EQ(h.status, 401);
    http_free(&h);
    sonde_mhd_stop_daemon(d);
    ASSERT_EQ(atomic_load(&completed), 4);

    sonde_buf b = {0};
    ASSERT_OK(sonde_registry_write_prometheus(reg, &b));
    ASSERT_CONTAINS(
        b.data, "app_http_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 2");
    ASSERT_CONTAINS(b.data,
                    "app_http_requests_total{method=\"POST\",route=\"/boom\",status=\"500\"} 1");
    ASSERT_CONTAINS(b.data,
                    "app_http_requests_total{method=\"GET\",route=\"other\",status=\"401\"} 1");
    ASSERT_CONTAINS(
        b.data, "app_http_request_duration_seconds_count{method=\"GET\",route=\"/items/{id}\"} 2");
    ASSERT_CONTAINS(b.data, "app_http_request_size_bytes_count{method=\"POST\",route=\"/boom\"} 1");
    /* Two answers of the 12-byte body, as the handler stated. */
    ASSERT_CONTAINS(b.data,
                    "app_http_response_size_bytes_sum{method=\"GET\",route=\"/items/{id}\"} 24");
    ASSERT_EQ(sonde_mhd_set_response_size(1), SONDE_ESTATE); /* not inside a handler */
    ASSERT_CONTAINS(b.data, "app_http_security_events_total{kind=\"unauthorized\"} 1");
    ASSERT_CONTAINS(b.data, "app_http_requests_in_flight 0");
    ASSERT_NOT_CONTAINS(b.data, "/items/42");
    sonde_buf_free(&b);

    sonde_errors_process(t);
    ASSERT_OK(sonde_errors_write_json(t, NULL, &b));
    ASSERT_CONTAINS(b.data, "POST /boom answered 500");
    sonde_buf_free(&b);
    sonde_http_instr_destroy(in);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}
