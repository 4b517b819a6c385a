/*
 * The tracker object: creation, the default tracker, start/stop on the
 * runtime worker, the periodic tick (drain, evaluate, deliver) and the
 * self-metrics collector.
 */
#include "errors/errors_int.h"

#include "core/worker.h"
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sonde__ring_init(err_ring *rg, size_t size);
void sonde__ring_free(err_ring *rg);

extern char *program_invocation_short_name;

void sonde_errors_opts_init(sonde_errors_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

double sonde__errors_now(const sonde_errors *t)
{
    return t->clock ? t->clock(t->clock_ud) : sonde__now_wall();
}

/* ---- metrics ---- */

static void collect(sonde_emitter *em, void *ud)
{
    sonde_errors *t = ud;
    if (sonde_emit_family(em, SONDE_COUNTER, "sonde_errors_dropped_total",
                          "Captured errors dropped because the capture queue was full",
                          NULL) == SONDE_OK)
        sonde_emit_sample(em, NULL, 0, (double)atomic_load(&t->dropped));
    if (sonde_emit_family(em, SONDE_COUNTER, "sonde_errors_store_errors_total",
                          "Failed writes of error groups and alert history to the store",
                          NULL) == SONDE_OK)
        sonde_emit_sample(em, NULL, 0, (double)atomic_load(&t->store_errors));
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_error_groups", "Error groups kept in memory",
                          NULL) == SONDE_OK)
        sonde_emit_sample(em, NULL, 0, (double)atomic_load(&t->groups_stat));
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_alerts_firing", "Alerts firing now", NULL) ==
        SONDE_OK)
        sonde_emit_sample(em, NULL, 0, (double)atomic_load(&t->firing));
    static const struct {
        sonde_metric_type type;
        const char *name, *help;
    } fams[] = {
        {SONDE_COUNTER, "sonde_alert_notifications_total", "Alert notifications delivered"},
        {SONDE_COUNTER, "sonde_alert_notifications_failed_total",
         "Alert notifications given up, refused or dropped from a full queue"},
        {SONDE_COUNTER, "sonde_alert_notification_retries_total",
         "Alert notification attempts retried after a failure"},
        {SONDE_GAUGE, "sonde_alert_notifications_queued", "Alert notifications waiting"},
    };
    pthread_mutex_lock(&t->stats_lock);
    for (size_t f = 0; f < SONDE_ARRAY_LEN(fams); f++) {
        if (t->nnotifiers == 0 ||
            sonde_emit_family(em, fams[f].type, fams[f].name, fams[f].help, NULL) != SONDE_OK)
            continue;
        for (size_t i = 0; i < t->nnotifiers; i++) {
            notifier *n = t->notifiers[i];
            double v = f == 0   ? (double)atomic_load(&n->sent)
                       : f == 1 ? (double)atomic_load(&n->failed)
                       : f == 2 ? (double)atomic_load(&n->retries)
                                : (double)atomic_load(&n->queued_stat);
            const char *kv[2] = {"notifier", n->name};
            sonde_emit_sample(em, kv, 1, v);
        }
    }
    pthread_mutex_unlock(&t->stats_lock);
}

/* ---- create / destroy ---- */

static char *env_or_dup(const char *v, const char *env, const char *def)
{
    if (!v)
        v = getenv(env);
    if (!v || !v[0])
        v = def;
    return v ? sonde__strdup(v) : NULL;
}

