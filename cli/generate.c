/*
 * sonde generate-config: Grafana, Prometheus, Alertmanager, compose and
 * Kubernetes files for a sonde service, from a running one (--url: its
 * /metrics/json, /health/detailed, /alerts and /info) or from an agent
 * configuration (--config: its checks, alert rules, listen address and
 * key, with the metric families sonde itself registers).
 */
#include "cli.h"
#include "core/json.h"

#include <sonde.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char gen_usage[] =
    "usage: sonde generate-config (--url URL [--api-key KEY] | --config FILE) --output DIR\n"
    "                             [--only LIST] [--job NAME] [--namespace NS]\n"
    "                             [--scrape-interval D] [--target HOST:PORT] [--image IMAGE]\n"
    "                             [--force]\n"
    "\n"
    "Write the operator files of a sonde service into DIR:\n"
    "  grafana/dashboard.json, grafana/provisioning/   Grafana dashboard and provisioning\n"
    "  prometheus/prometheus.yml, prometheus/rules.yml scrape job, recording and alert rules\n"
    "  alertmanager/alertmanager.yml                   routes by severity, webhook receivers\n"
    "  docker-compose.yml                              service, Prometheus, Alertmanager, Grafana\n"
    "  k8s/                                            Deployment, Service, ServiceMonitor,\n"
    "                                                  PodMonitor, PrometheusRule, Secret\n"
    "\n"
    "options:\n"
    "  --url URL              a running service (default $SONDE_URL or http://127.0.0.1:9464)\n"
    "  --api-key KEY          its API key (default $SONDE_API_KEY); the scrape uses it\n"
    "  --config FILE          an agent configuration instead of a running service\n"
    "  --output DIR           where to write (required); existing files need --force\n"
    "  --only LIST            grafana,prometheus,alertmanager,compose,k8s (default all)\n"
    "  --job NAME             Prometheus job and Kubernetes app name (default: service name)\n"
    "  --namespace NS         Kubernetes namespace (default default)\n"
    "  --scrape-interval D    scrape and evaluation interval (default 15s)\n"
    "  --target HOST:PORT     address Prometheus scrapes (default: the --url's)\n"
    "  --image IMAGE          the service's container image (default a placeholder)\n"
    "  --force                overwrite existing files\n";

typedef struct model {
    sonde__json *metrics, *health, *alerts;
    sonde_gen_family *fams;
    const char **labels; /* all label name pointers, fams point into it */
    sonde_gen_rule *rules;
    const char **rule_labels;
    const char **rule_by; /* every rule's by labels, rules point into it */
    const char **checks;
    size_t nfams, nrules, nchecks;
} model;

static void model_free(model *m)
{
    sonde__json_free(m->metrics);
    sonde__json_free(m->health);
    sonde__json_free(m->alerts);
    free(m->fams);
    free(m->labels);
    free(m->rules);
    free(m->rule_labels);
    free(m->rule_by);
    free(m->checks);
}

