/*
 * The logger core: loggers and levels, configuration (code and
 * environment), the log call itself, operations, statistics, and the hook
 * that turns sonde's internal diagnostics into log lines.
 *
 * Level check. Every logger's first member is its threshold: the larger of
 * its effective level and the lowest level any sink accepts (OFF without
 * sinks or when sonde is disabled). The inline sonde_log_enabled compares
 * against it, so a call below the level costs a load and a compare.
 * Thresholds start at TRACE so the very first call of any level reaches
 * sonde_log_write, which initialises logging from the environment and
 * checks again.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"
#include <sonde/metrics.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int sonde__log_root_threshold = SONDE_LOG_TRACE;

struct sonde_logger sonde__root_logger = {
    .threshold = SONDE_LOG_TRACE,
    .level = SONDE_LOG_INFO,
    .effective = SONDE_LOG_INFO,
    .name_len = 4,
    .plain_name = 1,
    .name = "root",
};

log_global sonde__lg = {
    .cfg_lock = PTHREAD_MUTEX_INITIALIZER,
    .sinks_lock = PTHREAD_MUTEX_INITIALIZER,
    .loggers = &sonde__root_logger,
    .logger_count = 1,
    .masking = 1,
    .max_line = LOG_DEFAULT_MAX_LINE,
};

static atomic_int inited;
static pthread_once_t init_once_ctl = PTHREAD_ONCE_INIT;

/* Warnings found while initialising (bad environment values); written by
 * the first log call after initialisation, never from inside it. */
static char init_warn[4][200];
static atomic_int init_warn_n;

/* ---- statistics ----
 * The self-metrics live in the default registry; their per-thread cells
 * make the count on the hot path a plain add. sonde_log_get_stats reads
 * them back. Until they exist (or if registering failed) atomics count. */

static sonde_counter *m_messages[8];
static sonde_counter *m_dropped;
static sonde_counter *m_write_errors;
static _Atomic uint64_t st_messages[8];
static _Atomic uint64_t st_dropped;
static _Atomic uint64_t st_write_errors;

static void register_metrics(void)
{
    static const char *const names[] = {"",        "trace", "debug",   "info",
                                        "warning", "error", "critical"};
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    const char *labels[] = {"level"};
    o.name = "sonde_log_messages_total";
    o.help = "Log messages accepted by sonde's logger, by level.";
    o.label_names = labels;
    o.label_count = 1;
    sonde_family *fam;
    if (sonde_family_create(NULL, SONDE_COUNTER, &o, &fam) == SONDE_OK)
        for (int l = SONDE_LOG_TRACE; l <= SONDE_LOG_CRITICAL; l++)
            m_messages[l] = sonde_family_counter(fam, names[l]);
    sonde_counter *c;
    if (sonde_counter_create(NULL, "sonde_log_dropped_total",
                             "Log messages lost before any sink (queue full, calls from a "
                             "callback sink, no memory).",
                             &c) == SONDE_OK)
        m_dropped = c;
    if (sonde_counter_create(NULL, "sonde_log_write_errors_total",
                             "Log lines a sink failed to write (full disk, removed directory, "
                             "closed socket), counted per sink.",
                             &c) == SONDE_OK)
        m_write_errors = c;
}

static inline void count_message(int level)
{
    if (SONDE_LIKELY(m_messages[level] != NULL))
        sonde_counter_inc(m_messages[level]);
    else
        atomic_fetch_add_explicit(&st_messages[level], 1, memory_order_relaxed);
}

void sonde__log_count_drop(void)
{
    if (m_dropped)
        sonde_counter_inc(m_dropped);
    else
        atomic_fetch_add_explicit(&st_dropped, 1, memory_order_relaxed);
}

void sonde__log_count_write_errors(uint64_t n)
{
    if (m_write_errors)
        sonde_counter_add(m_write_errors, (double)n);
    else
        atomic_fetch_add_explicit(&st_write_errors, n, memory_order_relaxed);
}

