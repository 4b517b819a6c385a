/*
 * The agent's YAML configuration: libyaml's document loader gives a node
 * tree with positions; a schema walk validates it and fills a
 * sonde_config, reporting every problem with its line and column.
 *
 * Robustness: input size is capped (SONDE_CONFIG_MAX_BYTES); the walk
 * descends a fixed schema of at most four levels, so aliases (which libyaml
 * shares rather than copies) cannot make it explode; strings are bounded
 * after ${VAR} expansion; at most 256 checks.
 */
#include <sonde/config.h>

#include "core/internal.h"
#include "core/text.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_CHECKS 256
#define MAX_STRING 65536
#define MAX_LIST 64

typedef enum {
    CK_DISK,
    CK_MEMORY,
    CK_LOAD,
    CK_WRITABLE,
    CK_COMMAND,
    CK_TCP,
    CK_HTTP,
    CK_SQLITE,
    CK_POSTGRES,
    CK_REDIS,
    CK_FILE_FRESH,
    CK_COUNT
} ck_type;

static const char *const ck_names[CK_COUNT] = {"disk",     "memory", "load",      "writable",
                                               "command",  "tcp",    "http",      "sqlite",
                                               "postgres", "redis",  "file_fresh"};

/* Keys each check type accepts besides the common ones. */
static const char *const common_keys[] = {"name", "type", "critical", "timeout", "interval", NULL};
static const char *const ck_keys[CK_COUNT][6] = {
    [CK_DISK] = {"path", "warning_free_percent", "critical_free_percent", NULL},
    [CK_MEMORY] = {"warning_available_percent", "critical_available_percent", "max_rss", NULL},
    [CK_LOAD] = {"warning_per_cpu", "critical_per_cpu", NULL},
    [CK_WRITABLE] = {"path", NULL},
    [CK_COMMAND] = {"command", NULL},
    [CK_TCP] = {"address", NULL},
    [CK_HTTP] = {"url", "expect_status", "headers", NULL},
    [CK_SQLITE] = {"path", "query", NULL},
    [CK_POSTGRES] = {"dsn", "dsn_file", "query", NULL},
    [CK_REDIS] = {"address", "password", "password_file", NULL},
    [CK_FILE_FRESH] = {"path", "max_age", NULL},
};

typedef struct cfg_check {
    ck_type type;
    char *name;
    double timeout, interval;
    bool informational;
    char *path, *url, *dsn, *query, *host, *password;
    int port;
    int expect_status;
    double warn, crit, max_age;
    uint64_t max_rss;
    char **argv;    /* NULL-terminated */
    char **headers; /* http: name/value pairs (values are secrets) */
    size_t nheaders;
} cfg_check;

struct sonde_config {
    char *listen, *route_prefix, *api_key, *tls_cert, *tls_key, *basic_user, *basic_pass;
    char *disk_path;
    unsigned threads, max_conn, max_conn_client;
    size_t max_header, max_response;
    double idle, req_timeout, rate, burst;
    char *service_name, *service_version, *service_build;
    char **info; /* pairs */
    size_t info_count;
    bool host_enabled;
    char **fs_paths;
    size_t fs_count;
    cfg_check *checks;
    size_t nchecks;
    /* alerts: options whose strings the configuration owns */
    sonde_rule_opts *rules;
    size_t nrules;
    sonde_notifier_opts *notifiers;
    size_t nnotifiers;
    /* sql: options whose strings the configuration owns */
    sonde_sql_db_opts *sql_dbs;
    size_t nsql_dbs;
    sonde_sql_query_opts *sql_queries;
    size_t nsql_queries;
    /* remote_write: options whose strings and arrays the configuration owns */
    sonde_remote_write_opts *rws;
    size_t nrws;
    char digest[40];
};

typedef struct ctx {
    yaml_document_t *doc;
    sonde_config *cfg;
    sonde_config_error *errs;
    size_t max, n;
    bool oom;
    /* Names of every check seen, valid or not, for duplicate detection. */
    const char *seen[MAX_CHECKS];
    size_t nseen;
} ctx;

static void err_at(ctx *c, const yaml_node_t *node, const char *fmt, ...) SONDE_PRINTF(3, 4);

