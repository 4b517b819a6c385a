/*
 * The links between error capture and logging: the calling thread's
 * correlation ID (attached to each captured error) and the log line of a
 * captured error. Until the structured logger is part of the build there is
 * no per-thread context and lines go through sonde's diagnostics hook.
 */
#include "errors/errors_int.h"

size_t sonde__errors_context_cid(char *cid, size_t cap)
{
    SONDE_UNUSED(cid);
    SONDE_UNUSED(cap);
    return 0;
}

void sonde__errors_log(const err_rec *r, const err_view *v)
{
    /* Diagnostics levels follow the logger's: ERROR 5, CRITICAL 6. */
    sonde__diag(r->severity == SONDE_SEVERITY_CRITICAL ? 6 : 5, "errors",
                "%.*s: %.*s [%s] (%.*s:%d %.*s)", (int)r->type_len, v->type, (int)r->msg_len,
                v->msg, sonde_severity_name(r->severity), (int)r->file_len, v->file, (int)r->line,
                (int)r->func_len, v->func);
}