static uint64_t total(sonde_counter *c, _Atomic uint64_t *fallback)
{
    uint64_t v = atomic_load_explicit(fallback, memory_order_relaxed);
    if (c)
        v += (uint64_t)sonde_counter_get(c);
    return v;
}

SONDE_API void sonde_log_get_stats(sonde_log_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    for (int i = SONDE_LOG_TRACE; i <= SONDE_LOG_CRITICAL; i++)
        out->messages[i] = total(m_messages[i], &st_messages[i]);
    out->dropped = total(m_dropped, &st_dropped);
    out->write_errors = total(m_write_errors, &st_write_errors);
}

/* ---- levels ---- */

SONDE_API int sonde_log_level_parse(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {{"trace", SONDE_LOG_TRACE},       {"debug", SONDE_LOG_DEBUG},
                 {"info", SONDE_LOG_INFO},         {"warning", SONDE_LOG_WARNING},
                 {"warn", SONDE_LOG_WARNING},      {"error", SONDE_LOG_ERROR},
                 {"critical", SONDE_LOG_CRITICAL}, {"fatal", SONDE_LOG_CRITICAL},
                 {"off", SONDE_LOG_OFF},           {"none", SONDE_LOG_OFF}};
    if (!s)
        return 0;
    if (s[0] >= '1' && s[0] <= '7' && s[1] == '\0')
        return s[0] - '0';
    for (size_t i = 0; i < SONDE_ARRAY_LEN(names); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].level;
    return 0;
}

/* Parse a level specification; call fn for each item (name NULL for the
 * root). Validates everything first: fn is only called when the whole
 * specification is valid. Returns SONDE_OK or SONDE_EPARSE. */
int sonde__log_parse_levels(const char *spec, void (*fn)(void *, const char *, size_t, int),
                            void *ud);
int sonde__log_parse_levels(const char *spec, void (*fn)(void *, const char *, size_t, int),
                            void *ud)
{
    if (!spec)
        return SONDE_EPARSE;
    for (int pass = 0; pass < 2; pass++) {
        const char *p = spec;
        int items = 0;
        while (*p) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            const char *a = p, *b = p + len;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            if (a < b) {
                const char *eq = memchr(a, '=', (size_t)(b - a));
                const char *name = NULL;
                size_t nlen = 0;
                const char *lv = a;
                if (eq) {
                    name = a;
                    const char *ne = eq;
                    while (ne > a && (ne[-1] == ' ' || ne[-1] == '\t'))
                        ne--;
                    nlen = (size_t)(ne - a);
                    lv = eq + 1;
                    while (lv < b && (*lv == ' ' || *lv == '\t'))
                        lv++;
                    if (nlen == 0 || nlen > LOG_NAME_MAX)
                        return SONDE_EPARSE;
                    for (size_t i = 0; i < nlen; i++)
                        if ((unsigned char)name[i] <= ' ' || name[i] == '=' || name[i] == 0x7f)
                            return SONDE_EPARSE;
                }
                char word[16];
                size_t wl = (size_t)(b - lv);
                if (wl == 0 || wl >= sizeof word)
                    return SONDE_EPARSE;
                memcpy(word, lv, wl);
                word[wl] = '\0';
                int level = sonde_log_level_parse(word);
                if (!level)
                    return SONDE_EPARSE;
                if (pass == 1 && fn)
                    fn(ud, name, nlen, level);
                items++;
            }
            if (!end)
                break;
            p = end + 1;
        }
        if (items == 0)
            return SONDE_EPARSE;
    }
    return SONDE_OK;
}

/* ---- loggers ---- */

/* Loggers are never removed and a new one is fully written before it is
 * linked (release), so the list can be searched without the lock. */
