/*
 * The remote_write section of the agent's configuration (every key, secrets
 * from files, each mistake at its line and column) and the environment
 * variables sonde_start reads (SONDE_REMOTE_WRITE_*).
 */
#include "test.h"

#include <sonde.h>

#include <stdlib.h>
#include <unistd.h>

#define MAXE 32

static sonde_config_error errs[MAXE];
static size_t nerrs;
static char dir[] = "/tmp/sonde-rwcfg-XXXXXX";
static char token_file[128], pw_file[128], empty_file[128];

static int load(const char *yaml, sonde_config **out)
{
    memset(errs, 0, sizeof errs);
    return sonde_config_load_string(yaml, strlen(yaml), out, errs, MAXE, &nerrs);
}

static int has_error(int line, int col, const char *text)
{
    for (size_t i = 0; i < nerrs && i < MAXE; i++)
        if (errs[i].line == line && errs[i].column == col && strstr(errs[i].message, text))
            return 1;
    for (size_t i = 0; i < nerrs && i < MAXE; i++)
        fprintf(stderr, "    error %d:%d: %s\n", errs[i].line, errs[i].column, errs[i].message);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void cleanup(void)
{
    unlink(token_file);
    unlink(pw_file);
    unlink(empty_file);
    rmdir(dir);
}

__attribute__((constructor)) static void setup(void)
{
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    snprintf(token_file, sizeof token_file, "%s/token", dir);
    snprintf(pw_file, sizeof pw_file, "%s/pw", dir);
    snprintf(empty_file, sizeof empty_file, "%s/empty", dir);
    write_file(token_file, "t0ken\n");
    write_file(pw_file, "s3cret\n");
    write_file(empty_file, "");
    setenv("RWCFG_TOKEN_FILE", token_file, 1);
    setenv("RWCFG_PW_FILE", pw_file, 1);
    setenv("RWCFG_EMPTY_FILE", empty_file, 1);
}

TEST(test_remote_write_section_loads_every_key)
{
    const char *yaml = "remote_write:\n"
                       "  - url: http://127.0.0.1:8428/api/v1/write\n"
                       "    name: vm\n"
                       "    interval: 30s\n"
                       "    timeout: 10s\n"
                       "    bearer_token_file: ${RWCFG_TOKEN_FILE}\n"
                       "    tls:\n"
                       "      ca_file: ${RWCFG_TOKEN_FILE}\n"
                       "      insecure_skip_verify: true\n"
                       "    queue:\n"
                       "      memory: 8MiB\n"
                       "      dir: /tmp/sonde-rwcfg-queue\n"
                       "      disk: 256MiB\n"
                       "      batch_size: 500\n"
                       "      batch_deadline: 2s\n"
                       "      min_backoff: 100ms\n"
                       "      max_backoff: 10s\n"
                       "      max_retry_after: 1m\n"
                       "      flush_timeout: 3s\n"
                       "    keep: [\"http_.*\", \"node_.*\"]\n"
                       "    drop: [\".*_bucket\"]\n"
                       "    external_labels:\n"
                       "      site: eu-1\n"
                       "      cluster: a\n"
                       "  - url: https://user@mimir.example:443/api/v1/push\n"
                       "    basic_auth:\n"
                       "      username: sonde\n"
                       "      password_file: ${RWCFG_PW_FILE}\n";
    sonde_config *cfg = NULL;
    ASSERT_OK(load(yaml, &cfg));
    ASSERT_EQ(sonde_config_remote_write_count(cfg), 2);
    sonde_remote_write_opts o;
    ASSERT_OK(sonde_config_remote_write_opts(cfg, 0, &o));
    ASSERT_STR_EQ(o.url, "http://127.0.0.1:8428/api/v1/write");
    ASSERT_STR_EQ(o.name, "vm");
    ASSERT_DBL_EQ(o.interval_seconds, 30);
    ASSERT_DBL_EQ(o.timeout_seconds, 10);
    ASSERT_STR_EQ(o.bearer_token_file, token_file);
    ASSERT(o.bearer_token == NULL);
    ASSERT_STR_EQ(o.tls_ca_file, token_file);
    ASSERT_EQ(o.tls_insecure_skip_verify, 1);
    ASSERT_U64_EQ(o.queue_max_bytes, 8u << 20);
    ASSERT_STR_EQ(o.queue_dir, "/tmp/sonde-rwcfg-queue");
    ASSERT_U64_EQ(o.disk_max_bytes, 256u << 20);
    ASSERT_U64_EQ(o.max_samples_per_send, 500);
    ASSERT_DBL_EQ(o.batch_deadline_seconds, 2);
    ASSERT_DBL_EQ(o.min_backoff_seconds, 0.1);
    ASSERT_DBL_EQ(o.max_backoff_seconds, 10);
    ASSERT_DBL_EQ(o.max_retry_after_seconds, 60);
    ASSERT_DBL_EQ(o.flush_timeout_seconds, 3);
    ASSERT_EQ(o.keep_count, 2);
    ASSERT_STR_EQ(o.keep[1], "node_.*");
    ASSERT_EQ(o.drop_count, 1);
    ASSERT_STR_EQ(o.drop[0], ".*_bucket");
    ASSERT_EQ(o.external_label_count, 2);
    ASSERT_STR_EQ(o.external_labels[0], "site");
    ASSERT_STR_EQ(o.external_labels[1], "eu-1");
    ASSERT_STR_EQ(o.external_labels[3], "a");
    ASSERT(o.registry == NULL);
    ASSERT_OK(sonde_config_remote_write_opts(cfg, 1, &o));
    ASSERT_STR_EQ(o.basic_auth_user, "sonde");
    ASSERT_STR_EQ(o.basic_auth_password, "s3cret"); /* read from the file at loading */
    ASSERT_EQ(sonde_config_remote_write_opts(cfg, 2, &o), SONDE_EINVAL);

    /* The options create a writer whose name shows no credentials. */
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    o.registry = reg;
    sonde_remote_write *rw = NULL;
    ASSERT_OK(sonde_remote_write_create(&o, &rw));
    ASSERT_STR_EQ(sonde_remote_write_name(rw), "https://mimir.example:443/api/v1/push");
    sonde_remote_write_destroy(rw);
    sonde_registry_destroy(reg);
    sonde_config_destroy(cfg);
}

TEST(test_remote_write_mistakes_are_reported_at_their_line_and_column)
{
    const char *bad = "remote_write:\n"                              /* 1 */
                      "  - url: ftp://x/write\n"                     /* 2: scheme */
                      "    intervall: 15s\n"                         /* 3: unknown key */
                      "    queue:\n"                                 /* 4 */
                      "      memory: 1KiB\n"                         /* 5: below 64KiB */
                      "      batch_size: 0\n"                        /* 6: out of range */
                      "      disk: 1GiB\n"                           /* 7: needs dir (at 5:7) */
                      "    keep: [\"ok_.*\", \"(broken\"]\n"         /* 8: bad regex */
                      "    external_labels:\n"                       /* 9 */
                      "      __bad: x\n"                             /* 10: bad label name */
                      "  - name: no-url\n"                           /* 11: no url */
                      "    bearer_token: abc\n"                      /* 12 */
                      "    bearer_token_file: ${RWCFG_TOKEN_FILE}\n" /* 13: two kinds */
                      "  - url: http://a/w\n"                        /* 14 */
                      "    bearer_token_file: /nonexistent/token\n"  /* 15: unreadable */
                      "    basic_auth:\n"                            /* 16: second kind */
                      "      password: x\n"                          /* 17 */
                      "  - url: http://b/w\n"                        /* 18 */
                      "    basic_auth:\n"                            /* 19 */
                      "      password_file: ${RWCFG_EMPTY_FILE}\n" /* 20: empty file, no username */
                      "    tls:\n"                                 /* 21 */
                      "      key_file: ${RWCFG_TOKEN_FILE}\n"      /* 22: key without cert */
                      "  - url: http://a/w\n"                      /* 23: same url as 3rd */
                      "    interval: 1ms\n";                       /* 24: below 0.05 s */
    sonde_config *cfg = (sonde_config *)1;
    ASSERT_EQ(load(bad, &cfg), SONDE_EPARSE);
    ASSERT(cfg == NULL);
    ASSERT(has_error(2, 10, "must start with http:// or https://"));
    ASSERT(has_error(3, 5,
                     "unknown key \"intervall\" in a remote_write entry (did you mean "
                     "\"interval\"?)"));
    ASSERT(has_error(5, 15, "queue.memory must be between 64KiB"));
    ASSERT(has_error(6, 19, "queue.batch_size must be between 1 and 1e+06"));
    ASSERT(has_error(5, 7, "queue.disk needs queue.dir"));
    ASSERT(has_error(8, 21, "keep: \"(broken\" is not a valid regular expression"));
    ASSERT(has_error(10, 7, "\"__bad\" is not a valid label name"));
    ASSERT(has_error(11, 5, "a remote_write entry needs a url"));
    ASSERT(has_error(13, 5,
                     "give one of bearer_token, bearer_token_file, basic_auth "
                     "(\"bearer_token\" at line 12 already)"));
    ASSERT(has_error(15, 24, "cannot read bearer_token_file /nonexistent/token"));
    ASSERT(has_error(16, 5, "give one of bearer_token"));
    ASSERT(has_error(20, 22, "is empty"));
    ASSERT(has_error(20, 7, "basic_auth needs a username"));
    ASSERT(has_error(22, 7, "tls: cert_file and key_file go together"));
    ASSERT(has_error(23, 5, "remote_write entry 5 has the same url as entry 3"));
    ASSERT(has_error(24, 15, "remote_write interval must be between 0.05s"));
    ASSERT_EQ(nerrs, 16);
    /* Secrets never appear in messages. */
    for (size_t i = 0; i < nerrs && i < MAXE; i++) {
        ASSERT_NOT_CONTAINS(errs[i].message, "t0ken");
        ASSERT_NOT_CONTAINS(errs[i].message, "abc");
    }

    ASSERT_EQ(load("remote_write:\n  url: http://x/w\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(2, 3, "remote_write must be a list of receivers"));
    ASSERT_EQ(load("remote_write:\n  - http://x/w\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(2, 5, "a remote_write entry must be a mapping"));
    ASSERT_EQ(load("remote_writes:\n  - url: http://x/w\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(1, 1, "did you mean \"remote_write\"?"));
}

TEST(test_remote_write_environment_of_sonde_start)
{
    /* Bad values make sonde_start fail, naming the variable; nothing is
     * left running. */
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.listen = "off";
    setenv("SONDE_REMOTE_WRITE_URL", "localhost:8428/api/v1/write", 1);
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "remote write from the environment");
    ASSERT_CONTAINS(sonde_last_error(), "http://");
    ASSERT_EQ(sonde_running(), 0);
    setenv("SONDE_REMOTE_WRITE_URL", "http://127.0.0.1:9/api/v1/write", 1);
    setenv("SONDE_REMOTE_WRITE_INTERVAL", "soon", 1);
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "SONDE_REMOTE_WRITE_INTERVAL");
    setenv("SONDE_REMOTE_WRITE_INTERVAL", "1m", 1);
    setenv("SONDE_REMOTE_WRITE_EXTERNAL_LABELS", "site=eu,novalue", 1);
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "SONDE_REMOTE_WRITE_EXTERNAL_LABELS");
    setenv("SONDE_REMOTE_WRITE_EXTERNAL_LABELS", "site=eu,__x=1", 1);
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "external label");

    /* Good values: the writer runs and shows itself in the served
     * registry's self-metrics (the receiver is down: nothing is sent). */
    setenv("SONDE_REMOTE_WRITE_EXTERNAL_LABELS", "site=eu,zone=b", 1);
    sonde_registry *reg = NULL;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    o.registry = reg;
    ASSERT_OK(sonde_start(&o));
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_remote_write_samples_pending{remote=\"http://127.0.0.1:9/api/v1/"
                          "write\"}");
    sonde_free(text);
    sonde_stop();
    text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_NOT_CONTAINS(text, "sonde_remote_write_");
    sonde_free(text);

    /* Options in C win over the environment. */
    sonde_remote_write_opts rwo;
    sonde_remote_write_opts_init(&rwo);
    rwo.url = "http://127.0.0.1:9/other";
    rwo.flush_timeout_seconds = -1;
    o.remote_write = &rwo;
    ASSERT_OK(sonde_start(&o));
    text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "remote=\"http://127.0.0.1:9/other\"");
    ASSERT_NOT_CONTAINS(text, "127.0.0.1:9/api/v1/write");
    sonde_free(text);
    sonde_stop();
    unsetenv("SONDE_REMOTE_WRITE_URL");
    sonde_registry_destroy(reg);
}

TEST_MAIN()
