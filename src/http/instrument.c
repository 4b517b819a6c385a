/*
 * Request instrumentation for the application's own HTTP servers
 * (sonde/app.h): begin/end around each request.
 *
 * Hot path: a route handle caches, per method, its duration and size
 * histograms and a few (status, counter) pairs, filled at first use with
 * atomic stores; begin and end then touch only those handles, the clock
 * and the in-flight gauge: no lock, no allocation, no string hashing for
 * statuses already seen. Everything beyond (logging context, tracing,
 * error capture) is done only when asked for or when a 5xx happens.
 */
#include "http/routes.h"

#include <sonde/log.h>

#include <stdio.h>
#include <string.h>

#define NMETHODS 8
#define NCODES 8
#define MAX_ROUTES 1024
#define MAX_TEMPLATES 256

typedef struct code_slot {
    _Atomic int code; /* 0 free */
    _Atomic(sonde_counter *) c;
} code_slot;

struct sonde_http_route {
    char *tmpl;
    sonde_http_instr *in;
    sonde_op *op;
    _Atomic(sonde_histogram *) dur[NMETHODS];
    _Atomic(sonde_histogram *) reqsz[NMETHODS];
    _Atomic(sonde_histogram *) respsz[NMETHODS];
    code_slot codes[NMETHODS][NCODES];
};

enum { SEC_UNAUTH, SEC_FORBIDDEN, SEC_RATE, SEC_OVERSIZED, SEC_BADREQ, SEC_COUNT };
static const char *const sec_kinds[SEC_COUNT] = {"unauthorized", "forbidden", "rate_limited",
                                                 "oversized", "bad_request"};

struct sonde_http_instr {
    sonde_registry *reg;
    sonde_family *total, *dur, *reqsz, *respsz, *sec;
    sonde_gauge *inflight;
    sonde_counter *sec_c[SEC_COUNT];
    sonde_errors *errors;
    bool no_errors, no_trace;
    pthread_mutex_t lock; /* route creation */
    sonde_http_route *routes[MAX_ROUTES];
    _Atomic size_t nroutes;
    sonde_http_route *other;
    /* templates for sonde_http_instr_match, in the options' order */
    sonde_http_route *tmpl[MAX_TEMPLATES];
    size_t ntmpl;
};

static const char *const method_names[NMETHODS] = {"GET",    "HEAD",  "POST",    "PUT",
                                                   "DELETE", "PATCH", "OPTIONS", "OTHER"};

static int method_index(sonde_http_method m)
{
    /* One bit set: its position (OTHER for anything else). */
    unsigned v = (unsigned)m;
    if (v == 0 || (v & (v - 1)) || v > SONDE_HTTP_OTHER)
        return NMETHODS - 1;
    return __builtin_ctz(v);
}

