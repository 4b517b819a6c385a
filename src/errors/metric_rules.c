/*
 * Alert rules over any metric of the tracker's registry: the value of a
 * gauge or counter, the rate or increase of a counter over a window, the
 * ratio of two counters' increases, a quantile of a histogram over a
 * window.
 *
 * A metric rule is a `rule` in t->rules that is never one alert itself:
 * every evaluation (or every interval_seconds) it walks the registry the
 * way the remote writer's sampler does (read lock of the registry, each
 * family's creation lock while its series are read; recording never takes
 * either lock, and a family's lock is only taken by series creation), keeps
 * a bounded ring of reset-adjusted samples per series for its window, and
 * computes one value per series (or per `by` group). Each has a per-series
 * alert: a `rule` carrying the series' labels, measured here (ext_known,
 * ext_cond, value) and stepped by the ordinary state machine of rules.c,
 * so `for`, resolution, repeat, silences, history and the notifiers work
 * unchanged.
 *
 * Counter resets: a sample lower than the previous one means the counter
 * restarted from zero, as in Prometheus: the previous value is added to an
 * offset, and the ring keeps value + offset. A series first seen after the
 * rule's first sampling is taken to have been 0 at the previous sampling
 * (labelled counters appear at their first increment). A series that
 * disappears has no value: its alert resolves.
 */
#include "errors/errors_int.h"
#include "expose/visit.h"
#include "metrics/metrics_int.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RING 64
#define MAX_MATCHERS 16
#define MAX_BY 16
#define MAX_ALERTS 1000  /* per-series alerts of one rule */
#define MAX_RAW 20000    /* sampled series of one rule (buckets count one each) */
#define RAW_BUCKETS 1024 /* hash heads */
#define MAX_PAIRS (SONDE_MAX_LABELS + 40)

/* ---- comparisons ---- */

static const char *const op_names[] = {"?", ">", ">=", "<", "<=", "==", "!="};

const char *sonde_rule_op_name(int op)
{
    return op >= SONDE_OP_GT && op <= SONDE_OP_NE ? op_names[op] : "?";
}

int sonde_rule_op_parse(const char *s)
{
    static const char *const words[] = {"?", "gt", "ge", "lt", "le", "eq", "ne"};
    if (!s)
        return SONDE_EINVAL;
    for (int i = 1; i <= SONDE_OP_NE; i++)
        if (strcmp(s, op_names[i]) == 0 || strcasecmp(s, words[i]) == 0)
            return i;
    if (strcmp(s, "=") == 0)
        return SONDE_OP_EQ;
    return SONDE_EINVAL;
}

static bool compare(int op, double v, double thr)
{
    if (isnan(v))
        return false;
    switch (op) {
    case SONDE_OP_GE:
        return v >= thr;
    case SONDE_OP_LT:
        return v < thr;
    case SONDE_OP_LE:
        return v <= thr;
    case SONDE_OP_EQ:
        return v == thr;
    case SONDE_OP_NE:
        return v != thr;
    default:
        return v > thr;
    }
}

/* ---- selectors ---- */

enum { M_EQ, M_NE, M_RE, M_NRE };

typedef struct matcher {
    char *name;
    int op;
    char *value;
    regex_t re;
    bool compiled;
} matcher;

struct sonde__selector {
    char *metric;
    matcher m[MAX_MATCHERS];
    size_t n;
};

void sonde__selector_free(sonde__selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->n; i++) {
        sonde__free(sel->m[i].name);
        sonde__free(sel->m[i].value);
        if (sel->m[i].compiled)
            regfree(&sel->m[i].re);
    }
    sonde__free(sel->metric);
    sonde__free(sel);
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_alnum(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = sonde__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

#define SEL_FAIL(...)                                                                              \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        sonde__selector_free(sel);                                                                 \
        return SONDE_EINVAL;                                                                       \
    } while (0)