static struct sonde_logger *find_locked(const char *name, size_t n)
{
    for (struct sonde_logger *l = sonde__lg.loggers; l;
         l = atomic_load_explicit(&l->next, memory_order_acquire))
        if (l->name_len == n && memcmp(l->name, name, n) == 0)
            return l;
    return NULL;
}

static void link_locked(struct sonde_logger *lg)
{
    struct sonde_logger *t = sonde__lg.loggers, *nx;
    while ((nx = atomic_load_explicit(&t->next, memory_order_relaxed)) != NULL)
        t = nx;
    atomic_store_explicit(&t->next, lg, memory_order_release);
    sonde__lg.logger_count++;
}

static int resolve_locked(const struct sonde_logger *lg)
{
    if (lg->level)
        return lg->level;
    /* Nearest dotted ancestor with a level of its own. */
    size_t n = lg->name_len;
    while (n > 0) {
        while (n > 0 && lg->name[n - 1] != '.')
            n--;
        if (n == 0)
            break;
        n--; /* drop the dot */
        const struct sonde_logger *a = find_locked(lg->name, n);
        if (a && a->level)
            return a->level;
    }
    return sonde__root_logger.level ? sonde__root_logger.level : SONDE_LOG_INFO;
}

static void set_threshold_locked(struct sonde_logger *lg, int min_sink)
{
    lg->effective = resolve_locked(lg);
    int thr = lg->effective > min_sink ? lg->effective : min_sink;
    if (!sonde_enabled())
        thr = SONDE_LOG_OFF;
    __atomic_store_n(&lg->threshold, thr, __ATOMIC_RELAXED);
    if (lg == &sonde__root_logger)
        __atomic_store_n(&sonde__log_root_threshold, thr, __ATOMIC_RELAXED);
}

void sonde__log_recompute_locked(void)
{
    int min_sink = sonde__sinks_min_level();
    for (struct sonde_logger *l = sonde__lg.loggers; l;
         l = atomic_load_explicit(&l->next, memory_order_relaxed))
        set_threshold_locked(l, min_sink);
}

SONDE_API sonde_logger *sonde_logger_get(const char *name)
{
    sonde__log_init();
    if (!name || !*name)
        return &sonde__root_logger;
    size_t n = strnlen(name, LOG_NAME_MAX);
    struct sonde_logger *lg = find_locked(name, n); /* lock-free: existing loggers */
    if (lg)
        return lg;
    /* Creating one takes the configuration lock; a callback sink (which
     * runs under the sinks lock) must not wait for it: it gets the root. */
    log_tls *t = sonde__tls();
    if (t && t->in_emit)
        return &sonde__root_logger;
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    lg = find_locked(name, n);
    if (!lg && sonde__lg.logger_count < LOG_MAX_LOGGERS) {
        lg = sonde__calloc(1, sizeof *lg);
        if (lg) {
            memcpy(lg->name, name, n);
            lg->name[n] = '\0';
            lg->name_len = (unsigned)n;
            lg->plain_name = sonde__log_name_is_plain(lg->name, n);
            set_threshold_locked(lg, sonde__sinks_min_level());
            link_locked(lg); /* appended: the root stays first */
        }
    }
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    return lg ? lg : &sonde__root_logger;
}

SONDE_API const char *sonde_logger_name(const sonde_logger *lg)
{
    return lg ? lg->name : sonde__root_logger.name;
}

SONDE_API void sonde_logger_set_level(sonde_logger *lg, int level)
{
    sonde__log_init();
    if (level < 0 || level > SONDE_LOG_OFF || sonde__log_in_sink())
        return;
    if (!lg)
        lg = &sonde__root_logger;
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    lg->level = (lg == &sonde__root_logger && level == 0) ? SONDE_LOG_INFO : level;
    sonde__log_recompute_locked();
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
}

SONDE_API int sonde_logger_level(const sonde_logger *lg)
{
    sonde__log_init();
    if (!lg)
        lg = &sonde__root_logger;
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    int l = resolve_locked(lg);
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    return l;
}