void sonde_http_instr_opts_init(sonde_http_instr_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double size_buckets[] = {64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304};

static int make_family(sonde_http_instr *in, const char *ns, const char *name, const char *help,
                       sonde_metric_type type, const char *const *labels, size_t nl,
                       const double *b, size_t nb, sonde_family **out)
{
    char full[256];
    int n = snprintf(full, sizeof full, "%s%s%s", ns ? ns : "", ns && *ns ? "_" : "", name);
    if (n < 0 || (size_t)n >= sizeof full)
        return SONDE_EBADNAME;
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = full;
    o.help = help;
    o.label_names = labels;
    o.label_count = nl;
    o.buckets = b;
    o.bucket_count = nb;
    return sonde_family_create(in->reg, type, &o, out);
}

static sonde_http_route *route_new(sonde_http_instr *in, const char *tmpl)
{
    sonde_http_route *r = sonde__calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->in = in;
    r->tmpl = sonde__strdup(tmpl);
    if (!r->tmpl) {
        sonde__free(r);
        return NULL;
    }
    if (!in->no_trace)
        r->op = sonde_op_get(tmpl);
    return r;
}

static void route_free(sonde_http_route *r)
{
    if (r) {
        sonde__free(r->tmpl);
        sonde__free(r);
    }
}

void sonde_http_instr_destroy(sonde_http_instr *in)
{
    if (!in)
        return;
    size_t n = atomic_load(&in->nroutes);
    for (size_t i = 0; i < n; i++)
        route_free(in->routes[i]);
    route_free(in->other);
    pthread_mutex_destroy(&in->lock);
    sonde__free(in);
}

static bool template_ok(const char *t)
{
    return t && t[0] == '/' && strlen(t) <= 256;
}

int sonde_http_instr_create(const sonde_http_instr_opts *opts, sonde_http_instr **out)
{
    sonde__clear_error();
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    sonde_http_instr_opts d;
    sonde_http_instr_opts_init(&d);
    const sonde_http_instr_opts *o = opts ? opts : &d;
    if (o->route_count > MAX_TEMPLATES || (o->route_count && !o->routes)) {
        sonde__set_error("http instrumentation: at most 256 route templates");
        return SONDE_EINVAL;
    }
    for (size_t i = 0; i < o->route_count; i++)
        if (!template_ok(o->routes[i])) {
            sonde__set_error("http instrumentation: route template \"%s\" must start with '/'",
                             o->routes[i] ? o->routes[i] : "(null)");
            return SONDE_EINVAL;
        }
    sonde_http_instr *in = sonde__calloc(1, sizeof *in);
    if (!in)
        return SONDE_ENOMEM;
    pthread_mutex_init(&in->lock, NULL);
    in->reg = o->registry ? o->registry : sonde_registry_default();
    in->errors = o->errors;
    in->no_errors = o->no_errors != 0;
    in->no_trace = o->no_trace != 0;
    const char *ns = o->metric_namespace;
    const char *mrs[3] = {"method", "route", "status"};
    const char *kind[1] = {"kind"};
    const double *b = o->buckets ? o->buckets : default_buckets;
    size_t nb = o->buckets ? o->bucket_count : SONDE_ARRAY_LEN(default_buckets);
    sonde_family *inflight = NULL;
    int rc = make_family(in, ns, "http_requests_total",
                         "HTTP requests answered, by method, route template and status",
                         SONDE_COUNTER, mrs, 3, NULL, 0, &in->total);
    rc = rc ? rc
            : make_family(in, ns, "http_request_duration_seconds",
                          "Time to answer an HTTP request, by method and route template",
                          SONDE_HISTOGRAM, mrs, 2, b, nb, &in->dur);
    rc = rc ? rc
            : make_family(in, ns, "http_request_size_bytes",
                          "Size of HTTP requests, by method and route template", SONDE_HISTOGRAM,
                          mrs, 2, size_buckets, SONDE_ARRAY_LEN(size_buckets), &in->reqsz);
    rc = rc ? rc
            : make_family(in, ns, "http_response_size_bytes",
                          "Size of HTTP responses, by method and route template", SONDE_HISTOGRAM,
                          mrs, 2, size_buckets, SONDE_ARRAY_LEN(size_buckets), &in->respsz);
    rc = rc ? rc
            : make_family(in, ns, "http_requests_in_flight", "HTTP requests being answered",
                          SONDE_GAUGE, NULL, 0, NULL, 0, &inflight);
    rc = rc ? rc
            : make_family(in, ns, "http_security_events_total",
                          "Refused HTTP requests by kind (unauthorized, forbidden, "
                          "rate_limited, oversized, bad_request)",
                          SONDE_COUNTER, kind, 1, NULL, 0, &in->sec);
    if (rc) {
        sonde_http_instr_destroy(in);
        return rc;
    }
    in->inflight = sonde_family_as_gauge(inflight);
    for (int k = 0; k < SEC_COUNT; k++)
        in->sec_c[k] = sonde_family_counter(in->sec, sec_kinds[k]);
    in->other = route_new(in, "other");
    if (!in->other) {
        sonde_http_instr_destroy(in);
        return SONDE_ENOMEM;
    }
    for (size_t i = 0; i < o->route_count; i++) {
        sonde_http_route *r = sonde_http_instr_route(in, o->routes[i]);
        if (r == in->other) {
            sonde_http_instr_destroy(in);
            return SONDE_ENOMEM;
        }
        in->tmpl[in->ntmpl++] = r;
    }
    *out = in;
    return SONDE_OK;
}

sonde_http_route *sonde_http_instr_route(sonde_http_instr *in, const char *tmpl)
{
    if (!tmpl || !*tmpl)
        return in->other;
    size_t n = atomic_load_explicit(&in->nroutes, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(in->routes[i]->tmpl, tmpl) == 0)
            return in->routes[i];
    pthread_mutex_lock(&in->lock);
    sonde_http_route *r = NULL;
    n = atomic_load_explicit(&in->nroutes, memory_order_relaxed);
    for (size_t i = 0; i < n && !r; i++)
        if (strcmp(in->routes[i]->tmpl, tmpl) == 0)
            r = in->routes[i];
    if (!r && n < MAX_ROUTES && (r = route_new(in, tmpl)) != NULL) {
        in->routes[n] = r;
        atomic_store_explicit(&in->nroutes, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&in->lock);
    return r ? r : in->other;
}

const char *sonde_http_route_template(const sonde_http_route *r)
{
    return r ? r->tmpl : "other";
}

/* Whether path matches template t: "{x}" is one non-empty segment, a final
 * "*" the rest of the path. */
static bool tmpl_match(const char *t, const char *p)
{
    while (*t && *p) {
        if (t[0] == '*' && t[1] == '\0')
            return true;
        if (*t == '{') {
            const char *close = strchr(t, '}');
            if (!close)
                return false;
            if (*p == '/' || !*p)
                return false;
            while (*p && *p != '/')
                p++;
            t = close + 1;
            continue;
        }
        if (*t != *p)
            return false;
        t++;
        p++;
    }
    return (*t == '\0' || (t[0] == '*' && t[1] == '\0')) && *p == '\0';
}

sonde_http_route *sonde_http_instr_match(sonde_http_instr *in, const char *path)
{
    if (!in)
        return NULL;
    if (!path)
        return in->other;
    size_t plen = strcspn(path, "?");
    char tmp[1024];
    if (path[plen] == '?') {
        if (plen >= sizeof tmp)
            return in->other;
        memcpy(tmp, path, plen);
        tmp[plen] = '\0';
        path = tmp;
    }
    for (size_t i = 0; i < in->ntmpl; i++)
        if (tmpl_match(in->tmpl[i]->tmpl, path))
            return in->tmpl[i];
    return in->other;
}

/* ---- hot path ---- */

static sonde_histogram *hist(sonde_family *f, _Atomic(sonde_histogram *) *slot, int mi,
                             const char *route)
{
    sonde_histogram *h = atomic_load_explicit(slot, memory_order_acquire);
    if (!h) {
        h = sonde_family_histogram(f, method_names[mi], route);
        atomic_store_explicit(slot, h, memory_order_release);
    }
    return h;
}

static sonde_counter *status_counter(sonde_http_instr *in, sonde_http_route *r, int mi, int status)
{
    code_slot *cs = r->codes[mi];
    for (int i = 0; i < NCODES; i++) {
        int c = atomic_load_explicit(&cs[i].code, memory_order_acquire);
        if (c == status) {
            sonde_counter *k = atomic_load_explicit(&cs[i].c, memory_order_acquire);
            if (k)
                return k;
            break;
        }
        if (c == 0)
            break;
    }
    char code_s[8];
    snprintf(code_s, sizeof code_s, "%d", status);
    sonde_counter *k = sonde_family_counter(in->total, method_names[mi], r->tmpl, code_s);
    for (int i = 0; i < NCODES; i++) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&cs[i].code, &expect, status)) {
            atomic_store_explicit(&cs[i].c, k, memory_order_release);
            break;
        }
        if (expect == status)
            break;
    }
    return k;
}

