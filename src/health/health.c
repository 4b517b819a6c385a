/*
 * Health sets: check registry, scheduling on the runtime worker, runs on
 * their own threads with timeouts, cached results, JSON and metrics.
 *
 * Ownership: a check is reference-counted. The set holds one reference while
 * the check is registered; a run in progress holds another. The check (and
 * its userdata, through free_userdata) is released when the last reference
 * goes, which may be long after removal if a run hangs. A run therefore
 * never touches the set, only its check.
 *
 * Locking: h->lock protects the set's array of check pointers and is taken
 * before a check's lock, never after. c->lock protects the check's
 * scheduling state and cached result.
 */
#include "health/health.h"
#include <sonde/log.h>

#include "core/worker.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_NS (5ull * 1000000000u)
#define DEFAULT_INTERVAL_NS (15ull * 1000000000u)
#define DEFAULT_MAX_CHECKS 256
#define TICK_MS 100

typedef struct check {
    atomic_int refs;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* broadcast when a result is recorded */

    /* Immutable after creation. */
    char *name;
    char *ident;
    sonde_health_fn fn;
    void *ud;
    void (*free_ud)(void *);
    uint64_t timeout_ns;
    uint64_t interval_ns;
    bool critical;

    /* Scheduling, under lock. */
    bool running;
    bool run_timed_out; /* the run in progress was already reported */
    uint64_t run_gen;
    uint64_t run_started_ns;
    uint64_t next_due_ns; /* 0: due now */

    /* Cached result, under lock. */
    sonde_health_status status;
    char message[SONDE__HEALTH_MESSAGE_LEN];
    char *details_json; /* "k":"v",... or NULL */
    double duration_s;
    double last_run;
    uint64_t results; /* bumped at every recorded result */
    uint64_t runs, timeouts, late;
} check;

struct sonde_health {
    pthread_mutex_t lock;
    check **checks;
    size_t count, cap, max_checks;
    sonde_registry *registry;
    char collector[48];
    uint64_t timer_id;
    unsigned started;
    bool is_default;
};

const char *sonde_health_status_name(sonde_health_status s)
{
    switch (s) {
    case SONDE_HEALTH_HEALTHY:
        return "healthy";
    case SONDE_HEALTH_DEGRADED:
        return "degraded";
    case SONDE_HEALTH_UNHEALTHY:
        return "unhealthy";
    default:
        return "pending";
    }
}

static double status_score(sonde_health_status s)
{
    return s == SONDE_HEALTH_HEALTHY ? 1.0 : s == SONDE_HEALTH_DEGRADED ? 0.5 : 0.0;
}

/* ---- results ---- */

