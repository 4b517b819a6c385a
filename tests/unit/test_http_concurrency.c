/*
 * Concurrency of the server, the runtime worker and health checks (runs
 * under TSan): a hanging check never delays probes or scrapes, scrapes run
 * concurrently with hot-path updates and see exact totals, timers come and
 * go while the worker runs, start/stop cycles under client load.
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>

#include "core/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static int port;

static long get_status(const char *path, long timeout_ms, char **body)
{
    char u[256];
    url_of(u, sizeof u, "127.0.0.1", port, path);
    http_req rq = {.timeout_ms = timeout_ms};
    http_resp r = http_do(u, &rq);
    long s = r.status;
    if (body)
        *body = r.body, r.body = NULL;
    http_free(&r);
    return s;
}

static pthread_mutex_t hang_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cond = PTHREAD_COND_INITIALIZER;
static int released;

static sonde_health_status hang(sonde_health_result *r, void *ud)
{
    (void)r;
    (void)ud;
    pthread_mutex_lock(&hang_lock);
    while (!released)
        pthread_cond_wait(&hang_cond, &hang_lock);
    pthread_mutex_unlock(&hang_lock);
    return SONDE_HEALTH_HEALTHY;
}

static atomic_int probe_failures, probes_done;

static void *prober(void *arg)
{
    const char *path = arg;
    for (int i = 0; i < 40; i++) {
        /* 2 s is far more than an answer from a cached result takes; a probe
         * that waited on the hanging check would never get one. */
        long s = get_status(path, 2000, NULL);
        bool is_health = strcmp(path, "/health") == 0 || strcmp(path, "/health/ready") == 0;
        if (!(s == 200 || (is_health && s == 503)))
            atomic_fetch_add(&probe_failures, 1);
        atomic_fetch_add(&probes_done, 1);
        usleep(15000); /* spread the probes over the check's timeout */
    }
    return NULL;
}

TEST(test_hanging_check_does_not_delay_liveness_or_metrics)
{
    sonde_health *h = NULL;
    ASSERT_OK(sonde_health_create(NULL, &h));
    sonde_health_check_opts o;
    sonde_health_check_opts_init(&o);
    o.name = "hangs_forever";
    o.timeout_seconds = 0.3;
    o.interval_seconds = 0.05;
    released = 0;
    ASSERT_OK(sonde_health_add(h, &o, hang, NULL));
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    so.rate_limit_per_second = -1;
    so.health = h;
    ASSERT_OK(sonde_start(&so));
    port = sonde_listen_port();
    atomic_store(&probe_failures, 0);
    atomic_store(&probes_done, 0);
    pthread_t t[4];
    const char *paths[4] = {"/health/live", "/metrics", "/health/ready", "/health"};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, prober, (void *)paths[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(atomic_load(&probes_done), 160);
    /* /health/ready and /health answer 503 once the check timed out (and
     * /health 200 before, pending being degraded); either way they answer
     * within the client's 2 s timeout. Live and metrics always answer 200. */
    ASSERT_EQ(atomic_load(&probe_failures), 0);
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    char *body = NULL;
    ASSERT_EQ(get_status("/health/live", 2000, NULL), 200);
    ASSERT_EQ(get_status("/metrics", 2000, NULL), 200);
    ASSERT_EQ(get_status("/health", 2000, &body), 503);
    ASSERT_CONTAINS(body, "\"hangs_forever\":{\"status\":\"unhealthy\"");
    free(body);
    ASSERT_EQ(get_status("/health/detailed", 2000, &body), 503);
    ASSERT_CONTAINS(body, "timed out after 0.3 s");
    free(body);
    pthread_mutex_lock(&hang_lock);
    released = 1;
    pthread_cond_broadcast(&hang_cond);
    pthread_mutex_unlock(&hang_lock);
    sonde_stop();
    sonde_health_destroy(h);
}

static atomic_int stop_inc;
static sonde_counter *hot;

static void *incrementer(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        sonde_counter_inc(hot);
    return NULL;
}

static void *scraper(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_inc)) {
        char *body = NULL;
        long s = get_status("/metrics", 5000, &body);
        if (s != 200)
            atomic_fetch_add(&probe_failures, 1);
        free(body);
    }
    return NULL;
}

