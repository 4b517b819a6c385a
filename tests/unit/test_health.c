/*
 * Health sets: status rules, caching, timeouts, replacement, metrics, JSON,
 * and the built-in checks that need no external server (disk, memory, load,
 * writable directory, command, TCP, HTTP, SQLite, file freshness).
 * PostgreSQL and Redis checks run against real servers in
 * tests/integration/test_health_services.c.
 */
#include "test.h"

#include <sonde.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

static sonde_health *new_set(void)
{
    sonde_health *h = NULL;
    if (sonde_health_create(NULL, &h) != SONDE_OK)
        return NULL;
    if (sonde_health_start(h) != SONDE_OK) {
        sonde_health_destroy(h);
        return NULL;
    }
    return h;
}

static void opts(sonde_health_check_opts *o, const char *name)
{
    sonde_health_check_opts_init(o);
    o->name = name;
    o->timeout_seconds = 5;
}

static sonde_health_status ret_status(sonde_health_result *r, void *ud)
{
    sonde_health_status s = (sonde_health_status)(intptr_t)ud;
    sonde_health_result_set_message(r, "returning %s", sonde_health_status_name(s));
    return s;
}

static atomic_int runs;
static sonde_health_status counting(sonde_health_result *r, void *ud)
{
    (void)r;
    (void)ud;
    atomic_fetch_add(&runs, 1);
    return SONDE_HEALTH_HEALTHY;
}

static sonde_health_check_state state_of(sonde_health *h, const char *name)
{
    sonde_health_check_state st;
    memset(&st, 0, sizeof st);
    sonde_health_get(h, name, &st);
    return st;
}

TEST(test_empty_set_is_healthy_and_ready)
{
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_summary s;
    sonde_health_summarize(h, &s);
    ASSERT_EQ(s.status, SONDE_HEALTH_HEALTHY);
    ASSERT(s.ready);
    ASSERT_DBL_EQ(s.percentage, 100);
    sonde_health_destroy(h);
}

TEST(test_pending_critical_check_is_not_ready)
{
    sonde_health *h = NULL;
    ASSERT_OK(sonde_health_create(NULL, &h)); /* not started: never runs */
    sonde_health_check_opts o;
    opts(&o, "slow_to_start");
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_HEALTHY));
    sonde_health_summary s;
    sonde_health_summarize(h, &s);
    ASSERT_EQ(s.status, SONDE_HEALTH_DEGRADED);
    ASSERT(!s.ready);
    ASSERT_EQ(s.pending, 1);
    ASSERT_EQ(state_of(h, "slow_to_start").status, SONDE_HEALTH_PENDING);
    ASSERT_EQ(sonde_health_wait(h, NULL, 100), SONDE_ESTATE);
    sonde_health_destroy(h);
}

TEST(test_overall_status_and_percentage_follow_the_rules)
{
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "a");
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_HEALTHY));
    opts(&o, "b");
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_DEGRADED));
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    sonde_health_summary s;
    sonde_health_summarize(h, &s);
    ASSERT_EQ(s.status, SONDE_HEALTH_DEGRADED);
    ASSERT(s.ready); /* degraded still serves */
    ASSERT_DBL_EQ(s.percentage, 75);

    opts(&o, "c");
    o.informational = 1;
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_UNHEALTHY));
    ASSERT_OK(sonde_health_wait(h, "c", 5000));
    sonde_health_summarize(h, &s);
    ASSERT_EQ(s.status, SONDE_HEALTH_DEGRADED);
    ASSERT(s.ready);
    ASSERT_DBL_EQ(s.percentage, 50);

    opts(&o, "d");
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_UNHEALTHY));
    ASSERT_OK(sonde_health_wait(h, "d", 5000));
    sonde_health_summarize(h, &s);
    ASSERT_EQ(s.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT(!s.ready);
    ASSERT_EQ(s.healthy, 1);
    ASSERT_EQ(s.degraded, 1);
    ASSERT_EQ(s.unhealthy, 2);
    ASSERT_DBL_EQ(s.percentage, 37.5);
    sonde_health_check_state st = state_of(h, "d");
    ASSERT_STR_EQ(st.message, "returning unhealthy");
    ASSERT(st.critical);
    ASSERT(st.last_run > 1e9);
    ASSERT_EQ(state_of(h, "c").critical, 0);
    sonde_health_destroy(h);
}