void sonde_health_result_set_message(sonde_health_result *res, const char *fmt, ...)
{
    if (!res || !fmt)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

static void add_detail(sonde_health_result *res, const char *key, const char *value, bool number)
{
    if (!res || !key || res->ndetails >= SONDE__HEALTH_MAX_DETAILS)
        return;
    size_t i = res->ndetails++;
    snprintf(res->details[i].key, sizeof res->details[i].key, "%s", key);
    snprintf(res->details[i].value, sizeof res->details[i].value, "%s", value ? value : "");
    res->details[i].number = number;
}

void sonde_health_result_add_detail(sonde_health_result *res, const char *key, const char *value)
{
    add_detail(res, key, value, false);
}

void sonde_health_result_add_number(sonde_health_result *res, const char *key, double value)
{
    char tmp[33];
    sonde__fmt_double(tmp, value);
    add_detail(res, key, tmp, isfinite(value));
}

/* Render details as JSON object members; NULL when there are none or on
 * allocation failure (details are best effort). */
static char *details_to_json(const sonde_health_result *res)
{
    if (res->ndetails == 0)
        return NULL;
    sonde_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < res->ndetails && !rc; i++) {
        if (i)
            rc = sonde__buf_putc(&b, ',');
        if (!rc)
            rc = sonde__buf_json_str(&b, res->details[i].key);
        if (!rc)
            rc = sonde__buf_putc(&b, ':');
        if (!rc)
            rc = res->details[i].number ? sonde__buf_puts(&b, res->details[i].value)
                                        : sonde__buf_json_str(&b, res->details[i].value);
    }
    if (rc) {
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ---- checks ---- */

static void check_unref(check *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (c->free_ud)
        c->free_ud(c->ud);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->changed);
    sonde__free(c->details_json);
    sonde__free(c->name);
    sonde__free(c->ident);
    sonde__free(c);
}

/* Record a result; c->lock held. Takes ownership of details. */
static void record(check *c, sonde_health_status st, const char *msg, char *details, double dur)
{
    c->status = st;
    snprintf(c->message, sizeof c->message, "%s", msg ? msg : "");
    sonde__free(c->details_json);
    c->details_json = details;
    c->duration_s = dur;
    c->last_run = sonde__now_wall();
    c->results++;
    pthread_cond_broadcast(&c->changed);
}

typedef struct run {
    check *c;
    uint64_t gen;
    uint64_t started_ns;
} run;

static void *run_main(void *arg)
{
    run *r = arg;
    check *c = r->c;
    pthread_setname_np(pthread_self(), "sonde-check");
    sonde_health_result *res = sonde__calloc(1, sizeof *res);
    sonde_health_status st;
    if (res) {
        st = c->fn(res, c->ud);
        if (st != SONDE_HEALTH_HEALTHY && st != SONDE_HEALTH_DEGRADED)
            st = SONDE_HEALTH_UNHEALTHY;
    } else {
        st = SONDE_HEALTH_UNHEALTHY;
    }
    uint64_t end = sonde__now_mono_ns();
    char *details = res ? details_to_json(res) : NULL;
    pthread_mutex_lock(&c->lock);
    if (c->run_gen == r->gen && !c->run_timed_out) {
        record(c, st, res ? res->message : "out of memory running the check", details,
               (double)(end - r->started_ns) / 1e9);
        details = NULL;
    } else {
        /* The run was already reported as timed out; its late result is
         * dropped so a flapping check reads as what it is: too slow. */
        c->late++;
    }
    c->running = false;
    pthread_mutex_unlock(&c->lock);
    sonde__free(details);
    sonde__free(res);
    sonde__free(r);
    check_unref(c);
    return NULL;
}

/* Start a run of c on a new detached thread; c->lock held. */
static void start_run(check *c, uint64_t now)
{
    run *r = sonde__malloc(sizeof *r);
    if (!r)
        return;
    c->run_gen++;
    *r = (run){.c = c, .gen = c->run_gen, .started_ns = now};
    atomic_fetch_add(&c->refs, 1);
    c->running = true;
    c->run_timed_out = false;
    c->run_started_ns = now;
    c->next_due_ns = now + c->interval_ns;
    c->runs++;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, run_main, r);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        c->running = false;
        atomic_fetch_sub(&c->refs, 1); /* the set still holds one */
        sonde__free(r);
        char msg[128];
        snprintf(msg, sizeof msg, "cannot start the check thread: %s", strerror(rc));
        record(c, SONDE_HEALTH_UNHEALTHY, msg, NULL, 0);
        sonde__diag(SONDE_LOG_WARNING, "health", "check %s: %s", c->name, msg);
    }
}

/* The scheduler: runs on the runtime worker every TICK_MS. Starts due
 * checks and reports overdue runs as timed out. Never blocks on a check. */
static void tick(void *ud, uint64_t now)
{
    sonde_health *h = ud;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->count; i++) {
        check *c = h->checks[i];
        pthread_mutex_lock(&c->lock);
        if (c->running) {
            if (!c->run_timed_out && now - c->run_started_ns > c->timeout_ns) {
                char msg[96];
                double t = (double)c->timeout_ns / 1e9;
                char num[33];
                sonde__fmt_double(num, t);
                snprintf(msg, sizeof msg, "timed out after %s s", num);
                c->run_timed_out = true;
                c->timeouts++;
                record(c, SONDE_HEALTH_UNHEALTHY, msg, NULL, t);
                sonde__diag(SONDE_LOG_WARNING, "health", "check %s %s", c->name, msg);
            }
        } else if (c->next_due_ns <= now) {
            start_run(c, now);
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&h->lock);
}

