/*
 * Application routes: the table, matching, and the public add/remove.
 * The table is small (at most 256 routes) and consulted once per request
 * that no sonde route matched, under a mutex held only for the lookup.
 */
#include "http/routes.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_APP_ROUTES 256
#define DEFAULT_MAX_BODY 65536
#define MAX_BODY_LIMIT (16u << 20)

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static sonde__app_route *table[MAX_APP_ROUTES];
static size_t table_n;

/* ---- methods ---- */

static const struct {
    const char *name;
    sonde_http_method m;
} methods[] = {{"GET", SONDE_HTTP_GET},        {"HEAD", SONDE_HTTP_HEAD},
               {"POST", SONDE_HTTP_POST},      {"PUT", SONDE_HTTP_PUT},
               {"DELETE", SONDE_HTTP_DELETE},  {"PATCH", SONDE_HTTP_PATCH},
               {"OPTIONS", SONDE_HTTP_OPTIONS}};

sonde_http_method sonde_http_method_parse(const char *name)
{
    if (!name)
        return SONDE_HTTP_OTHER;
    for (size_t i = 0; i < SONDE_ARRAY_LEN(methods); i++)
        if (strcmp(methods[i].name, name) == 0)
            return methods[i].m;
    return SONDE_HTTP_OTHER;
}

const char *sonde_http_method_name(sonde_http_method m)
{
    for (size_t i = 0; i < SONDE_ARRAY_LEN(methods); i++)
        if (methods[i].m == m)
            return methods[i].name;
    return "OTHER";
}

/* ---- routes ---- */

void sonde_route_opts_init(sonde_route_opts *o)
{
    if (o)
        memset(o, 0, sizeof *o);
}

static void route_free(sonde__app_route *r)
{
    if (!r)
        return;
    sonde__free(r->path);
    for (size_t i = 0; i < r->nheaders; i++)
        sonde__free(r->headers[i]);
    sonde__free(r->owner);
    sonde__free(r->label);
    sonde__free(r);
}

static bool path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || p[0] != '/' || n > 512)
        return false;
    for (const char *c = p; *c; c++)
        if (*c <= ' ' || *c == '?' || *c == '#' || (unsigned char)*c >= 0x7f)
            return false;
    return true;
}

