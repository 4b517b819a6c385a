/*
 * Application routes and request instrumentation under concurrency (run
 * under TSan by make test-tsan): routes added and removed while clients
 * hammer them (every answer is 200 or 404, never a crash, and a removed
 * route's handler never runs after removal returned), and begin/end from
 * several threads adding up exactly.
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>
#include <sonde/app.h>

#include <pthread.h>
#include <stdatomic.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static atomic_int running_handlers;
static atomic_int removed_flag;
static atomic_int late_calls;
static atomic_int stop_clients;
static atomic_int bad_answers;

static void slowish(void *ud, const sonde_route_request *rq, sonde_route_response *rs)
{
    (void)ud;
    (void)rq;
    atomic_fetch_add(&running_handlers, 1);
    if (atomic_load(&removed_flag))
        atomic_fetch_add(&late_calls, 1);
    sonde_buf_printf(&rs->body, "{\"ok\":true}\n");
    atomic_fetch_sub(&running_handlers, 1);
}

static void *client(void *arg)
{
    (void)arg;
    char url[128];
    while (!atomic_load(&stop_clients)) {
        http_resp h = http_get(url_of(url, sizeof url, "127.0.0.1", sonde_listen_port(), "/churn"));
        if (h.status != 200 && h.status != 404)
            atomic_fetch_add(&bad_answers, 1);
        http_free(&h);
    }
    return NULL;
}

TEST(test_routes_added_and_removed_while_clients_request_them)
{
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    so.rate_limit_per_second = 1e6;
    so.rate_limit_burst = 1e6;
    ASSERT_OK(sonde_start(&so));
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, client, NULL);
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.path = "/churn";
    o.no_rate_limit = 1;
    for (int round = 0; round < 40; round++) {
        atomic_store(&removed_flag, 0);
        ASSERT_OK(sonde_route_add(&o, slowish, NULL));
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        ASSERT_OK(sonde_route_remove("/churn", 0));
        /* After removal returned, no handler runs and none may start. */
        ASSERT_EQ(atomic_load(&running_handlers), 0);
        atomic_store(&removed_flag, 1);
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop_clients, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(atomic_load(&late_calls), 0);
    ASSERT_EQ(atomic_load(&bad_answers), 0);
    sonde_stop();
}

typedef struct {
    sonde_http_instr *in;
    int n;
} targ;

static void *requester(void *arg)
{
    targ *a = arg;
    sonde_http_route *r = sonde_http_instr_match(a->in, "/items/1");
    for (int i = 0; i < a->n; i++) {
        sonde_http_req q;
        sonde_http_begin(a->in, &q, r, i % 2 ? SONDE_HTTP_GET : SONDE_HTTP_POST, NULL);
        /* Several statuses so that the per-route caches fill concurrently. */
        static const int codes[] = {200, 201, 404, 429, 500, 503, 200, 204, 301, 302, 400};
        sonde_http_end(&q, codes[i % 11], 100);
    }
    return NULL;
}

TEST(test_begin_end_from_several_threads_add_up)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    const char *routes[] = {"/items/{id}"};
    sonde_http_instr_opts o;
    sonde_http_instr_opts_init(&o);
    o.registry = reg;
    o.metric_namespace = "c";
    o.routes = routes;
    o.route_count = 1;
    o.no_errors = 1;
    o.no_trace = 1;
    sonde_http_instr *in;
    ASSERT_OK(sonde_http_instr_create(&o, &in));
    targ a = {in, 22000};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, requester, &a);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    sonde_buf b = {0};
    ASSERT_OK(sonde_registry_write_prometheus(reg, &b));
    /* 4 threads x 22000: each (method, status) pair of the 11-cycle. */
    ASSERT_CONTAINS(b.data,
                    "c_http_request_duration_seconds_count{method=\"GET\",route=\"/items/{id}\"} "
                    "44000");
    ASSERT_CONTAINS(b.data,
                    "c_http_request_duration_seconds_count{method=\"POST\",route=\"/items/{id}\"} "
                    "44000");
    ASSERT_CONTAINS(b.data, "c_http_requests_in_flight 0");
    ASSERT_CONTAINS(b.data, "c_http_security_events_total{kind=\"rate_limited\"} 8000");
    sonde_buf_free(&b);
    sonde_http_instr_destroy(in);
    sonde_registry_destroy(reg);
}