/* ---- sets ---- */

static void collect(sonde_emitter *em, void *ud);

void sonde_health_check_opts_init(sonde_health_check_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

static int health_init(sonde_health *h, const sonde_health_opts *opts)
{
    pthread_mutex_init(&h->lock, NULL);
    h->max_checks = opts && opts->max_checks ? opts->max_checks : DEFAULT_MAX_CHECKS;
    h->registry = opts ? opts->registry : NULL;
    if (h->is_default)
        h->registry = sonde_registry_default();
    if (h->registry) {
        snprintf(h->collector, sizeof h->collector, "sonde_health");
        int rc = sonde_registry_add_collector(h->registry, h->collector, collect, h);
        if (rc) {
            pthread_mutex_destroy(&h->lock);
            return rc;
        }
    }
    return SONDE_OK;
}

int sonde_health_create(const sonde_health_opts *opts, sonde_health **out)
{
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde_health *h = sonde__calloc(1, sizeof *h);
    if (!h)
        return SONDE_ENOMEM;
    int rc = health_init(h, opts);
    if (rc) {
        sonde__free(h);
        return rc;
    }
    *out = h;
    return SONDE_OK;
}

static sonde_health default_set = {.is_default = true};
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    if (health_init(&default_set, NULL) != SONDE_OK) {
        /* The collector could not be added (no memory); the set still works
         * without its metrics. */
        default_set.registry = NULL;
        pthread_mutex_init(&default_set.lock, NULL);
        default_set.max_checks = DEFAULT_MAX_CHECKS;
    }
}

sonde_health *sonde_health_default(void)
{
    pthread_once(&default_once, default_init);
    return &default_set;
}

static sonde_health *resolve(sonde_health *h)
{
    return h ? h : sonde_health_default();
}

static void remove_all(sonde_health *h)
{
    pthread_mutex_lock(&h->lock);
    check **cs = h->checks;
    size_t n = h->count;
    h->checks = NULL;
    h->count = h->cap = 0;
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n; i++)
        check_unref(cs[i]);
    sonde__free(cs);
}

void sonde_health_destroy(sonde_health *h)
{
    if (!h || h->is_default)
        return;
    if (h->timer_id)
        sonde__runtime_cancel(h->timer_id);
    if (h->started)
        sonde__runtime_stop();
    if (h->registry)
        sonde_registry_remove_collector(h->registry, h->collector);
    remove_all(h);
    pthread_mutex_destroy(&h->lock);
    sonde__free(h);
}

int sonde_health_start(sonde_health *h)
{
    if (!sonde_enabled())
        return SONDE_OK; /* off: checks are kept but never run */
    h = resolve(h);
    pthread_mutex_lock(&h->lock);
    if (h->started++ > 0) {
        pthread_mutex_unlock(&h->lock);
        return SONDE_OK;
    }
    int rc = sonde__runtime_every(TICK_MS, tick, h, &h->timer_id);
    if (!rc) {
        rc = sonde__runtime_start();
        if (rc) {
            sonde__runtime_cancel(h->timer_id);
            h->timer_id = 0;
        }
    }
    if (rc)
        h->started = 0;
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void sonde_health_stop(sonde_health *h)
{
    h = resolve(h);
    pthread_mutex_lock(&h->lock);
    if (h->started == 0 || --h->started > 0) {
        pthread_mutex_unlock(&h->lock);
        return;
    }
    uint64_t id = h->timer_id;
    h->timer_id = 0;
    pthread_mutex_unlock(&h->lock);
    /* Cancel outside the lock: the tick takes it. */
    sonde__runtime_cancel(id);
    sonde__runtime_stop();
}

static bool valid_check_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
        if (n >= 64)
            return false;
    }
    return n > 0;
}

static check *find(sonde_health *h, const char *name)
{
    for (size_t i = 0; i < h->count; i++)
        if (strcmp(h->checks[i]->name, name) == 0)
            return h->checks[i];
    return NULL;
}

