/*
 * POST /alerts/silences, GET /alerts/silences, DELETE /alerts/silences/ID:
 * silences at run time over HTTP, in the manner of Alertmanager's API v2.
 * One application route (sonde/app.h) of the sensitive access class: the
 * API key when one is configured, else loopback clients only. Registered
 * by the composition root (sonde/start.c).
 */
#include "http/views.h"

#include "errors/silences.h"

#include <string.h>

static void json_error(sonde_route_response *rs, int status, const char *msg)
{
    rs->status = status;
    sonde_buf_reset(&rs->body);
    sonde__buf_puts(&rs->body, "{\"error\":");
    sonde__buf_json_str(&rs->body, msg);
    sonde__buf_puts(&rs->body, "}\n");
}

static void add(sonde_errors *t, const sonde_route_request *rq, sonde_route_response *rs)
{
    char err[256] = "";
    sonde__silence_req r;
    int rc = sonde__silence_req_parse(rq->body ? rq->body : "", rq->body_len, &r, err, sizeof err);
    uint64_t id = 0;
    if (rc == SONDE_OK) {
        rc = sonde__silence_add_req(t, &r, &id, err, sizeof err);
        sonde__silence_req_free(&r);
    }
    if (rc == SONDE_EINVAL) {
        json_error(rs, 400, err);
        return;
    }
    if (rc == SONDE_ELIMIT) {
        json_error(rs, 409, err);
        return;
    }
    if (rc) {
        json_error(rs, 500, sonde_strerror(rc));
        return;
    }
    char hex[17];
    sonde__silence_id_format(id, hex);
    rs->status = 201;
    sonde__buf_printf(&rs->body, "{\"silenceID\":\"%s\"}\n", hex);
}

void sonde__http_silences_handler(void *ud, const sonde_route_request *rq, sonde_route_response *rs)
{
    sonde_errors *t = ud;
    const char *sub = rq->subpath ? rq->subpath : "";
    if (sub[0] == '/')
        sub++;
    if (rq->method_bit == SONDE_HTTP_POST) {
        if (sub[0]) {
            json_error(rs, 405, "POST /alerts/silences adds a silence; no ID in the path");
            return;
        }
        add(t, rq, rs);
        return;
    }
    if (rq->method_bit == SONDE_HTTP_DELETE) {
        uint64_t id;
        if (!sub[0]) {
            json_error(rs, 405, "DELETE needs a silence ID: DELETE /alerts/silences/ID");
            return;
        }
        if (sonde__silence_id_parse(sub, &id) != SONDE_OK) {
            json_error(rs, 404, "no such silence (an ID is 16 hex digits)");
            return;
        }
        int rc = sonde_alerts_expire_silence(t, id);
        if (rc == SONDE_ENOTFOUND) {
            json_error(rs, 404, "no such silence");
            return;
        }
        if (rc) {
            json_error(rs, 500, sonde_strerror(rc));
            return;
        }
        sonde__buf_puts(&rs->body, "{\"status\":\"expired\"}\n");
        return;
    }
    /* GET (and HEAD). */
    if (sub[0]) {
        json_error(rs, 404, "GET /alerts/silences lists every silence");
        return;
    }
    int rc = sonde_alerts_silences_json(t, &rs->body);
    if (rc)
        json_error(rs, 500, sonde_strerror(rc));
    else
        sonde__buf_putc(&rs->body, '\n');
}
