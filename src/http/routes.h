/*
 * Application routes (sonde/app.h): the process-wide table that every
 * monitoring server consults per request, so routes can come and go while
 * servers run.
 *
 * Lifetime: the table holds one reference to each route; a request holds
 * one while its handler runs. sonde_route_remove takes the route out of the
 * table and waits until the request references are gone, so a handler never
 * runs after its removal returned.
 */
#ifndef SONDE_HTTP_ROUTES_H
#define SONDE_HTTP_ROUTES_H

#include <sonde/app.h>

#include "core/internal.h"

#define SONDE__APP_MAX_HEADERS 16

typedef struct sonde__app_route {
    char *path;
    size_t path_len;
    int absolute, prefix;
    unsigned methods; /* HEAD included when GET is */
    int access;
    sonde_route_check_fn check;
    void *check_ud;
    size_t max_body;
    char *headers[SONDE__APP_MAX_HEADERS];
    size_t nheaders;
    char *owner;
    char *label;
    int no_rate_limit;
    sonde_route_fn fn;
    void *ud;
    _Atomic int refs; /* requests inside the handler */
} sonde__app_route;

/*
 * The route serving url (the request path without the query) on a server
 * whose route prefix is prefix (prefix_len bytes, 0 for none): exact
 * routes first, then the longest prefix route; under-prefix routes match
 * url minus the prefix, absolute ones the whole url. On success the route
 * is referenced (release it with sonde__app_route_release) and *subpath
 * points into url after the route's path. NULL when none matches. Any
 * thread.
 */
sonde__app_route *sonde__app_route_find(const char *url, const char *prefix, size_t prefix_len,
                                        const char **subpath);
void sonde__app_route_release(sonde__app_route *r);

/* "GET, HEAD, POST" for a route's methods, into out (cap bytes). */
void sonde__app_route_allow(const sonde__app_route *r, char *out, size_t cap);

/* Owner of a sonde route at this path (builtins and extension routes), or
 * NULL when sonde has none; text valid while the route exists
 * (server.c). */
const char *sonde__http_builtin_owner(const char *path);

#endif