TEST(test_scrapes_during_hot_path_updates_see_exact_totals)
{
    ASSERT_OK(sonde_counter_create(NULL, "test_conc_hot_total", "Hot counter.", &hot));
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    ASSERT_OK(sonde_start(&so));
    port = sonde_listen_port();
    atomic_store(&stop_inc, 0);
    atomic_store(&probe_failures, 0);
    pthread_t sc[2], inc[3];
    for (int i = 0; i < 2; i++)
        pthread_create(&sc[i], NULL, scraper, NULL);
    for (int i = 0; i < 3; i++)
        pthread_create(&inc[i], NULL, incrementer, (void *)(intptr_t)200000);
    for (int i = 0; i < 3; i++)
        pthread_join(inc[i], NULL);
    atomic_store(&stop_inc, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(sc[i], NULL);
    ASSERT_EQ(atomic_load(&probe_failures), 0);
    char *body = NULL;
    ASSERT_EQ(get_status("/metrics?name[]=test_conc_hot_total", 5000, &body), 200);
    ASSERT_CONTAINS(body, "test_conc_hot_total 600000\n");
    free(body);
    sonde_stop();
}

static atomic_int ticks[8];

static void tick_fn(void *ud, uint64_t now)
{
    (void)now;
    atomic_fetch_add((atomic_int *)ud, 1);
}

static void *timer_churn(void *arg)
{
    atomic_int *slot = arg;
    for (int i = 0; i < 50; i++) {
        uint64_t id = 0;
        if (sonde__runtime_every(1, tick_fn, slot, &id) == SONDE_OK) {
            sonde__runtime_trigger(id);
            usleep(1000);
            sonde__runtime_cancel(id);
        }
    }
    return NULL;
}

TEST(test_timers_come_and_go_while_the_worker_runs)
{
    ASSERT_OK(sonde__runtime_start());
    ASSERT_OK(sonde__runtime_start()); /* reference-counted */
    ASSERT(sonde__runtime_running());
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        atomic_store(&ticks[i], 0);
        pthread_create(&t[i], NULL, timer_churn, &ticks[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    int total = 0;
    for (int i = 0; i < 4; i++)
        total += atomic_load(&ticks[i]);
    if (total == 0) {
        /* On a heavily loaded machine every 1 ms window may miss the
         * worker; a timer given up to 2 s must still tick. */
        uint64_t id = 0;
        ASSERT_OK(sonde__runtime_every(1, tick_fn, &ticks[0], &id));
        sonde__runtime_trigger(id);
        for (int w = 0; w < 2000 && atomic_load(&ticks[0]) == 0; w++)
            usleep(1000);
        sonde__runtime_cancel(id);
        total = atomic_load(&ticks[0]);
    }
    ASSERT_GT(total, 0);
    /* After cancel returns the callback never runs again. */
    int snapshot[4];
    for (int i = 0; i < 4; i++)
        snapshot[i] = atomic_load(&ticks[i]);
    usleep(50000);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(atomic_load(&ticks[i]), snapshot[i]);
    ASSERT(sonde__runtime_heartbeat_ns() > 0);
    sonde__runtime_stop();
    ASSERT(sonde__runtime_running());
    sonde__runtime_stop();
    ASSERT(!sonde__runtime_running());
    ASSERT_EQ(sonde__runtime_heartbeat_ns(), 0);
}

static atomic_int cycling;

static void *hammer(void *arg)
{
    (void)arg;
    while (atomic_load(&cycling)) {
        int p = sonde_listen_port();
        if (p) {
            char u[128];
            snprintf(u, sizeof u, "http://127.0.0.1:%d/health/live", p);
            http_req rq = {.timeout_ms = 2000};
            http_resp r = http_do(u, &rq);
            http_free(&r);
        }
    }
    return NULL;
}

TEST(test_start_stop_cycles_under_client_load)
{
    atomic_store(&cycling, 1);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 10; i++) {
        sonde_start_opts so;
        sonde_start_opts_init(&so);
        so.listen = "127.0.0.1:0";
        so.rate_limit_per_second = -1;
        ASSERT_OK(sonde_start(&so));
        usleep(20000);
        sonde_stop();
    }
    atomic_store(&cycling, 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ASSERT(!sonde_running());
}

TEST_MAIN()