void sonde_http_begin(sonde_http_instr *in, sonde_http_req *rq, sonde_http_route *route,
                      sonde_http_method method, const sonde_http_begin_info *info)
{
    rq->in = in;
    rq->route = route ? route : (in ? in->other : NULL);
    rq->method_index = method_index(method);
    rq->ctx_token = 0;
    rq->request_bytes = 0;
    rq->request_id[0] = '\0';
    rq->op = (sonde_op_token){0};
    if (!in || !sonde__on()) {
        rq->in = NULL;
        return;
    }
    if (info) {
        rq->request_bytes = info->request_bytes;
        if (info->traceparent || info->x_request_id || info->adopt_context) {
            sonde_log_correlation_from_headers(info->traceparent, info->x_request_id,
                                               rq->request_id);
            rq->ctx_token = sonde_log_context_push(rq->request_id, NULL, 0);
        }
    }
    sonde_gauge_inc(in->inflight);
    if (rq->route->op) {
        rq->op = sonde_op_begin_op(rq->route->op);
        rq->t0_ns = 0;
    } else {
        rq->t0_ns = sonde__now_mono_ns();
    }
}

static void capture_5xx(sonde_http_req *rq, int status, double seconds)
{
    char st[8], dur[32];
    snprintf(st, sizeof st, "%d", status);
    snprintf(dur, sizeof dur, "%.6f", seconds);
    const char *ctx[] = {"method",
                         method_names[rq->method_index],
                         "route",
                         rq->route->tmpl,
                         "status",
                         st,
                         "request_id",
                         rq->request_id,
                         "duration_seconds",
                         dur};
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = SONDE_SEVERITY_HIGH;
    e.type = "HTTP5xx";
    e.operation = rq->route->tmpl;
    char msg[320];
    snprintf(msg, sizeof msg, "%s %s answered %d", method_names[rq->method_index], rq->route->tmpl,
             status);
    e.message = msg;
    e.context = ctx;
    e.context_count = 5;
    sonde_error_capture(rq->in->errors, &e);
}

