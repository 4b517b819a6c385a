/* sonde_disable: an application's own "metrics off" flag turns sonde off
 * before its first use, exactly as SONDE_ENABLED=0 does; once sonde has
 * been found enabled the call refuses (SONDE_ESTATE) and changes nothing.
 * The switch is per process: each case runs in a child process. */
#include "test.h"

#include <sonde.h>

#include <dirent.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

TEST_MAIN()

__attribute__((constructor)) static void clear_env(void)
{
    unsetenv("SONDE_ENABLED");
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

/* Run fn in a child; its exit status is the number of the failed check
 * (0: all passed). */
static int in_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static int disable_first(void)
{
    int before = threads();
    if (sonde_disable() != SONDE_OK)
        return 1;
    if (sonde_enabled() != 0)
        return 2;
    if (sonde_disable() != SONDE_OK) /* again: still fine */
        return 3;
    sonde_counter *c;
    if (sonde_counter_create(NULL, "app_requests_total", "r", &c) != SONDE_OK)
        return 4;
    sonde_counter_inc(c);
    if (sonde_counter_get(c) != 0)
        return 5;
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    if (sonde_start(&so) != SONDE_OK)
        return 6;
    if (sonde_listen_port() != 0 || threads() != before)
        return 7;
    sonde_stop();
    return 0;
}

static int disable_too_late(void)
{
#ifdef SONDE_DISABLE
    return sonde_disable() == SONDE_OK && sonde_enabled() == 0 ? 0 : 1;
#else
    if (sonde_enabled() != 1)
        return 1;
    sonde_counter *c;
    if (sonde_counter_create(NULL, "app_requests_total", "r", &c) != SONDE_OK)
        return 2;
    if (sonde_disable() != SONDE_ESTATE)
        return 3;
    if (sonde_enabled() != 1)
        return 4;
    sonde_counter_inc(c); /* what was set up stays on */
    return sonde_counter_get(c) == 1 ? 0 : 5;
#endif
}

TEST(test_disable_before_first_use_turns_everything_off)
{
    ASSERT_EQ(in_child(disable_first), 0);
}

TEST(test_disable_after_first_use_is_refused_and_changes_nothing)
{
    ASSERT_EQ(in_child(disable_too_late), 0);
}