int sonde__selector_parse(const char *s, sonde__selector **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!s || !*s) {
        snprintf(err, errlen, "no metric");
        return SONDE_EINVAL;
    }
    sonde__selector *sel = sonde__calloc(1, sizeof *sel);
    if (!sel)
        return SONDE_ENOMEM;
    const char *p = skip_ws(s);
    const char *start = p;
    if (!is_alpha(*p) && *p != ':')
        SEL_FAIL("selector \"%.80s\": expected a metric name at offset %zu", s, (size_t)(p - s));
    while (is_alnum(*p) || *p == ':')
        p++;
    if (!(sel->metric = dup_n(start, (size_t)(p - start)))) {
        sonde__selector_free(sel);
        return SONDE_ENOMEM;
    }
    p = skip_ws(p);
    if (*p == '{') {
        p = skip_ws(p + 1);
        while (*p != '}') {
            if (sel->n >= MAX_MATCHERS)
                SEL_FAIL("selector \"%.80s\": more than %d matchers", s, MAX_MATCHERS);
            matcher *m = &sel->m[sel->n];
            start = p;
            if (!is_alpha(*p))
                SEL_FAIL("selector \"%.80s\": expected a label name at offset %zu", s,
                         (size_t)(p - s));
            while (is_alnum(*p))
                p++;
            size_t nl = (size_t)(p - start);
            p = skip_ws(p);
            if (p[0] == '=' && p[1] == '~')
                m->op = M_RE, p += 2;
            else if (p[0] == '!' && p[1] == '~')
                m->op = M_NRE, p += 2;
            else if (p[0] == '!' && p[1] == '=')
                m->op = M_NE, p += 2;
            else if (p[0] == '=')
                m->op = M_EQ, p += 1;
            else
                SEL_FAIL("selector \"%.80s\": expected =, !=, =~ or !~ at offset %zu", s,
                         (size_t)(p - s));
            p = skip_ws(p);
            if (*p != '"')
                SEL_FAIL("selector \"%.80s\": expected a quoted value at offset %zu", s,
                         (size_t)(p - s));
            p++;
            sonde_buf v = {0};
            int rc = sonde__buf_puts(&v, "");
            while (!rc && *p && *p != '"') {
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    if (c == 'n')
                        c = '\n';
                    else if (c == 't')
                        c = '\t';
                    else if (c != '\\' && c != '"') {
                        /* Kept as written: regexes use backslashes. */
                        rc = sonde__buf_putc(&v, '\\');
                        if (!c)
                            break;
                    }
                }
                rc = rc ? rc : sonde__buf_putc(&v, c);
            }
            if (rc) {
                sonde_buf_free(&v);
                sonde__selector_free(sel);
                return SONDE_ENOMEM;
            }
            if (*p != '"') {
                sonde_buf_free(&v);
                SEL_FAIL("selector \"%.80s\": unterminated value", s);
            }
            p++;
            m->name = dup_n(start, nl);
            m->value = v.data;
            sel->n++;
            if (!m->name) {
                sonde__selector_free(sel);
                return SONDE_ENOMEM;
            }
            if (m->op == M_RE || m->op == M_NRE) {
                sonde_buf re = {0};
                if (sonde__buf_printf(&re, "^(%s)$", m->value)) {
                    sonde__selector_free(sel);
                    return SONDE_ENOMEM;
                }
                int e = regcomp(&m->re, re.data, REG_EXTENDED | REG_NOSUB);
                sonde_buf_free(&re);
                if (e) {
                    char why[128];
                    regerror(e, &m->re, why, sizeof why);
                    SEL_FAIL("selector \"%.80s\": bad regex \"%.60s\" for label %s: %s", s,
                             m->value, m->name, why);
                }
                m->compiled = true;
            }
            p = skip_ws(p);
            if (*p == ',')
                p = skip_ws(p + 1);
            else if (*p != '}')
                SEL_FAIL("selector \"%.80s\": expected , or } at offset %zu", s, (size_t)(p - s));
        }
        p = skip_ws(p + 1);
    }
    if (*p)
        SEL_FAIL("selector \"%.80s\": unexpected \"%.20s\" at offset %zu", s, p, (size_t)(p - s));
    *out = sel;
    return SONDE_OK;
}

int sonde_rule_selector_check(const char *selector)
{
    sonde__clear_error();
    sonde__selector *sel = NULL;
    char err[256];
    int rc = sonde__selector_parse(selector, &sel, err, sizeof err);
    sonde__selector_free(sel);
    if (rc == SONDE_EINVAL)
        sonde__set_error("%s", err);
    return rc;
}

typedef struct pair {
    const char *k, *v;
} pair;

static const char *pair_get(const pair *p, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].k, name) == 0)
            return p[i].v;
    return "";
}