int sonde__health_add_ident(sonde_health *h, const sonde_health_check_opts *opts,
                            sonde_health_fn fn, void *ud, const char *ident)
{
    h = resolve(h);
    if (!opts || !fn || !opts->name || !valid_check_name(opts->name)) {
        sonde__set_error("health check: a name of 1 to 64 characters [a-zA-Z0-9_.:-] and a "
                         "callback are required");
        return SONDE_EINVAL;
    }
    double to = opts->timeout_seconds, iv = opts->interval_seconds;
    if (to < 0 || iv < 0 || isnan(to) || isnan(iv) || (to != 0 && (to < 0.001 || to > 3600)) ||
        (iv != 0 && (iv < 0.01 || iv > 86400))) {
        sonde__set_error("health check %s: timeout must be in [0.001, 3600] s and interval in "
                         "[0.01, 86400] s",
                         opts->name);
        return SONDE_EINVAL;
    }
    check *c = sonde__calloc(1, sizeof *c);
    if (!c)
        return SONDE_ENOMEM;
    c->name = sonde__strdup(opts->name);
    c->ident = sonde__strdup(ident ? ident : "");
    if (!c->name || !c->ident) {
        sonde__free(c->name);
        sonde__free(c->ident);
        sonde__free(c);
        return SONDE_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    c->fn = fn;
    c->ud = ud;
    c->timeout_ns = to ? (uint64_t)(to * 1e9) : DEFAULT_TIMEOUT_NS;
    c->interval_ns = iv ? (uint64_t)(iv * 1e9) : DEFAULT_INTERVAL_NS;
    c->critical = !opts->informational;
    c->status = SONDE_HEALTH_PENDING;
    snprintf(c->message, sizeof c->message, "not run yet");

    int rc = SONDE_OK;
    pthread_mutex_lock(&h->lock);
    if (find(h, c->name)) {
        sonde__set_error("health check %s is already registered", c->name);
        rc = SONDE_ECONFLICT;
    } else if (h->count >= h->max_checks) {
        sonde__set_error("health check %s: the set is full (%zu checks)", c->name, h->max_checks);
        rc = SONDE_ELIMIT;
    } else if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        check **a = sonde__realloc(h->checks, cap * sizeof *a);
        if (!a) {
            rc = SONDE_ENOMEM;
        } else {
            h->checks = a;
            h->cap = cap;
        }
    }
    if (!rc)
        h->checks[h->count++] = c;
    uint64_t timer = h->timer_id;
    pthread_mutex_unlock(&h->lock);
    if (rc) {
        check_unref(c); /* userdata not freed on error: free_ud not set yet */
        return rc;
    }
    c->free_ud = opts->free_userdata;
    if (timer)
        sonde__runtime_trigger(timer);
    return SONDE_OK;
}

int sonde_health_add(sonde_health *h, const sonde_health_check_opts *opts, sonde_health_fn fn,
                     void *userdata)
{
    char ident[128];
    double to = opts ? opts->timeout_seconds : 0, iv = opts ? opts->interval_seconds : 0;
    snprintf(ident, sizeof ident, "fn:%p:%p:%g:%g:%d", (void *)(uintptr_t)fn, userdata, to, iv,
             opts ? opts->informational : 0);
    return sonde__health_add_ident(h, opts, fn, userdata, ident);
}

int sonde_health_remove(sonde_health *h, const char *name)
{
    h = resolve(h);
    if (!name)
        return SONDE_ENOTFOUND;
    check *victim = NULL;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->checks[i]->name, name) == 0) {
            victim = h->checks[i];
            memmove(&h->checks[i], &h->checks[i + 1], (h->count - i - 1) * sizeof *h->checks);
            h->count--;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (!victim)
        return SONDE_ENOTFOUND;
    check_unref(victim);
    return SONDE_OK;
}

