/*
 * The handlers of sonde's own JSON views that read other components
 * (errors, tracing). The composition root (sonde/start.c) registers them
 * with sonde__http_route_add; each is a sonde__http_handler and runs on a
 * server thread.
 */
#ifndef SONDE_HTTP_VIEWS_H
#define SONDE_HTTP_VIEWS_H

#include "http/server.h"

#include <sonde/app.h>

/* GET /errors: ud is the sonde_errors tracker (borrowed). */
void sonde__http_errors_handler(void *ud, const sonde__http_request *rq, sonde__http_response *rs);
/* GET /alerts: ud is the sonde_errors tracker (borrowed). */
void sonde__http_alerts_handler(void *ud, const sonde__http_request *rq, sonde__http_response *rs);
/* GET /performance: ud unused (the process's tracer). */
void sonde__http_performance_handler(void *ud, const sonde__http_request *rq,
                                     sonde__http_response *rs);

/* /alerts/silences (an application route, sonde/app.h: POST, GET,
 * DELETE .../ID; sensitive): ud is the sonde_errors tracker (borrowed). */
void sonde__http_silences_handler(void *ud, const sonde_route_request *rq,
                                  sonde_route_response *rs);

#endif