static bool selector_match(const sonde__selector *sel, const pair *p, size_t n)
{
    for (size_t i = 0; i < sel->n; i++) {
        const matcher *m = &sel->m[i];
        const char *v = pair_get(p, n, m->name);
        bool ok;
        switch (m->op) {
        case M_EQ:
            ok = strcmp(v, m->value) == 0;
            break;
        case M_NE:
            ok = strcmp(v, m->value) != 0;
            break;
        case M_RE:
            ok = regexec(&m->re, v, 0, NULL, 0) == 0;
            break;
        default:
            ok = regexec(&m->re, v, 0, NULL, 0) != 0;
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

/* ---- rule state ---- */

/* One sampled series: reset-adjusted values at spacing of at least
 * window / (RING - 4), and the latest one. */
typedef struct raw {
    struct raw *next;
    uint64_t h;
    char *key;
    uint64_t gen;
    double last_raw, offset, last_adj, last_ts;
    double ts[RING], v[RING];
    unsigned n, pos; /* pos: next write */
} raw;

typedef struct metric_rule {
    char *metric_text, *den_text;
    sonde__selector *num, *den;
    char **by;
    size_t nby;
    int kind, op;
    double thr, q, interval, window;
    raw *tab[RAW_BUCKETS];
    size_t nraw;
    uint64_t gen;
    double last_eval; /* 0: never sampled */
    double prev_eval; /* the sampling before the current one */
    rule **kids;
    size_t nkids, capkids;
    uint64_t dropped; /* series or alerts past the bounds, last sampling */
} metric_rule;

static void raw_free_all(metric_rule *m)
{
    for (size_t i = 0; i < RAW_BUCKETS; i++) {
        raw *x = m->tab[i];
        while (x) {
            raw *nx = x->next;
            sonde__free(x->key);
            sonde__free(x);
            x = nx;
        }
        m->tab[i] = NULL;
    }
    m->nraw = 0;
}

void sonde__metric_rule_free(rule *r)
{
    metric_rule *m = r ? r->metric : NULL;
    if (!m)
        return;
    for (size_t i = 0; i < m->nkids; i++)
        sonde__rule_free(m->kids[i]);
    sonde__free(m->kids);
    raw_free_all(m);
    sonde__selector_free(m->num);
    sonde__selector_free(m->den);
    for (size_t i = 0; i < m->nby; i++)
        sonde__free(m->by[i]);
    sonde__free(m->by);
    sonde__free(m->metric_text);
    sonde__free(m->den_text);
    sonde__free(m);
    r->metric = NULL;
}

rule *sonde__metric_rule_child(const rule *r, size_t i)
{
    const metric_rule *m = r->metric;
    return m && i < m->nkids ? m->kids[i] : NULL;
}

static int bad(const rule *r, const char *what)
{
    sonde__set_error("alert rule %s: %s", r->name, what);
    return SONDE_EINVAL;
}

int sonde__metric_rule_build(const sonde_rule_opts *o, rule *r)
{
    char err[256];
    if (!o->metric || !o->metric[0])
        return bad(r, "this kind needs a metric");
    if (o->kind == SONDE_RULE_RATIO && (!o->denominator || !o->denominator[0]))
        return bad(r, "a ratio rule needs a denominator");
    if (o->kind != SONDE_RULE_RATIO && o->denominator)
        return bad(r, "denominator is only for ratio rules");
    if (o->kind == SONDE_RULE_QUANTILE && !(o->quantile > 0 && o->quantile <= 1))
        return bad(r, "a quantile rule needs a quantile in (0, 1]");
    if (o->op && (o->op < SONDE_OP_GT || o->op > SONDE_OP_NE))
        return bad(r, "unknown comparison op");
    if (!isfinite(o->threshold_value))
        return bad(r, "threshold_value is not a finite number");
    if (!(o->interval_seconds >= 0 && o->interval_seconds <= 3600))
        return bad(r, "interval_seconds out of range (0..3600)");
    if (o->by_count > MAX_BY || (o->by_count && !o->by))
        return bad(r, "by missing or more than 16 labels");
    for (size_t i = 0; i < o->by_count; i++)
        if (!o->by[i] || !sonde__valid_label_name(o->by[i]) || strncmp(o->by[i], "__", 2) == 0) {
            sonde__set_error("alert rule %s: invalid label name \"%s\" in by", r->name,
                             o->by[i] ? o->by[i] : "(null)");
            return SONDE_EINVAL;
        }
    metric_rule *m = sonde__calloc(1, sizeof *m);
    if (!m)
        return SONDE_ENOMEM;
    r->metric = m;
    r->mdef = m;
    m->kind = o->kind;
    m->op = o->op ? o->op : SONDE_OP_GT;
    m->thr = o->threshold_value;
    m->q = o->quantile;
    m->interval = o->interval_seconds;
    m->window = r->window;
    r->percent = o->threshold_value;
    int rc = sonde__selector_parse(o->metric, &m->num, err, sizeof err);
    if (!rc && o->kind == SONDE_RULE_RATIO)
        rc = sonde__selector_parse(o->denominator, &m->den, err, sizeof err);
    if (rc == SONDE_EINVAL) {
        sonde__set_error("alert rule %s: %s", r->name, err);
        return rc;
    }
    if (rc)
        return rc;
    m->metric_text = sonde__strdup(o->metric);
    m->den_text = o->denominator ? sonde__strdup(o->denominator) : NULL;
    if (!m->metric_text || (o->denominator && !m->den_text))
        return SONDE_ENOMEM;
    if (o->by_count) {
        if (!(m->by = sonde__calloc(o->by_count, sizeof *m->by)))
            return SONDE_ENOMEM;
        for (size_t i = 0; i < o->by_count; i++) {
            if (!(m->by[i] = sonde__strdup(o->by[i])))
                return SONDE_ENOMEM;
            m->nby++;
        }
    }
    return SONDE_OK;
}

int sonde__metric_rule_ident(sonde_buf *b, const sonde_rule_opts *o)
{
    int rc = sonde__buf_printf(b, "m|%zu:%s|", o->metric ? strlen(o->metric) : 0,
                               o->metric ? o->metric : "");
    rc = rc ? rc
            : sonde__buf_printf(b, "%zu:%s|", o->denominator ? strlen(o->denominator) : 0,
                                o->denominator ? o->denominator : "");
    for (size_t i = 0; i < o->by_count && o->by && !rc; i++)
        rc = sonde__buf_printf(b, "by%zu:%s|", strlen(o->by[i] ? o->by[i] : ""),
                               o->by[i] ? o->by[i] : "");
    return rc ? rc
              : sonde__buf_printf(b, "%d|%.17g|%.17g|%.17g", o->op, o->threshold_value, o->quantile,
                                  o->interval_seconds);
}

/* ---- sampling ---- */

static uint64_t hash_str(const char *s, size_t n)
{
    return sonde__hash64(s, n, 0x6d657472696373ULL);
}

static void sort_pairs(pair *p, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        pair x = p[i];
        size_t k = i;
        while (k > 0 && strcmp(p[k - 1].k, x.k) > 0) {
            p[k] = p[k - 1];
            k--;
        }
        p[k] = x;
    }
}

/* {a="x",b="y"} of pairs (le left out unless keep_le), into b. */
static int key_of(sonde_buf *b, const pair *p, size_t n, bool keep_le)
{
    b->len = 0;
    int rc = sonde__buf_putc(b, '{');
    bool first = true;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!keep_le && strcmp(p[i].k, "le") == 0)
            continue;
        if (!first)
            rc = sonde__buf_putc(b, ',');
        first = false;
        rc = rc ? rc : sonde__buf_puts(b, p[i].k);
        rc = rc ? rc : sonde__buf_puts(b, "=\"");
        rc = rc ? rc : sonde__buf_label_escape(b, p[i].v, strlen(p[i].v));
        rc = rc ? rc : sonde__buf_putc(b, '"');
    }
    return rc ? rc : sonde__buf_putc(b, '}');
}