int sonde_health_replace(sonde_health *h, sonde_health *from)
{
    h = resolve(h);
    if (!from || from == h)
        return SONDE_EINVAL;
    /* Take the new checks out of `from` first so the two set locks are never
     * held together. */
    pthread_mutex_lock(&from->lock);
    check **fresh = from->checks;
    size_t nfresh = from->count;
    from->checks = NULL;
    from->count = from->cap = 0;
    pthread_mutex_unlock(&from->lock);

    check **keep = nfresh ? sonde__calloc(nfresh, sizeof *keep) : NULL;
    if (nfresh && !keep) {
        for (size_t i = 0; i < nfresh; i++)
            check_unref(fresh[i]);
        sonde__free(fresh);
        return SONDE_ENOMEM;
    }
    pthread_mutex_lock(&h->lock);
    check **old = h->checks;
    size_t nold = h->count;
    /* A new check identical to an old one (same name and definition) keeps
     * the old object: its cached result and any run in progress carry on. */
    for (size_t i = 0; i < nfresh; i++) {
        keep[i] = fresh[i];
        for (size_t j = 0; j < nold; j++) {
            if (old[j] && strcmp(old[j]->name, fresh[i]->name) == 0 &&
                strcmp(old[j]->ident, fresh[i]->ident) == 0) {
                keep[i] = old[j];
                old[j] = NULL;
                break;
            }
        }
    }
    h->checks = keep;
    h->count = nfresh;
    h->cap = nfresh;
    uint64_t timer = h->timer_id;
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < nfresh; i++)
        if (keep[i] != fresh[i])
            check_unref(fresh[i]);
    for (size_t j = 0; j < nold; j++)
        if (old[j])
            check_unref(old[j]);
    sonde__free(old);
    sonde__free(fresh);
    if (timer)
        sonde__runtime_trigger(timer);
    return SONDE_OK;
}

int sonde_health_run_now(sonde_health *h, const char *name)
{
    h = resolve(h);
    bool found = false;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->count; i++) {
        check *c = h->checks[i];
        if (name && strcmp(c->name, name) != 0)
            continue;
        found = true;
        pthread_mutex_lock(&c->lock);
        c->next_due_ns = 0;
        pthread_mutex_unlock(&c->lock);
    }
    uint64_t timer = h->timer_id;
    pthread_mutex_unlock(&h->lock);
    if (!found && name)
        return SONDE_ENOTFOUND;
    if (timer)
        sonde__runtime_trigger(timer);
    return SONDE_OK;
}