/* Apply one parsed level item; cfg_lock held. Creating a logger here would
 * take cfg_lock again, so new loggers are created directly. */
static void apply_level_locked(void *ud, const char *name, size_t n, int level)
{
    SONDE_UNUSED(ud);
    if (!name) {
        sonde__root_logger.level = level;
        return;
    }
    struct sonde_logger *lg = find_locked(name, n);
    if (!lg && sonde__lg.logger_count < LOG_MAX_LOGGERS) {
        lg = sonde__calloc(1, sizeof *lg);
        if (!lg)
            return;
        memcpy(lg->name, name, n);
        lg->name[n] = '\0';
        lg->name_len = (unsigned)n;
        lg->plain_name = sonde__log_name_is_plain(lg->name, n);
        lg->level = level;
        link_locked(lg);
    }
    if (lg)
        lg->level = level;
}

SONDE_API int sonde_log_set_levels(const char *spec)
{
    sonde__log_init();
    if (sonde__log_in_sink())
        return SONDE_ESTATE;
    if (sonde__log_parse_levels(spec, NULL, NULL) != SONDE_OK)
        return SONDE_EPARSE;
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    sonde__log_parse_levels(spec, apply_level_locked, NULL);
    sonde__log_recompute_locked();
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    return SONDE_OK;
}

/* ---- the log call ---- */

__attribute__((noinline)) static void emit(sonde_logger *lg, int level, const char *file, int line,
                                           const char *func, const char *msg, size_t msg_len,
                                           const sonde_field *fields, size_t n)
{
    log_tls *t = sonde__tls();
    if (!t) {
        sonde__log_count_drop();
        return;
    }
    if (t->in_emit) {
        /* From inside a callback sink (or a sink's own failure path): the
         * sinks lock is held on this thread, writing would deadlock. */
        sonde__log_count_drop();
        return;
    }
    t->in_emit = 1;
    size_t max = atomic_load_explicit(&sonde__lg.max_line, memory_order_relaxed);
    sonde_buf *b = &t->rec;
    sonde_buf_reset(b);
    rec_hdr h;
    memset(&h, 0, sizeof h);
    h.level = (uint8_t)level;
    h.line = line;
    h.file = file;
    h.func = func;
    h.lg = lg;
    if (!t->tid)
        t->tid = sonde__log_tid();
    h.tid = t->tid;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h.ts_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (msg_len > max) {
        /* Cut at a character boundary: drop a partial UTF-8 tail. */
        size_t m = max;
        size_t back = 0;
        while (m > 0 && back < 3 && ((unsigned char)msg[m] & 0xC0) == 0x80) {
            m--;
            back++;
        }
        msg_len = m;
        h.flags |= REC_MSG_CUT | REC_TRUNCATED;
    }
    h.msg_len = (uint32_t)msg_len;
    const char *cid, *ctx;
    size_t cid_len, ctx_len;
    sonde__ctx_current(&cid, &cid_len, &ctx, &ctx_len);
    h.cid_len = (uint16_t)cid_len;
    h.ctx_len = (uint32_t)ctx_len;
    /* One reservation for the fixed part (and the usual fields), then
     * plain copies. */
    int rc = sonde__buf_reserve(b, sizeof h + msg_len + cid_len + ctx_len + 64 + n * 48);
    if (!rc) {
        char *o = b->data + sizeof h;
        memcpy(o, msg, msg_len);
        o += msg_len;
        if (cid_len)
            memcpy(o, cid, cid_len);
        o += cid_len;
        if (ctx_len)
            memcpy(o, ctx, ctx_len);
        b->len = sizeof h + msg_len + cid_len + ctx_len;
    }
    size_t fstart = b->len;
    if (!rc && n) {
        int kinds = 0;
        int cut = sonde__fb_encode(b, fields, n, max, max, 0, &kinds);
        h.flags |= (uint8_t)kinds;
        if (cut < 0)
            rc = cut;
        else if (cut)
            h.flags |= REC_TRUNCATED;
    }
    if (rc) {
        t->in_emit = 0;
        sonde__log_count_drop();
        return;
    }
    h.fields_len = (uint32_t)(b->len - fstart);
    h.size = (uint32_t)b->len;
    memcpy(b->data, &h, sizeof h);
    count_message(level);
    sonde__log_dispatch(b->data, b->len, level);
    t->in_emit = 0;
    sonde__sinks_report();
    if (level >= SONDE_LOG_CRITICAL)
        sonde_log_flush(1000);
}