TEST(test_add_validates_names_and_timing)
{
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "bad name");
    ASSERT_EQ(sonde_health_add(h, &o, counting, NULL), SONDE_EINVAL);
    opts(&o, "");
    ASSERT_EQ(sonde_health_add(h, &o, counting, NULL), SONDE_EINVAL);
    opts(&o, "ok");
    ASSERT_EQ(sonde_health_add(h, &o, NULL, NULL), SONDE_EINVAL);
    o.timeout_seconds = -1;
    ASSERT_EQ(sonde_health_add(h, &o, counting, NULL), SONDE_EINVAL);
    o.timeout_seconds = 0;
    o.interval_seconds = 1e9;
    ASSERT_EQ(sonde_health_add(h, &o, counting, NULL), SONDE_EINVAL);
    o.interval_seconds = 0;
    ASSERT_OK(sonde_health_add(h, &o, counting, NULL));
    ASSERT_EQ(sonde_health_add(h, &o, counting, NULL), SONDE_ECONFLICT);
    ASSERT_CONTAINS(sonde_last_error(), "already registered");
    ASSERT_EQ(sonde_health_remove(h, "nope"), SONDE_ENOTFOUND);
    ASSERT_OK(sonde_health_remove(h, "ok"));
    sonde_health_destroy(h);
}

TEST(test_results_are_cached_between_refreshes)
{
    sonde_health *h = new_set();
    ASSERT(h);
    atomic_store(&runs, 0);
    sonde_health_check_opts o;
    opts(&o, "cached");
    o.interval_seconds = 3600;
    ASSERT_OK(sonde_health_add(h, &o, counting, NULL));
    ASSERT_OK(sonde_health_wait(h, "cached", 5000));
    int after_first = atomic_load(&runs);
    ASSERT_EQ(after_first, 1);
    /* Reading the state many times never runs the check. */
    for (int i = 0; i < 100; i++) {
        sonde_health_summary s;
        sonde_health_summarize(h, &s);
        ASSERT_EQ(state_of(h, "cached").status, SONDE_HEALTH_HEALTHY);
    }
    usleep(300000);
    ASSERT_EQ(atomic_load(&runs), 1);
    /* A short interval refreshes on its own. */
    opts(&o, "fast");
    o.interval_seconds = 0.05;
    ASSERT_OK(sonde_health_add(h, &o, counting, NULL));
    /* runs counts completed callbacks (the check's own counter). */
    for (int i = 0; i < 100 && atomic_load(&runs) < 3; i++)
        usleep(50000);
    ASSERT_GE(atomic_load(&runs), 3);
    ASSERT_GE(state_of(h, "fast").runs, 2);
    sonde_health_destroy(h);
}

static pthread_mutex_t hang_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cond = PTHREAD_COND_INITIALIZER;
static int hang_release;
static atomic_int hang_freed;

static sonde_health_status hanging(sonde_health_result *r, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&hang_lock);
    while (!hang_release)
        pthread_cond_wait(&hang_cond, &hang_lock);
    pthread_mutex_unlock(&hang_lock);
    sonde_health_result_set_message(r, "finally done");
    return SONDE_HEALTH_HEALTHY;
}

static void hang_free(void *ud)
{
    (void)ud;
    atomic_fetch_add(&hang_freed, 1);
}

