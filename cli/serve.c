/*
 * sonde serve: the standalone agent. Serves host and process metrics and
 * the health checks its YAML configuration declares. SIGTERM/SIGINT stop
 * it; SIGHUP reloads the configuration (a bad one is rejected and the
 * running one kept). sonde check-config lives here too.
 *
 * Signals are blocked before any thread starts and taken with sigwait() on
 * the main thread, so no handler ever runs inside sonde's threads.
 */
#include "cli.h"

#include <sonde.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRS 64

static const char serve_usage[] =
    "usage: sonde serve --config FILE [--web.listen-address ADDR]\n"
    "\n"
    "Run the monitoring agent: /metrics (host and process metrics, and the\n"
    "metrics of the configuration's SQL queries), /health,\n"
    "/health/live, /health/ready, /health/detailed, /info, /status, /errors,\n"
    "/alerts, with the health checks, alert rules and notifiers of the\n"
    "configuration (and notifiers from SONDE_ALERTMANAGER_URL, SONDE_WEBHOOK_URL,\n"
    "SONDE_SLACK_WEBHOOK_URL). With a remote_write section (or\n"
    "SONDE_REMOTE_WRITE_URL) it also ships these metrics to Prometheus remote\n"
    "write receivers (VictoriaMetrics, Mimir, Thanos, Prometheus).\n"
    "\n"
    "options:\n"
    "  --config FILE              YAML configuration (see docs/configuration.md)\n"
    "  --web.listen-address ADDR  listen address, overrides server.listen\n"
    "                             (default :9464; port 0 picks a free port)\n"
    "  --help                     this text\n"
    "\n"
    "signals: SIGTERM/SIGINT stop, SIGHUP reloads the configuration.\n"
    "The bound address is printed on stdout as \"listening on HOST:PORT\".\n";

static const char check_usage[] =
    "usage: sonde check-config FILE\n"
    "\n"
    "Validate an agent configuration; print every error as FILE:LINE:COLUMN.\n"
    "Exit status 0 when valid, 1 otherwise.\n";

/* A URL as shown: without user information and query (secrets). */
static void url_shown(const char *url, char *out, size_t n)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t scheme = (size_t)(host - url);
    const char *slash = strchr(host, '/'), *at = strchr(host, '@');
    if (at && (!slash || at < slash))
        host = at + 1;
    snprintf(out, n, "%.*s%.*s", (int)scheme, url, (int)strcspn(host, "?#"), host);
}

int cmd_check_config(int argc, char **argv)
{
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(check_usage, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "sonde check-config: unknown option %s\n\n%s", argv[i], check_usage);
            return EXIT_USAGE;
        }
        if (file) {
            fprintf(stderr, "sonde check-config: one file at a time\n");
            return EXIT_USAGE;
        }
        file = argv[i];
    }
    if (!file) {
        fputs(check_usage, stderr);
        return EXIT_USAGE;
    }
    sonde_config_error errs[MAX_ERRS];
    size_t n = 0;
    sonde_config *cfg = NULL;
    int rc = sonde_config_load_file(file, &cfg, errs, MAX_ERRS, &n);
    if (rc != SONDE_OK) {
        cli_print_config_errors(file, errs, MAX_ERRS, n);
        fprintf(stderr, "%s: %zu error%s\n", file, n, n == 1 ? "" : "s");
        return 1;
    }
    size_t nq = sonde_config_sql_query_count(cfg);
    if (nq) {
        sonde_sql *sql = NULL;
        if (sonde_config_sql(cfg, NULL, &sql) == SONDE_OK && sql) {
            printf("%s: %zu sql quer%s\n", file, nq, nq == 1 ? "y" : "ies");
            for (size_t i = 0; i < sonde_sql_database_count(sql); i++) {
                const char *name = NULL, *dsn = NULL;
                sonde_sql_database_info(sql, i, &name, &dsn);
                printf("  sql database %s: %s\n", name, dsn);
            }
        }
        sonde_sql_destroy(sql);
    }
    size_t nrw = sonde_config_remote_write_count(cfg);
    for (size_t i = 0; i < nrw; i++) {
        sonde_remote_write_opts o;
        sonde_config_remote_write_opts(cfg, i, &o);
        char shown[512];
        url_shown(o.url, shown, sizeof shown);
        printf("%s: remote write to %s%s%s%s\n", file, shown, o.name ? " (" : "",
               o.name ? o.name : "", o.name ? ")" : "");
    }
    size_t nr = sonde_config_rule_count(cfg), nn = sonde_config_notifier_count(cfg);
    if (nr || nn)
        printf("%s: ok (%zu check%s, %zu alert rule%s, %zu notifier%s)\n", file,
               sonde_config_check_count(cfg), sonde_config_check_count(cfg) == 1 ? "" : "s", nr,
               nr == 1 ? "" : "s", nn, nn == 1 ? "" : "s");
    else
        printf("%s: ok (%zu check%s)\n", file, sonde_config_check_count(cfg),
               sonde_config_check_count(cfg) == 1 ? "" : "s");
    sonde_config_destroy(cfg);
    return 0;
}