static void err_at(ctx *c, const yaml_node_t *node, const char *fmt, ...)
{
    if (c->n < c->max) {
        sonde_config_error *e = &c->errs[c->n];
        e->line = node ? (int)node->start_mark.line + 1 : 0;
        e->column = node ? (int)node->start_mark.column + 1 : 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    c->n++;
}

static yaml_node_t *node_at(ctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

/* ---- scalars ---- */

static const char *scalar(ctx *c, yaml_node_t *n, const char *what)
{
    if (!n || n->type != YAML_SCALAR_NODE) {
        err_at(c, n, "%s must be a single value, not a %s", what,
               n && n->type == YAML_MAPPING_NODE ? "mapping" : "list");
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* Expand ${VAR} (and $$ for a literal $) into a new string; NULL on error
 * (reported) or no memory. As in POSIX shells, ${VAR:-default} gives
 * default when VAR is unset or empty, and ${VAR:?message} is an error
 * reporting message (naming VAR) when VAR is unset or empty. The default
 * and the message are taken literally (no nested references). */
static char *expand(ctx *c, yaml_node_t *n, const char *s)
{
    sonde_buf b = {0};
    b.max = MAX_STRING;
    int rc = sonde__buf_reserve(&b, 1);
    if (!rc)
        b.data[0] = '\0'; /* reserve does not terminate; "" must come out as "" */
    for (const char *p = s; *p && !rc;) {
        if (p[0] == '$' && p[1] == '$') {
            rc = sonde__buf_putc(&b, '$');
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            size_t inner = end ? (size_t)(end - p - 2) : 0;
            const char *op = end ? memchr(p + 2, ':', inner) : NULL;
            size_t nl = op ? (size_t)(op - p - 2) : inner;
            if (!end || nl == 0 || nl > 128) {
                err_at(c, n, "unterminated or empty ${...} reference (write $$ for a literal $)");
                sonde_buf_free(&b);
                return NULL;
            }
            char name[130];
            memcpy(name, p + 2, nl);
            name[nl] = '\0';
            const char *arg = op ? op + 2 : NULL;
            size_t arg_len = op ? (size_t)(end - op - 2) : 0;
            if (op && op + 1 < end && op[1] != '-' && op[1] != '?') {
                err_at(c, n, "${%s:%c...}: only ${VAR:-default} and ${VAR:?message} are supported",
                       name, op[1]);
                sonde_buf_free(&b);
                return NULL;
            }
            if (op && op + 1 >= end) {
                err_at(c, n, "${%s:}: expected ${VAR:-default} or ${VAR:?message}", name);
                sonde_buf_free(&b);
                return NULL;
            }
            const char *v = getenv(name);
            bool empty = !v || !*v;
            if (op && op[1] == '-' && empty) {
                rc = sonde__buf_append(&b, arg, arg_len);
            } else if (op && op[1] == '?' && empty) {
                err_at(c, n, "environment variable %s is not set: %.*s", name, (int)arg_len, arg);
                sonde_buf_free(&b);
                return NULL;
            } else if (!v) {
                err_at(c, n, "environment variable %s is not set", name);
                sonde_buf_free(&b);
                return NULL;
            } else {
                rc = sonde__buf_puts(&b, v);
            }
            p = end + 1;
        } else {
            rc = sonde__buf_putc(&b, *p++);
        }
    }
    if (rc) {
        if (rc == SONDE_ETOOBIG)
            err_at(c, n, "value longer than %d bytes", MAX_STRING);
        else
            c->oom = true;
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static bool get_str(ctx *c, yaml_node_t *n, const char *what, char **out)
{
    const char *s = scalar(c, n, what);
    if (!s)
        return false;
    char *v = expand(c, n, s);
    if (!v)
        return false;
    sonde__free(*out);
    *out = v;
    return true;
}

/* Read a secret from a file: the whole file minus trailing newlines. */
static bool get_file_secret(ctx *c, yaml_node_t *n, const char *what, char **out)
{
    char *path = NULL;
    if (!get_str(c, n, what, &path))
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_at(c, n, "cannot read %s %s: %s", what, path, strerror(errno));
        sonde__free(path);
        return false;
    }
    char buf[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0 && len < sizeof buf - 1)
        len += (size_t)r;
    close(fd);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    bool ok = true;
    if (len == 0) {
        err_at(c, n, "%s %s is empty", what, path);
        ok = false;
    } else {
        sonde__free(*out);
        *out = sonde__strdup(buf);
        if (!*out)
            c->oom = true;
    }
    memset(buf, 0, sizeof buf);
    sonde__free(path);
    return ok;
}

static bool get_bool(ctx *c, yaml_node_t *n, const char *what, bool *out)
{
    const char *s = scalar(c, n, what);
    if (!s)
        return false;
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    err_at(c, n, "%s must be true or false, not \"%.40s\"", what, s);
    return false;
}

static bool parse_number(const char *s, double *out, const char **rest)
{
    char *end = NULL;
    errno = 0;
    double v = sonde__strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    *rest = end;
    return true;
}

static bool get_num(ctx *c, yaml_node_t *n, const char *what, double lo, double hi, double *out)
{
    const char *s = scalar(c, n, what);
    if (!s)
        return false;
    double v;
    const char *rest;
    if (!parse_number(s, &v, &rest) || *rest) {
        err_at(c, n, "%s must be a number, not \"%.40s\"", what, s);
        return false;
    }
    if (v < lo || v > hi) {
        err_at(c, n, "%s must be between %g and %g, not %g", what, lo, hi, v);
        return false;
    }
    *out = v;
    return true;
}

static bool get_uint(ctx *c, yaml_node_t *n, const char *what, double lo, double hi, unsigned *out)
{
    double v;
    if (!get_num(c, n, what, lo, hi, &v))
        return false;
    if (v != floor(v)) {
        err_at(c, n, "%s must be a whole number, not %g", what, v);
        return false;
    }
    *out = (unsigned)v;
    return true;
}

/* "30s", "500ms", "2m", "1h", "1.5" (seconds). */
static bool get_duration(ctx *c, yaml_node_t *n, const char *what, double lo, double hi,
                         double *out)
{
    const char *s = scalar(c, n, what);
    if (!s)
        return false;
    double v;
    const char *u;
    if (!parse_number(s, &v, &u)) {
        err_at(c, n, "%s must be a duration like 30s, 500ms, 2m or 1h, not \"%.40s\"", what, s);
        return false;
    }
    double mult = 0;
    if (*u == '\0' || strcmp(u, "s") == 0)
        mult = 1;
    else if (strcmp(u, "ms") == 0)
        mult = 0.001;
    else if (strcmp(u, "m") == 0)
        mult = 60;
    else if (strcmp(u, "h") == 0)
        mult = 3600;
    else if (strcmp(u, "d") == 0)
        mult = 86400;
    if (mult == 0) {
        err_at(c, n, "%s: unknown unit \"%.10s\" (use ms, s, m, h or d)", what, u);
        return false;
    }
    v *= mult;
    if (v < lo || v > hi) {
        err_at(c, n, "%s must be between %gs and %gs, not %gs", what, lo, hi, v);
        return false;
    }
    *out = v;
    return true;
}

/* "512MiB", "1GB", "4096" (bytes). */
static bool get_size(ctx *c, yaml_node_t *n, const char *what, uint64_t *out)
{
    const char *s = scalar(c, n, what);
    if (!s)
        return false;
    double v;
    const char *u;
    if (!parse_number(s, &v, &u) || v < 0) {
        err_at(c, n, "%s must be a size like 512MiB or 4096, not \"%.40s\"", what, s);
        return false;
    }
    static const struct {
        const char *u;
        double m;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KiB", 1024},
                 {"MiB", 1048576},
                 {"GiB", 1073741824.0},
                 {"TiB", 1099511627776.0},
                 {"KB", 1e3},
                 {"MB", 1e6},
                 {"GB", 1e9},
                 {"TB", 1e12}};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(units); i++) {
        if (strcmp(u, units[i].u) == 0) {
            double b = v * units[i].m;
            if (b > 1.8e19) {
                err_at(c, n, "%s is too large", what);
                return false;
            }
            *out = (uint64_t)b;
            return true;
        }
    }
    err_at(c, n, "%s: unknown unit \"%.10s\" (use B, KiB, MiB, GiB, KB, MB, GB)", what, u);
    return false;
}

/* ---- mappings ---- */

/* Levenshtein distance, capped: for "did you mean" hints. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int m = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < m)
                m = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < m)
                m = d[i - 1][j - 1] + cost;
            d[i][j] = m;
        }
    return d[la][lb];
}

static void unknown_key(ctx *c, yaml_node_t *k, const char *key, const char *where,
                        const char *const *allowed1, const char *const *allowed2)
{
    const char *best = NULL;
    int bd = 3;
    for (int pass = 0; pass < 2; pass++) {
        const char *const *list = pass ? allowed2 : allowed1;
        for (size_t i = 0; list && list[i]; i++) {
            int d = edit_distance(key, list[i]);
            if (d < bd) {
                bd = d;
                best = list[i];
            }
        }
    }
    if (best)
        err_at(c, k, "unknown key \"%.60s\" in %s (did you mean \"%s\"?)", key, where, best);
    else
        err_at(c, k, "unknown key \"%.60s\" in %s", key, where);
}

typedef struct kv {
    yaml_node_t *key, *value;
    const char *name;
} kv;

/*
 * Collect a mapping's pairs into a new array *out (free with sonde__free);
 * reports non-scalar keys and duplicates. Returns the count, or -1 when n is
 * not a mapping (or on no memory, flagged in c->oom).
 */
static int pairs(ctx *c, yaml_node_t *n, const char *what, kv **out)
{
    *out = NULL;
    if (!n || n->type != YAML_MAPPING_NODE) {
        err_at(c, n, "%s must be a mapping of key: value", what);
        return -1;
    }
    size_t len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    kv *arr = sonde__calloc(len ? len : 1, sizeof *arr);
    if (!arr) {
        c->oom = true;
        return -1;
    }
    int cnt = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        if (!k || k->type != YAML_SCALAR_NODE) {
            err_at(c, k, "keys in %s must be plain names", what);
            continue;
        }
        const char *name = (const char *)k->data.scalar.value;
        bool dup = false;
        for (int i = 0; i < cnt && !dup; i++)
            if (strcmp(arr[i].name, name) == 0) {
                err_at(c, k, "duplicate key \"%.60s\" in %s (first at line %d)", name, what,
                       (int)arr[i].key->start_mark.line + 1);
                dup = true;
            }
        if (!dup)
            arr[cnt++] = (kv){k, v, name};
    }
    *out = arr;
    return cnt;
}

static bool in_list(const char *key, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

/* ---- sections ---- */

static void parse_limits(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"max_connections",
                                       "max_connections_per_client",
                                       "max_header_bytes",
                                       "idle_timeout",
                                       "request_timeout",
                                       "rate_limit",
                                       "rate_limit_burst",
                                       "max_response_bytes",
                                       NULL};
    kv *p = NULL;
    int np = pairs(c, n, "server.limits", &p);
    sonde_config *cfg = c->cfg;
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        uint64_t sz;
        if (strcmp(k, "max_connections") == 0)
            get_uint(c, v, "max_connections", 1, 100000, &cfg->max_conn);
        else if (strcmp(k, "max_connections_per_client") == 0)
            get_uint(c, v, "max_connections_per_client", 1, 100000, &cfg->max_conn_client);
        else if (strcmp(k, "max_header_bytes") == 0) {
            if (get_size(c, v, "max_header_bytes", &sz)) {
                if (sz < 2048 || sz > 1048576)
                    err_at(c, v, "max_header_bytes must be between 2048 and 1048576");
                else
                    cfg->max_header = (size_t)sz;
            }
        } else if (strcmp(k, "max_response_bytes") == 0) {
            if (get_size(c, v, "max_response_bytes", &sz)) {
                if (sz < 4096)
                    err_at(c, v, "max_response_bytes must be at least 4096");
                else
                    cfg->max_response = (size_t)sz;
            }
        } else if (strcmp(k, "idle_timeout") == 0)
            get_duration(c, v, "idle_timeout", 1, 86400, &cfg->idle);
        else if (strcmp(k, "request_timeout") == 0)
            get_duration(c, v, "request_timeout", 0.1, 86400, &cfg->req_timeout);
        else if (strcmp(k, "rate_limit") == 0) {
            const char *s = scalar(c, v, "rate_limit");
            if (s && (strcmp(s, "off") == 0 || strcmp(s, "false") == 0))
                cfg->rate = -1;
            else if (s)
                get_num(c, v, "rate_limit (requests per second, or off)", 0.001, 1e9, &cfg->rate);
        } else if (strcmp(k, "rate_limit_burst") == 0)
            get_num(c, v, "rate_limit_burst", 1, 1e9, &cfg->burst);
        else
            unknown_key(c, p[i].key, k, "server.limits", keys, NULL);
    }
    sonde__free(p);
}

static void parse_server(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {
        "listen", "route_prefix", "api_key", "api_key_file", "threads",
        "tls",    "basic_auth",   "limits",  "disk_path",    NULL};
    kv *p = NULL;
    int np = pairs(c, n, "server", &p);
    sonde_config *cfg = c->cfg;
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (strcmp(k, "listen") == 0) {
            get_str(c, v, "server.listen", &cfg->listen);
        } else if (strcmp(k, "route_prefix") == 0) {
            if (get_str(c, v, "server.route_prefix", &cfg->route_prefix)) {
                const char *r = cfg->route_prefix;
                if (*r && (r[0] != '/' || r[strlen(r) - 1] == '/' || strpbrk(r, " ?#%")))
                    err_at(c, v,
                           "server.route_prefix must start with / and not end with / "
                           "(like /api/v1)");
            }
        } else if (strcmp(k, "api_key") == 0) {
            get_str(c, v, "server.api_key", &cfg->api_key);
        } else if (strcmp(k, "api_key_file") == 0) {
            get_file_secret(c, v, "server.api_key_file", &cfg->api_key);
        } else if (strcmp(k, "threads") == 0) {
            get_uint(c, v, "server.threads", 1, 64, &cfg->threads);
        } else if (strcmp(k, "disk_path") == 0) {
            get_str(c, v, "server.disk_path", &cfg->disk_path);
        } else if (strcmp(k, "tls") == 0) {
            kv *t = NULL;
            int nt = pairs(c, v, "server.tls", &t);
            static const char *const tk[] = {"cert_file", "key_file", NULL};
            for (int j = 0; j < nt; j++) {
                if (strcmp(t[j].name, "cert_file") == 0) {
                    if (get_str(c, t[j].value, "server.tls.cert_file", &cfg->tls_cert) &&
                        access(cfg->tls_cert, R_OK) != 0)
                        err_at(c, t[j].value, "cannot read certificate file %s: %s", cfg->tls_cert,
                               strerror(errno));
                } else if (strcmp(t[j].name, "key_file") == 0) {
                    if (get_str(c, t[j].value, "server.tls.key_file", &cfg->tls_key) &&
                        access(cfg->tls_key, R_OK) != 0)
                        err_at(c, t[j].value, "cannot read key file %s: %s", cfg->tls_key,
                               strerror(errno));
                } else {
                    unknown_key(c, t[j].key, t[j].name, "server.tls", tk, NULL);
                }
            }
            if (nt >= 0 && (!cfg->tls_cert) != (!cfg->tls_key))
                err_at(c, v, "server.tls needs both cert_file and key_file");
            sonde__free(t);
        } else if (strcmp(k, "basic_auth") == 0) {
            kv *t = NULL;
            int nt = pairs(c, v, "server.basic_auth", &t);
            static const char *const bk[] = {"username", "password", "password_file", NULL};
            for (int j = 0; j < nt; j++) {
                if (strcmp(t[j].name, "username") == 0)
                    get_str(c, t[j].value, "server.basic_auth.username", &cfg->basic_user);
                else if (strcmp(t[j].name, "password") == 0)
                    get_str(c, t[j].value, "server.basic_auth.password", &cfg->basic_pass);
                else if (strcmp(t[j].name, "password_file") == 0)
                    get_file_secret(c, t[j].value, "server.basic_auth.password_file",
                                    &cfg->basic_pass);
                else
                    unknown_key(c, t[j].key, t[j].name, "server.basic_auth", bk, NULL);
            }
            if (nt >= 0 && (!cfg->basic_user) != (!cfg->basic_pass))
                err_at(c, v, "server.basic_auth needs both username and password");
            sonde__free(t);
        } else if (strcmp(k, "limits") == 0) {
            parse_limits(c, v);
        } else {
            unknown_key(c, p[i].key, k, "server", keys, NULL);
        }
    }
    sonde__free(p);
}

static void parse_service(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"name", "version", "build", NULL};
    kv *p = NULL;
    int np = pairs(c, n, "service", &p);
    for (int i = 0; i < np; i++) {
        if (strcmp(p[i].name, "name") == 0)
            get_str(c, p[i].value, "service.name", &c->cfg->service_name);
        else if (strcmp(p[i].name, "version") == 0)
            get_str(c, p[i].value, "service.version", &c->cfg->service_version);
        else if (strcmp(p[i].name, "build") == 0)
            get_str(c, p[i].value, "service.build", &c->cfg->service_build);
        else
            unknown_key(c, p[i].key, p[i].name, "service", keys, NULL);
    }
    sonde__free(p);
}

static void parse_info(ctx *c, yaml_node_t *n)
{
    kv *p = NULL;
    int np = pairs(c, n, "info", &p);
    sonde_config *cfg = c->cfg;
    if (np > 0)
        cfg->info = sonde__calloc(2 * (size_t)np, sizeof *cfg->info);
    if (np > 0 && !cfg->info)
        c->oom = true;
    for (int i = 0; np > 0 && cfg->info && i < np; i++) {
        char *v = NULL;
        if (!get_str(c, p[i].value, "an info value", &v))
            continue;
        char *k = sonde__strdup(p[i].name);
        if (!k) {
            sonde__free(v);
            c->oom = true;
            break;
        }
        cfg->info[2 * cfg->info_count] = k;
        cfg->info[2 * cfg->info_count + 1] = v;
        cfg->info_count++;
    }
    sonde__free(p);
}