/* Fill m from the three documents (m owns them). Returns 0 or prints why. */
static int model_build(model *m)
{
    const sonde__json *fams = sonde__json_get(m->metrics, "families");
    if (!fams || fams->type != SONDE__JSON_ARRAY) {
        fprintf(stderr, "sonde generate-config: /metrics/json has no \"families\" array\n");
        return 1;
    }
    size_t nl = 0;
    for (size_t i = 0; i < fams->count; i++) {
        const sonde__json *ms = sonde__json_get(&fams->items[i], "metrics");
        if (ms && ms->type == SONDE__JSON_ARRAY && ms->count) {
            const sonde__json *l = sonde__json_get(&ms->items[0], "labels");
            nl += l && l->type == SONDE__JSON_OBJECT ? l->count : 0;
        }
    }
    m->fams = calloc(fams->count + 1, sizeof *m->fams);
    m->labels = calloc(nl + 1, sizeof *m->labels);
    if (!m->fams || !m->labels)
        return 1;
    size_t li = 0;
    for (size_t i = 0; i < fams->count; i++) {
        const sonde__json *f = &fams->items[i];
        sonde_gen_family *g = &m->fams[m->nfams];
        g->name = sonde__json_get_str(f, "name", NULL);
        g->type = sonde__json_get_str(f, "type", NULL);
        if (!g->name || !g->type)
            continue;
        g->help = sonde__json_get_str(f, "help", NULL);
        g->unit = sonde__json_get_str(f, "unit", NULL);
        g->labels = m->labels + li;
        const sonde__json *ms = sonde__json_get(f, "metrics");
        if (ms && ms->type == SONDE__JSON_ARRAY && ms->count) {
            const sonde__json *l = sonde__json_get(&ms->items[0], "labels");
            for (size_t k = 0; l && l->type == SONDE__JSON_OBJECT && k < l->count; k++) {
                /* Histograms' and summaries' le/quantile are not series labels. */
                if (strcmp(l->keys[k], "le") == 0 || strcmp(l->keys[k], "quantile") == 0)
                    continue;
                m->labels[li++] = l->keys[k];
                g->label_count++;
            }
        }
        m->nfams++;
    }
    const sonde__json *checks = m->health ? sonde__json_get(m->health, "checks") : NULL;
    if (checks && checks->type == SONDE__JSON_OBJECT && checks->count) {
        m->checks = calloc(checks->count, sizeof *m->checks);
        if (!m->checks)
            return 1;
        for (size_t i = 0; i < checks->count; i++)
            m->checks[m->nchecks++] = checks->keys[i];
    }
    const sonde__json *rules = m->alerts ? sonde__json_get(m->alerts, "rules") : NULL;
    if (rules && rules->type == SONDE__JSON_ARRAY && rules->count) {
        size_t nrl = 0, nby = 0;
        for (size_t i = 0; i < rules->count; i++) {
            const sonde__json *l = sonde__json_get(&rules->items[i], "labels");
            nrl += l && l->type == SONDE__JSON_OBJECT ? 2 * l->count : 0;
            const sonde__json *d = sonde__json_get(&rules->items[i], "definition");
            const sonde__json *by = d ? sonde__json_get(d, "by") : NULL;
            nby += by && by->type == SONDE__JSON_ARRAY ? by->count : 0;
        }
        m->rules = calloc(rules->count, sizeof *m->rules);
        m->rule_labels = calloc(nrl + 1, sizeof *m->rule_labels);
        m->rule_by = calloc(nby + 1, sizeof *m->rule_by);
        if (!m->rules || !m->rule_labels || !m->rule_by)
            return 1;
        size_t rl = 0, rb = 0;
        for (size_t i = 0; i < rules->count; i++) {
            const sonde__json *r = &rules->items[i];
            const sonde__json *d = sonde__json_get(r, "definition");
            sonde_gen_rule *g = &m->rules[m->nrules];
            g->name = sonde__json_get_str(r, "rule", NULL);
            g->kind = sonde__json_get_str(r, "kind", NULL);
            if (!g->name || !g->kind)
                continue;
            g->severity = sonde__json_get_str(r, "severity", NULL);
            if (d) {
                g->min_severity = sonde__json_get_str(d, "min_severity", NULL);
                g->type = sonde__json_get_str(d, "type", NULL);
                g->operation = sonde__json_get_str(d, "operation", NULL);
                g->threshold = sonde__json_get_num(d, "threshold", 0);
                g->window_seconds = sonde__json_get_num(d, "window_seconds", 0);
                g->for_seconds = sonde__json_get_num(d, "for_seconds", 0);
                g->percent = sonde__json_get_num(d, "percent", 0);
                g->min_count = sonde__json_get_num(d, "min_count", 0);
                g->summary = sonde__json_get_str(d, "summary", NULL);
                g->description = sonde__json_get_str(d, "description", NULL);
                /* Rules over a registry metric. */
                g->metric = sonde__json_get_str(d, "metric", NULL);
                g->denominator = sonde__json_get_str(d, "denominator", NULL);
                g->op = sonde__json_get_str(d, "op", NULL);
                g->quantile = sonde__json_get_num(d, "quantile", 0);
                const sonde__json *by = sonde__json_get(d, "by");
                g->by = m->rule_by + rb;
                for (size_t k = 0; by && by->type == SONDE__JSON_ARRAY && k < by->count; k++)
                    if (by->items[k].type == SONDE__JSON_STRING) {
                        m->rule_by[rb++] = by->items[k].string;
                        g->by_count++;
                    }
            }
            const sonde__json *l = sonde__json_get(r, "labels");
            g->labels = m->rule_labels + rl;
            for (size_t k = 0; l && l->type == SONDE__JSON_OBJECT && k < l->count; k++) {
                if (l->items[k].type != SONDE__JSON_STRING)
                    continue;
                m->rule_labels[rl++] = l->keys[k];
                m->rule_labels[rl++] = l->items[k].string;
                g->label_count++;
            }
            m->nrules++;
        }
    }
    return 0;
}

static sonde__json *parse_doc(const char *what, const char *body, size_t len)
{
    char err[160];
    sonde__json *v = sonde__json_parse(body, len, err, sizeof err);
    if (!v)
        fprintf(stderr, "sonde generate-config: %s is not JSON: %s\n", what, err);
    return v;
}