TEST(test_hanging_check_times_out_without_blocking_others)
{
    sonde_health *h = new_set();
    ASSERT(h);
    hang_release = 0;
    atomic_store(&hang_freed, 0);
    atomic_store(&runs, 0);
    sonde_health_check_opts o;
    opts(&o, "stuck");
    o.timeout_seconds = 0.2;
    o.interval_seconds = 0.05;
    o.free_userdata = hang_free;
    ASSERT_OK(sonde_health_add(h, &o, hanging, NULL));
    opts(&o, "fine");
    o.interval_seconds = 0.05;
    ASSERT_OK(sonde_health_add(h, &o, counting, NULL));
    ASSERT_OK(sonde_health_wait(h, "stuck", 5000));
    sonde_health_check_state st = state_of(h, "stuck");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_STR_EQ(st.message, "timed out after 0.2 s");
    ASSERT_EQ(st.timeouts, 1);
    ASSERT_DBL_EQ(st.duration_seconds, 0.2);
    /* The other check keeps refreshing while "stuck" hangs, and "stuck" is
     * not started again (one thread at most). */
    int before = atomic_load(&runs);
    usleep(500000);
    ASSERT_GT(atomic_load(&runs), before);
    st = state_of(h, "stuck");
    ASSERT_EQ(st.runs, 1);
    ASSERT_EQ(st.timeouts, 1);
    /* Removing it does not wait; its userdata is freed once it returns. */
    ASSERT_OK(sonde_health_remove(h, "stuck"));
    ASSERT_EQ(atomic_load(&hang_freed), 0);
    pthread_mutex_lock(&hang_lock);
    hang_release = 1;
    pthread_cond_broadcast(&hang_cond);
    pthread_mutex_unlock(&hang_lock);
    for (int i = 0; i < 200 && atomic_load(&hang_freed) == 0; i++)
        usleep(10000);
    ASSERT_EQ(atomic_load(&hang_freed), 1);
    sonde_health_destroy(h);
}

TEST(test_late_result_of_a_timed_out_run_is_dropped)
{
    sonde_health *h = new_set();
    ASSERT(h);
    hang_release = 0;
    sonde_health_check_opts o;
    opts(&o, "late");
    o.timeout_seconds = 0.1;
    o.interval_seconds = 3600;
    ASSERT_OK(sonde_health_add(h, &o, hanging, NULL));
    /* Wait for the scheduled first run to time out without asking for a
     * refresh: a refresh requested now would rerun the check as soon as the
     * late run returns, and that rerun answers in time. */
    for (int i = 0; i < 500 && state_of(h, "late").timeouts < 1; i++)
        usleep(10000);
    ASSERT_EQ(state_of(h, "late").timeouts, 1);
    pthread_mutex_lock(&hang_lock);
    hang_release = 1;
    pthread_cond_broadcast(&hang_cond);
    pthread_mutex_unlock(&hang_lock);
    usleep(200000);
    sonde_health_check_state st = state_of(h, "late");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "timed out");
    /* An explicit refresh runs it again and now it answers in time. */
    ASSERT_OK(sonde_health_wait(h, "late", 5000));
    st = state_of(h, "late");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    ASSERT_STR_EQ(st.message, "finally done");
    sonde_health_destroy(h);
}

static atomic_int freed_count;
static void count_free(void *p)
{
    (void)p;
    atomic_fetch_add(&freed_count, 1);
}

TEST(test_replace_swaps_checks_and_keeps_identical_ones)
{
    sonde_health *h = new_set();
    ASSERT(h);
    atomic_store(&freed_count, 0);
    atomic_store(&runs, 0);
    sonde_health_check_opts o;
    opts(&o, "same");
    o.interval_seconds = 3600;
    ASSERT_OK(sonde_health_add(h, &o, counting, NULL));
    opts(&o, "gone");
    o.free_userdata = count_free;
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_HEALTHY));
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    ASSERT_EQ(atomic_load(&runs), 1);

    sonde_health *next = NULL;
    ASSERT_OK(sonde_health_create(NULL, &next));
    opts(&o, "same");
    o.interval_seconds = 3600;
    ASSERT_OK(sonde_health_add(next, &o, counting, NULL));
    opts(&o, "new");
    ASSERT_OK(sonde_health_add(next, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_DEGRADED));
    ASSERT_OK(sonde_health_replace(h, next));
    ASSERT_EQ(state_of(h, "same").status, SONDE_HEALTH_HEALTHY); /* kept its result */
    ASSERT_EQ(state_of(h, "same").runs, 1);
    sonde_health_check_state st;
    ASSERT_EQ(sonde_health_get(h, "gone", &st), SONDE_ENOTFOUND);
    /* Freed once its last run's thread has let go of it (just after the
     * result that sonde_health_wait saw). */
    for (int i = 0; i < 200 && atomic_load(&freed_count) == 0; i++)
        usleep(5000);
    ASSERT_EQ(atomic_load(&freed_count), 1);
    ASSERT_OK(sonde_health_wait(h, "new", 5000));
    ASSERT_EQ(state_of(h, "new").status, SONDE_HEALTH_DEGRADED);
    sonde_health_summary s;
    sonde_health_summarize(next, &s);
    ASSERT_EQ(s.checks, 0);
    sonde_health_destroy(next);
    sonde_health_destroy(h);
}