static char **get_str_list(ctx *c, yaml_node_t *n, const char *what, size_t *count)
{
    *count = 0;
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        err_at(c, n, "%s must be a list", what);
        return NULL;
    }
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len == 0) {
        err_at(c, n, "%s must not be empty", what);
        return NULL;
    }
    if (len > MAX_LIST) {
        err_at(c, n, "%s has more than %d entries", what, MAX_LIST);
        return NULL;
    }
    char **out = sonde__calloc(len + 1, sizeof *out);
    if (!out) {
        c->oom = true;
        return NULL;
    }
    bool ok = true;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = node_at(c, n->data.sequence.items.start[i]);
        if (!get_str(c, it, what, &out[i]))
            ok = false;
    }
    if (!ok) {
        for (size_t i = 0; i < len; i++)
            sonde__free(out[i]);
        sonde__free(out);
        return NULL;
    }
    *count = len;
    return out;
}

static void parse_host_metrics(ctx *c, yaml_node_t *n)
{
    if (n && n->type == YAML_SCALAR_NODE) {
        get_bool(c, n, "host_metrics", &c->cfg->host_enabled);
        return;
    }
    static const char *const keys[] = {"enabled", "filesystems", NULL};
    kv *p = NULL;
    int np = pairs(c, n, "host_metrics", &p);
    for (int i = 0; i < np; i++) {
        if (strcmp(p[i].name, "enabled") == 0)
            get_bool(c, p[i].value, "host_metrics.enabled", &c->cfg->host_enabled);
        else if (strcmp(p[i].name, "filesystems") == 0) {
            size_t cnt;
            char **l = get_str_list(c, p[i].value, "host_metrics.filesystems", &cnt);
            if (l && cnt > 16) {
                err_at(c, p[i].value, "host_metrics.filesystems has more than 16 entries");
                for (size_t j = 0; j < cnt; j++)
                    sonde__free(l[j]);
                sonde__free(l);
            } else if (l) {
                c->cfg->fs_paths = l;
                c->cfg->fs_count = cnt;
            }
        } else
            unknown_key(c, p[i].key, p[i].name, "host_metrics", keys, NULL);
    }
    sonde__free(p);
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == ':' || *p == '-'))
            return false;
    return true;
}

/* host:port, [v6]:port */
static bool split_address(ctx *c, yaml_node_t *n, const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1]) {
        err_at(c, n, "address must be host:port, not \"%.60s\"", s);
        return false;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535) {
        err_at(c, n, "port in \"%.60s\" must be 1 to 65535", s);
        return false;
    }
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    *host = sonde__strndup(h, hl);
    if (!*host)
        c->oom = true;
    *port = (int)p;
    return *host != NULL;
}

static void check_free(cfg_check *k)
{
    for (size_t i = 0; k->headers && i < 2 * k->nheaders; i++) {
        memset(k->headers[i], 0, strlen(k->headers[i]));
        sonde__free(k->headers[i]);
    }
    sonde__free(k->headers);
    sonde__free(k->name);
    sonde__free(k->path);
    sonde__free(k->url);
    if (k->dsn) {
        memset(k->dsn, 0, strlen(k->dsn));
        sonde__free(k->dsn);
    }
    sonde__free(k->query);
    sonde__free(k->host);
    if (k->password) {
        memset(k->password, 0, strlen(k->password));
        sonde__free(k->password);
    }
    if (k->argv) {
        for (char **a = k->argv; *a; a++)
            sonde__free(*a);
        sonde__free(k->argv);
    }
}

static bool get_pairs(ctx *c, yaml_node_t *n, const char *what, bool labels, char ***out,
                      size_t *count);

static void parse_check(ctx *c, yaml_node_t *n, size_t index)
{
    char where[96];
    snprintf(where, sizeof where, "checks[%zu]", index);
    kv *p = NULL;
    int np = pairs(c, n, where, &p);
    if (np < 0)
        return;
    cfg_check k;
    memset(&k, 0, sizeof k);
    k.type = CK_COUNT;
    bool ok = true;
    /* Name and type first: the allowed keys depend on the type. */
    for (int i = 0; i < np; i++) {
        if (strcmp(p[i].name, "name") == 0) {
            if (get_str(c, p[i].value, "check name", &k.name) && !valid_name(k.name)) {
                err_at(c, p[i].value,
                       "check name \"%.64s\" must be 1 to 64 characters of [a-zA-Z0-9_.:-]",
                       k.name);
                ok = false;
            }
        } else if (strcmp(p[i].name, "type") == 0) {
            const char *t = scalar(c, p[i].value, "check type");
            if (t) {
                for (int j = 0; j < CK_COUNT; j++)
                    if (strcmp(t, ck_names[j]) == 0)
                        k.type = (ck_type)j;
                if (k.type == CK_COUNT) {
                    err_at(c, p[i].value,
                           "unknown check type \"%.40s\" (one of disk, memory, load, writable, "
                           "command, tcp, http, sqlite, postgres, redis, file_fresh)",
                           t);
                    ok = false;
                }
            } else {
                ok = false;
            }
        }
    }
    if (!k.name) {
        err_at(c, n, "%s has no name", where);
        ok = false;
    } else {
        snprintf(where, sizeof where, "check \"%.64s\"", k.name);
        for (size_t i = 0; i < c->nseen; i++)
            if (strcmp(c->seen[i], k.name) == 0) {
                err_at(c, n, "duplicate check name \"%.64s\"", k.name);
                ok = false;
            }
        /* The name stays alive in the YAML document for the whole walk. */
        for (int i = 0; i < np; i++)
            if (strcmp(p[i].name, "name") == 0 && p[i].value->type == YAML_SCALAR_NODE &&
                c->nseen < MAX_CHECKS)
                c->seen[c->nseen++] = (const char *)p[i].value->data.scalar.value;
    }
    bool type_seen = false;
    for (int i = 0; i < np; i++)
        if (strcmp(p[i].name, "type") == 0)
            type_seen = true;
    if (!type_seen) {
        err_at(c, n, "%s has no type", where);
        ok = false;
    }
    if (k.type == CK_COUNT) {
        check_free(&k);
        sonde__free(p);
        return;
    }
    const char *const *allowed = ck_keys[k.type];
    bool have_target = false, target_given = false;
    for (int i = 0; i < np; i++) {
        const char *key = p[i].name;
        if (strcmp(key, "path") == 0 || strcmp(key, "url") == 0 || strcmp(key, "dsn") == 0 ||
            strcmp(key, "dsn_file") == 0 || strcmp(key, "address") == 0 ||
            strcmp(key, "command") == 0)
            target_given = target_given || in_list(key, ck_keys[k.type]);
        yaml_node_t *v = p[i].value;
        if (strcmp(key, "name") == 0 || strcmp(key, "type") == 0)
            continue;
        bool r = true;
        if (strcmp(key, "critical") == 0) {
            bool crit = true;
            r = get_bool(c, v, "critical", &crit);
            k.informational = !crit;
        } else if (strcmp(key, "timeout") == 0) {
            r = get_duration(c, v, "timeout", 0.001, 3600, &k.timeout);
        } else if (strcmp(key, "interval") == 0) {
            r = get_duration(c, v, "interval", 0.01, 86400, &k.interval);
        } else if (!in_list(key, allowed)) {
            unknown_key(c, p[i].key, key, where, common_keys, allowed);
            r = false;
        } else if (strcmp(key, "path") == 0) {
            r = get_str(c, v, "path", &k.path);
            have_target = r;
        } else if (strcmp(key, "url") == 0) {
            r = get_str(c, v, "url", &k.url);
            if (r && strncmp(k.url, "http://", 7) != 0 && strncmp(k.url, "https://", 8) != 0) {
                err_at(c, v, "url must start with http:// or https://");
                r = false;
            }
            have_target = r;
        } else if (strcmp(key, "dsn") == 0) {
            r = get_str(c, v, "dsn", &k.dsn);
            have_target = r;
        } else if (strcmp(key, "dsn_file") == 0) {
            r = get_file_secret(c, v, "dsn_file", &k.dsn);
            have_target = r;
        } else if (strcmp(key, "query") == 0) {
            r = get_str(c, v, "query", &k.query);
        } else if (strcmp(key, "address") == 0) {
            char *a = NULL;
            r = get_str(c, v, "address", &a) && split_address(c, v, a, &k.host, &k.port);
            sonde__free(a);
            have_target = r;
        } else if (strcmp(key, "password") == 0) {
            r = get_str(c, v, "password", &k.password);
        } else if (strcmp(key, "password_file") == 0) {
            r = get_file_secret(c, v, "password_file", &k.password);
        } else if (strcmp(key, "command") == 0) {
            size_t cnt;
            k.argv = get_str_list(c, v, "command", &cnt);
            r = k.argv != NULL;
            have_target = r;
        } else if (strcmp(key, "headers") == 0) {
            r = get_pairs(c, v, "headers", false, &k.headers, &k.nheaders);
        } else if (strcmp(key, "expect_status") == 0) {
            unsigned st = 0;
            r = get_uint(c, v, "expect_status", 100, 599, &st);
            k.expect_status = (int)st;
        } else if (strcmp(key, "max_age") == 0) {
            r = get_duration(c, v, "max_age", 0.001, 31536000, &k.max_age);
        } else if (strcmp(key, "max_rss") == 0) {
            r = get_size(c, v, "max_rss", &k.max_rss);
        } else if (strstr(key, "percent")) {
            r = get_num(c, v, key, 0, 100, strncmp(key, "warning", 7) == 0 ? &k.warn : &k.crit);
        } else if (strstr(key, "per_cpu")) {
            r = get_num(c, v, key, 0, 1e6, strncmp(key, "warning", 7) == 0 ? &k.warn : &k.crit);
        }
        ok = ok && r;
    }
    /* Required targets. */
    static const char *const need[CK_COUNT] = {
        [CK_DISK] = "path",    [CK_WRITABLE] = "path", [CK_COMMAND] = "command",
        [CK_TCP] = "address",  [CK_HTTP] = "url",      [CK_SQLITE] = "path",
        [CK_POSTGRES] = "dsn", [CK_REDIS] = "address", [CK_FILE_FRESH] = "path"};
    if (need[k.type] && !target_given) {
        err_at(c, n, "%s (type %s) needs %s", where, ck_names[k.type], need[k.type]);
        ok = false;
    }
    ok = ok && (have_target || !need[k.type]);
    bool age_given = false;
    for (int i = 0; i < np; i++)
        age_given = age_given || strcmp(p[i].name, "max_age") == 0;
    if (k.type == CK_FILE_FRESH && !age_given) {
        err_at(c, n, "%s (type file_fresh) needs max_age", where);
        ok = false;
    }
    if ((k.type == CK_DISK || k.type == CK_MEMORY || k.type == CK_LOAD) && k.warn && k.crit &&
        ((k.type == CK_LOAD) ? k.warn > k.crit : k.warn < k.crit) && ok) {
        err_at(c, n, "%s: the warning threshold must be less severe than the critical one", where);
        ok = false;
    }
    if (!ok || c->cfg->nchecks >= MAX_CHECKS) {
        if (ok)
            err_at(c, n, "more than %d checks", MAX_CHECKS);
        check_free(&k);
        sonde__free(p);
        return;
    }
    c->cfg->checks[c->cfg->nchecks++] = k;
    sonde__free(p);
}