/* One alert's figures during an evaluation. */
typedef struct grp {
    uint64_t h;
    char *key;
    char **labels; /* pairs */
    size_t nlabels;
    double a, b; /* sum (value, rate, increase), ratio numerator / denominator */
    bool has_a, has_b;
    double *le, *cum; /* quantile buckets (le, summed cumulative increase) */
    size_t nb, capb;
} grp;

/* An open-addressing index of hashes to positions (position + 1; 0 empty),
 * kept at most half full; lookups compare the keys themselves. */
typedef struct hidx {
    uint32_t *s;
    size_t mask;
} hidx;

/* Make room for n entries, re-inserting the hashes hs[0..n) when the table
 * grows. False when memory is short. */
static bool hidx_reserve(hidx *h, size_t n, const uint64_t *hs, size_t have)
{
    if (h->s && 2 * n <= h->mask + 1)
        return true;
    size_t cap = 64;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *s = sonde__calloc(cap, sizeof *s);
    if (!s)
        return false;
    sonde__free(h->s);
    h->s = s;
    h->mask = cap - 1;
    for (size_t i = 0; i < have; i++) {
        size_t k = hs[i] & h->mask;
        while (h->s[k])
            k = (k + 1) & h->mask;
        h->s[k] = (uint32_t)i + 1;
    }
    return true;
}

static void hidx_put(hidx *h, uint64_t hash, size_t pos)
{
    size_t k = hash & h->mask;
    while (h->s[k])
        k = (k + 1) & h->mask;
    h->s[k] = (uint32_t)pos + 1;
}

typedef struct evalctx {
    metric_rule *m;
    double now;
    int side; /* 0 numerator, 1 denominator */
    const sonde__selector *sel;
    char want[300]; /* sample name wanted */
    grp *g;
    size_t ng, capg;
    uint64_t *gh; /* hashes of g, for the index */
    hidx gi;
    sonde_buf key, gkey;
    bool oom;
} evalctx;

static raw *raw_get(evalctx *c, const char *key, size_t len)
{
    metric_rule *m = c->m;
    uint64_t h = hash_str(key, len);
    raw **head = &m->tab[h % RAW_BUCKETS];
    for (raw *x = *head; x; x = x->next)
        if (x->h == h && strcmp(x->key, key) == 0)
            return x;
    if (m->nraw >= MAX_RAW) {
        m->dropped++;
        return NULL;
    }
    raw *x = sonde__calloc(1, sizeof *x);
    if (!x || !(x->key = sonde__strdup(key))) {
        sonde__free(x);
        c->oom = true;
        return NULL;
    }
    x->h = h;
    x->next = *head;
    *head = x;
    m->nraw++;
    /* Seen for the first time after the rule's first sampling: it was 0
     * then (a labelled counter appears at its first increment). */
    if (m->last_eval > 0) {
        x->ts[0] = m->last_eval;
        x->v[0] = 0;
        x->n = 1;
        x->pos = 1;
        x->last_ts = m->last_eval;
    }
    return x;
}

static void raw_update(metric_rule *m, raw *x, double v, double now)
{
    if (x->gen == m->gen)
        return; /* the same series twice in one sampling */
    x->gen = m->gen;
    if (v < x->last_raw)
        x->offset += x->last_raw; /* reset: it restarted from 0 */
    x->last_raw = v;
    x->last_adj = v + x->offset;
    x->last_ts = now;
    double spacing = m->window / (RING - 4);
    unsigned newest = (x->pos + RING - 1) % RING;
    if (x->n == 0 || now - x->ts[newest] >= spacing || now < x->ts[newest]) {
        x->ts[x->pos] = now;
        x->v[x->pos] = x->last_adj;
        x->pos = (x->pos + 1) % RING;
        if (x->n < RING)
            x->n++;
    }
}

/* Increase from the oldest sample within the window to the latest. */
static bool raw_increase(const metric_rule *m, const raw *x, double now, double *inc, double *span)
{
    double from = now - m->window - 1e-9;
    for (unsigned k = 0; k < x->n; k++) {
        unsigned i = (x->pos + RING - x->n + k) % RING;
        if (x->ts[i] < from)
            continue;
        if (x->ts[i] >= x->last_ts)
            return false;
        *inc = x->last_adj - x->v[i];
        *span = x->last_ts - x->ts[i];
        return *span > 0;
    }
    return false;
}

