/*
 * The libmicrohttpd adapter (sonde/mhd.h): wraps the application's access
 * handler and completion callback around sonde_http_begin/end.
 *
 * Per request the adapter allocates one small record, kept in MHD's
 * per-request pointer; the application's handler gets a pointer to its own
 * slot inside it, so its usual "*req_cls == NULL on the first call"
 * pattern is unchanged. The logging context is pushed around each call of
 * the application's handler, never across calls: in epoll mode one thread
 * serves many connections in turn.
 */
#include <sonde/mhd.h>

#include "core/internal.h"

#include <sonde/log.h>

#include <stdlib.h>
#include <string.h>

typedef struct wrap {
    struct wrap *next;
    struct MHD_Daemon *d;
    sonde_http_instr *in;
    MHD_AccessHandlerCallback dh;
    void *dh_cls;
    MHD_RequestCompletedCallback done;
    void *done_cls;
} wrap;

typedef struct mreq {
    sonde_http_req q;
    void *app_cls;
    uint64_t bytes;
    uint64_t response_bytes; /* as the application told sonde_mhd_set_response_size */
} mreq;

static pthread_mutex_t wraps_lock = PTHREAD_MUTEX_INITIALIZER;
static wrap *wraps;
static _Thread_local mreq *current;

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **req_cls)
{
    wrap *w = cls;
    mreq *r = *req_cls;
    if (!r) {
        r = sonde__calloc(1, sizeof *r);
        if (!r)
            return w->dh(w->dh_cls, c, url, method, version, upload, upload_size, req_cls);
        *req_cls = r;
        const union MHD_ConnectionInfo *hi =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
        r->bytes = hi ? hi->header_size : 0;
        sonde_http_begin(w->in, &r->q, sonde_http_instr_match(w->in, url),
                         sonde_http_method_parse(method), NULL);
        sonde_log_correlation_from_headers(
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent"),
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-ID"), r->q.request_id);
    }
    r->bytes += *upload_size;
    int tok = sonde_log_context_push(r->q.request_id, NULL, 0);
    mreq *saved = current;
    current = r;
    enum MHD_Result ret =
        w->dh(w->dh_cls, c, url, method, version, upload, upload_size, &r->app_cls);
    current = saved;
    sonde_log_context_pop(tok);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    wrap *w = cls;
    mreq *r = *req_cls;
    if (!r) {
        if (w->done)
            w->done(w->done_cls, c, req_cls, toe);
        return;
    }
    if (w->done)
        w->done(w->done_cls, c, &r->app_cls, toe);
    const union MHD_ConnectionInfo *si =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    int status = si && si->http_status ? (int)si->http_status : 499;
    r->q.request_bytes = r->bytes;
    sonde_http_end(&r->q, status, r->response_bytes);
    sonde__free(r);
    *req_cls = NULL;
}

struct MHD_Daemon *sonde_mhd_start_daemon(sonde_http_instr *in, unsigned int flags, uint16_t port,
                                          MHD_AcceptPolicyCallback apc, void *apc_cls,
                                          MHD_AccessHandlerCallback dh, void *dh_cls,
                                          const struct MHD_OptionItem *options)
{
    if (!in || !dh)
        return NULL;
    size_t n = 0;
    while (options && options[n].option != MHD_OPTION_END)
        n++;
    struct MHD_OptionItem *opts = sonde__calloc(n + 2, sizeof *opts);
    wrap *w = sonde__calloc(1, sizeof *w);
    if (!opts || !w) {
        sonde__free(opts);
        sonde__free(w);
        return NULL;
    }
    w->in = in;
    w->dh = dh;
    w->dh_cls = dh_cls;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (options[i].option == MHD_OPTION_NOTIFY_COMPLETED) {
            w->done = (MHD_RequestCompletedCallback)options[i].value;
            w->done_cls = options[i].ptr_value;
            continue;
        }
        opts[k++] = options[i];
    }
    opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, w};
    opts[k] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    w->d = MHD_start_daemon(flags, port, apc, apc_cls, on_access, w, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
    sonde__free(opts);
    if (!w->d) {
        sonde__free(w);
        return NULL;
    }
    pthread_mutex_lock(&wraps_lock);
    w->next = wraps;
    wraps = w;
    pthread_mutex_unlock(&wraps_lock);
    return w->d;
}

void sonde_mhd_stop_daemon(struct MHD_Daemon *d)
{
    if (!d)
        return;
    wrap *found = NULL;
    pthread_mutex_lock(&wraps_lock);
    for (wrap **p = &wraps; *p; p = &(*p)->next) {
        if ((*p)->d == d) {
            found = *p;
            *p = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&wraps_lock);
    /* Stopping completes the open requests through on_completed, which
     * still needs the wrapper. */
    MHD_stop_daemon(d);
    sonde__free(found);
}

const char *sonde_mhd_request_id(void)
{
    return current ? current->q.request_id : NULL;
}

int sonde_mhd_add_request_id(struct MHD_Response *r)
{
    if (!current || !r)
        return SONDE_ESTATE;
    return MHD_add_response_header(r, "X-Request-ID", current->q.request_id) == MHD_YES ? SONDE_OK
                                                                                        : SONDE_EIO;
}

int sonde_mhd_set_response_size(uint64_t bytes)
{
    if (!current)
        return SONDE_ESTATE;
    current->response_bytes = bytes;
    return SONDE_OK;
}