/* Agent state across reloads. */
typedef struct agent {
    const char *config_path;
    const char *listen_override;
    sonde_config *cfg;
    /* The SQL collector of the configuration (NULL without sql queries). */
    sonde_sql *sql;
    /* The remote writers of the configuration's remote_write section. */
    sonde_remote_write *rw[16];
    size_t nrw;
    /* /info: the configuration's pairs plus each SQL database's masked
     * DSN. */
    const char **info;
    sonde_counter *reload_ok, *reload_fail;
    sonde_gauge *last_reload_ok;
    sonde_gauge *last_reload_time;
} agent;

/* /info pairs: the configuration's, then "sql_database_<name>" = masked
 * DSN for each database of the running collector. */
static void build_info(agent *a, sonde_start_opts *o)
{
    free(a->info);
    a->info = NULL;
    size_t nd = sonde_sql_database_count(a->sql);
    if (nd == 0 && a->nrw == 0)
        return;
    size_t n = o->info_count + nd + a->nrw;
    a->info = calloc(2 * n, sizeof *a->info);
    static char keys[64][96];
    static char rw_keys[16][32];
    if (!a->info || nd > 64)
        return;
    for (size_t i = 0; i < 2 * o->info_count; i++)
        a->info[i] = o->info[i];
    for (size_t i = 0; i < nd; i++) {
        const char *name = NULL, *dsn = NULL;
        sonde_sql_database_info(a->sql, i, &name, &dsn);
        snprintf(keys[i], sizeof keys[i], "sql_database_%s", name);
        a->info[2 * (o->info_count + i)] = keys[i];
        a->info[2 * (o->info_count + i) + 1] = dsn;
    }
    /* Remote writers by their names (URLs without credentials). */
    for (size_t i = 0; i < a->nrw; i++) {
        snprintf(rw_keys[i], sizeof rw_keys[i], "remote_write_%zu", i + 1);
        a->info[2 * (o->info_count + nd + i)] = rw_keys[i];
        a->info[2 * (o->info_count + nd + i) + 1] = sonde_remote_write_name(a->rw[i]);
    }
    o->info = a->info;
    o->info_count = n;
}

static int start_server(agent *a, const sonde_config *cfg)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    sonde_config_start_opts(cfg, &o);
    build_info(a, &o);
    if (a->listen_override)
        o.listen = a->listen_override;
    if (!o.service_name)
        o.service_name = "sonde-agent";
    if (!o.service_version)
        o.service_version = SONDE_VERSION_STRING;
    int rc = sonde_start(&o);
    if (rc != SONDE_OK) {
        fprintf(stderr, "sonde serve: cannot start: %s (%s)\n", sonde_strerror(rc),
                sonde_last_error());
        return rc;
    }
    char addr[96];
    sonde_listen_address(addr, sizeof addr);
    printf("listening on %s\n", addr);
    fflush(stdout);
    return SONDE_OK;
}

/* Replace the running SQL collector by the configuration's. Returns 0 or
 * -1 (reported). */
static int apply_sql(agent *a, const sonde_config *cfg)
{
    sonde_sql *fresh = NULL;
    int rc = sonde_config_sql(cfg, NULL, &fresh);
    if (rc != SONDE_OK) {
        fprintf(stderr, "sonde serve: sql: %s (%s)\n", sonde_strerror(rc), sonde_last_error());
        return -1;
    }
    sonde_sql_destroy(a->sql);
    a->sql = fresh;
    if (fresh && (rc = sonde_sql_start(fresh)) != SONDE_OK) {
        fprintf(stderr, "sonde serve: sql: cannot start: %s\n", sonde_strerror(rc));
        return -1;
    }
    return 0;
}

/* Replace the running remote writers by the configuration's. The old ones
 * get their flush timeout to send what they hold (a disk queue keeps the
 * rest for the new writer of the same URL). Returns 0 or -1 (reported). */
