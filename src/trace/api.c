/* The public tracing API over the process's tracer. */
#include "trace_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* creation, start, stop */
static sonde__tracer *g_tracer;                            /* atomic */
static int g_started;

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static sonde_anomaly_fn hook_fn;
static void *hook_ud;

void sonde_trace_opts_init(sonde_trace_opts *opts)
{
    if (opts)
        memset(opts, 0, sizeof *opts);
}

void sonde_op_opts_init(sonde_op_opts *opts)
{
    if (opts)
        memset(opts, 0, sizeof *opts);
}

sonde__tracer *sonde__trace_default(void)
{
    if (!sonde_enabled())
        return NULL;
    sonde__tracer *tr = __atomic_load_n(&g_tracer, __ATOMIC_ACQUIRE);
    if (SONDE_LIKELY(tr != NULL))
        return tr;
    pthread_mutex_lock(&g_lock);
    tr = g_tracer;
    if (!tr && sonde__tracer_create(NULL, &tr) == SONDE_OK)
        __atomic_store_n(&g_tracer, tr, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_lock);
    return tr;
}

sonde__tracer *sonde__trace_peek(void)
{
    return __atomic_load_n(&g_tracer, __ATOMIC_ACQUIRE);
}

sonde_op *sonde_op_get(const char *name)
{
    sonde__tracer *tr = sonde__trace_default();
    if (!tr || !name)
        return NULL;
    sonde_op *op = sonde__trace_op_find(tr, name);
    if (SONDE_LIKELY(op != NULL))
        return op;
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = name;
    if (sonde__trace_op_create(tr, &o, &op) != SONDE_OK)
        return NULL;
    return op;
}

int sonde_op_create(const sonde_op_opts *opts, sonde_op **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    if (!sonde_enabled())
        return SONDE_OK; /* off: a NULL operation, which every sonde_op_* call accepts */
    sonde__tracer *tr = sonde__trace_default();
    if (!tr)
        return SONDE_ENOMEM;
    return sonde__trace_op_create(tr, opts, out);
}

const char *sonde_op_name(const sonde_op *op)
{
    return op ? op->name : "";
}

sonde_op_token sonde_op_begin(const char *name)
{
    return sonde_op_begin_op(sonde_op_get(name));
}

sonde_op_token sonde__op_begin_cached(sonde_op **cache, const char *name)
{
    sonde_op *op = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (SONDE_UNLIKELY(!op)) {
        op = sonde_op_get(name);
        if (op)
            __atomic_store_n(cache, op, __ATOMIC_RELEASE);
    }
    return sonde_op_begin_op(op);
}

