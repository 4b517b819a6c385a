/*
 * Built-in PostgreSQL and Redis checks against real servers started here
 * (scripts/services.sh: private instances on loopback ports in a temp
 * directory), then against the same servers stopped: unhealthy, with a
 * clear message. The servers are stopped at exit whatever happens.
 */
#include "test.h"

#include <sonde.h>

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static int pg_port, redis_port;
static int pg_up, redis_up;

static int sh(const char *fmt, ...) SONDE_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static const char *script(void)
{
    static char path[512];
    const char *src = getenv("SONDE_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/scripts/services.sh", src ? src : ".");
    return path;
}

static int free_port(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s free-port", script());
    FILE *p = popen(cmd, "r");
    int port = 0;
    if (p) {
        if (fscanf(p, "%d", &port) != 1)
            port = 0;
        pclose(p);
    }
    return port;
}

static void stop_services(void)
{
    if (pg_up)
        sh("%s postgres stop %s/pg", script(), dir);
    if (redis_up)
        sh("%s redis stop %s/redis", script(), dir);
    pg_up = redis_up = 0;
    if (dir[0])
        sh("rm -rf %s", dir);
    dir[0] = '\0';
}

static void start_services(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "/tmp/sonde-services-XXXXXX");
    if (!mkdtemp(dir)) {
        dir[0] = '\0';
        return;
    }
    atexit(stop_services);
    pg_port = free_port();
    redis_port = free_port();
    if (pg_port > 0 && sh("%s postgres start %s/pg %d", script(), dir, pg_port) == 0)
        pg_up = 1;
    if (redis_port > 0 && sh("%s redis start %s/redis %d s3cret", script(), dir, redis_port) == 0)
        redis_up = 1;
}

static sonde_health_check_state run(sonde_health *h, const char *name)
{
    sonde_health_check_state st;
    memset(&st, 0, sizeof st);
    sonde_health_wait(h, name, 20000);
    sonde_health_get(h, name, &st);
    return st;
}

static void opts(sonde_health_check_opts *o, const char *name)
{
    sonde_health_check_opts_init(o);
    o->name = name;
    o->timeout_seconds = 5;
}

TEST(test_postgres_and_redis_checks_against_live_servers)
{
    start_services();
    ASSERT(pg_up);
    ASSERT(redis_up);
    sonde_health *h = NULL;
    ASSERT_OK(sonde_health_create(NULL, &h));
    ASSERT_OK(sonde_health_start(h));
    char conn[256];
    sonde_health_check_opts o;

    snprintf(conn, sizeof conn, "host=127.0.0.1 port=%d dbname=postgres user=sonde", pg_port);
    opts(&o, "pg");
    ASSERT_OK(sonde_health_add_postgres(h, &o, conn, NULL));
    opts(&o, "pg_query");
    ASSERT_OK(sonde_health_add_postgres(h, &o, conn, "SELECT count(*) FROM pg_stat_activity"));
    opts(&o, "pg_bad_query");
    ASSERT_OK(sonde_health_add_postgres(h, &o, conn, "SELECT * FROM no_such_table"));
    char uri[256];
    snprintf(uri, sizeof uri, "postgresql://sonde@127.0.0.1:%d/no_such_db", pg_port);
    opts(&o, "pg_no_db");
    ASSERT_OK(sonde_health_add_postgres(h, &o, uri, NULL));
    opts(&o, "redis");
    ASSERT_OK(sonde_health_add_redis(h, &o, "127.0.0.1", redis_port, "s3cret"));
    opts(&o, "redis_wrong_pw");
    ASSERT_OK(sonde_health_add_redis(h, &o, "127.0.0.1", redis_port, "nope"));
    opts(&o, "redis_no_pw");
    ASSERT_OK(sonde_health_add_redis(h, &o, "127.0.0.1", redis_port, NULL));

    sonde_health_check_state st = run(h, "pg");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    char want[160];
    snprintf(want, sizeof want, "connected to 127.0.0.1:%d/postgres, \"SELECT 1\" ok", pg_port);
    ASSERT_STR_EQ(st.message, want);
    ASSERT_EQ(run(h, "pg_query").status, SONDE_HEALTH_HEALTHY);
    st = run(h, "pg_bad_query");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "relation \"no_such_table\" does not exist");
    st = run(h, "pg_no_db");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "database \"no_such_db\" does not exist");

    st = run(h, "redis");
    ASSERT_EQ(st.status, SONDE_HEALTH_HEALTHY);
    snprintf(want, sizeof want, "Redis at 127.0.0.1:%d answered PONG", redis_port);
    ASSERT_STR_EQ(st.message, want);
    st = run(h, "redis_wrong_pw");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "refused AUTH");
    ASSERT_NOT_CONTAINS(st.message, "nope");
    st = run(h, "redis_no_pw");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "NOAUTH");

    /* The detailed report never shows the password. */
    sonde_buf b;
    sonde_buf_init(&b);
    ASSERT_OK(sonde_health_write_json(h, 1, &b));
    ASSERT_NOT_CONTAINS(b.data, "s3cret");
    sonde_buf_free(&b);

    /* Stop the servers: the same checks turn unhealthy with a clear reason. */
    sh("%s postgres stop %s/pg", script(), dir);
    pg_up = 0;
    sh("%s redis stop %s/redis", script(), dir);
    redis_up = 0;
    st = run(h, "pg");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT_CONTAINS(st.message, "cannot connect to PostgreSQL: ");
    ASSERT_CONTAINS(st.message, "Connection refused");
    st = run(h, "redis");
    ASSERT_EQ(st.status, SONDE_HEALTH_UNHEALTHY);
    snprintf(want, sizeof want, "cannot connect to Redis at 127.0.0.1:%d: Connection refused",
             redis_port);
    ASSERT_STR_EQ(st.message, want);
    sonde_health_summary sum;
    sonde_health_summarize(h, &sum);
    ASSERT_EQ(sum.status, SONDE_HEALTH_UNHEALTHY);
    ASSERT(!sum.ready);
    sonde_health_destroy(h);
    stop_services();
}

TEST_MAIN()