static int fetch(model *m, const char *url, const char *key, char *service, size_t sn, char *prefix,
                 size_t pn)
{
    static const char *const paths[4] = {"/metrics/json", "/health/detailed", "/alerts", "/info"};
    sonde__json *docs[4] = {0};
    for (int i = 0; i < 4; i++) {
        char *body = NULL;
        size_t len = 0;
        int rc = cli_get_json("generate-config", url, paths[i], key, 10, &body, &len);
        if (rc && i == 0)
            return rc;
        if (rc) /* health, alerts and info are optional: an older server */
            continue;
        docs[i] = parse_doc(paths[i], body, len);
        free(body);
        if (!docs[i] && i == 0)
            return 1;
    }
    m->metrics = docs[0];
    m->health = docs[1];
    m->alerts = docs[2];
    if (docs[3]) {
        snprintf(service, sn, "%s", sonde__json_get_str(docs[3], "name", ""));
        const sonde__json *c = sonde__json_get(docs[3], "configuration");
        snprintf(prefix, pn, "%s", c ? sonde__json_get_str(c, "route_prefix", "") : "");
        sonde__json_free(docs[3]);
    }
    return 0;
}

static int from_config(model *m, const char *file, char *listen, size_t ln, char *key, size_t kn,
                       char *service, size_t sn)
{
    sonde_config *cfg = NULL;
    sonde_config_error errs[16];
    size_t nerrs = 0;
    int rc = sonde_config_load_file(file, &cfg, errs, 16, &nerrs);
    if (rc) {
        cli_print_config_errors(file, errs, nerrs < 16 ? nerrs : 16, nerrs);
        if (!nerrs)
            fprintf(stderr, "sonde generate-config: %s: %s\n", file, sonde_strerror(rc));
        return 1;
    }
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    sonde_config_start_opts(cfg, &so);
    snprintf(listen, ln, "%s", so.listen ? so.listen : ":9464");
    if (so.api_key && !*key)
        snprintf(key, kn, "%s", so.api_key);
    if (so.service_name && *so.service_name)
        snprintf(service, sn, "%s", so.service_name);
    /* The families the agent exposes: its health set and host metrics on
     * the registry, like sonde serve (the checks are not run). */
    const char *const *paths = NULL;
    size_t npaths = 0;
    if (sonde_config_host_metrics(cfg, &paths, &npaths))
        sonde_host_metrics_add(NULL, paths, npaths);
    sonde_health_opts ho;
    memset(&ho, 0, sizeof ho);
    ho.registry = sonde_registry_default();
    sonde_health *h = NULL;
    sonde_errors *t = NULL;
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    sonde_buf hb, ab, mb;
    sonde_buf_init(&hb);
    sonde_buf_init(&ab);
    sonde_buf_init(&mb);
    rc = sonde_health_create(&ho, &h);
    rc = rc ? rc : sonde_config_add_checks(cfg, h);
    rc = rc ? rc : sonde_health_write_json(h, 1, &hb);
    eo.service_name = service[0] ? service : NULL; /* the alerts' service label */
    rc = rc ? rc : sonde_errors_create(&eo, &t);
    rc = rc ? rc : sonde_config_apply_alerts(cfg, t);
    rc = rc ? rc : sonde_alerts_write_json(t, &ab);
    rc = rc ? rc : sonde_registry_write_json(NULL, &mb);
    if (rc)
        fprintf(stderr, "sonde generate-config: %s: %s\n", file, sonde_strerror(rc));
    else {
        m->metrics = parse_doc("the metric families", mb.data, mb.len);
        m->health = parse_doc("the health checks", hb.data, hb.len);
        m->alerts = parse_doc("the alert rules", ab.data, ab.len);
        rc = m->metrics ? 0 : 1;
    }
    sonde_buf_free(&hb);
    sonde_buf_free(&ab);
    sonde_buf_free(&mb);
    sonde_errors_destroy(t);
    sonde_health_destroy(h);
    sonde_config_destroy(cfg);
    return rc ? 1 : 0;
}

/* host:port, scheme and path prefix of a URL. */
static void split_url(const char *url, char *hostport, size_t hn, char *scheme, size_t sn,
                      char *path, size_t pn)
{
    const char *p = strstr(url, "://");
    snprintf(scheme, sn, "%.*s", p ? (int)(p - url) : 4, p ? url : "http");
    const char *h = p ? p + 3 : url;
    const char *slash = strchr(h, '/');
    snprintf(hostport, hn, "%.*s", slash ? (int)(slash - h) : (int)strlen(h), h);
    snprintf(path, pn, "%s", slash ? slash : "");
    size_t l = strlen(path);
    while (l > 0 && path[l - 1] == '/')
        path[--l] = '\0';
}

