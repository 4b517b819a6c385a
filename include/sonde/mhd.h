/*
 * sonde/mhd.h - request instrumentation for applications built on
 * libmicrohttpd, in one call: start the daemon through
 * sonde_mhd_start_daemon instead of MHD_start_daemon.
 *
 *     sonde_http_instr *in;   // sonde_http_instr_create, with route templates
 *     struct MHD_Daemon *d = sonde_mhd_start_daemon(
 *         in, MHD_USE_INTERNAL_POLLING_THREAD, 8080, NULL, NULL,
 *         handler, NULL, options);
 *     ...
 *     sonde_mhd_stop_daemon(d);
 *
 * Every request then goes through sonde_http_begin/end (see sonde/app.h):
 * the route is the first matching template of the instrumentation
 * ("other" when none matches), the status is the one the application
 * queued (499 when the client went away before an answer), the request
 * size is the head plus the body received. The handler runs inside a
 * logging context whose correlation ID comes from the request's
 * traceparent or X-Request-ID (else a new one);
 * sonde_mhd_add_request_id(response) answers it as X-Request-ID. The
 * application's own MHD_OPTION_NOTIFY_COMPLETED callback, if any, is still
 * called, and its per-request pointer (*req_cls) is its own.
 * libmicrohttpd does not report the size of the responses it sends, so the
 * handler states it with sonde_mhd_set_response_size when it queues one
 * (the response size histogram counts 0 bytes otherwise).
 *
 * This header is not included by <sonde.h>: it needs <microhttpd.h>.
 */
#ifndef SONDE_MHD_H
#define SONDE_MHD_H

#include <microhttpd.h>

#include "app.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * MHD_start_daemon with instrumentation: flags, port, apc/apc_cls and
 * dh/dh_cls as for MHD_start_daemon; options is the application's option
 * array terminated by MHD_OPTION_END (NULL: none). in is borrowed until
 * sonde_mhd_stop_daemon. Returns the daemon, or NULL (as MHD_start_daemon,
 * or when memory is short). Any thread.
 */
SONDE_API struct MHD_Daemon *sonde_mhd_start_daemon(sonde_http_instr *in, unsigned int flags,
                                                    uint16_t port, MHD_AcceptPolicyCallback apc,
                                                    void *apc_cls, MHD_AccessHandlerCallback dh,
                                                    void *dh_cls,
                                                    const struct MHD_OptionItem *options);

/** Stop a daemon started by sonde_mhd_start_daemon and free the adapter's
 * state (MHD_stop_daemon for any other daemon). Accepts NULL. */
SONDE_API void sonde_mhd_stop_daemon(struct MHD_Daemon *d);

/** The correlation ID of the request whose handler runs on the calling
 * thread, or NULL outside one. Valid during the handler call. */
SONDE_API const char *sonde_mhd_request_id(void);

/** Add X-Request-ID with the current request's ID to a response (inside
 * the handler). Returns SONDE_OK, SONDE_ESTATE (not inside a handler) or
 * SONDE_EIO (MHD refused the header). */
SONDE_API int sonde_mhd_add_request_id(struct MHD_Response *r);

/** The body size of the response the current request's handler queues
 * (call it inside the handler, before or after MHD_queue_response); it
 * goes into NS_http_response_size_bytes when the request completes.
 * Returns SONDE_OK or SONDE_ESTATE (not inside a handler). */
SONDE_API int sonde_mhd_set_response_size(uint64_t bytes);

#ifdef __cplusplus
}
#endif
#endif