static void parse_checks(ctx *c, yaml_node_t *n)
{
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        err_at(c, n, "checks must be a list of checks");
        return;
    }
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    size_t cap = len < MAX_CHECKS ? len : MAX_CHECKS;
    c->cfg->checks = sonde__calloc(cap ? cap : 1, sizeof *c->cfg->checks);
    if (!c->cfg->checks) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (i >= MAX_CHECKS) {
            err_at(c, node_at(c, n->data.sequence.items.start[i]), "more than %d checks",
                   MAX_CHECKS);
            break;
        }
        parse_check(c, node_at(c, n->data.sequence.items.start[i]), i);
    }
}

/* ---- alerts ---- */

static void rule_opts_free(sonde_rule_opts *r)
{
    char *strs[] = {(char *)r->name,       (char *)r->type,        (char *)r->operation,
                    (char *)r->summary,    (char *)r->description, (char *)r->metric,
                    (char *)r->denominator};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(strs); i++)
        sonde__free(strs[i]);
    for (size_t i = 0; i < r->by_count; i++)
        sonde__free((char *)r->by[i]);
    sonde__free((void *)r->by);
    for (size_t i = 0; i < 2 * r->label_count; i++)
        sonde__free((char *)r->labels[i]);
    sonde__free((void *)r->labels);
    memset(r, 0, sizeof *r);
}

static void notifier_opts_free(sonde_notifier_opts *o)
{
    sonde__free((char *)o->name);
    if (o->url) {
        memset((char *)o->url, 0, strlen(o->url));
        sonde__free((char *)o->url);
    }
    for (size_t i = 0; i < o->header_count; i++) {
        memset((char *)o->headers[i], 0, strlen(o->headers[i]));
        sonde__free((char *)o->headers[i]);
    }
    sonde__free((void *)o->headers);
    for (size_t i = 0; o->argv && o->argv[i]; i++)
        sonde__free((char *)o->argv[i]);
    sonde__free((void *)o->argv);
    memset(o, 0, sizeof *o);
}

static bool get_severity(ctx *c, yaml_node_t *n, const char *what, int *out)
{
    const char *s = scalar(c, n, what);
    if (!s)
        return false;
    int v = sonde_severity_parse(s);
    if (v < 0) {
        err_at(c, n, "%s must be low, medium, high or critical, not \"%.40s\"", what, s);
        return false;
    }
    *out = v;
    return true;
}

/* A mapping of name: value into pairs (names checked as label names when
 * labels is true, as header names otherwise). */
static bool get_pairs(ctx *c, yaml_node_t *n, const char *what, bool labels, char ***out,
                      size_t *count)
{
    kv *p = NULL;
    int np = pairs(c, n, what, &p);
    if (np < 0)
        return false;
    if (np > 32) {
        err_at(c, n, "%s has more than 32 entries", what);
        sonde__free(p);
        return false;
    }
    char **arr = sonde__calloc(2 * (size_t)np + 1, sizeof *arr);
    bool ok = arr != NULL;
    if (!arr)
        c->oom = true;
    size_t k = 0;
    for (int i = 0; ok && i < np; i++) {
        const char *name = p[i].name;
        if (labels && (!sonde__valid_label_name(name) || strncmp(name, "__", 2) == 0 ||
                       strcmp(name, "alertname") == 0)) {
            err_at(c, p[i].key, "\"%.60s\" is not a valid label name here", name);
            ok = false;
            break;
        }
        if (!labels && (!name[0] || strpbrk(name, " :\r\n\t"))) {
            err_at(c, p[i].key, "\"%.60s\" is not a valid header name", name);
            ok = false;
            break;
        }
        char *v = NULL;
        if (!get_str(c, p[i].value, what, &v)) {
            ok = false;
            break;
        }
        arr[k++] = sonde__strdup(name);
        arr[k++] = v;
        if (!arr[k - 2]) {
            c->oom = true;
            ok = false;
        }
    }
    sonde__free(p);
    if (!ok) {
        for (size_t i = 0; arr && i < k; i++)
            sonde__free(arr[i]);
        sonde__free(arr);
        return false;
    }
    *out = arr;
    *count = k / 2;
    return true;
}

static void parse_rule(ctx *c, yaml_node_t *n, size_t index)
{
    static const char *const keys[] = {
        "name",   "kind",    "severity",    "min_severity", "threshold", "type",     "operation",
        "window", "percent", "min_count",   "for",          "repeat",    "summary",  "description",
        "labels", "metric",  "denominator", "by",           "op",        "quantile", "interval",
        NULL};
    char where[64];
    snprintf(where, sizeof where, "alerts.rules[%zu]", index);
    kv *p = NULL;
    int np = pairs(c, n, where, &p);
    if (np < 0)
        return;
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    bool ok = true, kind_given = false;
    char **labels = NULL;
    yaml_node_t *threshold = NULL, *metric = NULL;
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        char *s = NULL;
        double d = 0;
        bool r_ok = true;
        if (strcmp(k, "name") == 0) {
            r_ok = get_str(c, v, "rule name", &s);
            r.name = s;
        } else if (strcmp(k, "kind") == 0) {
            const char *t = scalar(c, v, "rule kind");
            r.kind = t ? sonde_rule_kind_parse(t) : SONDE_EINVAL;
            if (t && r.kind < 0)
                err_at(c, v,
                       "unknown rule kind \"%.40s\" (one of errors, failure_rate, no_success, "
                       "anomaly, health, value, rate, increase, ratio, quantile)",
                       t);
            r_ok = r.kind > 0;
            if (!r_ok)
                r.kind = 0;
            kind_given = true;
        } else if (strcmp(k, "severity") == 0) {
            r_ok = get_severity(c, v, "severity", &r.severity);
        } else if (strcmp(k, "min_severity") == 0) {
            r_ok = get_severity(c, v, "min_severity", &r.min_severity);
        } else if (strcmp(k, "threshold") == 0) {
            threshold = v; /* an error count or a metric value: after the kind */
        } else if (strcmp(k, "type") == 0) {
            r_ok = get_str(c, v, "type", &s);
            r.type = s;
        } else if (strcmp(k, "operation") == 0) {
            r_ok = get_str(c, v, "operation", &s);
            r.operation = s;
        } else if (strcmp(k, "window") == 0) {
            r_ok = get_duration(c, v, "window", 1, 2592000, &r.window_seconds);
        } else if (strcmp(k, "percent") == 0) {
            r_ok = get_num(c, v, "percent", 0.000001, 100, &r.percent);
        } else if (strcmp(k, "min_count") == 0) {
            r_ok = get_num(c, v, "min_count", 0, 1e12, &d);
            r.min_count = (uint64_t)d;
        } else if (strcmp(k, "for") == 0) {
            r_ok = get_duration(c, v, "for", 0, 2592000, &r.for_seconds);
        } else if (strcmp(k, "repeat") == 0) {
            const char *t = scalar(c, v, "repeat");
            if (t && strcmp(t, "never") == 0)
                r.repeat_seconds = -1;
            else
                r_ok = get_duration(c, v, "repeat (a duration, or never)", 1, 2592000,
                                    &r.repeat_seconds);
        } else if (strcmp(k, "summary") == 0) {
            r_ok = get_str(c, v, "summary", &s);
            r.summary = s;
        } else if (strcmp(k, "description") == 0) {
            r_ok = get_str(c, v, "description", &s);
            r.description = s;
        } else if (strcmp(k, "labels") == 0) {
            r_ok = get_pairs(c, v, "labels", true, &labels, &r.label_count);
            r.labels = (const char *const *)labels;
        } else if (strcmp(k, "metric") == 0 || strcmp(k, "denominator") == 0) {
            /* A selector: checked here so that the error points at it. */
            r_ok = get_str(c, v, k, &s);
            if (k[0] == 'm')
                r.metric = s, metric = v;
            else
                r.denominator = s;
            if (r_ok && sonde_rule_selector_check(s) != SONDE_OK) {
                err_at(c, v, "%s: %s", k, sonde_last_error());
                r_ok = false;
            }
        } else if (strcmp(k, "by") == 0) {
            size_t nby = 0;
            char **by = get_str_list(c, v, "by", &nby);
            r.by = (const char *const *)by;
            r.by_count = nby;
            r_ok = by != NULL;
        } else if (strcmp(k, "op") == 0) {
            const char *t = scalar(c, v, "op");
            r.op = t ? sonde_rule_op_parse(t) : SONDE_EINVAL;
            if (t && r.op < 0)
                err_at(c, v, "unknown op \"%.20s\" (one of >, >=, <, <=, ==, !=; quote them)", t);
            r_ok = r.op > 0;
            if (!r_ok)
                r.op = 0;
        } else if (strcmp(k, "quantile") == 0) {
            r_ok = get_num(c, v, "quantile", 0.000001, 1, &r.quantile);
        } else if (strcmp(k, "interval") == 0) {
            r_ok = get_duration(c, v, "interval", 0, 3600, &r.interval_seconds);
        } else {
            unknown_key(c, p[i].key, k, where, keys, NULL);
            r_ok = false;
        }
        ok = ok && r_ok;
    }
    sonde__free(p);
    if (threshold && (r.kind >= SONDE_RULE_VALUE && r.kind <= SONDE_RULE_QUANTILE)) {
        ok = get_num(c, threshold, "threshold", -1e300, 1e300, &r.threshold_value) && ok;
    } else if (threshold) {
        unsigned u = 0;
        ok = get_uint(c, threshold, "threshold", 1, 100000, &u) && ok;
        r.threshold = u;
    }
    if (ok && (r.kind >= SONDE_RULE_VALUE && r.kind <= SONDE_RULE_QUANTILE) && !metric) {
        err_at(c, n, "%s (%s) has no metric", where, sonde_rule_kind_name(r.kind));
        ok = false;
    }
    if (!r.name) {
        err_at(c, n, "%s has no name", where);
        ok = false;
    }
    if (r.kind == 0) {
        if (!kind_given)
            err_at(c, n, "%s has no kind", where);
        ok = false;
    }
    if (ok) {
        for (size_t i = 0; i < c->cfg->nrules; i++)
            if (strcmp(c->cfg->rules[i].name, r.name) == 0) {
                err_at(c, n, "duplicate rule name \"%.64s\"", r.name);
                ok = false;
            }
    }
    /* Everything else as the library checks it. */
    if (ok && sonde_rule_opts_check(&r) != SONDE_OK) {
        err_at(c, n, "%s", sonde_last_error());
        ok = false;
    }
    if (!ok || c->cfg->nrules >= SONDE_ALERTS_MAX_RULES) {
        if (ok)
            err_at(c, n, "more than %d rules", SONDE_ALERTS_MAX_RULES);
        rule_opts_free(&r);
        return;
    }
    c->cfg->rules[c->cfg->nrules++] = r;
}

