/*
 * Silences at run time, as an operator uses Alertmanager's: matchers on
 * alert labels (equality or anchored POSIX extended regex, either negated),
 * a time range, a comment and an author. Kept in the tracker (t->lock);
 * saved to the tracker's store through the store backend's silence
 * operations (store/store.h) on the runtime worker, read back once when
 * the store first opens, and pruned a retention after they ended.
 *
 * A silence is pending before starts, active until ends, expired after.
 * Expiring one sets its end to now; removing one (the older C API) also
 * hides it from lists at once.
 */
#include "errors/errors_int.h"
#include "errors/silences.h"

#include "core/json.h"
#include "core/text.h"
#include "store/store.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_MATCHERS 32
#define MAX_NAME 256
#define MAX_VALUE 1024
#define MAX_COMMENT 1024
#define MAX_AUTHOR 256
#define DEFAULT_RETENTION_S (5 * 86400.0)
#define PRUNE_EVERY_S 600.0

typedef struct smatch {
    char *name, *value;
    bool is_regex, is_equal;
    bool has_re;
    regex_t re;
} smatch;

struct silence {
    uint64_t id;
    smatch *m;
    size_t n;
    double starts, ends, updated;
    char *comment, *created_by;
    bool dirty;   /* to save to the store */
    bool removed; /* sonde_alerts_remove_silence: hidden, saved as ended */
};

/* ---- ids ---- */

void sonde__silence_id_format(uint64_t id, char out[17])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, id >>= 4)
        out[i] = hx[id & 15];
    out[16] = '\0';
}

int sonde__silence_id_parse(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] && i < 17; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return SONDE_EINVAL;
        v = v << 4 | d;
    }
    if (i != 16 || v == 0)
        return SONDE_EINVAL;
    *id = v;
    return SONDE_OK;
}

/* ---- silences ---- */

static void silence_free(silence *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        sonde__free(s->m[i].name);
        sonde__free(s->m[i].value);
        if (s->m[i].has_re)
            regfree(&s->m[i].re);
    }
    sonde__free(s->m);
    sonde__free(s->comment);
    sonde__free(s->created_by);
    sonde__free(s);
}

void sonde__silences_free(sonde_errors *t)
{
    for (size_t i = 0; i < t->nsilences; i++)
        silence_free(t->silences[i]);
    sonde__free(t->silences);
    t->silences = NULL;
    t->nsilences = t->silences_cap = 0;
}

static bool matcher_hit(const smatch *m, const char *v)
{
    if (!v)
        v = "";
    bool hit = m->has_re ? regexec(&m->re, v, 0, NULL, 0) == 0 : strcmp(v, m->value) == 0;
    return m->is_equal ? hit : !hit;
}

static bool silence_matches(const silence *s, sonde__label_fn get, const void *ud)
{
    for (size_t k = 0; k < s->n; k++)
        if (!matcher_hit(&s->m[k], get(ud, s->m[k].name)))
            return false;
    return true;
}

bool sonde__silenced(const sonde_errors *t, sonde__label_fn get, const void *ud, double now)
{
    for (size_t i = 0; i < t->nsilences; i++) {
        const silence *s = t->silences[i];
        if (s->removed || now < s->starts || now >= s->ends)
            continue;
        if (silence_matches(s, get, ud))
            return true;
    }
    return false;
}

static const char *state_name(const silence *s, double now)
{
    return now < s->starts ? "pending" : now < s->ends ? "active" : "expired";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) SONDE_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n <= max && sonde__utf8_ok(s, n);
}

static const char *empty_lookup(const void *ud, const char *name)
{
    (void)ud;
    (void)name;
    return NULL;
}

/*
 * Build a silence from options, checking everything but the time range
 * against now. NULL with the reason in err (or ENOMEM in *rc).
 */
