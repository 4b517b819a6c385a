/*
 * The agent's YAML configuration: a full valid file, every kind of mistake
 * with its line and column, secrets from files and the environment, and
 * applying a configuration to start options and a health set.
 */
#include "test.h"

#include <sonde.h>

#include <stdlib.h>
#include <unistd.h>

#define MAXE 32

static sonde_config_error errs[MAXE];
static size_t nerrs;

static int load(const char *yaml, sonde_config **out)
{
    memset(errs, 0, sizeof errs);
    return sonde_config_load_string(yaml, strlen(yaml), out, errs, MAXE, &nerrs);
}

/* Find an error at line:col whose message contains text. */
static int has_error(int line, int col, const char *text)
{
    for (size_t i = 0; i < nerrs && i < MAXE; i++)
        if (errs[i].line == line && errs[i].column == col && strstr(errs[i].message, text))
            return 1;
    for (size_t i = 0; i < nerrs && i < MAXE; i++)
        fprintf(stderr, "    error %d:%d: %s\n", errs[i].line, errs[i].column, errs[i].message);
    return 0;
}

static const char *full =
    "server:\n"
    "  listen: \"127.0.0.1:0\"\n"
    "  route_prefix: /api/v1/monitoring\n"
    "  api_key: k3y\n"
    "  threads: 3\n"
    "  limits:\n"
    "    max_connections: 100\n"
    "    max_connections_per_client: 8\n"
    "    max_header_bytes: 8KiB\n"
    "    idle_timeout: 5s\n"
    "    request_timeout: 1500ms\n"
    "    rate_limit: 20\n"
    "    rate_limit_burst: 40\n"
    "service:\n"
    "  name: scraper\n"
    "  version: 2.1.0\n"
    "info:\n"
    "  region: eu\n"
    "  db_password: hunter2\n"
    "host_metrics:\n"
    "  filesystems: [/, /tmp]\n"
    "checks:\n"
    "  - name: root_disk\n"
    "    type: disk\n"
    "    path: /\n"
    "    warning_free_percent: 10\n"
    "    critical_free_percent: 5\n"
    "    interval: 30s\n"
    "  - name: memory\n"
    "    type: memory\n"
    "    max_rss: 2GiB\n"
    "  - name: load\n"
    "    type: load\n"
    "    critical: false\n"
    "  - {name: tmp, type: writable, path: /tmp}\n"
    "  - name: sh\n"
    "    type: command\n"
    "    command: [sh, -c, \"echo sh version 1\"]\n"
    "    timeout: 2s\n"
    "  - {name: db, type: postgres, dsn: \"host=127.0.0.1 port=1 dbname=x\"}\n"
    "  - {name: cache, type: redis, address: \"127.0.0.1:1\", password: pw}\n"
    "  - {name: api, type: http, url: \"http://127.0.0.1:1/health\", expect_status: 200}\n"
    "  - {name: port, type: tcp, address: \"[::1]:22\"}\n"
    "  - {name: lite, type: sqlite, path: /tmp/x.db, query: SELECT 1}\n"
    "  - {name: backup, type: file_fresh, path: /tmp/marker, max_age: 1h}\n";