static void parse_notifier(ctx *c, yaml_node_t *n, size_t index)
{
    static const char *const keys[] = {
        "name",          "kind",         "url",           "url_file", "headers",
        "command",       "min_severity", "send_resolved", "timeout",  "max_attempts",
        "retry_initial", "retry_max",    "queue_size",    "resend",   NULL};
    char where[64];
    snprintf(where, sizeof where, "alerts.notifiers[%zu]", index);
    kv *p = NULL;
    int np = pairs(c, n, where, &p);
    if (np < 0)
        return;
    sonde_notifier_opts o;
    sonde_notifier_opts_init(&o);
    bool ok = true, kind_given = false;
    char **hdr_pairs = NULL;
    size_t nhdr = 0;
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        char *s = NULL;
        unsigned u = 0;
        bool r_ok = true;
        if (strcmp(k, "name") == 0) {
            r_ok = get_str(c, v, "notifier name", &s);
            o.name = s;
        } else if (strcmp(k, "kind") == 0) {
            const char *t = scalar(c, v, "notifier kind");
            o.kind = t ? sonde_notifier_kind_parse(t) : SONDE_EINVAL;
            if (t && o.kind < 0)
                err_at(c, v,
                       "unknown notifier kind \"%.40s\" (one of log, webhook, slack, "
                       "alertmanager, command)",
                       t);
            r_ok = o.kind > 0;
            if (!r_ok)
                o.kind = 0;
            kind_given = true;
        } else if (strcmp(k, "url") == 0 || strcmp(k, "url_file") == 0) {
            s = (char *)o.url;
            r_ok = k[3] ? get_file_secret(c, v, "url_file", &s) : get_str(c, v, "url", &s);
            o.url = s;
        } else if (strcmp(k, "headers") == 0) {
            r_ok = get_pairs(c, v, "headers", false, &hdr_pairs, &nhdr);
        } else if (strcmp(k, "command") == 0) {
            size_t cnt;
            char **argv = get_str_list(c, v, "command", &cnt);
            o.argv = (const char *const *)argv;
            r_ok = argv != NULL;
        } else if (strcmp(k, "min_severity") == 0) {
            r_ok = get_severity(c, v, "min_severity", &o.min_severity);
        } else if (strcmp(k, "send_resolved") == 0) {
            bool b = true;
            r_ok = get_bool(c, v, "send_resolved", &b);
            o.no_resolved = !b;
        } else if (strcmp(k, "timeout") == 0) {
            r_ok = get_duration(c, v, "timeout", 0.01, 300, &o.timeout_seconds);
        } else if (strcmp(k, "max_attempts") == 0) {
            r_ok = get_uint(c, v, "max_attempts", 1, 100, &o.max_attempts);
        } else if (strcmp(k, "retry_initial") == 0) {
            r_ok = get_duration(c, v, "retry_initial", 0.001, 3600, &o.retry_initial_seconds);
        } else if (strcmp(k, "retry_max") == 0) {
            r_ok = get_duration(c, v, "retry_max", 0.001, 86400, &o.retry_max_seconds);
        } else if (strcmp(k, "queue_size") == 0) {
            r_ok = get_uint(c, v, "queue_size", 1, 100000, &u);
            o.queue_size = u;
        } else if (strcmp(k, "resend") == 0) {
            r_ok = get_duration(c, v, "resend", 1, 86400, &o.resend_seconds);
        } else {
            unknown_key(c, p[i].key, k, where, keys, NULL);
            r_ok = false;
        }
        ok = ok && r_ok;
    }
    sonde__free(p);
    /* Headers as "Name: value" lines. */
    if (nhdr) {
        char **lines = sonde__calloc(nhdr, sizeof *lines);
        if (!lines)
            c->oom = true;
        for (size_t i = 0; lines && i < nhdr; i++) {
            sonde_buf b = {0};
            if (sonde__buf_printf(&b, "%s: %s", hdr_pairs[2 * i], hdr_pairs[2 * i + 1]))
                c->oom = true;
            lines[i] = b.data;
        }
        o.headers = (const char *const *)lines;
        o.header_count = lines ? nhdr : 0;
    }
    for (size_t i = 0; hdr_pairs && i < 2 * nhdr; i++) {
        memset(hdr_pairs[i], 0, strlen(hdr_pairs[i]));
        sonde__free(hdr_pairs[i]);
    }
    sonde__free(hdr_pairs);
    if (o.kind == 0) {
        if (!kind_given)
            err_at(c, n, "%s has no kind", where);
        ok = false;
    }
    if (ok) {
        const char *nm = o.name ? o.name : sonde_notifier_kind_name(o.kind);
        for (size_t i = 0; i < c->cfg->nnotifiers; i++) {
            const sonde_notifier_opts *x = &c->cfg->notifiers[i];
            if (strcmp(x->name ? x->name : sonde_notifier_kind_name(x->kind), nm) == 0) {
                err_at(c, n, "duplicate notifier name \"%.64s\"", nm);
                ok = false;
            }
        }
    }
    if (ok && sonde_notifier_opts_check(&o) != SONDE_OK) {
        err_at(c, n, "%s", sonde_last_error());
        ok = false;
    }
    if (!ok || c->cfg->nnotifiers >= SONDE_ALERTS_MAX_NOTIFIERS) {
        if (ok)
            err_at(c, n, "more than %d notifiers", SONDE_ALERTS_MAX_NOTIFIERS);
        notifier_opts_free(&o);
        return;
    }
    c->cfg->notifiers[c->cfg->nnotifiers++] = o;
}

static void parse_alerts(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"rules", "notifiers", NULL};
    kv *p = NULL;
    int np = pairs(c, n, "alerts", &p);
    for (int i = 0; i < np; i++) {
        yaml_node_t *v = p[i].value;
        bool rules = strcmp(p[i].name, "rules") == 0;
        if (!rules && strcmp(p[i].name, "notifiers") != 0) {
            unknown_key(c, p[i].key, p[i].name, "alerts", keys, NULL);
            continue;
        }
        if (!v || v->type != YAML_SEQUENCE_NODE) {
            err_at(c, v, "alerts.%s must be a list", p[i].name);
            continue;
        }
        size_t len = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        size_t max = rules ? SONDE_ALERTS_MAX_RULES : SONDE_ALERTS_MAX_NOTIFIERS;
        size_t cap = len < max ? len : max;
        if ((rules && c->cfg->rules) || (!rules && c->cfg->notifiers))
            continue; /* duplicate keys are reported by pairs() */
        void *arr = sonde__calloc(cap ? cap : 1,
                                  rules ? sizeof(sonde_rule_opts) : sizeof(sonde_notifier_opts));
        if (!arr) {
            c->oom = true;
            continue;
        }
        if (rules)
            c->cfg->rules = arr;
        else
            c->cfg->notifiers = arr;
        for (size_t k = 0; k < len; k++) {
            yaml_node_t *it = node_at(c, v->data.sequence.items.start[k]);
            if (k >= max) {
                err_at(c, it, "more than %zu %s", max, p[i].name);
                break;
            }
            if (rules)
                parse_rule(c, it, k);
            else
                parse_notifier(c, it, k);
        }
    }
    sonde__free(p);
}

/* ---- sql ---- */

#define MAX_SQL 256

static void sql_metric_free(sonde_sql_metric *m)
{
    sonde__free((char *)m->name);
    sonde__free((char *)m->help);
    sonde__free((char *)m->value_column);
    for (size_t i = 0; i < m->label_count; i++)
        sonde__free((char *)m->label_columns[i]);
    sonde__free((void *)m->label_columns);
    for (size_t i = 0; i < 2 * m->const_label_count; i++)
        sonde__free((char *)m->const_labels[i]);
    sonde__free((void *)m->const_labels);
}

static void sql_query_free(sonde_sql_query_opts *q)
{
    sonde__free((char *)q->name);
    sonde__free((char *)q->database);
    sonde__free((char *)q->sql);
    for (size_t i = 0; i < q->metric_count; i++)
        sql_metric_free((sonde_sql_metric *)&q->metrics[i]);
    sonde__free((void *)q->metrics);
}

static void sql_db_free(sonde_sql_db_opts *d)
{
    char *strs[] = {(char *)d->name,        (char *)d->dsn,      (char *)d->dsn_file,
                    (char *)d->dsn_env,     (char *)d->password, (char *)d->password_file,
                    (char *)d->password_env};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(strs); i++) {
        if (strs[i] && (i == 1 || i == 4))
            memset(strs[i], 0, strlen(strs[i]));
        sonde__free(strs[i]);
    }
}

/* Set a const char * option from a string value (owned by the config). */
static bool get_cstr(ctx *c, yaml_node_t *n, const char *what, const char **out)
{
    char *v = NULL;
    if (!get_str(c, n, what, &v))
        return false;
    sonde__free((char *)*out);
    *out = v;
    return true;
}

static void parse_sql_db(ctx *c, yaml_node_t *n, sonde_sql_db_opts *d)
{
    static const char *const keys[] = {"name",          "driver",       "dsn",
                                       "dsn_file",      "dsn_env",      "password",
                                       "password_file", "password_env", "connect_timeout",
                                       "backoff",       "backoff_max",  NULL};
    kv *p = NULL;
    int np = pairs(c, n, "an sql database", &p);
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (strcmp(k, "name") == 0)
            get_cstr(c, v, "sql database name", &d->name);
        else if (strcmp(k, "driver") == 0) {
            const char *s = scalar(c, v, "driver");
            if (s && strcmp(s, "sqlite") == 0)
                d->driver = SONDE_SQL_SQLITE;
            else if (s && (strcmp(s, "postgres") == 0 || strcmp(s, "postgresql") == 0))
                d->driver = SONDE_SQL_POSTGRES;
            else if (s)
                err_at(c, v, "driver must be sqlite or postgres, not \"%.40s\"", s);
        } else if (strcmp(k, "dsn") == 0)
            get_cstr(c, v, "dsn", &d->dsn);
        else if (strcmp(k, "dsn_file") == 0)
            get_cstr(c, v, "dsn_file", &d->dsn_file);
        else if (strcmp(k, "dsn_env") == 0)
            get_cstr(c, v, "dsn_env", &d->dsn_env);
        else if (strcmp(k, "password") == 0)
            get_cstr(c, v, "password", &d->password);
        else if (strcmp(k, "password_file") == 0)
            get_cstr(c, v, "password_file", &d->password_file);
        else if (strcmp(k, "password_env") == 0)
            get_cstr(c, v, "password_env", &d->password_env);
        else if (strcmp(k, "connect_timeout") == 0)
            get_duration(c, v, "connect_timeout", 0.001, 300, &d->connect_timeout_seconds);
        else if (strcmp(k, "backoff") == 0)
            get_duration(c, v, "backoff", 0.001, 3600, &d->backoff_initial_seconds);
        else if (strcmp(k, "backoff_max") == 0)
            get_duration(c, v, "backoff_max", 0.001, 86400, &d->backoff_max_seconds);
        else
            unknown_key(c, p[i].key, k, "an sql database", keys, NULL);
    }
    sonde__free(p);
}

static void parse_sql_metric(ctx *c, yaml_node_t *n, sonde_sql_metric *m)
{
    static const char *const keys[] = {"name",   "type",         "help", "value",
                                       "labels", "const_labels", NULL};
    kv *p = NULL;
    int np = pairs(c, n, "an sql metric", &p);
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (strcmp(k, "name") == 0)
            get_cstr(c, v, "metric name", &m->name);
        else if (strcmp(k, "type") == 0) {
            const char *s = scalar(c, v, "type");
            if (s && strcmp(s, "gauge") == 0)
                m->type = SONDE_GAUGE;
            else if (s && strcmp(s, "counter") == 0)
                m->type = SONDE_COUNTER;
            else if (s)
                err_at(c, v, "type must be gauge or counter, not \"%.40s\"", s);
        } else if (strcmp(k, "help") == 0)
            get_cstr(c, v, "help", &m->help);
        else if (strcmp(k, "value") == 0)
            get_cstr(c, v, "value", &m->value_column);
        else if (strcmp(k, "labels") == 0) {
            size_t cnt = 0;
            char **l = get_str_list(c, v, "labels", &cnt);
            if (l) {
                m->label_columns = (const char *const *)l;
                m->label_count = cnt;
            }
        } else if (strcmp(k, "const_labels") == 0) {
            char **arr = NULL;
            size_t cnt = 0;
            if (get_pairs(c, v, "const_labels", true, &arr, &cnt)) {
                m->const_labels = (const char *const *)arr;
                m->const_label_count = cnt;
            }
        } else
            unknown_key(c, p[i].key, k, "an sql metric", keys, NULL);
    }
    sonde__free(p);
    if (np >= 0 && !m->name)
        err_at(c, n, "an sql metric needs a name");
    if (np >= 0 && !m->value_column)
        err_at(c, n, "sql metric \"%s\" needs value: the column holding its value",
               m->name ? m->name : "");
}