void sonde_http_end(sonde_http_req *rq, int status, uint64_t response_bytes)
{
    sonde_http_instr *in = rq->in;
    if (!in)
        return;
    double seconds;
    if (rq->op.op)
        seconds = sonde_op_end(rq->op, status < 500);
    else
        seconds = (double)(sonde__now_mono_ns() - rq->t0_ns) * 1e-9;
    sonde_http_route *r = rq->route;
    int mi = rq->method_index;
    sonde_counter_inc(status_counter(in, r, mi, status));
    sonde_histogram_observe(hist(in->dur, &r->dur[mi], mi, r->tmpl), seconds);
    if (rq->request_bytes)
        sonde_histogram_observe(hist(in->reqsz, &r->reqsz[mi], mi, r->tmpl),
                                (double)rq->request_bytes);
    if (response_bytes)
        sonde_histogram_observe(hist(in->respsz, &r->respsz[mi], mi, r->tmpl),
                                (double)response_bytes);
    sonde_gauge_dec(in->inflight);
    int k = -1;
    switch (status) {
    case 400:
        k = SEC_BADREQ;
        break;
    case 401:
        k = SEC_UNAUTH;
        break;
    case 403:
        k = SEC_FORBIDDEN;
        break;
    case 413:
    case 414:
    case 431:
        k = SEC_OVERSIZED;
        break;
    case 429:
        k = SEC_RATE;
        break;
    }
    if (k >= 0)
        sonde_counter_inc(in->sec_c[k]);
    if (status >= 500 && !in->no_errors)
        capture_5xx(rq, status, seconds);
    if (rq->ctx_token > 0)
        sonde_log_context_pop(rq->ctx_token);
    rq->ctx_token = 0;
    rq->in = NULL;
}