static silence *build(const sonde_silence_opts *o, int *rc, char *err, size_t errlen)
{
    *rc = SONDE_EINVAL;
    if (!o->matchers || o->matcher_count == 0) {
        set_err(err, errlen, "a silence needs at least one matcher");
        return NULL;
    }
    if (o->matcher_count > MAX_MATCHERS) {
        set_err(err, errlen, "%zu matchers: at most %d", o->matcher_count, MAX_MATCHERS);
        return NULL;
    }
    if (o->comment && !text_ok(o->comment, MAX_COMMENT)) {
        set_err(err, errlen, "comment: longer than %d bytes or not UTF-8", MAX_COMMENT);
        return NULL;
    }
    if (o->created_by && !text_ok(o->created_by, MAX_AUTHOR)) {
        set_err(err, errlen, "createdBy: longer than %d bytes or not UTF-8", MAX_AUTHOR);
        return NULL;
    }
    silence *s = sonde__calloc(1, sizeof *s);
    if (!s || !(s->m = sonde__calloc(o->matcher_count, sizeof *s->m))) {
        sonde__free(s);
        *rc = SONDE_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < o->matcher_count; i++) {
        const sonde_silence_matcher *in = &o->matchers[i];
        smatch *m = &s->m[i];
        if (!in->name || !sonde__valid_label_name(in->name) || strlen(in->name) > MAX_NAME) {
            set_err(err, errlen, "matcher %zu: bad label name \"%.64s\"", i + 1,
                    in->name ? in->name : "(none)");
            silence_free(s);
            return NULL;
        }
        if (!in->value || !text_ok(in->value, MAX_VALUE)) {
            set_err(err, errlen,
                    "matcher %zu (%s): value missing, longer than %d bytes or not UTF-8", i + 1,
                    in->name, MAX_VALUE);
            silence_free(s);
            return NULL;
        }
        s->n = i + 1;
        m->name = sonde__strdup(in->name);
        m->value = sonde__strdup(in->value);
        m->is_regex = in->is_regex != 0;
        m->is_equal = in->is_equal != 0;
        if (!m->name || !m->value) {
            silence_free(s);
            *rc = SONDE_ENOMEM;
            return NULL;
        }
        if (m->is_regex) {
            size_t n = strlen(m->value);
            char *anchored = sonde__malloc(n + 5);
            if (!anchored) {
                silence_free(s);
                *rc = SONDE_ENOMEM;
                return NULL;
            }
            snprintf(anchored, n + 5, "^(%s)$", m->value);
            int r = regcomp(&m->re, anchored, REG_EXTENDED | REG_NOSUB);
            sonde__free(anchored);
            if (r != 0) {
                char why[128];
                regerror(r, &m->re, why, sizeof why);
                set_err(err, errlen, "matcher %zu (%s): bad regular expression \"%.64s\": %s",
                        i + 1, m->name, m->value, why);
                silence_free(s);
                return NULL;
            }
            m->has_re = true;
        }
    }
    /* As Alertmanager: a silence must not match every alert. */
    if (silence_matches(s, empty_lookup, NULL)) {
        set_err(err, errlen,
                "at least one matcher must not match the empty string "
                "(this silence would match every alert)");
        silence_free(s);
        return NULL;
    }
    s->comment = sonde__strdup(o->comment ? o->comment : "");
    s->created_by = sonde__strdup(o->created_by ? o->created_by : "");
    if (!s->comment || !s->created_by) {
        silence_free(s);
        *rc = SONDE_ENOMEM;
        return NULL;
    }
    *rc = SONDE_OK;
    return s;
}

static double retention(sonde_errors *t)
{
    if (t->silence_retention_s > 0)
        return t->silence_retention_s;
    double v = DEFAULT_RETENTION_S;
    const char *e = getenv("SONDE_SILENCE_RETENTION");
    double d;
    if (e && e[0] && sonde__parse_duration(e, &d) == SONDE_OK && d > 0)
        v = d;
    t->silence_retention_s = v;
    return v;
}

static silence *find(const sonde_errors *t, uint64_t id)
{
    for (size_t i = 0; i < t->nsilences; i++)
        if (t->silences[i]->id == id)
            return t->silences[i];
    return NULL;
}

static void drop_at(sonde_errors *t, size_t i)
{
    silence_free(t->silences[i]);
    t->silences[i] = t->silences[--t->nsilences];
}