static grp *grp_get(evalctx *c, const pair *p, size_t n)
{
    metric_rule *m = c->m;
    pair gp[MAX_PAIRS];
    size_t ng = 0;
    if (m->nby) {
        for (size_t i = 0; i < m->nby; i++) {
            const char *v = pair_get(p, n, m->by[i]);
            if (v[0])
                gp[ng++] = (pair){m->by[i], v};
        }
        sort_pairs(gp, ng);
    } else {
        for (size_t i = 0; i < n && ng < MAX_PAIRS; i++)
            if (strcmp(p[i].k, "le") != 0)
                gp[ng++] = p[i];
    }
    if (key_of(&c->gkey, gp, ng, false)) {
        c->oom = true;
        return NULL;
    }
    uint64_t h = hash_str(c->gkey.data, c->gkey.len);
    if (c->gi.s)
        for (size_t k = h & c->gi.mask; c->gi.s[k]; k = (k + 1) & c->gi.mask) {
            grp *x = &c->g[c->gi.s[k] - 1];
            if (x->h == h && strcmp(x->key, c->gkey.data) == 0)
                return x;
        }
    if (c->ng >= MAX_ALERTS) {
        m->dropped++;
        return NULL;
    }
    if (c->ng == c->capg) {
        size_t cap = c->capg ? 2 * c->capg : 16;
        grp *ng2 = sonde__realloc(c->g, cap * sizeof *ng2);
        if (ng2)
            c->g = ng2;
        uint64_t *gh = ng2 ? sonde__realloc(c->gh, cap * sizeof *gh) : NULL;
        if (!ng2 || !gh) {
            c->oom = true;
            return NULL;
        }
        c->gh = gh;
        c->capg = cap;
    }
    if (!hidx_reserve(&c->gi, c->ng + 1, c->gh, c->ng)) {
        c->oom = true;
        return NULL;
    }
    grp *g = &c->g[c->ng];
    memset(g, 0, sizeof *g);
    g->h = h;
    g->key = sonde__strdup(c->gkey.data);
    g->labels = ng ? sonde__calloc(2 * ng, sizeof *g->labels) : NULL;
    bool ok = g->key && (!ng || g->labels);
    for (size_t i = 0; ok && i < ng; i++) {
        ok = (g->labels[2 * i] = sonde__strdup(gp[i].k)) != NULL &&
             (g->labels[2 * i + 1] = sonde__strdup(gp[i].v)) != NULL;
        g->nlabels = i + 1;
    }
    c->gh[c->ng] = h;
    hidx_put(&c->gi, h, c->ng);
    c->ng++;
    if (!ok) {
        c->oom = true;
        return NULL;
    }
    return g;
}

static void grp_free(grp *g)
{
    sonde__free(g->key);
    for (size_t i = 0; i < 2 * g->nlabels; i++)
        sonde__free(g->labels[i]);
    sonde__free(g->labels);
    sonde__free(g->le);
    sonde__free(g->cum);
}

static void grp_bucket(evalctx *c, grp *g, double le, double inc)
{
    for (size_t i = 0; i < g->nb; i++)
        if (g->le[i] == le) {
            g->cum[i] += inc;
            return;
        }
    if (g->nb == g->capb) {
        size_t cap = g->capb ? 2 * g->capb : 16;
        double *a = sonde__realloc(g->le, cap * sizeof *a);
        if (a)
            g->le = a;
        double *b = a ? sonde__realloc(g->cum, cap * sizeof *b) : NULL;
        if (!a || !b) {
            c->oom = true;
            return;
        }
        g->cum = b;
        g->capb = cap;
    }
    g->le[g->nb] = le;
    g->cum[g->nb++] = inc;
}

/* One sample of the registry walk. */
static void take(evalctx *c, const char *name, pair *p, size_t n, double v)
{
    if (c->oom || strcmp(name, c->want) != 0 || !selector_match(c->sel, p, n))
        return;
    metric_rule *m = c->m;
    double le = 0;
    if (m->kind == SONDE_RULE_QUANTILE) {
        const char *t = pair_get(p, n, "le");
        if (!t[0])
            return;
        le = strcmp(t, "+Inf") == 0 ? INFINITY : strtod(t, NULL);
    }
    sort_pairs(p, n);
    if (m->kind == SONDE_RULE_VALUE) {
        grp *g = grp_get(c, p, n);
        if (g) {
            g->a += v;
            g->has_a = true;
        }
        return;
    }
    if (key_of(&c->key, p, n, true) || sonde__buf_putc(&c->key, (char)('0' + c->side))) {
        c->oom = true;
        return;
    }
    raw *x = raw_get(c, c->key.data, c->key.len);
    if (!x)
        return;
    raw_update(m, x, v, c->now);
    double inc, span;
    if (!raw_increase(m, x, c->now, &inc, &span))
        return;
    grp *g = grp_get(c, p, n);
    if (!g)
        return;
    switch (m->kind) {
    case SONDE_RULE_RATE:
        g->a += inc / span;
        g->has_a = true;
        break;
    case SONDE_RULE_INCREASE:
        g->a += inc;
        g->has_a = true;
        break;
    case SONDE_RULE_RATIO:
        if (c->side == 0) {
            g->a += inc;
            g->has_a = true;
        } else {
            g->b += inc;
            g->has_b = true;
        }
        break;
    case SONDE_RULE_QUANTILE:
        grp_bucket(c, g, le, inc);
        g->has_a = true;
        break;
    }
}

