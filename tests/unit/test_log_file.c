/* File, journal and syslog sinks: rotation by size, external rotation,
 * SIGHUP reopen, unwritable targets (/dev/full, a removed directory), and
 * datagrams as journald and syslogd receive them. */
#include "test_log_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

static sonde_logger *lg(void)
{
    return sonde_logger_get("file.test");
}

/* Whatever the test runner left SIGHUP as (nohup ignores it), start from
 * the default so the SIGHUP test sees sonde install its handler. */
__attribute__((constructor)) static void default_sighup(void)
{
    signal(SIGHUP, SIG_DFL);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static int count_lines(const char *p)
{
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void make_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", test_tmpdir(), name);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
    if (run_cmd(cmd) != 0)
        abort();
}

TEST(test_log_file_sink_writes_json_lines)
{
    capture_reset();
    char dir[300], path[400];
    make_dir(dir, sizeof dir, "plain");
    snprintf(path, sizeof path, "%s/app.log", dir);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = path;
    so.level = SONDE_LOG_DEBUG;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, &id));
    SONDE_LOG(lg(), TRACE, "not in the file");
    SONDE_LOG(lg(), DEBUG, "in the file", SONDE_INT("n", 1));
    ASSERT_OK(sonde_log_sink_remove(id));
    ASSERT_EQ(count_lines(path), 1);
    ASSERT_EQ(jq_every_line(path), 0);
    ASSERT_STR_EQ(jq_out(path, ".message"), "in the file");
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0640);
    so.path = NULL;
    ASSERT_EQ(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, NULL), SONDE_EINVAL);
    so.path = "/nonexistent-dir/app.log";
    ASSERT_EQ(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, NULL), SONDE_EIO);
    ASSERT_CONTAINS(sonde_last_error(), "No such file or directory");
}

TEST(test_log_file_rotates_by_size_and_keeps_n)
{
    capture_reset();
    char dir[300], path[400], p1[420], p3[420], p4[420];
    make_dir(dir, sizeof dir, "rotate");
    snprintf(path, sizeof path, "%s/app.log", dir);
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p3, sizeof p3, "%s.3", path);
    snprintf(p4, sizeof p4, "%s.4", path);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = path;
    so.max_bytes = 2000;
    so.keep = 3;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, &id));
    for (int i = 0; i < 100; i++)
        SONDE_LOG(lg(), INFO, "rotation line", SONDE_INT("i", i),
                  SONDE_STR("pad", "xxxxxxxxxxxxxxxxxxxx"));
    ASSERT_OK(sonde_log_sink_remove(id));
    ASSERT_LE(file_size(path), 2000);
    ASSERT_LE(file_size(p1), 2000);
    ASSERT_GT(file_size(p1), 1000);
    ASSERT_GT(file_size(p3), 0);
    ASSERT_EQ(file_size(p4), -1); /* keep = 3 */
    const char *files[] = {path, p1, p3};
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(jq_every_line(files[i]), 0);
    /* The newest lines are in the live file, the last one last. */
    ASSERT_STR_EQ(jq_slurp(path, ".[-1].fields.i"), "99");
    /* Lines are consecutive across the rotated files: .1 ends where the
     * live file starts. */
    int last1 = atoi(jq_slurp(p1, ".[-1].fields.i"));
    int first0 = atoi(jq_slurp(path, ".[0].fields.i"));
    ASSERT_EQ(last1 + 1, first0);
}

TEST(test_log_file_notices_external_rotation_and_deletion)
{
    capture_reset();
    char dir[300], path[400], moved[420];
    make_dir(dir, sizeof dir, "external");
    snprintf(path, sizeof path, "%s/app.log", dir);
    snprintf(moved, sizeof moved, "%s/app.log.old", dir);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = path;
    so.check_interval_ms = 20;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, &id));
    SONDE_LOG(lg(), INFO, "before");
    ASSERT_EQ(rename(path, moved), 0); /* what logrotate does */
    sleep_ms(40);
    SONDE_LOG(lg(), INFO, "after");
    ASSERT_STR_EQ(jq_out(moved, ".message"), "before");
    ASSERT_STR_EQ(jq_out(path, ".message"), "after");
    /* Deleted (logrotate's copytruncate-less "remove"): recreated. */
    ASSERT_EQ(unlink(path), 0);
    sleep_ms(40);
    SONDE_LOG(lg(), INFO, "recreated");
    ASSERT_STR_EQ(jq_out(path, ".message"), "recreated");
    ASSERT_OK(sonde_log_sink_remove(id));
}