int sonde_errors_create(const sonde_errors_opts *in, sonde_errors **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde_errors_opts o;
    if (in)
        o = *in;
    else
        sonde_errors_opts_init(&o);
    size_t qsize = o.queue_size ? o.queue_size : 1024;
    if (qsize < 16 || qsize > ((size_t)1 << 20) || (o.tick_ms && o.tick_ms > 10000) ||
        (o.eval_interval_ms && (o.eval_interval_ms < 10 || o.eval_interval_ms > 3600000)) ||
        o.group_retention_hours < 0 || o.alert_retention_hours < 0 ||
        isnan(o.group_retention_hours) || isnan(o.alert_retention_hours) ||
        o.max_groups > ((size_t)1 << 24) || o.max_history > ((size_t)1 << 20) ||
        (o.store_flush_ms && (o.store_flush_ms < 10 || o.store_flush_ms > 600000))) {
        sonde__set_error("sonde_errors_create: an option is out of bounds");
        return SONDE_EINVAL;
    }
    sonde_errors *t = sonde__calloc(1, sizeof *t);
    if (!t)
        return SONDE_ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->stats_lock, NULL);
    pthread_mutex_init(&t->life, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->idle, &ca);
    pthread_condattr_destroy(&ca);
    static _Atomic uint64_t next_gen = 1;
    t->gen = atomic_fetch_add_explicit(&next_gen, 1, memory_order_relaxed);
    t->registry = o.registry ? o.registry : sonde_registry_default();
    t->clock = o.clock;
    t->clock_ud = o.clock_userdata;
    t->no_log = o.no_log != 0;
    t->no_env = o.no_env_notifiers != 0;
    t->tick_ms = o.tick_ms ? o.tick_ms : 50;
    t->eval_ms = o.eval_interval_ms ? o.eval_interval_ms : 1000;
    t->stop_timeout_ms = o.stop_timeout_ms ? o.stop_timeout_ms : 2000;
    t->group_retention_s = 3600 * (o.group_retention_hours ? o.group_retention_hours : 720);
    t->alert_retention_s = 3600 * (o.alert_retention_hours ? o.alert_retention_hours : 168);
    t->hist_max = o.max_history ? o.max_history : 1000;
    t->rng = sonde__now_mono_ns() ^ (uint64_t)(uintptr_t)t;
    t->service = env_or_dup(o.service_name, "SONDE_SERVICE_NAME", program_invocation_short_name);
    t->service_explicit = o.service_name != NULL;
    t->external_url = env_or_dup(o.external_url, "SONDE_EXTERNAL_URL", NULL);
    t->store_spec = env_or_dup(o.store, "SONDE_STORE", NULL);
    t->store_flush_ms = o.store_flush_ms ? o.store_flush_ms : 2000;
    t->store_token = t->rng ^ ((uint64_t)getpid() << 32);
    int rc_pre = SONDE_OK;
    if (t->store_spec) {
        /* Validate the address now; the store opens on the worker. */
        char err[256] = "";
        sonde__store_spec spec;
        if (sonde__store_spec_parse(t->store_spec, &spec, err, sizeof err) != SONDE_OK) {
            sonde__set_error("sonde_errors_create: store: %s", err);
            rc_pre = SONDE_EINVAL;
        }
        sonde__store_spec_free(&spec);
    }
    int rc = rc_pre ? rc_pre : sonde__ring_init(&t->ring, qsize);
    rc = rc ? rc : sonde__groups_init(&t->groups, o.max_groups ? o.max_groups : 10000);
    if (!rc && !(t->history = sonde__calloc(t->hist_max, sizeof *t->history)))
        rc = SONDE_ENOMEM;
    if (!rc && !t->service)
        rc = SONDE_ENOMEM;
    if (!rc) {
        snprintf(t->collector, sizeof t->collector, "sonde_errors");
        rc = sonde_registry_add_collector(t->registry, t->collector, collect, t);
        if (rc == SONDE_ECONFLICT)
            sonde__set_error("sonde_errors_create: the registry already has an error tracker");
        if (rc)
            t->collector[0] = '\0';
    }
    if (!rc) {
        static const char *const labels[2] = {"severity", "type"};
        sonde_metric_opts mo;
        sonde_metric_opts_init(&mo);
        mo.name = "sonde_errors_total";
        mo.help = "Errors captured, by severity and type";
        mo.label_names = labels;
        mo.label_count = 2;
        mo.max_series = 1000;
        rc = sonde_family_create(t->registry, SONDE_COUNTER, &mo, &t->total);
    }
    if (rc) {
        sonde_errors_destroy(t);
        return rc;
    }
    *out = t;
    return SONDE_OK;
}