int cmd_generate_config(int argc, char **argv)
{
    const char *url = NULL, *key = getenv("SONDE_API_KEY"), *config = NULL, *out = NULL;
    sonde_gen_opts o;
    sonde_gen_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(gen_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--force") == 0) {
            o.force = 1;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "--url", &v)) > 0)
            url = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--api-key", &v)) > 0)
            key = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--config", &v)) > 0)
            config = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--output", &v)) > 0)
            out = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--job", &v)) > 0)
            o.job = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--namespace", &v)) > 0)
            o.namespace_ = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--scrape-interval", &v)) > 0)
            o.scrape_interval = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--target", &v)) > 0)
            o.target = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--image", &v)) > 0)
            o.image = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--only", &v)) > 0) {
            o.only = sonde_gen_parse_only(v);
            if (o.only < 0) {
                fprintf(stderr,
                        "sonde generate-config: --only \"%s\": a comma-separated list "
                        "of grafana, prometheus, alertmanager, compose, k8s\n",
                        v);
                return EXIT_USAGE;
            }
        }
        if (r < 0) {
            fprintf(stderr, "sonde generate-config: %s needs a value\n", argv[i]);
            return EXIT_USAGE;
        }
        if (r == 0) {
            fprintf(stderr, "sonde generate-config: unknown option %s\n\n%s", argv[i], gen_usage);
            return EXIT_USAGE;
        }
    }
    if (!out) {
        fprintf(stderr, "sonde generate-config: --output DIR is required\n\n%s", gen_usage);
        return EXIT_USAGE;
    }
    if (url && config) {
        fprintf(stderr, "sonde generate-config: give --url or --config, not both\n");
        return EXIT_USAGE;
    }
    if (!sonde_enabled()) {
        fprintf(stderr, "sonde generate-config: sonde is off (SONDE_ENABLED=0 or a SONDE_DISABLE "
                        "build): nothing written\n");
        return 0;
    }
    model m;
    memset(&m, 0, sizeof m);
    char service[256] = "", prefix[256] = "", hostport[256], scheme[16], path[256];
    char listen[256] = "", keybuf[512] = "";
    int rc;
    if (config) {
        snprintf(keybuf, sizeof keybuf, "%s", key ? key : "");
        rc = from_config(&m, config, listen, sizeof listen, keybuf, sizeof keybuf, service,
                         sizeof service);
        key = keybuf[0] ? keybuf : NULL;
        /* ":9464" or "host:port": Prometheus scrapes localhost by default. */
        if (listen[0] == ':')
            snprintf(hostport, sizeof hostport, "localhost%s", listen);
        else
            snprintf(hostport, sizeof hostport, "%s", listen);
        snprintf(scheme, sizeof scheme, "http");
        if (!service[0]) { /* no service.name: the file's name */
            const char *slash = strrchr(config, '/');
            snprintf(service, sizeof service, "%s", slash ? slash + 1 : config);
            char *dot = strchr(service, '.');
            if (dot)
                *dot = '\0';
        }
    } else {
        if (!url)
            url = cli_default_url();
        split_url(url, hostport, sizeof hostport, scheme, sizeof scheme, path, sizeof path);
        rc = fetch(&m, url, key, service, sizeof service, prefix, sizeof prefix);
        if (!prefix[0])
            snprintf(prefix, sizeof prefix, "%s", path);
    }
    if (!rc)
        rc = model_build(&m);
    if (rc) {
        model_free(&m);
        return rc == EXIT_UNREACHABLE ? EXIT_UNREACHABLE : 1;
    }
    /* Job names: the service name made Prometheus-friendly. */
    char job[64];
    size_t k = 0;
    for (const char *s = service; *s && k + 1 < sizeof job; s++)
        job[k++] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                           (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'
                       ? *s
                       : '_';
    job[k] = '\0';
    if (!o.job && k && ((job[0] >= 'a' && job[0] <= 'z') || (job[0] >= 'A' && job[0] <= 'Z')))
        o.job = job;
    o.service = service[0] ? service : NULL;
    if (!o.target)
        o.target = hostport;
    o.scheme = scheme;
    o.route_prefix = prefix;
    o.api_key = key && *key ? key : NULL;
    sonde_gen_input in = {m.fams, m.nfams, m.checks, m.nchecks, m.rules, m.nrules};
    char err[512];
    size_t skipped = 0;
    rc = sonde_gen_write(&o, &in, out, &skipped, err, sizeof err);
    if (rc) {
        fprintf(stderr, "sonde generate-config: %s\n", err[0] ? err : sonde_strerror(rc));
        model_free(&m);
        return rc == SONDE_EINVAL ? EXIT_USAGE : 1;
    }
    printf("wrote %s: %zu metric families, %zu health checks, %zu alert rules (%zu without a "
           "PromQL equivalent, listed in prometheus/rules.yml)\n",
           out, m.nfams, m.nchecks, m.nrules, skipped);
    model_free(&m);
    return 0;
}