/* Native families, read as the remote writer's sampler does. */
static void walk_family(evalctx *c, struct sonde_family *f)
{
    pair base[MAX_PAIRS];
    size_t nb = 0;
    for (size_t i = 0; i < f->nconst && nb < SONDE_MAX_LABELS + 4; i++)
        base[nb++] = (pair){f->const_kv[2 * i], f->const_kv[2 * i + 1]};
    char name[300];
    size_t nl = strlen(f->name);
    if (nl + 8 >= sizeof name)
        return;
    memcpy(name, f->name, nl + 1);
    if (f->cb) {
        pair p[MAX_PAIRS];
        memcpy(p, base, nb * sizeof *p);
        take(c, name, p, nb, f->cb(f->cb_ud));
        return;
    }
    pthread_mutex_lock(&f->lock);
    for (sonde_series *s = f->head; s && !c->oom; s = s->next) {
        pair p[MAX_PAIRS];
        size_t n = nb;
        memcpy(p, base, nb * sizeof *p);
        const char *val = s->data;
        for (size_t i = 0; i < f->nlabels; i++) {
            p[n++] = (pair){f->label_names[i], val};
            val += strlen(val) + 1;
        }
        switch (f->type) {
        case SONDE_COUNTER:
            take(c, name, p, n, sonde__counter_value(s));
            break;
        case SONDE_GAUGE:
        case SONDE_UNTYPED:
            take(c, name, p, n, sonde_gauge_get((const sonde_gauge *)(const void *)s));
            break;
        case SONDE_HISTOGRAM: {
            if (f->native && f->nb == 0) {
                memcpy(name + nl, "_count", 7);
                take(c, name, p, n,
                     (double)sonde_histogram_get_count((const sonde_histogram *)(const void *)s));
                break;
            }
            uint64_t cum[SONDE_MAX_BUCKETS + 1];
            sonde__cells_sum_u64_n(s->slot, (uint32_t)f->nb + 1, cum);
            for (size_t i = 1; i <= f->nb; i++)
                cum[i] += cum[i - 1];
            memcpy(name + nl, "_bucket", 8);
            for (size_t i = 0; i <= f->nb; i++) {
                pair q[MAX_PAIRS];
                memcpy(q, p, n * sizeof *q);
                q[n] = (pair){"le", f->le_text[i]};
                take(c, name, q, n + 1, (double)cum[i]);
            }
            memcpy(name + nl, "_count", 7);
            take(c, name, p, n, (double)cum[f->nb]);
            memcpy(name + nl, "_sum", 5);
            take(c, name, p, n, sonde__cells_sum_f64(s->slot + (uint32_t)f->nb + 1));
            break;
        }
        case SONDE_SUMMARY:
            memcpy(name + nl, "_count", 7);
            take(c, name, p, n, (double)sonde__cells_sum_u64(s->slot));
            memcpy(name + nl, "_sum", 5);
            take(c, name, p, n, sonde__cells_sum_f64(s->slot + 1));
            break;
        default:
            break;
        }
        name[nl] = '\0';
    }
    pthread_mutex_unlock(&f->lock);
}

static int visit_family(void *ud, sonde_metric_type type, const char *name)
{
    (void)type;
    evalctx *c = ud;
    size_t n = strlen(name);
    return strncmp(c->want, name, n) == 0 &&
           (c->want[n] == '\0' || strcmp(c->want + n, "_bucket") == 0 ||
            strcmp(c->want + n, "_count") == 0 || strcmp(c->want + n, "_sum") == 0 ||
            strcmp(c->want + n, "_total") == 0);
}

static void visit_sample(void *ud, const char *name, const char *const *kv, size_t npairs, double v)
{
    evalctx *c = ud;
    pair p[MAX_PAIRS];
    if (npairs > MAX_PAIRS)
        return;
    for (size_t i = 0; i < npairs; i++)
        p[i] = (pair){kv[2 * i], kv[2 * i + 1]};
    take(c, name, p, npairs, v);
}

/* Feed every sample named c->want: native families first; collectors
 * only when no native family has that name. */
static void walk(evalctx *c, sonde_registry *reg)
{
    bool found = false;
    pthread_rwlock_rdlock(&reg->lock);
    for (struct sonde_family *f = reg->head; f && !c->oom; f = f->next) {
        size_t n = strlen(f->name);
        if (strncmp(c->want, f->name, n) != 0)
            continue;
        const char *rest = c->want + n;
        if (*rest && strcmp(rest, "_bucket") != 0 && strcmp(rest, "_count") != 0 &&
            strcmp(rest, "_sum") != 0)
            continue;
        if (*rest && f->type != SONDE_HISTOGRAM && f->type != SONDE_SUMMARY)
            continue;
        found = true;
        walk_family(c, f);
    }
    pthread_rwlock_unlock(&reg->lock);
    if (!found && !c->oom) {
        sonde__visitor v = {visit_family, visit_sample, c};
        sonde__registry_visit_collectors(reg, &v);
    }
}

/* histogram_quantile over cumulative bucket increases. */
static double quantile_of(double q, grp *g)
{
    /* Sort by le. */
    for (size_t i = 1; i < g->nb; i++) {
        double l = g->le[i], cu = g->cum[i];
        size_t k = i;
        while (k > 0 && g->le[k - 1] > l) {
            g->le[k] = g->le[k - 1];
            g->cum[k] = g->cum[k - 1];
            k--;
        }
        g->le[k] = l;
        g->cum[k] = cu;
    }
    if (g->nb < 2 || !isinf(g->le[g->nb - 1]))
        return NAN;
    for (size_t i = 1; i < g->nb; i++)
        if (g->cum[i] < g->cum[i - 1])
            g->cum[i] = g->cum[i - 1];
    double total = g->cum[g->nb - 1];
    if (!(total > 0))
        return NAN;
    double rank = q * total;
    size_t b = 0;
    while (b < g->nb - 1 && g->cum[b] < rank)
        b++;
    if (b == g->nb - 1)
        return g->le[g->nb - 2];
    if (b == 0 && g->le[0] <= 0)
        return g->le[0];
    double start = b == 0 ? 0 : g->le[b - 1];
    double below = b == 0 ? 0 : g->cum[b - 1];
    double count = g->cum[b] - below;
    if (!(count > 0))
        return g->le[b];
    return start + (g->le[b] - start) * ((rank - below) / count);
}