void sonde__op_scope_end(sonde_op_scope *s)
{
    sonde_op_end(s->token, s->ok);
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                           */

static int differs(const char *set, const char *def, const char *have)
{
    return strcmp(set ? set : def, have) != 0;
}

/* Whether opts would create different metrics than tracer tr has. */
static int naming_differs(const sonde_trace_opts *o, const sonde__tracer *tr)
{
    if ((o->registry ? o->registry : sonde_registry_default()) != tr->reg)
        return 1;
    if (differs(o->ns, "sonde", tr->ns) ||
        differs(o->duration_name, "operation_duration_seconds", tr->duration_name) ||
        differs(o->total_name, "operations_total", tr->total_name) ||
        differs(o->anomaly_name, "operation_anomaly", tr->anomaly_name) ||
        differs(o->operation_label, "operation", tr->op_label) ||
        differs(o->result_label, "result", tr->result_label))
        return 1;
    if (o->max_operations && o->max_operations != tr->max_ops)
        return 1;
    if ((o->log_context > 0 ? 1 : o->log_context < 0 ? -1 : 0) != tr->log_mode)
        return 1;
    if (o->buckets) {
        if (o->bucket_count != tr->nbuckets ||
            memcmp(o->buckets, tr->buckets, tr->nbuckets * sizeof *tr->buckets) != 0)
            return 1;
    }
    return 0;
}

static int is_memory_spec(const char *s)
{
    return strcmp(s, ":memory:") == 0 || strcmp(s, "sqlite::memory:") == 0;
}

int sonde_trace_start(const sonde_trace_opts *opts)
{
    if (!sonde_enabled())
        return SONDE_OK;
    sonde_trace_opts def;
    if (!opts) {
        sonde_trace_opts_init(&def);
        opts = &def;
    }
    if (opts->flush_interval_ms &&
        (opts->flush_interval_ms < 10 || opts->flush_interval_ms > 60000)) {
        sonde__set_error("flush_interval_ms must be 10..60000");
        return SONDE_EINVAL;
    }
    if (opts->retention_hours < 0 || isnan(opts->retention_hours) ||
        (opts->anomaly_factor != 0 && !(opts->anomaly_factor > 1)) || isinf(opts->anomaly_factor)) {
        sonde__set_error("retention_hours must be >= 0 and anomaly_factor > 1");
        return SONDE_EINVAL;
    }
    pthread_mutex_lock(&g_lock);
    if (g_started) {
        pthread_mutex_unlock(&g_lock);
        sonde__set_error("tracing already started");
        return SONDE_ESTATE;
    }
    sonde__tracer *tr = g_tracer;
    if (tr && naming_differs(opts, tr)) {
        if (__atomic_load_n(&tr->nops, __ATOMIC_RELAXED) != 0) {
            pthread_mutex_unlock(&g_lock);
            sonde__set_error("operations were traced before sonde_trace_start with other metric "
                             "options; call it first");
            return SONDE_ESTATE;
        }
        /* No operation yet: nobody holds a handle, it can be replaced. */
        __atomic_store_n(&g_tracer, NULL, __ATOMIC_RELEASE);
        sonde__tracer_destroy(tr);
        tr = NULL;
    }
    if (!tr) {
        int rc = sonde__tracer_create(opts, &tr);
        if (rc != SONDE_OK) {
            pthread_mutex_unlock(&g_lock);
            return rc;
        }
        __atomic_store_n(&g_tracer, tr, __ATOMIC_RELEASE);
    }
    const char *spec = opts->store;
    if (!spec)
        spec = getenv("SONDE_STORE");
    if (!spec || !*spec)
        spec = ":memory:";
    double retention = opts->retention_hours;
    if (retention <= 0) {
        const char *e = getenv("SONDE_STORE_RETENTION");
        char *end = NULL;
        double v = e ? sonde__strtod(e, &end) : 0;
        if (e && end != e && v > 0 && isfinite(v))
            retention = v;
        else
            retention = is_memory_spec(spec) ? 24 : 720;
    }
    sonde__store_opts so;
    memset(&so, 0, sizeof so);
    so.registry = tr->reg;
    so.max_pending = opts->store_max_pending;
    so.redis_prefix = opts->redis_prefix;
    so.redis_timeout_ms = opts->redis_timeout_ms;
    char err[512] = "";
    sonde__store *store = NULL;
    int rc = sonde__store_create(spec, &so, &store, err, sizeof err);
    if (rc != SONDE_OK) {
        pthread_mutex_unlock(&g_lock);
        sonde__set_error("%s", err);
        return rc;
    }
    pthread_mutex_lock(&tr->lock);
    tr->store = store;
    tr->retention_hours = retention;
    tr->last_prune_minute = TRACE_NO_MINUTE;
    if (opts->anomaly_factor > 0)
        tr->factor = opts->anomaly_factor;
    if (opts->anomaly_window_minutes)
        tr->window_minutes = opts->anomaly_window_minutes;
    if (opts->anomaly_min_count)
        tr->min_count = opts->anomaly_min_count;
    /* Baselines set before the store existed are saved now. */
    for (sonde_op *op = tr->ops_head; op && store; op = op->next) {
        if (!op->has_baseline)
            continue;
        sonde__baseline_row row;
        row.op = op->name;
        row.avg = op->baseline.avg_seconds;
        row.p95 = op->baseline.p95_seconds;
        row.factor = op->baseline.factor > 0 ? op->baseline.factor : tr->factor;
        row.window_minutes =
            op->baseline.window_minutes ? op->baseline.window_minutes : tr->window_minutes;
        row.min_count = op->baseline.min_count ? op->baseline.min_count : tr->min_count;
        sonde__store_enqueue_baseline(store, op->name, &row);
    }
    pthread_mutex_unlock(&tr->lock);
    rc = sonde__trace_bg_start(tr, opts->flush_interval_ms ? opts->flush_interval_ms : 1000);
    if (rc != SONDE_OK) {
        pthread_mutex_lock(&tr->lock);
        tr->store = NULL;
        pthread_mutex_unlock(&tr->lock);
        sonde__store_destroy(store);
        pthread_mutex_unlock(&g_lock);
        return rc;
    }
    g_started = 1;
    pthread_mutex_unlock(&g_lock);
    return SONDE_OK;
}

void sonde_trace_stop(void)
{
    pthread_mutex_lock(&g_lock);
    if (!g_started) {
        pthread_mutex_unlock(&g_lock);
        return;
    }
    sonde__tracer *tr = g_tracer;
    sonde__trace_bg_stop();
    sonde__trace_tick(tr, 1);
    pthread_mutex_lock(&tr->lock);
    sonde__store *store = tr->store;
    tr->store = NULL;
    pthread_mutex_unlock(&tr->lock);
    sonde__store_destroy(store);
    g_started = 0;
    pthread_mutex_unlock(&g_lock);
}

/* ------------------------------------------------------------------------ */
/* Queries and baselines                                                    */

/* SONDE_OK with *tr NULL when sonde is off: the caller answers as an
 * enabled tracer that recorded nothing would. */
static int need_tracer(sonde__tracer **tr)
{
    *tr = NULL;
    if (!sonde_enabled())
        return SONDE_OK;
    *tr = sonde__trace_default();
    return *tr ? SONDE_OK : SONDE_ENOMEM;
}

int sonde_trace_get_stats(const char *operation, unsigned minutes, sonde_op_stats *out)
{
    if (!operation || !out)
        return SONDE_EINVAL;
    sonde__tracer *tr;
    int rc = need_tracer(&tr);
    if (rc != SONDE_OK)
        return rc;
    if (!tr) {
        memset(out, 0, sizeof *out);
        snprintf(out->operation, sizeof out->operation, "%s", operation);
        out->window_minutes = minutes ? minutes : 60;
        out->success_rate = out->avg_seconds = out->min_seconds = out->max_seconds = NAN;
        out->p50_seconds = out->p90_seconds = out->p95_seconds = out->p99_seconds = NAN;
        return SONDE_OK;
    }
    return sonde__trace_stats(tr, operation, minutes, out);
}

int sonde_trace_list_stats(unsigned minutes, sonde_op_stats **out, size_t *count)
{
    if (!out || !count)
        return SONDE_EINVAL;
    *out = NULL;
    *count = 0;
    sonde__tracer *tr;
    int rc = need_tracer(&tr);
    if (rc != SONDE_OK || !tr)
        return rc;
    return sonde__trace_list(tr, minutes, out, count);
}

int sonde_trace_set_baseline(const char *operation, const sonde_baseline *b)
{
    if (!operation)
        return SONDE_EINVAL;
    sonde__tracer *tr;
    int rc = need_tracer(&tr);
    if (rc != SONDE_OK || !tr)
        return rc;
    return sonde__trace_set_baseline(tr, operation, b);
}

int sonde_trace_get_baseline(const char *operation, sonde_baseline *out)
{
    if (!operation || !out)
        return SONDE_EINVAL;
    sonde__tracer *tr;
    int rc = need_tracer(&tr);
    if (rc != SONDE_OK)
        return rc;
    sonde_op *op = tr ? sonde__trace_op_find(tr, operation) : NULL;
    if (!op)
        return SONDE_ENOTFOUND;
    pthread_mutex_lock(&tr->lock);
    rc = op->has_baseline ? SONDE_OK : SONDE_ENOTFOUND;
    if (rc == SONDE_OK)
        *out = op->baseline;
    pthread_mutex_unlock(&tr->lock);
    return rc;
}

int sonde_trace_get_anomaly(const char *operation)
{
    if (!operation)
        return SONDE_EINVAL;
    sonde__tracer *tr;
    int rc = need_tracer(&tr);
    if (rc != SONDE_OK)
        return rc;
    if (!tr)
        return 0; /* off: never flagged */
    sonde_op *op = sonde__trace_op_find(tr, operation);
    if (!op)
        return SONDE_ENOTFOUND;
    return __atomic_load_n(&op->anomalous, __ATOMIC_RELAXED) ? 1 : 0;
}

void sonde_trace_set_anomaly_hook(sonde_anomaly_fn fn, void *userdata)
{
    pthread_mutex_lock(&hook_lock);
    hook_fn = fn;
    hook_ud = userdata;
    pthread_mutex_unlock(&hook_lock);
}

void sonde__trace_anomaly_notify(const sonde_op_stats *st, int anomalous)
{
    pthread_mutex_lock(&hook_lock);
    sonde_anomaly_fn fn = hook_fn;
    void *ud = hook_ud;
    pthread_mutex_unlock(&hook_lock);
    if (fn)
        fn(st, anomalous, ud);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */

static int put_num(sonde_buf *b, double v)
{
    if (isnan(v) || isinf(v))
        return sonde__buf_puts(b, "null");
    char tmp[33];
    size_t n = sonde__fmt_double(tmp, v);
    return sonde__buf_append(b, tmp, n);
}

static int put_time(sonde_buf *b, int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    char tmp[40];
    if (!gmtime_r(&t, &tm) || strftime(tmp, sizeof tmp, "\"%Y-%m-%dT%H:%M:%SZ\"", &tm) == 0)
        return sonde__buf_puts(b, "null");
    return sonde__buf_puts(b, tmp);
}

int sonde_op_stats_write_json(const sonde_op_stats *stats, size_t n, unsigned window_minutes,
                              sonde_buf *out)
{
    if (!out || (n && !stats))
        return SONDE_EINVAL;
    size_t start = out->len;
    int rc = sonde__buf_printf(out, "{\"window_minutes\":%u,\"relative_error\":%s,\"operations\":[",
                               window_minutes, "0.01");
    for (size_t i = 0; i < n && rc == SONDE_OK; i++) {
        const sonde_op_stats *s = &stats[i];
        rc = sonde__buf_puts(out, i ? ",{\"operation\":" : "{\"operation\":");
        if (rc == SONDE_OK)
            rc = sonde__buf_json_str(out, s->operation);
        if (rc == SONDE_OK)
            rc = sonde__buf_printf(
                out, ",\"window_minutes\":%u,\"from_unix\":%lld,\"to_unix\":%lld,\"from\":",
                s->window_minutes, (long long)s->from_unix, (long long)s->to_unix);
        if (rc == SONDE_OK)
            rc = put_time(out, s->from_unix);
        if (rc == SONDE_OK)
            rc = sonde__buf_puts(out, ",\"to\":");
        if (rc == SONDE_OK)
            rc = put_time(out, s->to_unix);
        if (rc == SONDE_OK)
            rc = sonde__buf_printf(out, ",\"count\":%llu,\"errors\":%llu,\"success_rate\":",
                                   (unsigned long long)s->count, (unsigned long long)s->errors);
        if (rc == SONDE_OK)
            rc = put_num(out, s->success_rate);
        const char *keys[] = {"avg", "min", "max", "p50", "p90", "p95", "p99"};
        double vals[] = {s->avg_seconds, s->min_seconds, s->max_seconds, s->p50_seconds,
                         s->p90_seconds, s->p95_seconds, s->p99_seconds};
        if (rc == SONDE_OK)
            rc = sonde__buf_puts(out, ",\"duration_seconds\":{");
        for (size_t k = 0; k < SONDE_ARRAY_LEN(keys) && rc == SONDE_OK; k++) {
            rc = sonde__buf_printf(out, "%s\"%s\":", k ? "," : "", keys[k]);
            if (rc == SONDE_OK)
                rc = put_num(out, vals[k]);
        }
        if (rc == SONDE_OK)
            rc = sonde__buf_puts(out, "},\"baseline\":");
        if (rc == SONDE_OK) {
            if (s->has_baseline) {
                rc = sonde__buf_puts(out, "{\"avg\":");
                if (rc == SONDE_OK)
                    rc = put_num(out, s->baseline_avg_seconds);
                if (rc == SONDE_OK)
                    rc = sonde__buf_puts(out, ",\"p95\":");
                if (rc == SONDE_OK)
                    rc = put_num(out, s->baseline_p95_seconds);
                if (rc == SONDE_OK)
                    rc = sonde__buf_puts(out, ",\"factor\":");
                if (rc == SONDE_OK)
                    rc = put_num(out, s->baseline_factor);
                if (rc == SONDE_OK)
                    rc = sonde__buf_puts(out, "}");
            } else {
                rc = sonde__buf_puts(out, "null");
            }
        }
        if (rc == SONDE_OK)
            rc = sonde__buf_printf(out, ",\"anomaly\":%s}", s->anomaly ? "true" : "false");
    }
    if (rc == SONDE_OK)
        rc = sonde__buf_puts(out, "]}");
    if (rc != SONDE_OK) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}
