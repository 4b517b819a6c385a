/* With SONDE_ENABLED=0 error tracking is a no-op: nothing captured, no
 * thread, sonde_start serves nothing. */
#include "test.h"

#include <sonde.h>

#include <dirent.h>
#include <stdlib.h>

#include "core/worker.h"

TEST_MAIN()

__attribute__((constructor)) static void disable(void)
{
    setenv("SONDE_ENABLED", "0", 1);
}

static int threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

TEST(test_disabled_error_tracking_captures_nothing_and_starts_nothing)
{
    ASSERT_EQ(sonde_enabled(), 0);
    int before = threads();
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = reg;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    ASSERT_OK(sonde_errors_start(t));
    ASSERT(!sonde__runtime_running());
    SONDE_CAPTURE(SONDE_SEVERITY_CRITICAL, "E", "into the default tracker %d", 1);
    sonde_error_capturef(t, SONDE_SEVERITY_HIGH, "E", NULL, 0, NULL, "x");
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n = 99;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 0);
    ASSERT_OK(sonde_start(NULL));
    ASSERT_EQ(sonde_listen_port(), 0);
    ASSERT_EQ(threads(), before);
    sonde_stop();
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}