static void emit_init_warnings(void)
{
    int n = atomic_exchange(&init_warn_n, 0);
    if (n <= 0)
        return;
    sonde_logger *lg = sonde_logger_get("sonde.log");
    for (int i = 0; i < n && i < 4; i++)
        if (sonde_log_enabled(lg, SONDE_LOG_WARNING))
            emit(lg, SONDE_LOG_WARNING, NULL, 0, NULL, init_warn[i], strlen(init_warn[i]), NULL, 0);
}

static int admit(sonde_logger **lg, int level)
{
    sonde__log_init();
    if (atomic_load_explicit(&init_warn_n, memory_order_relaxed))
        emit_init_warnings();
    if (!*lg)
        *lg = &sonde__root_logger;
    if (level < SONDE_LOG_TRACE || level > SONDE_LOG_CRITICAL)
        return 0;
    return level >= __atomic_load_n(&(*lg)->threshold, __ATOMIC_RELAXED);
}

SONDE_API void sonde_log_write(sonde_logger *lg, int level, const char *file, int line,
                               const char *func, const char *message, const sonde_field *fields,
                               size_t n)
{
    if (!admit(&lg, level))
        return;
    if (!message)
        message = "";
    emit(lg, level, file, line, func, message, strlen(message), fields, fields ? n : 0);
}

SONDE_API void sonde_log_writev(sonde_logger *lg, int level, const char *file, int line,
                                const char *func, const sonde_field *fields, size_t n,
                                const char *fmt, va_list ap)
{
    if (!admit(&lg, level))
        return;
    log_tls *t = sonde__tls();
    if (!t) {
        sonde__log_count_drop();
        return;
    }
    if (t->in_emit) {
        sonde__log_count_drop();
        return;
    }
    sonde_buf *m = &t->msg;
    sonde_buf_reset(m);
    va_list cp;
    va_copy(cp, ap);
    char small[512];
    int len = fmt ? vsnprintf(small, sizeof small, fmt, cp) : 0;
    if (!fmt)
        small[0] = '\0';
    va_end(cp);
    const char *text = small;
    size_t tlen = len < 0 ? 0 : (size_t)len;
    if (len < 0) {
        small[0] = '\0';
    } else if (tlen >= sizeof small) {
        /* Format at most a little more than a line can hold: emit sees a
         * message longer than the line and cuts it with the marker. */
        size_t max = atomic_load_explicit(&sonde__lg.max_line, memory_order_relaxed);
        size_t want = tlen < max + 4 ? tlen : max + 4;
        if (sonde__buf_reserve(m, want + 1) == SONDE_OK) {
            vsnprintf(m->data, want + 1, fmt, ap);
            text = m->data;
            tlen = want;
        } else {
            tlen = sizeof small - 1;
        }
    }
    emit(lg, level, file, line, func, text, tlen, fields, fields ? n : 0);
}

SONDE_API void sonde_log_writef(sonde_logger *lg, int level, const char *file, int line,
                                const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sonde_log_writev(lg, level, file, line, func, NULL, 0, fmt, ap);
    va_end(ap);
}

/* ---- operations ---- */

