/*
 * /dashboard: the built-in page (dashboard.html, embedded at build time as
 * sonde__dashboard_html) and /dashboard/history, the JSON of the
 * in-process history (history.h) the page draws its charts from. The page
 * is static and served to anyone who may reach the server; the history is
 * sensitive (API key, or loopback clients when none is set), as the
 * /errors, /alerts and /performance documents the page also reads.
 */
#include "http/dashboard.h"

#include "errors/errors_query.h"
#include "http/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char sonde__dashboard_html[];
extern const size_t sonde__dashboard_html_len;

static void h_page(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    SONDE_UNUSED(ud);
    SONDE_UNUSED(rq);
    rs->content_type = "text/html; charset=utf-8";
    if (sonde__buf_append(&rs->body, sonde__dashboard_html, sonde__dashboard_html_len)) {
        rs->status = 500;
        rs->content_type = "text/plain; charset=utf-8";
    }
    rs->gzip_ok = true;
}

static void bad_request(sonde__http_response *rs, const char *msg)
{
    rs->status = 400;
    rs->body.len = 0;
    sonde__buf_puts(&rs->body, "{\"error\":");
    sonde__buf_json_str(&rs->body, msg);
    sonde__buf_puts(&rs->body, "}\n");
}

static void h_history(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    char since_s[64], match[256];
    double since = 0;
    int n = sonde__query_get(rq->query, rq->query_len, "since", since_s, sizeof since_s);
    if (n >= 0) {
        char *end = NULL;
        since = sonde__strtod(since_s, &end);
        if (n == 0 || !end || *end || !(since >= 0)) {
            bad_request(rs, "since must be Unix seconds (a number >= 0)");
            return;
        }
    } else if (n != SONDE_ENOTFOUND) {
        bad_request(rs, "since: bad query parameter");
        return;
    }
    n = sonde__query_get(rq->query, rq->query_len, "match", match, sizeof match);
    if (n < 0 && n != SONDE_ENOTFOUND) {
        bad_request(rs, "match: bad query parameter (at most 255 bytes)");
        return;
    }
    int rc = sonde__history_write_json(ud, since, n >= 0 ? match : NULL, &rs->body);
    if (rc) {
        rs->status = 500;
        rs->body.len = 0;
        sonde__buf_printf(&rs->body, "{\"error\":\"%s\"}\n", sonde_strerror(rc));
    }
    rs->gzip_ok = true;
}

static bool own_page, own_history;

int sonde__dashboard_routes_add(sonde__history *h)
{
    own_page = sonde__http_route_add("/dashboard", "dashboard", SONDE__ROUTE_RATE_LIMITED, h_page,
                                     NULL) == SONDE_OK;
    if (h)
        own_history = sonde__http_route_add("/dashboard/history", "dashboard_history",
                                            SONDE__ROUTE_SENSITIVE | SONDE__ROUTE_RATE_LIMITED,
                                            h_history, h) == SONDE_OK;
    return SONDE_OK;
}

void sonde__dashboard_routes_remove(void)
{
    if (own_page)
        sonde__http_route_remove("/dashboard");
    if (own_history)
        sonde__http_route_remove("/dashboard/history");
    own_page = own_history = false;
}

uint32_t sonde__dashboard_interval_ms(void)
{
    const char *e = getenv("SONDE_DASHBOARD_INTERVAL");
    if (!e || !*e)
        return 5000;
    char *end = NULL;
    double v = sonde__strtod(e, &end);
    if (!end || *end || !(v >= 0.1 && v <= 60))
        return 5000;
    return (uint32_t)(v * 1000 + 0.5);
}