static void free_all(sonde_errors *t)
{
    if (t->collector[0])
        sonde_registry_remove_collector(t->registry, t->collector);
    for (size_t i = 0; i < t->nrules; i++)
        sonde__rule_free(t->rules[i]);
    sonde__silences_free(t);
    for (size_t i = 0; i < t->nnotifiers; i++)
        sonde__notifier_free(t->notifiers[i]);
    for (size_t i = 0; t->history && i < t->hist_max; i++) {
        sonde__free(t->history[i].rule);
        sonde__free(t->history[i].summary);
    }
    sonde__free(t->history);
    sonde__groups_free(&t->groups);
    sonde__ring_free(&t->ring);
    sonde__errstore_close(t->store);
    sonde__free(t->store_spec);
    sonde__free(t->service);
    sonde__free(t->external_url);
    sonde__free(t->served_url);
    pthread_cond_destroy(&t->idle);
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->stats_lock);
    pthread_mutex_destroy(&t->life);
    sonde__free(t);
}

static void stop_now(sonde_errors *t);

void sonde_errors_destroy(sonde_errors *t)
{
    if (!t || t->is_default)
        return;
    pthread_mutex_lock(&t->life);
    if (t->starts > 0) {
        t->starts = 1;
        stop_now(t);
    }
    pthread_mutex_unlock(&t->life);
    free_all(t);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static sonde_errors *default_tracker;

static void default_init(void)
{
    sonde_errors *t = NULL;
    if (sonde_errors_create(NULL, &t) == SONDE_OK) {
        t->is_default = true;
        default_tracker = t;
    }
}

sonde_errors *sonde_errors_default(void)
{
    pthread_once(&default_once, default_init);
    return default_tracker;
}

sonde_errors *sonde__errors_resolve(sonde_errors *t)
{
    return t ? t : sonde_errors_default();
}

/* ---- running ---- */

static void evaluate(sonde_errors *t, double now)
{
    sonde__rules_eval(t, now);
    if (now - t->last_prune >= 60 || now < t->last_prune) {
        t->last_prune = now;
        sonde__groups_prune(&t->groups, (int64_t)((now - t->group_retention_s) * 1e9));
        sonde__history_prune(t, now);
    }
    atomic_store(&t->groups_stat, t->groups.count);
}

static void tick(void *ud, uint64_t now_mono)
{
    SONDE_UNUSED(now_mono);
    sonde_errors *t = ud;
    pthread_mutex_lock(&t->lock);
    sonde__errors_drain(t);
    atomic_store(&t->groups_stat, t->groups.count);
    double now = sonde__errors_now(t);
    if (now - t->last_eval >= (double)t->eval_ms / 1000.0 || now < t->last_eval)
        evaluate(t, now);
    sonde__notify_pump(t);
    sonde__errstore_tick(t, false);
    pthread_mutex_unlock(&t->lock);
}

void sonde_errors_process(sonde_errors *t)
{
    if (!(t = sonde__errors_resolve(t)))
        return;
    pthread_mutex_lock(&t->lock);
    sonde__errors_drain(t);
    evaluate(t, sonde__errors_now(t));
    pthread_mutex_unlock(&t->lock);
}

int sonde_errors_start(sonde_errors *t)
{
    if (!sonde_enabled())
        return SONDE_OK;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    pthread_mutex_lock(&t->life);
    if (t->starts++ > 0) {
        pthread_mutex_unlock(&t->life);
        return SONDE_OK;
    }
    pthread_mutex_lock(&t->lock);
    if (!t->env_done && !t->no_env) {
        t->env_done = true;
        sonde__notify_env(t);
    }
    int rc = sonde__notify_start(t);
    pthread_mutex_unlock(&t->lock);
    rc = rc ? rc : sonde__runtime_start();
    if (rc) {
        t->starts = 0;
        pthread_mutex_unlock(&t->life);
        return rc;
    }
    uint64_t id = 0;
    rc = sonde__runtime_every(t->tick_ms, tick, t, &id);
    if (rc) {
        sonde__runtime_stop();
        t->starts = 0;
    } else {
        atomic_store(&t->timer_id, id);
    }
    pthread_mutex_unlock(&t->life);
    return rc;
}

/* The last stop: t->life held. */
static void stop_now(sonde_errors *t)
{
    t->starts = 0;
    uint64_t id = atomic_exchange(&t->timer_id, 0);
    /* Cancel waits for a tick in progress, which takes t->lock: never
     * hold t->lock here. */
    sonde__runtime_cancel(id);
    sonde__runtime_stop();
    pthread_mutex_lock(&t->lock);
    sonde__errors_drain(t);
    evaluate(t, sonde__errors_now(t));
    sonde__notify_stop(t, t->stop_timeout_ms);
    /* A last write of what changed, bounded by the store's timeouts. */
    sonde__errstore_tick(t, true);
    sonde__errstore_close(t->store);
    t->store = NULL;
    pthread_mutex_unlock(&t->lock);
}

void sonde_errors_stop(sonde_errors *t)
{
    if (!(t = sonde__errors_resolve(t)))
        return;
    pthread_mutex_lock(&t->life);
    if (t->starts > 1)
        t->starts--;
    else if (t->starts == 1)
        stop_now(t);
    pthread_mutex_unlock(&t->life);
}

int sonde_alerts_wait_idle(sonde_errors *t, int timeout_ms)
{
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    dl.tv_sec += (time_t)(ns / 1000000000u);
    dl.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&t->lock);
    int rc = SONDE_OK;
    while (!sonde__notify_idle(t)) {
        if (!t->multi) {
            rc = SONDE_ESTATE;
            break;
        }
        if (pthread_cond_timedwait(&t->idle, &t->lock, &dl) != 0 && !sonde__notify_idle(t)) {
            rc = SONDE_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* Called by sonde_start: its service name labels the alerts unless the
 * tracker was given one. */
void sonde__errors_set_service(sonde_errors *t, const char *name);
void sonde__errors_set_service(sonde_errors *t, const char *name)
{
    if (!t || !name || !name[0] || t->service_explicit)
        return;
    char *s = sonde__strdup(name);
    if (!s)
        return;
    pthread_mutex_lock(&t->lock);
    sonde__free(t->service);
    t->service = s;
    pthread_mutex_unlock(&t->lock);
}

/* Called by sonde_start with the served address ("host:port"). */
void sonde__errors_set_served(sonde_errors *t, const char *address, bool tls);
void sonde__errors_set_served(sonde_errors *t, const char *address, bool tls)
{
    if (!t)
        return;
    char host[256] = "";
    const char *port = address ? strrchr(address, ':') : NULL;
    sonde_buf b = {0};
    int rc = sonde__buf_puts(&b, tls ? "https://" : "http://");
    if (address && port &&
        (strncmp(address, "[::]", 4) == 0 || strncmp(address, "0.0.0.0", 7) == 0) &&
        gethostname(host, sizeof host - 1) == 0 && host[0]) {
        rc = rc ? rc : sonde__buf_puts(&b, host);
        rc = rc ? rc : sonde__buf_puts(&b, port);
    } else if (address) {
        rc = rc ? rc : sonde__buf_puts(&b, address);
    }
    pthread_mutex_lock(&t->lock);
    sonde__free(t->served_url);
    t->served_url = NULL;
    if (!rc && address)
        t->served_url = b.data;
    else
        sonde_buf_free(&b);
    pthread_mutex_unlock(&t->lock);
}