TEST(test_log_file_reopens_on_sighup)
{
    capture_reset();
    char dir[300], path[400], moved[420];
    make_dir(dir, sizeof dir, "sighup");
    snprintf(path, sizeof path, "%s/app.log", dir);
    snprintf(moved, sizeof moved, "%s/app.log.1", dir);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = path;
    so.check_interval_ms = 3600 * 1000; /* only SIGHUP can make it reopen */
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, &id));
    struct sigaction sa;
    ASSERT_EQ(sigaction(SIGHUP, NULL, &sa), 0);
    ASSERT(sa.sa_handler != SIG_DFL); /* sonde installed its handler */
    SONDE_LOG(lg(), INFO, "one");
    ASSERT_EQ(rename(path, moved), 0);
    SONDE_LOG(lg(), INFO, "two"); /* still the old file: no check yet */
    ASSERT_EQ(raise(SIGHUP), 0);
    SONDE_LOG(lg(), INFO, "three");
    ASSERT_STR_EQ(jq_out(moved, ".message"), "one\ntwo");
    ASSERT_STR_EQ(jq_out(path, ".message"), "three");
    /* The async-signal-safe entry point does the same. */
    ASSERT_EQ(rename(path, moved), 0);
    sonde_log_reopen();
    SONDE_LOG(lg(), INFO, "four");
    ASSERT_STR_EQ(jq_out(path, ".message"), "four");
    ASSERT_OK(sonde_log_sink_remove(id));
}

TEST(test_log_dev_full_counts_errors_and_the_service_continues)
{
    capture_reset();
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = "/dev/full";
    so.max_bytes = 100; /* must not try to rotate a device */
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, &id));
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    for (int i = 0; i < 10; i++)
        SONDE_LOG(lg(), INFO, "to a full disk", SONDE_INT("i", i));
    sonde_log_get_stats(&b);
    /* 10 lines and the one report of the failure, which goes to every
     * sink, the failing one included. */
    ASSERT_U64_EQ(b.write_errors - a.write_errors, 11);
    /* The other sink got every line, plus one report of the failure. */
    ASSERT_STR_EQ(jq_slurp(cap_.path, "map(select(.message == \"to a full disk\")) | length"),
                  "10");
    ASSERT_STR_EQ(
        jq_slurp(cap_.path,
                 "map(select(.logger == \"sonde.log\" and .level == \"ERROR\")) | length"),
        "1");
    ASSERT_CONTAINS(jq_slurp(cap_.path, "map(select(.logger == \"sonde.log\")) | .[0].message"),
                    "No space left on device");
    ASSERT_OK(sonde_log_sink_remove(id));
    ASSERT_CAPTURE_VALID_JSON();
    struct stat st;
    ASSERT_EQ(stat("/dev/full", &st), 0);
    ASSERT(S_ISCHR(st.st_mode)); /* not renamed away */
}

TEST(test_log_removed_directory_counts_errors_then_recovers)
{
    capture_reset();
    char dir[300], path[400];
    make_dir(dir, sizeof dir, "removed");
    snprintf(path, sizeof path, "%s/app.log", dir);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = path;
    so.check_interval_ms = 10;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, &id));
    SONDE_LOG(lg(), INFO, "first");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ(run_cmd(cmd), 0);
    sleep_ms(20);
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    for (int i = 0; i < 5; i++) {
        SONDE_LOG(lg(), INFO, "lost", SONDE_INT("i", i));
        sleep_ms(12);
    }
    sonde_log_get_stats(&b);
    ASSERT_U64_EQ(b.write_errors - a.write_errors, 5 + 1); /* + the failure report */
    ASSERT_EQ(file_size(path), -1);
    /* The directory comes back: so does the file. */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    ASSERT_EQ(run_cmd(cmd), 0);
    sleep_ms(20);
    SONDE_LOG(lg(), INFO, "back");
    /* The line, then the report that the sink recovered. */
    ASSERT_STR_EQ(jq_slurp(path, ".[0].message"), "back");
    ASSERT_CONTAINS(jq_slurp(path, ".[1].message"), "writes again");
    ASSERT_OK(sonde_log_sink_remove(id));
    const char *p = cap_.path;
    ASSERT_STR_EQ(jq_slurp(p, "map(select(.logger == \"sonde.log\") | .level) | join(\",\")"),
                  "ERROR,WARNING");
    ASSERT_STR_EQ(jq_slurp(p, "map(select(.message == \"lost\")) | length"), "5");
}