static int apply_remote_write(agent *a, const sonde_config *cfg)
{
    for (size_t i = 0; i < a->nrw; i++)
        sonde_remote_write_destroy(a->rw[i]);
    a->nrw = 0;
    size_t n = sonde_config_remote_write_count(cfg);
    int ret = 0;
    for (size_t i = 0; i < n && a->nrw < 16; i++) {
        sonde_remote_write_opts o;
        sonde_config_remote_write_opts(cfg, i, &o);
        sonde_remote_write *rw = NULL;
        int rc = sonde_remote_write_create(&o, &rw);
        if (rc == SONDE_OK && rw && (rc = sonde_remote_write_start(rw)) != SONDE_OK) {
            sonde_remote_write_destroy(rw);
            rw = NULL;
        }
        if (rc != SONDE_OK) {
            fprintf(stderr, "sonde serve: remote_write entry %zu: %s (%s)\n", i + 1,
                    sonde_strerror(rc), sonde_last_error());
            ret = -1;
            continue;
        }
        if (!rw)
            continue; /* sonde disabled */
        fprintf(stderr, "sonde serve: remote write to %s every %gs\n", sonde_remote_write_name(rw),
                o.interval_seconds > 0 ? o.interval_seconds : 15.0);
        a->rw[a->nrw++] = rw;
    }
    return ret;
}

static void stop_remote_write(agent *a)
{
    for (size_t i = 0; i < a->nrw; i++) {
        sonde_remote_write_sample_now(a->rw[i]);
        sonde_remote_write_destroy(a->rw[i]);
    }
    a->nrw = 0;
}

static void apply_host_metrics(const sonde_config *cfg)
{
    sonde_host_metrics_remove(NULL);
    const char *const *paths = NULL;
    size_t n = 0;
    if (sonde_config_host_metrics(cfg, &paths, &n)) {
        int rc = sonde_host_metrics_add(NULL, paths, n);
        if (rc)
            fprintf(stderr, "sonde serve: host metrics: %s\n", sonde_strerror(rc));
    }
}

/* Build a health set from cfg into a fresh set; NULL on failure. */
static sonde_health *build_checks(const sonde_config *cfg)
{
    sonde_health *h = NULL;
    if (sonde_health_create(NULL, &h) != SONDE_OK)
        return NULL;
    int rc = sonde_config_add_checks(cfg, h);
    if (rc) {
        fprintf(stderr, "sonde serve: cannot add the checks: %s (%s)\n", sonde_strerror(rc),
                sonde_last_error());
        sonde_health_destroy(h);
        return NULL;
    }
    return h;
}

static void register_agent_metrics(agent *a)
{
    sonde_metric_opts o;
    sonde_family *f = NULL;
    const char *lbl[1] = {"result"};
    sonde_metric_opts_init(&o);
    o.name = "sonde_config_reloads_total";
    o.help = "Configuration reloads of the sonde agent, by result";
    o.label_names = lbl;
    o.label_count = 1;
    if (sonde_family_create(NULL, SONDE_COUNTER, &o, &f) == SONDE_OK) {
        a->reload_ok = sonde_family_counter(f, "success");
        a->reload_fail = sonde_family_counter(f, "failure");
    }
    sonde_gauge_create(NULL, "sonde_config_last_reload_successful",
                       "Whether the last configuration reload succeeded (1) or not (0)",
                       &a->last_reload_ok);
    sonde_gauge_create(NULL, "sonde_config_last_reload_success_timestamp_seconds",
                       "Time of the last successful configuration load", &a->last_reload_time);
    if (a->last_reload_ok)
        sonde_gauge_set(a->last_reload_ok, 1);
    if (a->last_reload_time)
        sonde_gauge_set_to_current_time(a->last_reload_time);
}

static void reload_result(agent *a, bool ok)
{
    if (ok) {
        if (a->reload_ok)
            sonde_counter_inc(a->reload_ok);
        if (a->last_reload_time)
            sonde_gauge_set_to_current_time(a->last_reload_time);
    } else if (a->reload_fail) {
        sonde_counter_inc(a->reload_fail);
    }
    if (a->last_reload_ok)
        sonde_gauge_set(a->last_reload_ok, ok ? 1 : 0);
}