static void parse_sql_query(ctx *c, yaml_node_t *n, sonde_sql_query_opts *q)
{
    static const char *const keys[] = {"name",    "database",   "sql",     "interval", "timeout",
                                       "max_age", "max_series", "metrics", NULL};
    kv *p = NULL;
    int np = pairs(c, n, "an sql query", &p);
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (strcmp(k, "name") == 0)
            get_cstr(c, v, "query name", &q->name);
        else if (strcmp(k, "database") == 0)
            get_cstr(c, v, "database", &q->database);
        else if (strcmp(k, "sql") == 0)
            get_cstr(c, v, "sql", &q->sql);
        else if (strcmp(k, "interval") == 0)
            get_duration(c, v, "interval", 0.05, 86400, &q->interval_seconds);
        else if (strcmp(k, "timeout") == 0)
            get_duration(c, v, "timeout", 0.01, 3600, &q->timeout_seconds);
        else if (strcmp(k, "max_age") == 0)
            get_duration(c, v, "max_age", 0.05, 864000, &q->max_age_seconds);
        else if (strcmp(k, "max_series") == 0) {
            unsigned u = 0;
            if (get_uint(c, v, "max_series", 1, SONDE_DEFAULT_MAX_SERIES, &u))
                q->max_series = u;
        } else if (strcmp(k, "metrics") == 0) {
            if (!v || v->type != YAML_SEQUENCE_NODE) {
                err_at(c, v, "metrics must be a list of metrics");
                continue;
            }
            size_t len = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            if (len == 0 || len > 64) {
                err_at(c, v, "metrics must have 1 to 64 entries");
                continue;
            }
            sonde_sql_metric *ms = sonde__calloc(len, sizeof *ms);
            if (!ms) {
                c->oom = true;
                continue;
            }
            for (size_t j = 0; j < len; j++)
                parse_sql_metric(c, node_at(c, v->data.sequence.items.start[j]), &ms[j]);
            q->metrics = ms;
            q->metric_count = len;
        } else
            unknown_key(c, p[i].key, k, "an sql query", keys, NULL);
    }
    sonde__free(p);
    if (np >= 0 && !q->metric_count)
        err_at(c, n, "sql query \"%s\" needs metrics: what its rows yield", q->name ? q->name : "");
}

/* Parse the list under key into a new array of *count items. */
static yaml_node_t **sql_items(ctx *c, yaml_node_t *n, const char *what, size_t *count)
{
    *count = 0;
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        err_at(c, n, "%s must be a list", what);
        return NULL;
    }
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len > MAX_SQL) {
        err_at(c, n, "%s has more than %d entries", what, MAX_SQL);
        return NULL;
    }
    yaml_node_t **items = sonde__calloc(len ? len : 1, sizeof *items);
    if (!items) {
        c->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < len; i++)
        items[i] = node_at(c, n->data.sequence.items.start[i]);
    *count = len;
    return items;
}

static void parse_sql(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"databases", "queries", NULL};
    kv *p = NULL;
    int np = pairs(c, n, "sql", &p);
    yaml_node_t **dbn = NULL, **qn = NULL;
    size_t nd = 0, nq = 0;
    for (int i = 0; i < np; i++) {
        if (strcmp(p[i].name, "databases") == 0)
            dbn = sql_items(c, p[i].value, "sql.databases", &nd);
        else if (strcmp(p[i].name, "queries") == 0)
            qn = sql_items(c, p[i].value, "sql.queries", &nq);
        else
            unknown_key(c, p[i].key, p[i].name, "sql", keys, NULL);
    }
    sonde__free(p);
    sonde_config *cfg = c->cfg;
    cfg->sql_dbs = sonde__calloc(nd ? nd : 1, sizeof *cfg->sql_dbs);
    cfg->sql_queries = sonde__calloc(nq ? nq : 1, sizeof *cfg->sql_queries);
    if (!cfg->sql_dbs || !cfg->sql_queries) {
        c->oom = true;
        goto out;
    }
    cfg->nsql_dbs = nd;
    cfg->nsql_queries = nq;
    size_t errs_before = c->n;
    for (size_t i = 0; i < nd; i++)
        parse_sql_db(c, dbn[i], &cfg->sql_dbs[i]);
    for (size_t i = 0; i < nq; i++)
        parse_sql_query(c, qn[i], &cfg->sql_queries[i]);
    if (c->n != errs_before || c->oom)
        goto out;
    /* Everything else (names, labels, bounds, duplicates, secrets from
     * files and the environment) is what sonde_sql checks: build a
     * collector that is never started and report its reasons here. */
    sonde_sql *sql = NULL;
    if (sonde_sql_create(NULL, &sql) != SONDE_OK) {
        c->oom = true;
        goto out;
    }
    for (size_t i = 0; i < nd; i++)
        if (sonde_sql_add_database(sql, &cfg->sql_dbs[i]) != SONDE_OK)
            err_at(c, dbn[i], "%s", sonde_last_error());
    for (size_t i = 0; i < nq; i++)
        if (sonde_sql_add_query(sql, &cfg->sql_queries[i]) != SONDE_OK)
            err_at(c, qn[i], "%s", sonde_last_error());
    sonde_sql_destroy(sql);
out:
    sonde__free(dbn);
    sonde__free(qn);
}

/* ---- remote_write ---- */

#define MAX_REMOTE_WRITE 16

static void rw_opts_free(sonde_remote_write_opts *o)
{
    char *secrets[] = {(char *)o->bearer_token, (char *)o->basic_auth_password};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(secrets); i++)
        if (secrets[i])
            memset(secrets[i], 0, strlen(secrets[i]));
    char *strs[] = {(char *)o->url,
                    (char *)o->name,
                    (char *)o->bearer_token,
                    (char *)o->bearer_token_file,
                    (char *)o->basic_auth_user,
                    (char *)o->basic_auth_password,
                    (char *)o->tls_ca_file,
                    (char *)o->tls_cert_file,
                    (char *)o->tls_key_file,
                    (char *)o->queue_dir};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(strs); i++)
        sonde__free(strs[i]);
    for (size_t i = 0; i < 2 * o->external_label_count; i++)
        sonde__free((char *)o->external_labels[i]);
    sonde__free((void *)o->external_labels);
    for (size_t i = 0; i < o->keep_count; i++)
        sonde__free((char *)o->keep[i]);
    sonde__free((void *)o->keep);
    for (size_t i = 0; i < o->drop_count; i++)
        sonde__free((char *)o->drop[i]);
    sonde__free((void *)o->drop);
}

/* A list of metric name patterns, each compiled (anchored, as the writer
 * does) to report a bad one at its own position. */
static bool get_patterns(ctx *c, yaml_node_t *n, const char *what, const char *const **out,
                         size_t *count)
{
    size_t cnt = 0;
    char **l = get_str_list(c, n, what, &cnt);
    if (!l)
        return false;
    bool ok = true;
    for (size_t i = 0; i < cnt; i++) {
        sonde_buf b;
        sonde_buf_init(&b);
        if (sonde__buf_printf(&b, "^(%s)$", l[i]) != SONDE_OK) {
            c->oom = true;
            ok = false;
            break;
        }
        regex_t re;
        int rc = regcomp(&re, b.data, REG_EXTENDED | REG_NOSUB);
        sonde_buf_free(&b);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &re, msg, sizeof msg);
            err_at(c, node_at(c, n->data.sequence.items.start[i]),
                   "%s: \"%.60s\" is not a valid regular expression: %s", what, l[i], msg);
            ok = false;
        } else {
            regfree(&re);
        }
    }
    if (!ok) {
        for (size_t i = 0; i < cnt; i++)
            sonde__free(l[i]);
        sonde__free(l);
        return false;
    }
    *out = (const char *const *)l;
    *count = cnt;
    return true;
}

/* A file named by a *_file key must be readable now (its content is read
 * again at each use, so a rotated token is picked up). */
static bool get_readable_file(ctx *c, yaml_node_t *n, const char *what, const char **out)
{
    char *path = NULL;
    if (!get_str(c, n, what, &path))
        return false;
    char probe[1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r = fd >= 0 ? read(fd, probe, 1) : -1;
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (fd < 0 || r < 0) {
        err_at(c, n, "cannot read %s %s: %s", what, path, strerror(err));
        sonde__free(path);
        return false;
    }
    if (r == 0) {
        err_at(c, n, "%s %s is empty", what, path);
        sonde__free(path);
        return false;
    }
    sonde__free((char *)*out);
    *out = path;
    return true;
}

static void parse_rw_basic_auth(ctx *c, yaml_node_t *n, sonde_remote_write_opts *o)
{
    static const char *const keys[] = {"username", "password", "password_file", NULL};
    kv *p = NULL;
    int np = pairs(c, n, "remote_write basic_auth", &p);
    yaml_node_t *pw = NULL;
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (strcmp(k, "username") == 0)
            get_cstr(c, v, "basic_auth.username", &o->basic_auth_user);
        else if (strcmp(k, "password") == 0 || strcmp(k, "password_file") == 0) {
            if (pw) {
                err_at(c, p[i].key, "basic_auth: give password or password_file, not both");
                continue;
            }
            pw = p[i].key;
            if (k[8] == '\0')
                get_cstr(c, v, "basic_auth.password", &o->basic_auth_password);
            else {
                char *secret = NULL;
                if (get_file_secret(c, v, "basic_auth.password_file", &secret)) {
                    sonde__free((char *)o->basic_auth_password);
                    o->basic_auth_password = secret;
                }
            }
        } else
            unknown_key(c, p[i].key, k, "remote_write basic_auth", keys, NULL);
    }
    if (np >= 0 && !o->basic_auth_user)
        err_at(c, n, "basic_auth needs a username");
    sonde__free(p);
}

static void parse_rw_tls(ctx *c, yaml_node_t *n, sonde_remote_write_opts *o)
{
    static const char *const keys[] = {"ca_file", "cert_file", "key_file", "insecure_skip_verify",
                                       NULL};
    kv *p = NULL;
    int np = pairs(c, n, "remote_write tls", &p);
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (strcmp(k, "ca_file") == 0)
            get_readable_file(c, v, "tls.ca_file", &o->tls_ca_file);
        else if (strcmp(k, "cert_file") == 0)
            get_readable_file(c, v, "tls.cert_file", &o->tls_cert_file);
        else if (strcmp(k, "key_file") == 0)
            get_readable_file(c, v, "tls.key_file", &o->tls_key_file);
        else if (strcmp(k, "insecure_skip_verify") == 0) {
            bool b = false;
            if (get_bool(c, v, "tls.insecure_skip_verify", &b))
                o->tls_insecure_skip_verify = b;
        } else
            unknown_key(c, p[i].key, k, "remote_write tls", keys, NULL);
    }
    if (np >= 0 && (!o->tls_cert_file) != (!o->tls_key_file))
        err_at(c, n, "tls: cert_file and key_file go together");
    sonde__free(p);
}