TEST(test_log_async_lines_are_flushed_at_exit)
{
    char dir[300], path[400];
    make_dir(dir, sizeof dir, "atexit");
    snprintf(path, sizeof path, "%s/app.log", dir);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        sonde_log_opts o;
        sonde_log_opts_init(&o);
        o.no_env = 1;
        o.console = -1;
        o.level = "info";
        o.file = path;
        o.async = 1;
        o.block_when_full = 1;
        if (sonde_log_configure(&o) != SONDE_OK)
            _exit(3);
        for (int i = 0; i < 5000; i++)
            SONDE_LOG(lg(), INFO, "before exit", SONDE_INT("i", i));
        exit(0); /* no flush, no shutdown: atexit must write the queue */
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    ASSERT_EQ(count_lines(path), 5000);
    ASSERT_EQ(jq_every_line(path), 0);
    ASSERT_STR_EQ(jq_slurp(path, ".[-1].fields.i"), "4999");
}

/* ---- sockets ---- */

static int dgram_server(const char *path)
{
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

TEST(test_log_journal_sink_sends_native_protocol_fields)
{
    capture_reset();
    char path[300];
    snprintf(path, sizeof path, "%s/journal.sock", test_tmpdir());
    int srv = dgram_server(path);
    ASSERT(srv >= 0);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = path;
    so.ident = "mgit";
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_JOURNAL, &so, &id));
    {
        SONDE_LOG_REQUEST_CONTEXT("req-7", SONDE_STR("operation", "clone_all"));
        SONDE_LOG(lg(), ERROR, "two\nlines", SONDE_STR("repository", "r1"), SONDE_INT("count", 3),
                  SONDE_STR("token", "hunter2"), SONDE_ERRNUM(EACCES));
    }
    char buf[8192];
    ssize_t n = recv(srv, buf, sizeof buf - 1, 0);
    ASSERT_GT(n, 0);
    buf[n] = '\0';
    /* MESSAGE holds a newline: binary form, name, newline, 64-bit LE size. */
    ASSERT(memcmp(buf, "MESSAGE\n\x09\0\0\0\0\0\0\0two\nlines\n", 26) == 0);
    const char *rest = buf + 26;
    ASSERT_CONTAINS(rest, "PRIORITY=3\n");
    ASSERT_CONTAINS(rest, "SYSLOG_IDENTIFIER=mgit\n");
    ASSERT_CONTAINS(rest, "LOGGER=file.test\n");
    ASSERT_CONTAINS(rest, "CODE_FILE=");
    ASSERT_CONTAINS(rest, "CORRELATION_ID=req-7\n");
    ASSERT_CONTAINS(rest, "OPERATION=clone_all\n");
    ASSERT_CONTAINS(rest, "REPOSITORY=r1\n");
    ASSERT_CONTAINS(rest, "COUNT=3\n");
    ASSERT_CONTAINS(rest, "TOKEN=***\n");
    ASSERT_CONTAINS(rest, "ERRNO=13\n");
    ASSERT_NOT_CONTAINS(rest, "hunter2");
    ASSERT_OK(sonde_log_sink_remove(id));
    /* The socket goes away: errors are counted, nothing else happens. */
    close(srv);
    unlink(path);
    ASSERT_EQ(sonde_log_sink_add(SONDE_LOG_SINK_JOURNAL, &so, &id), SONDE_EIO);
}

TEST(test_log_syslog_sink_sends_rfc3164_datagrams)
{
    capture_reset();
    char path[300];
    snprintf(path, sizeof path, "%s/syslog.sock", test_tmpdir());
    int srv = dgram_server(path);
    ASSERT(srv >= 0);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.path = path;
    so.ident = "svc";
    so.facility = 16; /* local0 */
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_SYSLOG, &so, &id));
    SONDE_LOG(lg(), WARNING, "disk low", SONDE_INT("pct", 93));
    char buf[8192];
    ssize_t n = recv(srv, buf, sizeof buf - 1, 0);
    ASSERT_GT(n, 0);
    buf[n] = '\0';
    ASSERT(strncmp(buf, "<132>", 5) == 0); /* 16 * 8 + 4 */
    char tag[64];
    snprintf(tag, sizeof tag, " svc[%d]: {", (int)getpid());
    ASSERT_CONTAINS(buf, tag);
    const char *json = strchr(buf, '{');
    ASSERT_JQ(json, "[.message, (.fields.pct|tostring)] | join(\",\")", "disk low,93");
    /* syslogd stops: lines are counted as write errors. */
    close(srv);
    unlink(path);
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    SONDE_LOG(lg(), WARNING, "nobody listens");
    sonde_log_get_stats(&b);
    ASSERT_U64_EQ(b.write_errors - a.write_errors, 1 + 1); /* + the failure report */
    ASSERT_OK(sonde_log_sink_remove(id));
}

TEST_MAIN()