static void reload(agent *a)
{
    sonde_config_error errs[MAX_ERRS];
    size_t n = 0;
    sonde_config *next = NULL;
    int rc = sonde_config_load_file(a->config_path, &next, errs, MAX_ERRS, &n);
    if (rc != SONDE_OK) {
        cli_print_config_errors(a->config_path, errs, MAX_ERRS, n);
        fprintf(stderr,
                "sonde serve: reload rejected (%zu error%s); keeping the running "
                "configuration\n",
                n, n == 1 ? "" : "s");
        reload_result(a, false);
        return;
    }
    sonde_health *fresh = build_checks(next);
    if (!fresh) {
        fprintf(stderr, "sonde serve: reload rejected; keeping the running configuration\n");
        sonde_config_destroy(next);
        reload_result(a, false);
        return;
    }
    bool restart =
        strcmp(sonde_config_server_digest(a->cfg), sonde_config_server_digest(next)) != 0;
    if (restart) {
        sonde_stop();
        if (start_server(a, next) != SONDE_OK) {
            fprintf(stderr, "sonde serve: reload rejected: the new server settings do not "
                            "start; restarting with the running configuration\n");
            sonde_health_destroy(fresh);
            sonde_config_destroy(next);
            if (start_server(a, a->cfg) != SONDE_OK)
                fprintf(stderr, "sonde serve: cannot restart the previous server either\n");
            reload_result(a, false);
            return;
        }
    }
    sonde_health_replace(NULL, fresh);
    sonde_health_destroy(fresh);
    sonde_health_run_now(NULL, NULL);
    apply_host_metrics(next);
    apply_sql(a, next);
    apply_remote_write(a, next);
    int arc = sonde_config_apply_alerts(next, NULL);
    if (arc)
        fprintf(stderr, "sonde serve: alert rules and notifiers not all applied: %s (%s)\n",
                sonde_strerror(arc), sonde_last_error());
    sonde_config_destroy(a->cfg);
    a->cfg = next;
    fprintf(stderr, "sonde serve: configuration reloaded (%zu check%s%s)\n",
            sonde_config_check_count(next), sonde_config_check_count(next) == 1 ? "" : "s",
            restart ? ", server restarted" : "");
    reload_result(a, true);
}

int cmd_serve(int argc, char **argv)
{
    agent a = {0};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(serve_usage, stdout);
            return 0;
        }
        if ((m = cli_opt(argc, argv, &i, "--config", &v)) ||
            (m = cli_opt(argc, argv, &i, "--config.file", &v))) {
            if (m < 0)
                goto missing;
            a.config_path = v;
        } else if ((m = cli_opt(argc, argv, &i, "--web.listen-address", &v))) {
            if (m < 0)
                goto missing;
            a.listen_override = v;
        } else {
            fprintf(stderr, "sonde serve: unknown option %s\n\n%s", argv[i], serve_usage);
            return EXIT_USAGE;
        }
        continue;
    missing:
        fprintf(stderr, "sonde serve: %s needs a value\n", argv[i]);
        return EXIT_USAGE;
    }
    if (!a.config_path) {
        fprintf(stderr, "sonde serve: --config FILE is required\n\n%s", serve_usage);
        return EXIT_USAGE;
    }

    sonde_config_error errs[MAX_ERRS];
    size_t n = 0;
    if (sonde_config_load_file(a.config_path, &a.cfg, errs, MAX_ERRS, &n) != SONDE_OK) {
        cli_print_config_errors(a.config_path, errs, MAX_ERRS, n);
        return 1;
    }
    sonde_health *fresh = build_checks(a.cfg);
    if (!fresh) {
        sonde_config_destroy(a.cfg);
        return 1;
    }
    sonde_health_replace(NULL, fresh);
    sonde_health_destroy(fresh);
    apply_host_metrics(a.cfg);
    int arc = sonde_config_apply_alerts(a.cfg, NULL);
    if (arc) {
        fprintf(stderr, "sonde serve: cannot apply the alert rules and notifiers: %s (%s)\n",
                sonde_strerror(arc), sonde_last_error());
        sonde_config_destroy(a.cfg);
        return 1;
    }
    register_agent_metrics(&a);

    /* Block the signals we wait for before any sonde thread exists, so
     * every thread inherits the mask and sigwait below receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* SQL queries run on sonde's threads: start them once the signals are
     * blocked. */
    if (apply_sql(&a, a.cfg) != 0) {
        sonde_sql_destroy(a.sql);
        sonde_config_destroy(a.cfg);
        return 1;
    }
    /* Remote writers run on sonde's worker too; before the server, so
     * /info lists them. */
    if (apply_remote_write(&a, a.cfg) != 0) {
        stop_remote_write(&a);
        sonde_sql_destroy(a.sql);
        sonde_config_destroy(a.cfg);
        return 1;
    }
    if (start_server(&a, a.cfg) != SONDE_OK) {
        stop_remote_write(&a);
        sonde_sql_destroy(a.sql);
        sonde_config_destroy(a.cfg);
        return 1;
    }
    fprintf(stderr, "sonde serve: %zu check%s, %zu sql quer%s from %s\n",
            sonde_config_check_count(a.cfg), sonde_config_check_count(a.cfg) == 1 ? "" : "s",
            sonde_config_sql_query_count(a.cfg),
            sonde_config_sql_query_count(a.cfg) == 1 ? "y" : "ies", a.config_path);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(&a);
            continue;
        }
        fprintf(stderr, "sonde serve: %s received, stopping\n",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    /* Last values sent before the host metrics go away. */
    stop_remote_write(&a);
    sonde_stop();
    sonde_sql_destroy(a.sql);
    free(a.info);
    sonde_host_metrics_remove(NULL);
    sonde_config_destroy(a.cfg);
    return 0;
}