SONDE_API void sonde_log_operation_start(sonde_log_op *op, sonde_logger *lg, const char *name,
                                         const sonde_field *fields, size_t n)
{
    if (!op)
        return;
    memset(op, 0, sizeof *op);
    op->logger = lg;
    if (!name)
        name = "operation";
    size_t nl = strnlen(name, sizeof op->name - 1);
    memcpy(op->name, name, nl);
    op->name[nl] = '\0';
    if (!fields)
        n = 0;
    sonde_field stackf[17];
    sonde_field *fr =
        n + 1 <= SONDE_ARRAY_LEN(stackf) ? stackf : sonde__malloc((n + 1) * sizeof *fr);
    if (fr) {
        fr[0] = sonde_field_strn("operation", op->name, nl);
        if (n)
            memcpy(fr + 1, fields, n * sizeof *fr);
        op->token = sonde_log_context_push(NULL, fr, n + 1);
        if (fr != stackf)
            sonde__free(fr);
    } else {
        op->token = sonde_log_context_push(NULL, NULL, 0);
    }
    if (sonde_log_enabled(lg, SONDE_LOG_INFO)) {
        char msg[96];
        int l = snprintf(msg, sizeof msg, "%s started", op->name);
        if (l < 0)
            msg[0] = '\0';
        sonde_field f = sonde_field_strn("event", "operation_start", SONDE_FIELD_NTS);
        sonde_log_write(lg, SONDE_LOG_INFO, NULL, 0, NULL, msg, &f, 1);
    }
    op->start_ns = sonde__now_mono_ns();
}

SONDE_API double sonde_log_operation_end(sonde_log_op *op, int success, const sonde_field *fields,
                                         size_t n)
{
    if (!op)
        return 0;
    double dur = (double)(sonde__now_mono_ns() - op->start_ns) / 1e9;
    int level = success ? SONDE_LOG_INFO : SONDE_LOG_ERROR;
    if (sonde_log_enabled(op->logger, level)) {
        if (!fields)
            n = 0;
        sonde_field stackf[19];
        sonde_field *f =
            n + 3 <= SONDE_ARRAY_LEN(stackf) ? stackf : sonde__malloc((n + 3) * sizeof *f);
        char msg[96];
        int l = snprintf(msg, sizeof msg, "%s %s", op->name, success ? "completed" : "failed");
        if (l < 0)
            msg[0] = '\0';
        if (f) {
            f[0] = sonde_field_strn("event", "operation_end", SONDE_FIELD_NTS);
            f[1] = sonde_field_bool("success", success);
            f[2] = sonde_field_double("duration_seconds", dur);
            if (n)
                memcpy(f + 3, fields, n * sizeof *f);
            sonde_log_write(op->logger, level, NULL, 0, NULL, msg, f, n + 3);
            if (f != stackf)
                sonde__free(f);
        } else {
            sonde_log_write(op->logger, level, NULL, 0, NULL, msg, NULL, 0);
        }
    }
    sonde_log_context_pop(op->token);
    op->token = 0;
    return dur;
}

/* ---- configuration ---- */

SONDE_API void sonde_log_opts_init(sonde_log_opts *opts)
{
    if (opts)
        memset(opts, 0, sizeof *opts);
}

static void add_warning(const char *fmt, ...) SONDE_PRINTF(1, 2);
static void add_warning(const char *fmt, ...)
{
    int i = atomic_load(&init_warn_n);
    if (i >= 4)
        return;
    va_list ap;
    va_start(ap, fmt);
    int l = vsnprintf(init_warn[i], sizeof init_warn[i], fmt, ap);
    va_end(ap);
    if (l < 0)
        init_warn[i][0] = '\0';
    atomic_store(&init_warn_n, i + 1);
}

static int env_level(const char *name, int *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    int l = sonde_log_level_parse(v);
    if (!l) {
        add_warning("%s=%.40s is not a log level; ignored", name, v);
        return -1;
    }
    *out = l;
    return 1;
}