/* Make room for one more silence: past the bound the expired one that
 * ended first goes. t->lock held. */
static int make_room(sonde_errors *t, double now, bool new_current)
{
    if (new_current) {
        size_t current = 0;
        for (size_t i = 0; i < t->nsilences; i++)
            current += !t->silences[i]->removed && t->silences[i]->ends > now;
        if (current >= MAX_SILENCES)
            return SONDE_ELIMIT;
    }
    if (t->nsilences >= MAX_SILENCES_KEPT) {
        size_t oldest = SIZE_MAX;
        for (size_t i = 0; i < t->nsilences; i++) {
            const silence *s = t->silences[i];
            if ((s->removed || s->ends <= now) &&
                (oldest == SIZE_MAX || s->ends < t->silences[oldest]->ends))
                oldest = i;
        }
        if (oldest == SIZE_MAX)
            return SONDE_ELIMIT;
        drop_at(t, oldest);
    }
    if (t->nsilences == t->silences_cap) {
        size_t nc = t->silences_cap ? t->silences_cap * 2 : 16;
        silence **ns = sonde__realloc(t->silences, nc * sizeof *ns);
        if (!ns)
            return SONDE_ENOMEM;
        t->silences = ns;
        t->silences_cap = nc;
    }
    return SONDE_OK;
}

static uint64_t new_id(sonde_errors *t)
{
    for (;;) {
        uint64_t x = 0;
        if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x) {
            t->rng += 0x9E3779B97F4A7C15ull;
            x = sonde__hash64_mix(t->rng ^ sonde__now_mono_ns());
        }
        if (x && !find(t, x))
            return x;
    }
}