static rule *kid_new(rule *r, const grp *g, double now)
{
    rule *k = sonde__calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->kind = r->kind;
    k->severity = r->severity;
    k->min_sev = r->min_sev;
    k->window = r->window;
    k->percent = r->percent;
    k->for_s = r->for_s;
    k->repeat_s = r->repeat_s;
    k->value = NAN;
    k->created = now;
    k->mdef = r->mdef;
    size_t nl = r->nlabels + g->nlabels;
    bool ok = (k->name = sonde__strdup(r->name)) != NULL &&
              (k->series = sonde__strdup(g->key)) != NULL &&
              (!r->summary_tpl || (k->summary_tpl = sonde__strdup(r->summary_tpl))) &&
              (!r->description_tpl || (k->description_tpl = sonde__strdup(r->description_tpl))) &&
              (!nl || (k->labels = sonde__calloc(2 * nl, sizeof *k->labels)));
    /* The rule's own labels first: they win over a series label of the
     * same name (as a Prometheus rule's labels do). */
    for (size_t i = 0; ok && i < r->nlabels; i++) {
        ok = (k->labels[2 * k->nlabels] = sonde__strdup(r->labels[2 * i])) != NULL &&
             (k->labels[2 * k->nlabels + 1] = sonde__strdup(r->labels[2 * i + 1])) != NULL;
        k->nlabels++;
    }
    for (size_t i = 0; ok && i < g->nlabels; i++) {
        ok = (k->labels[2 * k->nlabels] = sonde__strdup(g->labels[2 * i])) != NULL &&
             (k->labels[2 * k->nlabels + 1] = sonde__strdup(g->labels[2 * i + 1])) != NULL;
        k->nlabels++;
    }
    if (!ok) {
        sonde__rule_free(k);
        return NULL;
    }
    return k;
}

/* The per-series alerts by hash of their series text, for one
 * evaluation. */
typedef struct kidx {
    hidx h;
    uint64_t *hs;
    size_t cap;
} kidx;

static bool kidx_build(kidx *x, const metric_rule *m, size_t extra)
{
    x->cap = m->nkids + extra;
    x->hs = x->cap ? sonde__calloc(x->cap, sizeof *x->hs) : NULL;
    if (x->cap && !x->hs)
        return false;
    for (size_t i = 0; i < m->nkids; i++)
        x->hs[i] = hash_str(m->kids[i]->series, strlen(m->kids[i]->series));
    return hidx_reserve(&x->h, x->cap ? x->cap : 1, x->hs, m->nkids);
}

static rule *kid_find(const kidx *x, const metric_rule *m, const char *key, uint64_t h)
{
    for (size_t k = h & x->h.mask; x->h.s[k]; k = (k + 1) & x->h.mask) {
        size_t i = x->h.s[k] - 1;
        if (x->hs[i] == h && strcmp(m->kids[i]->series, key) == 0)
            return m->kids[i];
    }
    return NULL;
}

static void raw_prune(metric_rule *m)
{
    for (size_t i = 0; i < RAW_BUCKETS; i++) {
        raw **pp = &m->tab[i];
        while (*pp) {
            raw *x = *pp;
            if (x->gen != m->gen) {
                *pp = x->next;
                sonde__free(x->key);
                sonde__free(x);
                m->nraw--;
            } else {
                pp = &x->next;
            }
        }
    }
}

void sonde__metric_rule_eval(sonde_errors *t, rule *r, double now)
{
    metric_rule *m = r->metric;
    if (r->removed) {
        for (size_t i = 0; i < m->nkids; i++) {
            m->kids[i]->removed = true;
            sonde__rule_step(t, m->kids[i], now);
            sonde__rule_free(m->kids[i]);
        }
        m->nkids = 0;
        return;
    }
    if (!sonde_enabled())
        return; /* off means off: never sampled, never fires */
    if (m->interval > 0 && m->last_eval > 0 && now >= m->last_eval &&
        now - m->last_eval < m->interval)
        return;
    m->gen++;
    m->dropped = 0;
    evalctx c = {.m = m, .now = now};
    for (int side = 0; side < (m->kind == SONDE_RULE_RATIO ? 2 : 1); side++) {
        c.side = side;
        c.sel = side ? m->den : m->num;
        snprintf(c.want, sizeof c.want, "%s%s", c.sel->metric,
                 m->kind == SONDE_RULE_QUANTILE ? "_bucket" : "");
        walk(&c, t->registry);
    }
    /* Values of the groups, and their alerts. */
    kidx kx = {0};
    if (!kidx_build(&kx, m, c.ng))
        c.oom = true;
    for (size_t i = 0; i < c.ng && !c.oom; i++) {
        grp *g = &c.g[i];
        double v = NAN;
        switch (m->kind) {
        case SONDE_RULE_RATIO:
            /* No denominator: no ratio. A numerator never seen counts 0
             * (failure counters appear at the first failure). */
            if (!g->has_b)
                continue;
            if (g->b > 0)
                v = (g->has_a ? g->a : 0) / g->b;
            break;
        case SONDE_RULE_QUANTILE:
            v = quantile_of(m->q, g);
            break;
        default:
            v = g->a;
            break;
        }
        if (!g->has_a && m->kind != SONDE_RULE_RATIO)
            continue;
        rule *k = kid_find(&kx, m, g->key, g->h);
        if (!k) {
            if (m->nkids >= MAX_ALERTS) {
                m->dropped++;
                continue;
            }
            if (m->nkids == m->capkids) {
                size_t cap = m->capkids ? 2 * m->capkids : 8;
                rule **a = sonde__realloc(m->kids, cap * sizeof *a);
                if (!a)
                    break;
                m->kids = a;
                m->capkids = cap;
            }
            if (!(k = kid_new(r, g, now)))
                break;
            kx.hs[m->nkids] = g->h;
            hidx_put(&kx.h, g->h, m->nkids);
            m->kids[m->nkids++] = k;
        }
        k->seen_gen = m->gen;
        k->value = v;
        k->ext_known = true;
        k->ext_cond = compare(m->op, v, m->thr);
    }
    for (size_t i = 0; i < c.ng; i++)
        grp_free(&c.g[i]);
    sonde__free(c.g);
    sonde__free(c.gh);
    sonde__free(c.gi.s);
    sonde__free(kx.h.s);
    sonde__free(kx.hs);
    sonde_buf_free(&c.key);
    sonde_buf_free(&c.gkey);
    /* Step every alert; a series gone has no value: its alert resolves.
     * Alerts of gone series are forgotten once inactive, or five minutes
     * after they resolved. */
    int agg = SONDE_ALERT_INACTIVE;
    for (size_t i = 0; i < m->nkids;) {
        rule *k = m->kids[i];
        bool seen = k->seen_gen == m->gen;
        if (!seen) {
            k->value = NAN;
            k->ext_known = true;
            k->ext_cond = false;
        }
        sonde__rule_step(t, k, now);
        if (k->state == SONDE_ALERT_FIRING)
            agg = SONDE_ALERT_FIRING;
        else if (k->state == SONDE_ALERT_PENDING && agg != SONDE_ALERT_FIRING)
            agg = SONDE_ALERT_PENDING;
        if (!seen && (k->state == SONDE_ALERT_INACTIVE ||
                      (k->state == SONDE_ALERT_RESOLVED && now - k->resolved_at >= 300))) {
            sonde__rule_free(k);
            m->kids[i] = m->kids[--m->nkids];
            continue;
        }
        i++;
    }
    r->state = agg;
    raw_prune(m);
    m->prev_eval = m->last_eval;
    m->last_eval = now;
}

