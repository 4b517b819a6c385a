/*
 * Helpers shared by the logging tests: a capture sink that keeps every line
 * in memory and in a file, and jq checks (every captured line must parse as
 * one JSON value; filters must select what they should).
 */
#ifndef SONDE_TEST_LOG_UTIL_H
#define SONDE_TEST_LOG_UTIL_H

#include "test.h"

#include <sonde.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct capture {
    pthread_mutex_t mu;
    char *data; /* every line, concatenated */
    size_t len, cap;
    size_t lines;
    int sink_id;
    char path[256]; /* the same lines, in a file for jq */
} capture;

static capture cap_ = {.mu = PTHREAD_MUTEX_INITIALIZER};

static __attribute__((unused)) void capture_fn(const sonde_log_record *rec, const char *line,
                                               size_t len, void *ud)
{
    (void)rec;
    capture *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->len + len + 1 > c->cap) {
        size_t nc = (c->cap ? c->cap * 2 : 65536);
        while (nc < c->len + len + 1)
            nc *= 2;
        c->data = realloc(c->data, nc);
        c->cap = nc;
    }
    memcpy(c->data + c->len, line, len);
    c->len += len;
    c->data[c->len] = '\0';
    c->lines++;
    FILE *f = fopen(c->path, "a");
    if (f) {
        fwrite(line, 1, len, f);
        fclose(f);
    }
    pthread_mutex_unlock(&c->mu);
}

/* A temporary directory for this test program. */
static __attribute__((unused)) const char *test_tmpdir(void)
{
    static char dir[200];
    if (!dir[0]) {
        const char *base = getenv("SONDE_TEST_DIR");
        snprintf(dir, sizeof dir, "%s/logtest.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            snprintf(dir, sizeof dir, "/tmp/logtest.XXXXXX");
            if (!mkdtemp(dir))
                abort();
        }
    }
    return dir;
}

/* Start from a clean slate: no sinks but the capture sink (JSON, every
 * level), levels "trace", masking on, synchronous mode. */
static __attribute__((unused)) void capture_reset(void)
{
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "trace";
    o.no_sighup = 0;
    if (sonde_log_configure(&o) != SONDE_OK)
        abort();
    sonde_log_sink_remove_all();
    pthread_mutex_lock(&cap_.mu);
    cap_.len = 0;
    cap_.lines = 0;
    if (cap_.data)
        cap_.data[0] = '\0';
    static int n;
    snprintf(cap_.path, sizeof cap_.path, "%s/capture.%d.jsonl", test_tmpdir(), n++);
    unlink(cap_.path);
    pthread_mutex_unlock(&cap_.mu);
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = capture_fn;
    so.userdata = &cap_;
    so.format = SONDE_LOG_FORMAT_JSON;
    if (sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &cap_.sink_id) != SONDE_OK)
        abort();
}

/* The last captured line (static copy). */
static __attribute__((unused)) const char *capture_last(void)
{
    static char *last;
    pthread_mutex_lock(&cap_.mu);
    free(last);
    last = NULL;
    if (cap_.len) {
        size_t end = cap_.len - 1; /* the final newline */
        size_t start = end;
        while (start > 0 && cap_.data[start - 1] != '\n')
            start--;
        last = strndup(cap_.data + start, end - start + 1);
    }
    pthread_mutex_unlock(&cap_.mu);
    return last ? last : "";
}

/* Run a shell command; returns its exit status (or -1). */
static __attribute__((unused)) int run_cmd(const char *cmd)
{
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* Output of a command (static buffer, trailing newline removed). */
static __attribute__((unused)) const char *cmd_output(const char *cmd)
{
    static char out[65536];
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p)
        return out;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    while (n && out[n - 1] == '\n')
        out[--n] = '\0';
    return out;
}

/* Every line of path is exactly one JSON value: jq -R 'fromjson' fails on
 * any line that is not. Returns jq's exit status. */
static __attribute__((unused)) int jq_every_line(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "jq -R -e 'fromjson | type == \"object\"' '%s' >/dev/null 2>&1",
             path);
    return run_cmd(cmd);
}

/* Output of jq -c -r FILTER on path. */
static __attribute__((unused)) const char *jq_out(const char *path, const char *filter)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "jq -c -r '%s' '%s' 2>&1", filter, path);
    return cmd_output(cmd);
}

/* Output of jq -s -c -r FILTER on path (all lines as one array). */
static __attribute__((unused)) const char *jq_slurp(const char *path, const char *filter)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "jq -s -c -r '%s' '%s' 2>&1", filter, path);
    return cmd_output(cmd);
}

/* Apply a jq filter to one JSON line (the last captured by default). */
static __attribute__((unused)) const char *jq_line(const char *line, const char *filter)
{
    char path[300];
    snprintf(path, sizeof path, "%s/one.json", test_tmpdir());
    FILE *f = fopen(path, "w");
    if (!f)
        return "";
    fputs(line, f);
    fclose(f);
    return jq_out(path, filter);
}

#define ASSERT_JQ(line, filter, expected) ASSERT_STR_EQ(jq_line((line), (filter)), (expected))

/* Every captured line so far parses with jq. */
#define ASSERT_CAPTURE_VALID_JSON()                                                                \
    do {                                                                                           \
        int rc_ = jq_every_line(cap_.path);                                                        \
        if (rc_ != 0)                                                                              \
            TEST_FAIL_AT("jq rejected a line of %s (exit %d):\n%s", cap_.path, rc_,                \
                         cap_.data ? cap_.data : "");                                              \
    } while (0)

static __attribute__((unused)) int jq_available(void)
{
    return run_cmd("jq --version >/dev/null 2>&1") == 0;
}

#endif