int sonde_health_wait(sonde_health *h, const char *name, int timeout_ms)
{
    if (!sonde_enabled())
        return SONDE_OK;
    h = resolve(h);
    if (sonde__runtime_is_worker())
        return SONDE_ESTATE;
    pthread_mutex_lock(&h->lock);
    bool started = h->timer_id != 0;
    size_t n = 0;
    check **cs = h->count ? sonde__calloc(h->count, sizeof *cs) : NULL;
    uint64_t *gens = h->count ? sonde__calloc(h->count, sizeof *gens) : NULL;
    if (h->count && (!cs || !gens)) {
        pthread_mutex_unlock(&h->lock);
        sonde__free(cs);
        sonde__free(gens);
        return SONDE_ENOMEM;
    }
    for (size_t i = 0; i < h->count; i++) {
        check *c = h->checks[i];
        if (name && strcmp(c->name, name) != 0)
            continue;
        atomic_fetch_add(&c->refs, 1);
        pthread_mutex_lock(&c->lock);
        gens[n] = c->results;
        c->next_due_ns = 0;
        pthread_mutex_unlock(&c->lock);
        cs[n++] = c;
    }
    uint64_t timer = h->timer_id;
    pthread_mutex_unlock(&h->lock);
    int rc = SONDE_OK;
    if (name && n == 0)
        rc = SONDE_ENOTFOUND;
    else if (!started)
        rc = SONDE_ESTATE;
    if (!rc && timer)
        sonde__runtime_trigger(timer);
    uint64_t deadline =
        sonde__now_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    for (size_t i = 0; i < n && !rc; i++) {
        check *c = cs[i];
        pthread_mutex_lock(&c->lock);
        /* Done when a newer result exists, or when the run in progress has
         * already been reported as timed out (nothing newer can come). */
        while (c->results == gens[i] && !(c->running && c->run_timed_out)) {
            uint64_t now = sonde__now_mono_ns();
            if (now >= deadline) {
                rc = SONDE_ETIMEOUT;
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t left = deadline - now;
            if (left > 50000000u)
                left = 50000000u; /* re-check at least every 50 ms */
            ts.tv_nsec += (long)left;
            while (ts.tv_nsec >= 1000000000L) {
                ts.tv_nsec -= 1000000000L;
                ts.tv_sec++;
            }
            pthread_cond_timedwait(&c->changed, &c->lock, &ts);
        }
        pthread_mutex_unlock(&c->lock);
    }
    for (size_t i = 0; i < n; i++)
        check_unref(cs[i]);
    sonde__free(cs);
    sonde__free(gens);
    return rc;
}

int sonde_health_get(sonde_health *h, const char *name, sonde_health_check_state *out)
{
    h = resolve(h);
    if (!name || !out)
        return SONDE_EINVAL;
    int rc = SONDE_ENOTFOUND;
    pthread_mutex_lock(&h->lock);
    check *c = find(h, name);
    if (c) {
        pthread_mutex_lock(&c->lock);
        out->status = c->status;
        snprintf(out->message, sizeof out->message, "%s", c->message);
        out->duration_seconds = c->duration_s;
        out->last_run = c->last_run;
        out->critical = c->critical;
        out->runs = c->runs;
        out->timeouts = c->timeouts;
        pthread_mutex_unlock(&c->lock);
        rc = SONDE_OK;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void sonde_health_summarize(sonde_health *h, sonde_health_summary *out)
{
    h = resolve(h);
    memset(out, 0, sizeof *out);
    bool crit_bad = false, soft_bad = false;
    double score = 0;
    pthread_mutex_lock(&h->lock);
    out->checks = h->count;
    for (size_t i = 0; i < h->count; i++) {
        check *c = h->checks[i];
        pthread_mutex_lock(&c->lock);
        sonde_health_status s = c->status;
        bool crit = c->critical;
        pthread_mutex_unlock(&c->lock);
        score += status_score(s);
        switch (s) {
        case SONDE_HEALTH_HEALTHY:
            out->healthy++;
            break;
        case SONDE_HEALTH_DEGRADED:
            out->degraded++;
            soft_bad = true;
            break;
        case SONDE_HEALTH_UNHEALTHY:
            out->unhealthy++;
            if (crit)
                crit_bad = true;
            else
                soft_bad = true;
            break;
        default:
            out->pending++;
            soft_bad = true;
            if (crit)
                out->ready = -1; /* marker: a critical check has no result yet */
        }
    }
    pthread_mutex_unlock(&h->lock);
    int pending_crit = out->ready == -1;
    out->percentage = out->checks ? 100.0 * score / (double)out->checks : 100.0;
    out->status = crit_bad   ? SONDE_HEALTH_UNHEALTHY
                  : soft_bad ? SONDE_HEALTH_DEGRADED
                             : SONDE_HEALTH_HEALTHY;
    out->ready = !crit_bad && !pending_crit;
}

static int write_check(sonde_buf *b, check *c, int detailed)
{
    int rc = sonde__buf_json_str(b, c->name);
    rc = rc ? rc : sonde__buf_puts(b, ":{\"status\":");
    rc = rc ? rc : sonde__buf_json_str(b, sonde_health_status_name(c->status));
    rc = rc ? rc : sonde__buf_puts(b, c->critical ? ",\"critical\":true" : ",\"critical\":false");
    if (detailed) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"message\":");
        rc = rc ? rc : sonde__buf_json_str(b, c->message);
        rc = rc ? rc : sonde__buf_puts(b, ",\"duration_seconds\":");
        rc = rc ? rc : sonde__buf_json_double(b, c->duration_s);
        rc = rc ? rc : sonde__buf_puts(b, ",\"last_run\":");
        if (!rc)
            rc =
                c->last_run > 0 ? sonde__buf_json_time(b, c->last_run) : sonde__buf_puts(b, "null");
        rc = rc ? rc : sonde__buf_puts(b, ",\"timeout_seconds\":");
        rc = rc ? rc : sonde__buf_json_double(b, (double)c->timeout_ns / 1e9);
        rc = rc ? rc : sonde__buf_puts(b, ",\"interval_seconds\":");
        rc = rc ? rc : sonde__buf_json_double(b, (double)c->interval_ns / 1e9);
        rc = rc ? rc
                : sonde__buf_printf(b, ",\"runs\":%llu,\"timeouts\":%llu",
                                    (unsigned long long)c->runs, (unsigned long long)c->timeouts);
        rc = rc ? rc : sonde__buf_puts(b, ",\"details\":{");
        if (!rc && c->details_json)
            rc = sonde__buf_puts(b, c->details_json);
        rc = rc ? rc : sonde__buf_putc(b, '}');
    }
    return rc ? rc : sonde__buf_putc(b, '}');
}

int sonde__health_write_members(sonde_health *h, int detailed, sonde_buf *b)
{
    h = resolve(h);
    sonde_health_summary s;
    sonde_health_summarize(h, &s);
    int rc = sonde__buf_puts(b, "\"status\":");
    rc = rc ? rc : sonde__buf_json_str(b, sonde_health_status_name(s.status));
    rc = rc ? rc : sonde__buf_puts(b, ",\"health_percentage\":");
    rc = rc ? rc : sonde__buf_json_double(b, round(s.percentage * 100) / 100);
    rc = rc ? rc : sonde__buf_puts(b, s.ready ? ",\"ready\":true" : ",\"ready\":false");
    rc = rc ? rc : sonde__buf_puts(b, ",\"timestamp\":");
    rc = rc ? rc : sonde__buf_json_time(b, sonde__now_wall());
    rc = rc ? rc
            : sonde__buf_printf(b,
                                ",\"summary\":{\"total\":%zu,\"healthy\":%zu,\"degraded\":%zu,"
                                "\"unhealthy\":%zu,\"pending\":%zu}",
                                s.checks, s.healthy, s.degraded, s.unhealthy, s.pending);
    rc = rc ? rc : sonde__buf_puts(b, ",\"checks\":{");
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->count && !rc; i++) {
        check *c = h->checks[i];
        if (i)
            rc = sonde__buf_putc(b, ',');
        pthread_mutex_lock(&c->lock);
        rc = rc ? rc : write_check(b, c, detailed);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return rc ? rc : sonde__buf_putc(b, '}');
}

int sonde_health_write_json(sonde_health *h, int detailed, sonde_buf *out)
{
    if (!out)
        return SONDE_EINVAL;
    size_t mark = out->len;
    int rc = sonde__buf_putc(out, '{');
    rc = rc ? rc : sonde__health_write_members(h, detailed, out);
    rc = rc ? rc : sonde__buf_putc(out, '}');
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

/* ---- metrics ---- */

static void collect(sonde_emitter *em, void *ud)
{
    sonde_health *h = ud;
    sonde_health_summary s;
    sonde_health_summarize(h, &s);
    pthread_mutex_lock(&h->lock);
    size_t n = h->count;
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_health_status",
                          "Health check status: 1 healthy, 0.5 degraded, 0 unhealthy or not run",
                          NULL) == SONDE_OK) {
        for (size_t i = 0; i < n; i++) {
            check *c = h->checks[i];
            pthread_mutex_lock(&c->lock);
            double v = status_score(c->status);
            pthread_mutex_unlock(&c->lock);
            const char *kv[2] = {"check", c->name};
            sonde_emit_sample(em, kv, 1, v);
        }
    }
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_health_check_duration_seconds",
                          "Duration of the last run of each health check", "seconds") == SONDE_OK) {
        for (size_t i = 0; i < n; i++) {
            check *c = h->checks[i];
            pthread_mutex_lock(&c->lock);
            double v = c->duration_s;
            pthread_mutex_unlock(&c->lock);
            const char *kv[2] = {"check", c->name};
            sonde_emit_sample(em, kv, 1, v);
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (sonde_emit_family(em, SONDE_GAUGE, "sonde_health_overall",
                          "Overall health percentage: 100 x (healthy + 0.5 x degraded) / checks",
                          NULL) == SONDE_OK)
        sonde_emit_sample(em, NULL, 0, s.percentage);
}