static int add_checked(sonde_errors *t, const sonde_silence_opts *o, uint64_t *id_out, char *err,
                       size_t errlen)
{
    if (id_out)
        *id_out = 0;
    if (!o) {
        set_err(err, errlen, "no silence options");
        return SONDE_EINVAL;
    }
    if (!isfinite(o->starts) || !isfinite(o->ends) || !isfinite(o->duration) || o->starts < 0 ||
        o->ends < 0 || o->duration < 0) {
        set_err(err, errlen, "start, end and duration must be finite and not negative");
        return SONDE_EINVAL;
    }
    if (o->ends == 0 && o->duration == 0) {
        set_err(err, errlen, "a silence needs an end time or a duration");
        return SONDE_EINVAL;
    }
    if (!sonde_enabled())
        return SONDE_OK;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    int rc;
    silence *s = build(o, &rc, err, errlen);
    if (!s)
        return rc;
    pthread_mutex_lock(&t->lock);
    double now = sonde__errors_now(t);
    s->starts = o->starts > 0 ? o->starts : now;
    s->ends = o->ends > 0 ? o->ends : s->starts + o->duration;
    s->updated = now;
    if (s->ends <= s->starts) {
        set_err(err, errlen, "the silence ends before it starts");
        rc = SONDE_EINVAL;
    } else if (s->ends <= now) {
        set_err(err, errlen, "the silence ends in the past");
        rc = SONDE_EINVAL;
    } else {
        rc = make_room(t, now, true);
        if (rc == SONDE_ELIMIT)
            set_err(err, errlen, "%d silences are pending or active already", MAX_SILENCES);
    }
    if (rc == SONDE_OK) {
        s->id = new_id(t);
        s->dirty = true;
        t->silences[t->nsilences++] = s;
        t->silences_dirty = true;
        t->store_next_ns = 0; /* saved at the next tick */
        if (id_out)
            *id_out = s->id;
        s = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    silence_free(s);
    return rc;
}

void sonde_silence_opts_init(sonde_silence_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

int sonde_alerts_silence(sonde_errors *t, const sonde_silence_opts *o, uint64_t *id_out)
{
    char err[256] = "";
    int rc = add_checked(t, o, id_out, err, sizeof err);
    if (rc == SONDE_EINVAL)
        sonde__set_error("%s", err);
    return rc;
}

int sonde_alerts_add_silence(sonde_errors *t, const char *const *matchers, size_t n, double starts,
                             double ends, const char *comment, uint64_t *id_out)
{
    if (!matchers || n == 0 || n > MAX_MATCHERS)
        return SONDE_EINVAL;
    sonde_silence_matcher m[MAX_MATCHERS];
    for (size_t i = 0; i < n; i++)
        m[i] = (sonde_silence_matcher){matchers[2 * i], matchers[2 * i + 1], 0, 1};
    sonde_silence_opts o;
    sonde_silence_opts_init(&o);
    o.matchers = m;
    o.matcher_count = n;
    o.starts = starts;
    o.ends = ends;
    o.comment = comment;
    if (ends == 0 || !isfinite(ends))
        return SONDE_EINVAL;
    return sonde_alerts_silence(t, &o, id_out);
}

static int end_now(sonde_errors *t, uint64_t id, bool remove)
{
    if (!sonde_enabled())
        return SONDE_OK;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    pthread_mutex_lock(&t->lock);
    silence *s = find(t, id);
    int rc = SONDE_ENOTFOUND;
    if (s && !s->removed) {
        double now = sonde__errors_now(t);
        if (s->ends > now) {
            if (s->starts > now)
                s->starts = now;
            s->ends = now;
            s->updated = now;
            s->dirty = true;
            t->silences_dirty = true;
            t->store_next_ns = 0;
        }
        if (remove) {
            s->removed = true;
            s->dirty = true;
            t->silences_dirty = true;
        }
        rc = SONDE_OK;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int sonde_alerts_expire_silence(sonde_errors *t, uint64_t id)
{
    return end_now(t, id, false);
}

int sonde_alerts_remove_silence(sonde_errors *t, uint64_t id)
{
    return end_now(t, id, true);
}

int sonde_alerts_set_silence_retention(sonde_errors *t, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        return SONDE_EINVAL;
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    pthread_mutex_lock(&t->lock);
    t->silence_retention_s = seconds;
    pthread_mutex_unlock(&t->lock);
    return SONDE_OK;
}

void sonde__silences_prune(sonde_errors *t, double now)
{
    double cut = now - retention(t);
    for (size_t i = 0; i < t->nsilences;) {
        silence *s = t->silences[i];
        /* Not before it is saved: the store must learn that it ended. */
        if (s->ends < cut && !(s->dirty && t->store_spec))
            drop_at(t, i);
        else
            i++;
    }
}

/* ---- JSON ---- */

static int json_silence(sonde_buf *b, const silence *s, double now, bool with_status)
{
    char id[17];
    sonde__silence_id_format(s->id, id);
    int rc = sonde__buf_printf(b, "{\"id\":\"%s\"", id);
    if (with_status)
        rc = rc ? rc : sonde__buf_printf(b, ",\"status\":{\"state\":\"%s\"}", state_name(s, now));
    rc = rc ? rc : sonde__buf_puts(b, ",\"matchers\":[");
    for (size_t k = 0; k < s->n && !rc; k++) {
        rc = sonde__buf_puts(b, k ? ",{\"name\":" : "{\"name\":");
        rc = rc ? rc : sonde__buf_json_str(b, s->m[k].name);
        rc = rc ? rc : sonde__buf_puts(b, ",\"value\":");
        rc = rc ? rc : sonde__buf_json_str(b, s->m[k].value);
        rc = rc ? rc
                : sonde__buf_printf(b, ",\"isRegex\":%s,\"isEqual\":%s}",
                                    s->m[k].is_regex ? "true" : "false",
                                    s->m[k].is_equal ? "true" : "false");
    }
    rc = rc ? rc : sonde__buf_puts(b, "],\"startsAt\":");
    rc = rc ? rc : sonde__buf_json_time(b, s->starts);
    rc = rc ? rc : sonde__buf_puts(b, ",\"endsAt\":");
    rc = rc ? rc : sonde__buf_json_time(b, s->ends);
    rc = rc ? rc : sonde__buf_puts(b, ",\"updatedAt\":");
    rc = rc ? rc : sonde__buf_json_time(b, s->updated);
    rc = rc ? rc : sonde__buf_puts(b, ",\"comment\":");
    rc = rc ? rc : sonde__buf_json_str(b, s->comment);
    rc = rc ? rc : sonde__buf_puts(b, ",\"createdBy\":");
    rc = rc ? rc : sonde__buf_json_str(b, s->created_by);
    return rc ? rc : sonde__buf_putc(b, '}');
}

/* Sort order: active (soonest end first), pending (soonest start first),
 * expired (latest end first). */
typedef struct sort_item {
    const silence *s;
    int rank;
    double key;
} sort_item;

static int cmp_item(const void *a, const void *b)
{
    const sort_item *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank - y->rank;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->s->id < y->s->id ? -1 : x->s->id > y->s->id;
}

/* Append the silences (current_only: pending and active), sorted. t->lock
 * held. */
static int json_list(const sonde_errors *t, sonde_buf *out, double now, bool current_only)
{
    size_t mark = out->len;
    sort_item *v = sonde__malloc((t->nsilences ? t->nsilences : 1) * sizeof *v);
    if (!v)
        return SONDE_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < t->nsilences; i++) {
        const silence *s = t->silences[i];
        if (s->removed || (current_only && s->ends <= now))
            continue;
        int rank = now < s->starts ? 1 : now < s->ends ? 0 : 2;
        v[n++] = (sort_item){s, rank, rank == 0 ? s->ends : rank == 1 ? s->starts : -s->ends};
    }
    qsort(v, n, sizeof *v, cmp_item);
    int rc = sonde__buf_putc(out, '[');
    for (size_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = sonde__buf_putc(out, ',');
        rc = rc ? rc : json_silence(out, v[i].s, now, true);
    }
    rc = rc ? rc : sonde__buf_putc(out, ']');
    sonde__free(v);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

int sonde__silences_json_current(const sonde_errors *t, sonde_buf *out, double now)
{
    return json_list(t, out, now, true);
}

int sonde_alerts_silences_json(sonde_errors *t, sonde_buf *out)
{
    if (!out)
        return SONDE_EINVAL;
    if (!sonde_enabled())
        return sonde__buf_puts(out, "[]");
    if (!(t = sonde__errors_resolve(t)))
        return SONDE_ENOMEM;
    pthread_mutex_lock(&t->lock);
    int rc = json_list(t, out, sonde__errors_now(t), false);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* ---- requests ---- */

void sonde__silence_req_free(sonde__silence_req *r)
{
    for (size_t i = 0; i < r->n; i++) {
        sonde__free((char *)r->m[i].name);
        sonde__free((char *)r->m[i].value);
    }
    sonde__free(r->comment);
    sonde__free(r->created_by);
    memset(r, 0, sizeof *r);
}

static char *dup_n(const char *s, size_t n)
{
    char *o = sonde__malloc(n + 1);
    if (o) {
        memcpy(o, s, n);
        o[n] = '\0';
    }
    return o;
}

int sonde__silence_matcher_parse(const char *s, sonde_silence_matcher *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    size_t i = 0;
    while (s[i] && s[i] != '=' && s[i] != '!')
        i++;
    size_t name_end = i;
    while (name_end > 0 && s[name_end - 1] == ' ')
        name_end--;
    size_t start = 0;
    while (start < name_end && s[start] == ' ')
        start++;
    int eq = 1, re = 0;
    if (s[i] == '!' && (s[i + 1] == '=' || s[i + 1] == '~')) {
        eq = 0;
        re = s[i + 1] == '~';
        i += 2;
    } else if (s[i] == '=' && s[i + 1] == '~') {
        re = 1;
        i += 2;
    } else if (s[i] == '=') {
        i += s[i + 1] == '=' ? 2 : 1;
    } else {
        set_err(err, errlen,
                "matcher \"%.64s\": expected name=value, name!=value, name=~regex or "
                "name!~regex",
                s);
        return SONDE_EINVAL;
    }
    while (s[i] == ' ')
        i++;
    const char *v = s + i;
    size_t vn = strlen(v);
    while (vn > 0 && v[vn - 1] == ' ')
        vn--;
    if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
        v++;
        vn -= 2;
    }
    char *name = dup_n(s + start, name_end - start);
    char *value = dup_n(v, vn);
    if (!name || !value) {
        sonde__free(name);
        sonde__free(value);
        return SONDE_ENOMEM;
    }
    if (!sonde__valid_label_name(name)) {
        set_err(err, errlen, "matcher \"%.64s\": bad label name \"%.64s\"", s, name);
        sonde__free(name);
        sonde__free(value);
        return SONDE_EINVAL;
    }
    m->name = name;
    m->value = value;
    m->is_regex = re;
    m->is_equal = eq;
    return SONDE_OK;
}

static int req_time(const sonde__json *v, const char *key, double *out, char *err, size_t errlen)
{
    if (v->type != SONDE__JSON_STRING || sonde__parse_rfc3339(v->string, out) != SONDE_OK) {
        set_err(err, errlen, "%s: expected an RFC 3339 time such as \"2026-01-02T15:04:05Z\"", key);
        return SONDE_EINVAL;
    }
    return SONDE_OK;
}

static int req_str(const sonde__json *v, const char *key, char **out, char *err, size_t errlen)
{
    if (v->type != SONDE__JSON_STRING) {
        set_err(err, errlen, "%s: expected a string, not %s", key, sonde__json_type_name(v->type));
        return SONDE_EINVAL;
    }
    sonde__free(*out);
    *out = sonde__strdup(v->string);
    return *out ? SONDE_OK : SONDE_ENOMEM;
}

static int req_matcher(const sonde__json *v, size_t i, sonde_silence_matcher *m, char *err,
                       size_t errlen)
{
    if (v->type == SONDE__JSON_STRING)
        return sonde__silence_matcher_parse(v->string, m, err, errlen);
    if (v->type != SONDE__JSON_OBJECT) {
        set_err(err, errlen, "matchers[%zu]: expected an object or a \"name=value\" string", i);
        return SONDE_EINVAL;
    }
    memset(m, 0, sizeof *m);
    m->is_equal = 1;
    for (size_t k = 0; k < v->count; k++) {
        const char *key = v->keys[k];
        const sonde__json *x = &v->items[k];
        bool is_str = strcmp(key, "name") == 0 || strcmp(key, "value") == 0;
        bool is_bool = strcmp(key, "isRegex") == 0 || strcmp(key, "isEqual") == 0;
        if (!is_str && !is_bool) {
            set_err(err, errlen, "matchers[%zu]: unknown member \"%.64s\"", i, key);
            return SONDE_EINVAL;
        }
        if (is_str && x->type != SONDE__JSON_STRING) {
            set_err(err, errlen, "matchers[%zu].%s: expected a string", i, key);
            return SONDE_EINVAL;
        }
        if (is_bool && x->type != SONDE__JSON_BOOL) {
            set_err(err, errlen, "matchers[%zu].%s: expected true or false", i, key);
            return SONDE_EINVAL;
        }
        if (strcmp(key, "name") == 0) {
            sonde__free((char *)m->name);
            if (!(m->name = sonde__strdup(x->string)))
                return SONDE_ENOMEM;
        } else if (strcmp(key, "value") == 0) {
            sonde__free((char *)m->value);
            if (!(m->value = sonde__strdup(x->string)))
                return SONDE_ENOMEM;
        } else if (strcmp(key, "isRegex") == 0) {
            m->is_regex = x->boolean;
        } else {
            m->is_equal = x->boolean;
        }
    }
    if (!m->name || !m->value) {
        set_err(err, errlen, "matchers[%zu]: needs \"name\" and \"value\"", i);
        return SONDE_EINVAL;
    }
    return SONDE_OK;
}

static int parse_doc(const char *body, size_t len, sonde__silence_req *out, bool stored, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    char jerr[128];
    sonde__json *v = sonde__json_parse(body, len, jerr, sizeof jerr);
    if (!v) {
        set_err(err, errlen, "body is not JSON: %s", jerr);
        return SONDE_EINVAL;
    }
    int rc = SONDE_OK;
    bool have_matchers = false;
    if (v->type != SONDE__JSON_OBJECT) {
        set_err(err, errlen, "body: expected a JSON object, not %s",
                sonde__json_type_name(v->type));
        rc = SONDE_EINVAL;
    }
    for (size_t k = 0; !rc && v->type == SONDE__JSON_OBJECT && k < v->count; k++) {
        const char *key = v->keys[k];
        const sonde__json *x = &v->items[k];
        if (strcmp(key, "matchers") == 0) {
            have_matchers = true;
            if (x->type != SONDE__JSON_ARRAY) {
                set_err(err, errlen, "matchers: expected an array");
                rc = SONDE_EINVAL;
            } else if (x->count > MAX_MATCHERS) {
                set_err(err, errlen, "matchers: %zu given, at most %d", x->count, MAX_MATCHERS);
                rc = SONDE_EINVAL;
            }
            for (size_t i = 0; !rc && i < x->count; i++) {
                rc = req_matcher(&x->items[i], i, &out->m[i], err, errlen);
                if (rc) {
                    sonde__free((char *)out->m[i].name);
                    sonde__free((char *)out->m[i].value);
                } else {
                    out->n = i + 1;
                }
            }
        } else if (strcmp(key, "startsAt") == 0) {
            rc = req_time(x, key, &out->starts, err, errlen);
        } else if (strcmp(key, "endsAt") == 0) {
            rc = req_time(x, key, &out->ends, err, errlen);
        } else if (strcmp(key, "duration") == 0) {
            if (x->type == SONDE__JSON_NUMBER && isfinite(x->number) && x->number > 0) {
                out->duration = x->number;
            } else if (x->type != SONDE__JSON_STRING ||
                       sonde__parse_duration(x->string, &out->duration) != SONDE_OK ||
                       out->duration <= 0) {
                set_err(err, errlen,
                        "duration: expected a positive duration such as \"2h\" or \"90m\", or "
                        "seconds");
                rc = SONDE_EINVAL;
            }
        } else if (strcmp(key, "comment") == 0) {
            rc = req_str(x, key, &out->comment, err, errlen);
        } else if (strcmp(key, "createdBy") == 0) {
            rc = req_str(x, key, &out->created_by, err, errlen);
        } else if (strcmp(key, "id") == 0) {
            if (stored) {
                if (x->type != SONDE__JSON_STRING ||
                    sonde__silence_id_parse(x->string, &out->id) != SONDE_OK) {
                    set_err(err, errlen, "id: expected 16 hex digits");
                    rc = SONDE_EINVAL;
                }
            } else if (x->type != SONDE__JSON_STRING || x->string[0] != '\0') {
                set_err(err, errlen,
                        "id: changing a silence is not supported; expire it "
                        "(DELETE /alerts/silences/ID) and add a new one");
                rc = SONDE_EINVAL;
            }
        } else if (stored && strcmp(key, "updatedAt") == 0) {
            rc = req_time(x, key, &out->updated, err, errlen);
        } else if (stored && strcmp(key, "status") == 0) {
            /* Derived from the times. */
        } else {
            set_err(err, errlen,
                    "unknown member \"%.64s\" (expected matchers, startsAt, endsAt, "
                    "duration, comment, createdBy)",
                    key);
            rc = SONDE_EINVAL;
        }
    }
    if (!rc && !have_matchers) {
        set_err(err, errlen, "matchers: missing (an array of at least one matcher)");
        rc = SONDE_EINVAL;
    }
    if (!rc && out->ends == 0 && out->duration == 0) {
        set_err(err, errlen, "endsAt or duration: one is required");
        rc = SONDE_EINVAL;
    }
    if (!rc && out->ends != 0 && out->duration != 0) {
        set_err(err, errlen, "endsAt and duration: give one, not both");
        rc = SONDE_EINVAL;
    }
    if (!rc && stored && (!out->id || out->ends == 0)) {
        set_err(err, errlen, "stored silence without id or endsAt");
        rc = SONDE_EINVAL;
    }
    sonde__json_free(v);
    if (rc)
        sonde__silence_req_free(out);
    return rc;
}

int sonde__silence_req_parse(const char *body, size_t len, sonde__silence_req *out, char *err,
                             size_t errlen)
{
    return parse_doc(body, len, out, false, err, errlen);
}

int sonde__silence_doc_parse(const char *doc, size_t len, sonde__silence_req *out, char *err,
                             size_t errlen)
{
    return parse_doc(doc, len, out, true, err, errlen);
}

static void req_opts(const sonde__silence_req *r, sonde_silence_opts *o)
{
    sonde_silence_opts_init(o);
    o->matchers = r->m;
    o->matcher_count = r->n;
    o->starts = r->starts;
    o->ends = r->ends;
    o->duration = r->duration;
    o->comment = r->comment;
    o->created_by = r->created_by;
}

int sonde__silence_add_req(sonde_errors *t, const sonde__silence_req *r, uint64_t *id, char *err,
                           size_t errlen)
{
    sonde_silence_opts o;
    req_opts(r, &o);
    return add_checked(t, &o, id, err, errlen);
}

/* ---- the store (worker; t->lock held) ---- */

static int64_t to_ms(double s)
{
    return (int64_t)llround(s * 1000.0);
}

static int load_one(const sonde__silence_row *row, void *ud)
{
    sonde_errors *t = ud;
    sonde__silence_req r;
    char err[200];
    if (sonde__silence_doc_parse(row->data, row->data_len, &r, err, sizeof err) != SONDE_OK) {
        sonde__alerts_log(4, "stored silence %.64s skipped: %s", row->id, err);
        return 0;
    }
    silence *known = find(t, r.id);
    if (known && known->updated >= r.updated) {
        sonde__silence_req_free(&r);
        return 0;
    }
    sonde_silence_opts o;
    req_opts(&r, &o);
    int rc;
    silence *s = build(&o, &rc, err, sizeof err);
    if (s) {
        s->id = r.id;
        s->starts = r.starts;
        s->ends = r.ends;
        s->updated = r.updated;
        if (known) {
            for (size_t i = 0; i < t->nsilences; i++)
                if (t->silences[i] == known)
                    t->silences[i] = s;
            silence_free(known);
        } else if (make_room(t, sonde__errors_now(t), false) == SONDE_OK) {
            t->silences[t->nsilences++] = s;
        } else {
            silence_free(s);
        }
    } else {
        sonde__alerts_log(4, "stored silence %.64s skipped: %s", row->id, err);
    }
    sonde__silence_req_free(&r);
    return 0;
}

int sonde__silences_sync(sonde_errors *t, const struct sonde__store_type *type, void *ctx,
                         char *err, size_t errlen)
{
    int rc;
    if (!t->silences_loaded) {
        rc = type->read_silences(ctx, load_one, t, err, errlen);
        if (rc)
            return rc;
        t->silences_loaded = true;
    }
    double now = sonde__errors_now(t);
    if (t->silences_dirty) {
        sonde_buf doc = {0};
        for (size_t i = 0; i < t->nsilences; i++) {
            silence *s = t->silences[i];
            if (!s->dirty)
                continue;
            sonde_buf_reset(&doc);
            if (json_silence(&doc, s, now, false) != SONDE_OK) {
                sonde_buf_free(&doc);
                return SONDE_ENOMEM;
            }
            char id[17];
            sonde__silence_id_format(s->id, id);
            sonde__silence_row row = {id, to_ms(s->ends), to_ms(s->updated), doc.data, doc.len};
            rc = type->save_silence(ctx, &row, err, errlen);
            if (rc) {
                sonde_buf_free(&doc);
                return rc;
            }
            s->dirty = false;
        }
        sonde_buf_free(&doc);
        t->silences_dirty = false;
    }
    if (now - t->last_silence_prune >= PRUNE_EVERY_S || now < t->last_silence_prune) {
        rc = type->prune_silences(ctx, to_ms(now - retention(t)), err, errlen);
        if (rc)
            return rc;
        t->last_silence_prune = now;
    }
    return SONDE_OK;
}