TEST(test_full_configuration_loads_and_applies)
{
    sonde_config *cfg = NULL;
    ASSERT_OK(load(full, &cfg));
    ASSERT_EQ(nerrs, 0);
    ASSERT(cfg);
    ASSERT_EQ(sonde_config_check_count(cfg), 11);
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    sonde_config_start_opts(cfg, &o);
    ASSERT_STR_EQ(o.listen, "127.0.0.1:0");
    ASSERT_STR_EQ(o.route_prefix, "/api/v1/monitoring");
    ASSERT_STR_EQ(o.api_key, "k3y");
    ASSERT_EQ(o.threads, 3);
    ASSERT_EQ(o.max_connections, 100);
    ASSERT_EQ(o.max_connections_per_client, 8);
    ASSERT_EQ(o.max_header_bytes, 8192);
    ASSERT_DBL_EQ(o.idle_timeout_seconds, 5);
    ASSERT_DBL_EQ(o.request_timeout_seconds, 1.5);
    ASSERT_DBL_EQ(o.rate_limit_per_second, 20);
    ASSERT_DBL_EQ(o.rate_limit_burst, 40);
    ASSERT_STR_EQ(o.service_name, "scraper");
    ASSERT_STR_EQ(o.service_version, "2.1.0");
    ASSERT_EQ(o.info_count, 2);
    ASSERT_STR_EQ(o.info[0], "region");
    ASSERT_STR_EQ(o.info[3], "hunter2");
    const char *const *paths = NULL;
    size_t np = 0;
    ASSERT(sonde_config_host_metrics(cfg, &paths, &np));
    ASSERT_EQ(np, 2);
    ASSERT_STR_EQ(paths[1], "/tmp");

    sonde_health *h = NULL;
    ASSERT_OK(sonde_health_create(NULL, &h));
    ASSERT_OK(sonde_config_add_checks(cfg, h));
    sonde_health_check_state st;
    ASSERT_OK(sonde_health_get(h, "load", &st));
    ASSERT_EQ(st.critical, 0);
    ASSERT_OK(sonde_health_get(h, "root_disk", &st));
    ASSERT_EQ(st.critical, 1);
    ASSERT_OK(sonde_health_get(h, "backup", &st));
    sonde_health_summary s;
    sonde_health_summarize(h, &s);
    ASSERT_EQ(s.checks, 11);
    sonde_health_destroy(h);

    /* Same server settings give the same digest; a change changes it. */
    sonde_config *cfg2 = NULL;
    ASSERT_OK(load(full, &cfg2));
    ASSERT_STR_EQ(sonde_config_server_digest(cfg), sonde_config_server_digest(cfg2));
    sonde_config_destroy(cfg2);
    char *other = strdup(full);
    char *p = strstr(other, "threads: 3");
    p[9] = '4';
    ASSERT_OK(load(other, &cfg2));
    ASSERT(strcmp(sonde_config_server_digest(cfg), sonde_config_server_digest(cfg2)) != 0);
    sonde_config_destroy(cfg2);
    free(other);
    sonde_config_destroy(cfg);
}

TEST(test_empty_configuration_means_defaults)
{
    sonde_config *cfg = NULL;
    ASSERT_OK(load("", &cfg));
    ASSERT_EQ(sonde_config_check_count(cfg), 0);
    ASSERT(sonde_config_host_metrics(cfg, NULL, NULL));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    sonde_config_start_opts(cfg, &o);
    ASSERT(o.listen == NULL);
    sonde_config_destroy(cfg);
    ASSERT_OK(load("# only a comment\nserver:\nchecks: []\nhost_metrics: false\n", &cfg));
    ASSERT(!sonde_config_host_metrics(cfg, NULL, NULL));
    sonde_config_destroy(cfg);
}

TEST(test_syntax_error_reports_line_and_column)
{
    sonde_config *cfg = (sonde_config *)1;
    ASSERT_EQ(load("server:\n  listen: \":9464\"\n  threads: [1, 2\nchecks: []\n", &cfg),
              SONDE_EPARSE);
    ASSERT(cfg == NULL);
    ASSERT_EQ(nerrs, 1);
    ASSERT_EQ(errs[0].line, 4);
    ASSERT_CONTAINS(errs[0].message, "YAML syntax error");
    ASSERT_EQ(load("a: b\n c: d\n", &cfg), SONDE_EPARSE);
    ASSERT_EQ(errs[0].line, 2);
    ASSERT_EQ(errs[0].column, 3);
    ASSERT_CONTAINS(errs[0].message, "mapping values are not allowed");
    ASSERT_EQ(load("server:\n\tlisten: x\n", &cfg), SONDE_EPARSE);
    ASSERT_EQ(errs[0].line, 2);
}