static int env_u64(const char *name, uint64_t *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-') {
        add_warning("%s=%.40s is not a number; ignored", name, v);
        return -1;
    }
    *out = x;
    return 1;
}

static int is_pow2(size_t x)
{
    return x && !(x & (x - 1));
}

/* Apply options (env overrides unless no_env). Not called with any lock. */
static int configure(const sonde_log_opts *in, int at_init)
{
    sonde_log_opts o;
    if (in)
        o = *in;
    else
        sonde_log_opts_init(&o);
    int level_from_env = 0;
    if (!o.no_env) {
        const char *v = getenv("SONDE_LOG_LEVEL");
        if (v && *v) {
            if (sonde__log_parse_levels(v, NULL, NULL) == SONDE_OK) {
                o.level = v;
                level_from_env = 1;
            } else {
                add_warning("SONDE_LOG_LEVEL=%.60s is not a level specification; ignored", v);
            }
        }
        env_level("SONDE_LOG_CONSOLE_LEVEL", &o.console_level);
        env_level("SONDE_LOG_FILE_LEVEL", &o.file_level);
        v = getenv("SONDE_LOG_FORMAT");
        if (v && *v) {
            if (strcasecmp(v, "json") == 0)
                o.console_format = SONDE_LOG_FORMAT_JSON;
            else if (strcasecmp(v, "console") == 0 || strcasecmp(v, "text") == 0)
                o.console_format = SONDE_LOG_FORMAT_CONSOLE;
            else if (strcasecmp(v, "auto") == 0)
                o.console_format = SONDE_LOG_FORMAT_AUTO;
            else
                add_warning("SONDE_LOG_FORMAT=%.40s is not json or console; ignored", v);
        }
        v = getenv("SONDE_LOG_FILE");
        if (v)
            o.file = *v ? v : NULL;
        uint64_t x;
        if (env_u64("SONDE_LOG_FILE_MAX_BYTES", &x) == 1)
            o.file_max_bytes = x;
        if (env_u64("SONDE_LOG_FILE_KEEP", &x) == 1 && x <= 1000)
            o.file_keep = (unsigned)x;
        if (env_u64("SONDE_LOG_ASYNC", &x) == 1)
            o.async = x != 0;
        if (env_u64("SONDE_LOG_QUEUE_SLOTS", &x) == 1 && is_pow2((size_t)x) && x >= 64 &&
            x <= ((uint64_t)1 << 22))
            o.queue_slots = (size_t)x;
        if (env_u64("SONDE_LOG_MAX_LINE", &x) == 1 && x >= LOG_MIN_MAX_LINE &&
            x <= LOG_MAX_MAX_LINE)
            o.max_line_bytes = (size_t)x;
        if (env_u64("SONDE_LOG_CONSOLE", &x) == 1 && x == 0)
            o.console = -1;
        if (env_u64("SONDE_LOG_MASKING", &x) == 1 && x == 0)
            o.masking = -1;
    }
    SONDE_UNUSED(level_from_env);
    if (o.console_level < 0 || o.console_level > SONDE_LOG_OFF || o.file_level < 0 ||
        o.file_level > SONDE_LOG_OFF || o.console_format < 0 ||
        o.console_format > SONDE_LOG_FORMAT_CONSOLE || o.file_keep > 1000 ||
        (o.max_line_bytes &&
         (o.max_line_bytes < LOG_MIN_MAX_LINE || o.max_line_bytes > LOG_MAX_MAX_LINE)) ||
        (o.queue_slots &&
         (!is_pow2(o.queue_slots) || o.queue_slots < 64 || o.queue_slots > ((size_t)1 << 22))))
        return SONDE_EINVAL;
    const char *spec = o.level ? o.level : "info";
    if (sonde__log_parse_levels(spec, NULL, NULL) != SONDE_OK)
        return SONDE_EPARSE;
    if (!sonde_enabled())
        return SONDE_OK; /* off: options checked, nothing applied */

    int rc = SONDE_OK;
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    sonde__root_logger.level = SONDE_LOG_INFO;
    sonde__log_parse_levels(spec, apply_level_locked, NULL);
    atomic_store(&sonde__lg.masking, o.masking >= 0);
    atomic_store(&sonde__lg.max_line, o.max_line_bytes ? o.max_line_bytes : LOG_DEFAULT_MAX_LINE);
    atomic_store(&sonde__no_sighup, o.no_sighup ? 1 : 0);
    sonde__sinks_remove_defaults();
    if (o.console >= 0) {
        sonde_log_sink_opts so;
        sonde_log_sink_opts_init(&so);
        so.level = o.console_level;
        so.format = o.console_format;
        so.color = o.color;
        int r = sonde__sink_add(SONDE_LOG_SINK_STDERR, &so, 1, NULL);
        if (r)
            rc = r;
    }
    if (o.file) {
        sonde_log_sink_opts so;
        sonde_log_sink_opts_init(&so);
        so.level = o.file_level;
        so.format = SONDE_LOG_FORMAT_JSON;
        so.path = o.file;
        so.max_bytes = o.file_max_bytes;
        so.keep = o.file_keep;
        int r = sonde__sink_add(SONDE_LOG_SINK_FILE, &so, 1, NULL);
        if (r) {
            add_warning("cannot open log file %.150s: %s", o.file, sonde_last_error());
            if (!rc)
                rc = r;
        }
    }
    sonde__log_recompute_locked();
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    if (o.async) {
        int r = sonde__async_start(o.queue_slots ? o.queue_slots : 16384, o.block_when_full);
        if (r && !rc)
            rc = r;
    } else if (!at_init && sonde__async_running()) {
        sonde_log_shutdown(1000);
    }
    return rc;
}

