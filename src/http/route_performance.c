/*
 * GET /performance?operation=NAME&hours=N (or &minutes=N): the figures of
 * one operation, or of every operation, as JSON (sonde_op_stats_write_json).
 * Sensitive (the bearer key, or loopback clients without one) and rate
 * limited, like the server's other JSON views. Registered by the
 * composition root (sonde/start.c).
 */
#include "http/views.h"

#include "trace/trace_int.h"

static void json_error(sonde__http_response *rs, int status, const char *msg)
{
    rs->status = status;
    sonde_buf_reset(&rs->body);
    sonde__buf_puts(&rs->body, "{\"error\":");
    sonde__buf_json_str(&rs->body, msg);
    sonde__buf_puts(&rs->body, "}\n");
}

void sonde__http_performance_handler(void *ud, const sonde__http_request *rq,
                                     sonde__http_response *rs)
{
    (void)ud;
    sonde__perf_query q;
    char err[160];
    if (sonde__perf_query_parse(rq->query, rq->query_len, &q, err, sizeof err) != SONDE_OK) {
        json_error(rs, 400, err);
        return;
    }
    int rc;
    if (sonde_enabled() && !sonde__trace_peek()) {
        /* Nothing traced in this process: answer without creating the
         * tracer (and its metric families) from a web request. */
        if (q.has_operation) {
            json_error(rs, 404, "no such operation");
            return;
        }
        rc = sonde_op_stats_write_json(NULL, 0, q.minutes, &rs->body);
    } else if (q.has_operation) {
        sonde_op_stats st;
        rc = sonde_trace_get_stats(q.operation, q.minutes, &st);
        if (rc == SONDE_ENOTFOUND) {
            json_error(rs, 404, "no such operation");
            return;
        }
        if (rc == SONDE_OK)
            rc = sonde_op_stats_write_json(&st, 1, q.minutes, &rs->body);
    } else {
        sonde_op_stats *v = NULL;
        size_t n = 0;
        rc = sonde_trace_list_stats(q.minutes, &v, &n);
        if (rc == SONDE_OK)
            rc = sonde_op_stats_write_json(v, n, q.minutes, &rs->body);
        sonde_free(v);
    }
    if (rc == SONDE_EDISABLED) {
        json_error(rs, 503, "sonde is disabled");
        return;
    }
    if (rc != SONDE_OK) {
        json_error(rs, 500, sonde_strerror(rc));
        return;
    }
    sonde__buf_putc(&rs->body, '\n');
    rs->gzip_ok = true;
}
