/**
 * @file sonde/gen.h
 * Operator files for a sonde service: a Grafana dashboard and its
 * provisioning, Prometheus scrape configuration and rules, Alertmanager
 * configuration, docker-compose and Kubernetes manifests, written from a
 * description of the service (its metric families, health checks and
 * in-process alert rules), as `sonde generate-config` does from a running
 * service's /metrics/json, /health/detailed and /alerts.
 *
 * Thread-safety: every function may be called from any thread; they share
 * no state. Nothing here is on a hot path.
 */
#ifndef SONDE_GEN_H
#define SONDE_GEN_H

#include <sonde/common.h>

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One metric family as /metrics/json describes it. Strings are borrowed. */
typedef struct sonde_gen_family {
    const char *name;
    /** "counter", "gauge", "histogram", "summary", "stateset", "info",
     * "untyped". */
    const char *type;
    const char *help; /**< NULL: none */
    const char *unit; /**< NULL or "": from the name's suffix */
    /** Label names of its series (constant labels included). */
    const char *const *labels;
    size_t label_count;
} sonde_gen_family;

/** One in-process alert rule, as the "rules" of /alerts describe it
 * (with its "definition"). Strings are borrowed; NULL when absent. */
typedef struct sonde_gen_rule {
    const char *name;
    const char *kind;     /**< "errors", "failure_rate", "no_success", ... */
    const char *severity; /**< the alert's severity label */
    const char *min_severity;
    const char *type;
    const char *operation;
    double threshold;
    double window_seconds;
    double for_seconds;
    double percent;
    double min_count;
    const char *summary;     /**< template: {value}, {threshold}, ... */
    const char *description; /**< template */
    /** Alert labels, pairs: labels[2i] = name, labels[2i+1] = value
     * (alertname is skipped). */
    const char *const *labels;
    size_t label_count;
    /* Rules over a registry metric (kinds value, rate, increase, ratio,
     * quantile). */
    const char *metric;      /**< PromQL-style instant selector */
    const char *denominator; /**< ratio: the denominator's selector */
    const char *const *by;   /**< label names the series are summed by */
    size_t by_count;
    const char *op;  /**< ">", ">=", "<", "<=", "==", "!="; NULL: ">" */
    double quantile; /**< quantile: in (0, 1] */
} sonde_gen_rule;

/** Which files to write (sonde_gen_opts.only). */
enum {
    SONDE_GEN_GRAFANA = 1,
    SONDE_GEN_PROMETHEUS = 2,
    SONDE_GEN_ALERTMANAGER = 4,
    SONDE_GEN_COMPOSE = 8,
    SONDE_GEN_K8S = 16,
    SONDE_GEN_ALL = 31
};

/** Parse "grafana,prometheus,..." into SONDE_GEN_* bits; returns the mask
 * or SONDE_EINVAL (an unknown name). Pure. */
SONDE_API int sonde_gen_parse_only(const char *list);

/** What to generate; zero means default for every field. Strings are
 * borrowed. */
typedef struct sonde_gen_opts {
    /** Prometheus job name and Kubernetes app name. NULL: the service name,
     * else "sonde". [a-zA-Z_][a-zA-Z0-9_-]*, at most 63 bytes. */
    const char *job;
    /** Service name (from /info). NULL: the job. */
    const char *service;
    /** Kubernetes namespace. NULL: "default". */
    const char *namespace_;
    /** Scrape and evaluation interval, a Prometheus duration. NULL: "15s". */
    const char *scrape_interval;
    /** host:port Prometheus scrapes. NULL: "localhost:9464". */
    const char *target;
    /** "http" or "https". NULL: "http". */
    const char *scheme;
    /** Route prefix of the sonde endpoints ("" or "/x"). NULL: "". */
    const char *route_prefix;
    /** The API key: when set the scrape sends it as a bearer token from
     * prometheus/sonde_api_key (written with mode 0600) and the manifests
     * reference a Secret. NULL: no key. */
    const char *api_key;
    /** Container image of the service in compose and Kubernetes files.
     * NULL: "REPLACE_ME/<job>:latest". */
    const char *image;
    /** SONDE_GEN_* bits. 0: all. */
    int only;
    /** Non-zero: overwrite existing files. */
    int force;
} sonde_gen_opts;

/** Zero the options. Any thread. */
SONDE_API void sonde_gen_opts_init(sonde_gen_opts *opts);

/** The service's description. */
typedef struct sonde_gen_input {
    const sonde_gen_family *families;
    size_t family_count;
    const char *const *checks; /**< health check names */
    size_t check_count;
    const sonde_gen_rule *rules;
    size_t rule_count;
} sonde_gen_input;

/**
 * Write the files under dir (created when missing): grafana/dashboard.json,
 * grafana/provisioning/{datasources,dashboards}/sonde.yml,
 * prometheus/prometheus.yml, prometheus/rules.yml (and sonde_api_key),
 * alertmanager/alertmanager.yml, docker-compose.yml and the k8s/ manifests, as
 * opts->only selects. Without opts->force nothing is written when one of
 * the files exists. Returns SONDE_OK, SONDE_EINVAL (bad option: err says
 * which), SONDE_ECONFLICT (a file exists and force is not set), SONDE_EIO or
 * SONDE_ENOMEM; on failure err (errlen bytes, may be NULL) holds the
 * reason. Rules without a PromQL equivalent are listed in rules.yml as
 * comments, and their count is stored in *skipped (may be NULL). With sonde
 * off (SONDE_ENABLED=0, SONDE_DISABLE) writes nothing and returns SONDE_OK.
 */
SONDE_API int sonde_gen_write(const sonde_gen_opts *opts, const sonde_gen_input *in,
                              const char *dir, size_t *skipped, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
