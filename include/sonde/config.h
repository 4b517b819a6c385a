/*
 * sonde/config.h - the agent's YAML configuration (`sonde serve --config`,
 * `sonde check-config`). See docs/configuration.md for the schema.
 *
 * Loading validates everything it can without touching the network: types,
 * required keys, unknown keys, value ranges, duplicate check names,
 * unreadable secret files, unset ${VARIABLES}. Every error is reported with
 * its line and column (1-based); loading goes on after an error so one run
 * reports them all.
 */
#ifndef SONDE_CONFIG_H
#define SONDE_CONFIG_H

#include "common.h"
#include "export.h"
#include "health.h"
#include "runtime.h"
#include "sql.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sonde_config sonde_config;

/** One configuration error. */
typedef struct sonde_config_error {
    int line;   /**< 1-based; 0 when the error has no position (unreadable file) */
    int column; /**< 1-based */
    char message[256];
} sonde_config_error;

/** Largest configuration file accepted (bytes). */
#define SONDE_CONFIG_MAX_BYTES (1 << 20)

/**
 * Parse and validate YAML text (len bytes; need not be NUL-terminated).
 * Errors go to errs[0..max_errs) in file order; *nerrs (may be NULL)
 * receives how many were found (possibly more than max_errs). On success
 * *out is a configuration the caller frees with sonde_config_destroy; on
 * error *out is NULL. Returns SONDE_OK, SONDE_EPARSE (errors found),
 * SONDE_ETOOBIG or SONDE_ENOMEM. Reads the environment for ${VAR}
 * references and files named by *_file keys. Any thread; allocates.
 */
SONDE_API int sonde_config_load_string(const char *text, size_t len, sonde_config **out,
                                       sonde_config_error *errs, size_t max_errs, size_t *nerrs);

/** As sonde_config_load_string, reading path; SONDE_EIO when it cannot be
 * read (reported as an error with line 0). */
SONDE_API int sonde_config_load_file(const char *path, sonde_config **out, sonde_config_error *errs,
                                     size_t max_errs, size_t *nerrs);

/** Free a configuration; accepts NULL. */
SONDE_API void sonde_config_destroy(sonde_config *cfg);

/**
 * Fill opts (after sonde_start_opts_init) from the server, service and info
 * sections. Strings point into cfg: keep cfg alive until sonde_start
 * returns (sonde_start copies them). Fields absent from the file are left
 * as they are.
 */
SONDE_API void sonde_config_start_opts(const sonde_config *cfg, sonde_start_opts *opts);

/**
 * Add every configured check to h (NULL: the default set). Returns SONDE_OK
 * or the first error of a sonde_health_add_* call (checks added before it
 * stay).
 */
SONDE_API int sonde_config_add_checks(const sonde_config *cfg, sonde_health *h);

/** Number of checks in the configuration. */
SONDE_API size_t sonde_config_check_count(const sonde_config *cfg);

/**
 * Replace the rules and notifiers of t (NULL: the default tracker) by the
 * configuration's alerts section (sonde_alerts_set_rules and
 * sonde_alerts_set_notifiers: unchanged rules keep their state across a
 * reload; notifiers from the environment stay). Health rules watch the
 * default health set. Returns SONDE_OK or their error.
 */
SONDE_API int sonde_config_apply_alerts(const sonde_config *cfg, sonde_errors *t);

/** Numbers of alert rules and of notifiers in the configuration. */
SONDE_API size_t sonde_config_rule_count(const sonde_config *cfg);
SONDE_API size_t sonde_config_notifier_count(const sonde_config *cfg);

/**
 * Host metrics settings: returns non-zero when enabled (the default) and
 * points *paths at the filesystems to report (*count of them; borrowed from
 * cfg).
 */
SONDE_API int sonde_config_host_metrics(const sonde_config *cfg, const char *const **paths,
                                        size_t *count);

/**
 * Build the SQL collector of the configuration's sql section into *out,
 * not started (sonde_sql_start runs it; the caller frees it with
 * sonde_sql_destroy), its metrics going to reg (NULL: the default
 * registry). *out is NULL when the configuration has no sql queries.
 * DSNs and passwords named by *_file and *_env keys are read now. Returns
 * SONDE_OK or the first sonde_sql_add_* error (a file or variable that
 * changed since loading).
 */
SONDE_API int sonde_config_sql(const sonde_config *cfg, sonde_registry *reg, sonde_sql **out);

/** Number of SQL queries in the configuration. */
SONDE_API size_t sonde_config_sql_query_count(const sonde_config *cfg);

/** Number of receivers in the remote_write section. */
SONDE_API size_t sonde_config_remote_write_count(const sonde_config *cfg);

/**
 * Copy the options of remote_write entry i into *opts, ready for
 * sonde_remote_write_create (registry and self_registry NULL: the default
 * registry). Strings and arrays point into cfg: keep cfg alive until
 * sonde_remote_write_create returns (it copies them). A basic_auth
 * password_file was read at loading; a bearer_token_file is read by the
 * writer at each request. Returns SONDE_OK or SONDE_EINVAL (i out of
 * range).
 */
SONDE_API int sonde_config_remote_write_opts(const sonde_config *cfg, size_t i,
                                             sonde_remote_write_opts *opts);

/**
 * A canonical text of the server settings: two configurations whose server
 * settings are equal give the same text (a reload only restarts the server
 * when it changed). Borrowed from cfg.
 */
SONDE_API const char *sonde_config_server_digest(const sonde_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