TEST(test_every_mistake_is_reported_with_its_position)
{
    const char *bad = "server:\n"                     /* 1 */
                      "  listn: \":9464\"\n"          /* 2: unknown key, suggestion */
                      "  threads: many\n"             /* 3: not a number */
                      "  limits:\n"                   /* 4 */
                      "    idle_timeout: 5 parsecs\n" /* 5: bad unit */
                      "    max_connections: 0\n"      /* 6: out of range */
                      "checks:\n"                     /* 7 */
                      "  - name: disk\n"              /* 8 */
                      "    type: disk\n"              /* 9 */
                      "    pathh: /\n"                /* 10: unknown key, suggestion */
                      "  - name: disk\n"              /* 11: duplicate name, no path */
                      "    type: disk\n"              /* 12 */
                      "    path: /\n"                 /* 13 */
                      "  - name: x\n"                 /* 14 */
                      "    type: teleport\n"          /* 15: unknown type */
                      "  - name: bad name!\n"         /* 16: invalid name */
                      "    type: load\n"              /* 17 */
                      "  - name: r\n"                 /* 18 */
                      "    type: redis\n"             /* 19 */
                      "    address: localhost\n"      /* 20: no port */
                      "  - name: h\n"                 /* 21 */
                      "    type: http\n"              /* 22 */
                      "    url: ftp://x\n"            /* 23: bad scheme */
                      "    timeout: -1s\n"            /* 24: out of range */
                      "  - name: f\n"                 /* 25 */
                      "    type: file_fresh\n"        /* 26 */
                      "    path: /tmp/m\n"            /* 27: no max_age */
                      "  - name: c\n"                 /* 28 */
                      "    type: command\n"           /* 29 */
                      "    command: git --version\n"  /* 30: not a list */
                      "    critical: maybe\n"         /* 31: not a bool */
                      "servers: {}\n";                /* 32: unknown top-level key */
    sonde_config *cfg = NULL;
    ASSERT_EQ(load(bad, &cfg), SONDE_EPARSE);
    ASSERT(cfg == NULL);
    ASSERT(has_error(2, 3, "unknown key \"listn\" in server (did you mean \"listen\"?)"));
    ASSERT(has_error(3, 12, "server.threads must be a number"));
    ASSERT(has_error(5, 19, "unknown unit"));
    ASSERT(has_error(6, 22, "max_connections must be between 1 and 100000"));
    ASSERT(has_error(10, 5, "unknown key \"pathh\" in check \"disk\" (did you mean \"path\"?)"));
    ASSERT(has_error(8, 5, "needs path"));
    ASSERT(has_error(11, 5, "duplicate check name \"disk\""));
    ASSERT(has_error(15, 11, "unknown check type \"teleport\""));
    ASSERT(has_error(16, 11, "check name \"bad name!\" must be"));
    ASSERT(has_error(20, 14, "address must be host:port"));
    ASSERT(has_error(23, 10, "url must start with http:// or https://"));
    ASSERT(has_error(24, 14, "timeout must be between"));
    ASSERT(has_error(25, 5, "needs max_age"));
    ASSERT(has_error(30, 14, "command must be a list"));
    ASSERT(has_error(31, 15, "critical must be true or false"));
    ASSERT(has_error(32, 1,
                     "unknown key \"servers\" in the configuration (did you mean \"server\"?)"));
    ASSERT_EQ(nerrs, 16);
}