/* ---- text ---- */

static int put_window(sonde_buf *b, double w)
{
    if (w >= 3600 && fmod(w, 3600) == 0)
        return sonde__buf_printf(b, "%gh", w / 3600);
    if (w >= 60 && fmod(w, 60) == 0)
        return sonde__buf_printf(b, "%gm", w / 60);
    return sonde__buf_printf(b, "%gs", w);
}

int sonde__metric_put_value(sonde_buf *b, const rule *r, double v)
{
    (void)r;
    if (isnan(v))
        return sonde__buf_puts(b, "unknown");
    return sonde__buf_printf(b, "%.4g", v);
}

int sonde__metric_put_threshold(sonde_buf *b, const rule *r)
{
    return sonde__buf_printf(b, "%g", r->mdef ? r->mdef->thr : r->percent);
}

int sonde__metric_summary(sonde_buf *b, const rule *r, double v)
{
    const metric_rule *m = r->mdef;
    if (!m)
        return SONDE_OK;
    const char *series = r->series && strcmp(r->series, "{}") != 0 ? r->series : "";
    int rc = SONDE_OK;
    switch (m->kind) {
    case SONDE_RULE_VALUE:
        rc = sonde__buf_printf(b, "%s%s is ", m->num->metric, series);
        break;
    case SONDE_RULE_RATE:
        rc = sonde__buf_printf(b, "rate of %s%s over ", m->num->metric, series);
        rc = rc ? rc : put_window(b, m->window);
        rc = rc ? rc : sonde__buf_puts(b, " is ");
        break;
    case SONDE_RULE_INCREASE:
        rc = sonde__buf_printf(b, "increase of %s%s over ", m->num->metric, series);
        rc = rc ? rc : put_window(b, m->window);
        rc = rc ? rc : sonde__buf_puts(b, " is ");
        break;
    case SONDE_RULE_RATIO:
        rc = sonde__buf_printf(b, "%s / %s%s over ", m->num->metric, m->den->metric, series);
        rc = rc ? rc : put_window(b, m->window);
        rc = rc ? rc : sonde__buf_puts(b, " is ");
        break;
    case SONDE_RULE_QUANTILE:
        rc = sonde__buf_printf(b, "p%g of %s%s over ", m->q * 100, m->num->metric, series);
        rc = rc ? rc : put_window(b, m->window);
        rc = rc ? rc : sonde__buf_puts(b, " is ");
        break;
    }
    rc = rc ? rc : sonde__metric_put_value(b, r, v);
    return rc ? rc : sonde__buf_printf(b, " (threshold %s %g)", sonde_rule_op_name(m->op), m->thr);
}

int sonde__metric_json_definition(sonde_buf *b, const rule *r)
{
    const metric_rule *m = r->metric;
    int rc = sonde__buf_puts(b, ",\"metric\":");
    rc = rc ? rc : sonde__buf_json_str(b, m->metric_text);
    if (m->den_text) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"denominator\":");
        rc = rc ? rc : sonde__buf_json_str(b, m->den_text);
    }
    if (m->nby) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"by\":[");
        for (size_t i = 0; i < m->nby && !rc; i++) {
            rc = i ? sonde__buf_putc(b, ',') : SONDE_OK;
            rc = rc ? rc : sonde__buf_json_str(b, m->by[i]);
        }
        rc = rc ? rc : sonde__buf_putc(b, ']');
    }
    rc = rc ? rc : sonde__buf_printf(b, ",\"op\":\"%s\",\"threshold\":", sonde_rule_op_name(m->op));
    rc = rc ? rc : sonde__buf_json_double(b, m->thr);
    if (m->kind == SONDE_RULE_QUANTILE) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"quantile\":");
        rc = rc ? rc : sonde__buf_json_double(b, m->q);
    }
    if (m->interval > 0) {
        rc = rc ? rc : sonde__buf_puts(b, ",\"interval_seconds\":");
        rc = rc ? rc : sonde__buf_json_double(b, m->interval);
    }
    return rc ? rc
              : sonde__buf_printf(b, ",\"series\":%zu,\"series_dropped\":%llu", m->nkids,
                                  (unsigned long long)m->dropped);
}
