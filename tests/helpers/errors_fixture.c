/*
 * A service with errors, for the CLI tests: starts sonde on a loopback
 * port with one alert rule, captures a few errors (two groups share ids
 * that normalise away), prints "listening on HOST:PORT" and serves until
 * SIGTERM or SIGINT.
 *
 *   errors_fixture [--exit]     --exit: capture, process and stop at once
 */
#include <sonde.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int exit_at_once = argc > 1 && strcmp(argv[1], "--exit") == 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "DatabaseErrors";
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_HIGH;
    r.threshold = 3;
    r.window_seconds = 3600;
    r.summary = "{value} database errors within {window}";
    if (sonde_alerts_add_rule(NULL, &r) != SONDE_OK) {
        fprintf(stderr, "rule: %s\n", sonde_last_error());
        return 1;
    }
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    if (!getenv("SONDE_LISTEN"))
        o.listen = "127.0.0.1:0";
    o.service_name = "errors-fixture";
    if (sonde_start(&o) != SONDE_OK) {
        fprintf(stderr, "start: %s\n", sonde_last_error());
        return 1;
    }
    for (int i = 0; i < 4; i++)
        SONDE_CAPTURE(SONDE_SEVERITY_CRITICAL, "DatabaseError",
                      "insert into orders failed for user %d", 1000 + i * 17);
    SONDE_CAPTURE(SONDE_SEVERITY_LOW, "CacheMiss", "no entry for session %x", 0xbeef12);
    sonde_errors_process(NULL);
    if (exit_at_once) {
        sonde_stop();
        return 0;
    }
    char addr[96];
    sonde_listen_address(addr, sizeof addr);
    printf("listening on %s\n", addr);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    sonde_stop();
    return 0;
}