SONDE_API int sonde_log_configure(const sonde_log_opts *opts)
{
    sonde__log_init();
    if (sonde__log_in_sink())
        return SONDE_ESTATE;
    int rc = configure(opts, 0);
    emit_init_warnings();
    return rc;
}

/* ---- initialisation ---- */

static void at_exit(void)
{
    sonde_log_shutdown(1000);
}

static void diag_hook(int level, const char *component, const char *msg)
{
    if (level < SONDE_LOG_TRACE)
        level = SONDE_LOG_TRACE;
    if (level > SONDE_LOG_CRITICAL)
        level = SONDE_LOG_CRITICAL;
    sonde_logger *lg = sonde_logger_get(component && *component ? component : "sonde");
    if (sonde_log_enabled(lg, level))
        sonde_log_write(lg, level, NULL, 0, NULL, msg, NULL, 0);
}

static void fork_prepare(void)
{
    sonde__async_atfork_prepare();
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    pthread_mutex_lock(&sonde__lg.sinks_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&sonde__lg.sinks_lock);
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    sonde__async_atfork_parent();
}

static void fork_child(void)
{
    pthread_mutex_unlock(&sonde__lg.sinks_lock);
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    sonde__async_atfork_child();
    sonde__lg.pid = (int)getpid();
    sonde__ctx_atfork_child();
}

static void init_once(void)
{
    sonde__lg.pid = (int)getpid();
    register_metrics();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (!sonde_enabled()) {
        pthread_mutex_lock(&sonde__lg.cfg_lock);
        sonde__log_recompute_locked();
        pthread_mutex_unlock(&sonde__lg.cfg_lock);
        return;
    }
    configure(NULL, 1);
    atexit(at_exit);
    sonde__set_diag_hook(diag_hook);
}

void sonde__log_init(void)
{
    if (SONDE_LIKELY(atomic_load_explicit(&inited, memory_order_acquire)))
        return;
    pthread_once(&init_once_ctl, init_once);
    atomic_store_explicit(&inited, 1, memory_order_release);
}