static void parse_rw_queue(ctx *c, yaml_node_t *n, sonde_remote_write_opts *o)
{
    static const char *const keys[] = {
        "memory",         "dir",         "disk",        "batch_size",
        "batch_deadline", "min_backoff", "max_backoff", "max_retry_after",
        "flush_timeout",  NULL};
    kv *p = NULL;
    int np = pairs(c, n, "remote_write queue", &p);
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        uint64_t sz = 0;
        unsigned u = 0;
        if (strcmp(k, "memory") == 0) {
            if (get_size(c, v, "queue.memory", &sz)) {
                if (sz < 65536 || sz > ((uint64_t)1 << 40))
                    err_at(c, v, "queue.memory must be between 64KiB and 1TiB");
                else
                    o->queue_max_bytes = (size_t)sz;
            }
        } else if (strcmp(k, "disk") == 0) {
            if (get_size(c, v, "queue.disk", &sz)) {
                if (sz < 65536 || sz > ((uint64_t)1 << 44))
                    err_at(c, v, "queue.disk must be between 64KiB and 16TiB");
                else
                    o->disk_max_bytes = (size_t)sz;
            }
        } else if (strcmp(k, "dir") == 0)
            get_cstr(c, v, "queue.dir", &o->queue_dir);
        else if (strcmp(k, "batch_size") == 0) {
            if (get_uint(c, v, "queue.batch_size", 1, 1000000, &u))
                o->max_samples_per_send = u;
        } else if (strcmp(k, "batch_deadline") == 0)
            get_duration(c, v, "queue.batch_deadline", 0.001, 3600, &o->batch_deadline_seconds);
        else if (strcmp(k, "min_backoff") == 0)
            get_duration(c, v, "queue.min_backoff", 0.001, 3600, &o->min_backoff_seconds);
        else if (strcmp(k, "max_backoff") == 0)
            get_duration(c, v, "queue.max_backoff", 0.001, 86400, &o->max_backoff_seconds);
        else if (strcmp(k, "max_retry_after") == 0)
            get_duration(c, v, "queue.max_retry_after", 0.001, 86400, &o->max_retry_after_seconds);
        else if (strcmp(k, "flush_timeout") == 0)
            get_duration(c, v, "queue.flush_timeout", 0, 3600, &o->flush_timeout_seconds);
        else
            unknown_key(c, p[i].key, k, "remote_write queue", keys, NULL);
    }
    if (o->disk_max_bytes && !o->queue_dir)
        err_at(c, n, "queue.disk needs queue.dir");
    sonde__free(p);
}

static void parse_rw_entry(ctx *c, yaml_node_t *n, sonde_remote_write_opts *o)
{
    static const char *const keys[] = {
        "url",        "name", "interval", "timeout", "bearer_token", "bearer_token_file",
        "basic_auth", "tls",  "queue",    "keep",    "drop",         "external_labels",
        NULL};
    size_t errs_before = c->n;
    kv *p = NULL;
    int np = pairs(c, n, "a remote_write entry", &p);
    yaml_node_t *auth = NULL;
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (strcmp(k, "bearer_token") == 0 || strcmp(k, "bearer_token_file") == 0 ||
            strcmp(k, "basic_auth") == 0) {
            if (auth) {
                err_at(c, p[i].key,
                       "remote_write: give one of bearer_token, bearer_token_file, basic_auth "
                       "(\"%s\" at line %d already)",
                       (const char *)auth->data.scalar.value, (int)auth->start_mark.line + 1);
                continue;
            }
            auth = p[i].key;
        }
        if (strcmp(k, "url") == 0) {
            if (get_cstr(c, v, "url", &o->url) && strncmp(o->url, "http://", 7) != 0 &&
                strncmp(o->url, "https://", 8) != 0)
                err_at(c, v, "remote_write url must start with http:// or https://");
        } else if (strcmp(k, "name") == 0)
            get_cstr(c, v, "remote_write name", &o->name);
        else if (strcmp(k, "interval") == 0)
            get_duration(c, v, "remote_write interval", 0.05, 86400, &o->interval_seconds);
        else if (strcmp(k, "timeout") == 0)
            get_duration(c, v, "remote_write timeout", 0.01, 3600, &o->timeout_seconds);
        else if (strcmp(k, "bearer_token") == 0)
            get_cstr(c, v, "bearer_token", &o->bearer_token);
        else if (strcmp(k, "bearer_token_file") == 0)
            get_readable_file(c, v, "bearer_token_file", &o->bearer_token_file);
        else if (strcmp(k, "basic_auth") == 0)
            parse_rw_basic_auth(c, v, o);
        else if (strcmp(k, "tls") == 0)
            parse_rw_tls(c, v, o);
        else if (strcmp(k, "queue") == 0)
            parse_rw_queue(c, v, o);
        else if (strcmp(k, "keep") == 0)
            get_patterns(c, v, "keep", &o->keep, &o->keep_count);
        else if (strcmp(k, "drop") == 0)
            get_patterns(c, v, "drop", &o->drop, &o->drop_count);
        else if (strcmp(k, "external_labels") == 0) {
            char **arr = NULL;
            size_t cnt = 0;
            if (get_pairs(c, v, "external_labels", true, &arr, &cnt)) {
                o->external_labels = (const char *const *)arr;
                o->external_label_count = cnt;
            }
        } else
            unknown_key(c, p[i].key, k, "a remote_write entry", keys, NULL);
    }
    sonde__free(p);
    if (np < 0)
        return;
    if (!o->url) {
        err_at(c, n, "a remote_write entry needs a url");
        return;
    }
    /* Whatever else the writer refuses, reported at the entry. */
    if (c->n == errs_before && !c->oom && sonde_remote_write_opts_check(o) != SONDE_OK)
        err_at(c, n, "%s", sonde_last_error());
}

static void parse_remote_write(ctx *c, yaml_node_t *n)
{
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        err_at(c, n, "remote_write must be a list of receivers (- url: ...)");
        return;
    }
    size_t len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len > MAX_REMOTE_WRITE) {
        err_at(c, n, "remote_write has more than %d entries", MAX_REMOTE_WRITE);
        return;
    }
    sonde_config *cfg = c->cfg;
    cfg->rws = sonde__calloc(len ? len : 1, sizeof *cfg->rws);
    if (!cfg->rws) {
        c->oom = true;
        return;
    }
    cfg->nrws = len;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = node_at(c, n->data.sequence.items.start[i]);
        parse_rw_entry(c, it, &cfg->rws[i]);
        /* Two writers to one URL would share one disk queue file. */
        for (size_t j = 0; j < i && cfg->rws[i].url; j++)
            if (cfg->rws[j].url && strcmp(cfg->rws[i].url, cfg->rws[j].url) == 0) {
                err_at(c, it, "remote_write entry %zu has the same url as entry %zu", i + 1, j + 1);
                break;
            }
    }
}

static void parse_root(ctx *c, yaml_node_t *root)
{
    static const char *const keys[] = {"server",       "service",      "info",
                                       "host_metrics", "checks",       "alerts",
                                       "sql",          "remote_write", NULL};
    if (!root)
        return; /* empty file: all defaults */
    if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)
        return;
    kv *p = NULL;
    int np = pairs(c, root, "the configuration", &p);
    for (int i = 0; i < np; i++) {
        const char *k = p[i].name;
        yaml_node_t *v = p[i].value;
        if (v && v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0 &&
            v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            continue; /* "server:" with nothing under it */
        if (strcmp(k, "server") == 0)
            parse_server(c, v);
        else if (strcmp(k, "service") == 0)
            parse_service(c, v);
        else if (strcmp(k, "info") == 0)
            parse_info(c, v);
        else if (strcmp(k, "host_metrics") == 0)
            parse_host_metrics(c, v);
        else if (strcmp(k, "checks") == 0)
            parse_checks(c, v);
        else if (strcmp(k, "alerts") == 0)
            parse_alerts(c, v);
        else if (strcmp(k, "sql") == 0)
            parse_sql(c, v);
        else if (strcmp(k, "remote_write") == 0)
            parse_remote_write(c, v);
        else
            unknown_key(c, p[i].key, k, "the configuration", keys, NULL);
    }
    sonde__free(p);
}

/* ---- digest ---- */

static void digest_add(uint64_t *h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : "\x01"); *p; p++) {
        *h ^= *p;
        *h *= 1099511628211ull;
    }
    *h ^= 0xff;
    *h *= 1099511628211ull;
}

static void compute_digest(sonde_config *cfg)
{
    uint64_t h = 1469598103934665603ull;
    const char *strs[] = {cfg->listen,          cfg->route_prefix, cfg->api_key,
                          cfg->tls_cert,        cfg->tls_key,      cfg->basic_user,
                          cfg->basic_pass,      cfg->disk_path,    cfg->service_name,
                          cfg->service_version, cfg->service_build};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(strs); i++)
        digest_add(&h, strs[i]);
    for (size_t i = 0; i < 2 * cfg->info_count; i++)
        digest_add(&h, cfg->info[i]);
    char num[128];
    snprintf(num, sizeof num, "%u|%u|%u|%zu|%zu|%.17g|%.17g|%.17g|%.17g", cfg->threads,
             cfg->max_conn, cfg->max_conn_client, cfg->max_header, cfg->max_response, cfg->idle,
             cfg->req_timeout, cfg->rate, cfg->burst);
    digest_add(&h, num);
    snprintf(cfg->digest, sizeof cfg->digest, "%016llx", (unsigned long long)h);
}

/* ---- public API ---- */

void sonde_config_destroy(sonde_config *cfg)
{
    if (!cfg)
        return;
    char **secrets[] = {&cfg->api_key, &cfg->basic_pass};
    for (size_t i = 0; i < 2; i++)
        if (*secrets[i]) {
            memset(*secrets[i], 0, strlen(*secrets[i]));
        }
    char *strs[] = {cfg->listen,       cfg->route_prefix,    cfg->api_key,      cfg->tls_cert,
                    cfg->tls_key,      cfg->basic_user,      cfg->basic_pass,   cfg->disk_path,
                    cfg->service_name, cfg->service_version, cfg->service_build};
    for (size_t i = 0; i < SONDE_ARRAY_LEN(strs); i++)
        sonde__free(strs[i]);
    for (size_t i = 0; i < 2 * cfg->info_count; i++)
        sonde__free(cfg->info[i]);
    sonde__free(cfg->info);
    for (size_t i = 0; i < cfg->fs_count; i++)
        sonde__free(cfg->fs_paths[i]);
    sonde__free(cfg->fs_paths);
    for (size_t i = 0; i < cfg->nchecks; i++)
        check_free(&cfg->checks[i]);
    sonde__free(cfg->checks);
    for (size_t i = 0; i < cfg->nrules; i++)
        rule_opts_free(&cfg->rules[i]);
    sonde__free(cfg->rules);
    for (size_t i = 0; i < cfg->nnotifiers; i++)
        notifier_opts_free(&cfg->notifiers[i]);
    sonde__free(cfg->notifiers);
    for (size_t i = 0; i < cfg->nsql_dbs; i++)
        sql_db_free(&cfg->sql_dbs[i]);
    sonde__free(cfg->sql_dbs);
    for (size_t i = 0; i < cfg->nsql_queries; i++)
        sql_query_free(&cfg->sql_queries[i]);
    sonde__free(cfg->sql_queries);
    for (size_t i = 0; i < cfg->nrws; i++)
        rw_opts_free(&cfg->rws[i]);
    sonde__free(cfg->rws);
    sonde__free(cfg);
}

