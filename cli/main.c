/*
 * sonde - the command: a standalone monitoring agent and a client of a
 * running sonde server.
 *
 *   sonde serve --config FILE [--web.listen-address ADDR]
 *   sonde check-config FILE
 *   sonde health [--url URL] [--detailed] [--json]
 *   sonde metrics [--url URL] [--format F] [--output FILE]
 *   sonde performance [--operation NAME] [--hours N] [--json] [--url URL | --store ADDR]
 *   sonde errors [--url URL | --store ADDR] [--since D] [--severity S] [--json]
 *   sonde alerts [--url URL | --store ADDR] [--json]
 *   sonde silence add|list|expire [...]
 *   sonde generate-config (--url URL | --config FILE) --output DIR [...]
 *   sonde version
 */
#include "cli.h"

#include <sonde.h>

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: sonde <command> [options]\n"
    "\n"
    "Monitoring for C services: a standalone agent and a client of sonde servers.\n"
    "\n"
    "commands:\n"
    "  serve          run the monitoring agent (host metrics and health checks from YAML)\n"
    "  check-config   validate an agent configuration file\n"
    "  health         query a server's health and print it (exit 0/1/2/3)\n"
    "  metrics        fetch a server's metrics\n"
    "  performance    operation latency and success rates (a server or a history store)\n"
    "  errors         list a service's error groups\n"
    "  alerts         list a service's alerts: firing, pending and recent\n"
    "  silence        add, list or expire silences of a service's alerts\n"
    "  push           send metrics to a Pushgateway (push, push-add, delete)\n"
    "  generate-config  Grafana, Prometheus, Alertmanager, compose and Kubernetes files\n"
    "  version        print versions\n"
    "\n"
    "Run 'sonde <command> --help' for a command's options.\n";

int cli_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t nl = strlen(name);
    if (strncmp(a, name, nl) != 0)
        return 0;
    if (a[nl] == '=') {
        *value = a + nl + 1;
        return 1;
    }
    if (a[nl] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

void cli_print_config_errors(const char *file, const struct sonde_config_error *errs, size_t shown,
                             size_t total)
{
    for (size_t i = 0; i < shown && i < total; i++) {
        if (errs[i].line > 0)
            fprintf(stderr, "%s:%d:%d: error: %s\n", file, errs[i].line, errs[i].column,
                    errs[i].message);
        else
            fprintf(stderr, "%s: error: %s\n", file, errs[i].message);
    }
    if (total > shown)
        fprintf(stderr, "%s: %zu more errors not shown\n", file, total - shown);
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: sonde version\n\nPrint the versions of sonde and its libraries.\n");
        return 0;
    }
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    printf("sonde %s\n", SONDE_VERSION_STRING);
    printf("libsonde %s\n", sonde_version());
    printf("libcurl %s\n", cv && cv->version ? cv->version : "unknown");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0)
        return cmd_version(1, argv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc;
    if (strcmp(cmd, "serve") == 0)
        rc = cmd_serve(argc - 1, argv + 1);
    else if (strcmp(cmd, "check-config") == 0)
        rc = cmd_check_config(argc - 1, argv + 1);
    else if (strcmp(cmd, "health") == 0)
        rc = cmd_health(argc - 1, argv + 1);
    else if (strcmp(cmd, "metrics") == 0)
        rc = cmd_metrics(argc - 1, argv + 1);
    else if (strcmp(cmd, "performance") == 0)
        rc = cmd_performance(argc - 1, argv + 1);
    else if (strcmp(cmd, "errors") == 0)
        rc = cmd_errors(argc - 1, argv + 1);
    else if (strcmp(cmd, "alerts") == 0)
        rc = cmd_alerts(argc - 1, argv + 1);
    else if (strcmp(cmd, "silence") == 0)
        rc = cmd_silence(argc - 1, argv + 1);
    else if (strcmp(cmd, "push") == 0)
        rc = cmd_push(argc - 1, argv + 1);
    else if (strcmp(cmd, "generate-config") == 0)
        rc = cmd_generate_config(argc - 1, argv + 1);
    else if (strcmp(cmd, "version") == 0)
        rc = cmd_version(argc - 1, argv + 1);
    else {
        fprintf(stderr, "sonde: unknown command \"%s\"\n\n%s", cmd, usage);
        rc = EXIT_USAGE;
    }
    curl_global_cleanup();
    return rc;
}
