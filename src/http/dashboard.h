/* The /dashboard page and its /dashboard/history endpoint. */
#ifndef SONDE_HTTP_DASHBOARD_H
#define SONDE_HTTP_DASHBOARD_H

#include "http/history.h"

#include <stdint.h>

/*
 * Register /dashboard and (with h non-NULL) /dashboard/history for servers
 * created afterwards; h is borrowed and must outlive those servers. A path
 * taken by someone else is left to them. Serialised by sonde_start/stop.
 */
int sonde__dashboard_routes_add(sonde__history *h);
void sonde__dashboard_routes_remove(void);

/* Sampling period of the history: $SONDE_DASHBOARD_INTERVAL seconds
 * (0.1..60), else 5 s. */
uint32_t sonde__dashboard_interval_ms(void);

#endif