static sonde_health_status detailed(sonde_health_result *r, void *ud)
{
    (void)ud;
    sonde_health_result_set_message(r, "quote \" and newline \n inside");
    sonde_health_result_add_detail(r, "version", "15.2");
    sonde_health_result_add_number(r, "latency_ms", 1.5);
    return SONDE_HEALTH_HEALTHY;
}

TEST(test_json_report_escapes_and_carries_details)
{
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "db");
    ASSERT_OK(sonde_health_add(h, &o, detailed, NULL));
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    sonde_buf b;
    sonde_buf_init(&b);
    ASSERT_OK(sonde_health_write_json(h, 0, &b));
    ASSERT_CONTAINS(b.data, "{\"status\":\"healthy\",\"health_percentage\":100,\"ready\":true,");
    ASSERT_CONTAINS(b.data, "\"checks\":{\"db\":{\"status\":\"healthy\",\"critical\":true}}");
    sonde_buf_reset(&b);
    ASSERT_OK(sonde_health_write_json(h, 1, &b));
    ASSERT_CONTAINS(b.data, "\"message\":\"quote \\\" and newline \\n inside\"");
    ASSERT_CONTAINS(b.data, "\"details\":{\"version\":\"15.2\",\"latency_ms\":1.5}");
    ASSERT_CONTAINS(b.data, "\"timeout_seconds\":5");
    sonde_buf_free(&b);
    sonde_health_destroy(h);
}

TEST(test_metrics_export_status_duration_and_overall)
{
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_health_opts ho = {.registry = reg};
    sonde_health *h = NULL;
    ASSERT_OK(sonde_health_create(&ho, &h));
    sonde_health *h2 = NULL;
    ASSERT_EQ(sonde_health_create(&ho, &h2), SONDE_ECONFLICT);
    ASSERT_OK(sonde_health_start(h));
    sonde_health_check_opts o;
    opts(&o, "up");
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_HEALTHY));
    opts(&o, "meh");
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_DEGRADED));
    opts(&o, "down");
    ASSERT_OK(sonde_health_add(h, &o, ret_status, (void *)(intptr_t)SONDE_HEALTH_UNHEALTHY));
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT(text);
    ASSERT_CONTAINS(text, "# TYPE sonde_health_status gauge");
    ASSERT_CONTAINS(text, "sonde_health_status{check=\"up\"} 1\n");
    ASSERT_CONTAINS(text, "sonde_health_status{check=\"meh\"} 0.5\n");
    ASSERT_CONTAINS(text, "sonde_health_status{check=\"down\"} 0\n");
    ASSERT_CONTAINS(text, "sonde_health_check_duration_seconds{check=\"up\"} ");
    ASSERT_CONTAINS(text, "sonde_health_overall 50\n");
    sonde_free(text);
    sonde_health_destroy(h);
    /* The collector went with the set. */
    text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_NOT_CONTAINS(text, "sonde_health_status");
    sonde_free(text);
    sonde_registry_destroy(reg);
}

/* ---- built-in checks ---- */

static sonde_health_check_state run_one(sonde_health *h, const char *name)
{
    sonde_health_wait(h, name, 10000);
    return state_of(h, name);
}

TEST(test_builtin_disk_space)
{
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "disk_ok");
    ASSERT_OK(sonde_health_add_disk(h, &o, "/", 0.0001, 0.00001));
    opts(&o, "disk_full");
    ASSERT_OK(sonde_health_add_disk(h, &o, "/", 100, 100)); /* nothing has 100% free */
    opts(&o, "disk_missing");
    ASSERT_OK(sonde_health_add_disk(h, &o, "/nonexistent/path", 0, 0));
    sonde_health_check_state st = run_one(h, "disk_ok");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    ASSERT_CONTAINS(st.message, "% free (");
    ASSERT_CONTAINS(st.message, " on /");
    ASSERT_EQ(run_one(h, "disk_full").status, SONDE_HEALTH_UNHEALTHY);
    st = run_one(h, "disk_missing");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "cannot stat filesystem of /nonexistent/path");
    ASSERT_EQ(sonde_health_add_disk(h, &o, NULL, 0, 0), SONDE_EINVAL);
    ASSERT_EQ(sonde_health_add_disk(h, &o, "/", 101, 0), SONDE_EINVAL);
    sonde_health_destroy(h);
}

