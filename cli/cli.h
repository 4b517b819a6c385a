/* The sonde command: shared declarations of its subcommands. */
#ifndef SONDE_CLI_H
#define SONDE_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Exit statuses. */
#define EXIT_HEALTHY 0
#define EXIT_DEGRADED 1
#define EXIT_UNHEALTHY 2
#define EXIT_UNREACHABLE 3
#define EXIT_USAGE 64

int cmd_serve(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_health(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_performance(int argc, char **argv);
int cmd_errors(int argc, char **argv);
int cmd_alerts(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_generate_config(int argc, char **argv);
int cmd_silence(int argc, char **argv);

/* Shared by the client commands (client.c). */
const char *cli_default_url(void);
bool cli_parse_seconds(const char *s, double *out);
/* Printable cell: control characters replaced, cut at max bytes. */
void cli_cell(char *out, size_t n, const char *s, size_t max);
/* GET base + path (path includes any query) as JSON. On 0 *body (malloc,
 * NUL-terminated; caller frees) holds the answer; otherwise the reason is
 * printed as "sonde <cmd>: ..." and the exit status returned (1: the
 * server answered an error, EXIT_UNREACHABLE). */
int cli_get_json(const char *cmd, const char *base, const char *path, const char *api_key,
                 double timeout, char **body, size_t *len);

/* As cli_get_json with another method (POST, DELETE...) and a JSON body
 * (NULL: none); success is the status `want` (201 for a creation). */
int cli_send_json(const char *cmd, const char *base, const char *path, const char *method,
                  const char *json, const char *api_key, double timeout, long want, char **body,
                  size_t *len);

/* Print every configuration error as "file:line:column: message". */
struct sonde_config_error;
void cli_print_config_errors(const char *file, const struct sonde_config_error *errs, size_t shown,
                             size_t total);

/* Whether argv[i] is --name or --name=value; on a match *value points to
 * the value (the next argument when not inline; *i advanced). Returns -1
 * when the value is missing. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **value);

#endif
