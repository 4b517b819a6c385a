/* The embedded HTTP server object (one per sonde_start; tests may run
 * several). */
#ifndef SONDE_HTTP_SERVER_H
#define SONDE_HTTP_SERVER_H

#include "http/http.h"

typedef struct sonde__server sonde__server;

/*
 * Start a server with fully resolved options (no environment lookup here:
 * sonde_start does that). Strings are copied. On failure returns SONDE_EBIND,
 * SONDE_EINVAL, SONDE_EIO or SONDE_ENOMEM with the reason set by
 * sonde__set_error. Needs the runtime worker for connection deadlines (it
 * registers a timer; deadlines are enforced while the worker runs).
 */
int sonde__server_create(const sonde_start_opts *opts, sonde__server **out);

/* Stop accepting, close connections, join the server threads, free. */
void sonde__server_destroy(sonde__server *s);

int sonde__server_port(const sonde__server *s);
/* "host:port" of the bound socket. */
const char *sonde__server_address(const sonde__server *s);

/*
 * Extension routes for later components (/errors, /alerts, /performance).
 * A route handler fills the response; it runs on a server thread and must
 * not block. Routes are matched after the route prefix is stripped.
 */
typedef struct sonde__http_request {
    const char *path;  /* without the route prefix */
    const char *query; /* raw query string (no '?'), "" if none */
    size_t query_len;
    const char *accept; /* NULL if absent */
    const struct sockaddr *client;
    bool head;
} sonde__http_request;

typedef struct sonde__http_response {
    int status;               /* default 200 */
    const char *content_type; /* default application/json */
    sonde_buf body;           /* owned by the server after the handler */
    bool gzip_ok;             /* compress when the client accepts it */
    const char *retry_after;  /* Retry-After header value or NULL */
    const char *allow;        /* Allow header of a 405; NULL: "GET, HEAD" */
    const char *request_id;   /* X-Request-ID header or NULL */
    const char *location;     /* Location header or NULL */
    const char *metric_label; /* handler label of an application route */
    bool close;               /* send Connection: close and drop the connection */
} sonde__http_response;

typedef void (*sonde__http_handler)(void *ud, const sonde__http_request *rq,
                                    sonde__http_response *rs);

#define SONDE__ROUTE_SENSITIVE 1u    /* bearer key, or loopback without one */
#define SONDE__ROUTE_RATE_LIMITED 2u /* per-client token bucket */

/*
 * Register a route for servers started afterwards. path is copied; label is
 * the handler label of the self-metrics (static text). At most 32 extension
 * routes. Returns SONDE_OK, SONDE_ECONFLICT, SONDE_ELIMIT, SONDE_EINVAL.
 */
int sonde__http_route_add(const char *path, const char *label, unsigned flags,
                          sonde__http_handler fn, void *ud);
void sonde__http_route_remove(const char *path);

#endif