TEST(test_builtin_memory_and_load)
{
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "mem");
    ASSERT_OK(sonde_health_add_memory(h, &o, 0.0001, 0.00001, 0));
    opts(&o, "rss_limit");
    ASSERT_OK(sonde_health_add_memory(h, &o, 0, 0, 4096));
    opts(&o, "load");
    ASSERT_OK(sonde_health_add_load(h, &o, 1000, 2000));
    sonde_health_check_state st = run_one(h, "mem");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    ASSERT_CONTAINS(st.message, "of system memory available");
    st = run_one(h, "rss_limit");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "exceeds the limit 4.0 KiB");
    st = run_one(h, "load");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    ASSERT_CONTAINS(st.message, "CPUs");
    sonde_health_destroy(h);
}

TEST(test_builtin_writable_directory)
{
    char dir[] = "/tmp/sonde-wr-XXXXXX";
    ASSERT(mkdtemp(dir));
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "tmp");
    ASSERT_OK(sonde_health_add_writable_dir(h, &o, dir));
    opts(&o, "missing");
    ASSERT_OK(sonde_health_add_writable_dir(h, &o, "/nonexistent/dir"));
    ASSERT_EQ(run_one(h, "tmp").status, SONDE_HEALTH_HEALTHY);
    sonde_health_check_state st = run_one(h, "missing");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "cannot create a file in /nonexistent/dir");
    sonde_health_destroy(h);
    rmdir(dir); /* fails if the probe file was left behind */
    struct stat sb;
    ASSERT(stat(dir, &sb) != 0);
}

TEST(test_builtin_command_reports_version_and_failures)
{
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "tool");
    const char *ok[] = {"sh", "-c", "echo 'tool version 1.2.3'; echo second line", NULL};
    ASSERT_OK(sonde_health_add_command(h, &o, ok));
    opts(&o, "absent");
    const char *absent[] = {"sonde-no-such-tool", "--version", NULL};
    ASSERT_OK(sonde_health_add_command(h, &o, absent));
    opts(&o, "failing");
    const char *fail[] = {"sh", "-c", "echo boom >&2; exit 3", NULL};
    ASSERT_OK(sonde_health_add_command(h, &o, fail));
    opts(&o, "sleepy");
    o.timeout_seconds = 0.3;
    const char *sleepy[] = {"sleep", "30", NULL};
    ASSERT_OK(sonde_health_add_command(h, &o, sleepy));
    sonde_health_check_state st = run_one(h, "tool");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    ASSERT_STR_EQ(st.message, "tool version 1.2.3");
    st = run_one(h, "absent");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "sonde-no-such-tool");
    st = run_one(h, "failing");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_STR_EQ(st.message, "sh exited with status 3: boom");
    /* The child is killed at the timeout; the run ends soon after. */
    st = run_one(h, "sleepy");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    for (int i = 0; i < 100; i++) {
        st = state_of(h, "sleepy");
        if (strstr(st.message, "killed") || strstr(st.message, "timed out"))
            break;
        usleep(20000);
    }
    ASSERT(strstr(st.message, "killed") || strstr(st.message, "timed out"));
    sonde_health_destroy(h);
}

TEST(test_builtin_tcp_connect)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_EQ(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(lfd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    /* A port that was just free: bind, read it, close. */
    int tfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(tfd, (struct sockaddr *)&b, sizeof b);
    al = sizeof b;
    getsockname(tfd, (struct sockaddr *)&b, &al);
    int closed_port = ntohs(b.sin_port);
    close(tfd);

    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "up");
    ASSERT_OK(sonde_health_add_tcp(h, &o, "127.0.0.1", port));
    opts(&o, "down");
    ASSERT_OK(sonde_health_add_tcp(h, &o, "127.0.0.1", closed_port));
    opts(&o, "unresolvable");
    ASSERT_OK(sonde_health_add_tcp(h, &o, "no-such-host.invalid", 80));
    sonde_health_check_state st = run_one(h, "up");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    ASSERT_CONTAINS(st.message, "connected to 127.0.0.1:");
    st = run_one(h, "down");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "Connection refused");
    st = run_one(h, "unresolvable");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "cannot resolve no-such-host.invalid");
    ASSERT_EQ(sonde_health_add_tcp(h, &o, "x", 70000), SONDE_EINVAL);
    sonde_health_destroy(h);
    close(lfd);
}