static bool header_name_ok(const char *h)
{
    if (!h || !*h || strlen(h) > 64)
        return false;
    for (const char *c = h; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return true;
}

int sonde_route_add(const sonde_route_opts *o, sonde_route_fn fn, void *ud)
{
    sonde__clear_error();
    if (!o || !fn || !o->path) {
        sonde__set_error("route: a path and a handler are required");
        return SONDE_EINVAL;
    }
    if (!path_ok(o->path)) {
        sonde__set_error("route \"%s\": the path must start with '/' and hold no spaces, '?' "
                         "or '#' (at most 512 bytes)",
                         o->path);
        return SONDE_EINVAL;
    }
    unsigned m = o->methods ? o->methods : SONDE_HTTP_GET;
    if (m & ~0x7fu) {
        sonde__set_error("route %s: unknown method bits", o->path);
        return SONDE_EINVAL;
    }
    if (m & SONDE_HTTP_GET)
        m |= SONDE_HTTP_HEAD;
    if (o->access < SONDE_ACCESS_PUBLIC || o->access > SONDE_ACCESS_CHECK ||
        (o->access == SONDE_ACCESS_CHECK && !o->check)) {
        sonde__set_error("route %s: bad access class (SONDE_ACCESS_CHECK needs a check)", o->path);
        return SONDE_EINVAL;
    }
    if (o->max_body_bytes > MAX_BODY_LIMIT) {
        sonde__set_error("route %s: max_body_bytes above 16777216", o->path);
        return SONDE_EINVAL;
    }
    if (o->header_count > SONDE__APP_MAX_HEADERS || (o->header_count && !o->headers)) {
        sonde__set_error("route %s: at most 16 headers", o->path);
        return SONDE_EINVAL;
    }
    for (size_t i = 0; i < o->header_count; i++)
        if (!header_name_ok(o->headers[i])) {
            sonde__set_error("route %s: bad header name \"%s\"", o->path,
                             o->headers[i] ? o->headers[i] : "(null)");
            return SONDE_EINVAL;
        }
    sonde__app_route *r = sonde__calloc(1, sizeof *r);
    if (!r)
        return SONDE_ENOMEM;
    r->path = sonde__strdup(o->path);
    r->path_len = strlen(o->path);
    r->absolute = o->absolute != 0;
    r->prefix = o->prefix != 0;
    r->methods = m;
    r->access = o->access;
    r->check = o->check;
    r->check_ud = o->check_userdata;
    r->max_body = o->max_body_bytes ? o->max_body_bytes : DEFAULT_MAX_BODY;
    r->owner = sonde__strdup(o->owner ? o->owner : "application");
    r->label = sonde__strdup(o->metric_label ? o->metric_label : o->path);
    r->no_rate_limit = o->no_rate_limit != 0;
    r->fn = fn;
    r->ud = ud;
    bool ok = r->path && r->owner && r->label;
    for (size_t i = 0; ok && i < o->header_count; i++) {
        ok = (r->headers[i] = sonde__strdup(o->headers[i])) != NULL;
        r->nheaders = i + 1;
    }
    if (!ok) {
        route_free(r);
        return SONDE_ENOMEM;
    }

    const char *builtin = sonde__http_builtin_owner(r->path);
    pthread_mutex_lock(&table_lock);
    int rc = SONDE_OK;
    if (builtin) {
        sonde__set_error("route %s of %s conflicts with %s of %s", r->path, r->owner, r->path,
                         builtin);
        rc = SONDE_ECONFLICT;
    }
    for (size_t i = 0; !rc && i < table_n; i++) {
        const sonde__app_route *t = table[i];
        if (t->absolute == r->absolute && t->prefix == r->prefix && strcmp(t->path, r->path) == 0) {
            sonde__set_error("route %s of %s conflicts with %s of %s", r->path, r->owner, t->path,
                             t->owner);
            rc = SONDE_ECONFLICT;
        }
    }
    if (!rc && table_n >= MAX_APP_ROUTES) {
        sonde__set_error("route %s: at most 256 application routes", r->path);
        rc = SONDE_ELIMIT;
    }
    if (!rc)
        table[table_n++] = r;
    pthread_mutex_unlock(&table_lock);
    if (rc)
        route_free(r);
    return rc;
}

int sonde_route_remove(const char *path, int absolute)
{
    if (!path)
        return SONDE_EINVAL;
    sonde__app_route *found = NULL;
    pthread_mutex_lock(&table_lock);
    /* An exact route before a prefix route of the same path. */
    for (int want_prefix = 0; want_prefix < 2 && !found; want_prefix++) {
        for (size_t i = 0; i < table_n; i++) {
            if (table[i]->absolute == (absolute != 0) && table[i]->prefix == want_prefix &&
                strcmp(table[i]->path, path) == 0) {
                found = table[i];
                memmove(&table[i], &table[i + 1], (table_n - i - 1) * sizeof *table);
                table_n--;
                break;
            }
        }
    }
    pthread_mutex_unlock(&table_lock);
    if (!found)
        return SONDE_ENOTFOUND;
    /* New requests no longer find it; wait for those inside the handler. */
    while (atomic_load_explicit(&found->refs, memory_order_acquire) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    route_free(found);
    return SONDE_OK;
}

/* Whether route r matches path p: exactly, or as a prefix route at a '/'
 * boundary. Returns the subpath or NULL. */
static const char *match(const sonde__app_route *r, const char *p, size_t pn)
{
    if (pn < r->path_len || memcmp(p, r->path, r->path_len) != 0)
        return NULL;
    if (pn == r->path_len)
        return p + pn;
    if (!r->prefix)
        return NULL;
    if (r->path[r->path_len - 1] == '/')
        return p + r->path_len;
    return p[r->path_len] == '/' ? p + r->path_len + 1 : NULL;
}

sonde__app_route *sonde__app_route_find(const char *url, const char *prefix, size_t prefix_len,
                                        const char **subpath)
{
    size_t un = strlen(url);
    const char *rel = NULL;
    size_t rn = 0;
    if (prefix_len == 0) {
        rel = url;
        rn = un;
    } else if (un >= prefix_len && memcmp(url, prefix, prefix_len) == 0 &&
               (url[prefix_len] == '/' || url[prefix_len] == '\0')) {
        rel = url[prefix_len] ? url + prefix_len : "/";
        rn = strlen(rel);
    }
    sonde__app_route *best = NULL;
    const char *best_sub = NULL;
    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < table_n; i++) {
        sonde__app_route *r = table[i];
        const char *p = r->absolute ? url : rel;
        size_t pn = r->absolute ? un : rn;
        if (!p)
            continue;
        const char *sub = match(r, p, pn);
        if (!sub)
            continue;
        bool exact = *sub == '\0' && !r->prefix;
        bool best_exact = best && *best_sub == '\0' && !best->prefix;
        if (!best || (exact && !best_exact) ||
            (exact == best_exact && r->path_len > best->path_len)) {
            best = r;
            best_sub = sub;
        }
    }
    if (best)
        atomic_fetch_add_explicit(&best->refs, 1, memory_order_acq_rel);
    pthread_mutex_unlock(&table_lock);
    if (best && subpath)
        *subpath = best_sub;
    return best;
}

void sonde__app_route_release(sonde__app_route *r)
{
    if (r)
        atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel);
}

void sonde__app_route_allow(const sonde__app_route *r, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < SONDE_ARRAY_LEN(methods); i++) {
        if (!(r->methods & methods[i].m))
            continue;
        int n = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
}