int sonde_config_load_string(const char *text, size_t len, sonde_config **out,
                             sonde_config_error *errs, size_t max_errs, size_t *nerrs)
{
    if (out)
        *out = NULL;
    if (nerrs)
        *nerrs = 0;
    if (!out || (!text && len))
        return SONDE_EINVAL;
    ctx c = {.errs = errs, .max = errs ? max_errs : 0};
    if (len > SONDE_CONFIG_MAX_BYTES) {
        err_at(&c, NULL, "configuration larger than %d bytes", SONDE_CONFIG_MAX_BYTES);
        if (nerrs)
            *nerrs = c.n;
        return SONDE_ETOOBIG;
    }
    sonde_config *cfg = sonde__calloc(1, sizeof *cfg);
    if (!cfg)
        return SONDE_ENOMEM;
    cfg->host_enabled = true;
    c.cfg = cfg;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        sonde__free(cfg);
        return SONDE_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        /* A syntax error stops libyaml: report it precisely and stop. */
        yaml_mark_t m = parser.problem_mark;
        if (c.max) {
            sonde_config_error *e = &errs[0];
            e->line = (int)m.line + 1;
            e->column = (int)m.column + 1;
            if (parser.context)
                snprintf(e->message, sizeof e->message, "YAML syntax error: %s %s",
                         parser.problem ? parser.problem : "invalid input", parser.context);
            else
                snprintf(e->message, sizeof e->message, "YAML syntax error: %s",
                         parser.problem ? parser.problem : "invalid input");
        }
        c.n = 1;
        bool nomem = parser.error == YAML_MEMORY_ERROR;
        yaml_parser_delete(&parser);
        sonde_config_destroy(cfg);
        if (nerrs)
            *nerrs = c.n;
        return nomem ? SONDE_ENOMEM : SONDE_EPARSE;
    }
    /* Only one document per file. */
    yaml_document_t extra;
    bool more = false;
    if (yaml_parser_load(&parser, &extra)) {
        more = yaml_document_get_root_node(&extra) != NULL;
        if (more)
            err_at(&c, yaml_document_get_root_node(&extra),
                   "only one YAML document is allowed (found a second one)");
        yaml_document_delete(&extra);
    }
    c.doc = &doc;
    parse_root(&c, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (nerrs)
        *nerrs = c.n;
    if (c.oom) {
        sonde_config_destroy(cfg);
        return SONDE_ENOMEM;
    }
    if (c.n) {
        sonde_config_destroy(cfg);
        return SONDE_EPARSE;
    }
    compute_digest(cfg);
    *out = cfg;
    return SONDE_OK;
}

int sonde_config_load_file(const char *path, sonde_config **out, sonde_config_error *errs,
                           size_t max_errs, size_t *nerrs)
{
    if (out)
        *out = NULL;
    if (nerrs)
        *nerrs = 0;
    if (!path || !out)
        return SONDE_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    sonde_buf b = {0};
    b.max = SONDE_CONFIG_MAX_BYTES + 1;
    int rc = fd < 0 ? SONDE_EIO : SONDE_OK;
    int err = errno;
    while (!rc) {
        char tmp[8192];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            rc = SONDE_EIO;
        } else if (n == 0) {
            break;
        } else {
            rc = sonde__buf_append(&b, tmp, (size_t)n);
        }
    }
    if (fd >= 0)
        close(fd);
    if (rc) {
        if (errs && max_errs) {
            errs[0].line = errs[0].column = 0;
            if (rc == SONDE_ETOOBIG)
                snprintf(errs[0].message, sizeof errs[0].message,
                         "configuration larger than %d bytes", SONDE_CONFIG_MAX_BYTES);
            else
                snprintf(errs[0].message, sizeof errs[0].message, "cannot read %s: %s", path,
                         strerror(err));
        }
        if (nerrs)
            *nerrs = 1;
        sonde_buf_free(&b);
        return rc == SONDE_ENOMEM ? SONDE_ENOMEM : rc == SONDE_ETOOBIG ? SONDE_ETOOBIG : SONDE_EIO;
    }
    rc = sonde_config_load_string(b.data, b.len, out, errs, max_errs, nerrs);
    sonde_buf_free(&b);
    return rc;
}

void sonde_config_start_opts(const sonde_config *cfg, sonde_start_opts *o)
{
    if (!cfg || !o)
        return;
    if (cfg->listen)
        o->listen = cfg->listen;
    if (cfg->route_prefix)
        o->route_prefix = cfg->route_prefix;
    if (cfg->api_key)
        o->api_key = cfg->api_key;
    if (cfg->tls_cert)
        o->tls_cert_file = cfg->tls_cert;
    if (cfg->tls_key)
        o->tls_key_file = cfg->tls_key;
    if (cfg->basic_user) {
        o->basic_auth_user = cfg->basic_user;
        o->basic_auth_password = cfg->basic_pass;
    }
    if (cfg->disk_path)
        o->disk_path = cfg->disk_path;
    if (cfg->threads)
        o->threads = cfg->threads;
    if (cfg->max_conn)
        o->max_connections = cfg->max_conn;
    if (cfg->max_conn_client)
        o->max_connections_per_client = cfg->max_conn_client;
    if (cfg->max_header)
        o->max_header_bytes = cfg->max_header;
    if (cfg->max_response)
        o->max_response_bytes = cfg->max_response;
    if (cfg->idle)
        o->idle_timeout_seconds = cfg->idle;
    if (cfg->req_timeout)
        o->request_timeout_seconds = cfg->req_timeout;
    if (cfg->rate)
        o->rate_limit_per_second = cfg->rate;
    if (cfg->burst)
        o->rate_limit_burst = cfg->burst;
    if (cfg->service_name)
        o->service_name = cfg->service_name;
    if (cfg->service_version)
        o->service_version = cfg->service_version;
    if (cfg->service_build)
        o->service_build = cfg->service_build;
    if (cfg->info_count) {
        o->info = (const char *const *)cfg->info;
        o->info_count = cfg->info_count;
    }
}

int sonde_config_add_checks(const sonde_config *cfg, sonde_health *h)
{
    if (!cfg)
        return SONDE_EINVAL;
    for (size_t i = 0; i < cfg->nchecks; i++) {
        const cfg_check *k = &cfg->checks[i];
        sonde_health_check_opts o;
        sonde_health_check_opts_init(&o);
        o.name = k->name;
        o.timeout_seconds = k->timeout;
        o.interval_seconds = k->interval;
        o.informational = k->informational;
        int rc = SONDE_EINVAL;
        switch (k->type) {
        case CK_DISK:
            rc = sonde_health_add_disk(h, &o, k->path, k->warn, k->crit);
            break;
        case CK_MEMORY:
            rc = sonde_health_add_memory(h, &o, k->warn, k->crit, k->max_rss);
            break;
        case CK_LOAD:
            rc = sonde_health_add_load(h, &o, k->warn, k->crit);
            break;
        case CK_WRITABLE:
            rc = sonde_health_add_writable_dir(h, &o, k->path);
            break;
        case CK_COMMAND:
            rc = sonde_health_add_command(h, &o, (const char *const *)k->argv);
            break;
        case CK_TCP:
            rc = sonde_health_add_tcp(h, &o, k->host, k->port);
            break;
        case CK_HTTP:
            rc = sonde_health_add_http_headers(h, &o, k->url, k->expect_status,
                                               (const char *const *)k->headers, k->nheaders);
            break;
        case CK_SQLITE:
            rc = sonde_health_add_sqlite(h, &o, k->path, k->query);
            break;
        case CK_POSTGRES:
            rc = sonde_health_add_postgres(h, &o, k->dsn, k->query);
            break;
        case CK_REDIS:
            rc = sonde_health_add_redis(h, &o, k->host, k->port, k->password);
            break;
        case CK_FILE_FRESH:
            rc = sonde_health_add_file_fresh(h, &o, k->path, k->max_age);
            break;
        default:
            break;
        }
        if (rc)
            return rc;
    }
    return SONDE_OK;
}

size_t sonde_config_check_count(const sonde_config *cfg)
{
    return cfg ? cfg->nchecks : 0;
}

int sonde_config_host_metrics(const sonde_config *cfg, const char *const **paths, size_t *count)
{
    if (!cfg)
        return 0;
    if (paths)
        *paths = (const char *const *)cfg->fs_paths;
    if (count)
        *count = cfg->fs_count;
    return cfg->host_enabled;
}

const char *sonde_config_server_digest(const sonde_config *cfg)
{
    return cfg ? cfg->digest : "";
}

int sonde_config_apply_alerts(const sonde_config *cfg, sonde_errors *t)
{
    if (!cfg)
        return SONDE_EINVAL;
    int rc = sonde_alerts_set_rules(t, cfg->rules, cfg->nrules);
    return rc ? rc : sonde_alerts_set_notifiers(t, cfg->notifiers, cfg->nnotifiers);
}

size_t sonde_config_rule_count(const sonde_config *cfg)
{
    return cfg ? cfg->nrules : 0;
}

size_t sonde_config_notifier_count(const sonde_config *cfg)
{
    return cfg ? cfg->nnotifiers : 0;
}

int sonde_config_sql(const sonde_config *cfg, sonde_registry *reg, sonde_sql **out)
{
    if (!cfg || !out)
        return SONDE_EINVAL;
    *out = NULL;
    if (cfg->nsql_queries == 0)
        return SONDE_OK;
    sonde_sql_opts o;
    sonde_sql_opts_init(&o);
    o.registry = reg;
    sonde_sql *sql = NULL;
    int rc = sonde_sql_create(&o, &sql);
    for (size_t i = 0; rc == SONDE_OK && i < cfg->nsql_dbs; i++)
        rc = sonde_sql_add_database(sql, &cfg->sql_dbs[i]);
    for (size_t i = 0; rc == SONDE_OK && i < cfg->nsql_queries; i++)
        rc = sonde_sql_add_query(sql, &cfg->sql_queries[i]);
    if (rc != SONDE_OK) {
        sonde_sql_destroy(sql);
        return rc;
    }
    *out = sql;
    return SONDE_OK;
}

size_t sonde_config_sql_query_count(const sonde_config *cfg)
{
    return cfg ? cfg->nsql_queries : 0;
}

size_t sonde_config_remote_write_count(const sonde_config *cfg)
{
    return cfg ? cfg->nrws : 0;
}

int sonde_config_remote_write_opts(const sonde_config *cfg, size_t i, sonde_remote_write_opts *o)
{
    if (!cfg || !o || i >= cfg->nrws)
        return SONDE_EINVAL;
    *o = cfg->rws[i];
    return SONDE_OK;
}
