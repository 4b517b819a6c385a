/*
 * GET /errors and GET /alerts: the error groups (filtered by the query,
 * errors_query.h) and the alert states of an error tracker, as JSON.
 * Registered by the composition root (sonde/start.c).
 */
#include "http/views.h"

#include "errors/errors_query.h"

static void json_error(sonde__http_response *rs, int status, const char *msg)
{
    rs->status = status;
    sonde_buf_reset(&rs->body);
    sonde__buf_puts(&rs->body, "{\"error\":");
    sonde__buf_json_str(&rs->body, msg);
    sonde__buf_putc(&rs->body, '}');
}

void sonde__http_errors_handler(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    sonde_errors *t = ud;
    sonde_errors_filter f;
    char type[SONDE_ERROR_TYPE_MAX + 1];
    const char *why = NULL;
    if (sonde__errors_filter_from_query(rq->query, rq->query_len, sonde__errors_now(t), &f, type,
                                        sizeof type, &why) != SONDE_OK) {
        json_error(rs, 400, why);
        return;
    }
    int rc = sonde_errors_write_json(t, &f, &rs->body);
    if (rc)
        json_error(rs, 500, sonde_strerror(rc));
    rs->gzip_ok = true;
}

void sonde__http_alerts_handler(void *ud, const sonde__http_request *rq, sonde__http_response *rs)
{
    SONDE_UNUSED(rq);
    int rc = sonde_alerts_write_json(ud, &rs->body);
    if (rc)
        json_error(rs, 500, sonde_strerror(rc));
    rs->gzip_ok = true;
}
