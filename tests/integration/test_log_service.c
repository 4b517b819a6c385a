/*
 * End to end: a simulated service configured only through the environment
 * (SONDE_LOG_LEVEL, SONDE_LOG_FILE, SONDE_LOG_ASYNC, SONDE_LOG_CONSOLE)
 * handles requests that arrive with a W3C traceparent, an X-Request-ID or
 * neither, nests provider contexts, hands work to a worker thread, fails
 * some clones, and shuts down. Then the queries of the requirement
 * document run on the log file with jq, as an operator would.
 */
#include "test.h"

#include <sonde.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256], logfile[300];

static const char *sh(const char *cmd)
{
    static char out[1 << 16];
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

static const char *jq(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "jq %s '%s' 2>&1", args, logfile);
    return sh(cmd);
}

typedef struct {
    sonde_log_context *ctx;
    int fail;
} job;

static void *clone_worker(void *arg)
{
    job *j = arg;
    sonde_logger *lg = sonde_logger_get("mgit.git");
    SONDE_LOG_ADOPT_CONTEXT(j->ctx);
    SONDE_LOG_CONTEXT(SONDE_STR("provider", "github"), SONDE_STR("organization", "myorg"));
    sonde_log_op op;
    SONDE_LOG_OP_START(&op, lg, "git_clone", SONDE_STR("repository", "repo1"));
    SONDE_LOG(lg, DEBUG, "fetching objects", SONDE_INT("objects", 1234));
    sonde_log_operation_end(&op, !j->fail, NULL, 0);
    if (j->fail)
        SONDE_LOG(
            lg, ERROR, "clone failed",
            SONDE_STR(
                "url",
                "https://bot:ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789@github.com/myorg/repo1"),
            SONDE_ERRNUM(113));
    return NULL;
}

static void handle_request(int i, const char *traceparent, const char *request_id)
{
    sonde_logger *lg = sonde_logger_get("mgit.operations");
    char cid[SONDE_CORRELATION_ID_MAX + 1];
    sonde_log_correlation_from_headers(traceparent, request_id, cid);
    SONDE_LOG_REQUEST_CONTEXT(cid, SONDE_STR("client_ip", "10.1.2.3"), SONDE_STR("user_id", "u42"));
    SONDE_LOG(lg, INFO, "request received", SONDE_STR("path", "/clone"), SONDE_INT("request", i));
    SONDE_LOG_CONTEXT(SONDE_STR("operation", "clone_all"), SONDE_STR("organization", "myorg"));
    job j = {sonde_log_context_capture(), i % 3 == 0};
    pthread_t th;
    pthread_create(&th, NULL, clone_worker, &j);
    pthread_join(th, NULL);
    sonde_log_context_release(j.ctx);
    SONDE_LOG(lg, INFO, "request done", SONDE_STR("authorization", "Bearer abcdefghijklmnop"));
}

TEST(test_log_service_end_to_end_with_jq)
{
    ASSERT_EQ(system("jq --version >/dev/null 2>&1"), 0);
    const char *base = getenv("SONDE_TEST_DIR");
    snprintf(dir, sizeof dir, "%s/logsvc.XXXXXX", base && *base ? base : "/tmp");
    ASSERT(mkdtemp(dir) != NULL);
    snprintf(logfile, sizeof logfile, "%s/app.log", dir);
    /* Configuration by environment only, before the first log call. */
    setenv("SONDE_LOG_LEVEL", "info,mgit.git=debug", 1);
    setenv("SONDE_LOG_FILE", logfile, 1);
    setenv("SONDE_LOG_ASYNC", "1", 1);
    setenv("SONDE_LOG_CONSOLE", "0", 1);

    handle_request(0, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL);
    handle_request(1, NULL, "req-abc-123");
    for (int i = 2; i < 9; i++)
        handle_request(i, NULL, NULL);
    ASSERT_OK(sonde_log_shutdown(5000));

    /* Every line is one JSON object. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "jq -R -e 'fromjson | type == \"object\"' '%s' >/dev/null 2>&1",
             logfile);
    ASSERT_EQ(system(cmd), 0);

    /* The query of requirement document 002: errors of clone_all. Requests
     * 0, 3 and 6 failed: "clone failed" in the clone_all context (the
     * failed git_clone operation's own line is in the git_clone one). */
    ASSERT_STR_EQ(jq("-c -r 'select(.correlation.operation == \"clone_all\" and .level == "
                     "\"ERROR\") | .message'"),
                  "clone failed\nclone failed\nclone failed");
    ASSERT_STR_EQ(jq("-c -r 'select(.correlation.operation == \"git_clone\" and .level == "
                     "\"ERROR\") | .message'"),
                  "git_clone failed\ngit_clone failed\ngit_clone failed");
    /* Incoming IDs are kept: traceparent trace-id, X-Request-ID. */
    ASSERT_STR_EQ(jq("-s -c -r 'map(select(.correlation.correlation_id == "
                     "\"4bf92f3577b34da6a3ce929d0e0e4736\")) | length'"),
                  "6");
    ASSERT_STR_EQ(
        jq("-s -c -r 'map(select(.correlation.correlation_id == \"req-abc-123\")) | length'"), "5");
    /* The grep of the document works too. */
    snprintf(cmd, sizeof cmd, "grep -c 'correlation_id.*req-abc-123' '%s'", logfile);
    ASSERT_STR_EQ(sh(cmd), "5");
    /* One correlation per request (9), main thread and worker share it. */
    ASSERT_STR_EQ(jq("-s -c -r 'map(.correlation.correlation_id) | unique | length'"), "9");
    ASSERT_STR_EQ(jq("-s -c -r 'group_by(.correlation.correlation_id) | map(map(.tid) | unique | "
                     "length) | unique | join(\",\")'"),
                  "2");
    /* Levels: mgit.git logs DEBUG, mgit.operations does not. */
    ASSERT_STR_EQ(
        jq("-s -c -r 'map(select(.level == \"DEBUG\") | .logger) | unique | join(\",\")'"),
        "mgit.git");
    /* Secrets: none in the file. */
    snprintf(cmd, sizeof cmd, "grep -c -E 'ghp_[A-Za-z0-9]{10}|abcdefghijklmnop' '%s'", logfile);
    ASSERT_STR_EQ(sh(cmd), "0");
    ASSERT_STR_EQ(jq("-s -c -r 'map(select(.message == \"clone failed\") | .fields.url) | .[0]'"),
                  "https://bot:***@github.com/myorg/repo1");
    /* Nested contexts: the worker's lines carry request and provider. */
    ASSERT_STR_EQ(
        jq("-s -c -r 'map(select(.message == \"fetching objects\") | .correlation | [.client_ip, "
           ".user_id, .operation, .provider, .organization] | join(\",\")) | unique | .[0]'"),
        "10.1.2.3,u42,git_clone,github,myorg");

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    system(cmd);
}

TEST_MAIN()