TEST(test_builtin_http_get_with_expected_status)
{
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    so.rate_limit_per_second = -1;
    ASSERT_OK(sonde_start(&so));
    char u1[128], u2[128];
    snprintf(u1, sizeof u1, "http://127.0.0.1:%d/status", sonde_listen_port());
    snprintf(u2, sizeof u2, "http://127.0.0.1:%d/nope", sonde_listen_port());
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "ok");
    ASSERT_OK(sonde_health_add_http(h, &o, u1, 0));
    opts(&o, "expect404");
    ASSERT_OK(sonde_health_add_http(h, &o, u2, 404));
    opts(&o, "wrong");
    ASSERT_OK(sonde_health_add_http(h, &o, u2, 0));
    opts(&o, "refused");
    ASSERT_OK(sonde_health_add_http(h, &o, "http://127.0.0.1:1/", 200));
    sonde_health_check_state st = run_one(h, "ok");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    ASSERT_CONTAINS(st.message, "answered 200");
    ASSERT_EQ(run_one(h, "expect404").status, SONDE_HEALTH_HEALTHY);
    st = run_one(h, "wrong");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "answered 404, expected 2xx");
    st = run_one(h, "refused");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "failed");
    sonde_health_destroy(h);
    sonde_stop();
}

TEST(test_builtin_sqlite_open_and_query)
{
    char path[] = "/tmp/sonde-sqlite-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    close(fd);
    sqlite3 *db = NULL;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE jobs(id INTEGER); INSERT INTO jobs VALUES (1);", NULL,
                           NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "db");
    ASSERT_OK(sonde_health_add_sqlite(h, &o, path, NULL));
    opts(&o, "db_table");
    ASSERT_OK(sonde_health_add_sqlite(h, &o, path, "SELECT count(*) FROM jobs"));
    opts(&o, "db_bad_query");
    ASSERT_OK(sonde_health_add_sqlite(h, &o, path, "SELECT * FROM missing_table"));
    opts(&o, "db_missing");
    ASSERT_OK(sonde_health_add_sqlite(h, &o, "/tmp/sonde-no-such.db", NULL));
    ASSERT_EQ(run_one(h, "db").status, SONDE_HEALTH_HEALTHY);
    ASSERT_EQ(run_one(h, "db_table").status, SONDE_HEALTH_HEALTHY);
    sonde_health_check_state st = run_one(h, "db_bad_query");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "no such table: missing_table");
    st = run_one(h, "db_missing");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "cannot open /tmp/sonde-no-such.db");
    struct stat sb;
    ASSERT(stat("/tmp/sonde-no-such.db", &sb) != 0); /* never created */
    sonde_health_destroy(h);
    unlink(path);
}

TEST(test_builtin_file_freshness)
{
    char path[] = "/tmp/sonde-marker-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    close(fd);
    sonde_health *h = new_set();
    ASSERT(h);
    sonde_health_check_opts o;
    opts(&o, "backup");
    ASSERT_OK(sonde_health_add_file_fresh(h, &o, path, 60));
    opts(&o, "never_ran");
    ASSERT_OK(sonde_health_add_file_fresh(h, &o, "/tmp/sonde-no-such-marker", 60));
    ASSERT_EQ(run_one(h, "backup").status, SONDE_HEALTH_HEALTHY);
    struct utimbuf old = {.actime = time(NULL) - 3600, .modtime = time(NULL) - 3600};
    ASSERT_EQ(utime(path, &old), 0);
    sonde_health_check_state st = run_one(h, "backup");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "was last updated 360"); /* 3600 or 3601 s */
    ASSERT_CONTAINS(st.message, " s ago (limit 60 s)");
    st = run_one(h, "never_ran");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "No such file or directory");
    ASSERT_EQ(sonde_health_add_file_fresh(h, &o, path, 0), SONDE_EINVAL);
    sonde_health_destroy(h);
    unlink(path);
}

TEST_MAIN()