TEST(test_duplicate_keys_and_wrong_shapes)
{
    sonde_config *cfg = NULL;
    ASSERT_EQ(load("server:\n  listen: a\n  listen: b\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(3, 3, "duplicate key \"listen\" in server (first at line 2)"));
    ASSERT_EQ(load("checks:\n  name: x\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(2, 3, "checks must be a list"));
    ASSERT_EQ(load("- a\n- b\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(1, 1, "the configuration must be a mapping"));
    ASSERT_EQ(load("server:\n  listen: [a]\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(2, 11, "server.listen must be a single value, not a list"));
    ASSERT_EQ(load("a: 1\n---\nb: 2\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(3, 1, "only one YAML document"));
    ASSERT_EQ(load("server:\n  tls:\n    cert_file: /etc/hostname\n", &cfg), SONDE_EPARSE);
    ASSERT_EQ(nerrs, 1);
    ASSERT(has_error(3, 5, "server.tls needs both cert_file and key_file"));
}

TEST(test_secrets_come_from_files_and_the_environment)
{
    char path[] = "/tmp/sonde-key-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, "file-key\n", 9), 9);
    close(fd);
    setenv("SONDE_TEST_PW", "env-pw", 1);
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "server:\n  api_key_file: %s\n  basic_auth:\n    username: u\n    password: "
             "\"${SONDE_TEST_PW}\"\nchecks:\n  - {name: r, type: redis, address: "
             "\"127.0.0.1:6379\", password: \"a$${SONDE_TEST_PW}\"}\n",
             path);
    sonde_config *cfg = NULL;
    ASSERT_OK(load(yaml, &cfg));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    sonde_config_start_opts(cfg, &o);
    ASSERT_STR_EQ(o.api_key, "file-key");
    ASSERT_STR_EQ(o.basic_auth_password, "env-pw");
    sonde_config_destroy(cfg);
    unlink(path);
    ASSERT_EQ(load(yaml, &cfg), SONDE_EPARSE);
    ASSERT(has_error(2, 17, "cannot read server.api_key_file"));
    unsetenv("SONDE_TEST_PW");
    ASSERT_EQ(load("service:\n  name: \"${SONDE_TEST_UNSET_VAR}\"\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(2, 9, "environment variable SONDE_TEST_UNSET_VAR is not set"));
}

TEST(test_load_file_reports_unreadable_files)
{
    sonde_config *cfg = NULL;
    memset(errs, 0, sizeof errs);
    ASSERT_EQ(sonde_config_load_file("/nonexistent/sonde.yml", &cfg, errs, MAXE, &nerrs),
              SONDE_EIO);
    ASSERT_EQ(nerrs, 1);
    ASSERT_EQ(errs[0].line, 0);
    ASSERT_CONTAINS(errs[0].message, "cannot read /nonexistent/sonde.yml");
    char path[] = "/tmp/sonde-cfg-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    const char *y = "checks:\n  - {name: a, type: load}\n";
    ASSERT_EQ(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    ASSERT_OK(sonde_config_load_file(path, &cfg, errs, MAXE, &nerrs));
    ASSERT_EQ(sonde_config_check_count(cfg), 1);
    sonde_config_destroy(cfg);
    unlink(path);
}

TEST(test_error_list_is_bounded_but_counts_everything)
{
    char text[4096] = "";
    size_t len = 0;
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "bogus%d: 1\n", i);
    sonde_config_error few[3];
    size_t n = 0;
    sonde_config *cfg = NULL;
    ASSERT_EQ(sonde_config_load_string(text, len, &cfg, few, 3, &n), SONDE_EPARSE);
    ASSERT_EQ(n, 100);
    ASSERT_EQ(few[2].line, 3);
    ASSERT_EQ(sonde_config_load_string(text, len, &cfg, NULL, 0, &n), SONDE_EPARSE);
    ASSERT_EQ(n, 100);
}

TEST_MAIN()

TEST(test_substitutions_with_default_and_required_message)
{
    unsetenv("SONDE_TEST_SUBST_UNSET");
    setenv("SONDE_TEST_SUBST_EMPTY", "", 1);
    setenv("SONDE_TEST_SUBST_SET", "from-env", 1);
    sonde_config *cfg = NULL;
    /* Unset and empty take the default; a set variable wins over it. */
    ASSERT_OK(load("service:\n  name: \"svc-${SONDE_TEST_SUBST_UNSET:-fallback}\"\n"
                   "server:\n  listen: \"${SONDE_TEST_SUBST_EMPTY:-127.0.0.1:9999}\"\n"
                   "  api_key: \"${SONDE_TEST_SUBST_SET:-unused}\"\n",
                   &cfg));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    sonde_config_start_opts(cfg, &o);
    ASSERT_STR_EQ(o.service_name, "svc-fallback");
    ASSERT_STR_EQ(o.listen, "127.0.0.1:9999");
    ASSERT_STR_EQ(o.api_key, "from-env");
    sonde_config_destroy(cfg);
    /* An empty default is allowed. */
    ASSERT_OK(load("service:\n  name: \"a${SONDE_TEST_SUBST_UNSET:-}b\"\n", &cfg));
    sonde_start_opts_init(&o);
    sonde_config_start_opts(cfg, &o);
    ASSERT_STR_EQ(o.service_name, "ab");
    sonde_config_destroy(cfg);
    /* Required: the message is reported with the variable and position. */
    ASSERT_EQ(
        load("service:\n  name: \"${SONDE_TEST_SUBST_UNSET:?set it to the service name}\"\n", &cfg),
        SONDE_EPARSE);
    ASSERT(has_error(2, 9,
                     "environment variable SONDE_TEST_SUBST_UNSET is not set: set it to the "
                     "service name"));
    ASSERT_EQ(load("service:\n  name: \"${SONDE_TEST_SUBST_EMPTY:?needed}\"\n", &cfg),
              SONDE_EPARSE);
    ASSERT(has_error(2, 9, "SONDE_TEST_SUBST_EMPTY is not set: needed"));
    ASSERT_OK(load("service:\n  name: \"${SONDE_TEST_SUBST_SET:?needed}\"\n", &cfg));
    sonde_config_destroy(cfg);
    /* Other operators are refused clearly. */
    ASSERT_EQ(load("service:\n  name: \"${SONDE_TEST_SUBST_SET:+x}\"\n", &cfg), SONDE_EPARSE);
    ASSERT(has_error(2, 9, "only ${VAR:-default} and ${VAR:?message} are supported"));
    unsetenv("SONDE_TEST_SUBST_EMPTY");
    unsetenv("SONDE_TEST_SUBST_SET");
}
